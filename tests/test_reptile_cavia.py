"""Reptile and CAVIA mechanism tests with known answers: Reptile's outer update against
a per-task loop and (k = 1, SGD) against first-order MAML's direction; CAVIA's
meta-gradient against central finite differences, its machinery against MAML's when the
parameter set is MAML's, its TRPO curvature against the full Hessian; exact resume."""

from __future__ import annotations

import pytest
import torch
from conftest import interrupted_and_straight_states, synthetic_task_batch

import metarl
from metarl.agents.cavia import CAVIAAgent, CAVIAConfig
from metarl.agents.maml import (
    TaskBatch,
    adapt,
    meta_gradient,
    outer_loss_and_kl,
    step_weights,
)
from metarl.agents.reptile import ReptileAgent, ReptileConfig
from metarl.config import make_config
from metarl.policies import GaussianMLPPolicy, batched_dist, dist_of, flat_params, unflat_params

B, T, E, OBS, ACT, CTX = 2, 4, 3, 2, 2, 3
TINY = {"meta_batch_size": 3, "episodes_per_task": 2, "horizon": 10, "hidden_sizes": [8],
        "num_train_tasks": 6, "num_test_tasks": 2, "eval_episodes": 2, "eval_steps": 1,
        "num_iterations": 4, "checkpoint_every": 1}


def _batch(seed: int) -> TaskBatch:
    return synthetic_task_batch(seed, B, T, E, OBS, ACT)


def _agent(cls, cfg_cls, **overrides):
    cfg = make_config(cfg_cls, {**TINY, **overrides})
    fam = metarl.make_family(cfg.family)
    return cls(cfg, fam, fam.split(cfg.num_train_tasks, cfg.num_test_tasks, cfg.split_seed).train)


def _capture_meta_update(agent):
    """Wrap ``agent.meta_update`` to keep what it was given and θ before it."""
    seen = {}
    original = agent.meta_update

    def spy(iteration, raw, train_batches, adapted):
        seen.update(theta={k: v.detach().clone() for k, v in agent.theta.items()},
                    batches=train_batches, adapted=adapted)
        return original(iteration, raw, train_batches, adapted)

    agent.meta_update = spy
    return seen


def _per_task_sgd(policy, theta, batches, b, lr):
    """Task ``b``'s parameters after SGD on its own inner losses, one task at a time
    (no vmap, no expanded parameters): the reference for the batched inner loop."""
    params = {k: v.detach().clone().requires_grad_(True) for k, v in theta.items()}
    for batch in batches:
        obs, act, mask, adv = (x[b] for x in (batch.obs, batch.actions, batch.mask, batch.adv))
        logp = policy.log_prob(dist_of(policy, params, obs), act)
        loss = (-logp * adv * step_weights(mask.unsqueeze(0))[0]).sum()
        grads = torch.autograd.grad(loss, list(params.values()))
        params = {k: (v - lr * g).detach().requires_grad_(True)
                  for (k, v), g in zip(params.items(), grads, strict=True)}
    return params


def test_reptile_outer_update_is_the_mean_parameter_difference():
    agent = _agent(ReptileAgent, ReptileConfig, num_inner_steps=2, outer_lr=0.7)
    seen = _capture_meta_update(agent)
    metrics = agent.train_iteration(0)
    assert metrics["outer_lr"] == pytest.approx(0.7) and metrics["skipped"] == 0.0
    theta0, adapted = seen["theta"], seen["adapted"]
    assert len(seen["batches"]) == 2
    for b in range(TINY["meta_batch_size"]):
        ref = _per_task_sgd(agent.policy, theta0, seen["batches"], b, agent.config.inner_lr)
        for k in theta0:
            torch.testing.assert_close(adapted[k][b], ref[k].detach(), rtol=1e-5, atol=1e-6)
    for k, v in theta0.items():
        expected = v + 0.7 * (adapted[k] - v).mean(0)
        torch.testing.assert_close(agent.theta[k].detach(), expected, rtol=0, atol=1e-7)
    # ε is annealed linearly to outer_lr_final = 0 over num_iterations = 4
    assert agent.train_iteration(2)["outer_lr"] == pytest.approx(0.7 * 0.5)


def test_reptile_with_one_sgd_step_moves_along_first_order_maml_direction():
    agent = _agent(ReptileAgent, ReptileConfig, num_inner_steps=1, outer_lr=1.0)
    seen = _capture_meta_update(agent)
    agent.train_iteration(0)
    theta0 = {k: v.requires_grad_(True) for k, v in seen["theta"].items()}
    (batch,) = seen["batches"]
    # first-order MAML with no inner step on the same batch: the gradient of the outer
    # surrogate at θ, where the importance ratio is 1
    params = adapt(agent.policy, theta0, [], {}, create_graph=False, num_tasks=batch.obs.shape[0])
    old = tuple(d.detach() for d in batched_dist(agent.policy, params, batch.obs))
    loss, _ = outer_loss_and_kl(agent.policy, params, batch, old)
    g = flat_params(dict(zip(theta0, torch.autograd.grad(loss, list(theta0.values())),
                             strict=True)))
    step = flat_params({k: agent.theta[k].detach() - v.detach() for k, v in theta0.items()})
    torch.testing.assert_close(step, -agent.config.inner_lr * g, rtol=1e-4, atol=1e-7)


@pytest.fixture()
def context_policy():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(OBS, ACT, hidden_sizes=(4,), init_std=0.8, context_size=CTX).double()
    with torch.no_grad():
        policy.context.normal_()  # a non-zero start, so that every term of the chain rule shows
    return policy


@pytest.mark.parametrize("steps", [1, 2])
def test_cavia_meta_gradient_matches_central_finite_differences(context_policy, steps):
    policy = context_policy
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in policy.named_parameters()}
    lrs = {"context": 0.7}  # only the context is adapted
    trains, valid = [_batch(1 + s) for s in range(steps)], _batch(9)
    with torch.no_grad():
        old = tuple(d.detach() for d in batched_dist(
            policy, adapt(policy, theta, trains, lrs, create_graph=False), valid.obs))
    _, grad = meta_gradient(policy, theta, lrs, trains, valid, old)

    def outer(flat: torch.Tensor) -> float:
        params = adapt(policy, unflat_params(flat, theta), trains, lrs, create_graph=False)
        return float(outer_loss_and_kl(policy, params, valid, old)[0].detach())

    x0 = flat_params({k: v.detach() for k, v in theta.items()})
    fd = torch.zeros_like(x0)
    for i in range(x0.numel()):
        e = torch.zeros_like(x0)
        e[i] = 1e-6
        fd[i] = (outer(x0 + e) - outer(x0 - e)) / 2e-6
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-7)
    # the inner loop's second-order term is in there: without it the gradient differs
    _, first = meta_gradient(policy, theta, lrs, trains, valid, old, first_order=True)
    assert not torch.allclose(first, fd, rtol=1e-3, atol=1e-5)


def test_cavia_machinery_with_maml_parameter_set_is_maml(context_policy):
    """With the context at zero and the inner loop on the weights, the context policy's
    meta-gradient is MAML's on the same network without a context input."""
    policy = context_policy
    with torch.no_grad():
        policy.context.zero_()
    plain = GaussianMLPPolicy(OBS, ACT, hidden_sizes=(4,), init_std=0.8).double()
    theta_c = {k: v.detach().clone().requires_grad_(True) for k, v in policy.named_parameters()}
    theta_p = {k: (v[:, :OBS] if k == "body.0.weight" else v).detach().clone().requires_grad_(True)
               for k, v in theta_c.items() if k != "context"}
    trains, valid = [_batch(1), _batch(2)], _batch(9)
    lrs_c = {k: 0.1 for k in theta_c if k != "context"}
    lrs_p = {k: 0.1 for k in theta_p}
    with torch.no_grad():
        old = tuple(d.detach() for d in batched_dist(
            plain, adapt(plain, theta_p, trains, lrs_p, create_graph=False), valid.obs))
    loss_p, g_p = meta_gradient(plain, theta_p, lrs_p, trains, valid, old)
    loss_c, g_c = meta_gradient(policy, theta_c, lrs_c, trains, valid, old)
    torch.testing.assert_close(loss_c, loss_p)
    g_c = unflat_params(g_c, theta_c)
    g_p = unflat_params(g_p, theta_p)
    for k, v in g_p.items():
        got = g_c[k][:, :OBS] if k == "body.0.weight" else g_c[k]
        torch.testing.assert_close(got, v, rtol=1e-10, atol=1e-12)
    # the weights reading the (zero) context get no gradient at all
    assert torch.count_nonzero(g_c["body.0.weight"][:, OBS:]) == 0


def test_cavia_trpo_curvature_is_the_kl_hessian_through_the_inner_loop():
    agent = _agent(CAVIAAgent, CAVIAConfig, hidden_sizes=[3], context_size=2)
    policy = agent.policy.double()
    agent.theta = {k: v.detach().double().requires_grad_(True) for k, v in agent.theta.items()}
    g = torch.Generator().manual_seed(0)
    obs_dim = policy.obs_dim
    batch = TaskBatch(torch.randn(B, T, E, obs_dim, generator=g, dtype=torch.float64),
                      torch.randn(B, T, E, policy.act_dim, generator=g, dtype=torch.float64),
                      torch.ones(B, T, E, dtype=torch.float64),
                      torch.randn(B, T, E, generator=g, dtype=torch.float64))
    valid = TaskBatch(batch.obs.flip(1), batch.actions.flip(1), batch.mask, batch.adv.flip(1))
    meta = [p.detach().requires_grad_(True) for p in agent.meta_parameters()]
    theta, lrs = agent._split(meta)
    inner = agent._inner_lrs(lrs)
    adapted = adapt(policy, theta, [batch], inner, create_graph=True, num_tasks=B)
    old = tuple(d.detach() for d in batched_dist(policy, adapted, valid.obs))
    fvp = agent._fisher_vp(meta, theta, lrs, [], adapted, valid, old)
    x0 = torch.cat([m.detach().reshape(-1) for m in meta])
    sizes = [m.numel() for m in meta]

    def kl(flat: torch.Tensor) -> torch.Tensor:
        parts = [p.view_as(m) for p, m in zip(torch.split(flat, sizes), meta, strict=True)]
        th, _ = agent._split(parts)
        params = adapt(policy, th, [batch], inner, create_graph=True, num_tasks=B)
        return outer_loss_and_kl(policy, params, valid, old)[1]

    hessian = torch.autograd.functional.hessian(kl, x0)
    v = torch.randn(x0.numel(), generator=g, dtype=torch.float64)
    damping = agent.config.cg_damping
    torch.testing.assert_close(fvp(v), hessian @ v + damping * v, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("agent,extra", [("reptile", {}), ("cavia", {"cg_iters": 3})])
def test_resume_is_exact(tmp_path, agent, extra):
    (a, b), (rows_a, rows_b) = interrupted_and_straight_states(agent, TINY | extra, tmp_path)
    for k, v in a["theta"].items():
        assert torch.equal(v, b["theta"][k]), k
    assert [r["return/post"] for r in rows_a] == [r["return/post"] for r in rows_b]


def test_cavia_adapts_only_the_context_and_keeps_it_out_of_the_meta_parameters():
    agent = _agent(CAVIAAgent, CAVIAConfig, cg_iters=3)
    seen = _capture_meta_update(agent)
    agent.train_iteration(0)
    theta0, adapted = seen["theta"], seen["adapted"]
    for k, v in theta0.items():
        moved = not torch.equal(adapted[k], v.expand_as(adapted[k]))
        assert moved == (k == "context"), k
    assert torch.count_nonzero(agent.theta["context"]) == 0   # every task starts at φ = 0
    assert len(agent.meta_parameters()) == len(agent.theta) - 1


@pytest.mark.parametrize("agent", ["reptile", "cavia", "varibad"])
def test_every_preset_of_the_new_agents_resolves_and_names_its_source(agent):
    from metarl.agent import get_agent
    from metarl.config import list_presets, load_preset, resolve_config

    names = list_presets(agent)
    fams = set()
    for name in names:
        preset = load_preset(name)
        assert "et al." in preset.source, name
        cfg, _ = resolve_config(agent, get_agent(agent).config_cls, name)
        fams.add(metarl.make_family(cfg.family, **cfg.family_kwargs).id)
    # PointNav2D, SparsePointNav, HalfCheetahVel and a dynamics family for each
    assert {"metarl/PointNav2D-v0", "metarl/SparsePointNav-v0", "metarl/HalfCheetahVel-v0",
            "metarl/HalfCheetahRandParams-v0"} <= fams, (agent, fams)
