"""Bernoulli multi-armed bandits (RL² paper, Duan et al. 2016, section 4.1).

A task is the vector of arm success probabilities p_i ~ U[0, 1], i = 1..k. One
episode is one trial of n pulls of the same bandit: RL²'s memory must carry what
it learned from earlier pulls. The paper's settings are k ∈ {5, 10, 50} arms and
n ∈ {10, 100, 500} pulls; the default is k = 5, n = 10 (``arms=``, ``pulls=``).

Observation: the fraction of the trial elapsed, t / n (the arms have no state).
Action: the arm to pull. Reward: a Bernoulli(p_arm) draw from the env's RNG.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from metarl.family import MetaEnv, TaskFamily, TaskLike
from metarl.spaces import Uniform


class Bandit(TaskFamily):
    family_id = "metarl/Bandit-v0"
    varies = "reward"
    source = "RL² (Duan et al. 2016) §4.1, Table 1"
    description = "Bernoulli k-armed bandit; one episode = one trial of n pulls"

    def __init__(self, arms: int = 5, pulls: int = 10, **kwargs: Any) -> None:
        if "horizon" in kwargs and kwargs["horizon"] is not None:
            raise TypeError("Bandit: set the number of pulls with pulls=, not horizon=")
        super().__init__(**kwargs)
        if int(arms) < 2 or int(pulls) < 1:
            raise ValueError("Bandit needs arms >= 2 and pulls >= 1")
        self.arms, self.pulls = int(arms), int(pulls)
        self.horizon = self.pulls
        self.task_space = {"probs": Uniform(0.0, 1.0, shape=(self.arms,))}

    def constants(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "arms": self.arms, "pulls": self.pulls}

    def default_task(self):
        # Distinct arms, so the default task has one best arm: p = linspace(0.1, 0.9).
        return self.task(probs=np.linspace(0.1, 0.9, self.arms))

    def make_env(self, task: TaskLike | None = None, render_mode: str | None = None):
        return BanditEnv(self, task, render_mode)


class BanditEnv(MetaEnv):
    def __init__(self, family: Bandit, task: TaskLike | None = None,
                 render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(family.arms)
        super().__init__(family, task, render_mode)

    def _apply_task(self, task) -> None:
        self._probs = np.asarray(task["probs"])

    def _obs(self) -> np.ndarray:
        return np.array([self._elapsed / self.horizon], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._begin_episode(seed, options)
        return self._obs(), {}

    def step(self, action):
        arm = int(action)
        if not 0 <= arm < self.family.arms:
            raise ValueError(f"arm {arm} out of range [0, {self.family.arms})")
        reward = float(self.np_random.random() < self._probs[arm])
        truncated = self._tick()
        regret = float(self._probs.max() - self._probs[arm])
        return self._obs(), reward, False, truncated, {"expected_reward": float(self._probs[arm]),
                                                        "regret": regret}
