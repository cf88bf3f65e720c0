"""Is a gradient learner's adaptation specific to the task it adapted on?

A rise in return after the inner step proves little by itself: the step might improve the
policy for every task alike. This benchmark takes an inner-loop run (MAML, Meta-SGD,
CAVIA, Reptile), adapts it on each of N held-out tasks with ``--episodes`` episodes, and
rolls out every adapted policy twice: on its own task and on another held-out task (task
i's adaptation on task i + 1). Adaptation specific to the task shows as own > other,
paired on the task rolled out (task i + 1 adapted to itself, against adapted to task i);
the un-adapted policy is the reference for both.

    python benchmarks/adaptation_specificity.py \\
        benchmarks/results/compare_runs/halfcheetah_randparams/maml_s0 --tasks 40
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from metarl.evaluation import mean_ci95
from metarl.runs import apply_threads, open_run

SEED = 40_000


def specificity(run_dir: Path, num_tasks: int, episodes: int) -> dict:
    run = open_run(run_dir)
    apply_threads(run.config)
    agent, iteration = run.load_agent()
    if not hasattr(agent, "_adapt_and_sample"):
        raise SystemExit(f"{run_dir}: {run.spec.name} is not an inner-loop agent (MAML, "
                         "Meta-SGD, CAVIA, Reptile): it has no adapted parameters to swap")
    tasks = list(run.test_tasks[:num_tasks])
    if len(tasks) < 2:
        raise SystemExit("--tasks must be at least 2: each adaptation is also tried on another task")
    other = tasks[1:] + tasks[:1]  # task i's adapted policy on task i + 1
    raw, _, params = agent._adapt_and_sample(tasks, 1, episodes, [SEED, SEED + 1], last=False)

    def per_task(batch) -> np.ndarray:  # mean return of each task's episodes
        return batch.episode_returns()[0].view(len(tasks), episodes).mean(1).numpy()

    def returns(on: list, seed: int) -> np.ndarray:
        return per_task(agent._sample(on, params, per_task=True, seed=seed, episodes=episodes))

    before = per_task(raw[0])
    own, swapped = returns(tasks, SEED + 2), returns(other, SEED + 2)
    before_other = np.roll(before, -1)  # the un-adapted policy on the task tried
    agent.close()

    def stat(x: np.ndarray) -> dict:
        m, ci = mean_ci95(x)
        return {"mean": m, "ci95": ci}

    return {"run": str(run_dir), "agent": run.spec.name, "iteration": iteration + 1,
            "tasks": len(tasks), "episodes": episodes, "seed": SEED,
            "before": stat(before), "own_task": stat(own), "other_task": stat(swapped),
            "own_minus_before": stat(own - before),
            "other_minus_before": stat(swapped - before_other),
            # on the same task: adapted to it, against adapted to the task before it
            "own_minus_other": stat(np.roll(own, -1) - swapped)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="inner-loop run folders")
    ap.add_argument("--tasks", type=int, default=40, help="held-out tasks (the first N)")
    ap.add_argument("--episodes", type=int, default=20, help="episodes per adaptation")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: print only)")
    args = ap.parse_args()
    docs = [specificity(r, args.tasks, args.episodes) for r in args.runs]
    for d in docs:
        cells = ", ".join(f"{k} {d[k]['mean']:+.1f} ± {d[k]['ci95']:.1f}"
                          for k in ("before", "own_task", "other_task", "own_minus_other"))
        print(f"{d['run']}: {cells}")
    if args.out:
        args.out.write_text(json.dumps(docs, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
