"""Shared pieces of the RL² benchmarks: train-or-load a preset's agent, the learning-curve
figure, mean ± 95% CI, and the result JSON.

The hyperparameters come from the preset in ``configs/`` (the same file ``metarl train rl2
--config NAME`` uses); the checkpoint lives in ``benchmarks/results/rl2_<name>.pt`` and
is reused when it exists and was trained with the same config, so a benchmark reruns in
seconds and retrains only with ``--train``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from variants import add_variant_arguments

from metarl.agents.rl2 import RL2, RL2Config
from metarl.config import resolve_config, same_results_config
from metarl.evaluation import mean_ci95
from metarl.family import TaskFamily
from metarl.registry import make_family
from metarl.task import Task

RESULTS = Path(__file__).resolve().parent / "results"


def load_preset_config(preset: str, overrides: dict[str, Any] | None = None
                       ) -> tuple[RL2Config, str, TaskFamily]:
    """The preset's resolved config, its ``source`` line, and its family."""
    cfg, loaded = resolve_config("rl2", RL2Config, preset, overrides or {})
    family = make_family(cfg.family, **cfg.family_kwargs)
    return cfg, (loaded.source if loaded else ""), family


def train_or_load(name: str, cfg: RL2Config, family: TaskFamily, train: bool,
                  eval_tasks: list[Task] | None = None, eval_every: int = 0,
                  log: Callable[[str], None] = print,
                  train_tasks: list[Task] | None = None,
                  allow_partial: bool = False) -> tuple[RL2, list[dict[str, float]]]:
    """The trained agent for ``cfg``: loaded from ``results/rl2_<name>.pt`` when it holds a
    finished run of the same config; otherwise trained (continuing a partial checkpoint of
    the same config), which needs ``train=True``. ``allow_partial`` returns an unfinished
    checkpoint as it is (its iteration is reported with the results).

    With ``eval_tasks`` and ``eval_every``, the mean trial return on those tasks is
    recorded every ``eval_every`` iterations for the learning curve (never used to pick
    a checkpoint: the final one is always the one reported).
    """
    ckpt = RESULTS / f"rl2_{name}.pt"
    curve_path = RESULTS / f"rl2_{name}_evalcurve.json"
    agent = RL2(cfg, family, train_tasks or ())
    evals: list[dict[str, float]] = []
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if same_results_config(state["config"], cfg):
            agent.load_state_dict(state)
            if curve_path.exists():
                evals = json.loads(curve_path.read_text())
                for e in evals:  # files from before "num_tasks" was recorded
                    e.setdefault("num_tasks", len(eval_tasks or []))
                # an eval is written just before its iteration's checkpoint: a run stopped
                # between the two resumes earlier and redoes it, so drop what lies ahead
                evals = [e for e in evals if e["iteration"] <= agent.iteration]
            log(f"[{name}] loaded {ckpt.name} at iteration {agent.iteration}/{cfg.num_iterations}")
        else:
            log(f"[{name}] {ckpt.name} was trained with another config; ignoring it")
            if not train:
                raise SystemExit(f"{ckpt} does not match the preset; rerun with --train")
    if agent.iteration >= cfg.num_iterations or (allow_partial and not train
                                                  and agent.iteration > 0):
        return agent, evals
    if not train:
        raise SystemExit(f"[{name}] no finished checkpoint at {ckpt} "
                         f"(iteration {agent.iteration}/{cfg.num_iterations}); rerun with --train")
    torch.set_num_threads(1)  # shared machine: one core per training
    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    start = agent.iteration

    def on_iter(m: dict[str, float]) -> None:
        it = agent.iteration
        if it % 10 == 0 or it == cfg.num_iterations:
            rate = (it - start) / max(time.perf_counter() - t0, 1e-9)
            log(f"[{name}] it {it}/{cfg.num_iterations}  trial return {m['trial_return']:.2f}  "
                f"entropy {m['entropy']:.3f}  kl {m['approx_kl']:.4f}  "
                f"steps {m['env_steps']:.3g}  {rate:.2f} it/s")
        if eval_tasks and eval_every and (it % eval_every == 0 or it == cfg.num_iterations):
            ret = agent.evaluate(eval_tasks, seed=777)["returns"]
            evals.append({"iteration": it, "env_steps": m["env_steps"],
                          "num_tasks": len(eval_tasks),
                          "trial_return": float(ret.sum(0).mean()),
                          "episode_returns": ret.mean(1).tolist()})
            curve_path.write_text(json.dumps(evals))
            log(f"[{name}] held-out eval at it {it}: trial return {evals[-1]['trial_return']:.2f}")

    agent.train(log=on_iter, checkpoint=str(ckpt), checkpoint_every=25)
    return agent, evals


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


def final_label(agent: RL2, instances: int) -> str:
    """The learning curve's label of the reported number: an unfinished checkpoint
    (``--partial``) says at which iteration it stands."""
    planned = agent.config.num_iterations
    when = "final" if agent.iteration >= planned else f"at it {agent.iteration}/{planned}"
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
