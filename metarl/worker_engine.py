"""A batch engine for Python-bound envs (Meta-World): sub-envs stepped in worker processes.

The N sub-envs are cut into W contiguous chunks; each chunk is a :class:`ChunkEnv` (a
:class:`~metarl.rollout.GenericBatchEngine` of its sub-envs behind the ``gymnasium.Env``
interface) in a process of Gymnasium's ``AsyncVectorEnv``, which owns the processes, the
pipes and the shared-memory observations. One env step of the batch is one
``AsyncVectorEnv.step``: every chunk steps its active sub-envs in parallel with the others.

A sub-env's trajectory depends only on its task, its reset seed and its actions, so the
batch is the same for any number of workers (a test checks it against the in-process
engine step for step). Workers start with ``spawn`` (no fork of a process that holds
torch's or Ray's threads); they rebuild the family from its pickle. As with any ``spawn``
program, a script that samples a Meta-World family keeps its top-level code under
``if __name__ == "__main__":`` (the ``metarl`` CLI does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.family import TaskFamily
from metarl.rollout import GenericBatchEngine
from metarl.task import Task

_REWARD, _TERMINATED, _SUCCESS = 0, 1, 2  # extra columns after the observation


class ChunkEnv(gym.Env):
    """Sub-envs ``[start, stop)`` of a batch as one env of an ``AsyncVectorEnv``.

    Action ``(n, act_dim + 1)``: each sub-env's action and its ``active`` flag.
    Observation ``(n, obs_dim + 3)``: each sub-env's observation, reward, terminated and
    success. Tasks and reset plans arrive through ``set_attr`` (one value per chunk)."""

    def __init__(self, family: TaskFamily, num_envs: int) -> None:
        self.engine = GenericBatchEngine(family, num_envs)
        obs_space, act_space = self.engine.single_observation_space, self.engine.single_action_space
        self.obs_dim = int(np.prod(obs_space.shape))
        self.act_shape = act_space.shape
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (num_envs, self.obs_dim + 3),
                                                np.float64)
        self.action_space = gym.spaces.Box(-np.inf, np.inf,
                                           (num_envs, int(np.prod(self.act_shape)) + 1), np.float64)
        self.reset_plan: tuple[list[int], np.ndarray | None] = ([0] * num_envs, None)
        self._out = np.zeros(self.observation_space.shape)

    @property
    def tasks(self) -> list[Task]:
        return [env.get_task() for env in self.engine.envs]

    @tasks.setter
    def tasks(self, tasks: Sequence[Task]) -> None:
        self.engine.set_tasks(tasks)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seeds, mask = self.reset_plan
        self._out[:, :self.obs_dim] = self.engine.reset(seeds, mask).reshape(len(seeds), -1)
        self._out[:, self.obs_dim:] = 0.0
        return self._out.copy(), {}

    def step(self, action: np.ndarray):
        actions = action[:, :-1].reshape(len(action), *self.act_shape)
        active = action[:, -1] > 0.5
        obs, rewards, terminated, infos = self.engine.step(actions, active)
        self._out[:, :self.obs_dim] = obs.reshape(len(obs), -1)
        self._out[:, self.obs_dim + _REWARD] = rewards
        self._out[:, self.obs_dim + _TERMINATED] = terminated
        self._out[:, self.obs_dim + _SUCCESS] = infos.get("success", 0.0)
        return self._out.copy(), 0.0, False, False, {}

    def close(self) -> None:
        self.engine.close()


class _ChunkFactory:
    """Picklable ``env_fn`` for a worker (``spawn`` pickles it)."""

    def __init__(self, family: TaskFamily, num_envs: int) -> None:
        self.family, self.num_envs = family, num_envs

    def __call__(self) -> ChunkEnv:
        return ChunkEnv(self.family, self.num_envs)


class WorkerBatchEngine:
    """The :class:`~metarl.rollout.BatchEngine` of a Python-bound family on ``workers``
    processes (Gymnasium's ``AsyncVectorEnv``). Every worker holds ``ceil(N / workers)``
    sub-envs; the last one's spare sub-envs are padding, never reset or stepped."""

    def __init__(self, family: TaskFamily, num_envs: int, workers: int) -> None:
        self.family = family
        self.num_envs = n = int(num_envs)
        self.workers = w = max(1, min(int(workers), n))
        self._chunk = m = -(-n // w)
        self._padding = w * m - n
        probe = family.make_env()
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        probe.close()
        self._obs_dim = int(np.prod(self.single_observation_space.shape))
        self._act_dim = int(np.prod(self.single_action_space.shape))
        self._vec = gym.vector.AsyncVectorEnv([_ChunkFactory(family, m)] * w, context="spawn")
        self._tasks: list[Task] | None = None

    def _chunks(self, values: Sequence[Any], pad: Any) -> list[list[Any]]:
        padded = [*values, *([pad] * self._padding)]
        return [padded[i * self._chunk:(i + 1) * self._chunk] for i in range(self.workers)]

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        if len(tasks) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} tasks, got {len(tasks)}")
        tasks = [self.family.validate(t) for t in tasks]
        if tasks != self._tasks:
            self._vec.set_attr("tasks", self._chunks(tasks, tasks[-1]))
            self._tasks = tasks

    def reset(self, seeds: Sequence[int], mask: np.ndarray | None = None) -> np.ndarray:
        full = np.ones(self.num_envs, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        seeds = self._chunks([int(s) for s in seeds], 0)
        masks = self._chunks(list(full), False)
        self._vec.set_attr("reset_plan", [(s, np.array(k)) for s, k in zip(seeds, masks,
                                                                          strict=True)])
        out, _ = self._vec.reset()
        return self._obs(self._rows(out))

    def _rows(self, out: np.ndarray) -> np.ndarray:
        return out.reshape(self.workers * self._chunk, -1)[:self.num_envs]

    def _obs(self, rows: np.ndarray) -> np.ndarray:
        obs = rows[:, :self._obs_dim].reshape(self.num_envs, *self.single_observation_space.shape)
        return obs.astype(self.single_observation_space.dtype)

    def step(self, actions: np.ndarray, active: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        packed = np.zeros((self.workers * self._chunk, self._act_dim + 1))
        packed[:self.num_envs, :-1] = np.asarray(actions, dtype=np.float64).reshape(
            self.num_envs, self._act_dim)
        packed[:self.num_envs, -1] = np.asarray(active, dtype=bool)
        out, *_ = self._vec.step(packed.reshape(self.workers, self._chunk, -1))
        rows = self._rows(out)
        extra = rows[:, self._obs_dim:]
        return (self._obs(rows), extra[:, _REWARD].copy(), extra[:, _TERMINATED] > 0.5,
                {"success": extra[:, _SUCCESS].copy()})

    def close(self) -> None:
        if self._vec is not None:
            self._vec.close()
            self._vec = None


__all__ = ["ChunkEnv", "WorkerBatchEngine"]
