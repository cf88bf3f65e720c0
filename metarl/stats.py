"""Aggregate statistics across tasks and runs, after Agarwal et al. 2021 ("Deep RL at the
Edge of the Statistical Precipice"): the interquartile mean, stratified-bootstrap
confidence intervals and the probability of improvement.

Scores are ``(runs, tasks)`` arrays (here a "task" is a task family and a run is a seed),
normalized so that families are comparable. The functions follow the paper's definitions
(and rliable 1.2's conventions, which this module replaces: rliable is archived):

- :func:`iqm`: the mean of the middle 50% of all scores, ``int(0.25 n)`` cut from each
  end (``scipy.stats.trim_mean(x, 0.25)``);
- :func:`stratified_bootstrap_ci`: resample runs with replacement *within each task*
  (each column keeps its size), recompute the statistic, take percentiles;
- :func:`probability_of_improvement`: the mean over tasks of ``P(X > Y) + ½ P(X = Y)``
  between the runs of X and of Y on that task (the Mann-Whitney U statistic over m·n).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of every entry of ``scores``."""
    x = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1))
    if x.size == 0:
        raise ValueError("iqm of no scores")
    cut = int(0.25 * x.size)
    return float(x[cut:x.size - cut].mean())


def _as_matrix(scores: np.ndarray) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"scores must be a (runs, tasks) array, got shape {x.shape}")
    return x


def stratified_bootstrap_ci(scores: np.ndarray, statistic: Callable[[np.ndarray], float] = iqm,
                            reps: int = 2000, confidence: float = 0.95,
                            seed: int = 0) -> tuple[float, float, float]:
    """``(statistic, low, high)``: the statistic of ``scores`` and its percentile CI over
    ``reps`` stratified bootstrap resamples (runs resampled independently per task)."""
    x = _as_matrix(scores)
    runs, tasks = x.shape
    rng = np.random.default_rng(seed)
    cols = np.arange(tasks)
    stats = np.empty(reps)
    for r in range(reps):
        rows = rng.integers(runs, size=(runs, tasks))
        stats[r] = statistic(x[rows, cols])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(statistic(x)), float(low), float(high)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """``P(X > Y)``: the mean over tasks of ``P(x > y) + ½ P(x = y)`` over all pairs of a
    run of X and a run of Y on that task. ``x`` is ``(m, tasks)``, ``y`` ``(n, tasks)``."""
    a, b = _as_matrix(x), _as_matrix(y)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must score the same tasks: {a.shape[1]} vs {b.shape[1]}")
    greater = (a[:, None, :] > b[None, :, :]).mean((0, 1))
    ties = (a[:, None, :] == b[None, :, :]).mean((0, 1))
    return float((greater + 0.5 * ties).mean())


def probability_of_improvement_ci(x: np.ndarray, y: np.ndarray, reps: int = 2000,
                                  confidence: float = 0.95, seed: int = 0
                                  ) -> tuple[float, float, float]:
    """:func:`probability_of_improvement` and its stratified-bootstrap CI (the runs of X
    and of Y resampled independently within each task)."""
    a, b = _as_matrix(x), _as_matrix(y)
    rng = np.random.default_rng(seed)
    cols = np.arange(a.shape[1])
    stats = np.empty(reps)
    for r in range(reps):
        ra = rng.integers(a.shape[0], size=a.shape)
        rb = rng.integers(b.shape[0], size=b.shape)
        stats[r] = probability_of_improvement(a[ra, cols], b[rb, cols])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(stats, [tail, 100 - tail])
    return probability_of_improvement(a, b), float(low), float(high)


__all__ = ["iqm", "probability_of_improvement", "probability_of_improvement_ci",
           "stratified_bootstrap_ci"]
