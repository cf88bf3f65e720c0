"""Sampling a vectorized family: its array engine against the generic engine, one run.

MAML's paper setting on PointNav2D (20 tasks x 20 episodes, horizon 100: 40,000 env steps
per batch; configs/maml_pointnav.yaml), sampled with the policy MAML samples with (64x64
tanh Gaussian MLP, ``metarl.policies.rollout_policy``, one batched call per step), through
:class:`metarl.rollout.Sampler` with ``engine="generic"`` (one Python ``env.step`` per
sub-env per step: the path every family had before the vectorized contract) and
``engine="fast"`` (the family's :class:`~metarl.table_engine.ArrayBatchEngine`: one numpy
step for all sub-envs). Both give the same batch (checked). Also the policy calls alone
(no env), the floor of any engine. Median of ``--repeats`` batches each; also for
SparsePointNav, and Bandit / TabularMDP with RL²'s batch shapes. Writes
``benchmarks/results/vector_family_sampling.json``::

    python benchmarks/vector_family_sampling.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import metarl
from metarl.policies import make_policy, rollout_policy
from metarl.rollout import Sampler, StepContext

RESULTS = Path(__file__).resolve().parent / "results"
#: (family id, kwargs, tasks, episodes per task): MAML's PointNav batch; RL²'s batches of
#: its bandit (rl2_bandit_k5_n10: 256 trials) and tabular (rl2_tabular_n10: 10 episodes) presets.
SETUPS = [("metarl/PointNav2D-v0", {}, 20, 20), ("metarl/SparsePointNav-v0", {}, 20, 20),
          ("metarl/Bandit-v0", {"arms": 5, "pulls": 10}, 256, 1),
          ("metarl/TabularMDP-v0", {}, 64, 10)]


def timed(fn: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def measure(family_id: str, kwargs: dict[str, Any], n_tasks: int, per_task: int,
            repeats: int) -> dict[str, Any]:
    """Seconds per batch on both engines and for the policy alone."""
    family = metarl.make_family(family_id, **kwargs)
    env = family.make_env()
    torch.manual_seed(0)
    policy = rollout_policy(make_policy(env.observation_space, env.action_space, [64, 64]))
    tasks = family.sample_tasks(n_tasks, rng=0)
    seconds, batches = {}, {}
    for kind in ("generic", "fast"):
        sampler = Sampler(family, engine=kind)
        seconds[kind], batches[kind] = timed(lambda s=sampler: s.sample(
            tasks, policy, episodes_per_task=per_task, seed=3), repeats)
    same = all(torch.equal(getattr(batches["generic"], f), getattr(batches["fast"], f))
               for f in ("obs", "actions", "rewards", "mask"))
    steps = int(batches["fast"].num_steps)
    n = n_tasks * per_task
    obs = torch.zeros(n, *env.observation_space.shape)
    ctx = StepContext(t=0, task_index=torch.arange(n_tasks).repeat_interleave(per_task),
                      prev_action=torch.zeros(n), prev_reward=torch.zeros(n),
                      episode_start=torch.ones(n, dtype=torch.bool), trial_start=True,
                      active=torch.ones(n, dtype=torch.bool),
                      generator=torch.Generator().manual_seed(0))
    rows = batches["fast"].obs.shape[0]
    seconds["policy_only"], _ = timed(lambda: [policy(obs, ctx) for _ in range(rows)], repeats)
    return {"kwargs": kwargs, "tasks": n_tasks, "episodes_per_task": per_task, "env_steps": steps,
            "seconds": seconds, "env_steps_per_s": {k: steps / v for k, v in seconds.items()},
            "same_batch": same, "speedup_fast_vs_generic": seconds["generic"] / seconds["fast"]}


def main() -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                           "load_avg_1min": os.getloadavg()[0]},
                               "repeats": args.repeats, "setups": {}}
    for family_id, kwargs, n_tasks, per_task in SETUPS:
        r = measure(family_id, kwargs, n_tasks, per_task, args.repeats)
        results["setups"][family_id] = r
        sec = r["seconds"]
        print(f"{family_id}: generic {sec['generic']:.3f} s, fast {sec['fast']:.3f} s "
              f"({r['speedup_fast_vs_generic']:.1f}x), policy alone {sec['policy_only']:.3f} s; "
              f"same batch: {r['same_batch']}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vector_family_sampling.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
