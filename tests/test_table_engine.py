"""The array engine of Bandit / TabularMDP reproduces the single env step for step."""

import numpy as np
import pytest
import torch

import metarl
from metarl.rollout import GenericBatchEngine, Sampler, random_policy
from metarl.table_engine import ArrayBatchEngine


@pytest.mark.parametrize("family_id, kwargs", [("metarl/Bandit-v0", {"arms": 4, "pulls": 30}),
                                               ("metarl/TabularMDP-v0", {})])
def test_array_engine_matches_single_envs(family_id, kwargs):
    family = metarl.make_family(family_id, **kwargs)
    tasks = family.sample_tasks(6, 0)
    fast, slow = ArrayBatchEngine(family, 6), GenericBatchEngine(family, 6)
    for engine in (fast, slow):
        engine.set_tasks(tasks)
    seeds = list(range(100, 106))
    obs_fast, obs_slow = fast.reset(seeds), slow.reset(seeds)
    rng = np.random.default_rng(0)
    active = np.ones(6, dtype=bool)
    for _ in range(family.horizon):
        assert np.array_equal(obs_fast, obs_slow)
        actions = rng.integers(0, fast.single_action_space.n, size=6)
        obs_fast, r_fast, term_fast, _ = fast.step(actions, active)
        obs_slow, r_slow, term_slow, _ = slow.step(actions, active)
        assert np.allclose(r_fast, r_slow) and np.array_equal(term_fast, term_slow)


def test_sampler_gives_the_same_batch_on_both_engines():
    family = metarl.make_family("metarl/TabularMDP-v0")
    tasks = family.sample_tasks(3, 1)
    policy = random_policy(family.make_env().action_space)
    a = Sampler(family, engine="fast").sample(tasks, policy, episodes_per_task=2,
                                             episodes_per_trial=3, seed=4)
    b = Sampler(family, engine="generic").sample(tasks, policy, episodes_per_task=2,
                                                episodes_per_trial=3, seed=4)
    assert torch.equal(a.obs, b.obs) and torch.allclose(a.rewards, b.rewards)


def test_bandit_rewards_follow_arm_probabilities():
    family = metarl.make_family("metarl/Bandit-v0", arms=2, pulls=500)
    engine = ArrayBatchEngine(family, 2)
    engine.set_tasks([family.task(probs=[0.2, 0.9])] * 2)
    engine.reset([1, 2])
    total = np.zeros(2)
    for _ in range(500):
        _, r, _, infos = engine.step(np.array([0, 1]), np.ones(2, dtype=bool))
        total += r
    assert abs(total[0] / 500 - 0.2) < 0.06 and abs(total[1] / 500 - 0.9) < 0.05
    assert np.allclose(infos["regret"], [0.7, 0.0])


def test_bad_actions_and_overlong_episodes_are_clear_errors():
    family = metarl.make_family("metarl/Bandit-v0", arms=3, pulls=2)
    engine = ArrayBatchEngine(family, 1)
    engine.set_tasks([family.default_task()])
    engine.reset([0])
    with pytest.raises(ValueError, match="out of range"):
        engine.step(np.array([3]), np.ones(1, dtype=bool))
    engine.step(np.array([0]), np.ones(1, dtype=bool))
    engine.step(np.array([0]), np.ones(1, dtype=bool))
    with pytest.raises(ValueError, match="longer than the family horizon"):
        engine.step(np.array([0]), np.ones(1, dtype=bool))
