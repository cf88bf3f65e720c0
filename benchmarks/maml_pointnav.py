"""MAML, Meta-SGD, Reptile and CAVIA on PointNav2D in the MAML paper setting: held-out
adaptation curve and wall-clock.

Setting (configs/maml_pointnav.yaml, configs/metasgd_pointnav.yaml): meta-batch 20 tasks,
20 episodes per task, horizon 100, inner lr 0.1 (one VPG step with the linear baseline),
TRPO outer step with max KL 0.01, 64x64 tanh Gaussian policy, GAE lambda 0.9 (ours; the
paper does not give it, pytorch-maml-rl uses 1.0: ``--set gae_lambda=1.0 --tag gae1``);
Meta-SGD's TRPO step moves log α (``log_inner_lr``); Reptile (configs/reptile_pointnav.yaml)
takes 5 SGD inner steps per task and steps θ towards their mean; CAVIA
(configs/cavia_pointnav.yaml) adapts a 5-entry context vector with inner lr 1.0. 70
meta-iterations each (MAML, Meta-SGD, CAVIA: about 5.4M env steps; Reptile samples 5 batches
per iteration instead of 2, about 13M: the JSON records each run's env steps). Targets
(issue 4): after 1 inner step, mean held-out return >= -15.5, in <= 540 s of training
wall-clock per run on a 2-core machine; Meta-SGD after 1 step >= MAML's. Every agent is
paired with MAML task by task (``<agent>_minus_maml_1step``).

    python benchmarks/maml_pointnav.py                      # 2 seeds x all four agents
    python benchmarks/maml_pointnav.py --agents maml --seeds 0 --iterations 5   # smoke
    python benchmarks/maml_pointnav.py --summarize          # merge per-run results only
    python benchmarks/maml_pointnav.py --set gae_lambda=1.0 --tag gae1   # an ablation
    python benchmarks/maml_pointnav.py --agents metasgd --set log_inner_lr=false --tag direct_lr

Each run writes ``benchmarks/results/maml_pointnav[_<tag>]_<agent>_s<seed>.json`` as soon
as it finishes; the summary ``maml_pointnav[_<tag>].json`` and figure
``maml_pointnav[_<tag>].png`` combine all per-run files of that tag. ``--set`` overrides
preset keys for every run (record them with a ``--tag``, so the preset's results stay
apart). Run folders go to ``runs/bench/`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from metarl.evaluation import Curve, mean_ci95, summarize
from metarl.plotting import plot_curves
from metarl.runs import create_run, read_metrics, train_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from variants import add_variant_arguments, tagged, tagged_title, variant_options  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
AGENTS = ("maml", "metasgd", "reptile", "cavia")
TARGET_RETURN_1STEP, TARGET_WALL_S = -15.5, 540.0


def result_prefix(tag: str) -> str:
    return tagged("maml_pointnav", tag)


def run_one(agent: str, seed: int, iterations: int, eval_tasks: int, eval_episodes: int,
            steps: int, runs_dir: Path, progress: bool, overrides: dict, tag: str) -> dict:
    prefix = result_prefix(tag)
    out = runs_dir / f"{prefix}_{agent}_s{seed}"
    if out.exists():
        shutil.rmtree(out)
    run = create_run(agent, preset=f"{agent}_pointnav", out=out, overrides={
        **overrides, "num_iterations": iterations, "seed": seed, "num_test_tasks": eval_tasks,
        "checkpoint_every": 10, "eval_steps": steps, "eval_episodes": eval_episodes})
    t0, c0 = time.perf_counter(), time.process_time()
    trained = train_run(run, progress=progress)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = read_metrics(run.path)
    t1 = time.perf_counter()
    # Held-out evaluation on the run's test tasks (same tasks for every run: split_seed 0).
    result = trained.evaluate_adaptation(run.test_tasks, steps, eval_episodes, seed=10_000)
    eval_wall = time.perf_counter() - t1
    trained.close()
    curve = summarize(result, f"{agent} seed {seed}")
    doc = {
        "agent": agent, "seed": seed, "iterations": iterations, "run_dir": str(run.path),
        "config_preset": f"configs/{agent}_pointnav.yaml", "overrides": overrides,
        "gae_lambda": run.config.gae_lambda,
        "train_wall_clock_s": wall, "train_cpu_s": cpu, "eval_wall_clock_s": eval_wall,
        "env_steps": float(sum(r["env_steps"] for r in rows)),
        "time_sample_s": float(sum(r["time/sample_s"] for r in rows)),
        "time_update_s": float(sum(r["time/update_s"] for r in rows)),
        "skipped_iterations": int(sum(r.get("skipped", 0.0) for r in rows)),
        "train_return_pre_last10": float(np.mean([r["return/pre"] for r in rows[-10:]])),
        "train_return_post_last10": float(np.mean([r["return/post"] for r in rows[-10:]])),
        "curve": curve.to_dict(),
        "inner_lr": learned_rates(trained),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_1min_at_end": os.getloadavg()[0]},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{prefix}_{agent}_s{seed}.json").write_text(json.dumps(doc, indent=1))
    print(f"{agent} seed {seed}: train {wall:.0f} s wall ({cpu:.0f} s cpu), "
          f"held-out returns by step {[round(m, 2) for m in curve.mean]}", flush=True)
    return doc


def learned_rates(agent) -> dict | None:
    """Meta-SGD's learned step sizes after training, per parameter tensor (None for MAML)."""
    if not getattr(agent, "learn_lr", False):
        return None
    return {name: {"min": float(a.min()), "mean": float(a.mean()), "max": float(a.max())}
            for name, a in ((k, v.detach()) for k, v in agent.lrs.items())}


def random_init(steps: int, eval_tasks: int, eval_episodes: int, runs_dir: Path,
                overrides: dict, tag: str) -> dict:
    """The same curve for an untrained (randomly initialized) MAML policy (its inner steps
    depend on the overrides too, e.g. GAE λ)."""
    prefix = result_prefix(tag)
    out = runs_dir / f"{prefix}_random"
    if out.exists():
        shutil.rmtree(out)
    run = create_run("maml", preset="maml_pointnav", out=out, overrides={
        **overrides, "num_iterations": 0, "num_test_tasks": eval_tasks})
    agent = run.make_agent(seed=1_000_003)
    result = agent.evaluate_adaptation(run.test_tasks, steps, eval_episodes, seed=10_000)
    agent.close()
    doc = {"agent": "random init", "curve": summarize(result, "random init").to_dict()}
    (RESULTS / f"{prefix}_random.json").write_text(json.dumps(doc, indent=1))
    return doc


def pooled_curve(docs: list[dict], label: str) -> Curve:
    """Mean over seeds; the 95% CI pools tasks x seeds (per-task returns of every run)."""
    curves = [Curve.from_dict(d["curve"]) for d in docs]
    per_task = [np.concatenate([np.asarray(c.per_task[k]) for c in curves])
                for k in range(len(curves[0].budgets))]
    stats = [mean_ci95(x) for x in per_task]
    # success per task is not kept per run, so its pooled mean only (every seed has as many tasks)
    success = ([float(np.mean([c.success_mean[k] for c in curves])) for k in range(len(per_task))]
               if all(c.success_mean for c in curves) else None)
    return Curve(label=f"{label} ({len(docs)} seed{'s' if len(docs) > 1 else ''})",
                 budgets=curves[0].budgets, episodes=curves[0].episodes,
                 mean=[m for m, _ in stats], ci95=[c for _, c in stats],
                 n_tasks=len(per_task[0]), budget_unit=curves[0].budget_unit,
                 success_mean=success)


def paired_difference(runs: list[dict], step: int, agent: str = "metasgd") -> dict:
    """``agent`` minus MAML after ``step`` inner steps, task by task within each seed (both
    agents of a seed are evaluated on the same tasks with the same seed), pooled over seeds."""
    by_seed = {(d["agent"], d["seed"]): np.asarray(d["curve"]["per_task"][step]) for d in runs}
    seeds = sorted(s for a, s in by_seed if a == "maml" and (agent, s) in by_seed)
    diffs = np.concatenate([by_seed[agent, s] - by_seed["maml", s] for s in seeds])
    mean, ci = mean_ci95(diffs)
    return {"seeds": seeds, "mean": mean, "ci95": ci, "n_tasks_x_seeds": int(diffs.size)}


def minus_preset(runs: list[dict], preset_runs: list[dict], agent: str, step: int) -> dict | None:
    """A variant's ``agent`` minus the preset's (no tag) same agent after ``step`` steps, task
    by task within each seed (the same tasks and evaluation seed), pooled over seeds."""
    theirs = {d["seed"]: np.asarray(d["curve"]["per_task"][step]) for d in preset_runs
              if d["agent"] == agent}
    mine = {d["seed"]: np.asarray(d["curve"]["per_task"][step]) for d in runs
            if d["agent"] == agent and d["seed"] in theirs}
    if not mine:
        return None
    diffs = np.concatenate([mine[s] - theirs[s] for s in sorted(mine)])
    mean, ci = mean_ci95(diffs)
    return {"seeds": sorted(mine), "mean": mean, "ci95": ci, "n_tasks_x_seeds": int(diffs.size)}


def run_results(tag: str, agents: tuple[str, ...] = AGENTS) -> list[dict]:
    """The per-run result files of a tag, agent by agent, seed by seed."""
    return [json.loads(p.read_text()) for agent in agents
            for p in sorted(RESULTS.glob(f"{result_prefix(tag)}_{agent}_s*.json"))]


def summarize_results(tag: str = "") -> dict:
    prefix = result_prefix(tag)
    runs = run_results(tag)
    summary: dict = {"setting": "MAML paper 2D navigation: meta-batch 20, 20 episodes/task, H=100, "
                                "inner lr 0.1, TRPO max KL 0.01, 64x64 tanh; GAE lambda per agent below",
                     "tag": tag, "overrides": runs[0].get("overrides", {}) if runs else {},
                     "targets": {"return_after_1_step_min": TARGET_RETURN_1STEP,
                                 "train_wall_clock_s_max": TARGET_WALL_S},
                     "agents": {}}
    curves = []
    for agent in AGENTS:
        docs = [d for d in runs if d["agent"] == agent]
        if not docs:
            continue
        curve = pooled_curve(docs, agent)
        curves.append(curve)
        walls = [d["train_wall_clock_s"] for d in docs]
        summary["agents"][agent] = {
            "seeds": [d["seed"] for d in docs],
            "iterations": docs[0]["iterations"], "gae_lambda": docs[0].get("gae_lambda"),
            "return_by_step_mean": curve.mean, "return_by_step_ci95": curve.ci95,
            "return_by_step_per_seed": {str(d["seed"]): d["curve"]["mean"] for d in docs},
            "n_tasks_x_seeds": curve.n_tasks,
            "train_wall_clock_s": walls, "train_cpu_s": [d["train_cpu_s"] for d in docs],
            "time_sample_s": [d["time_sample_s"] for d in docs],
            "time_update_s": [d["time_update_s"] for d in docs],
            "env_steps": [d["env_steps"] for d in docs],
            "load_avg_1min_at_end": [d["machine"]["load_avg_1min_at_end"] for d in docs],
            "meets_return_target": bool(curve.mean[1] >= TARGET_RETURN_1STEP),
            "meets_wall_clock_target": bool(max(walls) <= TARGET_WALL_S),
        }
    rnd = RESULTS / f"{prefix}_random.json"
    if rnd.is_file():
        c = Curve.from_dict(json.loads(rnd.read_text())["curve"])
        curves.append(c)
        summary["random_init"] = {"return_by_step_mean": c.mean, "return_by_step_ci95": c.ci95}
    if "maml" in summary["agents"] and "metasgd" in summary["agents"]:
        summary["metasgd_1step_ge_maml"] = bool(
            summary["agents"]["metasgd"]["return_by_step_mean"][1]
            >= summary["agents"]["maml"]["return_by_step_mean"][1])
    for agent in AGENTS[1:]:
        if agent not in summary["agents"]:
            continue
        if "maml" in summary["agents"]:
            summary[f"{agent}_minus_maml_1step"] = paired_difference(runs, 1, agent)
            summary[f"{agent}_minus_maml_by_step"] = {
                str(k): paired_difference(runs, k, agent)
                for k in range(1, len(summary["agents"][agent]["return_by_step_mean"]))}
        elif tag:
            # An ablation of another agent (e.g. --set log_inner_lr=false): pair it with
            # the preset's MAML runs, which such an override does not change.
            preset_maml = run_results("", agents=("maml",))
            if preset_maml:
                summary[f"{agent}_minus_maml_1step"] = {
                    **paired_difference(runs + preset_maml, 1, agent),
                    "maml_runs": "the preset's (no tag)"}
                summary[f"{agent}_minus_maml_by_step"] = {
                    str(k): {**paired_difference(runs + preset_maml, k, agent),
                             "maml_runs": "the preset's (no tag)"}
                    for k in range(1, len(summary["agents"][agent]["return_by_step_mean"]))}
    if tag:  # a variant: each agent against the preset's runs of the same agent
        preset_runs = run_results("")
        for agent in summary["agents"]:
            steps = range(1, len(summary["agents"][agent]["return_by_step_mean"]))
            by_step = {str(k): minus_preset(runs, preset_runs, agent, k) for k in steps}
            if all(by_step.values()):
                summary[f"{agent}_minus_preset_by_step"] = by_step
    (RESULTS / f"{prefix}.json").write_text(json.dumps(summary, indent=1))
    if curves:
        plot_curves(curves, RESULTS / f"{prefix}.png",
                    title=tagged_title("PointNav2D, held-out tasks (70 meta-iterations)", tag))
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", nargs="*", default=list(AGENTS), choices=AGENTS,
                    help="agents to train (none: only the random-init curve)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--iterations", type=int, default=70)
    # 400 held-out tasks per seed: with 100 the mean after one step moved by up to 0.8
    # between task sets, as much as the differences this benchmark is asked about.
    ap.add_argument("--eval-tasks", type=int, default=400)
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--runs-dir", default="runs/bench")
    ap.add_argument("--no-random", action="store_true", help="skip the random-init curve")
    ap.add_argument("--summarize", action="store_true", help="only merge existing results")
    ap.add_argument("--progress", action="store_true")
    add_variant_arguments(ap, scope=" in every run", files="the result files",
                          example="gae_lambda=1.0")
    args = ap.parse_args(argv)
    overrides, tag = variant_options(ap, args)
    if not args.summarize:
        runs_dir = Path(args.runs_dir)
        for seed in args.seeds:
            for agent in args.agents:
                run_one(agent, seed, args.iterations, args.eval_tasks, args.eval_episodes,
                        args.steps, runs_dir, args.progress, overrides, tag)
                summarize_results(tag)
        if not args.no_random:
            random_init(args.steps, args.eval_tasks, args.eval_episodes, runs_dir, overrides,
                        tag)
    print(json.dumps(summarize_results(tag), indent=1))


if __name__ == "__main__":
    main()
