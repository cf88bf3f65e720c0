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
from metarl.registry import register, register_unavailable

MUJOCO_FAMILIES = (HalfCheetahVel, HalfCheetahDir, AntVel, AntDir, AntDir2D, AntGoal, HumanoidDir,
                   HopperRandParams, Walker2dRandParams, HalfCheetahRandParams)

for _family in (PointNav2D, SparsePointNav, Bandit, TabularMDP, *MUJOCO_FAMILIES):
    register(_family)

try:  # Meta-World is an extra: it pins its own mujoco (3.3.0)
    from metarl.envs import metaworld as _metaworld
except ModuleNotFoundError as _exc:
    if _exc.name != "metaworld":
        raise
    register_unavailable(
        "metarl/MetaWorld-", "the Meta-World families need the metaworld package, which pins "
        "mujoco==3.3.0: ./setup.sh --metaworld, or pip install 'metarl[metaworld]' in a venv of "
        "its own")
else:
    for _family in (_metaworld.ML1, _metaworld.ML10, _metaworld.ML45):
        register(_family)
    for _id, _name in _metaworld.ml1_ids().items():
        register(_metaworld.ML1, id=_id, kwargs={"env_name": _name})

__all__ = ["Bandit", "PointNav2D", "SparsePointNav", "TabularMDP",
           *(f.__name__ for f in MUJOCO_FAMILIES)]
