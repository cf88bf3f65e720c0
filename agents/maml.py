"""MAML-RL (Finn, Abbeel & Levine 2017), read top to bottom.

One meta-iteration:

1. Draw ``meta_batch_size`` train tasks.
2. For each inner step k = 0..K-1: roll out ``episodes_per_task`` episodes per task with
   the current (per-task) parameters θ'_k, and adapt ``θ'_{k+1} = θ'_k − α ∇L_in(θ'_k)``
   where ``L_in`` is the vanilla policy-gradient (REINFORCE) loss with a linear feature
   baseline and GAE. Then roll out the *validation* episodes with θ'_K.
3. Outer step = TRPO on the meta-parameters θ: maximize the importance-weighted
   surrogate of the validation episodes under θ'_K(θ), subject to the mean KL between
   the old and new adapted policies staying below ``max_kl``. The step direction
   solves ``H x = −g`` by conjugate gradient, with ``H`` the Hessian of the mean KL
   w.r.t. the meta-parameters, through the inner loop (exact Hessian-vector products as
   ``Jᵀ F J v``, see :func:`maml_kl_hvp`), and a backtracking line search enforces both
   the KL bound and surrogate improvement.

Second-order by default: the inner gradient is built with ``create_graph=True`` so the
meta-gradient includes ``−α ∇²L_in``; ``first_order=True`` drops that term.

Everything that depends on the task batch runs batched: the inner losses of all tasks
are one vmapped call over stacked per-task parameters, and the per-task inner
gradients come from one backward pass through parameters *expanded* to ``(B, ...)``
(each task's loss only touches its own slice). Rollouts run on the CPU; the meta-update
runs on ``config.device``.

Meta-SGD (``metarl.agents.metasgd``) reuses all of this with a learned per-element
inner learning rate α, meta-learned together with θ.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from metarl.advantages import LinearFeatureBaseline, discounted_returns, gae, normalize_per_task
from metarl.agent import AdaptationResult, MetaAgent, register_agent
from metarl.config import RunConfig
from metarl.distributed import make_sampler
from metarl.errors import CheckpointError
from metarl.family import TaskFamily
from metarl.policies import (
    Dist,
    Params,
    batched_dist,
    expand_params,
    flat_params,
    make_policy,
    rollout_policy,
)
from metarl.rollout import EpisodeBatch
from metarl.task import Task


# ---------------------------------------------------------------------------------------
# Configuration (defaults: the MAML paper / pytorch-maml-rl 2D-navigation setting)
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class InnerLoopConfig(RunConfig):
    """The keys of every gradient-based meta-learner (:class:`InnerLoopAgent`)."""

    #: tasks per meta-batch.
    meta_batch_size: int = 20
    #: episodes per task for each inner step (and for MAML's validation rollouts).
    episodes_per_task: int = 20
    #: steps per episode; None = the family's horizon.
    horizon: int | None = None
    #: policy MLP.
    hidden_sizes: list[int] = dataclasses.field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    init_std: float = 1.0
    #: discount and GAE λ (λ = 1: Monte-Carlo returns minus the baseline, as in MAML).
    gamma: float = 0.99
    gae_lambda: float = 1.0
    #: standardize advantages per task (pytorch-maml-rl does).
    normalize_advantages: bool = True
    #: inner loop: step size α and number of steps.
    inner_lr: float = 0.1
    num_inner_steps: int = 1
    #: ridge of the linear feature baseline.
    baseline_reg: float = 1e-5
    #: tasks per rollout call during evaluation (bounds memory; no effect on results).
    eval_chunk: int = 40

    def validate(self) -> None:
        super().validate()
        self.check({
            "meta_batch_size": self.meta_batch_size >= 1, "episodes_per_task": self.episodes_per_task >= 1,
            "num_inner_steps": self.num_inner_steps >= 0, "gamma": 0 <= self.gamma <= 1,
            "gae_lambda": 0 <= self.gae_lambda <= 1,
            "horizon": self.horizon is None or self.horizon >= 1,
            "meta_batch_size <= num_train_tasks": self.meta_batch_size <= self.num_train_tasks,
        })


@dataclasses.dataclass
class MAMLConfig(InnerLoopConfig):
    #: drop the second-order term of the meta-gradient.
    first_order: bool = False
    #: TRPO outer step.
    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 1e-5
    ls_max_steps: int = 15
    ls_backtrack_ratio: float = 0.8
    #: fraction of the meta-batch's tasks whose inner steps and validation episodes the
    #: conjugate gradient's Fisher-vector products use (rllab's TRPO ``subsample_factor``,
    #: drawn per iteration); the meta-gradient, the line search's KL bound and its
    #: surrogate use every task.
    fisher_subsample: float = 1.0

    def validate(self) -> None:
        super().validate()
        self.check({"max_kl": self.max_kl > 0, "cg_iters": self.cg_iters >= 1,
                     "0 < fisher_subsample <= 1": 0 < self.fisher_subsample <= 1,
                     "ls_max_steps": self.ls_max_steps >= 1,
                     "ls_backtrack_ratio": 0 < self.ls_backtrack_ratio < 1})


# ---------------------------------------------------------------------------------------
# Batches in task-major layout, with advantages
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class TaskBatch:
    """An EpisodeBatch rearranged task-major: tensors are ``(B, T, E, ...)`` so that one
    vmap over B gives per-task losses. ``adv`` are the (normalized) advantages."""

    obs: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor
    adv: torch.Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TaskBatch:
        pinned = torch.device(device).type == "cuda"

        def mv(x: torch.Tensor) -> torch.Tensor:
            # Page-locked host memory lets the copy to the GPU run asynchronously.
            x = x.pin_memory().to(device, non_blocking=True) if pinned else x.to(device)
            return x.to(dtype) if dtype is not None and x.is_floating_point() else x
        return TaskBatch(mv(self.obs), mv(self.actions), mv(self.mask), mv(self.adv))

    def tasks(self, index: torch.Tensor) -> TaskBatch:
        """The batch of the tasks at ``index`` (along the task axis)."""
        return TaskBatch(*(x.index_select(0, index) for x in (self.obs, self.actions, self.mask,
                                                              self.adv)))


def task_major(x: torch.Tensor, num_tasks: int) -> torch.Tensor:
    """``(T, N, ...)`` with N = B·E columns laid out task by task -> ``(B, T, E, ...)``."""
    T, N = x.shape[:2]
    return x.reshape(T, num_tasks, N // num_tasks, *x.shape[2:]).transpose(0, 1)


def prepare_batch(batch: EpisodeBatch, gamma: float, lam: float, normalize: bool,
                  baseline: LinearFeatureBaseline) -> TaskBatch:
    """Advantages (linear baseline fitted per task, GAE) and the task-major layout."""
    B = len(batch.tasks)
    returns = discounted_returns(batch.rewards, batch.mask, gamma, batch.horizon)
    values = baseline.fit_predict(batch.obs, returns, batch.mask, batch.task_index,
                                  batch.horizon, num_tasks=B)
    adv = gae(batch.rewards, values, batch.mask, gamma, lam, batch.horizon)
    if normalize:  # with the same per-episode weighting as the losses
        lengths = batch.mask.reshape(batch.episodes_per_trial, batch.horizon, -1).sum(1)
        weights = batch.mask / lengths.clamp_min(1.0).repeat_interleave(batch.horizon, 0)
        adv = normalize_per_task(adv, batch.mask, batch.task_index, B, weights=weights)
    obs = batch.obs.reshape(*batch.obs.shape[:2], -1)
    return TaskBatch(task_major(obs, B), task_major(batch.actions, B),
                     task_major(batch.mask, B), task_major(adv, B))


# ---------------------------------------------------------------------------------------
# Inner loop: VPG on per-task parameters (batched over tasks)
# ---------------------------------------------------------------------------------------
def step_weights(mask: torch.Tensor) -> torch.Tensor:
    """``(B, T, E)`` weights that average over the real steps of each episode, then over
    the episodes of a task (pytorch-maml-rl's ``weighted_mean``): an episode that ended
    early (PointNav: reached the goal) counts as much as a full-length one."""
    lengths = mask.sum(1, keepdim=True).clamp_min(1.0)
    return mask / lengths / mask.shape[2]


def per_task_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-episode mean over real steps, averaged over each task's episodes: ``(B,)``."""
    return (x * step_weights(mask)).sum((1, 2))


def inner_losses(module: torch.nn.Module, params: Params, batch: TaskBatch) -> torch.Tensor:
    """REINFORCE loss per task, ``−mean_t log π(a_t|s_t) A_t``: shape ``(B,)``."""
    dist = batched_dist(module, params, batch.obs)
    logp = module.log_prob(dist, batch.actions)
    return per_task_mean(-logp * batch.adv, batch.mask)


#: One inner step as recorded for the KL Hessian: (parameters before, their gradients).
Trace = list[tuple[Params, Params]]


def inner_step(module: torch.nn.Module, params: Params, batch: TaskBatch,
               lrs: Mapping[str, torch.Tensor | float], create_graph: bool,
               trace: Trace | None = None) -> Params:
    """One VPG step for every task at once: ``θ'_b = θ_b − α ∘ ∇L_in,b(θ_b)``.

    ``params`` are ``(B, ...)`` (expanded shared parameters, or already adapted ones).
    Only the parameters named in ``lrs`` are adapted (all of them for MAML, the context
    for CAVIA); the others pass through. With ``create_graph`` the step is differentiable
    (second-order MAML); without it the gradient is a constant (first-order MAML).
    ``trace`` collects (params, grads of the adapted ones)."""
    names = [n for n in params if n in lrs]
    with torch.enable_grad():
        loss = inner_losses(module, params, batch).sum()
        grads = dict(zip(names, torch.autograd.grad(loss, [params[n] for n in names],
                                                    create_graph=create_graph), strict=True))
    if trace is not None:
        trace.append((dict(params), grads))
    return {n: p - lrs[n] * grads[n] if n in grads else p for n, p in params.items()}


def adapt(module: torch.nn.Module, theta: Params, batches: Sequence[TaskBatch],
          lrs: Mapping[str, torch.Tensor | float], create_graph: bool,
          trace: Trace | None = None, num_tasks: int | None = None) -> Params:
    """Per-task parameters after ``len(batches)`` inner steps from the shared ``theta``.

    ``theta`` leaves that do not require grad (e.g. in the line search) are made to, so
    the inner gradient exists; the outer graph is only kept with ``create_graph``.
    ``num_tasks`` sets the task axis when there are no inner batches (0 inner steps)."""
    B = batches[0].obs.shape[0] if batches else int(num_tasks or 1)
    with torch.enable_grad():  # callers may be under no_grad (line search, old policy)
        theta = {k: v if v.requires_grad else v.detach().requires_grad_(True)
                 for k, v in theta.items()}
        params = expand_params(theta, B)
        for batch in batches:
            params = inner_step(module, params, batch, lrs, create_graph, trace)
    return params


def outer_loss_and_kl(module: torch.nn.Module, params: Params, batch: TaskBatch,
                      old_dist: Dist) -> tuple[torch.Tensor, torch.Tensor]:
    """TRPO surrogate ``−E[π/π_old · A]`` and mean ``KL(π ‖ π_old)`` on the validation
    episodes, each averaged per episode, then over episodes and tasks.

    The KL direction follows pytorch-maml-rl (``kl_divergence(pi, old_pi)``). Both
    directions have the same Hessian at π = π_old (the Fisher), so the TRPO direction
    is the same; only the line search's KL check differs. While the policy narrows
    (log-std decreasing) ``KL(π_old ‖ π)`` exceeds its quadratic model and would make
    the line search back off more often: we measured every full step rejected at
    ``max_kl`` = 0.01 with it on PointNav2D, i.e. ~20% shorter meta-steps."""
    dist = batched_dist(module, params, batch.obs)
    logp = module.log_prob(dist, batch.actions)
    old_logp = module.log_prob(old_dist, batch.actions)
    ratio = torch.exp(logp - old_logp)
    loss = per_task_mean(-ratio * batch.adv, batch.mask).mean()
    kl = per_task_mean(module.kl(dist, old_dist), batch.mask).mean()
    return loss, kl


# ---------------------------------------------------------------------------------------
# Outer step: TRPO (conjugate gradient + line search)
# ---------------------------------------------------------------------------------------
def conjugate_gradient(Avp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       iters: int = 10, tol: float = 1e-10) -> torch.Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given as a
    matrix-vector product."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr < tol:
            break
        Ap = Avp(p)
        alpha = rr / (p @ Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def flat_grad(outputs: torch.Tensor | Sequence[torch.Tensor], inputs: Sequence[torch.Tensor],
              grad_outputs: Sequence[torch.Tensor] | None = None, **kwargs: Any) -> torch.Tensor:
    """``torch.autograd.grad`` flattened into one vector (unused inputs give zeros)."""
    grads = torch.autograd.grad(outputs, list(inputs), grad_outputs=grad_outputs,
                                allow_unused=True, **kwargs)
    return torch.cat([(torch.zeros_like(x) if g is None else g).reshape(-1)
                      for g, x in zip(grads, inputs, strict=True)])


FisherVP = Callable[[torch.Tensor], torch.Tensor]


def kl_hvp(kl: torch.Tensor, params: Sequence[torch.Tensor], damping: float = 0.0) -> FisherVP:
    """Hessian-vector products of a scalar ``kl`` w.r.t. ``params`` by double backprop
    (the generic TRPO Fisher-vector product)."""
    g = flat_grad(kl, params, create_graph=True)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return flat_grad(g @ v, params, retain_graph=True) + damping * v

    return hvp


def maml_kl_hvp(module: torch.nn.Module, theta: Params, lrs: Mapping[str, torch.Tensor | float],
                trace: Trace, adapted: Params, valid: TaskBatch, old_dist: Dist,
                damping: float = 0.0, learn_lr: bool = False,
                second_order: bool = True, log_lr: bool = False) -> FisherVP:
    """Hessian-vector products of the mean KL w.r.t. the meta-parameters (θ, and the
    inner learning rates α when ``learn_lr``), through the inner loop: ``Jᵀ F J v``.
    With ``log_lr`` the rate coordinates are ρ = log α (``lrs`` still holds α): by the
    chain rule ``v_α = α ∘ v_ρ`` on the way in and ``g_ρ = α ∘ g_α`` on the way out.

    Why this is exact: with θ' the adapted parameters, ``J = ∂θ'/∂meta`` and ``F`` the
    Hessian of the KL w.r.t. θ', ``∇²KL = Jᵀ F J + Σ (∂KL/∂θ') ∇²θ'``, and the second
    term vanishes because the KL has zero gradient at the old policy. Likewise ``F``
    is the Gauss-Newton ``Gᵀ M G`` of the policy outputs (``G = ∂y/∂θ'``, ``M`` the
    Fisher of the output parameters, ``fisher_diag``).

    Why it is fast: ``J`` is applied step by step from the recorded inner steps
    (``trace``): each step ``θ'_{k+1} = θ'_k − α ∘ g_k`` has tangent map
    ``u ↦ u − α ∘ H_k u − g_k ∘ v_α`` and its transpose ``w ↦ w − H_k (α ∘ w)``
    (plus ``−Σ_b g_k ∘ w`` for α), where ``H_k u`` is one backward pass through the
    inner gradients already built for the meta-gradient (per task, because the
    parameters are stacked per task and each task's loss touches only its slice).
    No third-order graph is built. First-order MAML has no ``H_k`` terms.
    """
    names = list(theta)
    outs = [adapted[n].detach().requires_grad_(True) for n in names]
    with torch.enable_grad():
        ys = list(batched_dist(module, dict(zip(names, outs, strict=True)), valid.obs))
        dummy = [torch.zeros_like(y, requires_grad=True) for y in ys]
        # Gᵀ u, linear in the dummy u: its gradient w.r.t. u along v is G v (double vjp).
        gt_dummy = torch.autograd.grad(ys, outs, grad_outputs=dummy, create_graph=True)
    B = valid.mask.shape[0]
    c = step_weights(valid.mask) / B  # the KL is the mean over tasks of per_task_mean
    weights = [w.detach() * c.view(*c.shape, *([1] * (w.dim() - c.dim())))
               for w in module.fisher_diag(tuple(y.detach() for y in ys))]
    sizes = [theta[n].numel() for n in names]
    n_theta = sum(sizes)

    def hess(k: int, u: list[torch.Tensor]) -> list[torch.Tensor]:
        params, grads = trace[k]
        return list(torch.autograd.grad([grads[n] for n in names], [params[n] for n in names],
                                        grad_outputs=u, retain_graph=True))

    def hvp(v: torch.Tensor) -> torch.Tensor:
        v_theta = [x.view_as(theta[n]) for x, n in zip(torch.split(v[:n_theta], sizes), names,
                                                     strict=True)]
        v_lr = ([x.view_as(theta[n]) for x, n in zip(torch.split(v[n_theta:], sizes), names,
                                                   strict=True)] if learn_lr else None)
        if learn_lr and log_lr:
            v_lr = [lrs[n] * x for x, n in zip(v_lr, names, strict=True)]
        # J v: push the tangent through the inner steps.
        u = [x.unsqueeze(0).expand_as(adapted[n]) for x, n in zip(v_theta, names, strict=True)]
        for k, (_, grads) in enumerate(trace):
            hu = hess(k, u) if second_order else None
            u = [ui - (lrs[n] * hu[i] if hu is not None else 0)
                 - (grads[n].detach() * v_lr[i] if learn_lr else 0)
                 for i, (ui, n) in enumerate(zip(u, names, strict=True))]
        # F (J v) = Gᵀ M G (J v) on the validation outputs.
        gu = torch.autograd.grad(gt_dummy, dummy, grad_outputs=u, retain_graph=True)
        w = list(torch.autograd.grad(ys, outs, grad_outputs=[m * x for m, x in
                                                             zip(weights, gu, strict=True)],
                                     retain_graph=True))
        # Jᵀ (F J v): pull the cotangent back through the inner steps.
        g_lr = [torch.zeros_like(theta[n]) for n in names] if learn_lr else None
        for k in reversed(range(len(trace))):
            _, grads = trace[k]
            if learn_lr:
                g_lr = [gl - (grads[n].detach() * wi).sum(0)
                        for gl, wi, n in zip(g_lr, w, names, strict=True)]
            if second_order:
                hw = hess(k, [lrs[n] * wi for wi, n in zip(w, names, strict=True)])
                w = [wi - h for wi, h in zip(w, hw, strict=True)]
        if learn_lr and log_lr:
            g_lr = [lrs[n] * x for x, n in zip(g_lr, names, strict=True)]
        out = [wi.sum(0).reshape(-1) for wi in w] + ([x.reshape(-1) for x in g_lr] if learn_lr else [])
        return torch.cat(out) + damping * v

    return hvp


def trpo_step(params: list[torch.Tensor], loss: torch.Tensor, fisher_vp: FisherVP,
              evaluate: Callable[[list[torch.Tensor]], tuple[torch.Tensor, torch.Tensor]],
              max_kl: float, cg_iters: int = 10, ls_max_steps: int = 15,
              ls_backtrack_ratio: float = 0.8) -> tuple[list[torch.Tensor], dict[str, float]]:
    """One TRPO update of ``params`` (leaf tensors).

    Args:
        loss: the surrogate at ``params``, with its graph.
        fisher_vp: ``v -> H v`` with ``H`` the (damped) Hessian of the mean KL at ``params``.
        evaluate: ``candidate -> (surrogate, KL from the old policy)``, no graph needed.

    The direction solves ``H x = −g`` by conjugate gradient and is scaled so that the
    quadratic KL model equals ``max_kl``; the backtracking line search accepts the first
    step whose *measured* KL is within ``max_kl`` and whose surrogate improves, so the
    returned parameters never violate the bound. Returns the new parameters (the old
    ones when no step is accepted or anything is not finite) and diagnostics.
    """
    loss_old = float(loss.detach())
    info: dict[str, float] = {"surrogate_before": loss_old, "ls_steps": float("nan"),
                              "accepted": 0.0, "nonfinite": 0.0}
    old = [p.detach() for p in params]
    g = flat_grad(loss, params, retain_graph=True)
    if not (math.isfinite(loss_old) and torch.isfinite(g).all()):
        info["nonfinite"] = 1.0
        return old, info
    step_dir = conjugate_gradient(fisher_vp, -g, cg_iters)
    shs = 0.5 * (step_dir @ fisher_vp(step_dir))
    info["grad_norm"] = float(g.norm())
    if not (torch.isfinite(shs) and shs > 0):
        info["nonfinite"] = 1.0
        return old, info
    full_step = step_dir * torch.sqrt(max_kl / shs)  # ½ sᵀHs = max_kl for the full step
    sizes = [p.numel() for p in old]
    frac = 1.0
    for i in range(ls_max_steps):
        deltas = torch.split(frac * full_step, sizes)
        candidate = [o + d.view_as(o) for o, d in zip(old, deltas, strict=True)]
        with torch.no_grad():
            new_loss, new_kl = (float(x) for x in evaluate(candidate))
        if (math.isfinite(new_loss) and math.isfinite(new_kl) and new_loss < loss_old
                and new_kl <= max_kl):
            info.update(surrogate_after=new_loss, kl=new_kl, ls_steps=float(i + 1),
                        accepted=1.0, step_fraction=frac)
            return candidate, info
        frac *= ls_backtrack_ratio
    info.update(surrogate_after=loss_old, kl=0.0, ls_steps=float(ls_max_steps), step_fraction=0.0)
    return old, info


# ---------------------------------------------------------------------------------------
# The agent
# ---------------------------------------------------------------------------------------
def _seed(*keys: int) -> int:
    """A 32-bit seed derived from integers, e.g. (run seed, iteration, phase)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


class InnerLoopAgent(MetaAgent):
    """The machinery of the gradient-based meta-learners (MAML, Meta-SGD, Reptile, CAVIA).

    An MLP policy whose meta-parameters θ are plain tensors; a meta-iteration draws
    ``meta_batch_size`` train tasks, samples them with θ, adapts per task by VPG inner
    steps (:func:`inner_step`, batched over tasks) and samples again after each step.
    Subclasses say how θ is updated from that (:meth:`meta_update`). The adapted set is
    the keys of :meth:`_inner_lrs`: every parameter (MAML), or a context vector (CAVIA).
    Evaluation (:meth:`evaluate_adaptation`) runs the same inner loop on held-out tasks.
    """

    progress_keys = {"pre": "return/pre", "post": "return/post"}
    #: sample the tasks once more after the last inner step (MAML's validation episodes;
    #: Reptile has no use for them).
    validation_rollouts: ClassVar[bool] = True

    def __init__(self, config: InnerLoopConfig, family: TaskFamily,
                 train_tasks: Sequence[Task]) -> None:
        super().__init__(config, family, train_tasks)
        self.device = torch.device(config.device)
        self.horizon = int(config.horizon or family.horizon)
        self._phase_s: dict[str, float] = {}  # seconds per phase, this iteration
        self.sampler = make_sampler(family, workers=config.workers, ray_address=config.ray_address,
                                    engine=config.engine, family_kwargs=dict(config.family_kwargs))
        env = family.make_env()
        with torch.random.fork_rng(devices=[]):  # the initialization is a function of the seed
            torch.manual_seed(config.seed)
            self.policy = self.build_policy(env.observation_space, env.action_space)
        env.close()
        # Meta-parameters are plain leaf tensors on the update device; the module only
        # provides the architecture (functional_call swaps the parameters in).
        self.theta: Params = {k: v.detach().clone().to(self.device).requires_grad_(True)
                              for k, v in self.policy.named_parameters()}
        self.lrs: Params = {k: torch.full_like(v, config.inner_lr) for k, v in self.theta.items()}
        self.baseline = LinearFeatureBaseline(config.baseline_reg)
        self.skipped = 0

    def build_policy(self, observation_space: Any, action_space: Any) -> torch.nn.Module:
        """The policy network (CAVIA's takes a context vector besides the observation)."""
        cfg = self.config
        return make_policy(observation_space, action_space, cfg.hidden_sizes, cfg.activation,
                           cfg.init_std)

    def _inner_lrs(self, lrs: Params) -> Mapping[str, torch.Tensor | float]:
        """The inner step size of each adapted parameter: MAML's scalar for all of them."""
        return {k: self.config.inner_lr for k in lrs}

    # -- sampling ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        """Add the block's wall-clock time to ``phase`` (GPU work included: synchronized)."""
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize(self.device)
            self._phase_s[phase] = self._phase_s.get(phase, 0.0) + time.perf_counter() - t0

    def _sample(self, tasks: Sequence[Task], params: Params | None, per_task: bool,
                seed: int, episodes: int) -> EpisodeBatch:
        with self._timed("transfer"):  # the sampling copy of the policy lives on the CPU
            source = self.theta if params is None else params
            cpu = {k: v.detach().cpu().float() for k, v in source.items()}
        policy = rollout_policy(self.policy, cpu, per_task=per_task)
        with self._timed("sample"):
            return self.sampler.sample(tasks, policy, episodes_per_task=episodes,
                                       horizon=self.horizon, seed=seed)

    def _prepare(self, batch: EpisodeBatch) -> TaskBatch:
        cfg = self.config
        with self._timed("inner"):  # returns, baseline fit, advantages
            tb = prepare_batch(batch, cfg.gamma, cfg.gae_lambda, cfg.normalize_advantages,
                               self.baseline)
        with self._timed("transfer"):
            return tb.to(self.device)

    def _adapt_and_sample(self, tasks: Sequence[Task], steps: int, episodes: int,
                          seeds: Sequence[int], last: bool = True
                          ) -> tuple[list[EpisodeBatch], list[TaskBatch], Params]:
        """Roll out with θ'_0 = θ, adapt, roll out with θ'_1, ... (``steps + 1`` batches,
        ``steps`` without the ``last`` one); returns the raw batches, the prepared ones
        the inner steps used, and the per-task parameters θ'_steps (detached)."""
        raw, prepared = [], []
        params: Params | None = None
        lrs = self._inner_lrs(self.lrs)
        for k in range(steps + 1 if last else steps):
            batch = self._sample(tasks, params, per_task=k > 0, seed=seeds[k], episodes=episodes)
            raw.append(batch)
            if k < steps:
                prepared.append(self._prepare(batch))
                start = params if params is not None else expand_params(self.theta, len(tasks))
                start = {n: p.detach().requires_grad_(True) for n, p in start.items()}
                with self._timed("inner"):
                    params = {n: p.detach() for n, p in
                              inner_step(self.policy, start, prepared[-1], lrs, False).items()}
        if params is None:
            params = {n: p.detach() for n, p in expand_params(self.theta, len(tasks)).items()}
        return raw, prepared, params

    # -- one meta-iteration ----------------------------------------------------------------
    def train_iteration(self, iteration: int) -> dict[str, float]:
        cfg = self.config
        K = cfg.num_inner_steps
        rng = np.random.default_rng(_seed(cfg.seed, iteration, 0))
        idx = rng.choice(len(self.train_tasks), size=cfg.meta_batch_size, replace=False)
        tasks = [self.train_tasks[i] for i in idx]
        seeds = [_seed(cfg.seed, iteration, 1, k) for k in range(K + 1)]

        self._phase_s = {}
        t0 = time.perf_counter()
        try:
            raw, train_batches, adapted = self._adapt_and_sample(
                tasks, K, cfg.episodes_per_task, seeds, last=self.validation_rollouts)
        except FloatingPointError as exc:  # e.g. NaN rewards: the baseline cannot be fitted
            return self._skip(iteration, f"inner loop not finite ({exc})")
        t_sample = time.perf_counter() - t0
        metrics: dict[str, float] = {}
        for k, batch in enumerate(raw):
            key = "return/pre" if k == 0 else f"return/post_{k}"
            metrics[key] = float(batch.episode_returns().mean())
            succ = batch.episode_success()
            if succ is not None:
                metrics[key.replace("return", "success")] = float(succ.mean())
        metrics["return/post"] = metrics[f"return/post_{len(raw) - 1}" if len(raw) > 1
                                         else "return/pre"]
        env_steps = sum(b.num_steps for b in raw)

        t1 = time.perf_counter()
        info = self.meta_update(iteration, raw, train_batches, adapted)
        t_update = time.perf_counter() - t1
        metrics.update({k: v for k, v in info.items()})
        phases = self._phase_s
        # sample_s / update_s: wall-clock of the two halves of the iteration; the phase
        # timers split them into sampling, inner loop, outer update and transfers.
        metrics.update({"time/sample_s": t_sample, "time/update_s": t_update,
                        "time/phase_sampling_s": phases.get("sample", 0.0),
                        "time/phase_inner_s": phases.get("inner", 0.0),
                        "time/phase_outer_s": phases.get("outer", 0.0),
                        "time/phase_transfer_s": phases.get("transfer", 0.0),
                        "env_steps": float(env_steps),
                        "env_steps_per_s": env_steps / max(phases.get("sample", t_sample), 1e-9)})
        return metrics

    @abstractmethod
    def meta_update(self, iteration: int, raw: list[EpisodeBatch],
                    train_batches: list[TaskBatch], adapted: Params) -> dict[str, float]:
        """Update θ from a meta-batch: its raw batches (one per inner step, plus the
        validation batch with :attr:`validation_rollouts`), the prepared batches the inner
        steps used, and the adapted per-task parameters ``(B, ...)``. Returns metrics."""

    def _skip(self, iteration: int, why: str) -> dict[str, float]:
        self.skipped += 1
        warnings.warn(f"{self.name}: iteration {iteration}: {why}; skipping the update and "
                      "keeping the last good parameters", RuntimeWarning, stacklevel=3)
        return {"skipped": 1.0, "accepted": 0.0, "kl": float("nan")}

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"theta": {k: v.detach().cpu() for k, v in self.theta.items()},
                "lrs": {k: v.detach().cpu() for k, v in self.lrs.items()},
                "skipped": self.skipped}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for group in ("theta", "lrs"):
            ours, theirs = getattr(self, group), state.get(group)
            if not isinstance(theirs, Mapping) or set(theirs) != set(ours):
                raise CheckpointError(f"checkpoint parameters {sorted(theirs or {})} do not match "
                                      f"this policy's {sorted(ours)}")
            for k, v in theirs.items():
                if tuple(v.shape) != tuple(ours[k].shape):
                    raise CheckpointError(f"checkpoint tensor {group}.{k} has shape "
                                          f"{tuple(v.shape)}, the policy needs {tuple(ours[k].shape)}")
        self.theta = {k: v.to(self.device).requires_grad_(True) for k, v in state["theta"].items()}
        self.lrs = {k: v.to(self.device) for k, v in state["lrs"].items()}
        self.skipped = int(state.get("skipped", 0))

    # -- evaluation --------------------------------------------------------------------------
    def evaluate_adaptation(self, tasks: Sequence[Task], budget: int, episodes: int,
                            seed: int) -> AdaptationResult:
        """Mean return per task after 0..``budget`` inner steps, each step using
        ``episodes`` fresh episodes per task (sampled with the current adapted policy)."""
        cfg = self.config
        returns = np.zeros((budget + 1, len(tasks)))
        success = np.zeros((budget + 1, len(tasks)))
        has_success = False
        chunk = max(1, cfg.eval_chunk)
        for start in range(0, len(tasks), chunk):
            sub = list(tasks[start:start + chunk])
            seeds = [_seed(seed, start, k) for k in range(budget + 1)]
            raw, _, _ = self._adapt_and_sample(sub, budget, episodes, seeds)
            for k, batch in enumerate(raw):
                per_col = batch.episode_returns()[0]
                returns[k, start:start + len(sub)] = per_col.view(len(sub), episodes).mean(1).numpy()
                succ = batch.episode_success()
                if succ is not None:
                    has_success = True
                    success[k, start:start + len(sub)] = succ[0].view(len(sub), episodes).mean(1).numpy()
        return AdaptationResult(budgets=list(range(budget + 1)),
                                episodes=[float(k * episodes) for k in range(budget + 1)],
                                returns=returns, success=success if has_success else None,
                                budget_unit=self.budget_unit)

    def close(self) -> None:
        self.sampler.close()


class MAMLAgent(InnerLoopAgent):
    """MAML-RL: the inner loop above, and a TRPO outer step through it."""

    name = "maml"
    progress_keys = {"pre": "return/pre", "post": "return/post", "kl": "kl"}

    # -- meta-parameters (Meta-SGD adds the inner rates, CAVIA leaves out its context) ----
    def meta_parameters(self) -> list[torch.Tensor]:
        """What TRPO optimizes: θ."""
        return list(self.theta.values())

    def _split(self, flat: list[torch.Tensor]) -> tuple[Params, Params]:
        """Meta-parameters -> (θ, inner rates)."""
        return dict(zip(self.theta, flat, strict=True)), self.lrs

    def _fisher_tasks(self, num_tasks: int, iteration: int) -> torch.Tensor | None:
        """The tasks the Fisher-vector products use: a random ``fisher_subsample`` fraction
        of the meta-batch (at least one), drawn from ``(seed, iteration)``; None for all."""
        keep = max(1, round(num_tasks * self.config.fisher_subsample))
        if keep >= num_tasks:
            return None
        gen = torch.Generator().manual_seed(_seed(self.config.seed, iteration, 2))
        return torch.randperm(num_tasks, generator=gen)[:keep].sort().values

    def _fisher_inputs(self, theta: Params, lrs: Params, train_batches: list[TaskBatch],
                       valid: TaskBatch, old_dist: Dist, subset: torch.Tensor
                       ) -> tuple[Trace, Params, TaskBatch, Dist]:
        """The inner loop (with its trace) and validation data of the tasks at ``subset``,
        for the Fisher-vector products. Tasks adapt independently, so these are the full
        meta-batch's rows."""
        subset = subset.to(valid.obs.device)
        trace: Trace = []
        with torch.enable_grad():
            adapted = adapt(self.policy, theta, [b.tasks(subset) for b in train_batches],
                            self._inner_lrs(lrs), create_graph=not self.config.first_order,
                            trace=trace, num_tasks=len(subset))
        return trace, adapted, valid.tasks(subset), tuple(d.index_select(0, subset)
                                                          for d in old_dist)

    def _set_meta_parameters(self, flat: list[torch.Tensor]) -> None:
        theta, _ = self._split(flat)
        self.theta = {k: v.detach().requires_grad_(True) for k, v in theta.items()}

    def _fisher_vp(self, meta: list[torch.Tensor], theta: Params, lrs: Params, trace: Trace,
                   adapted: Params, valid: TaskBatch, old_dist: Dist) -> FisherVP:
        """Products with the Hessian of the mean KL w.r.t. the meta-parameters."""
        cfg = self.config
        return maml_kl_hvp(self.policy, theta, self._inner_lrs(lrs), trace, adapted, valid,
                           old_dist, cfg.cg_damping, second_order=not cfg.first_order)

    # -- the outer step ----------------------------------------------------------------------
    def meta_update(self, iteration: int, raw: list[EpisodeBatch],
                    train_batches: list[TaskBatch], adapted: Params) -> dict[str, float]:
        """TRPO on the meta-parameters; skip the iteration (keep the last good parameters)
        when anything is not finite."""
        try:
            valid = self._prepare(raw[-1])
        except FloatingPointError as exc:
            return self._skip(iteration, f"advantages not finite ({exc})")
        with self._timed("outer"):
            return self._trpo_update(valid, train_batches, iteration)

    def _trpo_update(self, valid: TaskBatch, train_batches: list[TaskBatch],
                     iteration: int) -> dict[str, float]:
        cfg = self.config
        meta = [p.detach().requires_grad_(True) for p in self.meta_parameters()]
        theta, lrs = self._split(meta)
        B = valid.obs.shape[0]
        subset = self._fisher_tasks(B, iteration)
        trace: Trace = []
        with torch.enable_grad():
            adapted = adapt(self.policy, theta, train_batches, self._inner_lrs(lrs),
                            create_graph=not cfg.first_order,
                            trace=trace if subset is None else None, num_tasks=B)
            old_dist = tuple(d.detach() for d in batched_dist(self.policy, adapted, valid.obs))
            loss, _ = outer_loss_and_kl(self.policy, adapted, valid, old_dist)
        fisher = ((trace, adapted, valid, old_dist) if subset is None else
                  self._fisher_inputs(theta, lrs, train_batches, valid, old_dist, subset))
        fvp = self._fisher_vp(meta, theta, lrs, *fisher)

        def evaluate(candidate: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            th, lr = self._split(candidate)
            params = adapt(self.policy, th, train_batches, self._inner_lrs(lr), False,
                           num_tasks=valid.obs.shape[0])
            with torch.no_grad():
                return outer_loss_and_kl(self.policy, params, valid, old_dist)

        new, info = trpo_step(meta, loss, fvp, evaluate, cfg.max_kl, cfg.cg_iters,
                              cfg.ls_max_steps, cfg.ls_backtrack_ratio)
        if info.pop("nonfinite"):
            return self._skip(iteration, "loss or meta-gradient not finite")
        if not all(torch.isfinite(p).all() for p in new):
            return self._skip(iteration, "updated parameters not finite")
        self._set_meta_parameters(new)
        info["skipped"] = 0.0
        return info


def meta_gradient(module: torch.nn.Module, theta: Params, lrs: Mapping[str, Any],
                  train_batches: Sequence[TaskBatch], valid: TaskBatch, old_dist: Dist,
                  first_order: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The outer surrogate at ``theta`` and its (flat) meta-gradient; for tests and tools."""
    params = adapt(module, theta, train_batches, lrs, create_graph=not first_order)
    loss, _ = outer_loss_and_kl(module, params, valid, old_dist)
    grads = torch.autograd.grad(loss, list(theta.values()))
    return loss, flat_params(dict(zip(theta, grads, strict=True)))


register_agent("maml", MAMLAgent, MAMLConfig,
               description="MAML-RL (Finn et al. 2017): VPG inner loop, TRPO outer loop",
               default_preset="maml_default")

__all__ = ["InnerLoopAgent", "InnerLoopConfig", "MAMLAgent", "MAMLConfig", "TaskBatch", "Trace",
           "adapt", "conjugate_gradient", "flat_grad", "inner_losses", "inner_step", "kl_hvp",
           "maml_kl_hvp", "meta_gradient",
           "outer_loss_and_kl", "per_task_mean", "prepare_batch", "step_weights", "task_major",
           "trpo_step"]
