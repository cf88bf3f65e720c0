"""Long training runs (``-m slow``): the README's main job learns, end to end."""

from __future__ import annotations

import pytest

from metarl.evaluation import evaluate_run
from metarl.runs import create_run, train_run


@pytest.mark.slow
def test_the_default_maml_preset_learns_to_adapt(tmp_path):
    """``metarl train maml`` (30 meta-iterations on PointNav2D): after one gradient step the
    held-out return is far above the randomly initialized policy's, and above the trained
    policy's own return before the step."""
    run = create_run("maml", out=tmp_path / "run")
    train_run(run, progress=False)
    curves = {c.label: c for c in evaluate_run(run.path, budget=1, plot=False)["curves"]}
    trained = next(c for label, c in curves.items() if "random" not in label)
    random_init = next(c for label, c in curves.items() if "random" in label)
    assert trained.mean[1] > random_init.mean[1] + 10
    assert trained.mean[1] > trained.mean[0] + 5


@pytest.mark.slow
def test_the_default_rl2_preset_beats_random_play(tmp_path):
    """``metarl train rl2`` (5-armed bandits, 10 pulls): a random player scores 5.0 a trial."""
    run = create_run("rl2", out=tmp_path / "run")
    train_run(run, progress=False)
    curves = evaluate_run(run.path, plot=False, random_baseline=False)["curves"]
    assert curves[0].mean[0] > 5.8
