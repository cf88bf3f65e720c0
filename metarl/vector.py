"""A task-batch Gymnasium ``VectorEnv``: B sub-environments, each with its own task.

Reach it the Gymnasium way or through metarl::

    envs = gymnasium.make_vec("metarl/HalfCheetahVel-v0", num_envs=4, tasks=tasks)
    envs = metarl.make_vec("metarl/HalfCheetahVel-v0", num_envs=4, tasks=tasks)

It wraps a :class:`~metarl.rollout.BatchEngine`: the family's fast engine when it has
one (MuJoCo families: all sub-envs stepped in C across threads), otherwise the
generic engine that steps ordinary ``MetaEnv`` objects (any family, users' own
included). ``engine="generic"`` forces the latter.

Semantics follow Gymnasium 1.x: ``AutoresetMode.NEXT_STEP`` (the step after a
sub-env's episode ended resets it and returns its first observation with reward 0),
truncation at the family horizon, ``infos`` as a dict of arrays with ``_key`` masks.
Tasks change with :meth:`TaskVectorEnv.set_tasks` or ``reset(options={"tasks": [...]})``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from metarl.family import TaskFamily, TaskLike
from metarl.registry import make_family
from metarl.rollout import BatchEngine, make_engine
from metarl.task import Task


class TaskVectorEnv(VectorEnv):
    """B sub-envs of one family, each with its own task, stepped as one batch."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, family: TaskFamily, num_envs: int,
                 tasks: Sequence[TaskLike] | None = None, engine: str = "auto") -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.family = family
        self.num_envs = int(num_envs)
        self.engine: BatchEngine = make_engine(family, self.num_envs, engine)
        self.engine_kind = type(self.engine).__name__
        self.single_observation_space = self.engine.single_observation_space
        self.single_action_space = self.engine.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.horizon = int(family.horizon)
        self.render_mode = None
        self._tasks: list[Task] = []
        self.set_tasks(tasks)
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._obs: np.ndarray | None = None
        self._seed_rng = np.random.default_rng()

    # ---- tasks -------------------------------------------------------------------------
    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks)

    def set_tasks(self, tasks: Sequence[TaskLike] | TaskLike | None) -> None:
        """One task per sub-env (a single task is broadcast; ``None``: the default task).
        Takes effect immediately; reset the sub-envs to start episodes in the new tasks."""
        if tasks is None:
            tasks = [self.family.default_task()] * self.num_envs
        elif isinstance(tasks, (Task, dict, str)):
            tasks = [tasks] * self.num_envs  # type: ignore[list-item]
        tasks = [self.family.validate(t) for t in tasks]  # type: ignore[union-attr]
        if len(tasks) != self.num_envs:
            raise ValueError(f"{self.family.id}: got {len(tasks)} tasks for {self.num_envs} "
                             "sub-envs; pass one task per sub-env (or a single task)")
        self._tasks = tasks
        self.engine.set_tasks(tasks)

    def get_tasks(self) -> list[Task]:
        return self.tasks

    # ---- reset / step ------------------------------------------------------------------
    def _seeds(self, n: int) -> np.ndarray:
        return self._seed_rng.integers(0, 2**32 - 1, size=n, dtype=np.uint64)

    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all sub-envs (or those in ``options["reset_mask"]``).

        ``seed``: an int (sub-env i gets ``seed + i``, as in Gymnasium's vector envs), one
        seed per sub-env, or ``None``. ``options["tasks"]`` switches tasks first.
        """
        options = dict(options or {})
        if "tasks" in options:
            self.set_tasks(options.pop("tasks"))
        mask = options.pop("reset_mask", None)
        mask = np.ones(self.num_envs, dtype=bool) if mask is None else np.asarray(mask, bool)
        if seed is None:
            seeds = self._seeds(self.num_envs)
        elif isinstance(seed, (int, np.integer)):
            self._seed_rng = np.random.default_rng(int(seed))
            seeds = np.arange(self.num_envs, dtype=np.uint64) + np.uint64(seed)
        else:
            seeds = np.asarray(seed, dtype=np.uint64)
            if seeds.shape != (self.num_envs,):
                raise ValueError(f"expected {self.num_envs} seeds, got {seeds.shape}")
            self._seed_rng = np.random.default_rng(seeds)
        obs = self.engine.reset(seeds, mask)
        self._obs = np.array(obs, copy=True)
        self._elapsed[mask] = 0
        self._autoreset[mask] = False
        return self._obs.copy(), {}

    def step(self, actions: Any):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        resetting = self._autoreset.copy()
        active = ~resetting
        obs, rewards, terminated, infos = self.engine.step(actions, active)
        obs = np.array(obs, copy=True)
        rewards = np.where(active, rewards, 0.0).astype(np.float64)
        terminated = terminated & active
        self._elapsed[active] += 1
        truncated = active & (self._elapsed >= self.horizon) & ~terminated
        if resetting.any():
            obs[resetting] = self.engine.reset(self._seeds(self.num_envs), resetting)[resetting]
            self._elapsed[resetting] = 0
        self._autoreset = terminated | truncated
        self._obs = obs
        out_infos: dict[str, Any] = {}
        for key, values in infos.items():
            out_infos[key] = np.asarray(values)
            out_infos[f"_{key}"] = active.copy()
        return obs.copy(), rewards, terminated, truncated, out_infos

    def close_extras(self, **kwargs: Any) -> None:
        self.engine.close()


def make_task_vector_env(family_id: str, num_envs: int = 1,
                         tasks: Sequence[TaskLike] | None = None, engine: str = "auto",
                         task: TaskLike | None = None, render_mode: str | None = None,
                         **family_kwargs: Any) -> TaskVectorEnv:
    """Gymnasium ``vector_entry_point`` of every metarl family (and ``metarl.make_vec``).

    ``tasks``: one per sub-env (``task``: one for all); ``engine``: ``"auto"`` (fast
    path when the family has one), ``"fast"`` or ``"generic"``; other keyword arguments
    override the family's constants (e.g. ``velocity_range=(0, 3)``).
    """
    if render_mode is not None:
        raise ValueError("metarl task vector envs do not render; make a single env to render")
    if tasks is not None and task is not None:
        raise ValueError("pass tasks (one per sub-env) or task (one for all), not both")
    family = make_family(family_id, **family_kwargs)
    return TaskVectorEnv(family, num_envs, tasks if tasks is not None else task, engine)


def make_vec(family_id: str, num_envs: int = 1, tasks: Sequence[TaskLike] | None = None,
             engine: str = "auto", **family_kwargs: Any) -> TaskVectorEnv:
    """metarl's call for a task-batch vector env; same as
    ``gymnasium.make_vec(family_id, num_envs=..., tasks=...)``."""
    return make_task_vector_env(family_id, num_envs, tasks=tasks, engine=engine, **family_kwargs)


__all__ = ["TaskVectorEnv", "make_task_vector_env", "make_vec"]
