"""The task-family contract: a parameter space, a task sampler, a held-out split,
and a ``gymnasium.Env`` per task that can switch task in place.

A family in a few lines::

    class Reach1D(TaskFamily):
        family_id = "mylab/Reach1D-v0"
        task_space = {"target": Uniform(-1.0, 1.0)}
        horizon = 20
        varies = "reward"
        source = "ours"

        def make_env(self, task=None, render_mode=None):
            return Reach1DEnv(self, task)

    metarl.register(Reach1D)
"""

from __future__ import annotations

import json
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from metarl.errors import ConfigError, TaskError
from metarl.spaces import ParamSpace
from metarl.task import Task

TaskLike = Task | Mapping[str, Any] | str

# Tasks a family has checked and may return unchanged (bounded: cleared when full).
_VALIDATED_CACHE_SIZE = 4096


@dataclass(frozen=True)
class TaskSplit:
    """Train and held-out test tasks of one family, reproducible from ``seed``."""

    train: tuple[Task, ...]
    test: tuple[Task, ...]
    seed: int
    holdout: dict[str, tuple[float, float]] | None = None
    disjoint: bool = True
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "holdout": self.holdout,
            "disjoint": self.disjoint,
            "train": [t.to_dict() for t in self.train],
            "test": [t.to_dict() for t in self.test],
        }


class TaskFamily(ABC):
    """Base class of every task family.

    Subclasses set the class attributes below and implement :meth:`make_env`.
    Constants that published variants disagree on are constructor keyword
    arguments, so a variant is one keyword (or one registered preset) away.
    """

    #: default registered id, ``namespace/Name-vN``; a new constant set is a new version.
    family_id: ClassVar[str] = ""
    #: ``"reward"`` or ``"dynamics"``: what differs between tasks.
    varies: ClassVar[str] = "reward"
    #: paper or repository the constants come from.
    source: ClassVar[str] = ""
    #: one line on what the family is.
    description: ClassVar[str] = ""
    #: steps per episode.
    horizon: int = 100
    #: parameter name -> space; subclasses whose space depends on constants set it in __init__.
    task_space: dict[str, ParamSpace] = {}

    def __init__(self, *, family_id: str | None = None, horizon: int | None = None) -> None:
        self.id = family_id or type(self).family_id or type(self).__name__
        if horizon is not None:
            if int(horizon) < 1:
                raise ConfigError(f"horizon must be >= 1, got {horizon}")
            self.horizon = int(horizon)
        self.task_space = dict(self.task_space)
        self._validated: set[Task] = set()

    # ---- constants ------------------------------------------------------------------
    def constants(self) -> dict[str, Any]:
        """Constants that define this family (for the docs table and run folders)."""
        return {"horizon": self.horizon}

    # ---- tasks ----------------------------------------------------------------------
    def default_task(self) -> Task:
        """The task ``gymnasium.make(id)`` uses when none is given: the space's centre
        for continuous parameters, the first value for finite ones (documented per family)."""
        params = {}
        for name, space in self.task_space.items():
            if space.support is not None:
                params[name] = space.support[0]
            else:
                params[name] = self._centre(name, space)
        return self.validate(Task(self.id, params))

    def _centre(self, name: str, space: ParamSpace) -> Any:
        low = getattr(space, "low", None)
        high = getattr(space, "high", None)
        if low is not None and high is not None:
            mid = math.sqrt(low * high) if type(space).__name__ == "LogUniform" else (low + high) / 2
            return np.full(space.shape, mid) if space.shape else mid
        if hasattr(space, "mean"):
            return np.full(space.shape, space.mean) if space.shape else space.mean
        # Fall back to a fixed draw so the default is still deterministic.
        return space.sample(np.random.default_rng(0))

    def task(self, **params: Any) -> Task:
        """Build and validate a task of this family from keyword parameters."""
        return self.validate(Task(self.id, params))

    def sample_tasks(self, n: int, rng: np.random.Generator | int | None = None) -> list[Task]:
        """Draw ``n`` tasks from the task space with an explicit generator (or a seed)."""
        if not isinstance(rng, np.random.Generator):
            if rng is None:
                raise TypeError("sample_tasks needs an explicit numpy Generator or an int seed")
            rng = np.random.default_rng(rng)
        return [self._sample_one(rng) for _ in range(int(n))]

    def _sample_one(self, rng: np.random.Generator) -> Task:
        return Task(self.id, {name: space.sample(rng) for name, space in self.task_space.items()})

    def validate(self, task: TaskLike | None) -> Task:
        """Return ``task`` as a :class:`Task` of this family, or raise :class:`TaskError`.

        Accepts a Task, a plain ``{name: value}`` dict, a ``{"family", "params"}`` dict,
        or either as a JSON string. ``None`` means the default task.
        """
        if task is None:
            return self.default_task()
        if isinstance(task, Task) and task in self._validated:
            return task  # already checked: samplers re-validate the same tasks every iteration
        if isinstance(task, str):
            text = task.strip()
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise TaskError(
                    f"{self.id}: malformed task JSON ({exc.msg} at char {exc.pos}): {text[:200]!r}. "
                    f"Expected e.g. {json.dumps(self._example_params())}"
                ) from None
            return self.validate(data)
        if isinstance(task, Mapping) and not isinstance(task, Task):
            task = Task.from_dict(task) if set(task) == {"family", "params"} else Task(self.id, dict(task))
        if not isinstance(task, Task):
            raise TaskError(f"{self.id}: expected a Task, dict or JSON string, got {type(task).__name__}")
        if task.family != self.id:
            raise TaskError(
                f"task belongs to family {task.family!r}, not {self.id!r}; sample tasks from "
                f"metarl.make_family({self.id!r}) instead"
            )
        expected, given = set(self.task_space), set(task)
        if expected != given:
            missing, extra = sorted(expected - given), sorted(given - expected)
            raise TaskError(
                f"{self.id}: task parameters must be {sorted(expected)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {extra}" if extra else "")
            )
        params = {}
        for name, space in self.task_space.items():
            try:
                value = space.normalize(task[name])
            except (TypeError, ValueError) as exc:
                raise TaskError(f"{self.id}: parameter {name!r}: {exc}") from None
            if not space.contains(value):
                raise TaskError(
                    f"{self.id}: parameter {name!r}={_short(value)} is outside its space "
                    f"{space.describe()}; pass a value inside it, or register a variant of the "
                    "family with a wider range"
                )
            params[name] = value
        valid = Task(self.id, params)
        if len(self._validated) >= _VALIDATED_CACHE_SIZE:
            self._validated.clear()
        self._validated.add(valid)
        return valid

    def _example_params(self) -> dict[str, Any]:
        return self.default_task().to_dict()["params"]

    def is_finite(self) -> bool:
        """True when every parameter takes finitely many values (e.g. HalfCheetahDir)."""
        return all(space.support is not None for space in self.task_space.values())

    # ---- train / test split -----------------------------------------------------------
    def split(
        self,
        n_train: int,
        n_test: int,
        seed: int = 0,
        holdout: Mapping[str, Sequence[float]] | None = None,
    ) -> TaskSplit:
        """Reproducible train / held-out test tasks.

        Without ``holdout``: both halves come from the task distribution, from
        independent random streams of ``seed``; train tasks equal to a test task are
        redrawn, so the halves are disjoint by construction. With
        ``holdout={"goal_velocity": (2.5, 3.0)}``: test tasks have every listed
        parameter inside its range (all elements, for array parameters) and train
        tasks have at least one outside: an out-of-distribution test.

        A finite family (every parameter a Choice) cannot hold tasks out; its split
        draws both halves from the same finite set, says so in ``notes`` and warns.
        """
        seq = np.random.SeedSequence(seed)
        test_rng, train_rng = (np.random.default_rng(s) for s in seq.spawn(2))
        notes: list[str] = []
        if holdout:
            ranges = self._check_holdout(holdout)

            def inside(t: Task) -> bool:
                return all(np.all((np.asarray(t[k]) >= lo) & (np.asarray(t[k]) <= hi))
                           for k, (lo, hi) in ranges.items())

            test = self._rejection_sample(n_test, test_rng, inside, "inside the holdout ranges")
            train = self._rejection_sample(
                n_train, train_rng, lambda t: not inside(t), "outside the holdout ranges")
            return TaskSplit(tuple(train), tuple(test), seed, ranges, True, notes)
        if self.is_finite():
            msg = (f"{self.id} has a finite task set; train and test tasks are drawn from the "
                   "same values, so the test tasks are not held out")
            warnings.warn(msg, stacklevel=2)
            notes.append(msg)
            test = self.sample_tasks(n_test, test_rng)
            train = self.sample_tasks(n_train, train_rng)
            return TaskSplit(tuple(train), tuple(test), seed, None, False, notes)
        test = self.sample_tasks(n_test, test_rng)
        test_set = set(test)
        train = self._rejection_sample(n_train, train_rng, lambda t: t not in test_set,
                                       "distinct from the test tasks")
        return TaskSplit(tuple(train), tuple(test), seed, None, True, notes)

    def _check_holdout(self, holdout: Mapping[str, Sequence[float]]) -> dict[str, tuple[float, float]]:
        ranges = {}
        for name, bounds in holdout.items():
            if name not in self.task_space:
                raise TaskError(f"{self.id}: holdout names unknown parameter {name!r}; "
                                f"parameters are {sorted(self.task_space)}")
            lo, hi = (float(b) for b in bounds)
            if not lo <= hi:
                raise TaskError(f"{self.id}: holdout range for {name!r} must have low <= high")
            ranges[name] = (lo, hi)
        return ranges

    def _rejection_sample(self, n: int, rng: np.random.Generator, accept: Any, what: str) -> list[Task]:
        tasks: list[Task] = []
        tries, max_tries = 0, 1000 * max(n, 1)
        while len(tasks) < n:
            if tries >= max_tries:
                raise TaskError(f"{self.id}: could not draw {n} tasks {what} in {max_tries} tries; "
                                "the region has (almost) no probability mass")
            tries += 1
            t = self._sample_one(rng)
            if accept(t):
                tasks.append(t)
        return tasks

    # ---- envs -----------------------------------------------------------------------
    @abstractmethod
    def make_env(self, task: TaskLike | None = None, render_mode: str | None = None) -> MetaEnv:
        """A ``gymnasium.Env`` for ``task`` (the default task when ``None``)."""

    def task_features(self, task: Task) -> np.ndarray:
        """The task as a flat float vector (what the ``oracle`` baseline observes): its
        parameters in ``task_space`` order, arrays flattened, a name one-hot over its
        space's names. Override where the parameters are not numbers of a fixed size."""
        parts = []
        for name, space in self.task_space.items():
            value = task[name]
            if isinstance(value, str):
                parts.append(np.asarray([v == value for v in space.support], dtype=np.float64))
            else:
                parts.append(np.asarray(value, dtype=np.float64).reshape(-1))
        return np.concatenate(parts) if parts else np.zeros(0)

    def task_group(self, task: Task) -> str | None:
        """The class a task belongs to, for results broken down by class (Meta-World: its
        environment name); ``None``: the family's tasks form one group."""
        return None

    def describe(self) -> dict[str, Any]:
        """Everything ``metarl families`` / ``metarl show`` print."""
        return {
            "id": self.id,
            "varies": self.varies,
            "params": {name: space.describe() for name, space in self.task_space.items()},
            "horizon": self.horizon,
            "source": self.source,
            "description": self.description,
            "constants": self.constants(),
        }


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=4, separator=", ", threshold=8)
    return repr(value)


class MetaEnv(gym.Env):
    """A ``gymnasium.Env`` bound to one task of a family, switchable in place.

    Subclasses implement ``reset`` / ``step`` and may override :meth:`_apply_task`
    to update cached task data (a goal vector, a simulator model) when the task changes.
    The task can be switched with :meth:`set_task` or ``reset(options={"task": ...})``.
    Episodes are truncated after ``family.horizon`` steps by the env itself, so the
    horizon is a family constant rather than a wrapper setting.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, family: TaskFamily, task: TaskLike | None = None,
                 render_mode: str | None = None) -> None:
        self.family = family
        self.render_mode = render_mode
        self.horizon = family.horizon
        self._elapsed = 0
        self._task = family.validate(task)
        self._apply_task(self._task)

    def set_task(self, task: TaskLike) -> None:
        """Switch to another task of the same family without rebuilding the env.
        Takes effect immediately; call ``reset`` to start an episode in it."""
        self._task = self.family.validate(task)
        self._apply_task(self._task)

    def get_task(self) -> Task:
        return self._task

    @property
    def task(self) -> Task:
        return self._task

    def _apply_task(self, task: Task) -> None:
        """Hook: refresh whatever the env caches from the task."""

    def _begin_episode(self, seed: int | None, options: dict[str, Any] | None) -> None:
        """Call at the top of ``reset``: seeds ``np_random``, switches task if asked."""
        super().reset(seed=seed)
        if options and "task" in options:
            self.set_task(options["task"])
        self._elapsed = 0

    def _tick(self) -> bool:
        """Count a step; True when the horizon is reached (truncation)."""
        self._elapsed += 1
        return self._elapsed >= self.horizon
