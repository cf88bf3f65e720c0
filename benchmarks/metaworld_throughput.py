"""Meta-World sampling throughput on ML10: metarl's sampler vs Meta-World's own vector envs.

Closed loop with a 64x64 tanh MLP Gaussian policy (torch, one batched call per env step,
one torch thread), N sub-envs each on one ML10 train task (N / 10 per train class on both
sides), ``--steps`` env steps each, in one run:

(a) ``gymnasium.make_vec("Meta-World/ML10-train", vector_strategy="sync",
    meta_batch_size=N)``: Meta-World's vector env, every sub-env in this process;
(b) the same with ``vector_strategy="async"``: one process per sub-env;
(c) metarl's sampling of ``metarl/MetaWorld-ML10-v3``, full episodes of ``--steps``: in this
    process, and on one Ray actor per core (whole rollouts per call, the ``--workers`` path
    the Meta-World presets use).

Both sides use reward version v2, the same policy and N; start-up (processes, models) is
excluded. Needs the ``[metaworld]`` venv. Writes ``benchmarks/results/metaworld_throughput.json``::

    .venv-metaworld/bin/python benchmarks/metaworld_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import metaworld  # noqa: F401 - registers the Meta-World/... ids
import mujoco
import numpy as np
import torch
from sampler_throughput import MLPPolicy, write_result

import metarl
from metarl.distributed import make_sampler
from metarl.mujoco_engine import default_num_threads

RESULTS = Path(__file__).resolve().parent / "results" / "metaworld_throughput.json"


def metaworld_vec(strategy: str, n: int, steps: int, policy: MLPPolicy) -> float:
    """Env-steps/s of Meta-World's ML10-train vector env, closed loop (autoreset steps
    are not counted)."""
    envs = gym.make_vec("Meta-World/ML10-train", vector_strategy=strategy, meta_batch_size=n,
                        seed=0)
    envs.call("sample_tasks")  # Meta-World's vector envs fail reset() before a task is drawn
    obs, _ = envs.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    autoreset = np.zeros(n, dtype=bool)
    done_steps = 0
    start = time.perf_counter()
    for _ in range(steps):
        action, _ = policy.act(torch.as_tensor(obs, dtype=torch.float32), gen)
        obs, _, term, trunc, _ = envs.step(np.clip(action.numpy(), -1, 1))
        done_steps += int((~autoreset).sum())
        autoreset = term | trunc
    elapsed = time.perf_counter() - start
    envs.close()
    return done_steps / elapsed


def ours(n: int, steps: int, policy: MLPPolicy, how: str) -> float:
    """Env-steps/s of metarl's sampling on ``metarl/MetaWorld-ML10-v3``: ``"in-process"``
    (every sub-env in this process) or ``"ray"`` (whole rollouts on one Ray actor per core,
    the policy shipped with ``ray.put``: ``--workers``)."""
    family = metarl.make_family("metarl/MetaWorld-ML10-v3")
    # The task mix of Meta-World's ML10-train vector env: n / 10 tasks of each train class
    # (classes differ up to 3x in step cost).
    tasks = list(family.split(n, 5, seed=0).train)
    sampler = make_sampler(family, workers=default_num_threads() if how == "ray" else 0)
    sampler.sample(tasks, policy, episodes_per_task=1, horizon=2, seed=1)  # start the workers
    start = time.perf_counter()
    batch = sampler.sample(tasks, policy, episodes_per_task=1, horizon=steps, seed=0)
    elapsed = time.perf_counter() - start
    sampler.close()
    return batch.num_steps / elapsed


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (100 steps)")
    parser.add_argument("--num-envs", type=int, default=20,
                        help="sub-envs (Meta-World's default meta_batch_size, 20)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    steps = 100 if args.quick else 500
    policy = MLPPolicy(39, 4)
    result: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "workers": default_num_threads(),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "metaworld": importlib.metadata.version("metaworld"),
                    "mujoco": mujoco.__version__, "gymnasium": gym.__version__,
                    "torch": torch.__version__, "loadavg_before": list(os.getloadavg())},
        "settings": {"num_envs": args.num_envs, "steps_per_env": steps, "quick": args.quick,
                     "benchmark": "ML10 train tasks", "reward_function_version": "v2",
                     "policy": "MLP 64x64 tanh, Gaussian, torch, 1 thread"},
    }
    sync = metaworld_vec("sync", args.num_envs, steps, policy)
    async_ = metaworld_vec("async", args.num_envs, steps, policy)
    rates = {"metaworld_sync": sync, "metaworld_async": async_}
    for how in ("in-process", "ray"):
        rates[f"metarl_{how}"] = ours(args.num_envs, steps, policy, how)
    result["env_steps_per_s"] = {k: round(v) for k, v in rates.items()}
    result["over_metaworld_sync"] = {k: round(v / sync, 2) for k, v in rates.items()}
    best = max((k for k in rates if k.startswith("metarl")), key=rates.get)
    result["best_metarl"] = best
    result["target_1.5x_sync_met"] = rates[best] / sync >= 1.5
    result["machine"]["loadavg_after"] = list(os.getloadavg())
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
