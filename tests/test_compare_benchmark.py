"""benchmarks/compare.py's bookkeeping on hand-made run records: pairing with multitask at
the same experience, the normalized scores of the aggregate, and the same-tasks check."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import compare  # noqa: E402

from metarl.agent import get_agent  # noqa: E402
from metarl.config import resolve_config  # noqa: E402


def _doc(agent: str, seed: int, per_task: list[list[float]], episodes: list[float],
         tasks: list[dict] | None = None) -> dict:
    rows = len(per_task)
    return {"run": f"s/{agent}_s{seed}", "agent": agent, "seed": seed, "env_steps": 1e6,
            "tasks": tasks if tasks is not None else [{"goal": 1}],
            "curve": {"label": agent, "budgets": list(range(rows)), "episodes": episodes,
                      "mean": [float(np.mean(r)) for r in per_task], "ci95": [0.0] * rows,
                      "n_tasks": len(per_task[0]), "budget_unit": "inner steps",
                      "success_mean": None, "success_ci95": None, "per_task": per_task}}


def _docs():
    rounds = [0.0, 20.0]
    return {
        "maml": [_doc("maml", 0, [[-40, -30], [-10, -20]], rounds),
                 _doc("maml", 1, [[-40, -30], [-12, -22]], rounds)],
        "multitask": [_doc("multitask", 0, [[-35, -35], [-15, -15]], rounds),
                      _doc("multitask", 1, [[-35, -35], [-16, -16]], rounds)],
        "rl2": [_doc("rl2", 0, [[-30, -30], [-20, -20]], [0.0, 1.0]),
                _doc("rl2", 1, [[-30, -30], [-20, -20]], [0.0, 1.0])],
        "oracle": [_doc("oracle", 0, [[-5, -5], [-5, -5]], rounds),
                   _doc("oracle", 1, [[-5, -5], [-5, -5]], rounds)],
        "scratch": [_doc("scratch", 0, [[-105, -105], [-90, -90]], rounds),
                    _doc("scratch", 1, [[-105, -105], [-90, -90]], rounds)],
    }


def test_pairs_each_agent_with_multitask_at_the_same_experience():
    summary = compare.summarize_setup("s", _docs())
    paired = summary["minus_multitask_after_one_round"]
    # maml - multitask after one round, task by task within seeds: +5, -5, +4, -6
    assert paired["maml"]["x_episodes"] == 20.0
    assert paired["maml"]["mean"] == pytest.approx(-0.5) and paired["maml"]["n"] == 4
    # RL²'s second episode (x = 1) meets multitask after its first round (x = 20), the first
    # point with at least as much experience: -20 against -15 and -16
    assert paired["rl2"]["x_episodes"] == 1.0 and paired["rl2"]["multitask_x_episodes"] == 20.0
    assert paired["rl2"]["mean"] == pytest.approx(-4.5)
    assert paired["maml"]["multitask_x_episodes"] == 20.0
    assert summary["table"]["maml"]["20"]["mean"] == pytest.approx(-16.0)


def test_a_multitask_variant_row_is_a_reference_of_its_own():
    docs = _docs()
    docs["multitask_sb3_defaults"] = [_doc("multitask_sb3_defaults", s, [[-50, -50], [-40, -40]],
                                           [0.0, 20.0]) for s in (0, 1)]
    summary = compare.summarize_setup("s", docs)
    weak = summary["minus_multitask_sb3_defaults_after_one_round"]
    # maml after one round (-10, -20 / -12, -22) against the variant's -40: +30, +20, +28, +18
    assert weak["maml"]["mean"] == pytest.approx(24.0) and weak["maml"]["n"] == 4
    assert weak["multitask"]["mean"] == pytest.approx(24.5)  # the tuned row is just another row
    assert summary["minus_multitask_after_one_round"]["maml"]["mean"] == pytest.approx(-0.5)
    assert "multitask_sb3_defaults" in summary["minus_multitask_after_one_round"]


def test_normalized_scores_put_scratch_at_zero_and_the_oracle_at_one():
    docs = _docs()
    summary = compare.summarize_setup("s", docs)
    scores = compare.normalized_scores({"s": summary}, {"s": docs})
    # (R - R_scratch(0)) / (R_oracle(0) - R_scratch(0)) = (R + 105) / 100 after one round
    np.testing.assert_allclose(scores["maml"], [[0.9], [0.88]])
    np.testing.assert_allclose(scores["multitask"], [[0.9], [0.89]])
    np.testing.assert_allclose(scores["rl2"], [[0.85], [0.85]])
    np.testing.assert_allclose(scores["oracle"], [[1.0], [1.0]])


def test_a_multitask_above_the_oracle_is_the_upper_reference():
    docs = _docs()
    docs["oracle"] = [_doc("oracle", s, [[-55, -55], [-55, -55]], [0.0, 20.0]) for s in (0, 1)]
    summary = compare.summarize_setup("s", docs)
    scores = compare.normalized_scores({"s": summary}, {"s": docs})
    # multitask at x = 0 (-35) is above the oracle (-55): (R + 105) / 70 after one round
    np.testing.assert_allclose(scores["maml"], [[90 / 70], [88 / 70]])
    np.testing.assert_allclose(scores["oracle"], [[50 / 70], [50 / 70]])


def test_the_aggregate_covers_every_scored_setup(tmp_path, monkeypatch, capsys):
    # a call on one setup still aggregates the others from their cached scores; a setup
    # without its scratch and oracle rows cannot be normalized, and says so
    for name in ("one", "two", "three"):
        monkeypatch.setitem(compare.SETUPS, name, {"agents": {a: ("", {}) for a in _docs()},
                                                  "eval_tasks": 2})
    asked = []

    def scored(setup, agents, seeds, n_eval, out_dir):
        asked.append((setup, list(agents)))
        if setup == "three":
            return {}, {a: d for a, d in _docs().items() if a not in ("oracle", "scratch")}
        return {}, (_docs() if setup in ("one", "two") else {})

    monkeypatch.setattr(compare, "scored", scored)
    monkeypatch.setattr(compare, "agent_of", lambda setup, row: row)
    monkeypatch.setattr(compare, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["compare.py", "--setups", "one", "--evaluate"])
    compare.main()
    agg = json.loads((tmp_path / "compare_aggregate.json").read_text())
    assert agg["setups"] == ["one", "two"] and agg["seeds"] == [0, 1]
    assert ("two", []) in asked  # nothing evaluated there: cached scores only
    assert np.shape(agg["maml"]["scores"]) == (2, 2)  # seeds x setups
    assert not (tmp_path / "compare_two.json").exists()  # its own JSON is not rewritten
    out = capsys.readouterr().out
    assert "[two] in the aggregate" in out
    assert "[three] cached scores, but no scratch and oracle rows yet: not in the aggregate" in out


def test_runs_on_different_tasks_are_refused():
    docs = _docs()
    docs["maml"][0]["tasks"] = [{"goal": 2}]
    with pytest.raises(SystemExit, match="different tasks"):
        compare.summarize_setup("s", docs)


@pytest.mark.parametrize("smoke", [False, True])
@pytest.mark.parametrize("setup", list(compare.SETUPS))
def test_every_setup_resolves_to_valid_configs(setup: str, smoke: bool):
    # each agent's preset takes the setup's overrides (and --smoke's small sizes): a typo in
    # a key, or a smoke size its config refuses, fails here and not an hour into a run
    for row in compare.SETUPS[setup]["agents"]:
        agent = compare.agent_of(setup, row)
        assert row.startswith(agent)  # a row is its agent, or the agent with other settings
        preset, over = compare.overrides_of(setup, row, 0, smoke)
        config, _ = resolve_config(agent, get_agent(agent).config_cls, preset, over)
        assert config.seed == 0 and config.eval_steps == 0
        if smoke and agent != "scratch":
            assert config.num_iterations == 2
            for key, value in compare.SMOKE_SIZES.get(agent, {}).items():
                assert getattr(config, key) == value


def test_progress_scores_only_unfinished_runs_zero_shot(tmp_path, monkeypatch):
    tiny = {"n_envs": 2, "n_steps": 20, "updates_per_iteration": 1, "batch_size": 20,
            "n_epochs": 1, "hidden_sizes": [8], "checkpoint_every": 1, "num_iterations": 3,
            "family_kwargs": {"horizon": 10}}
    monkeypatch.setattr(compare, "RUNS", tmp_path / "runs")
    monkeypatch.setitem(compare.SETUPS, "tiny", {
        "family": {}, "split": {"num_train_tasks": 4, "num_test_tasks": 3, "split_seed": 0},
        "eval_tasks": 2, "episodes": 2, "rounds": 1,
        "agents": {"multitask": ("multitask_default", tiny),
                   "oracle": ("oracle_default", {**tiny, "num_iterations": 1})}})
    for agent in ("multitask", "oracle"):
        compare.train("tiny", agent, 0, stop_after=1, smoke=False)
    assert not compare.trained_to_end("tiny", "multitask", 0)  # 1 of 3 iterations
    assert compare.trained_to_end("tiny", "oracle", 0)
    compare.progress("tiny", ["multitask", "oracle"], [0, 1], 2, tmp_path)
    doc = json.loads((tmp_path / "compare_tiny_progress.json").read_text())
    (row,) = doc["runs"]  # the finished oracle and the absent seed 1 are not progress
    assert row["run"] == "tiny/multitask_s0" and row["iterations"] == 1
    assert row["planned_iterations"] == 3 and row["env_steps"] == 2 * 20
    assert row["eval_tasks"] == 2 and np.isfinite(row["zero_shot"]["mean"])
    # a later call on other runs keeps this row while its run is unfinished, then drops it
    compare.progress("tiny", ["oracle"], [0], 2, tmp_path)
    doc = json.loads((tmp_path / "compare_tiny_progress.json").read_text())
    assert doc["runs"] == [row]
    compare.train("tiny", "multitask", 0, stop_after=None, smoke=False)
    compare.progress("tiny", ["oracle"], [0], 2, tmp_path)
    doc = json.loads((tmp_path / "compare_tiny_progress.json").read_text())
    assert doc["runs"] == []


def test_ml1_reach_trains_maml_and_rl2_once_for_both_meta_world_benchmarks(monkeypatch):
    import metaworld_learning

    for agent in compare.SETUPS["ml1_reach"]["shared_runs"]:
        preset, over = compare.overrides_of("ml1_reach", agent, 1, smoke=False)
        assert preset == f"{agent}_metaworld_ml1_reach"
        budget = {"num_iterations": metaworld_learning.BUDGET_ITERATIONS[agent, "ml1_reach"],
                  "seed": 1}
        cls = get_agent(agent).config_cls
        ours = dataclasses.asdict(resolve_config(agent, cls, preset, over)[0])
        theirs = dataclasses.asdict(resolve_config(agent, cls, preset, budget)[0])
        # the one difference is the evaluation after training, which compare.py skips
        assert {k for k in ours if ours[k] != theirs[k]} == {"eval_steps"}
        assert compare.run_path("ml1_reach", agent, 1) == metaworld_learning.run_dir(
            agent, "ml1_reach", 1, "")
    monkeypatch.setattr(compare, "RUNS", Path("runs") / "compare_smoke")  # as --smoke does
    assert compare.run_path("ml1_reach", "rl2", 1) == Path("runs/compare_smoke/ml1_reach/rl2_s1")
