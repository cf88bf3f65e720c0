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


class BayesOptimalBandit:
    """The Bayes-optimal policy of a k-armed Bernoulli bandit with n pulls, arm
    probabilities drawn from U[0, 1] (the ``Bandit`` family's prior), by dynamic
    programming over posterior counts.

    A state is each arm's (successes, failures); with a Beta(1, 1) prior an arm pays with
    posterior probability ``(1 + s) / (2 + s + f)``. :attr:`value` is the exact expected
    total reward of the best possible strategy, the ceiling for any learner on this task
    distribution (the RL² paper reports Gittins indices, an approximation of it). States
    are counted up to a permutation of the arms, which keeps k=5, n=10 to a few thousand;
    ``max_states`` guards setups whose state space is out of reach (k=10, n=100).
    """

    def __init__(self, arms: int, pulls: int, max_states: int = 2_000_000) -> None:
        self.arms, self.pulls = int(arms), int(pulls)
        self.max_states = int(max_states)
        self._values: dict[tuple[tuple[int, int], ...], float] = {}
        empty = tuple((0, 0) for _ in range(self.arms))
        self.value = self._value(empty)

    def _value(self, state: tuple[tuple[int, int], ...]) -> float:
        """Expected reward still to come from ``state`` (sorted arm counts), acting optimally."""
        cached = self._values.get(state)
        if cached is not None:
            return cached
        if sum(s + f for s, f in state) == self.pulls:
            return 0.0
        if len(self._values) >= self.max_states:
            raise ValueError(f"Bayes-optimal bandit: more than {self.max_states} posterior states "
                             f"for k={self.arms}, n={self.pulls}; use a smaller setup")
        best = max(self._q(state, a) for a in range(self.arms))
        self._values[state] = best
        return best

    def _q(self, state: tuple[tuple[int, int], ...], arm: int) -> float:
        """Expected reward to come from pulling ``arm`` (``state`` in any arm order)."""
        s, f = state[arm]
        p = (1.0 + s) / (2.0 + s + f)
        win = tuple(sorted(state[:arm] + ((s + 1, f),) + state[arm + 1:]))
        lose = tuple(sorted(state[:arm] + ((s, f + 1),) + state[arm + 1:]))
        return p * (1.0 + self._value(win)) + (1.0 - p) * self._value(lose)

    def act(self, counts: np.ndarray, successes: np.ndarray) -> np.ndarray:
        """Best arm for each of M bandits, given their ``(M, k)`` pulls and successes
        (ties to the lowest index)."""
        arms = np.empty(len(counts), dtype=np.int64)
        for i, (n_i, s_i) in enumerate(zip(counts.astype(int), successes.astype(int), strict=True)):
            state = tuple((int(s), int(n - s)) for s, n in zip(s_i, n_i, strict=True))
            q = [self._q(state, a) for a in range(self.arms)]
            arms[i] = int(np.argmax(q))
        return arms


def run_bayes_optimal_bandit(probs: np.ndarray, pulls: int, rng: np.random.Generator,
                             policy: BayesOptimalBandit | None = None) -> np.ndarray:
    """Play :class:`BayesOptimalBandit` on each of M bandits; rewards ``(M, pulls)``."""
    probs = np.asarray(probs, dtype=np.float64)
    m, k = probs.shape
    policy = policy or BayesOptimalBandit(k, pulls)
    if (policy.arms, policy.pulls) != (k, pulls):
        raise ValueError(f"policy is for k={policy.arms}, n={policy.pulls}; got k={k}, n={pulls}")
    rows = np.arange(m)
    counts, successes = np.zeros((m, k)), np.zeros((m, k))
    rewards = np.zeros((m, pulls))
    for t in range(pulls):
        arm = policy.act(counts, successes)
        r = (rng.random(m) < probs[rows, arm]).astype(np.float64)
        counts[rows, arm] += 1
        successes[rows, arm] += r
        rewards[:, t] = r
    return rewards


# --------------------------------------------------------------------------------------
# Tabular MDPs
# --------------------------------------------------------------------------------------

TABULAR_BASELINES = ("random", "psrl", "greedy")


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
                dirichlet_alpha: float = 1.0, optimism: float = 2.5,
                trace: dict[str, list[np.ndarray]] | None = None) -> np.ndarray:
    """Run ``episodes`` episodes of ``horizon`` steps (start in state 0) on M MDPs.

    Returns the per-episode returns ``(M, episodes)``. ``strategy``: ``"random"``,
    ``"psrl"`` (its prior defaults to the ``TabularMDP-v0`` generative model) or
    ``"greedy"``: myopic and optimistic, it takes the action with the best mean reward
    seen in the current state, an untried action counting as ``optimism`` (so every
    action of a state is tried once before any is repeated). It ignores transitions.
    ``trace``, when given, gets the ``(M,)`` arrays ``"state"``, ``"action"`` and
    ``"reward"`` of every step appended (episode after episode).
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
            elif strategy == "greedy":
                n_sa, sum_sa = visit[rows, state], reward_sum[rows, state]
                value = np.where(n_sa > 0, sum_sa / np.maximum(n_sa, 1), optimism)
                action = np.argmax(value, axis=1)
            else:
                action = np.argmax(q[h, rows, state], axis=1)
            r = reward_means[rows, state, action] + noise_std * rng.standard_normal(m)
            nxt = _sample_categorical(trans[rows, state, action], rng)
            trans_counts[rows, state, action, nxt] += 1
            visit[rows, state, action] += 1
            reward_sum[rows, state, action] += r
            returns[:, ep] += r
            if trace is not None:
                for key, value in (("state", state), ("action", action), ("reward", r)):
                    trace.setdefault(key, []).append(value)
            state = nxt
    return returns


def tune_greedy_optimism(trans: np.ndarray, reward_means: np.ndarray, episodes: int, horizon: int,
                         rng: np.random.Generator,
                         grid: Sequence[float] = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0)) -> float:
    """The ``optimism`` of the greedy baseline with the best mean return on *training* MDPs."""
    scores = [run_tabular(trans, reward_means, episodes, horizon, "greedy", rng,
                          optimism=o).sum(1).mean() for o in grid]
    return float(grid[int(np.argmax(scores))])


__all__ = ["BANDIT_BASELINES", "TABULAR_BASELINES", "BayesOptimalBandit", "bandit_probs",
           "finite_horizon_q", "mdp_params", "run_bandit", "run_bayes_optimal_bandit", "run_tabular",
           "tune_greedy_optimism", "tune_ucb_c"]
