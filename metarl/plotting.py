"""Adaptation-curve figures: one or several runs on one axis.

The x axis is episodes of experience in the new task, so gradient-based agents
(k steps × episodes per step) and RL² (episode k of a trial has k − 1 episodes before it)
share it. Shaded bands are 95% confidence intervals over tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from metarl.evaluation import Curve, read_curves  # noqa: E402


def plot_curves(curves: Sequence[Curve], path: str | Path, title: str = "",
                ylabel: str = "mean return on held-out tasks") -> Path:
    """Draw ``curves`` (mean ± 95% CI vs episodes of experience) to ``path`` (PNG)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for curve in curves:
        x, y = curve.episodes, curve.mean
        line, = ax.plot(x, y, marker="o", label=f"{curve.label} (n={curve.n_tasks})")
        lo = [m - (c if c == c else 0.0) for m, c in zip(curve.mean, curve.ci95, strict=True)]
        hi = [m + (c if c == c else 0.0) for m, c in zip(curve.mean, curve.ci95, strict=True)]
        ax.fill_between(x, lo, hi, alpha=0.2, color=line.get_color())
        if curve.budget_unit == "inner steps":
            for xi, yi, b in zip(x, y, curve.budgets, strict=True):
                ax.annotate(str(b), (xi, yi), textcoords="offset points", xytext=(0, 6),
                            fontsize=7, ha="center", color=line.get_color())
    annotated = any(c.budget_unit == "inner steps" for c in curves)
    ax.set_xlabel("episodes of experience in the new task"
                  + (" (labels: gradient steps)" if annotated else ""))
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, title: str = "",
              include_random: bool = False) -> Path:
    """Put the evaluated curves of several runs (their ``eval/curve.json``) on one figure."""
    curves: list[Curve] = []
    for d in run_dirs:
        p = Path(d)
        json_path = p if p.suffix == ".json" else p / "eval" / "curve.json"
        if not json_path.is_file():
            raise FileNotFoundError(f"{json_path} not found; run `metarl evaluate {d}` first")
        for i, c in enumerate(read_curves(json_path)):
            if i > 0 and "random init" in c.label and not include_random:
                continue
            if len(run_dirs) > 1 and p.is_dir():
                c.label = f"{p.name}: {c.label}"
            curves.append(c)
    return plot_curves(curves, out, title=title or "held-out adaptation curves")


__all__ = ["plot_curves", "plot_runs"]
