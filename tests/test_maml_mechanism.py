"""MAML / Meta-SGD mechanism tests with known answers, on a tiny policy and fixed batches
(float64): meta-gradients vs finite differences, the first-order term, conjugate gradient,
the KL Hessian-vector product, and the TRPO KL bound."""

from __future__ import annotations

import pytest
import torch
from conftest import synthetic_task_batch

from metarl.agents.maml import (
    TaskBatch,
    adapt,
    conjugate_gradient,
    flat_grad,
    inner_losses,
    maml_kl_hvp,
    outer_loss_and_kl,
    trpo_step,
)
from metarl.policies import GaussianMLPPolicy, batched_dist, flat_params, unflat_params

B, T, E, OBS, ACT = 2, 4, 3, 2, 2


def _batch(seed: int) -> TaskBatch:
    return synthetic_task_batch(seed, B, T, E, OBS, ACT)


@pytest.fixture()
def setup():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(OBS, ACT, hidden_sizes=(4,), init_std=0.8).double()
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in policy.named_parameters()}
    trains = [_batch(1), _batch(2)]
    valid = _batch(3)
    return policy, theta, trains, valid


def _old_dist(policy, theta, trains, lrs, valid):
    """The adapted policy at the current parameters (the TRPO 'old' policy), fixed."""
    params = adapt(policy, theta, trains, lrs, create_graph=False)
    return tuple(d.detach() for d in batched_dist(policy, params, valid.obs))


def _outer(policy, theta_flat, like, trains, valid, lrs, old, first_order=False):
    theta = unflat_params(theta_flat, like)
    params = adapt(policy, theta, trains, lrs, create_graph=not first_order)
    loss, kl = outer_loss_and_kl(policy, params, valid, old)
    return loss, kl


def _central_differences(fn, x0: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """∂fn/∂x_i at x0 by central differences, one coordinate at a time."""
    fd = torch.zeros_like(x0)
    with torch.no_grad():
        for i in range(x0.numel()):
            e = torch.zeros_like(x0)
            e[i] = eps
            fd[i] = (fn(x0.detach() + e) - fn(x0.detach() - e)) / (2 * eps)
    return fd


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_meta_gradient_matches_finite_differences(setup, steps):
    policy, theta, trains, valid = setup
    trains = trains[:steps]
    lrs = {k: 0.3 for k in theta}
    old = _old_dist(policy, theta, trains, lrs, valid)
    x0 = flat_params(theta).detach().clone().requires_grad_(True)
    loss, _ = _outer(policy, x0, theta, trains, valid, lrs, old)
    (grad,) = torch.autograd.grad(loss, x0)
    fd = _central_differences(lambda x: _outer(policy, x, theta, trains, valid, lrs, old)[0], x0)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)
    # and the first-order gradient is measurably different (the test can fail)
    lo, _ = _outer(policy, x0, theta, trains, valid, lrs, old, first_order=True)
    (g_fo,) = torch.autograd.grad(lo, x0)
    assert (g_fo - grad).abs().max() > 1e-4



@pytest.mark.parametrize("steps", [1, 2])
def test_meta_gradient_of_per_element_learning_rates_matches_finite_differences(setup, steps):
    """Meta-SGD: the outer loss's gradient w.r.t. every element of α (through 1 and 2
    inner steps) against central differences."""
    policy, theta, trains, valid = setup
    trains = trains[:steps]
    g = torch.Generator().manual_seed(7)
    lrs0 = {k: 0.1 + 0.3 * torch.rand(v.shape, generator=g, dtype=torch.float64)
            for k, v in theta.items()}
    old = _old_dist(policy, theta, trains, lrs0, valid)

    def outer(alpha_flat):
        params = adapt(policy, theta, trains, unflat_params(alpha_flat, lrs0), create_graph=True)
        return outer_loss_and_kl(policy, params, valid, old)[0]

    a0 = flat_params(lrs0).detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(outer(a0), a0)
    torch.testing.assert_close(grad, _central_differences(outer, a0), rtol=1e-6, atol=1e-8)
    assert grad.abs().max() > 1e-3  # a real signal, not an all-zero gradient

def test_first_order_differs_exactly_by_the_dropped_term(setup):
    """One step: g_SO = Σ_b (I − α H_b) u_b and g_FO = Σ_b u_b, with H_b the inner-loss
    Hessian of task b and u_b the outer gradient w.r.t. task b's adapted parameters."""
    policy, theta, trains, valid = setup
    alpha = 0.3
    lrs = {k: alpha for k in theta}
    old = _old_dist(policy, theta, trains[:1], lrs, valid)
    x0 = flat_params(theta).detach().clone().requires_grad_(True)
    (g_so,) = torch.autograd.grad(_outer(policy, x0, theta, trains[:1], valid, lrs, old)[0], x0)
    (g_fo,) = torch.autograd.grad(
        _outer(policy, x0, theta, trains[:1], valid, lrs, old, first_order=True)[0], x0)

    # u_b: outer gradient at the adapted parameters (as leaves)
    adapted = adapt(policy, theta, trains[:1], lrs, create_graph=False)
    leaves = {k: v.detach().requires_grad_(True) for k, v in adapted.items()}
    loss, _ = outer_loss_and_kl(policy, leaves, valid, old)
    u = torch.autograd.grad(loss, list(leaves.values()))
    u = torch.cat([x.reshape(B, -1) for x in u], dim=1)  # (B, P)
    dropped = torch.zeros_like(g_so)
    for b in range(B):
        one = TaskBatch(*(getattr(trains[0], f)[b:b + 1] for f in ("obs", "actions", "mask", "adv")))

        def inner_b(x, one=one):
            p = {k: v.unsqueeze(0) for k, v in unflat_params(x, theta).items()}
            return inner_losses(policy, p, one).sum()

        H = torch.autograd.functional.hessian(inner_b, x0.detach())
        dropped += -alpha * H @ u[b]
    torch.testing.assert_close(g_so - g_fo, dropped, rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(g_fo, u.sum(0), rtol=1e-7, atol=1e-10)


def test_conjugate_gradient_matches_direct_solve():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(12, 12, generator=g, dtype=torch.float64)
    A = M @ M.T + 0.5 * torch.eye(12, dtype=torch.float64)
    b = torch.randn(12, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: A @ v, b, iters=40, tol=1e-30)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=1e-8, atol=1e-10)
    # few iterations: an approximation, but it reduces the residual
    x3 = conjugate_gradient(lambda v: A @ v, b, iters=3)
    assert (A @ x3 - b).norm() < b.norm()


@pytest.mark.parametrize("steps,learn_lr,first_order,log_lr", [
    (1, False, False, False), (2, False, False, False), (1, True, False, False),
    (2, True, False, False), (1, False, True, False), (2, True, True, False),
    (1, True, False, True), (2, True, True, True)])
def test_kl_hvp_matches_full_hessian(setup, steps, learn_lr, first_order, log_lr):
    policy, theta, trains, valid = setup
    trains = trains[:steps]
    # Per-element rates that differ, so that the log chain rule's α ∘ · is visible.
    g = torch.Generator().manual_seed(4)
    lr0 = {k: (0.2 + 0.2 * torch.rand(v.shape, generator=g, dtype=v.dtype)).requires_grad_(learn_lr)
           for k, v in theta.items()}
    lrs = lr0 if learn_lr else {k: 0.3 for k in theta}
    old = _old_dist(policy, theta, trains, lrs, valid)
    rate_coords = {k: v.detach().log() if log_lr else v.detach() for k, v in lr0.items()}
    meta = list(theta.values()) + (list(rate_coords.values()) if learn_lr else [])
    like = dict(theta) | ({f"lr.{k}": v for k, v in lr0.items()} if learn_lr else {})
    trace = []
    adapted = adapt(policy, theta, trains, lrs, create_graph=not first_order, trace=trace)
    hvp = maml_kl_hvp(policy, theta, lrs, trace, adapted, valid, old, damping=0.0,
                      learn_lr=learn_lr, second_order=not first_order, log_lr=log_lr)

    def kl_of(x):
        parts = unflat_params(x, like)
        th = {k: parts[k] for k in theta}
        lr = ({k: parts[f"lr.{k}"].exp() if log_lr else parts[f"lr.{k}"] for k in theta}
              if learn_lr else lrs)
        params = adapt(policy, th, trains, lr, create_graph=not first_order)
        return outer_loss_and_kl(policy, params, valid, old)[1]

    x0 = torch.cat([m.detach().reshape(-1) for m in meta])
    H = torch.autograd.functional.hessian(kl_of, x0)
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        v = torch.randn(x0.numel(), generator=g, dtype=torch.float64)
        torch.testing.assert_close(hvp(v), H @ v, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("max_kl", [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
def test_trpo_step_never_exceeds_kl_bound(setup, max_kl):
    policy, theta, trains, valid = setup
    lrs = {k: 0.3 for k in theta}
    meta = list(theta.values())
    trace = []
    adapted = adapt(policy, theta, trains[:1], lrs, create_graph=True, trace=trace)
    old = tuple(d.detach() for d in batched_dist(policy, adapted, valid.obs))
    loss, _ = outer_loss_and_kl(policy, adapted, valid, old)
    fvp = maml_kl_hvp(policy, theta, lrs, trace, adapted, valid, old, damping=1e-5)

    def evaluate(cand):
        params = adapt(policy, dict(zip(theta, cand, strict=True)), trains[:1], lrs, False)
        with torch.no_grad():
            return outer_loss_and_kl(policy, params, valid, old)

    new, info = trpo_step(meta, loss, fvp, evaluate, max_kl, cg_iters=10, ls_max_steps=15)
    # measure the KL of the returned parameters independently
    params = adapt(policy, dict(zip(theta, new, strict=True)), trains[:1], lrs, False)
    with torch.no_grad():
        new_loss, kl = outer_loss_and_kl(policy, params, valid, old)
    assert float(kl) <= max_kl * (1 + 1e-9)
    if info["accepted"]:
        assert float(new_loss) < float(loss.detach())
        assert abs(info["kl"] - float(kl)) < 1e-12
    else:
        assert all(torch.equal(a, b.detach()) for a, b in zip(new, meta, strict=True))


def test_trpo_step_with_nan_loss_keeps_parameters():
    p = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    loss = (p * float("nan")).sum()
    new, info = trpo_step([p], loss, lambda v: v, lambda c: (loss.detach(), loss.detach()), 0.01)
    assert info["nonfinite"] == 1.0
    assert torch.equal(new[0], p.detach())


def test_flat_grad_of_unused_input_is_zero():
    a = torch.tensor([1.0], requires_grad=True)
    b = torch.tensor([2.0, 3.0], requires_grad=True)
    g = flat_grad((a * 3).sum(), [a, b])
    assert torch.equal(g, torch.tensor([3.0, 0.0, 0.0]))
