"""Scaling: local engine vs Ray sampling, and where a meta-iteration's time goes.

    python benchmarks/scaling.py            # full: 40 tasks x 20 episodes x H=100
    python benchmarks/scaling.py --quick    # smaller batch, fewer repeats

Part 1 measures env-steps/s of the same task batch (HalfCheetahVel, closed loop with a
64x64 tanh Gaussian MLP) sampled by the local engine (all cores, threads in C) and by Ray
with 1 and 2 actors (one core each; more where more cores exist). Actor start-up is
excluded (one warm-up call each); every figure is the best of ``--repeats`` calls.

Part 2 runs MAML meta-iterations with each sampler and splits the time per iteration into
sampling, inner loop, outer update and transfers, as the agent measures them.

Writes benchmarks/results/scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

import metarl
from metarl.distributed import RaySampler
from metarl.policies import make_policy, rollout_policy
from metarl.rollout import Sampler

RESULTS = Path(__file__).resolve().parent / "results"


def _steps_per_second(sampler, tasks, policy, episodes: int, repeats: int) -> float:
    sampler.sample(tasks, policy, episodes_per_task=episodes, seed=0)  # warm-up (actors, caches)
    best = 0.0
    for r in range(repeats):
        t0 = time.perf_counter()
        batch = sampler.sample(tasks, policy, episodes_per_task=episodes, seed=r + 1)
        best = max(best, batch.num_steps / (time.perf_counter() - t0))
    return best


def sampling_throughput(family_id: str, n_tasks: int, episodes: int, repeats: int,
                        actor_counts: list[int]) -> dict:
    family = metarl.make_family(family_id)
    env = family.make_env()
    torch.manual_seed(0)
    module = make_policy(env.observation_space, env.action_space, (64, 64))
    policy = rollout_policy(module)
    tasks = family.sample_tasks(n_tasks, 0)
    out: dict = {"family": family_id, "tasks": n_tasks, "episodes_per_task": episodes,
                 "horizon": family.horizon}
    local = Sampler(family)
    out["local_steps_per_s"] = _steps_per_second(local, tasks, policy, episodes, repeats)
    local.close()
    for n in actor_counts:
        sampler = RaySampler(family, workers=n)
        out[f"ray_{n}_steps_per_s"] = _steps_per_second(sampler, tasks, policy, episodes, repeats)
        sampler.close()
        out[f"ray_{n}_over_local"] = out[f"ray_{n}_steps_per_s"] / out["local_steps_per_s"]
    return out


def iteration_phases(family_id: str, workers: int, iterations: int, quick: bool) -> dict:
    """Mean seconds per MAML meta-iteration in each phase, with ``workers`` Ray actors (0 = local)."""
    from metarl.agents.maml import MAMLAgent, MAMLConfig
    from metarl.config import make_config

    cfg = make_config(MAMLConfig, {"family": family_id, "seed": 0, "workers": workers,
                                   "meta_batch_size": 10 if quick else 40,
                                   "episodes_per_task": 10 if quick else 20})
    family = metarl.make_family(cfg.family)
    split = family.split(cfg.num_train_tasks, cfg.num_test_tasks, cfg.split_seed)
    agent = MAMLAgent(cfg, family, split.train)
    sums: dict[str, float] = {}
    try:
        agent.train_iteration(0)  # warm-up: actor start, engine caches
        for it in range(1, iterations + 1):
            t0 = time.perf_counter()
            metrics = agent.train_iteration(it)
            sums["time/iteration_s"] = sums.get("time/iteration_s", 0.0) + time.perf_counter() - t0
            for key, value in metrics.items():
                if key.startswith("time/phase_") or key in ("time/sample_s", "time/update_s"):
                    sums[key] = sums.get(key, 0.0) + float(value)
    finally:
        agent.close()
    return {k: v / iterations for k, v in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batch, one repeat")
    parser.add_argument("--family", default="metarl/HalfCheetahVel-v0")
    parser.add_argument("--skip-phases", action="store_true", help="only part 1")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    actor_counts = sorted({1, 2, cores} if cores > 2 else {1, 2})
    n_tasks, episodes, repeats = (8, 5, 1) if args.quick else (40, 20, 3)
    result = {
        "machine": {"cores": cores, "platform": platform.platform(), "torch": torch.__version__},
        "sampling": sampling_throughput(args.family, n_tasks, episodes, repeats, actor_counts),
    }
    print(json.dumps(result["sampling"], indent=1))
    if not args.skip_phases:
        iters = 2 if args.quick else 3
        result["phases"] = {f"workers_{w}": iteration_phases(args.family, w, iters, args.quick)
                            for w in (0, 2)}
        print(json.dumps(result["phases"], indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "scaling_quick.json" if args.quick else "scaling.json"
    (RESULTS / name).write_text(json.dumps(result, indent=1))
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
