"""The SB3 baselines (multitask, oracle, scratch), the wrappers they and the trial
learners use, and the aggregate statistics of the comparison."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import interrupted_and_straight_states
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import metarl
from metarl.agent import get_agent
from metarl.config import make_config
from metarl.errors import CheckpointError, ConfigError
from metarl.stats import (
    iqm,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)
from metarl.wrappers import TaskObservation, TaskSampling, Trial

TINY = {"n_envs": 2, "n_steps": 20, "updates_per_iteration": 1, "batch_size": 20, "n_epochs": 2,
        "hidden_sizes": [8], "num_train_tasks": 5, "num_test_tasks": 2, "eval_steps": 1,
        "eval_episodes": 2, "num_iterations": 3, "checkpoint_every": 1,
        "family_kwargs": {"horizon": 10}}


def _agent(name: str, **overrides):
    spec = get_agent(name)
    cfg = make_config(spec.config_cls, {**TINY, **overrides})
    fam = metarl.make_family(cfg.family, **cfg.family_kwargs)
    split = fam.split(cfg.num_train_tasks, cfg.num_test_tasks, cfg.split_seed)
    return spec.agent_cls(cfg, fam, split.train), split


# ---- wrappers ----------------------------------------------------------------------------
@pytest.mark.parametrize("family_id", ["metarl/PointNav2D-v0", "metarl/HalfCheetahRandParams-v0",
                                       "metarl/Bandit-v0"])
def test_task_observation_carries_the_task_and_passes_both_env_checkers(family_id):
    family = metarl.make_family(family_id)
    tasks = family.sample_tasks(2, np.random.default_rng(0))
    env = TaskObservation(family.make_env(tasks[0]))
    inner = env.env.observation_space.shape[0]
    for task in tasks:
        env.unwrapped.set_task(task)
        obs, _ = env.reset(seed=0)
        features = family.task_features(task)
        np.testing.assert_allclose(obs[inner:], features.astype(obs.dtype))
        assert obs.shape == env.observation_space.shape == (inner + len(features),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unbounded Box observations
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=False)


def test_task_features_flatten_parameters_in_space_order():
    fam = metarl.make_family("metarl/PointNav2D-v0")
    np.testing.assert_array_equal(fam.task_features(fam.task(goal=[0.25, -0.5])), [0.25, -0.5])
    bandit = metarl.make_family("metarl/Bandit-v0", arms=3)
    np.testing.assert_allclose(bandit.task_features(bandit.task(probs=[0.1, 0.2, 0.7])),
                               [0.1, 0.2, 0.7])


def test_task_sampling_draws_train_tasks_reproducibly():
    fam = metarl.make_family("metarl/PointNav2D-v0")
    tasks = fam.sample_tasks(4, np.random.default_rng(0))

    def draws(seed):
        env = TaskSampling(fam.make_env(tasks[0]), tasks)
        env.reset(seed=seed)
        seen = [env.unwrapped.task]
        for _ in range(5):
            env.reset()
            seen.append(env.unwrapped.task)
        return seen

    assert draws(3) == draws(3)
    assert all(t in tasks for t in draws(3)) and len(set(draws(3))) > 1


def test_trial_is_k_inner_episodes_with_memory_inputs():
    fam = metarl.make_family("metarl/PointNav2D-v0", horizon=4)
    task = fam.task(goal=[0.3, 0.3])
    env = Trial(fam.make_env(task), episodes=3)
    obs, info = env.reset(seed=0, options={"task": task})
    assert env.unwrapped.task == task and info["trial_episode"] == 0
    np.testing.assert_array_equal(obs[2:], 0.0)  # no previous action, reward, done
    lengths, rewards, ends = [0, 0, 0], [], []
    action = np.array([0.05, -0.05], dtype=np.float32)
    for t in range(12):
        obs, r, terminated, truncated, info = env.step(action)
        lengths[info["trial_episode"]] += 1
        np.testing.assert_allclose(obs[2:4], action)
        assert obs[4] == pytest.approx(r)
        rewards.append(r)
        ends.append(obs[5])
        if t < 11:
            assert not (terminated or truncated)
    assert truncated and lengths == [4, 4, 4]
    # the done flag marks the last step of each inner episode, then the inner env restarts
    assert ends == [0, 0, 0, 1] * 3
    assert env.unwrapped.task == task
    assert "episode_return" in info and info["episode_return"] == pytest.approx(sum(rewards[8:]))
    # a discrete action is one-hot
    bandit = metarl.make_family("metarl/Bandit-v0", arms=3, pulls=2)
    benv = Trial(bandit.make_env(), episodes=1)
    benv.reset(seed=0)
    obs, *_ = benv.step(2)
    np.testing.assert_array_equal(obs[1:4], [0, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        gym_check_env(benv, skip_render_check=True)


def test_trial_draws_fresh_tasks_or_from_a_list():
    fam = metarl.make_family("metarl/Bandit-v0", arms=3, pulls=2)
    env = Trial(fam.make_env(), episodes=2)
    env.reset(seed=1)
    first = env.unwrapped.task
    env.reset()
    assert env.unwrapped.task != first
    tasks = fam.sample_tasks(2, np.random.default_rng(0))
    listed = Trial(fam.make_env(), episodes=2, tasks=tasks)
    for _ in range(4):
        listed.reset()
        assert listed.unwrapped.task in tasks
    with pytest.raises(ConfigError, match="episodes >= 1"):
        Trial(fam.make_env(), episodes=0)
    with pytest.raises(ConfigError, match="metarl family"):
        Trial(gym.make("CartPole-v1"), episodes=2)


@pytest.mark.slow
def test_recurrent_ppo_through_the_trial_wrapper_beats_random_on_bandits():
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    fam = metarl.make_family("metarl/Bandit-v0", arms=5, pulls=10)
    env = DummyVecEnv([lambda: Trial(fam.make_env(), episodes=1) for _ in range(16)])
    env.seed(0)
    model = RecurrentPPO("MlpLstmPolicy", env, n_steps=40, batch_size=160, n_epochs=10,
                         learning_rate=1e-3, gamma=1.0, gae_lambda=0.95, seed=0,
                         policy_kwargs={"lstm_hidden_size": 64, "net_arch": [64]}, verbose=0)
    model.learn(60_000)  # about 2 minutes; 5.8 +- 0.15 after it (random: 5.0)
    test = DummyVecEnv([lambda: Trial(fam.make_env(), episodes=1) for _ in range(50)])
    test.seed(123)
    obs = test.reset()
    state, starts = None, np.ones(test.num_envs, dtype=bool)
    totals = np.zeros(test.num_envs)
    returns = []
    while len(returns) < 500:
        action, state = model.predict(obs, state=state, episode_start=starts, deterministic=False)
        obs, reward, dones, _ = test.step(action)
        totals += reward
        starts = dones
        returns.extend(totals[dones].tolist())
        totals[dones] = 0.0
    mean, se = np.mean(returns), np.std(returns) / np.sqrt(len(returns))
    # random pulls score 10 x 0.5 = 5.0 on average; the best arm alone 10 x 5/6
    assert mean - 3 * se > 5.0, (mean, se)


# ---- the baselines -------------------------------------------------------------------------
def test_fine_tuning_changes_only_the_copy_being_adapted():
    agent, split = _agent("multitask")
    agent.train_iteration(0)
    before = {k: v.clone() for k, v in agent.model.policy.state_dict().items()}
    result = agent.evaluate_adaptation(split.test, budget=2, episodes=2, seed=0)
    assert result.returns.shape == (3, 2) and result.episodes == [0.0, 2.0, 4.0]
    after = agent.model.policy.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    again = agent.evaluate_adaptation(split.test, budget=2, episodes=2, seed=0)
    np.testing.assert_array_equal(result.returns, again.returns)  # seeded, from the same start
    # the fine-tuned copy did move: without the updates the later points differ
    agent.fine_tune = False
    frozen = agent.evaluate_adaptation(split.test, budget=2, episodes=2, seed=0)
    np.testing.assert_array_equal(frozen.returns[0], result.returns[0])
    assert not np.array_equal(frozen.returns[1:], result.returns[1:])


def test_oracle_observes_the_task_and_does_not_adapt():
    agent, split = _agent("oracle")
    obs_dim = agent.model.observation_space.shape[0]
    assert obs_dim == 2 + 2  # PointNav2D's position and the goal
    assert agent.fine_tune is False
    result = agent.evaluate_adaptation(split.test, budget=1, episodes=2, seed=0)
    assert result.returns.shape == (2, 2)


def test_scratch_trains_nothing():
    with pytest.raises(ConfigError, match="num_iterations must be 0"):
        _agent("scratch")
    agent, split = _agent("scratch", num_iterations=0)
    assert agent.evaluate_adaptation(split.test, budget=1, episodes=2, seed=0).returns.shape == (2, 2)
    # with normalization, scratch fine-tunes a per-task copy of its statistics: its own
    # (never trained) stay untouched
    agent, split = _agent("scratch", num_iterations=0, normalize=True)
    agent.evaluate_adaptation(split.test, budget=1, episodes=2, seed=0)
    assert agent.train_env.obs_rms.count < 1


@pytest.mark.parametrize("agent", ["multitask", "oracle"])
def test_resume_is_exact(tmp_path, agent):
    (a, b), (rows_a, rows_b) = interrupted_and_straight_states(agent, TINY, tmp_path)
    for k, v in a["policy"].items():
        assert torch.equal(v, b["policy"][k]), k
    assert a["num_timesteps"] == b["num_timesteps"] == 3 * 2 * 20
    assert [r["return/train"] for r in rows_a] == [r["return/train"] for r in rows_b]


NORMALIZED = {**TINY, "normalize": True, "activation": "relu", "log_std_init": -1.0,
              "ortho_init": False}


def test_resume_is_exact_with_normalization(tmp_path):
    (a, b), (rows_a, rows_b) = interrupted_and_straight_states("multitask", NORMALIZED, tmp_path)
    for k, v in a["policy"].items():
        assert torch.equal(v, b["policy"][k]), k
    for name in ("obs", "return"):  # the VecNormalize statistics resume with the policy
        np.testing.assert_array_equal(a["normalization"][name]["mean"],
                                      b["normalization"][name]["mean"])
        assert a["normalization"][name]["count"] == b["normalization"][name]["count"] > 1
    assert [r["return/train"] for r in rows_a] == [r["return/train"] for r in rows_b]


def test_normalization_statistics_round_trip_and_stay_frozen_while_fine_tuning():
    agent, split = _agent("multitask", **NORMALIZED)
    policy = agent.model.policy
    assert isinstance(policy.mlp_extractor.policy_net[1], torch.nn.ReLU)
    assert torch.equal(policy.log_std.detach(), torch.full_like(policy.log_std, -1.0))
    agent.train_iteration(0)
    state = agent.state_dict()
    fresh, _ = _agent("multitask", **NORMALIZED)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.train_env.obs_rms.var, agent.train_env.obs_rms.var)
    assert fresh.train_env.ret_rms.count == agent.train_env.ret_rms.count
    obs_before = agent.train_env.obs_rms.mean.copy()
    agent.evaluate_adaptation(split.test, budget=1, episodes=2, seed=0)
    np.testing.assert_array_equal(agent.train_env.obs_rms.mean, obs_before)  # trained stats kept


def test_measured_returns_are_the_familys_rewards_not_normalized_ones():
    # identity observation statistics and a reward scale of 10: the same policy, measured
    # with and without VecNormalize, must score the same raw returns
    plain, split = _agent("multitask", **{**NORMALIZED, "normalize": False})
    normalized, _ = _agent("multitask", **NORMALIZED)
    normalized.model.policy.load_state_dict(plain.model.policy.state_dict())
    obs_rms, ret_rms = normalized.train_env.obs_rms, normalized.train_env.ret_rms
    obs_rms.mean[:], obs_rms.var[:] = 0.0, 1.0
    ret_rms.var = np.array(100.0)
    want = plain.evaluate_adaptation(split.test, budget=0, episodes=2, seed=0).returns
    got = normalized.evaluate_adaptation(split.test, budget=0, episodes=2, seed=0).returns
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.abs(want).min() > 0.1  # far from what a reward divided by 10 would give


def test_normalized_checkpoint_needs_its_statistics():
    agent, _ = _agent("multitask", **NORMALIZED)
    state = agent.state_dict()
    del state["normalization"]
    with pytest.raises(CheckpointError, match="VecNormalize statistics"):
        agent.load_state_dict(state)


# ---- aggregate statistics ----------------------------------------------------------------------
def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm([1, 2, 3, 4, 100, 5, 6, 7]) == pytest.approx(4.5)  # cut 2 from each end
    assert iqm([[10, 0, 3], [1, 2, 50]]) == pytest.approx(4.0)  # 6 scores: cut 1, mean of 1, 2, 3, 10
    assert iqm([5, 1, 9]) == pytest.approx(5.0)  # int(0.75) = 0 cut: the plain mean
    with pytest.raises(ValueError):
        iqm([])


def test_probability_of_improvement_by_hand():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    y = np.array([[2.0, 5.0], [2.0, 4.0]])
    # task 0: 2 of 4 pairs x > y -> 0.5; task 1: (5,5) tie x2, (5,4) win x2 -> 0.75
    assert probability_of_improvement(x, y) == pytest.approx(0.625)
    assert probability_of_improvement(y, x) == pytest.approx(0.375)
    p, low, high = probability_of_improvement_ci(x, y, reps=200)
    assert p == pytest.approx(0.625) and 0.0 <= low <= p <= high <= 1.0
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement(x, y[:, :1])


def test_stratified_bootstrap_by_hand():
    # one task, runs {0, 1}: the mean of a resample is 0, 0.5 or 1 with probabilities
    # 1/4, 1/2, 1/4, so the central 40% interval is [0.5, 0.5] and the 95% one [0, 1]
    scores = np.array([[0.0], [1.0]])
    mean = lambda m: float(m.mean())  # noqa: E731
    assert stratified_bootstrap_ci(scores, mean, reps=4000, confidence=0.4) == (0.5, 0.5, 0.5)
    assert stratified_bootstrap_ci(scores, mean, reps=4000, confidence=0.95) == (0.5, 0.0, 1.0)
    # strata: runs are resampled within each task, so a column never borrows another's values
    wide = np.array([[0.0, 10.0], [1.0, 11.0]])
    first = lambda m: float(m[:, 0].max())  # noqa: E731
    assert stratified_bootstrap_ci(wide, first, reps=500)[1:] == (0.0, 1.0)
    # a single run per task: every resample is the data
    single = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert stratified_bootstrap_ci(single, reps=50) == (2.5, 2.5, 2.5)
