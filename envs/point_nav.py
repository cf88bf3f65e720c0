"""2D point-robot navigation: the agent moves a point towards a goal it cannot see.

``PointNav2D-v0`` is the 2D navigation task of the MAML paper (Finn et al., 2017,
section 5.3), with the constants of its public code and of pytorch-maml-rl
(``Navigation2DEnv``) and learn2learn (``Particles2D``): goal ~ U[-0.5, 0.5]²,
start at the origin, actions clipped to ±0.1, reward −‖pos − goal‖₂ after the move,
horizon 100. The episode terminates when both coordinates are within 0.01 of the goal's
(``|x − gx| < 0.01 and |y − gy| < 0.01``: a square, as in the MAML code and
pytorch-maml-rl, not a disc). garage's ``PointEnv``
draws goals from U[-2, 2]²: ``make_family("metarl/PointNav2D-v0", goal_range=2.0)``.

``SparsePointNav-v0`` is the sparse point robot of varibad and PEARL: goal on the
unit upper semicircle (angle ~ U[0, π]), step = 0.1·clip(a, −1, 1), reward
1 − dist inside radius 0.2 of the goal and 0 elsewhere, horizon 100 (varibad;
PEARL uses 20: ``horizon=20``).

Both are vectorized families (:mod:`metarl.table_engine`): one numpy step serves the
single env and the batch engine that samples all sub-envs at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.spaces import Uniform
from metarl.table_engine import ArrayFamily
from metarl.task import Task


def dense_reward(pos: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """−‖pos − goal‖₂ over the last axis (works on one state or a batch)."""
    return -np.linalg.norm(pos - goal, axis=-1)


def reached_goal(pos: np.ndarray, goal: np.ndarray, tolerance: float) -> np.ndarray:
    """Every coordinate within ``tolerance`` of the goal's (the MAML code's square test)."""
    return np.all(np.abs(pos - goal) < tolerance, axis=-1)


def sparse_reward(pos: np.ndarray, goal: np.ndarray, radius: float) -> np.ndarray:
    """1 − dist inside ``radius`` of the goal, 0 elsewhere (PEARL / varibad)."""
    dist = np.linalg.norm(pos - goal, axis=-1)
    return np.where(dist <= radius, 1.0 - dist, 0.0)


class PointNav2D(ArrayFamily):
    """``success_radius`` is a radius in the max-norm: the episode ends when both
    coordinates are within it (see ``reached_goal``). Observation: the point's (x, y).
    Action: a displacement, clipped to ±max_action."""

    family_id = "metarl/PointNav2D-v0"
    varies = "reward"
    source = "MAML (Finn et al. 2017) §5.3; pytorch-maml-rl Navigation2DEnv; learn2learn Particles2D"
    description = "Point robot moves to an unseen goal; dense reward −distance; ends within 0.01 per axis"
    horizon = 100

    def __init__(self, goal_range: float = 0.5, max_action: float = 0.1,
                 success_radius: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.goal_range, self.max_action = float(goal_range), float(max_action)
        self.success_radius = float(success_radius)
        self.task_space = {"goal": Uniform(-self.goal_range, self.goal_range, shape=(2,))}

    def constants(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "goal_range": self.goal_range,
                "max_action": self.max_action, "success_radius": self.success_radius}

    def default_task(self):  # the centre (0, 0) would be solved at reset; use a fixed corner-ish goal
        return self.task(goal=[0.25 * self.goal_range / 0.5, -0.25 * self.goal_range / 0.5])

    # ---- the vectorized step (one definition for the single env and the batch engine) --
    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return (gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32),
                gym.spaces.Box(-self.max_action, self.max_action, shape=(2,), dtype=np.float32))

    def task_arrays(self, tasks: Sequence[Task]) -> dict[str, np.ndarray]:
        return {"goal": np.stack([np.asarray(t["goal"], dtype=np.float64) for t in tasks])}

    def initial_state(self, n: int) -> np.ndarray:
        return np.zeros((n, 2))  # every episode starts at the origin

    def batch_step(self, tasks, state, t, actions, draws):
        pos = state + np.clip(np.nan_to_num(actions, nan=0.0), -self.max_action, self.max_action)
        success = reached_goal(pos, tasks["goal"], self.success_radius)
        return pos, dense_reward(pos, tasks["goal"]), success, {"success": success}

    def observe(self, state: np.ndarray, t: np.ndarray) -> np.ndarray:
        return state.astype(np.float32)


class SparsePointNav(ArrayFamily):
    """Observation: (x, y). Action in [−1, 1]²; the point moves step_size·action."""

    family_id = "metarl/SparsePointNav-v0"
    varies = "reward"
    source = "varibad (Zintgraf et al. 2020) and PEARL (Rakelly et al. 2019) sparse point robot"
    description = "Point robot, goal on the unit semicircle; reward only within radius 0.2"
    horizon = 100

    def __init__(self, goal_radius: float = 0.2, step_size: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.goal_radius, self.step_size = float(goal_radius), float(step_size)
        self.task_space = {"angle": Uniform(0.0, np.pi)}

    def constants(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "goal_radius": self.goal_radius, "step_size": self.step_size}

    # ---- the vectorized step -------------------------------------------------------------
    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return (gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32),
                gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32))

    def task_arrays(self, tasks: Sequence[Task]) -> dict[str, np.ndarray]:
        angle = np.array([float(t["angle"]) for t in tasks])
        return {"goal": np.stack([np.cos(angle), np.sin(angle)], axis=-1)}

    def initial_state(self, n: int) -> np.ndarray:
        return np.zeros((n, 2))

    def batch_step(self, tasks, state, t, actions, draws):
        pos = state + self.step_size * np.clip(np.nan_to_num(actions, nan=0.0), -1.0, 1.0)
        dist = np.linalg.norm(pos - tasks["goal"], axis=-1)
        reward = sparse_reward(pos, tasks["goal"], self.goal_radius)
        return (pos, reward, np.zeros(len(pos), dtype=bool),
                {"success": dist <= self.goal_radius, "dense_reward": -dist})

    def observe(self, state: np.ndarray, t: np.ndarray) -> np.ndarray:
        return state.astype(np.float32)
