"""Classic baselines: they must beat random by a clear margin on fixed instances, and
their simulators must follow the families' generative models."""

from __future__ import annotations

import numpy as np
import pytest

import metarl
from metarl.agents.classic import (
    BayesOptimalBandit,
    bandit_probs,
    finite_horizon_q,
    mdp_params,
    run_bandit,
    run_bayes_optimal_bandit,
    run_tabular,
    tune_greedy_optimism,
    tune_ucb_c,
)


@pytest.fixture(scope="module")
def bandits() -> np.ndarray:
    fam = metarl.make_family("metarl/Bandit-v0", arms=5, pulls=100)
    return bandit_probs(fam.split(0, 500, seed=0).test)


def test_ucb1_and_thompson_beat_random_clearly(bandits: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    random = run_bandit(bandits, 100, "random", rng).sum(1).mean()
    ucb = run_bandit(bandits, 100, "ucb1", rng).sum(1).mean()
    thompson = run_bandit(bandits, 100, "thompson", rng).sum(1).mean()
    oracle = bandits.max(1).mean() * 100
    assert abs(random - bandits.mean() * 100) < 1.5  # random earns the mean arm
    assert ucb > random + 10 and thompson > random + 20
    assert thompson < oracle and ucb < oracle


def test_ucb1_pulls_every_arm_once_first() -> None:
    probs = np.array([[0.1, 0.9, 0.5]])
    rng = np.random.default_rng(0)
    # with p in {0, 1} the reward reveals the arm: the first k pulls are arms 0, 1, 2
    r = run_bandit(np.array([[0.0, 1.0, 0.0]]), 3, "ucb1", rng)
    assert r.tolist() == [[0.0, 1.0, 0.0]]
    assert run_bandit(probs, 10, "ucb1", rng).shape == (1, 10)


def test_tuned_ucb_c_is_from_the_grid(bandits: np.ndarray) -> None:
    c = tune_ucb_c(bandits[:100], 100, np.random.default_rng(1), grid=(0.1, 1.0))
    assert c in (0.1, 1.0)


def test_bayes_optimal_bandit_known_values_and_simulation() -> None:
    """Hand-computed values, and a simulation under the prior that matches the DP value."""
    assert BayesOptimalBandit(2, 1).value == pytest.approx(0.5)
    # Pull arm 1; keep it after a win (posterior 2/3), switch after a loss (1/2).
    assert BayesOptimalBandit(2, 2).value == pytest.approx(0.5 + 0.5 * 2 / 3 + 0.5 * 0.5)
    policy = BayesOptimalBandit(3, 4)
    rng = np.random.default_rng(0)
    probs = rng.random((20000, 3))  # the family's prior, U[0, 1] per arm
    totals = run_bayes_optimal_bandit(probs, 4, rng, policy).sum(1)
    assert abs(totals.mean() - policy.value) < 3 * totals.std() / np.sqrt(len(totals))
    # ...and it beats Thompson sampling on the same bandits.
    assert totals.mean() > run_bandit(probs, 4, "thompson", rng).sum(1).mean()
    with pytest.raises(ValueError, match="posterior states"):
        BayesOptimalBandit(10, 100, max_states=1000)


def test_finite_horizon_q_on_a_known_mdp() -> None:
    # 2 states, 2 actions: action 1 in state 0 pays 1 and moves to state 1, which pays 2
    # for any action and stays. Optimal 3-step return from state 0: 1 + 2 + 2 = 5.
    trans = np.zeros((1, 2, 2, 2))
    trans[0, 0, 0, 0] = 1.0
    trans[0, 0, 1, 1] = 1.0
    trans[0, 1, :, 1] = 1.0
    rewards = np.array([[[0.0, 1.0], [2.0, 2.0]]])
    q = finite_horizon_q(trans, rewards, 3)
    assert q[0, 0, 0].max() == pytest.approx(5.0)
    assert q[2, 0, 0].tolist() == [0.0, 1.0]


def test_psrl_beats_random_on_tabular_mdps() -> None:
    fam = metarl.make_family("metarl/TabularMDP-v0")
    trans, means = mdp_params(fam.split(0, 200, seed=0).test)
    rng = np.random.default_rng(0)
    random = run_tabular(trans, means, 10, 10, "random", rng)
    psrl = run_tabular(trans, means, 10, 10, "psrl", rng)
    assert random.shape == psrl.shape == (200, 10)
    # random earns the mean reward (≈ 1 per step); PSRL learns within the trial
    assert abs(random.sum(1).mean() - 100) < 5
    assert psrl.sum(1).mean() > random.sum(1).mean() + 20
    assert psrl[:, -3:].mean() > psrl[:, :3].mean()


def test_greedy_tries_every_action_once_then_exploits() -> None:
    """On a 1-state MDP (a 3-armed bandit with Gaussian rewards) the greedy learner pulls
    each arm once, then the one whose single reward was best."""
    trans = np.ones((4, 1, 3, 1))
    means = np.tile(np.array([0.0, 5.0, 1.0]), (4, 1, 1))
    rng = np.random.default_rng(0)
    returns = run_tabular(trans, means, 1, 10, "greedy", rng, noise_std=0.1, optimism=100.0)
    # 3 exploratory pulls (0 + 5 + 1) then 7 pulls of the 5-arm
    np.testing.assert_allclose(returns[:, 0], 6.0 + 7 * 5.0, atol=1.0)
    fam = metarl.make_family("metarl/TabularMDP-v0")
    trans, means = mdp_params(fam.split(0, 200, seed=0).test)
    greedy = run_tabular(trans, means, 10, 10, "greedy", rng)
    assert greedy.sum(1).mean() > 120 and greedy[:, -3:].mean() > greedy[:, :3].mean()
    assert tune_greedy_optimism(trans[:50], means[:50], 2, 10, rng, grid=(1.0, 2.5)) in (1.0, 2.5)


def test_tabular_trace_records_every_step_of_the_run() -> None:
    """The trace holds what was played: greedy's first pulls on a 1-state MDP are arms
    0, 1, 2 in turn (all untried, ties to the lowest), and its rewards sum to the returns."""
    trans = np.ones((4, 1, 3, 1))
    means = np.tile(np.array([0.0, 5.0, 1.0]), (4, 1, 1))
    trace: dict[str, list[np.ndarray]] = {}
    returns = run_tabular(trans, means, 2, 5, "greedy", np.random.default_rng(0),
                          noise_std=0.1, optimism=100.0, trace=trace)
    state, action, reward = (np.stack(trace[k]) for k in ("state", "action", "reward"))
    assert state.shape == action.shape == reward.shape == (10, 4)
    assert (state == 0).all()
    np.testing.assert_array_equal(action[:3], np.tile([[0], [1], [2]], (1, 4)))
    assert (action[3:] == 1).all()
    np.testing.assert_allclose(reward.reshape(2, 5, 4).sum(1).T, returns)


def test_unknown_strategies_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown bandit strategy"):
        run_bandit(np.ones((1, 2)) / 2, 3, "gittins", np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown tabular strategy"):
        run_tabular(np.ones((1, 2, 2, 2)) / 2, np.zeros((1, 2, 2)), 1, 2, "beb",
                    np.random.default_rng(0))
