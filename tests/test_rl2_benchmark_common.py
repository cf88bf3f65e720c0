"""The RL² benchmarks' train-or-load on run folders: resuming a stopped run keeps one
held-out eval per iteration; a tagged variant trains into folders and files of its own."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import metarl
from metarl.runs import create_run, train_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import rl2_common  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_thread_count():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)  # train_or_load pins one thread


def test_resume_after_a_stop_between_eval_and_checkpoint_redoes_that_eval(tmp_path, monkeypatch):
    monkeypatch.setattr(rl2_common, "RESULTS", tmp_path)
    monkeypatch.setattr(rl2_common, "RUNS", tmp_path / "rl2_runs")
    overrides = dict(family_kwargs={"arms": 2, "pulls": 4}, episodes_per_trial=1,
                     trials_per_iter=8, num_iterations=3, hidden_size=8, num_minibatches=1,
                     update_epochs=1, num_test_tasks=2)
    fam = metarl.make_family("metarl/Bandit-v0", arms=2, pulls=4)
    eval_tasks = fam.sample_tasks(4, 1)
    # the stopped run: checkpoint at iteration 1, but the eval of iteration 2 already written
    run = create_run("rl2", preset="rl2_bandit_k5_n10", overrides=overrides,
                     out=tmp_path / "rl2_runs" / "x")
    train_run(run, progress=False, stop_after=1)
    stale = [{"iteration": i, "env_steps": 0.0, "num_tasks": 4, "trial_return": -1.0,
              "episode_returns": [-1.0]} for i in (1, 2)]
    (tmp_path / "rl2_x_evalcurve.json").write_text(json.dumps(stale))

    resumed, evals = rl2_common.train_or_load("x", "rl2_bandit_k5_n10", overrides, train=True,
                                              eval_tasks=eval_tasks, eval_every=1,
                                              log=lambda _: None)
    assert resumed.iteration == 3 and resumed.env_steps == 3 * 8 * 4
    assert [h["env_steps"] for h in resumed.history] == [32.0, 64.0, 96.0]  # summed
    assert [e["iteration"] for e in evals] == [1, 2, 3]
    assert evals[0]["trial_return"] == -1.0  # kept: the checkpoint had passed it
    assert evals[1]["trial_return"] != -1.0  # redone by the resumed run
    assert json.loads((tmp_path / "rl2_x_evalcurve.json").read_text()) == evals


def test_a_tagged_variant_trains_into_files_of_its_own(tmp_path, monkeypatch, capsys):
    import rl2_tabular

    for module in (rl2_common, rl2_tabular):
        monkeypatch.setattr(module, "RESULTS", tmp_path)
    monkeypatch.setattr(rl2_common, "RUNS", tmp_path / "rl2_runs")
    tiny = ["trials_per_iter=8", "hidden_size=8", "num_minibatches=1", "update_epochs=1"]
    sets = [arg for kv in ["num_iterations=2", *tiny] for arg in ("--set", kv)]
    with pytest.raises(SystemExit):  # overrides without a tag would replace the preset's files
        rl2_tabular.main(["--train", "n10", "--instances", "10", *sets])
    assert "--tag" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())

    rl2_tabular.main(["--train", "n10", "--instances", "10", *sets, "--tag", "tiny"])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["rl2_runs", "rl2_tabular_n10_tiny_curve.png",
                     "rl2_tabular_n10_tiny_evalcurve.json", "rl2_tabular_tiny.json"]
    assert (tmp_path / "rl2_runs" / "tabular_n10_tiny" / "checkpoint.pt").is_file()
    (result,) = json.loads((tmp_path / "rl2_tabular_tiny.json").read_text())["results"]
    assert result["tag"] == "tiny" and result["overrides"]["num_iterations"] == 2
    assert result["iterations"] == 2 and result["finished"] and result["instances"] == 10
    assert [e["iteration"] for e in result["held_out_evals"]] == [1, 2]

    # the same command again loads the variant's finished checkpoint instead of training
    rl2_tabular.main(["--instances", "10", *sets, "--tag", "tiny"])
    assert "rl2_runs/tabular_n10_tiny at iteration 2/2" in capsys.readouterr().out
