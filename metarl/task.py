"""Tasks: immutable, JSON-serializable sets of named parameters.

A :class:`Task` names the family it belongs to and holds its parameter values.
Same task, same MDP: two tasks are equal (and hash equal) exactly when their
family id and every parameter value are equal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from metarl.errors import TaskError


def _freeze(value: Any) -> Any:
    """Canonical immutable form: Python float/int/str, or a read-only float64 array."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return value
    arr = np.array(value, dtype=np.float64)
    if arr.shape == ():
        return float(arr)
    arr.setflags(write=False)
    return arr


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class Task(Mapping[str, Any]):
    """An immutable mapping ``parameter name -> value`` tagged with its family id.

    >>> t = Task("metarl/PointNav2D-v0", goal=[0.1, -0.2])
    >>> Task.from_json(t.to_json()) == t
    True
    """

    __slots__ = ("_family", "_params", "_key")

    def __init__(self, family: str, params: Mapping[str, Any] | None = None, **kwargs: Any):
        merged = dict(params or {}, **kwargs)
        object.__setattr__(self, "_family", str(family))
        frozen = {name: _freeze(merged[name]) for name in sorted(merged)}
        object.__setattr__(self, "_params", frozen)
        # The equality / hashing key is built on first use: samplers draw thousands of
        # tasks per iteration (RL² fresh tabular MDPs) and never compare them.
        object.__setattr__(self, "_key", None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Task is immutable; make a new one with task.replace(...)")

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle (Ray, multiprocessing) through the constructor: attributes are write-protected.
        return (Task, (self._family, dict(self._params)))

    @property
    def family(self) -> str:
        """The id of the family this task belongs to, e.g. ``metarl/PointNav2D-v0``."""
        return self._family

    def __getitem__(self, name: str) -> Any:
        try:
            return self._params[name]
        except KeyError:
            raise KeyError(
                f"task of {self._family} has no parameter {name!r}; it has {sorted(self._params)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def _identity(self) -> str:
        """Exact float values via JSON (repr round-trips float64), with the family id."""
        if self._key is None:
            key = json.dumps([self._family, {k: _to_jsonable(v) for k, v in self._params.items()}])
            object.__setattr__(self, "_key", key)
        return self._key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other._identity() == self._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        def short(v: Any) -> str:
            if isinstance(v, np.ndarray):
                if v.size <= 6:
                    return np.array2string(v, precision=4, separator=", ")
                return f"array(shape={v.shape})"
            return f"{v:.4g}" if isinstance(v, float) else repr(v)

        body = ", ".join(f"{k}={short(v)}" for k, v in self._params.items())
        return f"Task({self._family!r}, {body})"

    def replace(self, **changes: Any) -> Task:
        """A copy with some parameters changed."""
        return Task(self._family, {**self._params, **changes})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"family": id, "params": {...}}``."""
        return {"family": self._family, "params": {k: _to_jsonable(v) for k, v in self._params.items()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        if not isinstance(data, Mapping) or "family" not in data or "params" not in data:
            raise TaskError(
                'a task must be a JSON object {"family": "<id>", "params": {...}}; '
                f"got {str(data)[:200]!r}"
            )
        if not isinstance(data["params"], Mapping):
            raise TaskError(f"task 'params' must be an object, got {type(data['params']).__name__}")
        return cls(data["family"], data["params"])

    @classmethod
    def from_json(cls, text: str) -> Task:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaskError(f"malformed task JSON ({exc.msg} at char {exc.pos}): {text[:200]!r}") from None
        return cls.from_dict(data)


def save_tasks(path: str, tasks: list[Task]) -> None:
    """Write a task list as one JSON array."""
    with open(path, "w") as fh:
        json.dump([t.to_dict() for t in tasks], fh, indent=1)


def load_tasks(path: str) -> list[Task]:
    """Read a task list written by :func:`save_tasks`."""
    with open(path) as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise TaskError(f"{path}: malformed task list JSON ({exc.msg})") from None
    if not isinstance(data, list):
        raise TaskError(f"{path}: expected a JSON array of tasks")
    return [Task.from_dict(d) for d in data]
