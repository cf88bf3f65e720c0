"""Gymnasium wrappers that put any task family into the shape other libraries expect.

- :class:`TaskSampling`: a new task from a fixed list at every ``reset`` (a multi-task
  env: what a single-task learner such as SB3's PPO trains on).
- :class:`TaskObservation`: the task's parameters joined to the observation (the
  ``oracle`` baseline: a policy that is told the task).
- :class:`Trial`: K episodes of one task as one episode, with the previous action, reward
  and done flag joined to the observation (RL²'s interface), so any recurrent learner of
  the ecosystem (sb3-contrib's ``RecurrentPPO``, say) can do RL² on any family.

Each works on the ``gymnasium.Env`` a family makes (:meth:`TaskFamily.make_env`): the
task is switched in place with ``set_task`` on the unwrapped env.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.errors import ConfigError
from metarl.family import MetaEnv, TaskFamily
from metarl.task import Task


def _meta_env(env: gym.Env) -> MetaEnv:
    base = env.unwrapped
    if not isinstance(base, MetaEnv):
        raise ConfigError(f"this wrapper needs a metarl family's env (TaskFamily.make_env), "
                          f"got {type(base).__name__}")
    return base


def _flat_box(space: gym.Space) -> gym.spaces.Box:
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ConfigError(f"this wrapper joins vectors to a flat Box observation; the family's "
                          f"observation space is {space}")
    return space


class TaskSampling(gym.Wrapper):
    """Draws the task of each episode uniformly from ``tasks`` (with the env's own
    ``np_random``, so ``reset(seed=...)`` makes the sequence of tasks reproducible)."""

    def __init__(self, env: gym.Env, tasks: Sequence[Task]) -> None:
        super().__init__(env)
        if not tasks:
            raise ConfigError("TaskSampling needs at least one task")
        self.tasks = list(tasks)
        self._meta = _meta_env(env)
        self._rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._meta.set_task(self.tasks[int(self._rng.integers(len(self.tasks)))])
        return self.env.reset(seed=seed, options=options)


class TaskObservation(gym.ObservationWrapper):
    """Joins :meth:`TaskFamily.task_features` of the current task to the observation."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._meta = _meta_env(env)
        box = _flat_box(env.observation_space)
        self._size = len(self.family.task_features(self._meta.task))
        self.observation_space = gym.spaces.Box(
            np.concatenate([box.low, np.full(self._size, -np.inf)]).astype(box.dtype),
            np.concatenate([box.high, np.full(self._size, np.inf)]).astype(box.dtype),
            dtype=box.dtype)

    @property
    def family(self) -> TaskFamily:
        return self._meta.family

    def observation(self, observation: np.ndarray) -> np.ndarray:
        features = self.family.task_features(self._meta.task)
        if len(features) != self._size:
            raise ConfigError(f"{self.family.id}: task_features gave {len(features)} numbers for "
                              f"{self._meta.task!r}, {self._size} for the first task; override "
                              f"TaskFamily.task_features to give every task the same length")
        obs = np.concatenate([np.asarray(observation).reshape(-1), features])
        return obs.astype(self.observation_space.dtype)


class Trial(gym.Wrapper):
    """``episodes`` episodes of one task as one episode (RL²'s trial).

    Observation: ``[obs, previous action (one-hot if discrete), previous reward,
    done flag]``, all zeros after the trial's first reset, the done flag 1 at the first
    step of every later episode of the trial (the inner env was just reset). The trial
    ends when its last episode ends, with that episode's ``terminated`` / ``truncated``;
    the reward is the inner reward. ``info["trial_episode"]`` is the index of the inner
    episode a step belongs to, and the step that ends an inner episode carries
    ``info["episode_return"]``.

    The task: drawn from ``tasks`` at every trial's reset when given (with the
    generator seeded by ``reset(seed=...)``), else a fresh task sampled from the family
    (RL²'s "a new bandit per trial"); ``reset(options={"task": t})`` fixes it.
    """

    def __init__(self, env: gym.Env, episodes: int, tasks: Sequence[Task] | None = None) -> None:
        super().__init__(env)
        if int(episodes) < 1:
            raise ConfigError(f"a trial needs episodes >= 1, got {episodes}")
        self.episodes = int(episodes)
        self.tasks = list(tasks) if tasks is not None else None
        self._meta = _meta_env(env)
        box = _flat_box(env.observation_space)
        act = env.action_space
        if isinstance(act, gym.spaces.Discrete):
            self._act_size = int(act.n)
        elif isinstance(act, gym.spaces.Box):
            self._act_size = int(np.prod(act.shape))
        else:
            raise ConfigError(f"Trial supports Discrete and Box actions, not {act}")
        extra = self._act_size + 2
        self.observation_space = gym.spaces.Box(
            np.concatenate([box.low, np.full(extra, -np.inf)]).astype(np.float32),
            np.concatenate([box.high, np.full(extra, np.inf)]).astype(np.float32),
            dtype=np.float32)
        self._rng = np.random.default_rng()

    def _encode(self, action: Any) -> np.ndarray:
        if isinstance(self.env.action_space, gym.spaces.Discrete):
            one_hot = np.zeros(self._act_size, dtype=np.float32)
            one_hot[int(action) - int(self.env.action_space.start)] = 1.0
            return one_hot
        return np.asarray(action, dtype=np.float32).reshape(-1)

    def _obs(self, obs: np.ndarray, action: np.ndarray, reward: float, done: float) -> np.ndarray:
        return np.concatenate([np.asarray(obs, dtype=np.float32).reshape(-1), action,
                               np.float32([reward, done])])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        options = dict(options or {})
        task = options.pop("task", None)
        if task is None:
            task = (self.tasks[int(self._rng.integers(len(self.tasks)))] if self.tasks
                    else self._meta.family.sample_tasks(1, self._rng)[0])
        self._meta.set_task(task)
        obs, info = self.env.reset(seed=seed, options=options or None)
        self._episode, self._return = 0, 0.0
        return self._obs(obs, np.zeros(self._act_size, np.float32), 0.0, 0.0), \
            {**info, "trial_episode": 0}

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "trial_episode": self._episode}
        self._return += float(reward)
        encoded = self._encode(action)
        if not (terminated or truncated):
            return self._obs(obs, encoded, float(reward), 0.0), reward, False, False, info
        info["episode_return"] = self._return
        self._episode += 1
        if self._episode == self.episodes:
            return self._obs(obs, encoded, float(reward), 1.0), reward, terminated, truncated, info
        obs, _ = self.env.reset()  # the same task: the next episode of the trial
        self._return = 0.0
        return self._obs(obs, encoded, float(reward), 1.0), reward, False, False, info


__all__ = ["TaskObservation", "TaskSampling", "Trial"]
