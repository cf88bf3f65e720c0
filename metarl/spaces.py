"""Parameter spaces: the distributions task parameters are drawn from.

Every space samples from an explicit :class:`numpy.random.Generator` (never the
global RNG), checks membership (so a hand-written task outside the published
range is rejected with a clear message) and describes itself for ``metarl families``.

Scalar spaces return Python floats; shaped spaces return ``float64`` arrays.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

# Tolerance for membership checks: values written to JSON and read back, or
# computed as 1.5**3, must not fall out of their own space by rounding.
_TOL = 1e-9


def _fmt(x: float) -> str:
    return f"{x:.4g}"


class ParamSpace(ABC):
    """A distribution over one task parameter (a scalar or an array)."""

    shape: tuple[int, ...] = ()

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """Draw one value."""

    @abstractmethod
    def contains(self, value: Any) -> bool:
        """Whether ``value`` (already normalized by :meth:`normalize`) lies in the support."""

    @abstractmethod
    def describe(self) -> str:
        """A short human-readable description, e.g. ``U[0, 2]``."""

    def normalize(self, value: Any) -> Any:
        """Convert user input (list, int, numpy scalar) to the canonical type."""
        if self.shape == ():
            arr = np.asarray(value, dtype=np.float64)
            if arr.shape != ():
                raise ValueError(f"expected a scalar, got shape {arr.shape}")
            return float(arr)
        arr = np.array(value, dtype=np.float64)
        if arr.shape != self.shape:
            raise ValueError(f"expected shape {self.shape}, got {arr.shape}")
        arr.setflags(write=False)
        return arr

    @property
    def support(self) -> list[Any] | None:
        """All values for a finite space, ``None`` for a continuous one."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


class Uniform(ParamSpace):
    """Uniform on ``[low, high]`` (elementwise when ``shape`` is given)."""

    def __init__(self, low: float, high: float, shape: Sequence[int] = ()) -> None:
        if not low < high:
            raise ValueError(f"Uniform needs low < high, got [{low}, {high}]")
        self.low, self.high, self.shape = float(low), float(high), tuple(shape)

    def sample(self, rng: np.random.Generator) -> Any:
        value = rng.uniform(self.low, self.high, size=self.shape or None)
        return self.normalize(value)

    def contains(self, value: Any) -> bool:
        arr = np.asarray(value)
        return bool(np.all(np.isfinite(arr)) and np.all(arr >= self.low - _TOL)
                    and np.all(arr <= self.high + _TOL))

    def describe(self) -> str:
        dims = "" if not self.shape else "^" + "x".join(map(str, self.shape))
        return f"U[{_fmt(self.low)}, {_fmt(self.high)}]{dims}"


class LogUniform(ParamSpace):
    """Log-uniform on ``[low, high]``: ``exp(U[log low, log high])``.

    ``LogUniform.from_base(1.5, 3.0)`` is ``1.5 ** U(-3, 3)``, the rand-params scaling.
    """

    def __init__(self, low: float, high: float, shape: Sequence[int] = ()) -> None:
        if not 0 < low < high:
            raise ValueError(f"LogUniform needs 0 < low < high, got [{low}, {high}]")
        self.low, self.high, self.shape = float(low), float(high), tuple(shape)

    @classmethod
    def from_base(cls, base: float, limit: float, shape: Sequence[int] = ()) -> LogUniform:
        """``base ** U(-limit, limit)``."""
        return cls(base ** -limit, base ** limit, shape)

    def sample(self, rng: np.random.Generator) -> Any:
        log_value = rng.uniform(math.log(self.low), math.log(self.high), size=self.shape or None)
        return self.normalize(np.exp(log_value))

    def contains(self, value: Any) -> bool:
        arr = np.asarray(value)
        return bool(np.all(np.isfinite(arr)) and np.all(arr >= self.low * (1 - _TOL))
                    and np.all(arr <= self.high * (1 + _TOL)))

    def describe(self) -> str:
        dims = "" if not self.shape else "^" + "x".join(map(str, self.shape))
        return f"LogU[{_fmt(self.low)}, {_fmt(self.high)}]{dims}"


class Names(ParamSpace):
    """One of a finite set of names (strings), drawn uniformly: e.g. a benchmark's task
    classes."""

    def __init__(self, values: Sequence[str]) -> None:
        if len(values) == 0:
            raise ValueError("Names needs at least one value")
        self.values = [str(v) for v in values]
        self.shape = ()

    def sample(self, rng: np.random.Generator) -> str:
        return self.values[int(rng.integers(len(self.values)))]

    def normalize(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected a name (string), got {value!r}")
        return value

    def contains(self, value: Any) -> bool:
        return value in self.values

    @property
    def support(self) -> list[str]:
        return list(self.values)

    def describe(self) -> str:
        shown = ", ".join(self.values[:6]) + (f", … ({len(self.values)} in all)"
                                             if len(self.values) > 6 else "")
        return f"{{{shown}}}"


class Choice(ParamSpace):
    """One of a finite set of scalar values, with optional probabilities."""

    def __init__(self, values: Sequence[float], probs: Sequence[float] | None = None) -> None:
        if len(values) == 0:
            raise ValueError("Choice needs at least one value")
        self.values = [float(v) for v in values]
        if probs is not None:
            p = np.asarray(probs, dtype=np.float64)
            if p.shape != (len(values),) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
                raise ValueError("Choice probs must be non-negative, one per value, summing to 1")
            self.probs: list[float] | None = p.tolist()
        else:
            self.probs = None
        self.shape = ()

    def sample(self, rng: np.random.Generator) -> float:
        return self.values[int(rng.choice(len(self.values), p=self.probs))]

    def contains(self, value: Any) -> bool:
        return any(abs(float(value) - v) <= _TOL for v in self.values)

    @property
    def support(self) -> list[float]:
        return list(self.values)

    def describe(self) -> str:
        vals = ", ".join(_fmt(v) for v in self.values)
        if self.probs is None:
            return f"{{{vals}}} uniformly"
        return f"{{{vals}}} with p=({', '.join(_fmt(p) for p in self.probs)})"


class Normal(ParamSpace):
    """Gaussian ``N(mean, std²)``, elementwise; its support is the whole real line."""

    def __init__(self, mean: float, std: float, shape: Sequence[int] = ()) -> None:
        if std <= 0:
            raise ValueError(f"Normal needs std > 0, got {std}")
        self.mean, self.std, self.shape = float(mean), float(std), tuple(shape)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.normalize(rng.normal(self.mean, self.std, size=self.shape or None))

    def contains(self, value: Any) -> bool:
        return bool(np.all(np.isfinite(np.asarray(value))))

    def describe(self) -> str:
        dims = "" if not self.shape else "^" + "x".join(map(str, self.shape))
        return f"N({_fmt(self.mean)}, {_fmt(self.std)}²){dims}"


class Dirichlet(ParamSpace):
    """Dirichlet over the last axis: ``shape = batch_shape + (size,)``.

    ``Dirichlet(1.0, size=10, batch_shape=(10, 5))`` is a flat prior over the
    next-state distribution of every (state, action) pair of a 10x5 tabular MDP.
    """

    def __init__(self, alpha: float, size: int, batch_shape: Sequence[int] = ()) -> None:
        if alpha <= 0 or size < 2:
            raise ValueError("Dirichlet needs alpha > 0 and size >= 2")
        self.alpha, self.size = float(alpha), int(size)
        self.shape = (*tuple(batch_shape), self.size)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        batch = self.shape[:-1]
        value = rng.dirichlet(np.full(self.size, self.alpha), size=batch or None)
        return self.normalize(value)

    def contains(self, value: Any) -> bool:
        arr = np.asarray(value)
        return bool(np.all(np.isfinite(arr)) and np.all(arr >= -_TOL)
                    and np.allclose(arr.sum(axis=-1), 1.0, atol=1e-6))

    def describe(self) -> str:
        batch = self.shape[:-1]
        prefix = "x".join(map(str, batch)) + " x " if batch else ""
        return f"{prefix}Dirichlet({_fmt(self.alpha)}·1_{self.size})"


class UniformDisk(ParamSpace):
    """A point uniform on the disk of ``radius`` (area-uniform: r = R·sqrt(U), θ = 2πU)."""

    def __init__(self, radius: float) -> None:
        if radius <= 0:
            raise ValueError("UniformDisk needs radius > 0")
        self.radius = float(radius)
        self.shape = (2,)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        r = self.radius * math.sqrt(rng.uniform())
        theta = 2 * math.pi * rng.uniform()
        return self.normalize([r * math.cos(theta), r * math.sin(theta)])

    def contains(self, value: Any) -> bool:
        arr = np.asarray(value)
        return bool(np.all(np.isfinite(arr)) and np.linalg.norm(arr) <= self.radius + _TOL)

    def describe(self) -> str:
        return f"uniform on disk r≤{_fmt(self.radius)}"


__all__ = ["ParamSpace", "Uniform", "LogUniform", "Choice", "Normal", "Dirichlet", "UniformDisk"]
