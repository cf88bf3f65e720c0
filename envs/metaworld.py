"""Meta-World's meta-learning benchmarks as metarl task families: ML1, ML10, ML45.

Imported only when the ``metaworld`` package is installed (``./setup.sh --metaworld``, or
``pip install 'metarl[metaworld]'`` in a venv of its own: metaworld pins ``mujoco==3.3.0``).

Everything task-specific is Meta-World's own; metarl adds no reward, success or observation
code:

* A **task** is a Meta-World task: its class name (``env_name``, e.g. ``"reach-v3"``) and
  its task data, the ``rand_vec`` that places the objects and the goal. Meta-World pickles
  the class itself into its ``Task.data``; a metarl task stores the name and the vector, a
  JSON round trip, and :meth:`MetaWorldFamily.metaworld_task` rebuilds Meta-World's
  ``Task`` from them byte for byte.
* The **split** is Meta-World's: ``metaworld.ML10(seed)`` (``ML1``, ``ML45``) gives the
  train tasks (train classes × 50 goals) and the test tasks (ML10/ML45: the 5 held-out
  classes; ML1: goals of the same class drawn with ``seed + 1``). ``split(n_train,
  n_test, seed)`` takes the first ``n`` of each, goal by goal across the classes, so every
  class is equally represented; a test class can never appear in train.
* :meth:`~MetaWorldFamily.sample_tasks` draws fresh goals of the **train** classes only,
  with Meta-World's own goal sampler (its reset with an unfrozen ``rand_vec``), from an
  explicit generator. No agent sees a test class before evaluation.
* The single env **is** Meta-World's env (``SawyerXYZEnv``) with the task set in place;
  one env per class is built once and kept, so switching between tasks of ML10's ten
  classes does not recompile a model. Reward: Meta-World's ``reward_function_version``
  (``"v2"``, its default). Observation: 39-d with the goal zeroed (the ML benchmarks'
  partial observability). ``info["success"]`` is Meta-World's per-step success; an
  episode succeeds if it is 1 at any step. Horizon: 500 (``max_path_length``).
* **Sampling**: Meta-World's step is Python, so the sub-envs of a batch step in this
  process (the generic engine); ``--workers N`` (the presets: 2) samples on N Ray actors,
  whole rollouts per actor. Per-step round trips to worker processes (an
  ``AsyncVectorEnv`` of chunks) measured no faster than one process on 2 cores, hence
  whole rollouts (``benchmarks/metaworld_throughput.py``).

Ids: ``metarl/MetaWorld-ML1-<name>`` for each of the 50 classes (``...-ML1-reach-v3``),
``metarl/MetaWorld-ML1-v3`` with ``env_name=`` as a keyword, ``metarl/MetaWorld-ML10-v3``
and ``metarl/MetaWorld-ML45-v3``. The version is Meta-World's environment version.
"""

from __future__ import annotations

import importlib.metadata
import pickle
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import metaworld
import numpy as np
from metaworld import env_dict as _mw_env_dict

from metarl.errors import ConfigError, TaskError
from metarl.family import MetaEnv, TaskFamily, TaskLike, TaskSplit
from metarl.spaces import Names, ParamSpace
from metarl.task import Task

#: Meta-World's per-episode step limit (``SawyerXYZEnv.max_path_length``).
MAX_PATH_LENGTH = 500
#: Goals Meta-World generates per class and split.
GOALS_PER_CLASS = 50
ALL_CLASSES: dict[str, type] = dict(_mw_env_dict.ALL_V3_ENVIRONMENTS)
OBS_DIM, ACT_DIM = 39, 4
#: Meta-World benchmark objects by (benchmark, classes, seed), built once per process.
_BENCHMARKS: dict[tuple[str, tuple[str, ...], int], Any] = {}
METAWORLD_VERSION = importlib.metadata.version("metaworld")
SOURCE = (f"Meta-World {METAWORLD_VERSION} (Yu et al. 2019; McLean et al. 2025, Meta-World+), "
          "goal hidden as in its ML benchmarks")


class RandVec(ParamSpace):
    """Meta-World's task data: the vector that places the objects and the goal (its
    length and box depend on the class; the family checks them against ``env_name``)."""

    shape = ()

    def sample(self, rng: np.random.Generator) -> Any:  # the family samples (per class)
        raise NotImplementedError("Meta-World tasks are drawn by MetaWorldFamily.sample_tasks")

    def normalize(self, value: Any) -> np.ndarray:
        arr = np.array(value, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"expected a 1-d vector, got shape {arr.shape}")
        arr.setflags(write=False)
        return arr

    def contains(self, value: Any) -> bool:
        return bool(np.all(np.isfinite(value)))

    def describe(self) -> str:
        return "the class's object and goal positions (Meta-World's _random_reset_space)"


def _interleave(tasks: Sequence[Any], classes: Sequence[str]) -> list[Any]:
    """Goal 0 of every class, then goal 1 of every class, ...: any prefix is balanced."""
    by_class = {name: [t for t in tasks if t.env_name == name] for name in classes}
    width = max(len(v) for v in by_class.values())
    return [by_class[c][g] for g in range(width) for c in classes if g < len(by_class[c])]


class MetaWorldFamily(TaskFamily):
    """Base class of the Meta-World families: a benchmark, its train and test classes."""

    varies: ClassVar[str] = "reward"
    source: ClassVar[str] = SOURCE
    horizon: int = MAX_PATH_LENGTH
    #: ``metaworld`` benchmark class name: "ML1", "ML10", "ML45".
    benchmark: ClassVar[str] = ""

    def __init__(self, *, reward_function_version: str = "v2", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.horizon > MAX_PATH_LENGTH:
            raise ConfigError(f"{self.id}: horizon {self.horizon} is past Meta-World's "
                              f"max_path_length {MAX_PATH_LENGTH}")
        if reward_function_version not in ("v1", "v2"):
            raise ConfigError(f"{self.id}: reward_function_version must be 'v1' or 'v2', got "
                              f"{reward_function_version!r}")
        self.reward_function_version = reward_function_version
        self.train_classes, self.test_classes = self._classes()
        self.task_space = {"env_name": Names([*self.train_classes, *self.test_classes]),
                           "rand_vec": RandVec()}
        self._samplers: dict[str, Any] = {}

    # ---- what subclasses define -------------------------------------------------------
    def _classes(self) -> tuple[list[str], list[str]]:
        split = getattr(_mw_env_dict, f"{self.benchmark}_V3")
        return list(split["train"]), list(split["test"])

    def _make_benchmark(self, seed: int) -> Any:
        return getattr(metaworld, self.benchmark)(seed=seed)

    def _args_kwargs(self, env_name: str) -> dict[str, Any]:
        table = getattr(_mw_env_dict, f"{self.benchmark}_ARGS_KWARGS")
        split = "train" if env_name in self.train_classes else "test"
        return dict(table[split][env_name]["kwargs"])

    # ---- constants ------------------------------------------------------------------
    def constants(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "benchmark": self.benchmark,
                "train_classes": list(self.train_classes), "test_classes": list(self.test_classes),
                "reward_function_version": self.reward_function_version,
                "goals_per_class": GOALS_PER_CLASS,
                "metaworld": METAWORLD_VERSION}

    # ---- tasks ------------------------------------------------------------------------
    def metaworld_task(self, task: Task) -> metaworld.Task:
        """Meta-World's own ``Task`` for ``task``: the data its benchmarks pickle."""
        name = task["env_name"]
        data = self._args_kwargs(name)
        del data["task_id"]
        data.update(rand_vec=np.array(task["rand_vec"]), env_cls=ALL_CLASSES[name],
                    partially_observable=True)
        return metaworld.Task(env_name=name, data=pickle.dumps(data))

    def from_metaworld(self, mw_task: metaworld.Task) -> Task:
        """The metarl task of one of Meta-World's tasks."""
        data = pickle.loads(mw_task.data)
        return self.validate(Task(self.id, {"env_name": mw_task.env_name,
                                            "rand_vec": data["rand_vec"]}))

    def validate(self, task: TaskLike | None) -> Task:
        valid = super().validate(task)
        env = self._sampler(valid["env_name"])
        space = env._random_reset_space
        vec = valid["rand_vec"]
        if vec.shape != space.low.shape or np.any(vec < space.low - 1e-9) or \
                np.any(vec > space.high + 1e-9):
            raise TaskError(f"{self.id}: rand_vec {np.round(vec, 4).tolist()} is not a task of "
                            f"{valid['env_name']}: it needs {space.low.size} values inside "
                            f"[{space.low.tolist()}, {space.high.tolist()}]")
        return valid

    def default_task(self) -> Task:
        """The first train class's first goal of Meta-World's sampler seeded with 0."""
        return self._sample_one(np.random.default_rng(0), self.train_classes[0])

    def _sampler(self, env_name: str) -> Any:
        """One env per class for drawing goals (and reading its goal box)."""
        if env_name not in self._samplers:
            env = ALL_CLASSES[env_name]()
            env._freeze_rand_vec = False
            env._set_task_called = True
            env.seeded_rand_vec = True
            data = self._args_kwargs(env_name)
            del data["task_id"]
            env._set_task_inner(**data)
            self._samplers[env_name] = env
        return self._samplers[env_name]

    def _sample_one(self, rng: np.random.Generator, env_name: str | None = None) -> Task:
        if env_name is None:
            env_name = self.train_classes[int(rng.integers(len(self.train_classes)))]
        env = self._sampler(env_name)
        env.np_random = np.random.default_rng(int(rng.integers(2**63)))
        env.reset()  # Meta-World's reset draws the goal, with its own rejection rules
        return self.validate(Task(self.id, {"env_name": env_name,
                                            "rand_vec": env._last_rand_vec.copy()}))

    def split(self, n_train: int, n_test: int, seed: int = 0,
              holdout: Any = None) -> TaskSplit:
        """Meta-World's own split of ``metaworld.<benchmark>(seed=seed)``: the first
        ``n_train`` train tasks and ``n_test`` test tasks, goal by goal across classes."""
        if holdout:
            raise TaskError(f"{self.id}: Meta-World defines its own held-out split; drop holdout")
        bench = self._benchmark(seed)
        train = _interleave(bench.train_tasks, self.train_classes)
        # ML1 holds out goals of its one class, not classes
        test = _interleave(bench.test_tasks, self.test_classes or self.train_classes)
        for what, n, pool in (("train", n_train, train), ("test", n_test, test)):
            if not 1 <= n <= len(pool):
                raise TaskError(f"{self.id}: {n} {what} tasks asked for; Meta-World's "
                                f"{self.benchmark} has {len(pool)} ({GOALS_PER_CLASS} goals per "
                                f"class); pass 1..{len(pool)}")
        note = (f"Meta-World's {self.benchmark} split (seed {seed}): train classes "
                f"{self.train_classes}, test classes {self.test_classes}"
                if self.test_classes else f"Meta-World's {self.benchmark} split (seed {seed}): "
                f"test goals of {self.train_classes[0]} drawn with seed {seed + 1}")
        return TaskSplit(tuple(self.from_metaworld(t) for t in train[:n_train]),
                         tuple(self.from_metaworld(t) for t in test[:n_test]),
                         seed, None, True, [note])

    def _benchmark(self, seed: int) -> Any:
        key = (self.benchmark, tuple(self.train_classes), seed)
        if key not in _BENCHMARKS:  # building one resets every class's env 50 times
            _BENCHMARKS[key] = self._make_benchmark(seed)
        return _BENCHMARKS[key]

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes rebuild the goal samplers and benchmarks they need.
        return {**self.__dict__, "_samplers": {}, "_validated": set()}

    # ---- envs -------------------------------------------------------------------------
    def task_group(self, task: Task) -> str:
        """Results break down by Meta-World task class (``reach-v3``, ...)."""
        return str(task["env_name"])

    def make_env(self, task: TaskLike | None = None, render_mode: str | None = None) -> MetaWorldEnv:
        return MetaWorldEnv(self, task, render_mode)


class ML1(MetaWorldFamily):
    """ML1: one Meta-World class; train goals and held-out test goals of it."""

    family_id = "metarl/MetaWorld-ML1-v3"
    benchmark = "ML1"
    description = "Meta-World ML1: one manipulation task, goals differ (train vs test goals)"

    def __init__(self, env_name: str = "reach-v3", **kwargs: Any) -> None:
        if env_name not in ALL_CLASSES:
            raise ConfigError(f"ML1: unknown Meta-World task {env_name!r}; one of "
                              f"{', '.join(sorted(ALL_CLASSES))}")
        self.env_name = env_name
        super().__init__(**kwargs)

    def _classes(self) -> tuple[list[str], list[str]]:
        return [self.env_name], []

    def _make_benchmark(self, seed: int) -> Any:
        return metaworld.ML1(self.env_name, seed=seed)

    def _args_kwargs(self, env_name: str) -> dict[str, Any]:
        return dict(_mw_env_dict.ML1_ARGS_KWARGS[env_name]["kwargs"])

    def constants(self) -> dict[str, Any]:
        return {**super().constants(), "env_name": self.env_name}


class ML10(MetaWorldFamily):
    family_id = "metarl/MetaWorld-ML10-v3"
    benchmark = "ML10"
    description = "Meta-World ML10: 10 train classes, 5 held-out test classes"


class ML45(MetaWorldFamily):
    family_id = "metarl/MetaWorld-ML45-v3"
    benchmark = "ML45"
    description = "Meta-World ML45: 45 train classes, 5 held-out test classes"


class MetaWorldEnv(MetaEnv):
    """Meta-World's env of the task's class, with the task set in place.

    ``reset``/``step`` are Meta-World's (``SawyerXYZEnv``); metarl only truncates at the
    family horizon and passes ``info`` through (``info["success"]`` included)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, family: MetaWorldFamily, task: TaskLike | None = None,
                 render_mode: str | None = None) -> None:
        if render_mode is not None:
            raise ConfigError("metarl's Meta-World envs do not render; use Meta-World's own "
                              "env (family.metaworld_task(task)) for videos")
        self._envs: dict[str, Any] = {}
        self.inner: Any = None
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)
        super().__init__(family, task, render_mode)

    def _apply_task(self, task: Task) -> None:
        name = task["env_name"]
        if name not in self._envs:
            self._envs[name] = ALL_CLASSES[name](
                reward_function_version=self.family.reward_function_version)
        self.inner = self._envs[name]
        self.inner.set_task(self.family.metaworld_task(task))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._begin_episode(seed, options)
        return self.inner.reset()

    def step(self, action):
        obs, reward, terminated, truncated, info = self.inner.step(np.asarray(action))
        truncated = bool(truncated) | self._tick()
        return obs, float(reward), bool(terminated), truncated, info

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def ml1_ids() -> dict[str, str]:
    """``{family id: Meta-World class}``: one ML1 id per class."""
    return {f"metarl/MetaWorld-ML1-{name}": name for name in ALL_CLASSES}


__all__ = ["ML1", "ML10", "ML45", "MetaWorldEnv", "MetaWorldFamily", "ml1_ids"]
