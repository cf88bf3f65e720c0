"""Policies: distributions against torch.distributions, functional calls, batched rollout
policies with per-task parameters."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

from metarl.policies import (
    CategoricalMLPPolicy,
    GaussianMLPPolicy,
    dist_of,
    expand_params,
    get_params,
    make_policy,
    rollout_policy,
    stack_params,
    unstack_params,
)
from metarl.rollout import StepContext


def _ctx(task_index, noise=None):
    n = task_index.shape[0]
    return StepContext(t=0, task_index=task_index, prev_action=torch.zeros(n), prev_reward=torch.zeros(n),
                       episode_start=torch.ones(n, dtype=torch.bool), trial_start=True,
                       active=torch.ones(n, dtype=torch.bool),
                       generator=torch.Generator().manual_seed(0), noise=noise)


def test_gaussian_matches_torch_distributions():
    torch.manual_seed(0)
    pol = GaussianMLPPolicy(3, 2, (8, 8), init_std=0.7)
    obs, act = torch.randn(5, 3), torch.randn(5, 2)
    mean, log_std = pol(obs)
    ref = Independent(Normal(mean, log_std.exp()), 1)
    torch.testing.assert_close(pol.log_prob((mean, log_std), act), ref.log_prob(act))
    torch.testing.assert_close(pol.entropy((mean, log_std)), ref.entropy())
    other = (mean + 0.3, log_std - 0.2)
    ref2 = Independent(Normal(other[0], other[1].exp()), 1)
    torch.testing.assert_close(pol.kl((mean, log_std), other), kl_divergence(ref, ref2))
    assert torch.allclose(log_std, torch.full_like(log_std, torch.log(torch.tensor(0.7))))


def test_categorical_matches_torch_distributions():
    torch.manual_seed(0)
    pol = CategoricalMLPPolicy(3, 4, (8,))
    obs = torch.randn(6, 3)
    (lp,) = pol(obs)
    ref = Categorical(logits=lp)
    act = torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(pol.log_prob((lp,), act), ref.log_prob(act))
    torch.testing.assert_close(pol.entropy((lp,)), ref.entropy())
    other = (torch.log_softmax(lp + torch.randn(6, 4), -1),)
    torch.testing.assert_close(pol.kl((lp,), other), kl_divergence(ref, Categorical(logits=other[0])))
    # inverse-CDF sampling from uniforms hits each action with its probability
    u = torch.rand(20000, generator=torch.Generator().manual_seed(1))
    probs = lp[0].exp()
    samples = pol.sample((lp[0].expand(20000, 4),), uniform=u)
    freq = torch.bincount(samples, minlength=4).float() / 20000
    torch.testing.assert_close(freq, probs, atol=0.02, rtol=0)


def test_make_policy_picks_the_distribution():
    box = gym.spaces.Box(-1, 1, (2,))
    assert isinstance(make_policy(box, box), GaussianMLPPolicy)
    assert isinstance(make_policy(box, gym.spaces.Discrete(3)), CategoricalMLPPolicy)
    with pytest.raises(TypeError):
        make_policy(gym.spaces.Discrete(3), box)


def test_functional_call_uses_the_given_parameters_not_the_modules():
    pol = GaussianMLPPolicy(2, 2, (4,))
    params = {k: v.detach() + 1.0 for k, v in get_params(pol).items()}
    obs = torch.randn(3, 2)
    assert not torch.allclose(dist_of(pol, params, obs)[0], pol(obs)[0])
    before = {k: v.clone() for k, v in get_params(pol).items()}
    dist_of(pol, params, obs)
    assert all(torch.equal(before[k], v) for k, v in get_params(pol).items())


@pytest.mark.parametrize("offset", [0, 3])
def test_per_task_rollout_policy_blocked_and_gathered_layouts_agree(offset):
    torch.manual_seed(0)
    pol = GaussianMLPPolicy(2, 2, (4,))
    per_task = [{k: v.detach() + 0.1 * i for k, v in get_params(pol).items()} for i in range(5)]
    stacked = stack_params(per_task)
    act = rollout_policy(pol, stacked, per_task=True, deterministic=True)
    obs = torch.randn(6, 2)
    blocked = offset + torch.arange(2).repeat_interleave(3)        # Sampler layout
    a1, lp1 = act(obs, _ctx(blocked))
    perm = torch.tensor([0, 3, 1, 4, 2, 5])                        # interleaved columns
    a2, lp2 = act(obs[perm], _ctx(blocked[perm]))
    torch.testing.assert_close(a1[perm], a2)
    torch.testing.assert_close(lp1[perm], lp2)
    for j in range(6):  # each column acts with its own task's parameters
        ref = dist_of(pol, per_task[int(blocked[j])], obs[j:j + 1])[0][0]
        torch.testing.assert_close(a1[j], ref)
    assert len(unstack_params(stacked)) == 5


def test_rollout_policy_samples_from_the_samplers_noise():
    pol = GaussianMLPPolicy(2, 2, (4,), init_std=0.5)
    shared = rollout_policy(pol)
    per_task = rollout_policy(pol, expand_params(get_params(pol), 2), per_task=True)
    obs = torch.randn(4, 2)
    noise = torch.rand(4, 2, generator=torch.Generator().manual_seed(3))
    ti = torch.tensor([0, 0, 1, 1])
    a1, lp1 = shared(obs, _ctx(ti, noise))
    a2, lp2 = per_task(obs, _ctx(ti, noise))
    torch.testing.assert_close(a1, a2)  # same parameters, same noise: same actions
    mean, log_std = pol(obs)
    torch.testing.assert_close(a1, mean + log_std.exp() * torch.special.ndtri(noise))
    torch.testing.assert_close(lp1, pol.log_prob((mean, log_std), a1))
