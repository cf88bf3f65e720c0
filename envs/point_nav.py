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
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from metarl.family import MetaEnv, TaskFamily, TaskLike
from metarl.spaces import Uniform


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


class PointNav2D(TaskFamily):
    """``success_radius`` is a radius in the max-norm: the episode ends when both
    coordinates are within it (see ``reached_goal``)."""

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

    def make_env(self, task: TaskLike | None = None, render_mode: str | None = None) -> PointNavEnv:
        return PointNavEnv(self, task, render_mode)


class PointNavEnv(MetaEnv):
    """Observation: the point's (x, y). Action: a displacement, clipped to ±max_action."""

    def __init__(self, family: PointNav2D, task: TaskLike | None = None,
                 render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-family.max_action, family.max_action, shape=(2,),
                                           dtype=np.float32)
        self._pos = np.zeros(2)
        super().__init__(family, task, render_mode)

    def _apply_task(self, task) -> None:
        self._goal = np.asarray(task["goal"], dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._begin_episode(seed, options)
        self._pos = np.zeros(2)
        return self._pos.astype(np.float32), {}

    def step(self, action):
        fam: PointNav2D = self.family
        action = np.nan_to_num(np.asarray(action, dtype=np.float64), nan=0.0)
        self._pos = self._pos + np.clip(action, -fam.max_action, fam.max_action)
        reward = float(dense_reward(self._pos, self._goal))
        success = bool(reached_goal(self._pos, self._goal, fam.success_radius))
        truncated = self._tick() and not success
        return self._pos.astype(np.float32), reward, success, truncated, {"success": success}


class SparsePointNav(TaskFamily):
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

    def make_env(self, task: TaskLike | None = None, render_mode: str | None = None):
        return SparsePointNavEnv(self, task, render_mode)


class SparsePointNavEnv(MetaEnv):
    """Observation: (x, y). Action in [−1, 1]²; the point moves step_size·action."""

    def __init__(self, family: SparsePointNav, task: TaskLike | None = None,
                 render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._pos = np.zeros(2)
        super().__init__(family, task, render_mode)

    def _apply_task(self, task) -> None:
        self._goal = np.array([np.cos(task["angle"]), np.sin(task["angle"])])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._begin_episode(seed, options)
        self._pos = np.zeros(2)
        return self._pos.astype(np.float32), {}

    def step(self, action):
        fam: SparsePointNav = self.family
        action = np.nan_to_num(np.asarray(action, dtype=np.float64), nan=0.0)
        self._pos = self._pos + fam.step_size * np.clip(action, -1.0, 1.0)
        reward = float(sparse_reward(self._pos, self._goal, fam.goal_radius))
        dist = float(np.linalg.norm(self._pos - self._goal))
        truncated = self._tick()
        return (self._pos.astype(np.float32), reward, False, truncated,
                {"success": dist <= fam.goal_radius, "dense_reward": -dist})
