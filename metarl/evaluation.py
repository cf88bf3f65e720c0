"""One evaluation protocol for every agent: the adaptation curve on held-out tasks.

An agent reports, for each held-out task, the mean return at each adaptation budget
(:class:`AdaptationResult`): after 0, 1, …, K gradient steps (MAML, Meta-SGD) or in
episode 1, …, K of a trial (RL²). The x axis common to all agents is the number of
episodes of experience in the new task *before* the point: ``k · episodes-per-step``
for gradient steps, ``k − 1`` for RL²'s k-th episode. :func:`summarize` turns the
per-task numbers into a mean and a 95% confidence interval over tasks;
:func:`evaluate_run` does it for a trained run and for a randomly initialized agent,
and writes ``eval/curve.csv``, ``eval/curve.json`` and ``eval/curve.png`` in the run.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metarl.agent import AdaptationResult
from metarl.errors import ConfigError

# Two-sided 95% Student-t quantiles for df = 1..30 (beyond that, the normal 1.96 is
# within 2%); keeps scipy out of the dependencies.
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t95(df: int) -> float:
    """Two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return float("nan")
    return _T95[df - 1] if df <= len(_T95) else 1.96 + 2.4 / df  # ≈ t, error < 0.2% past 30


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval (t-interval over the values)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float("nan")
    return float(x.mean()), float(t95(x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


@dataclass
class Curve:
    """An adaptation curve: mean and 95% CI over tasks at each budget."""

    label: str
    budgets: list[int]
    episodes: list[float]
    mean: list[float]
    ci95: list[float]
    n_tasks: int
    budget_unit: str = "inner steps"
    success_mean: list[float] | None = None
    success_ci95: list[float] | None = None
    per_task: list[list[float]] = field(default_factory=list)
    #: success of each task at each budget (families that define success), to pool over seeds
    per_task_success: list[list[float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Curve:
        return cls(**data)


def summarize(result: AdaptationResult, label: str) -> Curve:
    """Mean and 95% CI over tasks of an :class:`AdaptationResult`."""
    returns = np.asarray(result.returns, dtype=np.float64)
    stats = [mean_ci95(row) for row in returns]
    succ_mean = succ_ci = None
    per_task_success: list[list[float]] = []
    if result.success is not None:
        success = np.asarray(result.success, dtype=np.float64)
        s = [mean_ci95(row) for row in success]
        succ_mean, succ_ci = [m for m, _ in s], [c for _, c in s]
        per_task_success = success.tolist()
    return Curve(label=label, budgets=[int(b) for b in result.budgets],
                 episodes=[float(e) for e in result.episodes],
                 mean=[m for m, _ in stats], ci95=[c for _, c in stats],
                 n_tasks=int(returns.shape[1]), budget_unit=result.budget_unit,
                 success_mean=succ_mean, success_ci95=succ_ci, per_task=returns.tolist(),
                 per_task_success=per_task_success)


def per_group(result: AdaptationResult, groups: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Mean and 95% CI of the return (and success) at each budget over the tasks of each
    group, ``groups[i]`` naming task i's (Meta-World: per task class)."""
    out: dict[str, dict[str, Any]] = {}
    returns = np.asarray(result.returns, dtype=np.float64)
    for name in sorted(set(groups)):
        cols = [i for i, g in enumerate(groups) if g == name]
        stats = [mean_ci95(row[cols]) for row in returns]
        entry: dict[str, Any] = {"n_tasks": len(cols), "mean": [m for m, _ in stats],
                                 "ci95": [c for _, c in stats]}
        if result.success is not None:
            succ = [mean_ci95(row[cols]) for row in np.asarray(result.success, dtype=np.float64)]
            entry.update(success_mean=[m for m, _ in succ], success_ci95=[c for _, c in succ])
        out[name] = entry
    return out


def write_curves(curves: Sequence[Curve], out_dir: str | Path, stem: str = "curve",
                 extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``stem.json`` (everything), ``stem.csv`` (one row per curve and budget)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {**(extra or {}), "curves": [c.to_dict() for c in curves]}
    json_path, csv_path = out / f"{stem}.json", out / f"{stem}.csv"
    json_path.write_text(json.dumps(doc, indent=1))
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "budget", "budget_unit", "episodes", "mean_return", "ci95",
                    "n_tasks", "success_mean", "success_ci95"])
        for c in curves:
            for i, b in enumerate(c.budgets):
                w.writerow([c.label, b, c.budget_unit, c.episodes[i], c.mean[i], c.ci95[i],
                            c.n_tasks, c.success_mean[i] if c.success_mean else "",
                            c.success_ci95[i] if c.success_ci95 else ""])
    return {"json": json_path, "csv": csv_path}


def read_curves(path: str | Path) -> list[Curve]:
    """Curves from a JSON written by :func:`write_curves` (a file or a run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "eval" / "curve.json"
    data = json.loads(path.read_text())
    return [Curve.from_dict(c) for c in data["curves"]]


def _trained_run(run_dir: str | Path, num_tasks: int | None) -> tuple[Any, list[Any], Any, int]:
    """``(run, its first num_tasks test tasks, the trained agent, its last iteration)``,
    with the run's thread count applied: what every evaluation starts from."""
    from metarl.runs import apply_threads, open_run  # runs imports this module

    run = open_run(run_dir)
    apply_threads(run.config)
    tasks = run.test_tasks if num_tasks is None else run.test_tasks[:int(num_tasks)]
    if not tasks:
        raise ConfigError(f"{run.path}: no test tasks to evaluate on")
    agent, iteration = run.load_agent()
    return run, tasks, agent, iteration


def evaluate_run(run_dir: str | Path, budget: int | None = None, num_tasks: int | None = None,
                 episodes: int | None = None, seed: int = 12345, random_baseline: bool = True,
                 plot: bool = True) -> dict[str, Any]:
    """Adaptation curve of a trained run on its held-out tasks (and of a random init).

    Writes ``eval/curve.json``, ``eval/curve.csv`` and (``plot``) ``eval/curve.png`` in the
    run folder and returns ``{"curves": [...], "paths": {...}}``.
    """
    run, tasks, agent, iteration = _trained_run(run_dir, num_tasks)
    cfg = run.config
    budget = int(cfg.eval_steps if budget is None else budget)
    episodes = int(cfg.eval_episodes if episodes is None else episodes)
    t0 = time.perf_counter()
    try:
        trained = agent.evaluate_adaptation(tasks, budget, episodes, seed)
    finally:
        agent.close()
    wall = time.perf_counter() - t0
    name = run.spec.name
    curves = [summarize(trained, f"{name} (iteration {iteration + 1})")]
    if random_baseline:
        fresh = run.make_agent(seed=cfg.seed + 1_000_003)  # an untrained, different init
        try:
            curves.append(summarize(fresh.evaluate_adaptation(tasks, budget, episodes, seed),
                                    f"{name}, random init"))
        finally:
            fresh.close()
    extra = {"run": str(run.path), "agent": name, "family": cfg.family,
             "iteration": iteration + 1, "num_tasks": len(tasks), "episodes_per_budget": episodes,
             "seed": seed, "wall_clock_s": wall}
    groups = [agent.family.task_group(t) for t in tasks]
    if any(g is not None for g in groups):  # e.g. Meta-World: per task class
        extra["per_class"] = per_group(trained, [str(g) for g in groups])
    paths = write_curves(curves, run.path / "eval", extra=extra)
    if plot:
        from metarl.plotting import plot_curves

        paths["png"] = plot_curves(curves, run.path / "eval" / "curve.png",
                                   title=f"{name} on {cfg.family}: held-out adaptation")
    return {"curves": curves, "paths": paths, **extra}


@dataclass(frozen=True)
class Protocol:
    """A benchmark's fixed evaluation: how much a held-out task is adapted to, and which
    episodes are scored. Gradient agents take ``adaptation_steps`` inner steps of
    ``adaptation_episodes`` episodes each and are scored on fresh episodes of the adapted
    policy; trial agents run ``adaptation_episodes`` episodes of a trial with memory, then
    are scored on its next ``evaluation_episodes``."""

    name: str
    adaptation_steps: int
    adaptation_episodes: int
    evaluation_episodes: int
    source: str
    #: how metarl's evaluation differs from the source's.
    differences: str = ""


#: Meta-World's meta-RL evaluation (``metaworld.evaluation.metalearning_evaluation``).
METAWORLD = Protocol(
    "metaworld", adaptation_steps=1, adaptation_episodes=10, evaluation_episodes=3,
    source="metaworld.evaluation.metalearning_evaluation (Meta-World 3.x): per test env, 1 "
           "adaptation step on 10 episodes, then 3 evaluation episodes; an episode succeeds "
           "when info['success'] is 1 at any step; mean success and return, and success per "
           "task class",
    differences="every held-out task of the run once (Meta-World: 10 rounds of one sampled "
                "goal per class); gradient agents are scored on the 10 episodes sampled "
                "after their adaptation step (the same success probability as Meta-World's "
                "3, with less variance); episodes are not cut at success (Meta-World's "
                "evaluation terminates them there, which shortens its returns, not its "
                "success)")
PROTOCOLS = {"metaworld": METAWORLD}


def evaluate_protocol(run_dir: str | Path, protocol: Protocol = METAWORLD,
                      num_tasks: int | None = None, seed: int = 12345) -> dict[str, Any]:
    """A trained run scored by ``protocol`` on its held-out tasks: success rate and return,
    mean and 95% CI over tasks, overall and per task class (:meth:`TaskFamily.task_group`).
    Writes ``eval/protocol_<name>.json`` in the run folder and returns its content."""
    run, tasks, agent, iteration = _trained_run(run_dir, num_tasks)
    t0 = time.perf_counter()
    try:
        if agent.budget_unit == "inner steps":
            res = agent.evaluate_adaptation(tasks, protocol.adaptation_steps,
                                            protocol.adaptation_episodes, seed)
            rows = slice(-1, None)  # after the last adaptation step
        else:
            res = agent.evaluate_adaptation(
                tasks, protocol.adaptation_episodes + protocol.evaluation_episodes, 1, seed)
            rows = slice(protocol.adaptation_episodes, None)
    finally:
        agent.close()
    if res.success is None:
        raise ConfigError(f"{run.config.family} defines no success: the {protocol.name} "
                          "protocol scores success rates")
    scored = AdaptationResult(budgets=[0], episodes=[0.0],
                              returns=res.returns[rows].mean(0, keepdims=True),
                              success=res.success[rows].mean(0, keepdims=True))
    groups = [str(agent.family.task_group(t) or "all") for t in tasks]
    classes = per_group(scored, groups)
    success, ret = mean_ci95(scored.success[0]), mean_ci95(scored.returns[0])
    doc = {"protocol": asdict(protocol), "run": str(run.path), "agent": run.spec.name,
           "family": run.config.family, "iteration": iteration + 1, "num_tasks": len(tasks),
           "seed": seed, "wall_clock_s": time.perf_counter() - t0,
           "success": {"mean": success[0], "ci95": success[1]},
           "return": {"mean": ret[0], "ci95": ret[1]},
           "per_class": {name: {"n_tasks": c["n_tasks"],
                                "success": {"mean": c["success_mean"][0],
                                            "ci95": c["success_ci95"][0]},
                                "return": {"mean": c["mean"][0], "ci95": c["ci95"][0]}}
                         for name, c in classes.items()},
           "per_task_class": groups,
           "per_task_success": scored.success[0].tolist(),
           "per_task_return": scored.returns[0].tolist()}
    out = run.path / "eval"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"protocol_{protocol.name}.json").write_text(json.dumps(doc, indent=1))
    return doc


__all__ = ["METAWORLD", "PROTOCOLS", "AdaptationResult", "Curve", "Protocol", "evaluate_protocol",
           "evaluate_run", "mean_ci95", "per_group", "read_curves", "summarize", "t95",
           "write_curves"]
