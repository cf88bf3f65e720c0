"""RL² on PointNav2D with 2-episode trials: does the second episode beat the first?

    python benchmarks/rl2_pointnav.py            # load the checkpoint (or --train), evaluate

Trains (or loads) the agent of preset ``configs/rl2_pointnav.yaml`` on the run's train
task pool, then runs trials of 2 episodes on the held-out goals (the test half of
``family.split(num_train_tasks, num_test_tasks, split_seed)``), several trials per goal.
Reports the return in episode 1 and 2 with 95% CIs over goals, and the paired
difference episode 2 − episode 1 with its 95% CI (a t-interval over goals): the memory
works when that interval excludes 0. Writes ``benchmarks/results/rl2_pointnav.json``, the
adaptation curve through the shared evaluator (``rl2_pointnav_adaptation.png``, same axes
as the gradient-based agents' curves) and the learning curve.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl2_common import (  # noqa: E402
    RESULTS,
    ci,
    load_preset_config,
    plot_learning_curve,
    train_or_load,
    write_json,
)

from metarl.evaluation import summarize, write_curves  # noqa: E402
from metarl.plotting import plot_curves  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", action="store_true", help="train (or continue) if needed")
    parser.add_argument("--trials-per-goal", type=int, default=None,
                        help="trials per held-out goal (default: the preset's eval_episodes)")
    parser.add_argument("--seed", type=int, default=2024, help="evaluation seed")
    args = parser.parse_args(argv)

    cfg, source, family = load_preset_config("rl2_pointnav")
    split = family.split(cfg.num_train_tasks, cfg.num_test_tasks, seed=cfg.split_seed)
    test = list(split.test)
    trained, evals = train_or_load("pointnav", "rl2_pointnav", {}, args.train,
                                   eval_tasks=test[:100],
                                   eval_every=max(cfg.num_iterations // 15, 1))
    agent = trained.agent
    per_goal = int(args.trials_per_goal or cfg.eval_episodes)
    t0 = time.perf_counter()
    result = agent.evaluate_adaptation(test, budget=cfg.episodes_per_trial, episodes=per_goal,
                                       seed=args.seed)
    wall = time.perf_counter() - t0
    untrained = type(agent)(cfg.__class__(**{**vars(cfg), "seed": cfg.seed + 1_000_003}),
                            family, list(split.train))
    base = untrained.evaluate_adaptation(test, budget=cfg.episodes_per_trial, episodes=per_goal,
                                         seed=args.seed)
    agent.close()
    untrained.close()

    ret = result.returns  # (K, goals), mean over trials per goal
    diff = ret[1] - ret[0]
    stats = {f"episode_{k + 1}": ci(ret[k]) for k in range(len(ret))}
    stats["episode_2_minus_1"] = ci(diff)
    d = stats["episode_2_minus_1"]
    lo, hi = d["mean"] - d["ci95"], d["mean"] + d["ci95"]
    excludes_zero = bool(lo > 0)
    print(f"RL² on {family.id}, {len(test)} held-out goals x {per_goal} trials of "
          f"{cfg.episodes_per_trial} episodes (iteration {trained.iteration}, "
          f"{trained.env_steps:.3g} env steps)")
    for k in range(len(ret)):
        s = stats[f"episode_{k + 1}"]
        print(f"  episode {k + 1}: return {s['mean']:.2f} ± {s['ci95']:.2f}")
    print(f"  episode 2 - episode 1: {d['mean']:.2f}, 95% CI [{lo:.2f}, {hi:.2f}] -> "
          f"{'excludes 0: episode 2 is better' if excludes_zero else 'does NOT exclude 0'}")

    curves = [summarize(result, f"RL² (iteration {trained.iteration})"),
              summarize(base, "RL², random init")]
    write_curves(curves, RESULTS, stem="rl2_pointnav_adaptation",
                 extra={"family": family.id, "num_tasks": len(test), "trials_per_goal": per_goal})
    plot_curves(curves, RESULTS / "rl2_pointnav_adaptation.png",
                title="RL² on PointNav2D (2-episode trials): held-out goals")
    plot_learning_curve("RL² on PointNav2D, 2-episode trials", trained.history, evals,
                        {}, RESULTS / "rl2_pointnav_curve.png",
                        ylabel="return per trial (2 episodes)")
    write_json(RESULTS / "rl2_pointnav.json", {
        "benchmark": "rl2_pointnav", "family": family.id, "source": source,
        "config": dict(vars(cfg)), "iterations": trained.iteration,
        "env_steps": trained.env_steps, "train_wall_s": trained.train_wall_s,
        "eval_wall_s": wall, "held_out_goals": len(test), "trials_per_goal": per_goal,
        **stats, "diff_ci95_low": lo, "diff_ci95_high": hi, "ci_excludes_zero": excludes_zero,
        "random_init": {f"episode_{k + 1}": ci(base.returns[k]) for k in range(len(ret))},
        "success_rate": None if result.success is None else result.success.mean(1).tolist(),
        "held_out_evals": evals,
        "figures": ["rl2_pointnav_adaptation.png", "rl2_pointnav_curve.png"],
    })
    print(f"wrote {RESULTS / 'rl2_pointnav.json'}")
    return 0 if excludes_zero else 1


if __name__ == "__main__":
    raise SystemExit(main())
