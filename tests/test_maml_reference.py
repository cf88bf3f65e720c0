"""MAML's batched loss pipeline against a plain per-episode reference on a real batch.

The mechanism tests check gradients against our own loss; this one checks the loss
itself. A sampled PointNav2D batch (success radius widened to 0.3 so that many episodes end
early) goes through ``prepare_batch`` / ``inner_losses`` / ``adapt`` and, separately,
through a float64 loop over tasks and episodes written from the definitions
(pytorch-maml-rl's semantics): discounted returns, a ridge-regression linear baseline
per task on ``[o, o², t, t², t³, 1]`` with ``t = step / 100``, GAE (λ = 1: returns minus
values; λ = 0.9, the PointNav presets': the δ recursion with V = 0 after an episode's last
step), per-task normalization with every episode weighted alike, and the
REINFORCE loss averaged over each episode's steps, then over the task's episodes.
It also checks that every column really belongs to the task ``task_index`` names.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call

import metarl
from metarl.agents.maml import MAMLAgent, MAMLConfig, adapt, inner_losses
from metarl.config import make_config
from metarl.policies import expand_params

GAMMA = 0.99


@pytest.fixture(scope="module", params=[1.0, 0.9], ids=["lambda1", "lambda0.9"])
def sampled(request):
    cfg = make_config(MAMLConfig, {
        "family_kwargs": {"success_radius": 0.3}, "meta_batch_size": 3,
        "episodes_per_task": 5, "horizon": 25, "hidden_sizes": [16], "num_train_tasks": 6,
        "num_test_tasks": 2, "gamma": GAMMA, "gae_lambda": request.param, "init_std": 0.3})
    fam = metarl.make_family(cfg.family, **cfg.family_kwargs)
    split = fam.split(cfg.num_train_tasks, cfg.num_test_tasks, cfg.split_seed)
    agent = MAMLAgent(cfg, fam, split.train)
    tasks = list(split.train[:3])
    batch = agent._sample(tasks, None, per_task=False, seed=123, episodes=5)
    yield agent, tasks, batch
    agent.close()


def _episodes(batch, b):
    """(obs, actions, rewards) of each real episode of task b, in float64 numpy."""
    out = []
    for c in torch.nonzero(batch.task_index == b).flatten().tolist():
        n = int(batch.mask[:, c].sum())
        out.append((batch.obs[:n, c].double().numpy(), batch.actions[:n, c].double().numpy(),
                    batch.rewards[:n, c].double().numpy()))
    return out


def _reference_advantages(episodes, lam):
    """Per-episode normalized advantages of one task."""
    feats, rets = [], []
    for obs, _, rew in episodes:
        g, acc = np.zeros(len(rew)), 0.0
        for t in range(len(rew) - 1, -1, -1):
            acc = rew[t] + GAMMA * acc
            g[t] = acc
        t = (np.arange(len(rew)) / 100.0)[:, None]
        feats.append(np.hstack([obs, obs ** 2, t, t ** 2, t ** 3, np.ones_like(t)]))
        rets.append(g)
    X = np.vstack(feats)
    w = np.linalg.solve(X.T @ X + 1e-5 * np.eye(X.shape[1]), X.T @ np.concatenate(rets))
    advs = []
    for f, (_, _, rew) in zip(feats, episodes, strict=True):
        values = np.append(f @ w, 0.0)  # nothing after an episode's last step
        deltas = rew + GAMMA * values[1:] - values[:-1]
        a, acc = np.zeros(len(rew)), 0.0
        for t in range(len(rew) - 1, -1, -1):
            acc = deltas[t] + GAMMA * lam * acc
            a[t] = acc
        advs.append(a)
    mean = np.mean([a.mean() for a in advs])
    std = math.sqrt(np.mean([((a - mean) ** 2).mean() for a in advs]))
    return [(a - mean) / (std + 1e-8) for a in advs]


def _reference_loss(agent, theta, episodes):
    """−mean over episodes of mean over steps of log π(a|s)·Â, differentiable in theta."""
    advs = _reference_advantages(episodes, agent.config.gae_lambda)
    losses = []
    for (obs, act, _), adv in zip(episodes, advs, strict=True):
        mean, log_std = functional_call(agent.policy, theta, (torch.as_tensor(obs).float(),))
        mean, log_std = mean.double(), log_std.double()
        z = (torch.as_tensor(act) - mean) / log_std.exp()
        logp = (-0.5 * z ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        losses.append(-(logp * torch.as_tensor(adv)).mean())
    return torch.stack(losses).mean()


def test_columns_belong_to_the_task_they_are_labelled_with(sampled):
    agent, tasks, batch = sampled
    assert (batch.mask.sum(0) < batch.horizon).sum() >= 3, "want some early terminations"
    for b, task in enumerate(tasks):
        goal = np.asarray(task["goal"])
        for obs, act, rew in _episodes(batch, b):
            after = obs + np.clip(act, -0.1, 0.1)
            np.testing.assert_allclose(rew, -np.linalg.norm(after - goal, axis=1), atol=1e-5)


def test_inner_loss_and_adapted_parameters_match_the_reference(sampled):
    agent, tasks, batch = sampled
    prepared = agent._prepare(batch)
    theta = {k: v.detach().requires_grad_(True) for k, v in agent.theta.items()}
    ours = inner_losses(agent.policy, expand_params(theta, len(tasks)), prepared)
    adapted = adapt(agent.policy, theta, [prepared], {k: 0.1 for k in theta}, False)
    for b in range(len(tasks)):
        ref = _reference_loss(agent, theta, _episodes(batch, b))
        assert float(ours[b].detach()) == pytest.approx(float(ref.detach()), rel=1e-4, abs=1e-6)
        grads = torch.autograd.grad(ref, list(theta.values()))
        for (name, p), g in zip(theta.items(), grads, strict=True):
            torch.testing.assert_close(adapted[name][b].detach(), (p - 0.1 * g).detach().float(),
                                       rtol=1e-4, atol=1e-6)
