"""metarl: meta-reinforcement learning on parameterized Gymnasium task families.

>>> import metarl, gymnasium as gym
>>> family = metarl.make_family("metarl/PointNav2D-v0")
>>> tasks = family.sample_tasks(3, rng=0)
>>> env = gym.make("metarl/PointNav2D-v0", task=tasks[0])
"""

from metarl.errors import (
    CheckpointError,
    ConfigError,
    MetaRLError,
    TaskError,
    UnknownFamilyError,
)
from metarl.family import MetaEnv, TaskFamily, TaskSplit
from metarl.registry import (
    family_ids,
    load_plugins,
    make_family,
    register,
    unregister,
)
from metarl.spaces import Choice, Dirichlet, LogUniform, Normal, ParamSpace, Uniform, UniformDisk
from metarl.table_engine import ArrayFamily
from metarl.task import Task, load_tasks, save_tasks

__version__ = "0.1.0"


def make_vec(family_id: str, num_envs: int = 1, tasks=None, engine: str = "auto", **family_kwargs):
    """A task-batch ``gymnasium.vector.VectorEnv`` (see :mod:`metarl.vector`); imported
    lazily so ``import metarl`` does not pull in torch."""
    from metarl.vector import make_vec as _make_vec

    return _make_vec(family_id, num_envs, tasks=tasks, engine=engine, **family_kwargs)


def check_family(family, **kwargs):
    """Check a family (instance or id) against the task-family contract; see
    :func:`metarl.checker.check_family` (imported lazily: it needs torch)."""
    from metarl.checker import check_family as _check_family

    return _check_family(family, **kwargs)


__all__ = [
    "ArrayFamily", "CheckpointError", "Choice", "ConfigError", "Dirichlet", "LogUniform", "MetaEnv",
    "MetaRLError", "Normal", "ParamSpace", "Task", "TaskError", "TaskFamily", "TaskSplit",
    "Uniform", "UniformDisk", "UnknownFamilyError", "check_family", "family_ids", "load_plugins",
    "load_tasks", "make_family", "make_vec", "register", "save_tasks", "unregister",
]

# Built-in families register themselves on import; installed plugins after them.
import metarl.envs  # noqa: E402,F401  (registration side effect)

load_plugins()
