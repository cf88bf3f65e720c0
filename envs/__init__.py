"""Built-in task families (imported as ``metarl.envs``); importing registers them."""

from metarl.envs.bandit import Bandit
from metarl.envs.locomotion import (
    AntDir,
    AntDir2D,
    AntGoal,
    AntVel,
    HalfCheetahDir,
    HalfCheetahVel,
    HumanoidDir,
)
from metarl.envs.point_nav import PointNav2D, SparsePointNav
from metarl.envs.rand_params import HalfCheetahRandParams, HopperRandParams, Walker2dRandParams
from metarl.envs.tabular_mdp import TabularMDP
from metarl.registry import register

MUJOCO_FAMILIES = (HalfCheetahVel, HalfCheetahDir, AntVel, AntDir, AntDir2D, AntGoal, HumanoidDir,
                   HopperRandParams, Walker2dRandParams, HalfCheetahRandParams)

for _family in (PointNav2D, SparsePointNav, Bandit, TabularMDP, *MUJOCO_FAMILIES):
    register(_family)

__all__ = ["Bandit", "PointNav2D", "SparsePointNav", "TabularMDP",
           *(f.__name__ for f in MUJOCO_FAMILIES)]
