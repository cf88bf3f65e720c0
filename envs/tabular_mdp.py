"""Random tabular MDPs (RL² paper, Duan et al. 2016, section 4.2).

A task is a whole MDP with |S| = 10 states and |A| = 5 actions: next-state
distributions P(·|s, a) ~ Dirichlet(1) (flat) and mean rewards μ(s, a) ~ N(1, 1).
Rewards are drawn N(μ(s, a), 1). Episodes last T = 10 steps and always start in
state 0; RL² runs n ∈ {10, 25, 50, 75, 100} episodes of one MDP per trial.

Observation: the one-hot current state. Action: Discrete(|A|). The step is one
vectorized function (:meth:`TabularMDP.batch_step`); the single env and the batch
engine both come from it (:mod:`metarl.table_engine`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.errors import ConfigError
from metarl.spaces import Dirichlet, Normal
from metarl.table_engine import ArrayFamily
from metarl.task import Task


class TabularMDP(ArrayFamily):
    family_id = "metarl/TabularMDP-v0"
    varies = "reward+dynamics"
    source = "RL² (Duan et al. 2016) §4.2, Table 2"
    description = "Random MDP, |S|=10, |A|=5, Dirichlet(1) transitions, N(1,1) mean rewards"
    horizon = 10

    def __init__(self, n_states: int = 10, n_actions: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_states, self.n_actions = int(n_states), int(n_actions)
        if self.n_states < 2 or self.n_actions < 2:
            raise ConfigError("TabularMDP needs at least 2 states and 2 actions")
        self.task_space = {
            "transitions": Dirichlet(1.0, self.n_states, batch_shape=(self.n_states, self.n_actions)),
            "reward_means": Normal(1.0, 1.0, shape=(self.n_states, self.n_actions)),
        }

    def constants(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "n_states": self.n_states, "n_actions": self.n_actions}

    def default_task(self):
        # A fixed draw from the prior (seed 0), so the default MDP is a typical one.
        return self.sample_tasks(1, np.random.default_rng(0))[0]

    # ---- the vectorized step (one definition for both runtimes) -----------------------
    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return (gym.spaces.Box(0.0, 1.0, shape=(self.n_states,), dtype=np.float32),
                gym.spaces.Discrete(self.n_actions))

    def task_arrays(self, tasks: Sequence[Task]) -> dict[str, np.ndarray]:
        transitions = np.stack([np.asarray(t["transitions"]) for t in tasks])
        return {"cdf": np.cumsum(transitions, axis=-1),
                "reward_means": np.stack([np.asarray(t["reward_means"]) for t in tasks])}

    def episode_draws(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"u": rng.random(self.horizon), "z": rng.standard_normal(self.horizon)}

    def initial_state(self, n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.int64)  # every episode starts in state 0

    def batch_step(self, tasks, state, t, actions, draws):
        rows = np.arange(len(state))
        mean = tasks["reward_means"][rows, state, actions]
        reward = mean + draws["z"]
        # Inverse-CDF draw of the next state from P(.|s, a).
        cdf = tasks["cdf"][rows, state, actions]
        next_state = np.minimum((draws["u"][:, None] >= cdf).sum(axis=1), self.n_states - 1)
        return (next_state, reward, np.zeros(len(state), dtype=bool),
                {"expected_reward": mean, "state": next_state})

    def observe(self, state: np.ndarray, t: np.ndarray) -> np.ndarray:
        obs = np.zeros((len(state), self.n_states), dtype=np.float32)
        obs[np.arange(len(state)), state] = 1.0
        return obs
