"""A batch engine for families whose whole step is a numpy function of small arrays.

Bandits and tabular MDPs have no simulator: their per-step cost in the generic engine
is Python overhead per sub-env. :class:`ArrayBatchEngine` keeps the state of all N
sub-envs in arrays and calls the family's vectorized ``batch_step`` once per step.

Randomness stays per sub-env and identical to the single env: each env draws its
episode's random numbers at ``reset`` from its own seeded generator
(:meth:`ArrayFamily.episode_draws`), and the single env and this engine both consume
them through the same ``batch_step``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from metarl.family import TaskFamily
from metarl.task import Task


class ArrayFamily(TaskFamily):
    """A family whose env step is one vectorized function (see the module docstring)."""

    @abstractmethod
    def spaces(self) -> tuple[gym.Space, gym.Space]:
        """``(observation_space, action_space)`` of one env."""

    @abstractmethod
    def task_arrays(self, tasks: Sequence[Task]) -> dict[str, np.ndarray]:
        """Task parameters stacked over a batch: ``{name: (N, ...)}``."""

    @abstractmethod
    def episode_draws(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The random numbers one episode consumes, each ``(horizon, ...)``."""

    @abstractmethod
    def initial_state(self, n: int) -> np.ndarray:
        """The state of ``n`` envs at reset."""

    @abstractmethod
    def batch_step(self, tasks: dict[str, np.ndarray], state: np.ndarray, t: np.ndarray,
                   actions: np.ndarray, draws: dict[str, np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """One step of N envs: ``(next_state, reward, infos)``; ``draws[k]`` is ``(N, ...)``,
        the draws of step ``t`` of each env."""

    @abstractmethod
    def observe(self, state: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Observations ``(N, ...)`` of N envs in ``state`` after ``t`` steps."""

    def make_batch_engine(self, num_envs: int) -> ArrayBatchEngine:
        return ArrayBatchEngine(self, num_envs)


def check_actions(action_space: gym.Space, actions: np.ndarray) -> np.ndarray:
    """Discrete actions as int64, with a clear error for out-of-range ones."""
    actions = np.asarray(actions).astype(np.int64).reshape(-1)
    if isinstance(action_space, gym.spaces.Discrete):
        bad = (actions < 0) | (actions >= action_space.n)
        if bad.any():
            raise ValueError(f"action {int(actions[bad][0])} out of range [0, {action_space.n})")
    return actions


class ArrayBatchEngine:
    """N sub-envs of an :class:`ArrayFamily`, stepped with one numpy call per step."""

    def __init__(self, family: ArrayFamily, num_envs: int) -> None:
        self.family = family
        self.num_envs = int(num_envs)
        self.single_observation_space, self.single_action_space = family.spaces()
        self._tasks: list[Task] | None = None
        self._arrays: dict[str, np.ndarray] = {}
        self._state = family.initial_state(self.num_envs)
        self._t = np.zeros(self.num_envs, dtype=np.int64)
        self._draws: dict[str, np.ndarray] = {}

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        if len(tasks) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} tasks, got {len(tasks)}")
        tasks = [self.family.validate(t) for t in tasks]
        if tasks != self._tasks:
            self._tasks = tasks
            self._arrays = self.family.task_arrays(tasks)

    def reset(self, seeds: Sequence[int], mask: np.ndarray | None = None) -> np.ndarray:
        if self._tasks is None:
            raise RuntimeError("set_tasks() before reset()")
        idx = np.arange(self.num_envs) if mask is None else np.flatnonzero(mask)
        fresh = self.family.initial_state(len(idx))
        self._state[idx] = fresh
        self._t[idx] = 0
        for i in idx:
            rng, _ = seeding.np_random(int(seeds[i]))
            for key, value in self.family.episode_draws(rng).items():
                if key not in self._draws:
                    self._draws[key] = np.zeros((self.num_envs, *value.shape), value.dtype)
                self._draws[key][i] = value
        return self.family.observe(self._state, self._t)

    def step(self, actions: np.ndarray, active: np.ndarray):
        horizon = next(iter(self._draws.values())).shape[1]
        idx = np.flatnonzero(active)
        if np.any(self._t[idx] >= horizon):
            raise ValueError(f"{self.family.id}: an episode is longer than the family horizon "
                             f"({horizon}); sample with horizon <= {horizon}")
        actions = check_actions(self.single_action_space, actions)
        tasks = {k: v[idx] for k, v in self._arrays.items()}
        draws = {k: v[idx, self._t[idx]] for k, v in self._draws.items()}
        next_state, reward, infos = self.family.batch_step(tasks, self._state[idx], self._t[idx],
                                                           actions[idx], draws)
        self._state[idx] = next_state
        self._t[idx] += 1
        rewards = np.zeros(self.num_envs)
        rewards[idx] = reward
        full_infos: dict[str, Any] = {}
        for key, value in infos.items():
            full_infos[key] = np.zeros(self.num_envs)
            full_infos[key][idx] = value
        return (self.family.observe(self._state, self._t), rewards,
                np.zeros(self.num_envs, dtype=bool), full_infos)

    def close(self) -> None:
        pass
