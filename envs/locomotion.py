"""Reward-varying MuJoCo locomotion families (HalfCheetah, Ant, Humanoid).

Every family runs on the ``mujoco`` bindings with our own model files
(``envs/assets``) and writes its observation, reward and termination once, vectorized
over a batch of simulator states (see :mod:`metarl.mujoco_engine`), so the single
``gymnasium.Env`` and the batched fast path compute the same numbers.

Defaults and sources (H = horizon, v = forward velocity of the torso, a = the action
clipped to the actuator range, c = ``clip(cfrc_ext, -1, 1)``). Each default is one
published variant; the others are a keyword away (``make_family(id, **kwargs)``):

* ``HalfCheetahVel-v0``: goal_velocity ~ U[0, 2]; reward −|v − v*| − 0.05‖a‖²; H = 100.
  From pytorch-maml-rl ``HalfCheetahVelEnv`` (the MAML task). ProMP / varibad / PEARL:
  ``velocity_range=(0, 3)``; the MAML paper's H = 200: ``horizon=200``.
* ``HalfCheetahDir-v0``: direction ∈ {−1, +1} (p = ½); reward d·v − 0.05‖a‖²; H = 100
  (pytorch-maml-rl, MAML); ``horizon=200`` for the MAML paper.
* ``AntVel-v0``: goal_velocity ~ U[0, 3]; reward −|v − v*| + 1 + 0.05 − 0.005‖a‖²
  − 5e-4‖c‖²; H = 100; ends when the torso height leaves [0.2, 1]. From pytorch-maml-rl
  ``AntVelEnv``.
* ``AntDir-v0``: direction ∈ {−1, +1}; reward d·v + 0.05 − 0.005‖a‖² − 5e-4‖c‖²; H = 100;
  same termination. From MAML / rllab and pytorch-maml-rl ``AntDirEnv`` (survive bonus
  0.05). PEARL / ProMP: ``survive_bonus=1.0, ctrl_cost_weight=0.5``.
* ``AntDir2D-v0``: angle θ ~ U[0, 2π); reward (cos θ, sin θ)·v_xy + 1 − 0.5‖a‖²
  − 5e-4‖c‖²; H = 200; no termination. From ProMP ``AntRandDirec2DEnv`` and varibad.
* ``AntGoal-v0``: goal uniform on the disk of radius 3 (r = 3√U, θ = 2πU); reward
  −‖xy − g‖₁ − 0.1‖a‖² − 5e-4‖c‖²; H = 200; no termination. From PEARL / varibad / ProMP.
  pytorch-maml-rl: ``goal_region="square", goal_bonus=4.0, survive_bonus=0.05,
  ctrl_cost_weight=0.005``.
* ``HumanoidDir-v0``: angle θ ~ U[0, 2π); reward 1.25·(cos θ, sin θ)·v_com + 5 − 0.1‖a‖²
  − min(5e-7‖cfrc_ext‖², 10); H = 200; ends when the torso height leaves (1, 2). From
  varibad / PEARL ``HumanoidDirEnv`` (the gym Humanoid reward with a direction).

Common constants: frame skip 5 (dt 0.05 cheetah/ant, 0.015 humanoid). Observations:
cheetah ``qpos[1:], qvel`` (17); ant ``qpos[2:], qvel, c[1:]`` (105; AntGoal keeps the
x, y position: 107); humanoid ``qpos[2:], qvel, cinert[1:], cvel[1:],
qfrc_actuator[6:], cfrc_ext[1:]`` (348, Gymnasium v5 layout). Reset noise as in
Gymnasium: cheetah and ant ``qpos0 + U(±0.1)``, ``qvel ~ 0.1·N(0, 1)``; humanoid
``U(±0.01)`` on both. Ant episodes of the Vel/Dir families end when the torso height
leaves [0.2, 1.0] (pytorch-maml-rl); AntDir2D and AntGoal run the full horizon
(``terminate_when_unhealthy=True`` to change); HumanoidDir ends when the torso height
leaves (1.0, 2.0).

Action units (every MuJoCo family): by default the policy's action is the actuator
control. ``action_scale=s`` makes the policy act in ``[-s, s]``, mapped linearly onto the
control range, as rllab's ``NormalizedEnv`` and pytorch-maml-rl's ``normalization_scale``
do; pytorch-maml-rl's MuJoCo configs use ``s = 10``, so a unit-std Gaussian policy moves
the actuators by 0.1 (our ``configs/maml_*`` / ``metasgd_*`` MuJoCo presets set it).

Two deliberate differences from the old mujoco-py code: the velocity is the change
of ``qpos`` (the root joint) over dt, not of ``xpos`` (which MuJoCo leaves one physics
substep stale after ``mj_step``), and the control cost is taken on the clipped action
(out-of-range actions are clipped before they reach the simulator, see
:func:`metarl.mujoco_engine.sanitize_actions`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from metarl.errors import ConfigError
from metarl.mujoco_engine import MujocoFamily, SimBatch
from metarl.spaces import Choice, Uniform, UniformDisk

Params = dict[str, np.ndarray]


def _sq(x: np.ndarray) -> np.ndarray:
    """Sum of squares over all but the batch axis."""
    return np.square(x).reshape(len(x), -1).sum(axis=1)


# ---------------------------------------------------------------------------------------
# HalfCheetah
# ---------------------------------------------------------------------------------------
class HalfCheetahBase(MujocoFamily):
    """Planar cheetah: observation ``qpos[1:], qvel`` (17), forward velocity from ``rootx``."""

    model_file = "half_cheetah.xml"
    frame_skip = 5
    horizon = 100
    reset_qpos_noise = 0.1
    reset_qvel_noise = 0.1
    reset_qvel_normal = True

    def __init__(self, ctrl_cost_weight: float = 0.05, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctrl_cost_weight = float(ctrl_cost_weight)

    def constants(self) -> dict[str, Any]:
        return {**super().constants(), "ctrl_cost_weight": self.ctrl_cost_weight}

    def observe(self, sim: SimBatch, params: Params) -> np.ndarray:
        return np.concatenate([sim.qpos[:, 1:], sim.qvel], axis=1)

    def forward_velocity(self, prev: SimBatch, sim: SimBatch) -> np.ndarray:
        return (sim.qpos[:, 0] - prev.qpos[:, 0]) / self.dt

    def task_reward(self, v: np.ndarray, params: Params) -> np.ndarray:
        raise NotImplementedError

    def reward(self, prev: SimBatch, sim: SimBatch, action: np.ndarray, params: Params):
        v = self.forward_velocity(prev, sim)
        forward = self.task_reward(v, params)
        ctrl = self.ctrl_cost_weight * _sq(action)
        return forward - ctrl, {"reward_forward": forward, "reward_ctrl": -ctrl, "x_velocity": v}


class HalfCheetahVel(HalfCheetahBase):
    family_id = "metarl/HalfCheetahVel-v0"
    source = ("MAML (Finn et al. 2017); pytorch-maml-rl HalfCheetahVelEnv (U[0,2], H=100); "
              "U[0,3]: ProMP, varibad, PEARL")
    description = "Planar cheetah runs at a target forward velocity"

    def __init__(self, velocity_range: tuple[float, float] = (0.0, 2.0), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.velocity_range = (float(velocity_range[0]), float(velocity_range[1]))
        self.task_space = {"goal_velocity": Uniform(*self.velocity_range)}

    def constants(self) -> dict[str, Any]:
        return {**super().constants(), "velocity_range": list(self.velocity_range)}

    def task_reward(self, v: np.ndarray, params: Params) -> np.ndarray:
        return -np.abs(v - params["goal_velocity"])


class HalfCheetahDir(HalfCheetahBase):
    family_id = "metarl/HalfCheetahDir-v0"
    source = "MAML (Finn et al. 2017); pytorch-maml-rl HalfCheetahDirEnv (H=100)"
    description = "Planar cheetah runs forward (+1) or backward (−1)"
    task_space = {"direction": Choice([-1.0, 1.0])}

    def default_task(self):
        return self.task(direction=1.0)

    def task_reward(self, v: np.ndarray, params: Params) -> np.ndarray:
        return params["direction"] * v


# ---------------------------------------------------------------------------------------
# Ant
# ---------------------------------------------------------------------------------------
class AntBase(MujocoFamily):
    """Quadruped on a free joint. Observation ``qpos[2:]`` (or all of ``qpos`` with
    ``observe_xy``), ``qvel`` and, with ``contact_forces_in_obs``, ``clip(cfrc_ext[1:], ±1)``."""

    model_file = "ant.xml"
    frame_skip = 5
    horizon = 100
    sim_fields = ("qpos", "qvel", "cfrc_ext")
    needs_rne_post = True  # reads cfrc_ext
    reset_qpos_noise = 0.1
    reset_qvel_noise = 0.1
    reset_qvel_normal = True
    observe_xy = False

    def __init__(self, ctrl_cost_weight: float = 0.005, contact_cost_weight: float = 5e-4,
                 survive_bonus: float = 0.05, contact_forces_in_obs: bool = True,
                 terminate_when_unhealthy: bool = True,
                 healthy_z_range: tuple[float, float] = (0.2, 1.0), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctrl_cost_weight = float(ctrl_cost_weight)
        self.contact_cost_weight = float(contact_cost_weight)
        self.survive_bonus = float(survive_bonus)
        self.contact_forces_in_obs = bool(contact_forces_in_obs)
        self.terminate_when_unhealthy = bool(terminate_when_unhealthy)
        self.healthy_z_range = (float(healthy_z_range[0]), float(healthy_z_range[1]))

    def constants(self) -> dict[str, Any]:
        return {**super().constants(), "ctrl_cost_weight": self.ctrl_cost_weight,
                "contact_cost_weight": self.contact_cost_weight,
                "survive_bonus": self.survive_bonus,
                "contact_forces_in_obs": self.contact_forces_in_obs,
                "terminate_when_unhealthy": self.terminate_when_unhealthy,
                "healthy_z_range": list(self.healthy_z_range)}

    def observe(self, sim: SimBatch, params: Params) -> np.ndarray:
        parts = [sim.qpos if self.observe_xy else sim.qpos[:, 2:], sim.qvel]
        if self.contact_forces_in_obs:
            parts.append(np.clip(sim.cfrc_ext[:, 1:], -1.0, 1.0).reshape(len(sim.qpos), -1))
        return np.concatenate(parts, axis=1)

    def task_reward(self, prev: SimBatch, sim: SimBatch, params: Params) -> np.ndarray:
        raise NotImplementedError

    def reward(self, prev: SimBatch, sim: SimBatch, action: np.ndarray, params: Params):
        task = self.task_reward(prev, sim, params)
        ctrl = self.ctrl_cost_weight * _sq(action)
        contact = self.contact_cost_weight * _sq(np.clip(sim.cfrc_ext, -1.0, 1.0))
        reward = task - ctrl - contact + self.survive_bonus
        return reward, {"reward_task": task, "reward_ctrl": -ctrl, "reward_contact": -contact,
                        "x_velocity": (sim.qpos[:, 0] - prev.qpos[:, 0]) / self.dt}

    def terminated(self, sim: SimBatch, params: Params) -> np.ndarray:
        if not self.terminate_when_unhealthy:
            return np.zeros(len(sim.qpos), dtype=bool)
        z = sim.qpos[:, 2]
        lo, hi = self.healthy_z_range
        finite = np.isfinite(sim.qpos).all(axis=1) & np.isfinite(sim.qvel).all(axis=1)
        return ~(finite & (z >= lo) & (z <= hi))


class AntVel(AntBase):
    family_id = "metarl/AntVel-v0"
    source = "pytorch-maml-rl AntVelEnv (MAML ant velocity task)"
    description = "Ant runs forward at a target velocity"

    def __init__(self, velocity_range: tuple[float, float] = (0.0, 3.0),
                 forward_bonus: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.velocity_range = (float(velocity_range[0]), float(velocity_range[1]))
        self.forward_bonus = float(forward_bonus)
        self.task_space = {"goal_velocity": Uniform(*self.velocity_range)}

    def constants(self) -> dict[str, Any]:
        return {**super().constants(), "velocity_range": list(self.velocity_range),
                "forward_bonus": self.forward_bonus}

    def task_reward(self, prev: SimBatch, sim: SimBatch, params: Params) -> np.ndarray:
        v = (sim.qpos[:, 0] - prev.qpos[:, 0]) / self.dt
        return -np.abs(v - params["goal_velocity"]) + self.forward_bonus


class AntDir(AntBase):
    family_id = "metarl/AntDir-v0"
    source = ("MAML (Finn et al. 2017) / rllab ant, pytorch-maml-rl AntDirEnv (survive 0.05); "
              "PEARL/ProMP use survive 1.0, ctrl 0.5")
    description = "Ant runs forward (+1) or backward (−1) along x"
    task_space = {"direction": Choice([-1.0, 1.0])}

    def default_task(self):
        return self.task(direction=1.0)

    def task_reward(self, prev: SimBatch, sim: SimBatch, params: Params) -> np.ndarray:
        return params["direction"] * (sim.qpos[:, 0] - prev.qpos[:, 0]) / self.dt


class AntDir2D(AntBase):
    family_id = "metarl/AntDir2D-v0"
    source = "ProMP AntRandDirec2DEnv; varibad"
    description = "Ant runs in a direction on the plane (angle ~ U[0, 2π))"
    horizon = 200

    def __init__(self, ctrl_cost_weight: float = 0.5, survive_bonus: float = 1.0,
                 terminate_when_unhealthy: bool = False, **kwargs: Any) -> None:
        super().__init__(ctrl_cost_weight=ctrl_cost_weight, survive_bonus=survive_bonus,
                         terminate_when_unhealthy=terminate_when_unhealthy, **kwargs)
        self.task_space = {"angle": Uniform(0.0, 2 * math.pi)}

    def default_task(self):
        return self.task(angle=0.0)

    def task_reward(self, prev: SimBatch, sim: SimBatch, params: Params) -> np.ndarray:
        vel = (sim.qpos[:, :2] - prev.qpos[:, :2]) / self.dt
        theta = params["angle"]
        return np.cos(theta) * vel[:, 0] + np.sin(theta) * vel[:, 1]


class AntGoal(AntBase):
    family_id = "metarl/AntGoal-v0"
    source = ("PEARL/varibad AntGoalEnv (goal on disk r≤3, r = 3√U); pytorch-maml-rl AntPosEnv: "
              "goal U[-3,3]², +4 bonus")
    description = "Ant walks to a goal position it cannot see (−L1 distance)"
    horizon = 200
    observe_xy = True  # the goal is a position: the policy needs its own x, y

    def __init__(self, goal_radius: float = 3.0, goal_region: str = "disk",
                 goal_bonus: float = 0.0, ctrl_cost_weight: float = 0.1,
                 survive_bonus: float = 0.0, terminate_when_unhealthy: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(ctrl_cost_weight=ctrl_cost_weight, survive_bonus=survive_bonus,
                         terminate_when_unhealthy=terminate_when_unhealthy, **kwargs)
        if goal_region not in ("disk", "square"):
            raise ConfigError(f"goal_region must be 'disk' or 'square', got {goal_region!r}")
        self.goal_radius, self.goal_region = float(goal_radius), goal_region
        self.goal_bonus = float(goal_bonus)
        self.task_space = {"goal": UniformDisk(self.goal_radius) if goal_region == "disk"
                           else Uniform(-self.goal_radius, self.goal_radius, shape=(2,))}

    def default_task(self):
        return self.task(goal=[self.goal_radius / 2, 0.0])

    def constants(self) -> dict[str, Any]:
        return {**super().constants(), "goal_radius": self.goal_radius,
                "goal_region": self.goal_region, "goal_bonus": self.goal_bonus}

    def task_reward(self, prev: SimBatch, sim: SimBatch, params: Params) -> np.ndarray:
        return -np.abs(sim.qpos[:, :2] - params["goal"]).sum(axis=1) + self.goal_bonus


# ---------------------------------------------------------------------------------------
# Humanoid
# ---------------------------------------------------------------------------------------
class HumanoidDir(MujocoFamily):
    family_id = "metarl/HumanoidDir-v0"
    source = "varibad / PEARL HumanoidDirEnv (gym Humanoid reward with a direction)"
    description = "Humanoid walks in a direction on the plane (angle ~ U[0, 2π))"
    model_file = "humanoid.xml"
    frame_skip = 5
    horizon = 200
    sim_fields = ("qpos", "qvel", "subtree_com", "cinert", "cvel", "qfrc_actuator", "cfrc_ext")
    needs_rne_post = True
    reset_qpos_noise = 0.01
    reset_qvel_noise = 0.01
    reset_qvel_normal = False

    def __init__(self, forward_weight: float = 1.25, alive_bonus: float = 5.0,
                 ctrl_cost_weight: float = 0.1, impact_cost_weight: float = 5e-7,
                 impact_cost_max: float = 10.0, healthy_z_range: tuple[float, float] = (1.0, 2.0),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.forward_weight, self.alive_bonus = float(forward_weight), float(alive_bonus)
        self.ctrl_cost_weight = float(ctrl_cost_weight)
        self.impact_cost_weight, self.impact_cost_max = float(impact_cost_weight), float(impact_cost_max)
        self.healthy_z_range = (float(healthy_z_range[0]), float(healthy_z_range[1]))
        self.task_space = {"angle": Uniform(0.0, 2 * math.pi)}

    def default_task(self):
        return self.task(angle=0.0)

    def constants(self) -> dict[str, Any]:
        return {**super().constants(), "forward_weight": self.forward_weight,
                "alive_bonus": self.alive_bonus, "ctrl_cost_weight": self.ctrl_cost_weight,
                "impact_cost_weight": self.impact_cost_weight,
                "impact_cost_max": self.impact_cost_max,
                "healthy_z_range": list(self.healthy_z_range)}

    def observe(self, sim: SimBatch, params: Params) -> np.ndarray:
        n = len(sim.qpos)
        return np.concatenate([
            sim.qpos[:, 2:], sim.qvel,
            sim.cinert[:, 1:].reshape(n, -1), sim.cvel[:, 1:].reshape(n, -1),
            sim.qfrc_actuator[:, 6:], sim.cfrc_ext[:, 1:].reshape(n, -1),
        ], axis=1)

    def reward(self, prev: SimBatch, sim: SimBatch, action: np.ndarray, params: Params):
        # subtree_com of the torso (body 1) is the whole body's centre of mass.
        vel = (sim.subtree_com[:, 1, :2] - prev.subtree_com[:, 1, :2]) / self.dt
        theta = params["angle"]
        forward = self.forward_weight * (np.cos(theta) * vel[:, 0] + np.sin(theta) * vel[:, 1])
        ctrl = self.ctrl_cost_weight * _sq(action)
        impact = np.minimum(self.impact_cost_weight * _sq(sim.cfrc_ext), self.impact_cost_max)
        reward = forward + self.alive_bonus - ctrl - impact
        return reward, {"reward_forward": forward, "reward_ctrl": -ctrl,
                        "reward_impact": -impact}

    def terminated(self, sim: SimBatch, params: Params) -> np.ndarray:
        z = sim.qpos[:, 2]
        lo, hi = self.healthy_z_range
        return ~((z > lo) & (z < hi))


__all__ = ["AntDir", "AntDir2D", "AntGoal", "AntVel", "HalfCheetahDir", "HalfCheetahVel",
           "HumanoidDir"]
