"""MLP policies called functionally, and batched rollout policies with per-task parameters.

Policies are plain ``nn.Module`` objects; every agent calls them through
``torch.func.functional_call(module, params, obs)`` with a parameter dict, so an
inner-loop update ``θ' = θ − α∇L`` is an ordinary tensor expression through which
second-order gradients flow (no in-place surgery on module parameters).

``forward`` returns the *distribution parameters* as a tuple of tensors (Gaussian:
``(mean, log_std)``; categorical: ``(logits,)``) and the module's static helpers
(``log_prob``, ``kl``, ``sample``, ``mode``, ``entropy``) work on such tuples, so one
``torch.func.vmap`` over stacked per-task parameters serves a whole task batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import gymnasium as gym
import torch
from torch import nn
from torch.func import functional_call, vmap

from metarl.rollout import Policy, StepContext

Params = dict[str, torch.Tensor]
Dist = tuple[torch.Tensor, ...]

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def _mlp(in_dim: int, hidden: Sequence[int], activation: str) -> nn.Sequential:
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), _ACTIVATIONS[activation]()]
        in_dim = h
    return nn.Sequential(*layers)


def _with_context(module: nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """``obs`` joined by the module's context vector (CAVIA), when it has one."""
    if module.context is None:
        return obs
    return torch.cat([obs, module.context.expand(*obs.shape[:-1], -1)], dim=-1)


def _init_linear(module: nn.Module) -> None:
    # Xavier-uniform weights and zero biases, as pytorch-maml-rl and rllab initialize.
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class GaussianMLPPolicy(nn.Module):
    """Diagonal Gaussian over Box actions: tanh MLP mean, state-independent log-std.
    With ``context_size > 0`` the MLP also reads a context vector (parameter ``context``,
    zeros at initialization) joined to the observation, as CAVIA adapts it."""

    discrete = False

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int] = (64, 64),
                 activation: str = "tanh", init_std: float = 1.0, min_std: float = 1e-6,
                 context_size: int = 0) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        in_dim = self.obs_dim + int(context_size)
        self.body = _mlp(in_dim, hidden_sizes, activation)
        last = hidden_sizes[-1] if len(hidden_sizes) else in_dim
        self.mean = nn.Linear(last, self.act_dim)
        self.log_std = nn.Parameter(torch.full((self.act_dim,), math.log(init_std)))
        self.min_log_std = math.log(min_std)
        _init_linear(self)
        self.context = nn.Parameter(torch.zeros(int(context_size))) if context_size else None

    def forward(self, obs: torch.Tensor) -> Dist:
        mean = self.mean(self.body(_with_context(self, obs)))
        log_std = self.log_std.clamp_min(self.min_log_std).expand_as(mean)
        return mean, log_std

    @staticmethod
    def log_prob(dist: Dist, actions: torch.Tensor) -> torch.Tensor:
        mean, log_std = dist
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    @staticmethod
    def kl(old: Dist, new: Dist) -> torch.Tensor:
        """KL(old ‖ new) per sample."""
        (m0, s0), (m1, s1) = old, new
        var_ratio = torch.exp(2 * (s0 - s1))
        return (s1 - s0 + 0.5 * (var_ratio + (m0 - m1) ** 2 * torch.exp(-2 * s1)) - 0.5).sum(-1)

    @staticmethod
    def fisher_diag(dist: Dist) -> Dist:
        """Fisher information of the distribution in its output parameters (diagonal):
        ``1/σ²`` for the mean, 2 for the log-std. It equals the Hessian of
        ``KL(old ‖ new)`` w.r.t. the new outputs at new = old."""
        _, log_std = dist
        return torch.exp(-2 * log_std), torch.full_like(log_std, 2.0)

    @staticmethod
    def entropy(dist: Dist) -> torch.Tensor:
        _, log_std = dist
        return (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)

    @staticmethod
    def sample(dist: Dist, generator: torch.Generator | None = None,
               uniform: torch.Tensor | None = None) -> torch.Tensor:
        """Draw actions; from ``uniform`` (U(0,1) draws shaped like the mean, the Sampler's
        per-task ``ctx.noise``) by inverse CDF when given, else from ``generator``."""
        mean, log_std = dist
        if uniform is not None:
            u = uniform.reshape(mean.shape).to(mean.dtype).clamp(1e-7, 1 - 1e-7)
            noise = torch.special.ndtri(u)
        else:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype,
                                device=mean.device)
        return mean + torch.exp(log_std) * noise

    @staticmethod
    def mode(dist: Dist) -> torch.Tensor:
        return dist[0]


class CategoricalMLPPolicy(nn.Module):
    """Categorical over Discrete actions: MLP logits."""

    discrete = True

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int] = (64, 64),
                 activation: str = "tanh", context_size: int = 0) -> None:
        super().__init__()
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        in_dim = self.obs_dim + int(context_size)
        self.body = _mlp(in_dim, hidden_sizes, activation)
        last = hidden_sizes[-1] if len(hidden_sizes) else in_dim
        self.logits = nn.Linear(last, self.n_actions)
        _init_linear(self)
        self.context = nn.Parameter(torch.zeros(int(context_size))) if context_size else None

    def forward(self, obs: torch.Tensor) -> Dist:
        return (torch.log_softmax(self.logits(self.body(_with_context(self, obs))), dim=-1),)

    @staticmethod
    def log_prob(dist: Dist, actions: torch.Tensor) -> torch.Tensor:
        return dist[0].gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def kl(old: Dist, new: Dist) -> torch.Tensor:
        lp0, lp1 = old[0], new[0]
        return (lp0.exp() * (lp0 - lp1)).sum(-1)

    @staticmethod
    def fisher_diag(dist: Dist) -> Dist:
        """Fisher information in the log-probability outputs: ``diag(p)`` (so that
        ``Jᵀ diag(p) J`` is the Fisher of the parameters, the Hessian of the KL at old = new)."""
        return (dist[0].exp(),)

    @staticmethod
    def entropy(dist: Dist) -> torch.Tensor:
        lp = dist[0]
        return -(lp.exp() * lp).sum(-1)

    @staticmethod
    def sample(dist: Dist, generator: torch.Generator | None = None,
               uniform: torch.Tensor | None = None) -> torch.Tensor:
        """Draw actions; by inverse CDF from ``uniform`` (one U(0,1) per sample) when given."""
        lp = dist[0]
        flat = lp.reshape(-1, lp.shape[-1]).exp()
        if uniform is None:
            return torch.multinomial(flat, 1, generator=generator).reshape(lp.shape[:-1])
        cdf = flat.cumsum(-1)
        u = uniform.reshape(-1, 1).to(cdf.dtype) * cdf[:, -1:]
        idx = (cdf <= u).sum(-1).clamp_max(lp.shape[-1] - 1)
        return idx.reshape(lp.shape[:-1])

    @staticmethod
    def mode(dist: Dist) -> torch.Tensor:
        return dist[0].argmax(-1)


PolicyModule = GaussianMLPPolicy | CategoricalMLPPolicy


def make_policy(observation_space: gym.Space, action_space: gym.Space,
                hidden_sizes: Sequence[int] = (64, 64), activation: str = "tanh",
                init_std: float = 1.0, context_size: int = 0) -> PolicyModule:
    """The MLP policy for a family's spaces: Gaussian for Box, categorical for Discrete
    (with ``context_size``, conditioned on a context vector: see :class:`GaussianMLPPolicy`)."""
    if isinstance(observation_space, gym.spaces.Discrete):
        raise TypeError("MLP policies need Box observations; wrap Discrete ones (one-hot) first")
    obs_dim = int(math.prod(observation_space.shape))
    if isinstance(action_space, gym.spaces.Box):
        return GaussianMLPPolicy(obs_dim, int(math.prod(action_space.shape)), hidden_sizes,
                                 activation, init_std, context_size=context_size)
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalMLPPolicy(obs_dim, int(action_space.n), hidden_sizes, activation,
                                    context_size=context_size)
    raise TypeError(f"no MLP policy for action space {action_space}")


# ---- parameter dicts -----------------------------------------------------------------
def get_params(module: nn.Module) -> Params:
    """The module's parameters as a ``{name: tensor}`` dict (the leaves an agent optimizes)."""
    return dict(module.named_parameters())


def stack_params(params: Sequence[Mapping[str, torch.Tensor]]) -> Params:
    """``[{name: (...)}] * B`` -> ``{name: (B, ...)}``."""
    return {name: torch.stack([p[name] for p in params]) for name in params[0]}


def unstack_params(stacked: Mapping[str, torch.Tensor]) -> list[Params]:
    """Inverse of :func:`stack_params`."""
    B = next(iter(stacked.values())).shape[0]
    return [{name: t[i] for name, t in stacked.items()} for i in range(B)]


def expand_params(params: Mapping[str, torch.Tensor], num_tasks: int) -> Params:
    """Share ``params`` across ``num_tasks`` tasks as ``(B, ...)`` views. Gradients of a
    sum of per-task losses with respect to the expanded tensors are the per-task gradients
    (each task's loss only touches its own slice), in one backward pass."""
    return {name: t.unsqueeze(0).expand(num_tasks, *t.shape) for name, t in params.items()}


def flat_params(params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in params.values()])


def unflat_params(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> Params:
    out, i = {}, 0
    for name, t in like.items():
        n = t.numel()
        out[name] = vector[i:i + n].view_as(t)
        i += n
    return out


def dist_of(module: nn.Module, params: Mapping[str, torch.Tensor], obs: torch.Tensor) -> Dist:
    """Distribution parameters of ``module`` with ``params`` at ``obs`` (any leading dims)."""
    return functional_call(module, dict(params), (obs,))


def batched_dist(module: nn.Module, stacked: Mapping[str, torch.Tensor],
                 obs: torch.Tensor) -> Dist:
    """Per-task distributions in one call: ``stacked`` is ``{name: (B, ...)}``, ``obs`` is
    ``(B, ..., obs_dim)``; returns tensors with the same leading ``B``."""
    return vmap(lambda p, o: functional_call(module, p, (o,)))(dict(stacked), obs)


# ---- rollout policies -------------------------------------------------------------------
def rollout_policy(module: nn.Module, params: Mapping[str, torch.Tensor] | None = None,
                   per_task: bool = False, deterministic: bool = False) -> Policy:
    """A :data:`metarl.rollout.Policy` for :class:`~metarl.rollout.Sampler`.

    Args:
        module: the policy network (its parameters are used when ``params`` is None).
        params: a parameter dict; with ``per_task=True`` it is stacked ``{name: (B, ...)}``
            and column ``j`` acts with the parameters of task ``ctx.task_index[j]``.
        deterministic: act with the distribution's mode instead of sampling.

    All columns act in one batched call: when columns are laid out task by task
    (the Sampler's layout) the observations are viewed as ``(B, E, obs_dim)`` and the
    network is vmapped over tasks; otherwise each column gathers its task's parameters.
    """
    params = dict(params if params is not None else get_params(module))
    params = {k: v.detach() for k, v in params.items()}
    cls = type(module)
    layout_cache: dict[tuple[int, ...], int | None] = {}

    def blocks(task_index: torch.Tensor) -> int | None:
        """Tasks in this call when columns are laid out task by task (E columns each,
        starting at ``task_index[0]``, the Sampler's layout), else None."""
        key = tuple(task_index.tolist())  # the layout itself: cheap next to a policy call
        if key not in layout_cache:
            n, first = len(key), key[0]
            b = key[-1] - first + 1
            ok = b >= 1 and n % b == 0 and torch.equal(
                task_index, first + torch.arange(b).repeat_interleave(n // b))
            layout_cache[key] = b if ok else None
        return layout_cache[key]

    def act(obs: torch.Tensor, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        obs = obs.reshape(obs.shape[0], -1)
        n = obs.shape[0]
        b = blocks(ctx.task_index)
        if b is not None:
            # One vmap over the tasks of this call, even with shared parameters: BLAS picks
            # its kernel by row count (MKL rounds <= 8 rows differently), so a task's
            # actions must not depend on how many other tasks share the call, or sampling
            # on N Ray actors would not equal local sampling.
            if per_task:
                first = int(ctx.task_index[0])
                sub = {k: v[first:first + b] for k, v in params.items()}
            else:
                sub = expand_params(params, b)
            grouped = batched_dist(module, sub, obs.view(b, n // b, -1))
            dist = tuple(d.reshape(n, *d.shape[2:]) for d in grouped)
        elif not per_task:
            dist = functional_call(module, params, (obs,))
        else:  # any layout: each column gathers its task's parameters
            cols = {k: v[ctx.task_index] for k, v in params.items()}
            dist = tuple(d.squeeze(1) for d in batched_dist(module, cols, obs.unsqueeze(1)))
        if deterministic:
            actions = cls.mode(dist)
        else:
            actions = cls.sample(dist, ctx.generator, getattr(ctx, "noise", None))
        return actions, cls.log_prob(dist, actions)

    return act


__all__ = ["CategoricalMLPPolicy", "Dist", "GaussianMLPPolicy", "Params", "PolicyModule",
           "batched_dist", "dist_of", "expand_params", "flat_params", "get_params", "make_policy",
           "rollout_policy", "stack_params", "unflat_params", "unstack_params"]
