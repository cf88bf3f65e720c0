"""Dynamics-varying MuJoCo families ("rand params"): each task scales the body's physics.

A task holds one multiplier per array element of four model fields (varibad and
rand_param_envs, log-scale limit l = 3.0; a scale of 1 is the default body):

==============  ======================  =====================
task parameter  model field             multiplier
==============  ======================  =====================
mass_scale      ``body_mass``           1.5^U(−l, l)
inertia_scale   ``body_inertia``        1.5^U(−l, l)
damping_scale   ``dof_damping``         1.3^U(−l, l)
friction_scale  ``geom_friction``       1.5^U(−l, l)
==============  ======================  =====================

Every sub-env runs its own scaled ``MjModel`` copy (``mj_setConst`` rerun), so a batch
of tasks steps together in the fast path. ``log_scale_limit`` changes l;
``rand_params=("mass", "damping")`` varies only some fields (the others stay at 1).

The reward is the base locomotion reward of each body, horizon 200:

* ``HopperRandParams-v0``: v + 1 − 1e-3‖a‖²; ends unless the state is finite,
  ``|qpos[2:], qvel| < 100``, height > 0.7 and ``|pitch| < 0.2`` (gym Hopper-v2 as
  used by varibad / rand_param_envs). Frame skip 4 (dt 0.008); reset noise U(±5e-3).
* ``Walker2dRandParams-v0``: v + 1 − 1e-3‖a‖²; ends unless 0.8 < height < 2 and
  ``|pitch| < 1`` (gym Walker2d-v2). Frame skip 4; reset noise U(±5e-3).
* ``HalfCheetahRandParams-v0``: v − 0.1‖a‖² (gym HalfCheetah), never terminates;
  frame skip 5; reset noise as HalfCheetah.

Observations: ``qpos[1:]`` and ``clip(qvel, −10, 10)`` for hopper (11) and walker (17);
``qpos[1:], qvel`` for the cheetah (17). The task is not in the observation.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from metarl.errors import ConfigError
from metarl.mujoco_engine import DynamicsFamily, SimBatch
from metarl.spaces import LogUniform

Params = dict[str, np.ndarray]

#: short name -> (task parameter, model field, log base)
RAND_PARAMS: dict[str, tuple[str, str, float]] = {
    "mass": ("mass_scale", "body_mass", 1.5),
    "inertia": ("inertia_scale", "body_inertia", 1.5),
    "damping": ("damping_scale", "dof_damping", 1.3),
    "friction": ("friction_scale", "geom_friction", 1.5),
}


class RandParamsBase(DynamicsFamily):
    """Shared constants and task space of the rand-params families."""

    varies = "dynamics"
    horizon = 200
    forward_weight: ClassVar[float] = 1.0

    def __init__(self, log_scale_limit: float = 3.0,
                 rand_params: tuple[str, ...] = ("mass", "inertia", "damping", "friction"),
                 ctrl_cost_weight: float | None = None, alive_bonus: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        unknown = set(rand_params) - set(RAND_PARAMS)
        if unknown:
            raise ConfigError(f"unknown rand_params {sorted(unknown)}; choose from "
                             f"{sorted(RAND_PARAMS)}")
        self.log_scale_limit = float(log_scale_limit)
        self.rand_params = tuple(p for p in RAND_PARAMS if p in rand_params)
        if ctrl_cost_weight is not None:
            self.ctrl_cost_weight = float(ctrl_cost_weight)
        if alive_bonus is not None:
            self.alive_bonus = float(alive_bonus)
        self.task_space = {}
        for short in self.rand_params:
            param, field, base = RAND_PARAMS[short]
            shape = getattr(self.base_model, field).shape
            self.task_space[param] = LogUniform.from_base(base, self.log_scale_limit, shape)

    ctrl_cost_weight: float = 1e-3
    alive_bonus: float = 1.0

    def constants(self) -> dict[str, Any]:
        return {**super().constants(), "log_scale_limit": self.log_scale_limit,
                "rand_params": list(self.rand_params),
                "log_bases": {RAND_PARAMS[p][0]: RAND_PARAMS[p][2] for p in self.rand_params},
                "ctrl_cost_weight": self.ctrl_cost_weight, "alive_bonus": self.alive_bonus}

    def reward(self, prev: SimBatch, sim: SimBatch, action: np.ndarray, params: Params):
        v = (sim.qpos[:, 0] - prev.qpos[:, 0]) / self.dt
        ctrl = self.ctrl_cost_weight * np.square(action).sum(axis=1)
        alive = np.full(len(v), self.alive_bonus)
        return (self.forward_weight * v + alive - ctrl,
                {"reward_forward": v, "reward_ctrl": -ctrl, "x_velocity": v})


class _PlanarWalkerRandParams(RandParamsBase):
    """Hopper and Walker2d: gym's planar-walker frame skip, reset noise and observation."""

    frame_skip = 4
    reset_qpos_noise = 5e-3
    reset_qvel_noise = 5e-3
    reset_qvel_normal = False

    def observe(self, sim: SimBatch, params: Params) -> np.ndarray:
        return np.concatenate([sim.qpos[:, 1:], np.clip(sim.qvel, -10.0, 10.0)], axis=1)


class HopperRandParams(_PlanarWalkerRandParams):
    family_id = "metarl/HopperRandParams-v0"
    source = "varibad / rand_param_envs HopperRandParamsEnv (gym Hopper-v2 reward)"
    description = "Hopper hops forward; mass, inertia, damping and friction vary per task"
    model_file = "hopper.xml"

    def terminated(self, sim: SimBatch, params: Params) -> np.ndarray:
        state = np.concatenate([sim.qpos, sim.qvel], axis=1)
        height, pitch = sim.qpos[:, 1], sim.qpos[:, 2]
        healthy = (np.isfinite(state).all(axis=1) & (np.abs(state[:, 2:]) < 100).all(axis=1)
                   & (height > 0.7) & (np.abs(pitch) < 0.2))
        return ~healthy


class Walker2dRandParams(_PlanarWalkerRandParams):
    family_id = "metarl/Walker2dRandParams-v0"
    source = "varibad / rand_param_envs Walker2DRandParamsEnv (gym Walker2d-v2 reward)"
    description = "Planar biped walks forward; mass, inertia, damping and friction vary per task"
    model_file = "walker2d.xml"

    def terminated(self, sim: SimBatch, params: Params) -> np.ndarray:
        height, pitch = sim.qpos[:, 1], sim.qpos[:, 2]
        return ~((height > 0.8) & (height < 2.0) & (pitch > -1.0) & (pitch < 1.0))


class HalfCheetahRandParams(RandParamsBase):
    family_id = "metarl/HalfCheetahRandParams-v0"
    source = "rand_param_envs scaling on the gym HalfCheetah reward (v − 0.1‖a‖²)"
    description = "Planar cheetah runs forward; mass, inertia, damping and friction vary per task"
    model_file = "half_cheetah.xml"
    frame_skip = 5
    reset_qpos_noise = 0.1
    reset_qvel_noise = 0.1
    reset_qvel_normal = True
    ctrl_cost_weight = 0.1
    alive_bonus = 0.0

    def observe(self, sim: SimBatch, params: Params) -> np.ndarray:
        return np.concatenate([sim.qpos[:, 1:], sim.qvel], axis=1)


__all__ = ["HalfCheetahRandParams", "HopperRandParams", "RAND_PARAMS", "Walker2dRandParams"]
