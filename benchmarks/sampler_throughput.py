"""Sampler throughput: raw MuJoCo limit vs Gymnasium SyncVectorEnv vs metarl's engine.

For HalfCheetah (``HalfCheetahVel-v0``) and Ant (``AntVel-v0``), closed loop with a
64x64 tanh MLP Gaussian policy (torch, one batched call per env step), a task batch of
40 tasks x 20 episodes (N = 800 sub-envs), measured in one run:

(a) raw limit: a bare ``mj_step`` loop on one ``MjData`` of the same model (no Python
    env, no policy), physics steps/s per core / frame_skip x the cores the engine uses
    (measured before and after the engine, averaged). Also "raw_parallel_measured":
    that many bare loops run at once, the raw rate of the cores actually available,
    which is what a busy shared machine gives the engine too;
(b) ``gymnasium.vector.SyncVectorEnv`` over our single ``gymnasium.Env`` objects (what
    existing meta-RL libraries do), same policy, same N;
(c) metarl's engine through :class:`metarl.rollout.Sampler` (full episodes, with its
    (time x batch) tensor bookkeeping).

Also (d), "physics_only": ``engine.step`` alone (no policy), and, on the ``batch``
backend, a bare ``mujoco.batch.Batch`` step per env step for reference.

The engine runs on the backend the installed ``mujoco`` gives (``mujoco.batch`` on
MuJoCo 4, ``mj_step`` on a thread pool on 3.x, as in the ``[metaworld]`` extra's
environment), or on ``--backend``; the JSON records which. Prints env-steps/s and ratios
as JSON and writes ``benchmarks/results/sampler_throughput.json`` (the ``threads``
backend: ``sampler_throughput_threads_mujoco<VERSION>.json``). Run when the machine is
otherwise idle (``cat /proc/loadavg``); ``--quick`` for a short run::

    python benchmarks/sampler_throughput.py [--quick] [--backend threads]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch
from torch import nn

import metarl
from metarl.mujoco_backend import Batch, available_backends, default_backend
from metarl.mujoco_engine import MujocoFamily, default_num_threads
from metarl.rollout import Sampler, StepContext

RESULTS = Path(__file__).resolve().parent / "results" / "sampler_throughput.json"
FAMILIES = {"halfcheetah": "metarl/HalfCheetahVel-v0", "ant": "metarl/AntVel-v0"}


class MLPPolicy(nn.Module):
    """64x64 tanh MLP mean, state-independent log-std: the pytorch-maml-rl policy shape."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                                 nn.Linear(64, act_dim))
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    @torch.no_grad()
    def act(self, obs: torch.Tensor, generator: torch.Generator | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.net(obs)
        std = self.log_std.exp()
        noise = torch.randn(mean.shape, generator=generator)
        action = mean + std * noise
        logp = (-0.5 * noise.pow(2) - self.log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        return action, logp

    def __call__(self, obs: torch.Tensor, ctx: StepContext):  # the Sampler's Policy signature
        return self.act(obs, ctx.generator)


def raw_limit(family: MujocoFamily, physics_steps: int, horizon: int) -> tuple[float, float]:
    """(env-steps/s, env-steps per CPU-second) of one core: a bare mj_step loop, actions
    like the policy's (clipped N(0, 1)), episodes of ``horizon`` env steps restarted
    with mj_resetData."""
    m = family.base_model
    d = mujoco.MjData(m)
    fs = family.frame_skip
    env_steps = max(1, physics_steps // fs)
    actions = np.clip(np.random.default_rng(0).standard_normal((env_steps, m.nu)), -1, 1)
    start, cpu = time.perf_counter(), time.thread_time()
    for k in range(env_steps):
        if k % horizon == 0:
            mujoco.mj_resetData(m, d)
        d.ctrl[:] = actions[k]
        mujoco.mj_step(m, d, fs)
    return env_steps / (time.perf_counter() - start), env_steps / (time.thread_time() - cpu)


def raw_parallel(family: MujocoFamily, physics_steps: int, horizon: int, threads: int) -> float:
    """Env-steps/s of ``threads`` bare mj_step loops running at once (one MjData each,
    the GIL released inside mj_step): the raw limit of the cores this process actually
    gets, which on a busy machine is less than per-core x cores."""
    results: list[float] = []

    def run() -> None:
        results.append(raw_limit(family, physics_steps // threads, horizon)[0])

    workers = [threading.Thread(target=run) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    return threads * (physics_steps // threads // family.frame_skip) / elapsed


def sync_vector_env(family: MujocoFamily, tasks: list, per_task: int, policy: MLPPolicy,
                    steps: int) -> tuple[float, float]:
    """(env-steps/s, per CPU-second) of gymnasium's SyncVectorEnv over our single envs,
    closed loop."""
    fns = [(lambda t=t: family.make_env(t)) for t in tasks for _ in range(per_task)]
    envs = gym.vector.SyncVectorEnv(fns)
    obs, _ = envs.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    autoreset = np.zeros(envs.num_envs, dtype=bool)
    done_steps = 0
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        action, _ = policy.act(torch.as_tensor(obs, dtype=torch.float32), gen)
        obs, _, term, trunc, _ = envs.step(action.numpy())
        done_steps += int((~autoreset).sum())  # autoreset steps are resets, not env steps
        autoreset = term | trunc
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    envs.close()
    return done_steps / elapsed, done_steps / cpu


def engine(family: MujocoFamily, tasks: list, per_task: int, policy: MLPPolicy,
           horizon: int) -> tuple[float, int, float]:
    """(env-steps/s, env steps, per CPU-second of all threads) of metarl's Sampler on the
    fast engine (real steps = mask sum)."""
    sampler = Sampler(family, engine="fast")
    sampler.sample(tasks, policy, episodes_per_task=per_task, horizon=2, seed=1)  # build/warm up
    start, cpu = time.perf_counter(), time.process_time()
    batch = sampler.sample(tasks, policy, episodes_per_task=per_task, horizon=horizon, seed=0)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    sampler.close()
    return batch.num_steps / elapsed, batch.num_steps, batch.num_steps / cpu


def physics_only(family: MujocoFamily, n: int, steps: int, threads: int) -> dict[str, float]:
    """Env-steps/s of ``engine.step`` alone (no policy, no Sampler), and the ceiling of
    its backend's stepping with the same model, ``frame_skip`` substeps per call: a bare
    ``mujoco.batch.Batch`` (state rows only), or on the ``threads`` backend bare
    ``mj_step`` loops over N ``MjData``, one chunk per thread (no engine around them)."""
    fs, m = family.frame_skip, family.base_model
    actions = np.clip(np.random.default_rng(0).standard_normal((steps, n, m.nu)), -1, 1)
    eng = family.make_batch_engine(n, num_threads=threads)
    eng.reset(np.arange(n))
    active = np.ones(n, dtype=bool)
    start = time.perf_counter()
    for k in range(steps):
        eng.step(actions[k], active)
    rates = {"engine_step": round(n * steps / (time.perf_counter() - start))}
    eng.close()
    if eng.sim.backend == "batch":
        batch = Batch(m, n, nthread=threads)
        batch.reset()
        ctrl = batch.bind("ctrl")
        start = time.perf_counter()
        for k in range(steps):
            ctrl[:] = actions[k]
            batch.step(nstep=fs)
        rates["bare_mujoco_batch"] = round(n * steps / (time.perf_counter() - start))
        return rates
    datas = [mujoco.MjData(m) for _ in range(n)]
    chunks = np.array_split(np.arange(n), threads)

    def loop(idx: np.ndarray) -> None:
        for k in range(steps):
            for i in idx:
                datas[i].ctrl[:] = actions[k, i]
                mujoco.mj_step(m, datas[i], fs)

    workers = [threading.Thread(target=loop, args=(c,)) for c in chunks]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    rates["bare_mj_step_threads"] = round(n * steps / (time.perf_counter() - start))
    return rates


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (fewer steps)")
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--episodes", type=int, default=20, help="episodes per task")
    parser.add_argument("--threads", type=int, default=default_num_threads())
    parser.add_argument("--backend", choices=available_backends(), default=default_backend(),
                        help="MuJoCo backend of the engine (default: the installed mujoco's best)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default: results/sampler_throughput.json; on the threads "
                             "backend results/sampler_throughput_threads_mujocoVERSION.json)")
    args = parser.parse_args()
    os.environ["METARL_MUJOCO_BACKEND"] = args.backend  # every engine built below uses it
    if args.out is None:
        args.out = RESULTS if args.backend == "batch" else RESULTS.with_name(
            f"sampler_throughput_threads_mujoco{mujoco.__version__}.json")
    # One torch thread: the MuJoCo threads own the cores; the 64x64 MLP is tiny.
    torch.set_num_threads(1)
    torch.manual_seed(0)

    load_before = os.getloadavg()
    result: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "cores_used": args.threads,
                    "platform": platform.platform(), "python": platform.python_version(),
                    "mujoco": mujoco.__version__, "mujoco_backend": args.backend,
                    "gymnasium": gym.__version__,
                    "torch": torch.__version__, "loadavg_before": [round(x, 2) for x in load_before]},
        "settings": {"tasks": args.tasks, "episodes_per_task": args.episodes,
                     "num_envs": args.tasks * args.episodes, "quick": args.quick,
                     "policy": "MLP 64x64 tanh, Gaussian, torch, 1 thread"},
    }
    for name, family_id in FAMILIES.items():
        family = metarl.make_family(family_id)
        assert isinstance(family, MujocoFamily)
        horizon = 20 if args.quick else family.horizon
        sync_steps = 10 if args.quick else 50
        physics = 20_000 if args.quick else 100_000
        tasks = family.sample_tasks(args.tasks, rng=0)
        env = family.make_env()
        policy = MLPPolicy(env.observation_space.shape[0], env.action_space.shape[0])
        # Raw rates before and after the engine run, averaged, so slow drifts in the
        # machine's load hit both sides of the ratio alike.
        per_core_1, raw_cpu_1 = raw_limit(family, physics, family.horizon)
        parallel_1 = raw_parallel(family, physics, family.horizon, args.threads)
        sync, sync_cpu = sync_vector_env(family, tasks, args.episodes, policy, sync_steps)
        fast, steps, fast_cpu = engine(family, tasks, args.episodes, policy, horizon)
        per_core_2, raw_cpu_2 = raw_limit(family, physics, family.horizon)
        per_core, raw_cpu = (per_core_1 + per_core_2) / 2, (raw_cpu_1 + raw_cpu_2) / 2
        parallel = (parallel_1 + raw_parallel(family, physics, family.horizon, args.threads)) / 2
        limit = per_core * args.threads
        physics_rates = physics_only(family, args.tasks * args.episodes,
                                     5 if args.quick else 20, args.threads)
        result[name] = {
            "family": family_id, "frame_skip": family.frame_skip, "horizon": horizon,
            "raw_mj_step_per_core": round(per_core), "raw_limit": round(limit),
            "raw_parallel_measured": round(parallel),
            "sync_vector_env": round(sync), "engine": round(fast), "engine_env_steps": steps,
            "engine_over_raw_limit": round(fast / limit, 3),
            "engine_over_raw_parallel_measured": round(fast / parallel, 3),
            "engine_over_sync_vector_env": round(fast / sync, 2),
            "physics_only": physics_rates,
            # Work per CPU-second (all threads): independent of how busy the machine is.
            # On idle cores the engine's wall rate approaches this x cores_used.
            "per_cpu_second": {
                "raw": round(raw_cpu), "sync_vector_env": round(sync_cpu),
                "engine": round(fast_cpu), "engine_over_raw": round(fast_cpu / raw_cpu, 3),
                "engine_over_sync_vector_env": round(fast_cpu / sync_cpu, 2)},
        }
        print(json.dumps({name: result[name]}), flush=True)
    result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["targets"] = {
        "engine >= 0.8 x raw_limit": all(result[k]["engine_over_raw_limit"] >= 0.8 for k in FAMILIES),
        "engine >= 3 x sync_vector_env": all(result[k]["engine_over_sync_vector_env"] >= 3
                                             for k in FAMILIES),
    }
    write_result(args.out, result)
    return result


def write_result(path: Path, result: dict[str, Any]) -> None:
    """Print a benchmark's result JSON and write it to ``path``."""
    text = json.dumps(result, indent=2)
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


if __name__ == "__main__":
    main()
