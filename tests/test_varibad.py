"""VariBAD mechanism tests with known answers: the Gaussian KL against its closed form and
torch's, the ELBO's reconstruction and KL terms against a hand computation on a tiny batch,
no RL gradient reaching the encoder, the replay reproducing the sampler, exact resume."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import interrupted_and_straight_states
from torch.distributions import Normal, kl_divergence

import metarl
from metarl.agents.rl2 import trial_inputs
from metarl.agents.varibad import VariBAD, VariBADConfig, VariBADPolicy, elbo_losses, gaussian_kl
from metarl.config import make_config

TINY = {"family": "metarl/PointNav2D-v0", "num_train_tasks": 20, "num_test_tasks": 2,
        "episodes_per_trial": 2, "trials_per_iter": 4, "num_minibatches": 2, "update_epochs": 1,
        "hidden_size": 8, "latent_size": 2, "policy_hidden": [8], "decoder_hidden": [8],
        "elbo_timesteps": 5, "vae_updates": 2, "num_iterations": 3, "checkpoint_every": 1,
        "family_kwargs": {"horizon": 6, "success_radius": 0.3}}


def _agent(**overrides) -> VariBAD:
    cfg = make_config(VariBADConfig, {**TINY, **overrides})
    fam = metarl.make_family(cfg.family, **cfg.family_kwargs)
    return VariBAD(cfg, fam, fam.split(cfg.num_train_tasks, cfg.num_test_tasks, cfg.split_seed).train)


def test_gaussian_kl_is_the_closed_form():
    # one dimension by hand: KL(N(1, 2²) ‖ N(0, 1)) = ½ (4 + 1 − 1 − ln 4)
    got = gaussian_kl(torch.tensor([1.0]), torch.tensor([math.log(4.0)]),
                      torch.tensor([0.0]), torch.tensor([0.0]))
    assert got.item() == pytest.approx(0.5 * (4 + 1 - 1 - math.log(4)))
    g = torch.Generator().manual_seed(0)
    mu_q, mu_p, lv_q, lv_p = (torch.randn(7, 3, generator=g, dtype=torch.float64) for _ in range(4))
    ref = kl_divergence(Normal(mu_q, (0.5 * lv_q).exp()), Normal(mu_p, (0.5 * lv_p).exp())).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu_q, lv_q, mu_p, lv_p), ref)
    assert torch.all(gaussian_kl(mu_q, lv_q, mu_q, lv_q).abs() < 1e-12)


def test_elbo_terms_match_a_hand_computation():
    torch.manual_seed(0)
    env = metarl.make_family("metarl/PointNav2D-v0").make_env()
    model = VariBADPolicy(env.observation_space, env.action_space, 4, 2, [4], [4]).double()
    T, n, L = 3, 2, 2
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(T, n, 4, generator=g, dtype=torch.float64)
    obs = torch.randn(T, n, 2, generator=g, dtype=torch.float64)
    actions = torch.randn(T, n, 2, generator=g, dtype=torch.float64)
    rewards = torch.randn(T, n, generator=g, dtype=torch.float64)
    mask = torch.ones(T, n, dtype=torch.float64)
    mask[2, 1] = 0.0  # trial 1 ended early: its last row is padding
    rows = torch.tensor([0, 2])
    noise = torch.randn(2, n, L, generator=g, dtype=torch.float64)
    rec, kl = elbo_losses(model, hidden, obs, actions, rewards, mask, rows, noise)

    rec_terms, kl_sum, real = [], 0.0, 0.0
    with torch.no_grad():
        for j in range(n):
            prev_mu = prev_lv = torch.zeros(L, dtype=torch.float64)
            for t in range(T):
                mu, lv = model.posterior(hidden[t, j])
                if mask[t, j]:
                    kl_sum += float(0.5 * (prev_lv - lv + (lv.exp() + (mu - prev_mu) ** 2)
                                           / prev_lv.exp() - 1).sum())
                    real += 1
                prev_mu, prev_lv = mu, lv
            for s, t in enumerate(rows.tolist()):
                mu, lv = model.posterior(hidden[t, j])
                m = mu + (0.5 * lv).exp() * noise[s, j]
                errs = [float((model.decode_reward(m, obs[u, j], actions[u, j])
                               - rewards[u, j]) ** 2) for u in range(T) if mask[u, j]]
                rec_terms.append(sum(errs) / len(errs))
    assert rec.item() == pytest.approx(sum(rec_terms) / len(rec_terms), rel=1e-10)
    assert kl.item() == pytest.approx(kl_sum / real, rel=1e-10)


def test_no_rl_gradient_reaches_the_encoder_and_the_vae_trains_only_it():
    agent = _agent()
    model = agent.train_policy
    batch = agent.sample(agent._tasks_for(0), seed=3)
    out = agent.replay(model, batch, trial_inputs(batch))
    (out.log_probs.sum() + out.values.sum()).backward()
    encoder = [*model.gru.parameters(), *model.posterior_head.parameters()]
    assert all(p.grad is None for p in encoder)
    assert all(p.grad is not None for p in model.policy_parameters())
    assert {id(p) for p in agent.ppo_parameters()}.isdisjoint(id(p) for p in model.vae_parameters())
    model.zero_grad(set_to_none=True)

    heads = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = agent.after_ppo(batch, trial_inputs(batch), 0)
    assert metrics["vae/rec"] > 0 and metrics["vae/kl"] >= 0
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, heads[k])}
    assert changed and all(k.split(".")[0] in {"gru", "posterior_head", "decoder"} for k in changed)


def test_replay_reproduces_the_sampler_and_resume_is_exact(tmp_path):
    agent = _agent()
    assert agent.train_iteration(0)["ratio0"] < 1e-5   # padding rows included (early goals)
    (a, b), _ = interrupted_and_straight_states("varibad", TINY, tmp_path)
    for k, v in a["policy"].items():
        assert torch.equal(v, b["policy"][k]), k


def test_config_refuses_the_rl2_prediction_loss():
    with pytest.raises(metarl.ConfigError, match="aux_coef"):
        make_config(VariBADConfig, {"aux_coef": 0.5})
