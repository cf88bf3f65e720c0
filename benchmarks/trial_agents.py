"""VariBAD against RL² on the same tasks and trials: the return in each episode of a trial
on held-out tasks, several training seeds.

The setups are preset pairs ``configs/{varibad,rl2}_<setup>.yaml`` on the same family, task
split and trials (episodes per trial), trained for the same budget (VariBAD's claim,
Zintgraf et al. 2020: a better first episode than RL²). ``sparse_pointnav``: the two share
the PPO settings too, so they differ only in their architecture; ``halfcheetah_vel``: each
keeps its own preset's PPO settings (varibad's code's for VariBAD, ours for RL²), and both
train 200 iterations x 64 trials (2.6M env steps); ``halfcheetah_vel_full`` is the same pair
at the presets' 2000 iterations (25.6M env steps: hours per run, trained in ``--stop-after``
chunks across sessions); ``halfcheetah_vel_rl2ppo`` is ``halfcheetah_vel`` with VariBAD
given RL²'s PPO settings (learning rate, its annealing, γ, GAE, clip, epochs, entropy), so
the two differ only in their architecture (RL²'s runs are ``halfcheetah_vel``'s). Each run is a run folder
``results/trial_runs/<agent>_<setup>_s<seed>``, resumed from its checkpoint when it exists
(``--stop-after N`` trains at most N iterations per run and invocation). Every run is
evaluated on the same held-out tasks (the split's test half) with the same evaluation seed:
``--trials`` trials per task. Pooled over seeds, per episode: mean ± 95% CI over tasks ×
seeds, and the paired difference VariBAD − RL² task by task.

    python benchmarks/trial_agents.py                         # both setups, seeds 0 1
    python benchmarks/trial_agents.py --seeds 0 --stop-after 5   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from metarl.evaluation import Curve, mean_ci95, summarize
from metarl.plotting import plot_curves
from metarl.runs import CHECKPOINT_FILE, create_run, open_run, read_metrics, train_run

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = RESULTS / "trial_runs"
AGENTS = ("varibad", "rl2")
#: setup -> overrides of both presets (the budget: the presets' own are long runs).
SETUPS: dict[str, dict[str, Any]] = {"sparse_pointnav": {}, "halfcheetah_vel": {"num_iterations": 200},
                                     "halfcheetah_vel_full": {},
                                     "halfcheetah_vel_rl2ppo": {"num_iterations": 200}}
#: overrides of one agent's preset in a setup: ``halfcheetah_vel_rl2ppo`` gives VariBAD
#: rl2_halfcheetah_vel's PPO settings, so that the two differ only in their architecture
AGENT_OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {
    ("varibad", "halfcheetah_vel_rl2ppo"): {
        "lr": 3e-4, "anneal_lr": True, "gamma": 0.99, "gae_lambda": 0.95, "clip_coef": 0.2,
        "update_epochs": 4, "num_minibatches": 4, "ent_coef": 0.0}}
#: a setup whose runs of an agent are another setup's (that agent's settings are the same)
SHARED_RUNS = {("rl2", "halfcheetah_vel_rl2ppo"): "halfcheetah_vel"}
#: a setup's preset pair, when its name is not the presets' (a budget variant)
PRESET_OF = {"halfcheetah_vel_full": "halfcheetah_vel", "halfcheetah_vel_rl2ppo": "halfcheetah_vel"}
EVAL_SEED = 20_000


def run_path(agent: str, setup: str, seed: int) -> Path:
    return RUNS / f"{agent}_{SHARED_RUNS.get((agent, setup), setup)}_s{seed}"


def train(agent: str, setup: str, seed: int, stop_after: int | None) -> Path:
    """Train (or continue) one run of the setup's preset pair."""
    path = run_path(agent, setup, seed)
    if (path / CHECKPOINT_FILE).is_file():
        run = open_run(path)
        print(f"[{path.name}] resuming", flush=True)
        train_run(run, resume=True, stop_after=stop_after, progress=False)
    else:
        if path.exists():  # a run stopped before its first checkpoint: start it again
            import shutil

            shutil.rmtree(path)
        run = create_run(agent, preset=f"{agent}_{PRESET_OF.get(setup, setup)}",
                         overrides={**SETUPS[setup], **AGENT_OVERRIDES.get((agent, setup), {}),
                                    "seed": seed}, out=path)
        print(f"[{path.name}] new run, {run.config.num_iterations} iterations", flush=True)
        train_run(run, stop_after=stop_after)
    return path


def evaluate(path: Path, trials: int) -> dict[str, Any]:
    run = open_run(path)
    agent, iteration = run.load_agent()
    t0 = time.perf_counter()
    result = agent.evaluate_adaptation(run.test_tasks, run.config.episodes_per_trial, trials,
                                       seed=EVAL_SEED)
    agent.close()
    rows = read_metrics(path)
    curve = summarize(result, f"{run.spec.name} seed {run.config.seed}")
    return {"run": path.name, "agent": run.spec.name, "seed": run.config.seed,
            "iterations": iteration + 1, "planned_iterations": run.config.num_iterations,
            "env_steps": float(sum(r["env_steps"] for r in rows)),
            "train_wall_s": float(sum(r["time_total"] for r in rows)),
            "eval_wall_s": time.perf_counter() - t0, "curve": curve.to_dict()}


def pooled(docs: list[dict[str, Any]], label: str) -> Curve:
    """Per episode, the tasks of every seed pooled (mean ± 95% CI over tasks × seeds)."""
    curves = [Curve.from_dict(d["curve"]) for d in docs]
    rows = range(len(curves[0].budgets))
    per_task = [np.concatenate([np.asarray(c.per_task[k]) for c in curves]) for k in rows]
    stats = [mean_ci95(x) for x in per_task]
    succ = None
    if all(c.success_mean for c in curves):
        succ = [float(np.mean([c.success_mean[k] for c in curves])) for k in rows]
    return Curve(label=f"{label} ({len(docs)} seeds, it. {docs[0]['iterations']})",
                 budgets=curves[0].budgets, episodes=curves[0].episodes,
                 mean=[m for m, _ in stats], ci95=[c for _, c in stats],
                 n_tasks=len(per_task[0]), budget_unit=curves[0].budget_unit,
                 success_mean=succ)


def paired(a: list[dict[str, Any]], b: list[dict[str, Any]], episode: int) -> dict[str, Any]:
    """``a − b`` in ``episode`` (0-based), task by task within each seed, pooled."""
    by_seed = {d["seed"]: np.asarray(d["curve"]["per_task"][episode]) for d in b}
    seeds = sorted(d["seed"] for d in a if d["seed"] in by_seed)
    diffs = np.concatenate([np.asarray(d["curve"]["per_task"][episode]) - by_seed[d["seed"]]
                            for d in a if d["seed"] in by_seed])
    mean, ci = mean_ci95(diffs)
    return {"seeds": seeds, "mean": mean, "ci95": ci, "n": int(diffs.size),
            "excludes_zero": bool(abs(mean) > ci)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--stop-after", type=int, default=None,
                    help="train at most this many iterations of each run now")
    ap.add_argument("--evaluate", action="store_true", help="only score the runs as they are")
    ap.add_argument("--trials", type=int, default=4, help="trials per held-out task")
    args = ap.parse_args()
    for setup in args.setups:
        if not args.evaluate:
            for seed in args.seeds:
                for agent in AGENTS:
                    train(agent, setup, seed, args.stop_after)
        docs = {a: [evaluate(run_path(a, setup, s), args.trials) for s in args.seeds
                    if (run_path(a, setup, s) / CHECKPOINT_FILE).is_file()] for a in AGENTS}
        curves = {a: pooled(d, a) for a, d in docs.items() if d}
        out: dict[str, Any] = {"setup": setup, "overrides": SETUPS[setup],
                               "agent_overrides": {a: AGENT_OVERRIDES.get((a, setup), {})
                                                   for a in AGENTS},
                               "presets": [f"configs/{a}_{PRESET_OF.get(setup, setup)}.yaml"
                                           for a in AGENTS],
                               "trials_per_task": args.trials,
                               "eval_seed": EVAL_SEED, "runs": docs,
                               "pooled": {a: c.to_dict() | {"per_task": []}
                                          for a, c in curves.items()}}
        if all(docs.values()):
            k = len(curves["varibad"].budgets)
            out["varibad_minus_rl2"] = {f"episode_{e + 1}": paired(docs["varibad"], docs["rl2"], e)
                                        for e in range(k)}
        (RESULTS / f"trial_agents_{setup}.json").write_text(json.dumps(out, indent=1))
        if curves:
            plot_curves(list(curves.values()), RESULTS / f"trial_agents_{setup}.png",
                        title=f"VariBAD vs RL² on {setup}: held-out tasks, return per episode")
        for a, c in curves.items():
            print(a, [f"{m:.2f} ± {h:.2f}" for m, h in zip(c.mean, c.ci95, strict=True)])
        print(json.dumps(out.get("varibad_minus_rl2"), indent=1))


if __name__ == "__main__":
    main()
