"""Classic baselines for the RL² paper's tables, vectorized over problem instances.

Bandits (Bernoulli, RL² Table 1): random, UCB1 (Auer et al. 2002) and Thompson
sampling with a Beta(1, 1) prior. Tabular MDPs (RL² Table 2): random and PSRL
(posterior sampling for RL, Osband et al. 2013): a Dirichlet(1) posterior on each
transition row and a Normal posterior on each reward mean (prior N(1, 1), known unit
observation noise, i.e. the family's own generative model); one MDP is drawn from
the posterior at the start of every episode and followed greedily (finite-horizon
value iteration).

Each function takes the held-out tasks' parameters as arrays (``(M, k)`` arm
probabilities, or ``(M, S, A, S)`` transitions and ``(M, S, A)`` reward means) and an
explicit ``numpy.random.Generator``; it simulates all M instances at once with the
same generative model as ``Bandit-v0`` / ``TabularMDP-v0`` and returns the reward of
every step, so 1000 instances take well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metarl.task import Task

# --------------------------------------------------------------------------------------
# Bandits
# --------------------------------------------------------------------------------------

BANDIT_BASELINES = ("random", "ucb1", "thompson")


def bandit_probs(tasks: Sequence[Task]) -> np.ndarray:
    """``(M, k)`` arm probabilities of ``Bandit`` tasks."""
    return np.stack([np.asarray(t["probs"], dtype=np.float64) for t in tasks])


def run_bandit(probs: np.ndarray, pulls: int, strategy: str,
               rng: np.random.Generator, ucb_c: float = 1.0) -> np.ndarray:
    """Play ``pulls`` pulls on each of M Bernoulli bandits; returns rewards ``(M, pulls)``.

    ``strategy``: ``"random"``, ``"ucb1"`` or ``"thompson"``. UCB1 picks
    ``argmax mean_i + c * sqrt(2 ln t / n_i)``; ``ucb_c = 1`` is Auer et al.'s UCB1,
    smaller values explore less (see :func:`tune_ucb_c`).
    """
    if strategy not in BANDIT_BASELINES:
        raise ValueError(f"unknown bandit strategy {strategy!r}; choose from {BANDIT_BASELINES}")
    probs = np.asarray(probs, dtype=np.float64)
    m, k = probs.shape
    rows = np.arange(m)
    counts = np.zeros((m, k))
    successes = np.zeros((m, k))
    rewards = np.zeros((m, pulls))
    for t in range(pulls):
        if strategy == "random":
            arm = rng.integers(k, size=m)
        elif strategy == "ucb1":
            if t < k:  # UCB1 pulls every arm once first
                arm = np.full(m, t)
            else:
                means = successes / counts
                bonus = ucb_c * np.sqrt(2.0 * np.log(t) / counts)
                arm = np.argmax(means + bonus, axis=1)
        else:  # Thompson sampling, Beta(1 + successes, 1 + failures) posterior
            draws = rng.beta(1.0 + successes, 1.0 + counts - successes)
            arm = np.argmax(draws, axis=1)
        r = (rng.random(m) < probs[rows, arm]).astype(np.float64)
        counts[rows, arm] += 1
        successes[rows, arm] += r
        rewards[:, t] = r
    return rewards


def tune_ucb_c(probs: np.ndarray, pulls: int, rng: np.random.Generator,
               grid: Sequence[float] = (0.01, 0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)) -> float:
    """The UCB1 exploration coefficient with the best mean total reward on ``probs``.

    Pass *training* instances, never the held-out ones: the RL² paper compares against
    baselines whose hyperparameters were tuned, and tuning on the test set would flatter them.
    """
    scores = [run_bandit(probs, pulls, "ucb1", rng, ucb_c=c).sum(1).mean() for c in grid]
    return float(grid[int(np.argmax(scores))])


# --------------------------------------------------------------------------------------
# Tabular MDPs
# --------------------------------------------------------------------------------------

TABULAR_BASELINES = ("random", "psrl")


def mdp_params(tasks: Sequence[Task]) -> tuple[np.ndarray, np.ndarray]:
    """``(M, S, A, S)`` transitions and ``(M, S, A)`` reward means of ``TabularMDP`` tasks."""
    trans = np.stack([np.asarray(t["transitions"], dtype=np.float64) for t in tasks])
    means = np.stack([np.asarray(t["reward_means"], dtype=np.float64) for t in tasks])
    return trans, means


def finite_horizon_q(trans: np.ndarray, rewards: np.ndarray, horizon: int) -> np.ndarray:
    """Optimal ``Q[h, m, s, a]`` with ``horizon - h`` steps to go (backward induction)."""
    m, s, a, _ = trans.shape
    q = np.zeros((horizon, m, s, a))
    v_next = np.zeros((m, s))
    for h in range(horizon - 1, -1, -1):
        q[h] = rewards + np.einsum("msaz,mz->msa", trans, v_next)
        v_next = q[h].max(axis=2)
    return q


def _sample_categorical(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of ``p (M, S)`` (inverse CDF; rows need not be exactly normalized)."""
    cdf = np.cumsum(p, axis=1)
    u = rng.random(len(p)) * cdf[:, -1]
    return np.minimum((cdf < u[:, None]).sum(axis=1), p.shape[1] - 1)


def run_tabular(trans: np.ndarray, reward_means: np.ndarray, episodes: int, horizon: int,
                strategy: str, rng: np.random.Generator, prior_mean: float = 1.0,
                prior_std: float = 1.0, noise_std: float = 1.0,
                dirichlet_alpha: float = 1.0) -> np.ndarray:
    """Run ``episodes`` episodes of ``horizon`` steps (start in state 0) on M MDPs.

    Returns the per-episode returns ``(M, episodes)``. ``strategy``: ``"random"`` or
    ``"psrl"``; the PSRL prior defaults to the ``TabularMDP-v0`` generative model.
    """
    if strategy not in TABULAR_BASELINES:
        raise ValueError(f"unknown tabular strategy {strategy!r}; choose from {TABULAR_BASELINES}")
    m, n_s, n_a, _ = trans.shape
    rows = np.arange(m)
    trans_counts = np.zeros((m, n_s, n_a, n_s))
    visit = np.zeros((m, n_s, n_a))
    reward_sum = np.zeros((m, n_s, n_a))
    prior_prec = 1.0 / prior_std ** 2
    noise_prec = 1.0 / noise_std ** 2
    returns = np.zeros((m, episodes))
    for ep in range(episodes):
        if strategy == "psrl":
            # Posterior draw of one MDP per instance (resampled every episode).
            sampled_p = rng.gamma(dirichlet_alpha + trans_counts)
            sampled_p /= sampled_p.sum(axis=3, keepdims=True)
            post_prec = prior_prec + noise_prec * visit
            post_mean = (prior_prec * prior_mean + noise_prec * reward_sum) / post_prec
            sampled_r = post_mean + rng.standard_normal(post_mean.shape) / np.sqrt(post_prec)
            q = finite_horizon_q(sampled_p, sampled_r, horizon)
        state = np.zeros(m, dtype=np.int64)
        for h in range(horizon):
            if strategy == "random":
                action = rng.integers(n_a, size=m)
            else:
                action = np.argmax(q[h, rows, state], axis=1)
            r = reward_means[rows, state, action] + noise_std * rng.standard_normal(m)
            nxt = _sample_categorical(trans[rows, state, action], rng)
            trans_counts[rows, state, action, nxt] += 1
            visit[rows, state, action] += 1
            reward_sum[rows, state, action] += r
            returns[:, ep] += r
            state = nxt
    return returns


__all__ = ["BANDIT_BASELINES", "TABULAR_BASELINES", "bandit_probs", "finite_horizon_q",
           "mdp_params", "run_bandit", "run_tabular", "tune_ucb_c"]
