"""Bernoulli multi-armed bandits (RL² paper, Duan et al. 2016, section 4.1).

A task is the vector of arm success probabilities p_i ~ U[0, 1], i = 1..k. One
episode is one trial of n pulls of the same bandit: RL²'s memory must carry what
it learned from earlier pulls. The paper's settings are k ∈ {5, 10, 50} arms and
n ∈ {10, 100, 500} pulls; the default is k = 5, n = 10 (``arms=``, ``pulls=``).

Observation: the fraction of the trial elapsed, t / n (the arms have no state).
Action: the arm to pull. Reward: a Bernoulli(p_arm) draw. The step is one vectorized
function (:meth:`Bandit.batch_step`); the single env and the batch engine both come from it
(:mod:`metarl.table_engine`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.errors import ConfigError, FamilyArgumentError
from metarl.spaces import Uniform
from metarl.table_engine import ArrayFamily
from metarl.task import Task


class Bandit(ArrayFamily):
    family_id = "metarl/Bandit-v0"
    varies = "reward"
    source = "RL² (Duan et al. 2016) §4.1, Table 1"
    description = "Bernoulli k-armed bandit; one episode = one trial of n pulls"

    def __init__(self, arms: int = 5, pulls: int = 10, **kwargs: Any) -> None:
        if "horizon" in kwargs and kwargs["horizon"] is not None:
            raise FamilyArgumentError("Bandit: set the number of pulls with pulls=, not horizon=")
        super().__init__(**kwargs)
        if int(arms) < 2 or int(pulls) < 1:
            raise ConfigError("Bandit needs arms >= 2 and pulls >= 1")
        self.arms, self.pulls = int(arms), int(pulls)
        self.horizon = self.pulls
        self.task_space = {"probs": Uniform(0.0, 1.0, shape=(self.arms,))}

    def constants(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "arms": self.arms, "pulls": self.pulls}

    def default_task(self):
        # Distinct arms, so the default task has one best arm: p = linspace(0.1, 0.9).
        return self.task(probs=np.linspace(0.1, 0.9, self.arms))

    # ---- the vectorized step (one definition for both runtimes) -----------------------
    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return (gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
                gym.spaces.Discrete(self.arms))

    def task_arrays(self, tasks: Sequence[Task]) -> dict[str, np.ndarray]:
        return {"probs": np.stack([np.asarray(t["probs"]) for t in tasks])}

    def episode_draws(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"u": rng.random(self.horizon)}

    def initial_state(self, n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.int64)  # bandits have no state

    def batch_step(self, tasks, state, t, actions, draws):
        probs = tasks["probs"]
        chosen = probs[np.arange(len(actions)), actions]
        reward = (draws["u"] < chosen).astype(np.float64)
        infos = {"expected_reward": chosen, "regret": probs.max(axis=1) - chosen}
        return state, reward, np.zeros(len(actions), dtype=bool), infos

    def observe(self, state: np.ndarray, t: np.ndarray) -> np.ndarray:
        return (t / self.horizon).astype(np.float32).reshape(-1, 1)
