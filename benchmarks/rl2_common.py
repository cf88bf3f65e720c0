"""Shared pieces of the RL² benchmarks: train-or-load a preset's agent, the learning-curve
figure, mean ± 95% CI, and the result JSON.

The hyperparameters come from the preset in ``configs/`` (the same file ``metarl train rl2
--config NAME`` uses); each benchmark run is an ordinary run folder,
``benchmarks/results/rl2_runs/<name>`` (``metarl evaluate`` and ``metarl plot`` read it),
reused when it has finished with the same config, so a benchmark reruns in seconds and
trains (or continues an interrupted run) only with ``--train``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from variants import add_variant_arguments

from metarl.agents.rl2 import RL2, RL2Config
from metarl.config import config_to_dict, resolve_config, same_results_config
from metarl.evaluation import mean_ci95
from metarl.family import TaskFamily
from metarl.registry import make_family
from metarl.runs import CHECKPOINT_FILE, create_run, open_run, read_metrics, train_run
from metarl.task import Task

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = RESULTS / "rl2_runs"


def load_preset_config(preset: str, overrides: dict[str, Any] | None = None
                       ) -> tuple[RL2Config, str, TaskFamily]:
    """The preset's resolved config, its ``source`` line, and its family."""
    cfg, loaded = resolve_config("rl2", RL2Config, preset, overrides or {})
    family = make_family(cfg.family, **cfg.family_kwargs)
    return cfg, (loaded.source if loaded else ""), family


@dataclass
class Trained:
    """A benchmark's RL² run as training left it."""

    agent: RL2
    path: Path
    #: completed / planned PPO iterations.
    iteration: int
    planned: int
    #: the run's metrics rows, with ``env_steps`` summed up to each row (the x axis of the
    #: learning curve) and the total.
    history: list[dict[str, float]]
    env_steps: float
    train_wall_s: float


def _trained(run: Any, agent: RL2) -> Trained:
    rows = read_metrics(run.path)
    total = 0.0
    history = []
    for row in rows:
        total += row["env_steps"]
        history.append({**row, "env_steps": total})
    return Trained(agent, run.path, len(rows), run.config.num_iterations, history, total,
                   float(sum(r["time_total"] for r in rows)))


def train_or_load(name: str, preset: str, overrides: dict[str, Any] | None, train: bool,
                  eval_tasks: list[Task] | None = None, eval_every: int = 0,
                  log: Callable[[str], None] = print,
                  allow_partial: bool = False) -> tuple[Trained, list[dict[str, float]]]:
    """The trained agent of the preset (with ``overrides``), from the run folder
    ``results/rl2_runs/<name>``: loaded when the run has finished; otherwise trained (a new
    run, or the folder's run continued from its checkpoint), which needs ``train=True``.
    ``allow_partial`` returns an unfinished run as it is (its iteration is reported with
    the results).

    With ``eval_tasks`` and ``eval_every``, the mean trial return on those tasks is
    recorded every ``eval_every`` iterations for the learning curve
    (``results/rl2_<name>_evalcurve.json``; never used to pick a checkpoint: the final
    one is always the one reported).
    """
    path = RUNS / name
    curve_path = RESULTS / f"rl2_{name}_evalcurve.json"
    cfg, _ = resolve_config("rl2", RL2Config, preset, overrides or {})
    evals: list[dict[str, float]] = []
    if (path / CHECKPOINT_FILE).is_file():
        run = open_run(path)
        if not same_results_config(config_to_dict(run.config), cfg):
            raise SystemExit(f"{path} was trained with another config than {preset} with "
                             f"{overrides or {}}: give the variant a --tag, or delete the folder")
        agent, done = run.load_agent()
        done += 1
        if curve_path.exists():
            # an eval is written just before its iteration's checkpoint: a run stopped
            # between the two resumes earlier and redoes it, so drop what lies ahead
            evals = [e for e in json.loads(curve_path.read_text()) if e["iteration"] <= done]
        log(f"[{name}] loaded {path} at iteration {done}/{cfg.num_iterations}")
    elif not train:
        raise SystemExit(f"[{name}] no run at {path}; rerun with --train")
    else:
        run = create_run("rl2", preset=preset, overrides=overrides, out=path)
        agent, done = run.make_agent(), 0
    if done >= cfg.num_iterations or (allow_partial and not train and done > 0):
        return _trained(run, agent), evals
    if not train:
        raise SystemExit(f"[{name}] the run at {path} has not finished (iteration "
                         f"{done}/{cfg.num_iterations}); rerun with --train")
    agent.close()
    torch.set_num_threads(1)  # shared machine: one core per training
    t0 = time.perf_counter()
    steps = sum(r["env_steps"] for r in read_metrics(path)) if done else 0.0

    def on_iteration(agent: RL2, it: int, m: dict[str, float]) -> None:
        nonlocal steps
        it += 1
        steps += m["env_steps"]
        if it % 10 == 0 or it == cfg.num_iterations:
            rate = (it - done) / max(time.perf_counter() - t0, 1e-9)
            log(f"[{name}] it {it}/{cfg.num_iterations}  trial return {m['trial_return']:.2f}  "
                f"entropy {m['entropy']:.3f}  kl {m['approx_kl']:.4f}  {rate:.2f} it/s")
        if eval_tasks and eval_every and (it % eval_every == 0 or it == cfg.num_iterations):
            ret = evaluate_trials(agent, eval_tasks, seed=777)
            evals.append({"iteration": it, "env_steps": steps, "num_tasks": len(eval_tasks),
                          "trial_return": float(ret.sum(0).mean()),
                          "episode_returns": ret.mean(1).tolist()})
            curve_path.write_text(json.dumps(evals))
            log(f"[{name}] held-out eval at it {it}: trial return {evals[-1]['trial_return']:.2f}")

    agent = train_run(run, resume=done > 0, progress=False, on_iteration=on_iteration)
    return _trained(run, agent), evals


def evaluate_trials(agent: RL2, tasks: list[Task], seed: int, deterministic: bool = False,
                    chunk: int = 500) -> np.ndarray:
    """``(K, n_tasks)`` returns of one trial per task, sampled in chunks of ``chunk``
    tasks seeded ``seed``, ``seed + 1``, ... (how the committed RL² results were made)."""
    k = agent.config.episodes_per_trial
    return np.concatenate([
        agent.evaluate_adaptation(tasks[start:start + chunk], k, 1, seed + c,
                                  deterministic=deterministic).returns
        for c, start in enumerate(range(0, len(tasks), chunk))], axis=1)


def ci(values: np.ndarray) -> dict[str, float]:
    """``{"mean", "ci95"}`` over instances (t-interval)."""
    m, h = mean_ci95(np.asarray(values, dtype=np.float64))
    return {"mean": m, "ci95": h}


def fmt(stat: dict[str, float] | None) -> str:
    if stat is None:
        return "—"
    return f"{stat['mean']:.2f} ± {stat['ci95']:.2f}"


def print_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (printed and returned, for the README)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
              for r in rows]
    text = "\n".join(lines)
    print(text)
    return text


def plot_learning_curve(title: str, history: list[dict[str, float]],
                        evals: list[dict[str, float]], hlines: dict[str, float],
                        path: Path, ylabel: str = "total reward per trial",
                        final: tuple[str, float] | None = None) -> Path:
    """Training trial return vs environment steps (and periodic evaluations on a subset of
    the held-out tasks), with the baselines' and the paper's numbers as horizontal lines
    and ``final = (label, value)``, the reported number, as a star at the last step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    steps = np.array([h["env_steps"] for h in history])
    ret = np.array([h["trial_return"] for h in history])
    ax.plot(steps, ret, color="tab:blue", alpha=0.35, lw=0.8, label="RL² training trials")
    if len(ret) >= 20:
        w = max(len(ret) // 50, 5)
        smooth = np.convolve(ret, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], smooth, color="tab:blue", lw=1.5, label=f"(moving mean, {w} it)")
    if evals:
        n_eval = evals[0]["num_tasks"]
        ax.plot([e["env_steps"] for e in evals], [e["trial_return"] for e in evals], "o-",
                color="tab:red", ms=3, label=f"RL² during training, first {n_eval} held-out")
    if final is not None and len(steps):
        ax.plot([steps[-1]], [final[1]], "*", color="tab:red", ms=12, label=final[0])
    colors = iter(["k", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:gray"])
    for label, y in hlines.items():
        ax.axhline(y, ls="--", lw=1, color=next(colors), label=label)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", framealpha=0.85)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))


def add_run_arguments(parser: Any) -> None:
    """The options both RL² table benchmarks take."""
    parser.add_argument("--train", nargs="*", default=None, metavar="SETUP",
                        help="train (or continue) these setups (all of --setups when given "
                             "without names); otherwise checkpoints must exist")
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--partial", action="store_true",
                        help="evaluate an unfinished checkpoint as it is (reported as such)")
    parser.add_argument("--seed", type=int, default=2024, help="evaluation seed")
    add_variant_arguments(parser)


def final_label(trained: Trained, instances: int) -> str:
    """The learning curve's label of the reported number: an unfinished checkpoint
    (``--partial``) says at which iteration it stands."""
    planned = trained.planned
    when = "final" if trained.iteration >= planned else f"at it {trained.iteration}/{planned}"
    return f"RL² {when}, {instances} held-out"


def rl2_cell(r: dict[str, Any]) -> str:
    """RL² (ours), marked when the checkpoint had not finished its planned iterations."""
    if r.get("finished", True):
        return fmt(r["rl2"])
    return f"{fmt(r['rl2'])} (partial: it {r['iterations']}/{r['planned_iterations']})"


def report(out: Path, benchmark: str, results: list[dict[str, Any]], header: list[str],
           make_row: Callable[[dict[str, Any]], list[str]], order: str, what: str) -> None:
    """Merge ``results`` into ``out`` (keeping setups not rerun), print the table and the
    target verdicts, and write the JSON."""
    merged: dict[str, dict[str, Any]] = {}
    if out.exists():
        merged = {r["setup"]: r for r in json.loads(out.read_text()).get("results", [])}
    merged.update({r["setup"]: r for r in results})
    rows = [make_row(r) for r in sorted(merged.values(), key=lambda r: r[order])]
    print(f"\nTotal reward per trial, mean ± 95% CI over held-out {what} "
          f"({', '.join(str(r['instances']) for r in merged.values())})")
    table = print_table(header, rows)
    for r in merged.values():
        if r["target"] is not None:
            print(f"  {r['setup']}: RL² {r['rl2']['mean']:.2f} vs target {r['target']} -> "
                  f"{'MET' if r['meets_target'] else 'NOT MET'}")
    write_json(out, {"benchmark": benchmark, "table_markdown": table,
                     "results": list(merged.values())})
    print(f"wrote {out}")
