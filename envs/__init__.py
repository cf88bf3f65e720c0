"""Built-in task families (imported as ``metarl.envs``); importing registers them."""

from metarl.envs.bandit import Bandit
from metarl.envs.point_nav import PointNav2D, SparsePointNav
from metarl.envs.tabular_mdp import TabularMDP

from metarl.registry import register

for _family in (PointNav2D, SparsePointNav, Bandit, TabularMDP):
    register(_family)

__all__ = ["Bandit", "PointNav2D", "SparsePointNav", "TabularMDP"]
