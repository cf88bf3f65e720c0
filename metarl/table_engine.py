"""Vectorized families: a family whose whole step is one numpy function over a batch.

Bandits, tabular MDPs and point robots have no simulator: in the generic engine their
per-step cost is Python overhead per sub-env. An :class:`ArrayFamily` defines its step
once, over arrays of N sub-envs (:meth:`ArrayFamily.batch_step`), and gets both runtimes
from that one definition:

- :class:`ArrayBatchEngine` keeps the state of all N sub-envs in arrays and calls
  ``batch_step`` once per step (the Sampler's fast engine);
- :class:`ArrayEnv`, the family's single ``gymnasium.Env``, calls it with N = 1.

Randomness stays per sub-env and identical to the single env: each env draws its
episode's random numbers at ``reset`` from its own seeded generator
(:meth:`ArrayFamily.episode_draws`), and both runtimes consume them through the same
``batch_step``. :func:`metarl.check_family` checks the two against each other.

The contract, for a family of your own (see the README, "Your own family")::

    spaces()                      -> (observation_space, action_space) of one env
    task_arrays(tasks)            -> {name: (N, ...)} task parameters, stacked
    episode_draws(rng)            -> {name: (horizon, ...)} one episode's random numbers
    initial_state(n)              -> (n, ...) the state at reset
    batch_step(tasks, state, t, actions, draws)
                                  -> (next_state, reward (N,), terminated (N,) bool, infos)
    observe(state, t)             -> (N, ...) observations after t steps
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from metarl.family import MetaEnv, TaskFamily, TaskLike
from metarl.task import Task


class ArrayFamily(TaskFamily):
    """A family whose env step is one vectorized function (see the module docstring)."""

    @abstractmethod
    def spaces(self) -> tuple[gym.Space, gym.Space]:
        """``(observation_space, action_space)`` of one env."""

    @abstractmethod
    def task_arrays(self, tasks: Sequence[Task]) -> dict[str, np.ndarray]:
        """Task parameters stacked over a batch: ``{name: (N, ...)}``."""

    def episode_draws(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The random numbers one episode consumes, each ``(horizon, ...)`` (none by
        default: a deterministic family)."""
        return {}

    @abstractmethod
    def initial_state(self, n: int) -> np.ndarray:
        """The state of ``n`` envs at reset."""

    @abstractmethod
    def batch_step(self, tasks: dict[str, np.ndarray], state: np.ndarray, t: np.ndarray,
                   actions: np.ndarray, draws: dict[str, np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """One step of N envs: ``(next_state, reward, terminated, infos)``; ``actions``
        come from :func:`check_actions`, ``draws[k]`` is ``(N, ...)``: the draws of step
        ``t`` of each env."""

    @abstractmethod
    def observe(self, state: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Observations ``(N, ...)`` of N envs in ``state`` after ``t`` steps."""

    def make_env(self, task: TaskLike | None = None, render_mode: str | None = None) -> ArrayEnv:
        return ArrayEnv(self, task, render_mode)

    def make_batch_engine(self, num_envs: int) -> ArrayBatchEngine:
        return ArrayBatchEngine(self, num_envs)


def check_actions(action_space: gym.Space, actions: Any, n: int) -> np.ndarray:
    """``n`` actions as ``batch_step`` reads them: Discrete ones as int64 (a clear error
    for out-of-range ones), Box ones as float64 of shape ``(n, *shape)``."""
    if isinstance(action_space, gym.spaces.Discrete):
        actions = np.asarray(actions).astype(np.int64).reshape(n)
        bad = (actions < 0) | (actions >= action_space.n)
        if bad.any():
            raise ValueError(f"action {int(actions[bad][0])} out of range [0, {action_space.n})")
        return actions
    return np.asarray(actions, dtype=np.float64).reshape(n, *action_space.shape)


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
        self._state[idx] = self.family.initial_state(len(idx))
        self._t[idx] = 0
        for i in idx:
            rng, _ = seeding.np_random(int(seeds[i]))
            for key, value in self.family.episode_draws(rng).items():
                if key not in self._draws:
                    self._draws[key] = np.zeros((self.num_envs, *value.shape), value.dtype)
                self._draws[key][i] = value
        return self.family.observe(self._state, self._t)

    def step(self, actions: np.ndarray, active: np.ndarray):
        idx = np.flatnonzero(active)
        if np.any(self._t[idx] >= self.family.horizon):
            raise ValueError(f"{self.family.id}: an episode is longer than the family horizon "
                             f"({self.family.horizon}); sample with horizon <= "
                             f"{self.family.horizon}")
        actions = check_actions(self.single_action_space, actions, self.num_envs)
        tasks = {k: v[idx] for k, v in self._arrays.items()}
        draws = {k: v[idx, self._t[idx]] for k, v in self._draws.items()}
        next_state, reward, terminated, infos = self.family.batch_step(
            tasks, self._state[idx], self._t[idx], actions[idx], draws)
        self._state[idx] = next_state
        self._t[idx] += 1
        rewards = np.zeros(self.num_envs)
        rewards[idx] = reward
        done = np.zeros(self.num_envs, dtype=bool)
        done[idx] = terminated
        full_infos: dict[str, Any] = {}
        for key, value in infos.items():
            full_infos[key] = np.zeros(self.num_envs)
            full_infos[key][idx] = value
        return self.family.observe(self._state, self._t), rewards, done, full_infos

    def close(self) -> None:
        pass


class ArrayEnv(MetaEnv):
    """The single env of an :class:`ArrayFamily`: its ``batch_step`` with N = 1."""

    def __init__(self, family: ArrayFamily, task: TaskLike | None = None,
                 render_mode: str | None = None) -> None:
        self.observation_space, self.action_space = family.spaces()
        self._state = family.initial_state(1)
        self._over = True
        super().__init__(family, task, render_mode)

    def _apply_task(self, task: Task) -> None:
        self._arrays = self.family.task_arrays([task])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._begin_episode(seed, options)
        self._draws = self.family.episode_draws(self.np_random)
        self._state = self.family.initial_state(1)
        self._over = False
        return self.family.observe(self._state, np.zeros(1, dtype=np.int64))[0], {}

    def step(self, action):
        fam: ArrayFamily = self.family
        if self._over:
            raise RuntimeError("the episode is over; call reset()")
        actions = check_actions(self.action_space, action, 1)
        t = np.array([self._elapsed])
        draws = {k: v[t] for k, v in self._draws.items()}
        self._state, reward, terminated, infos = fam.batch_step(self._arrays, self._state, t,
                                                                actions, draws)
        terminated = bool(terminated[0])
        truncated = self._tick() and not terminated
        self._over = terminated or truncated
        obs = fam.observe(self._state, t + 1)[0]
        return obs, float(reward[0]), terminated, truncated, {k: v[0].item() for k, v in infos.items()}


__all__ = ["ArrayBatchEngine", "ArrayEnv", "ArrayFamily", "check_actions"]
