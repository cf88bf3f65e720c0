"""Returns, generalized advantage estimation and the linear feature baseline, over
``(T, N)`` batches (time x columns) as produced by :class:`metarl.rollout.Sampler`.

Sequences: with ``episode_length=L`` the T rows are ``T // L`` consecutive episodes of
L rows each and nothing is carried across an episode boundary (MAML: one episode per
column). With ``episode_length=None`` the whole column is one sequence (RL²: returns
and advantages run across the episodes of a trial).

Masked rows (``mask == 0``, the padding after an early termination) are skipped:
they contribute nothing, and a value or advantage is carried *across* them
unchanged. Inside an episode the padding only follows a termination, so nothing is
bootstrapped past it; across a trial (``episode_length=None``) the last real step of
a terminated episode bootstraps from the first step of the next episode, as if the
padding were not there.
"""

from __future__ import annotations

import torch


def _check(rewards: torch.Tensor, mask: torch.Tensor, episode_length: int | None) -> int:
    if rewards.dim() != 2 or rewards.shape != mask.shape:
        raise ValueError(f"rewards and mask must both be (T, N); got {tuple(rewards.shape)} "
                         f"and {tuple(mask.shape)}")
    T = rewards.shape[0]
    if episode_length is None:
        return T
    if episode_length < 1 or T % episode_length:
        raise ValueError(f"episode_length={episode_length} must divide T={T}")
    return int(episode_length)


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float,
                       episode_length: int | None = None) -> torch.Tensor:
    """Reward-to-go ``G_t = r_t + γ G_{t+1}`` per column, zero on masked rows.

    Args:
        rewards: ``(T, N)`` rewards (values on masked rows are ignored).
        mask: ``(T, N)`` 1 for real steps, 0 for padding.
        gamma: discount factor.
        episode_length: rows per episode (returns restart at each boundary);
            ``None`` treats the whole column as one sequence.
    """
    L = _check(rewards, mask, episode_length)
    mask = mask.to(rewards.dtype)
    out = torch.zeros_like(rewards)
    carry = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        if (t + 1) % L == 0:  # last row of an episode: nothing flows in from the next one
            carry = torch.zeros_like(carry)
        m = mask[t]
        g = rewards[t] * m + gamma * carry
        # On padding rows keep the carry as it is (skip the row).
        carry = m * g + (1 - m) * carry
        out[t] = g * m
    return out


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float, episode_length: int | None = None,
        last_values: torch.Tensor | None = None) -> torch.Tensor:
    """Generalized advantage estimates (Schulman et al. 2016), zero on masked rows.

    ``δ_t = r_t + γ V_{t+1} − V_t`` and ``A_t = δ_t + γλ A_{t+1}``, where ``t+1`` is the
    next *real* row of the same sequence. The value after the last row of a sequence
    is 0 (the horizon is treated as the end, as in MAML/rllab), or ``last_values``
    ``(N,)`` for the final sequence of each column when given (bootstrapping a
    truncated rollout).
    """
    L = _check(rewards, mask, episode_length)
    if values.shape != rewards.shape:
        raise ValueError(f"values must be (T, N) like rewards, got {tuple(values.shape)}")
    mask = mask.to(rewards.dtype)
    T = rewards.shape[0]
    out = torch.zeros_like(rewards)
    zero = torch.zeros_like(rewards[0])
    next_value = zero if last_values is None else last_values.to(rewards.dtype)
    adv = zero
    for t in range(T - 1, -1, -1):
        if (t + 1) % L == 0 and t != T - 1:
            next_value, adv = zero, zero
        m = mask[t]
        delta = rewards[t] + gamma * next_value - values[t]
        a = delta + gamma * lam * adv
        adv = m * a + (1 - m) * adv
        next_value = m * values[t] + (1 - m) * next_value
        out[t] = a * m
    return out


def normalize_per_task(x: torch.Tensor, mask: torch.Tensor, task_index: torch.Tensor,
                       num_tasks: int | None = None, eps: float = 1e-8,
                       weights: torch.Tensor | None = None) -> torch.Tensor:
    """Standardize ``x`` (T, N) to zero mean, unit std over the real steps of each task
    (pytorch-maml-rl normalizes the advantages this way). ``weights`` (T, N) weight the
    steps in the mean and variance (default: the mask, every real step alike;
    ``mask / episode length``: every episode alike, as pytorch-maml-rl)."""
    B = int(num_tasks if num_tasks is not None else int(task_index.max()) + 1)
    mask = mask.to(x.dtype)
    w = mask if weights is None else weights.to(x.dtype) * mask
    onehot = torch.nn.functional.one_hot(task_index, B).to(x.dtype)  # (N, B)
    total = (w @ onehot).sum(0).clamp_min(1e-12)                      # (B,)
    mean = ((x * w) @ onehot).sum(0) / total
    centred = (x - mean[task_index]) * mask
    var = ((centred ** 2 * w) @ onehot).sum(0) / total
    return centred / (var.sqrt()[task_index] + eps)


class LinearFeatureBaseline:
    """The rllab / MAML linear value baseline, fitted per task by ridge regression.

    Features of a step (Duan et al. 2016; Finn et al. 2017): ``[o, o², t, t², t³, 1]``
    with ``o`` the observation clipped to ±10 and ``t = step / 100`` the time within
    the episode. All tasks are fitted at once: one batched normal-equation solve
    ``(XᵀX + cI) w = Xᵀ G`` over tasks with ``torch.linalg``. When a task's system is
    singular or gives non-finite weights the ridge ``c`` is raised tenfold for that task
    (from 1e-8 when it is 0), up to 5 tries (pytorch-maml-rl's fallback);
    :class:`FloatingPointError` after that (non-finite data).
    """

    def __init__(self, reg_coeff: float = 1e-5, max_tries: int = 5) -> None:
        self.reg_coeff = float(reg_coeff)
        self.max_tries = int(max_tries)
        self.weights: torch.Tensor | None = None   # (B, F)

    @staticmethod
    def features(obs: torch.Tensor, episode_length: int | None = None) -> torch.Tensor:
        """``(T, N, F)`` features of ``(T, N, *obs_shape)`` observations."""
        T, N = obs.shape[:2]
        o = obs.reshape(T, N, -1).clamp(-10, 10)
        rows = torch.arange(T, dtype=o.dtype, device=o.device)
        if episode_length is not None:
            rows = rows % episode_length
        t = (rows / 100.0).view(T, 1, 1).expand(T, N, 1)
        return torch.cat([o, o * o, t, t * t, t ** 3, torch.ones_like(t)], dim=-1)

    def fit(self, obs: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
            task_index: torch.Tensor, episode_length: int | None = None,
            num_tasks: int | None = None) -> LinearFeatureBaseline:
        """Fit one weight vector per task to the returns of that task's real steps."""
        B = int(num_tasks if num_tasks is not None else int(task_index.max()) + 1)
        dtype = torch.float64  # normal equations are ill-conditioned in float32
        X = self.features(obs, episode_length).to(dtype)                # (T, N, F)
        m = mask.to(dtype)
        y = returns.to(dtype) * m
        onehot = torch.nn.functional.one_hot(task_index, B).to(dtype)  # (N, B)
        Xm = X * m.unsqueeze(-1)
        # Per-task Gram matrix and moment vector, summing over time and the task's columns.
        XtX = torch.einsum("tnf,tng,nb->bfg", Xm, X, onehot)
        Xty = torch.einsum("tnf,tn,nb->bf", X, y, onehot)
        F = X.shape[-1]
        eye = torch.eye(F, dtype=dtype, device=X.device)
        weights = torch.zeros(B, F, dtype=dtype, device=X.device)
        todo = torch.ones(B, dtype=torch.bool, device=X.device)
        reg = self.reg_coeff
        for _ in range(self.max_tries):
            used = reg
            A = XtX[todo] + reg * eye
            L, info = torch.linalg.cholesky_ex(A)
            ok = info == 0
            w = torch.zeros_like(Xty[todo])
            if ok.any():
                w[ok] = torch.cholesky_solve(Xty[todo][ok].unsqueeze(-1), L[ok]).squeeze(-1)
            ok = ok & torch.isfinite(w).all(-1)
            idx = torch.nonzero(todo).flatten()
            weights[idx[ok]] = w[ok]
            todo[idx[ok]] = False
            if not todo.any():
                break
            reg = reg * 10 if reg > 0 else 1e-8
        if todo.any():
            raise FloatingPointError(
                f"linear baseline: normal equations singular for {int(todo.sum())} task(s) even "
                f"with ridge {used:g}; the observations or returns contain NaN/inf")
        self.weights = weights
        return self

    def predict(self, obs: torch.Tensor, task_index: torch.Tensor,
                episode_length: int | None = None) -> torch.Tensor:
        """``(T, N)`` value predictions with the weights of each column's task."""
        if self.weights is None:
            raise RuntimeError("LinearFeatureBaseline.predict called before fit")
        X = self.features(obs, episode_length).to(self.weights.dtype)
        w = self.weights[task_index]                                   # (N, F)
        return torch.einsum("tnf,nf->tn", X, w).to(obs.dtype)

    def fit_predict(self, obs: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                    task_index: torch.Tensor, episode_length: int | None = None,
                    num_tasks: int | None = None) -> torch.Tensor:
        """Fit on a batch and predict its values (what MAML's inner and outer loops do)."""
        self.fit(obs, returns, mask, task_index, episode_length, num_tasks)
        return self.predict(obs, task_index, episode_length) * mask.to(obs.dtype)


__all__ = ["LinearFeatureBaseline", "discounted_returns", "gae", "normalize_per_task"]
