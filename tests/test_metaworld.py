"""Meta-World families: the env is Meta-World's, tasks round-trip, the split is Meta-World's
and never trains on a test class. Skipped without the ``metaworld`` package (CI runs them
in the ``[metaworld]`` venv); without it, naming a family says how to install it."""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from helpers import assert_same_batch

import metarl
from metarl.config import load_preset
from metarl.errors import TaskError, UnknownFamilyError
from metarl.runs import create_run
from metarl.task import Task

HAVE_METAWORLD = importlib.util.find_spec("metaworld") is not None
needs_metaworld = pytest.mark.skipif(not HAVE_METAWORLD, reason="metaworld is not installed")


@pytest.mark.skipif(HAVE_METAWORLD, reason="metaworld is installed")
def test_without_metaworld_the_families_say_how_to_get_them():
    assert not any("MetaWorld" in fid for fid in metarl.registry.family_ids())
    with pytest.raises(UnknownFamilyError, match=r"pip install 'metarl\[metaworld\]'"):
        metarl.make_family("metarl/MetaWorld-ML10-v3")


@pytest.fixture(scope="module")
def ml10():
    return metarl.make_family("metarl/MetaWorld-ML10-v3")


@needs_metaworld
def test_every_family_is_registered_the_gymnasium_way():
    from metarl.envs.metaworld import ALL_CLASSES

    ids = set(metarl.registry.family_ids())
    assert {"metarl/MetaWorld-ML10-v3", "metarl/MetaWorld-ML45-v3", "metarl/MetaWorld-ML1-v3"} <= ids
    assert {f"metarl/MetaWorld-ML1-{name}" for name in ALL_CLASSES} <= ids
    assert len(ALL_CLASSES) == 50
    push = metarl.make_family("metarl/MetaWorld-ML1-push-v3")
    assert push.train_classes == ["push-v3"] and push.horizon == 500
    assert metarl.make_family("metarl/MetaWorld-ML1-v3", env_name="push-v3").train_classes == ["push-v3"]


@needs_metaworld
def test_our_env_is_metaworlds_env_for_a_task_of_every_ml10_class(ml10):
    """Same Meta-World task, same actions: identical observations, rewards, success."""
    from metarl.envs.metaworld import ALL_CLASSES

    bench = ml10._benchmark(0)  # metaworld.ML10(seed=0) itself
    classes = ml10.train_classes + ml10.test_classes
    assert len(classes) == 15
    rng = np.random.default_rng(0)
    for name in classes:
        mw_task = next(t for t in [*bench.train_tasks, *bench.test_tasks] if t.env_name == name)
        ours = ml10.make_env(ml10.from_metaworld(mw_task))
        theirs = ALL_CLASSES[name]()
        theirs.set_task(mw_task)
        obs_a, _ = ours.reset(seed=0)
        obs_b, _ = theirs.reset()
        np.testing.assert_array_equal(obs_a, obs_b)
        for _ in range(40):
            action = rng.uniform(-1, 1, 4).astype(np.float32)
            a = ours.step(action)
            b = theirs.step(action)
            np.testing.assert_array_equal(a[0], b[0])
            assert a[1] == b[1] and a[4]["success"] == b[4]["success"], name
        ours.close()
        theirs.close()


@needs_metaworld
def test_a_task_round_trips_through_json_to_metaworlds_own_task(ml10):
    bench = ml10._benchmark(0)
    for mw_task in (bench.train_tasks[0], bench.test_tasks[-1]):
        task = ml10.from_metaworld(mw_task)
        again = ml10.validate(Task.from_json(task.to_json()))
        assert again == task
        rebuilt = ml10.metaworld_task(again)
        a, b = pickle.loads(rebuilt.data), pickle.loads(mw_task.data)
        assert rebuilt.env_name == mw_task.env_name and a.keys() == b.keys()
        np.testing.assert_array_equal(a.pop("rand_vec"), b.pop("rand_vec"))
        assert a == b
    with pytest.raises(TaskError, match="not a task of reach-v3"):
        ml10.task(env_name="reach-v3", rand_vec=[5.0] * 6)
    with pytest.raises(TaskError, match="outside its space"):
        ml10.task(env_name="no-such-v3", rand_vec=[0.0] * 6)


@needs_metaworld
def test_ml10_test_classes_never_appear_in_training(ml10):
    test_classes = set(ml10.test_classes)
    assert len(test_classes) == 5 and not test_classes & set(ml10.train_classes)
    for seed in (0, 5):  # the benchmarks the other tests build too (16 s each)
        split = ml10.split(500, 250, seed=seed)
        assert not {t["env_name"] for t in split.train} & test_classes
        assert {t["env_name"] for t in split.test} == test_classes
        assert len(set(split.train)) == 500
        small = ml10.split(20, 5, seed=seed)  # any prefix covers every class
        assert {t["env_name"] for t in small.train} == set(ml10.train_classes)
        assert {t["env_name"] for t in small.test} == test_classes
    assert ml10.split(20, 5, seed=0) == ml10.split(20, 5, seed=0)
    for seed in range(5):  # fresh goals: train classes only
        assert not {t["env_name"] for t in ml10.sample_tasks(30, rng=seed)} & test_classes
    with pytest.raises(TaskError, match="has 500"):
        ml10.split(501, 5)
    # results break down by the test classes (metarl evaluate's per_class)
    assert {ml10.task_group(t) for t in ml10.split(20, 5, seed=0).test} == test_classes


@needs_metaworld
def test_ml1_split_holds_out_goals():
    fam = metarl.make_family("metarl/MetaWorld-ML1-reach-v3")
    split = fam.split(50, 50, seed=0)
    assert not set(split.train) & set(split.test)
    assert {t["env_name"] for t in [*split.train, *split.test]} == {"reach-v3"}


@needs_metaworld
@pytest.mark.parametrize("family_id", ["metarl/MetaWorld-ML1-reach-v3", "metarl/MetaWorld-ML10-v3"])
def test_check_env(family_id):
    fam = metarl.make_family(family_id)
    for task in fam.sample_tasks(2, rng=0):
        env = gym.make(family_id, task=task)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(env.unwrapped, skip_render_check=True)


@needs_metaworld
def test_success_reaches_the_episode_batch():
    from metarl.rollout import Sampler, random_policy

    fam = metarl.make_family("metarl/MetaWorld-ML1-reach-v3", horizon=30)
    tasks = fam.split(2, 2, seed=0).test
    batch = Sampler(fam).sample(list(tasks), random_policy(fam.make_env().action_space),
                                episodes_per_task=2, horizon=30, seed=0)
    assert batch.rewards.shape == (30, 4)
    success = batch.episode_success()
    assert success is not None and success.shape[-1] == 4


@needs_metaworld
def test_ray_workers_give_the_local_batch_success_included():
    """The Meta-World presets sample on 2 Ray actors: the batch must not depend on that."""
    pytest.importorskip("ray")
    from metarl.distributed import RaySampler
    from metarl.rollout import Sampler, random_policy

    fam = metarl.make_family("metarl/MetaWorld-ML10-v3", horizon=20)
    tasks = list(fam.split(6, 5, seed=0).train[:5])  # several classes, split 3 + 2 over actors
    policy = random_policy(fam.make_env().action_space)
    local = Sampler(fam).sample(tasks, policy, episodes_per_task=2, horizon=20, seed=3)
    sampler = RaySampler(fam, workers=2)
    try:
        remote = sampler.sample(tasks, policy, episodes_per_task=2, horizon=20, seed=3)
    finally:
        sampler.close()
    assert_same_batch(remote, local)
    assert torch.equal(remote.episode_success(), local.episode_success())
    assert len({t["env_name"] for t in tasks}) > 1


@needs_metaworld
def test_evaluate_and_the_protocol_break_results_down_by_test_class(tmp_path):
    from metarl.evaluation import evaluate_run
    from metarl.runs import create_run, train_run

    run = create_run("maml", overrides={
        "family": "metarl/MetaWorld-ML10-v3", "num_train_tasks": 10, "num_test_tasks": 5,
        "meta_batch_size": 2, "episodes_per_task": 1, "horizon": 5, "hidden_sizes": [8],
        "num_iterations": 1, "cg_iters": 2, "eval_steps": 1, "eval_episodes": 1},
        out=tmp_path / "run")
    train_run(run, progress=False)
    result = evaluate_run(run.path, random_baseline=False, plot=False)
    classes = {t["env_name"] for t in run.test_tasks}
    assert len(classes) == 5 and set(result["per_class"]) == classes
    for stats in result["per_class"].values():
        assert stats["n_tasks"] == 1 and len(stats["success_mean"]) == 2
    assert set(json.loads((run.path / "eval" / "curve.json").read_text())["per_class"]) == classes
    from metarl.evaluation import evaluate_protocol

    doc = evaluate_protocol(run.path, num_tasks=5)  # Meta-World's protocol, per test class
    assert set(doc["per_class"]) == classes and 0.0 <= doc["success"]["mean"] <= 1.0


def _learning_benchmark():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import metaworld_learning

    return metaworld_learning


def test_the_learning_benchmark_budget_is_the_stated_env_steps_for_every_run():
    bench = _learning_benchmark()
    horizon = 500  # Meta-World's max_path_length; its episodes never end early
    for agent in bench.AGENTS:
        for setup in bench.SETUPS:
            values = load_preset(f"{agent}_metaworld_{setup}").values
            if agent == "maml":  # rollouts before and after each inner step
                episodes = (values["meta_batch_size"] * values["episodes_per_task"]
                            * (values["num_inner_steps"] + 1))
            else:
                episodes = values["trials_per_iter"] * values["episodes_per_trial"]
            steps = bench.BUDGET_ITERATIONS[agent, setup] * episodes * horizon
            assert steps == bench.BUDGET_STEPS, (agent, setup)


def test_the_learning_benchmark_pools_tasks_and_seeds_of_runs_at_their_budget():
    bench = _learning_benchmark()

    def score(iterations: int, per_task: list[float]) -> dict:
        return {"iterations": iterations, "planned_iterations": 60,
                "per_task_success": [[0.0] * len(per_task), per_task],
                "protocol": {"per_task_success": per_task,
                             "per_task_class": ["reach", "push", "push"][:len(per_task)]}}

    pooled = bench.aggregate([score(60, [1.0, 0.0, 0.5]), score(60, [1.0, 1.0, 0.5]),
                              score(20, [0.0, 0.0, 0.0])])
    assert pooled["seeds"] == 2 and pooled["tasks_x_seeds"] == 6
    assert pooled["protocol_success"]["mean"] == pytest.approx(4.0 / 6)
    assert pooled["protocol_success"]["ci95"] == pytest.approx(
        2.5706 * np.std([1, 0, 0.5, 1, 1, 0.5], ddof=1) / np.sqrt(6), rel=1e-3)
    assert pooled["protocol_success_per_class"]["reach"]["mean"] == pytest.approx(1.0)
    assert pooled["protocol_success_per_class"]["push"]["mean"] == pytest.approx(0.5)
    assert pooled["success_unadapted"]["mean"] == 0.0
    assert pooled["success_adapted"]["mean"] == pytest.approx(4.0 / 6)
    assert bench.aggregate([score(20, [0.0])]) == {"seeds": 0}


def test_the_learning_benchmark_table_rows_are_the_pooled_runs_at_their_budget():
    bench = _learning_benchmark()

    def score(iterations: int, per_task: list[float]) -> dict:
        return {"iterations": iterations, "planned_iterations": 15, "env_steps": 3e6,
                "train_wall_s": 3600.0, "per_task_success": [[0.0, 0.0], per_task],
                "protocol": {"per_task_success": per_task, "per_task_class": ["a", "b"]}}

    runs = [score(15, [1.0, 0.0]), score(15, [1.0, 1.0])]
    rows = bench.table({"maml_ml10": {"runs": runs, **bench.aggregate(runs)},
                        "rl2_ml10": {"runs": [score(3, [0.0, 0.0])], "seeds": 0}}).splitlines()
    assert len(rows) == 3  # header, rule, MAML (RL² has no run at its budget)
    assert rows[2].startswith("| MAML | ml10 | 2 (4) | 3.00M | 1.0 h | 0.0 ± 0.0 % | 75.0 ± ")
    assert "31.6 % (Yu et al. 2019, v1 envs)" in rows[2]


def test_the_learning_benchmark_keeps_the_results_a_call_did_not_score(tmp_path):
    bench = _learning_benchmark()
    out = tmp_path / "metaworld.json"
    versions = {"metaworld": "3.1.1"}
    bench.write_results(out, {"rl2_ml1_reach": {"seeds": 1}, "maml_ml10": {"seeds": 2}}, versions)
    bench.write_results(out, {"rl2_ml1_reach": {"seeds": 2}}, versions)
    results = json.loads(out.read_text())["results"]
    assert results == {"maml_ml10": {"seeds": 2}, "rl2_ml1_reach": {"seeds": 2}}


def test_the_learning_benchmark_refuses_to_resume_a_run_planned_otherwise(tmp_path, monkeypatch):
    bench = _learning_benchmark()
    monkeypatch.setattr(bench, "RUNS", tmp_path)
    # Any run folder will do: the check reads its plan before anything Meta-World's.
    create_run("maml", preset="maml_pointnav", overrides={"num_iterations": 3},
               out=tmp_path / "maml_ml1_reach_s0")
    with pytest.raises(SystemExit, match="plans 3 iterations, this benchmark 12: move the folder"):
        bench.train("maml", "ml1_reach", 0, {}, "", None, {})
