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
from metarl.task import Task, load_tasks, save_tasks

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "Choice", "ConfigError", "Dirichlet", "LogUniform", "MetaEnv",
    "MetaRLError", "Normal", "ParamSpace", "Task", "TaskError", "TaskFamily", "TaskSplit",
    "Uniform", "UniformDisk", "UnknownFamilyError", "family_ids", "load_plugins",
    "load_tasks", "make_family", "register", "save_tasks", "unregister",
]

# Built-in families register themselves on import; installed plugins after them.
import metarl.envs  # noqa: E402,F401  (registration side effect)

load_plugins()
