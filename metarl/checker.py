"""``check_family``: the task-family contract, checked on a family's sampled tasks (in the
spirit of Gymnasium's ``check_env``, which it runs too).

What a family must do for every learner and engine of metarl to treat it right:

1. **Tasks**: ``sample_tasks`` gives valid tasks that round-trip through JSON; the same
   seed gives the same tasks.
2. **Envs**: ``make_env(task)`` passes Gymnasium's ``check_env``.
3. **Seeding**: ``reset(seed=s)`` and the same actions give the same episode, twice.
4. **Task switching**: ``set_task`` on a used env gives the episode a fresh env of that
   task gives (nothing of the previous task survives).
5. **Batched engine** (families with ``make_batch_engine``): N sub-envs with N tasks,
   stepped as one batch, give the single env's observations, rewards, terminations and
   success flags, step for step, for the same seeds and actions.

A failure raises :class:`FamilyCheckError`, naming the check, the task, the step and the
field that differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.errors import MetaRLError
from metarl.family import TaskFamily
from metarl.registry import make_family
from metarl.rollout import GenericBatchEngine
from metarl.task import Task


class FamilyCheckError(MetaRLError, AssertionError):
    """A family breaks the task-family contract (the message says where)."""


def _actions(space: gym.Space, steps: int, n: int, seed: int) -> np.ndarray:
    """``(steps, n, ...)`` actions drawn from ``space`` by a seeded generator."""
    rng = np.random.default_rng(seed)
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(space.start, space.start + space.n, size=(steps, n))
    if isinstance(space, gym.spaces.Box):
        low = np.where(np.isfinite(space.low), space.low, -1.0)
        high = np.where(np.isfinite(space.high), space.high, 1.0)
        return rng.uniform(low, high, size=(steps, n, *space.shape)).astype(space.dtype)
    raise FamilyCheckError(f"check_family supports Box and Discrete actions, got {space}")


def _episode(env: gym.Env, seed: int, actions: np.ndarray) -> list[tuple[Any, ...]]:
    """``(obs, reward, terminated, truncated)`` of each step until the episode ends."""
    obs, _ = env.reset(seed=seed)
    out = [(np.asarray(obs), 0.0, False, False)]
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        out.append((np.asarray(obs), float(reward), bool(terminated), bool(truncated)))
        if terminated or truncated:
            break
    return out


def _same_episode(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]], what: str,
                  rtol: float, atol: float) -> None:
    fields = ("observation", "reward", "terminated", "truncated")
    if len(a) != len(b):
        raise FamilyCheckError(f"{what}: the episode lasts {len(a) - 1} steps one time and "
                               f"{len(b) - 1} the other")
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        for name, u, v in zip(fields, x, y, strict=True):
            if not np.allclose(u, v, rtol=rtol, atol=atol):
                raise FamilyCheckError(f"{what}: step {t}, {name} differs: {u} vs {v}")


def _check_engine(family: TaskFamily, tasks: Sequence[Task], steps: int, seed: int,
                  rtol: float, atol: float) -> None:
    """The family's batched engine against the single env (the generic engine steps one
    ``MetaEnv`` per task), step for step."""
    n = len(tasks)
    fast, single = family.make_batch_engine(n), GenericBatchEngine(family, n)
    try:
        for engine in (fast, single):
            engine.set_tasks(list(tasks))
        seeds = [seed + i for i in range(n)]
        obs = {"engine": fast.reset(seeds), "env": single.reset(seeds)}
        actions = _actions(single.single_action_space, steps, n, seed + 1)
        active = np.ones(n, dtype=bool)

        def compare(t: int, name: str, got: np.ndarray, want: np.ndarray) -> None:
            for i in np.flatnonzero(active):
                if not np.allclose(got[i], want[i], rtol=rtol, atol=atol):
                    raise FamilyCheckError(
                        f"{family.id}: the batched engine differs from the single env at step "
                        f"{t}, sub-env {i} (task {tasks[i].to_json()}), field {name}: "
                        f"{got[i]} (engine) vs {want[i]} (env)")

        compare(0, "observation", obs["engine"], obs["env"])
        for t in range(1, steps + 1):
            o1, r1, d1, i1 = fast.step(actions[t - 1], active)
            o2, r2, d2, i2 = single.step(actions[t - 1], active)
            compare(t, "observation", o1, o2)
            compare(t, "reward", r1, r2)
            compare(t, "terminated", d1, d2)
            for key in set(i1) & set(i2):
                compare(t, key, np.asarray(i1[key]), np.asarray(i2[key]))
            active &= ~np.asarray(d2, dtype=bool)
            if not active.any():
                break
    finally:
        fast.close()
        single.close()


def check_family(family: TaskFamily | str, num_tasks: int = 4, steps: int | None = None,
                 seed: int = 0, rtol: float = 1e-5, atol: float = 1e-6,
                 check_gymnasium: bool = True) -> list[str]:
    """Check ``family`` (an instance or a registered id) against the task-family contract
    (see the module docstring) on ``num_tasks`` sampled tasks, episodes of ``steps`` steps
    (default 100; never more than the family's horizon). Returns the names of the checks run;
    raises :class:`FamilyCheckError` at the first violation. ``check_gymnasium=False``
    skips Gymnasium's ``check_env`` (slow for some simulators)."""
    from gymnasium.utils.env_checker import check_env

    family = make_family(family) if isinstance(family, str) else family
    steps = min(int(steps or 100), int(family.horizon))  # engines never run past the horizon
    done: list[str] = []
    tasks = family.sample_tasks(num_tasks, rng=seed)
    if tasks != family.sample_tasks(num_tasks, rng=seed):
        raise FamilyCheckError(f"{family.id}: sample_tasks gives other tasks for the same seed")
    for task in tasks:
        family.validate(task)
        if Task.from_json(task.to_json()) != task:
            raise FamilyCheckError(f"{family.id}: task {task} does not round-trip through JSON")
    done.append("tasks")

    if check_gymnasium:
        for task in tasks[:2]:
            env = family.make_env(task)
            try:
                check_env(env.unwrapped, skip_render_check=True)
            except Exception as exc:
                raise FamilyCheckError(f"{family.id}: Gymnasium's check_env fails for task "
                                       f"{task.to_json()}: {exc}") from exc
            finally:
                env.close()
        done.append("gymnasium")

    env = family.make_env(tasks[0])
    actions = _actions(env.action_space, steps, 1, seed + 7)[:, 0]
    first = _episode(env, seed, actions)
    _same_episode(first, _episode(env, seed, actions),
                  f"{family.id}: the same seed and actions (task {tasks[0].to_json()})", rtol, atol)
    done.append("seeding")

    if len(tasks) > 1:
        env.set_task(tasks[1])
        fresh = family.make_env(tasks[1])
        _same_episode(_episode(env, seed, actions), _episode(fresh, seed, actions),
                      f"{family.id}: set_task({tasks[1].to_json()}) on a used env vs a fresh env",
                      rtol, atol)
        fresh.close()
        done.append("task switching")
    env.close()

    if getattr(family, "make_batch_engine", None) is not None:
        _check_engine(family, tasks, steps, seed, rtol, atol)
        done.append("batched engine")
    return done


__all__ = ["FamilyCheckError", "check_family"]
