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

#: Line styles and markers of the 1st, 2nd, ... round of the 10 default colours: past 10
#: curves a colour comes back in another style (40 curves look all different).
_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"))


def _style(i: int) -> dict[str, str]:
    """The colour, line style and marker of the ``i``-th curve of a figure."""
    linestyle, marker = _STYLES[(i // 10) % len(_STYLES)]
    return {"color": f"C{i % 10}", "linestyle": linestyle, "marker": marker}


def _draw(ax: plt.Axes, curve: Curve, mean: Sequence[float], ci: Sequence[float],
          label: str | None, style: dict[str, str]) -> None:
    """One curve with its 95% band (and gradient-step labels), drawn in ``style``."""
    x = curve.episodes
    line, = ax.plot(x, mean, label=label, **style)
    lo = [m - (c if c == c else 0.0) for m, c in zip(mean, ci, strict=True)]
    hi = [m + (c if c == c else 0.0) for m, c in zip(mean, ci, strict=True)]
    ax.fill_between(x, lo, hi, alpha=0.2, color=line.get_color())
    if curve.budget_unit == "inner steps":
        for xi, yi, b in zip(x, mean, curve.budgets, strict=True):
            ax.annotate(str(b), (xi, yi), textcoords="offset points", xytext=(0, 6),
                        fontsize=7, ha="center", color=line.get_color())


def plot_curves(curves: Sequence[Curve], path: str | Path, title: str = "",
                ylabel: str = "mean return on held-out tasks") -> Path:
    """Draw ``curves`` (mean ± 95% CI vs episodes of experience) to ``path`` (PNG); when
    the family defines success (Meta-World, ...), a second panel shows the success rate."""
    with_success = any(c.success_mean for c in curves)
    legend_beside = len(curves) > 5  # a long legend inside would hide the curves
    fig, axes = plt.subplots(1, 2 if with_success else 1, squeeze=False, dpi=120,
                             figsize=((11.0 if with_success else 6.4) + 3.6 * legend_beside, 4.2))
    ax, success_ax = axes[0][0], (axes[0][1] if with_success else None)
    for i, curve in enumerate(curves):
        _draw(ax, curve, curve.mean, curve.ci95, f"{curve.label} (n={curve.n_tasks})", _style(i))
        if success_ax is not None and curve.success_mean:
            _draw(success_ax, curve, curve.success_mean, curve.success_ci95 or
                  [float("nan")] * len(curve.success_mean), None, _style(i))
    annotated = any(c.budget_unit == "inner steps" for c in curves)
    xlabel = ("episodes of experience in the new task"
              + (" (labels: gradient steps)" if annotated else ""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if success_ax is not None:
        success_ax.set_xlabel(xlabel)
        success_ax.set_ylabel("success rate on held-out tasks")
        success_ax.set_ylim(-0.05, 1.05)
        success_ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    ax.grid(alpha=0.3)
    if legend_beside:
        (success_ax or ax).legend(*ax.get_legend_handles_labels(), fontsize=7,
                                  loc="upper left", bbox_to_anchor=(1.02, 1.0))
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
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
