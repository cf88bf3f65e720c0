"""The family contract on every registered family: checkers, splits, task switching, errors."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import representative_family_ids
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import metarl
from metarl import TaskError

FAMILY_IDS = representative_family_ids()


@pytest.fixture(autouse=True)
def _quiet_checker_warnings():
    # The checkers warn about unbounded Box observation spaces, which our physics envs have.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@pytest.mark.parametrize("family_id", FAMILY_IDS)
def test_env_checkers_pass_on_several_tasks(family_id):
    family = metarl.make_family(family_id)
    for task in [family.default_task(), *family.sample_tasks(2, np.random.default_rng(1))]:
        env = family.make_env(task)
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=False)
        env.close()


@pytest.mark.parametrize("family_id", FAMILY_IDS)
def test_gymnasium_make_without_task_uses_default_task(family_id):
    env = gym.make(family_id)
    assert env.unwrapped.get_task() == metarl.make_family(family_id).default_task()
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    steps, done = 0, False
    while not done:
        obs, reward, term, trunc, _ = env.step(env.action_space.sample())
        done, steps = term or trunc, steps + 1
    assert steps <= metarl.make_family(family_id).horizon
    env.close()


@pytest.mark.parametrize("family_id", FAMILY_IDS)
def test_gymnasium_make_with_task_dict_and_json(family_id):
    family = metarl.make_family(family_id)
    task = family.sample_tasks(1, 3)[0]
    for given in (task, task.to_json(), dict(task)):
        env = gym.make(family_id, task=given)
        assert env.unwrapped.get_task() == task
        env.close()


@pytest.mark.parametrize("family_id", FAMILY_IDS)
def test_same_seed_same_tasks_different_seed_different_tasks(family_id):
    family = metarl.make_family(family_id)
    a = family.sample_tasks(5, np.random.default_rng(11))
    b = family.sample_tasks(5, np.random.default_rng(11))
    c = family.sample_tasks(5, np.random.default_rng(12))
    assert a == b
    assert a != c
    assert all(metarl.Task.from_json(t.to_json()) == t for t in a)


@pytest.mark.parametrize("family_id", FAMILY_IDS)
def test_split_is_reproducible_and_disjoint(family_id):
    family = metarl.make_family(family_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s1 = family.split(30, 10, seed=5)
        s2 = family.split(30, 10, seed=5)
        s3 = family.split(45, 10, seed=5)  # Meta-World's ML1 has 50 train goals
    assert s1.train == s2.train and s1.test == s2.test
    assert s3.test == s1.test  # more train tasks never changes the held-out ones
    if not family.is_finite():
        assert s1.disjoint and not set(s1.train) & set(s1.test)


def test_finite_family_split_says_it_cannot_hold_out():
    family = metarl.make_family("metarl/Bandit-v0")  # continuous: must be disjoint
    assert family.split(5, 5).disjoint

    class Coin(metarl.TaskFamily):
        family_id = "test/Coin-v0"
        task_space = {"side": metarl.Choice([0.0, 1.0])}

        def make_env(self, task=None, render_mode=None):
            raise NotImplementedError

    with pytest.warns(UserWarning, match="finite task set"):
        split = Coin().split(4, 4)
    assert not split.disjoint and split.notes


def test_range_holdout_split_is_out_of_distribution():
    family = metarl.make_family("metarl/SparsePointNav-v0")
    split = family.split(50, 20, seed=0, holdout={"angle": (2.5, 3.2)})
    assert all(2.5 <= t["angle"] <= 3.2 for t in split.test)
    assert all(not 2.5 <= t["angle"] <= 3.2 for t in split.train)
    with pytest.raises(TaskError, match="unknown parameter"):
        family.split(5, 5, holdout={"nope": (0, 1)})
    with pytest.raises(TaskError, match="no\\) probability mass|almost"):
        family.split(5, 5, holdout={"angle": (10.0, 11.0)})


def test_set_task_changes_reward_without_rebuilding():
    family = metarl.make_family("metarl/PointNav2D-v0")
    env = family.make_env(family.task(goal=[0.4, 0.4]))
    env.reset(seed=0)
    _, r1, *_ = env.step(np.array([0.1, 0.1], dtype=np.float32))
    before = id(env)
    env.set_task(family.task(goal=[-0.4, -0.4]))
    env.reset(seed=0)
    _, r2, *_ = env.step(np.array([0.1, 0.1], dtype=np.float32))
    assert id(env) == before and env.get_task()["goal"][0] == -0.4
    assert r1 > r2  # moving towards the first goal is away from the second
    env.reset(options={"task": family.task(goal=[0.4, 0.4])})
    _, r3, *_ = env.step(np.array([0.1, 0.1], dtype=np.float32))
    assert r3 == pytest.approx(r1)


def test_pointnav_ends_inside_the_mamls_square_around_the_goal():
    # The MAML code (and pytorch-maml-rl) ends an episode when |dx| < 0.01 and |dy| < 0.01.
    family = metarl.make_family("metarl/PointNav2D-v0")

    def terminated_after(move: list[float]) -> bool:
        env = family.make_env(family.task(goal=[0.05, 0.05]))
        env.reset(seed=0)
        _, _, terminated, truncated, info = env.step(np.array(move, dtype=np.float32))
        assert not truncated and info["success"] == terminated
        return terminated

    assert terminated_after([0.059, 0.059])      # corner of the square: 0.0127 away
    assert not terminated_after([0.061, 0.05])   # 0.011 off along one axis
    assert not terminated_after([0.0, 0.0])


def test_set_task_changes_bandit_payoffs():
    family = metarl.make_family("metarl/Bandit-v0", arms=2, pulls=200)
    env = family.make_env(family.task(probs=[1.0, 0.0]))
    env.reset(seed=0)
    assert sum(env.step(0)[1] for _ in range(50)) == 50
    env.set_task(family.task(probs=[0.0, 1.0]))
    env.reset(seed=0)
    assert sum(env.step(0)[1] for _ in range(50)) == 0


def test_bad_tasks_get_clear_errors():
    family = metarl.make_family("metarl/PointNav2D-v0")
    with pytest.raises(TaskError, match="outside its space"):
        family.task(goal=[0.9, 0.0])
    with pytest.raises(TaskError, match="outside its space"):
        gym.make("metarl/PointNav2D-v0", task={"goal": [0.0, 7.0]})
    with pytest.raises(TaskError, match="missing \\['goal'\\]"):
        family.validate({"gaol": [0.0, 0.0]})
    with pytest.raises(TaskError, match="expected shape"):
        family.validate({"goal": [0.0, 0.0, 0.0]})
    other = metarl.make_family("metarl/Bandit-v0").default_task()
    with pytest.raises(TaskError, match="belongs to family 'metarl/Bandit-v0'"):
        family.make_env(other)
    with pytest.raises(TaskError, match="malformed task JSON"):
        gym.make("metarl/PointNav2D-v0", task='{"goal": [0.1, ')


def test_unknown_family_id_lists_close_ids():
    with pytest.raises(metarl.UnknownFamilyError, match="Did you mean: metarl/PointNav2D-v0"):
        metarl.make_family("metarl/PointNav2d-v0")
    assert metarl.make_family("PointNav2D").id == "metarl/PointNav2D-v0"  # latest version


def test_family_keyword_variants():
    wide = metarl.make_family("metarl/PointNav2D-v0", goal_range=2.0)
    assert wide.task_space["goal"].high == 2.0
    wide.task(goal=[1.5, -1.5])
    assert metarl.make_family("metarl/Bandit-v0", arms=10, pulls=100).horizon == 100
    with pytest.raises(TypeError, match="bad family keyword"):
        metarl.make_family("metarl/PointNav2D-v0", goal_rnage=2.0)


def test_tabular_mdp_matches_its_task():
    family = metarl.make_family("metarl/TabularMDP-v0")
    task = family.sample_tasks(1, 0)[0]
    env = family.make_env(task)
    rng = np.random.default_rng(0)
    counts = np.zeros(family.n_states)
    rewards = []
    for episode in range(400):
        obs, _ = env.reset(seed=episode)
        assert obs[0] == 1.0  # always starts in state 0
        _, r, _, _, info = env.step(2)
        counts[info["state"]] += 1
        rewards.append(r)
    expected = np.asarray(task["transitions"])[0, 2]
    assert np.abs(counts / counts.sum() - expected).max() < 0.08
    assert abs(np.mean(rewards) - task["reward_means"][0][2]) < 0.2
    del rng
