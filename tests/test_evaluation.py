"""Evaluation: confidence intervals, curve files, plots, evaluate/plot commands on a run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metarl import plotting
from metarl.cli import main as cli_main
from metarl.evaluation import (
    AdaptationResult,
    evaluate_run,
    mean_ci95,
    per_group,
    read_curves,
    summarize,
    t95,
    write_curves,
)
from metarl.plotting import plot_curves
from metarl.runs import create_run, train_run


def test_mean_ci95_known_values():
    m, h = mean_ci95([1.0, 2.0, 3.0, 4.0, 5.0])
    assert m == 3.0
    assert h == pytest.approx(2.776 * np.std([1, 2, 3, 4, 5], ddof=1) / np.sqrt(5), rel=1e-6)
    assert t95(1) == pytest.approx(12.706) and abs(t95(200) - 1.972) < 0.005
    assert np.isnan(mean_ci95([7.0])[1]) and mean_ci95([7.0])[0] == 7.0


def test_curve_files_round_trip_and_plot(tmp_path):
    res = AdaptationResult(budgets=[0, 1, 2], episodes=[0.0, 10.0, 20.0],
                           returns=np.array([[-3.0, -5.0], [-2.0, -3.0], [-1.0, -2.5]]),
                           success=np.array([[0, 0], [0, 1.0], [1, 1.0]]))
    curve = summarize(res, "demo")
    assert curve.mean == [-4.0, -2.5, -1.75] and curve.success_mean == [0.0, 0.5, 1.0]
    paths = write_curves([curve], tmp_path, extra={"note": "x"})
    back = read_curves(paths["json"])
    assert back[0].mean == curve.mean and back[0].per_task == curve.per_task
    assert paths["csv"].read_text().count("\n") == 4
    png = plot_curves([curve], tmp_path / "c.png", title="t")
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_every_curve_of_a_figure_is_drawn_its_own_way(tmp_path, monkeypatch):
    # past the 10 default colours a colour comes back, in another line style and marker
    drawn = []
    monkeypatch.setattr(plotting, "_draw", lambda *args: drawn.append(args[-1]))
    res = AdaptationResult(budgets=[0, 1], episodes=[0.0, 10.0],
                           returns=np.array([[-3.0, -5.0], [-2.0, -3.0]]))
    plot_curves([summarize(res, f"run {i}") for i in range(23)], tmp_path / "c.png")
    looks = [tuple(sorted(style.items())) for style in drawn]
    assert len(looks) == 23 and len(set(looks)) == 23
    assert drawn[0]["color"] == drawn[10]["color"] != drawn[1]["color"]


def test_evaluate_and_plot_a_run(tmp_path, capsys):
    tiny = {"meta_batch_size": 2, "episodes_per_task": 2, "horizon": 10, "hidden_sizes": [8],
            "num_train_tasks": 6, "num_test_tasks": 3, "cg_iters": 3, "num_iterations": 1}
    runs = []
    for name in ("a", "b"):
        run = create_run("maml", overrides=tiny, out=tmp_path / name)
        train_run(run, progress=False)
        runs.append(run.path)
    out = evaluate_run(runs[0], budget=2, episodes=2)
    curves = out["curves"]
    assert [c.budgets for c in curves] == [[0, 1, 2], [0, 1, 2]]
    assert "random init" in curves[1].label and curves[0].n_tasks == 3
    doc = json.loads((runs[0] / "eval" / "curve.json").read_text())
    assert doc["iteration"] == 1 and len(doc["curves"]) == 2
    assert (runs[0] / "eval" / "curve.png").is_file() and (runs[0] / "eval" / "curve.csv").is_file()
    # CLI: evaluate the second run, then both on one figure
    assert cli_main(["evaluate", str(runs[1]), "--steps", "1", "--episodes", "2", "--no-random"]) == 0
    assert "png:" in capsys.readouterr().out
    fig = tmp_path / "both.png"
    assert cli_main(["plot", str(runs[0]), str(runs[1]), "--out", str(fig)]) == 0
    assert fig.is_file()
    assert cli_main(["plot", str(tmp_path / "nothing")]) == 2  # not evaluated: clear error


def test_per_group_statistics_are_those_of_each_groups_tasks():
    res = AdaptationResult(budgets=[0, 1], episodes=[0.0, 5.0],
                           returns=np.array([[1.0, 2.0, 3.0, 5.0], [2.0, 4.0, 6.0, 9.0]]),
                           success=np.array([[0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 1.0]]))
    out = per_group(res, ["a", "b", "a", "b"])
    assert sorted(out) == ["a", "b"] and out["a"]["n_tasks"] == 2
    assert out["a"]["mean"] == [2.0, 4.0] and out["b"]["mean"] == [3.5, 6.5]
    assert out["a"]["ci95"][0] == pytest.approx(mean_ci95([1.0, 3.0])[1])
    assert out["b"]["success_mean"] == [1.0, 1.0] and out["a"]["success_mean"] == [0.0, 0.5]


@pytest.mark.parametrize("agent,extra", [
    ("maml", {"meta_batch_size": 2, "episodes_per_task": 2, "horizon": 10, "hidden_sizes": [8],
              "num_train_tasks": 6, "cg_iters": 3}),
    ("rl2", {"family": "metarl/PointNav2D-v0", "family_kwargs": {"horizon": 10},
             "num_train_tasks": 6, "trials_per_iter": 4, "num_minibatches": 2, "hidden_size": 8}),
])
def test_the_metaworld_protocol_scores_what_it_says(tmp_path, capsys, agent, extra):
    from metarl.evaluation import METAWORLD, evaluate_protocol
    from metarl.runs import open_run

    run = create_run(agent, preset=None if agent == "maml" else "rl2_pointnav",
                     overrides={**extra, "num_test_tasks": 4, "num_iterations": 1}, out=tmp_path / "r")
    train_run(run, progress=False)
    doc = evaluate_protocol(run.path, seed=5)
    trained, _ = open_run(run.path).load_agent()
    tasks = open_run(run.path).test_tasks
    if agent == "maml":   # after 1 inner step on 10 episodes, on the 10 episodes that follow
        res = trained.evaluate_adaptation(tasks, 1, 10, seed=5)
        want = res.success[1]
    else:                 # episodes 11-13 of a 13-episode trial
        res = trained.evaluate_adaptation(tasks, 13, 1, seed=5)
        want = res.success[10:].mean(0)
    assert doc["per_task_success"] == pytest.approx(list(want))
    assert doc["success"]["mean"] == pytest.approx(float(np.mean(want)))
    assert doc["protocol"]["adaptation_episodes"] == METAWORLD.adaptation_episodes == 10
    assert list(doc["per_class"]) == ["all"] and doc["per_class"]["all"]["n_tasks"] == 4
    assert cli_main(["evaluate", str(run.path), "--protocol", "metaworld", "--seed", "5"]) == 0
    assert "metaworld protocol, 4 held-out tasks: success" in capsys.readouterr().out
    assert cli_main(["evaluate", str(run.path), "--protocol", "metaworld", "--steps", "2"]) == 2
