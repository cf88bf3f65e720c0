"""MAML / Meta-SGD agents end to end on tiny settings: Meta-SGD with frozen learning
rates is MAML, learning happens, NaN losses are skipped, runs resume exactly."""

from __future__ import annotations

import pytest
import torch
from conftest import synthetic_task_batch

import metarl
from metarl.agents.maml import MAMLAgent, MAMLConfig, adapt
from metarl.agents.metasgd import MetaSGDAgent, MetaSGDConfig
from metarl.config import make_config
from metarl.errors import ConfigError

TINY = {"meta_batch_size": 2, "episodes_per_task": 2, "horizon": 10, "hidden_sizes": [8],
        "num_train_tasks": 6, "num_test_tasks": 2, "cg_iters": 3, "eval_episodes": 2,
        "eval_steps": 1}


def _agent(cls, cfg_cls, **overrides):
    cfg = make_config(cfg_cls, {**TINY, **overrides})
    fam = metarl.make_family(cfg.family)
    split = fam.split(cfg.num_train_tasks, cfg.num_test_tasks, cfg.split_seed)
    return cls(cfg, fam, split.train)


def test_metasgd_with_frozen_learning_rates_equals_maml():
    maml = _agent(MAMLAgent, MAMLConfig)
    frozen = _agent(MetaSGDAgent, MetaSGDConfig, learn_inner_lr=False)
    for it in range(2):
        m1, m2 = maml.train_iteration(it), frozen.train_iteration(it)
        assert m1["accepted"] == m2["accepted"] == 1.0
        assert m1["return/post"] == pytest.approx(m2["return/post"], abs=1e-5)
    for k in maml.theta:
        torch.testing.assert_close(maml.theta[k], frozen.theta[k], rtol=1e-5, atol=1e-6)
    # ...while learning them moves them away from the initial value
    learned = _agent(MetaSGDAgent, MetaSGDConfig)
    learned.train_iteration(0)
    lrs = torch.cat([v.detach().flatten() for v in learned.lrs.values()])
    assert not torch.allclose(lrs, torch.full_like(lrs, 0.1))
    assert not any(torch.equal(maml.theta[k], learned.theta[k]) for k in maml.theta)


def test_log_inner_lr_keeps_every_rate_positive():
    # Rates near zero: a direct TRPO step on α moves each by an amount and pushes some
    # below zero; a step on log α moves each by a factor, so none can cross it.
    ends = {}
    for log in (False, True):
        agent = _agent(MetaSGDAgent, MetaSGDConfig, log_inner_lr=log)
        agent.lrs = {k: torch.full_like(v, 1e-3).requires_grad_(True) for k, v in agent.lrs.items()}
        theta, lrs = agent._split([p.detach() for p in agent.meta_parameters()])
        for k in agent.lrs:  # the meta-parameters map back to the same (θ, α)
            torch.testing.assert_close(lrs[k], agent.lrs[k])
            assert torch.equal(theta[k], agent.theta[k])
        assert agent.train_iteration(0)["accepted"] == 1.0
        ends[log] = torch.cat([v.detach().flatten() for v in agent.lrs.values()])
    assert (ends[False] < 0).any()
    assert (ends[True] > 0).all()
    assert (ends[True] / 1e-3 - 1).abs().max() > 1e-6  # moved, by more than round-off


def test_log_inner_lr_needs_a_positive_inner_lr():
    with pytest.raises(ConfigError, match="log_inner_lr"):
        make_config(MetaSGDConfig, {**TINY, "log_inner_lr": True, "inner_lr": 0.0})


def test_first_order_and_multi_step_iterations_run():
    # num_inner_steps=0: plain TRPO on the task batch (the no-adaptation ablation).
    for overrides in ({"first_order": True}, {"num_inner_steps": 2}, {"num_inner_steps": 0}):
        agent = _agent(MAMLAgent, MAMLConfig, **overrides)
        m = agent.train_iteration(0)
        assert m["accepted"] == 1.0 and 0 < m["kl"] <= 0.01 + 1e-12
        if overrides.get("num_inner_steps") == 2:
            assert "return/post_2" in m


def test_nan_loss_skips_iteration_and_keeps_parameters(monkeypatch):
    agent = _agent(MAMLAgent, MAMLConfig)
    before = {k: v.detach().clone() for k, v in agent.theta.items()}
    real_sample = agent._sample

    def nan_sample(*args, **kwargs):
        batch = real_sample(*args, **kwargs)
        batch.rewards[3, 1] = float("nan")
        return batch

    monkeypatch.setattr(agent, "_sample", nan_sample)
    with pytest.warns(RuntimeWarning, match="skipping the update"):
        m = agent.train_iteration(0)
    assert m["skipped"] == 1.0 and agent.skipped == 1
    for k, v in agent.theta.items():
        assert torch.equal(v.detach(), before[k])
    monkeypatch.undo()
    assert agent.train_iteration(1)["skipped"] == 0.0  # and training goes on


def test_evaluate_adaptation_shapes_and_x_axis():
    agent = _agent(MAMLAgent, MAMLConfig)
    test = agent.family.split(6, 2, agent.config.split_seed).test
    res = agent.evaluate_adaptation(test, budget=2, episodes=3, seed=0)
    assert res.budgets == [0, 1, 2] and res.episodes == [0.0, 3.0, 6.0]
    assert res.returns.shape == (3, 2) and res.success is not None
    again = agent.evaluate_adaptation(test, budget=2, episodes=3, seed=0)
    assert (again.returns == res.returns).all()  # seeded: repeatable


def test_nan_in_outer_loss_skips_iteration(monkeypatch):
    import metarl.agents.maml as maml_mod

    agent = _agent(MAMLAgent, MAMLConfig)
    before = {k: v.detach().clone() for k, v in agent.theta.items()}
    real = maml_mod.outer_loss_and_kl

    def nan_loss(*args, **kwargs):
        loss, kl = real(*args, **kwargs)
        return loss * float("nan"), kl

    monkeypatch.setattr(maml_mod, "outer_loss_and_kl", nan_loss)
    with pytest.warns(RuntimeWarning, match="not finite"):
        m = agent.train_iteration(0)
    assert m["skipped"] == 1.0
    assert all(torch.equal(v.detach(), before[k]) for k, v in agent.theta.items())


def test_fisher_subsample_keeps_the_kl_bound_on_the_full_batch_and_is_seeded():
    full = _agent(MAMLAgent, MAMLConfig, meta_batch_size=4)
    half = _agent(MAMLAgent, MAMLConfig, meta_batch_size=4, fisher_subsample=0.5)
    again = _agent(MAMLAgent, MAMLConfig, meta_batch_size=4, fisher_subsample=0.5)
    info_full, info_half = full.train_iteration(0), half.train_iteration(0)
    again.train_iteration(0)
    assert info_half["accepted"] == 1.0 and info_half["kl"] <= half.config.max_kl
    assert info_full["accepted"] == 1.0
    # another curvature, so another step; the same draw of tasks again
    assert any(not torch.equal(full.theta[k], half.theta[k]) for k in full.theta)
    assert all(torch.equal(half.theta[k], again.theta[k]) for k in half.theta)
    subset = half._fisher_tasks(20, iteration=3)
    assert subset.tolist() == sorted(set(subset.tolist())) and len(subset) == 10
    assert not torch.equal(subset, half._fisher_tasks(20, iteration=4))
    assert full._fisher_tasks(20, iteration=3) is None
    assert len(_agent(MAMLAgent, MAMLConfig, fisher_subsample=0.01)._fisher_tasks(20, 0)) == 1


@pytest.mark.parametrize("agent", ["maml", "metasgd", "cavia"])
def test_subsampled_fisher_products_average_to_the_full_one(agent):
    # The mean KL is the mean of per-task KLs, so the Fisher of the meta-batch is the mean
    # of the tasks' Fishers: products on one-task subsets, averaged, give the full product.
    from metarl.agent import get_agent
    from metarl.policies import batched_dist

    spec = get_agent(agent)
    agent = _agent(spec.agent_cls, spec.config_cls, hidden_sizes=[3])
    policy = agent.policy.double()
    agent.theta = {k: v.detach().double().requires_grad_(True) for k, v in agent.theta.items()}
    agent.lrs = {k: v.detach().double().requires_grad_(v.requires_grad)
                 for k, v in agent.lrs.items()}
    B, dims = 3, {"obs_dim": policy.obs_dim, "act_dim": policy.act_dim}
    train = [synthetic_task_batch(1, tasks=B, **dims), synthetic_task_batch(2, tasks=B, **dims)]
    valid = synthetic_task_batch(3, tasks=B, **dims)
    meta = [p.detach().requires_grad_(True) for p in agent.meta_parameters()]
    theta, lrs = agent._split(meta)
    trace = []
    adapted = adapt(policy, theta, train, agent._inner_lrs(lrs), create_graph=True, trace=trace,
                    num_tasks=B)
    old = tuple(d.detach() for d in batched_dist(policy, adapted, valid.obs))
    v = torch.randn(sum(m.numel() for m in meta), generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    whole = agent._fisher_vp(meta, theta, lrs, trace, adapted, valid, old)(v)
    parts = torch.stack([agent._fisher_vp(meta, theta, lrs, *agent._fisher_inputs(
        theta, lrs, train, valid, old, torch.tensor([b])))(v) for b in range(B)])
    torch.testing.assert_close(parts.mean(0), whole, rtol=1e-8, atol=1e-12)
    assert not torch.allclose(parts[0], parts[1])  # the tasks' curvatures do differ
