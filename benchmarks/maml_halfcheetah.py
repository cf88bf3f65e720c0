"""MAML (or Meta-SGD) on HalfCheetahDir / HalfCheetahVel: held-out adaptation curve.

Preset: configs/<agent>_halfcheetahdir.yaml or _halfcheetahvel.yaml (pytorch-maml-rl
settings: 40 tasks x 20 episodes x horizon 100 per meta-batch, 64x64 tanh, inner lr 0.1,
TRPO max KL 0.01, 500 meta-iterations). On a shared 2-core machine that budget takes
hours, so the script trains under a wall-clock budget (``--time-budget-s``) in chunks,
continuing the run from its checkpoint (the resume path), and records how far it got;
``--resume`` continues the run folder of an earlier invocation.
Evaluation: the run's held-out test tasks, 0..K inner steps, mean and 95% CI over tasks.

    python benchmarks/maml_halfcheetah.py --family metarl/HalfCheetahDir-v0 \\
        --set meta_batch_size=20 --time-budget-s 2400

Writes ``benchmarks/results/<agent>_<family>.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from metarl.config import parse_overrides
from metarl.evaluation import evaluate_run, mean_ci95
from metarl.runs import create_run, open_run, read_metrics, train_run

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default="maml")
    ap.add_argument("--family", default="metarl/HalfCheetahDir-v0")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--time-budget-s", type=float, default=3600.0,
                    help="stop training after this much wall-clock (checked between chunks)")
    ap.add_argument("--chunk", type=int, default=5, help="iterations between budget checks")
    ap.add_argument("--eval-steps", type=int, default=3)
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("--runs-dir", default="runs/bench")
    ap.add_argument("--resume", action="store_true",
                    help="continue the run folder of an earlier invocation instead of restarting")
    args = ap.parse_args()

    short = args.family.split("/")[-1].split("-v")[0].lower()
    out = Path(args.runs_dir) / f"{args.agent}_{short}"
    overrides = {"checkpoint_every": 1, **parse_overrides(args.overrides)}
    resuming = args.resume and (out / "checkpoint.pt").is_file()
    if resuming:
        run = open_run(out)  # the run's own config: --set is ignored when resuming
    else:
        if out.exists():
            shutil.rmtree(out)
        run = create_run(args.agent, preset=f"{args.agent}_{short}", out=out, overrides=overrides)
    t0 = time.perf_counter()
    first = not resuming
    while True:
        train_run(run if first else open_run(out), resume=not first, progress=False,
                  stop_after=args.chunk)
        first = False
        rows = read_metrics(out)
        done = len(rows)
        last = rows[-1]
        print(f"{done} iterations, {time.perf_counter() - t0:.0f} s: pre {last['return/pre']:.1f}"
              f" post {last['return/post']:.1f}", flush=True)
        if done >= run.config.num_iterations or time.perf_counter() - t0 > args.time_budget_s:
            break
    wall = time.perf_counter() - t0
    # Training time over all invocations, from the run's own per-iteration timers.
    train_s = float(sum(r["time/sample_s"] + r["time/update_s"] for r in rows))
    result = evaluate_run(out, budget=args.eval_steps, episodes=args.eval_episodes)
    curves = result["curves"]
    trained = curves[0]
    doc = {
        "agent": args.agent, "family": args.family, "overrides": overrides,
        "preset": f"configs/{args.agent}_{short}.yaml", "iterations_done": done,
        "iterations_planned": run.config.num_iterations, "train_s_all_invocations": train_s,
        "wall_clock_this_invocation_s": wall, "resumed": resuming,
        "env_steps": sum(r["env_steps"] for r in rows),
        "return_by_step_mean": trained.mean, "return_by_step_ci95": trained.ci95,
        "n_tasks": trained.n_tasks,
        "gain_1_step": trained.mean[1] - trained.mean[0],
        "random_init_by_step_mean": curves[1].mean if len(curves) > 1 else None,
        "curves": [c.to_dict() for c in curves], "cpus": os.cpu_count(),
    }
    # The 1-step gain with a 95% CI over tasks (paired: same tasks before and after).
    diffs = np.asarray(trained.per_task[1]) - np.asarray(trained.per_task[0])
    m, h = mean_ci95(diffs)
    doc["gain_1_step_ci95"] = [m - h, m + h]
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{args.agent}_{short}"
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    shutil.copy(result["paths"]["png"], stem.with_suffix(".png"))
    print(json.dumps({k: v for k, v in doc.items() if k != "curves"}, indent=1))


if __name__ == "__main__":
    main()
