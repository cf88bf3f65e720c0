"""Random tabular MDPs (RL² paper, Duan et al. 2016, section 4.2).

A task is a whole MDP with |S| = 10 states and |A| = 5 actions: next-state
distributions P(·|s, a) ~ Dirichlet(1) (flat) and mean rewards μ(s, a) ~ N(1, 1).
Rewards are drawn N(μ(s, a), 1). Episodes last T = 10 steps and always start in
state 0; RL² runs n ∈ {10, 25, 50, 75, 100} episodes of one MDP per trial.

Observation: the one-hot current state. Action: Discrete(|A|).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from metarl.family import MetaEnv, TaskFamily, TaskLike
from metarl.spaces import Dirichlet, Normal


class TabularMDP(TaskFamily):
    family_id = "metarl/TabularMDP-v0"
    varies = "reward"  # rewards and transitions both vary; listed as reward for the table
    source = "RL² (Duan et al. 2016) §4.2, Table 2"
    description = "Random MDP, |S|=10, |A|=5, Dirichlet(1) transitions, N(1,1) mean rewards"
    horizon = 10

    def __init__(self, n_states: int = 10, n_actions: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_states, self.n_actions = int(n_states), int(n_actions)
        if self.n_states < 2 or self.n_actions < 2:
            raise ValueError("TabularMDP needs at least 2 states and 2 actions")
        self.task_space = {
            "transitions": Dirichlet(1.0, self.n_states, batch_shape=(self.n_states, self.n_actions)),
            "reward_means": Normal(1.0, 1.0, shape=(self.n_states, self.n_actions)),
        }
        self.varies = "reward+dynamics"

    def constants(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "n_states": self.n_states, "n_actions": self.n_actions}

    def default_task(self):
        # A fixed draw from the prior (seed 0), so the default MDP is a typical one.
        return self.sample_tasks(1, np.random.default_rng(0))[0]

    def make_env(self, task: TaskLike | None = None, render_mode: str | None = None):
        return TabularMDPEnv(self, task, render_mode)


class TabularMDPEnv(MetaEnv):
    def __init__(self, family: TabularMDP, task: TaskLike | None = None,
                 render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(family.n_states,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(family.n_actions)
        self._state = 0
        super().__init__(family, task, render_mode)

    def _apply_task(self, task) -> None:
        self._transitions = np.asarray(task["transitions"])
        self._reward_means = np.asarray(task["reward_means"])

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.family.n_states, dtype=np.float32)
        obs[self._state] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._begin_episode(seed, options)
        self._state = 0
        return self._obs(), {"state": self._state}

    def step(self, action):
        a = int(action)
        if not 0 <= a < self.family.n_actions:
            raise ValueError(f"action {a} out of range [0, {self.family.n_actions})")
        s = self._state
        mean = self._reward_means[s, a]
        reward = float(self.np_random.normal(mean, 1.0))
        probs = self._transitions[s, a]
        self._state = int(self.np_random.choice(self.family.n_states, p=probs / probs.sum()))
        truncated = self._tick()
        return self._obs(), reward, False, truncated, {"state": self._state, "expected_reward": mean}
