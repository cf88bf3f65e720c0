"""RL² on random tabular MDPs vs classic baselines (RL² paper, Table 2).

    python benchmarks/rl2_tabular.py                  # load checkpoints, evaluate, print table
    python benchmarks/rl2_tabular.py --train n10      # train (or continue), then evaluate:
                                                      # about 3.5 h on one core
    python benchmarks/rl2_tabular.py --set seed=1 --tag seed1   # the second training seed

For each setup (n episodes of T = 10 steps per trial, |S| = 10, |A| = 5): the RL² agent of
preset ``configs/rl2_tabular_n{n}.yaml`` (trained on fresh MDPs drawn every iteration),
and random, PSRL and a myopic optimistic greedy learner (best mean reward seen in the
current state, untried actions valued at an optimism tuned on 1000 separate *training*
MDPs) on the same 1000 held-out MDPs (the test half of ``family.split(seed=split_seed)``).
Thompson sampling for an MDP *is* PSRL, so the bandits' Thompson column has no separate
entry here. Prints the table, writes ``benchmarks/results/rl2_tabular.json`` and one
learning-curve PNG per setup. A variant (``--set key=value`` on the preset, named by
``--tag``) has files of its own: ``rl2_tabular_<setup>_<tag>.pt``, its curve and
``rl2_tabular_<tag>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl2_common import (  # noqa: E402
    RESULTS,
    add_run_arguments,
    ci,
    evaluate_trials,
    final_label,
    fmt,
    load_preset_config,
    plot_learning_curve,
    report,
    rl2_cell,
    train_or_load,
)
from variants import tagged, tagged_title, variant_options  # noqa: E402

from metarl.agents.classic import mdp_params, run_tabular, tune_greedy_optimism  # noqa: E402

#: RL² paper Table 2 (random / best baseline / RL²), total reward per trial.
PAPER = {
    "n10": {"random": 100.1, "best_baseline": 150.2, "best_baseline_name": "BEB", "rl2": 156.2},
    "n25": {"random": 250.2, "best_baseline": 427.8, "best_baseline_name": "BEB", "rl2": 445.7},
}
TARGETS = {"n10": 150.0}


def run_setup(name: str, train: bool, instances: int, seed: int, partial: bool = False,
              overrides: dict | None = None, tag: str = "") -> dict:
    cfg, source, family = load_preset_config(f"rl2_tabular_{name}", overrides)
    n_eps, horizon = cfg.episodes_per_trial, family.horizon
    split = family.split(1000, instances, seed=cfg.split_seed)
    test = list(split.test)
    run_name = tagged(f"tabular_{name}", tag)
    trained, evals = train_or_load(run_name, f"rl2_tabular_{name}", overrides, train,
                                   eval_tasks=test[:200],
                                   eval_every=max(cfg.num_iterations // 20, 1),
                                   allow_partial=partial)
    t0 = time.perf_counter()
    per_episode = evaluate_trials(trained.agent, test, seed=seed)  # (n_eps, instances)
    t_rl2 = time.perf_counter() - t0
    trained.agent.close()
    rl2 = per_episode.sum(0)

    rng = np.random.default_rng(seed)
    trans, means = mdp_params(test)
    base_eps = {s: run_tabular(trans, means, n_eps, horizon, s, rng) for s in ("random", "psrl")}
    optimism = tune_greedy_optimism(*mdp_params(split.train), n_eps, horizon,
                                    np.random.default_rng(seed + 1))
    base_eps["greedy"] = run_tabular(trans, means, n_eps, horizon, "greedy", rng, optimism=optimism)
    base = {s: r.sum(1) for s, r in base_eps.items()}
    png = plot_learning_curve(
        tagged_title(f"RL² on tabular MDPs, n={n_eps} episodes per trial "
                     f"(held-out: {instances})", tag),
        trained.history, evals,
        {"PSRL (held-out)": float(base["psrl"].mean()),
         "greedy (held-out)": float(base["greedy"].mean()),
         f"{PAPER[name]['best_baseline_name']} (paper)": PAPER[name]["best_baseline"],
         "RL² paper": PAPER[name]["rl2"], "random": float(base["random"].mean())},
        RESULTS / f"rl2_{run_name}_curve.png",
        final=(final_label(trained, len(test)), float(rl2.mean())))
    return {
        "setup": name, "episodes_per_trial": n_eps, "horizon": horizon, "instances": len(test),
        "source": source, "config": dict(vars(cfg)), "overrides": dict(overrides or {}),
        "tag": tag,
        "iterations": trained.iteration, "planned_iterations": cfg.num_iterations,
        "finished": trained.iteration >= cfg.num_iterations, "env_steps": trained.env_steps,
        "train_wall_s": trained.train_wall_s,
        "eval_wall_s": t_rl2,
        "rl2": ci(rl2), **{k: ci(v) for k, v in base.items()},
        "rl2_per_episode": per_episode.mean(1).tolist(),
        "psrl_per_episode": base_eps["psrl"].mean(0).tolist(),
        "greedy_per_episode": base_eps["greedy"].mean(0).tolist(), "greedy_optimism": optimism,
        "paper": PAPER[name], "target": TARGETS.get(name),
        "meets_target": (None if name not in TARGETS else bool(rl2.mean() >= TARGETS[name])),
        "learning_curve_png": png.name, "held_out_evals": evals,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setups", nargs="+", default=["n10"], choices=sorted(PAPER))
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    overrides, tag = variant_options(parser, args)
    train = set(args.setups if args.train == [] else (args.train or []))
    results = [run_setup(s, s in train, args.instances, args.seed, args.partial, overrides, tag)
               for s in args.setups]
    out = RESULTS / f"{tagged('rl2_tabular', tag)}.json"
    header = ["setup", "random", "PSRL", "Thompson", "greedy (tuned optimism)", "RL² (ours)",
              "RL² (paper)", "best baseline (paper)"]

    def row(r: dict) -> list[str]:
        paper = r["paper"]
        return [f"n={r['episodes_per_trial']} episodes", fmt(r["random"]), fmt(r["psrl"]),
                "— (= PSRL)", f"{fmt(r['greedy'])} ({r['greedy_optimism']:g})", rl2_cell(r),
                f"{paper['rl2']:.1f}",
                f"{paper['best_baseline']:.1f} ({paper['best_baseline_name']})"]

    report(out, "rl2_tabular", results, header, row, "episodes_per_trial", "MDPs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
