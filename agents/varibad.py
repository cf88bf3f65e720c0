"""VariBAD (Zintgraf, Shiarlis, Igl, Schulze, Gal, Hofmann & Whiteson 2020, "VariBAD: A
Very Good Method for Bayes-Adaptive Deep RL via Meta-Learning"), read top to bottom.

A trial is several episodes of one task, with memory kept across them (as in RL²). At
every step t a recurrent **encoder** reads the trial so far (the step's observation, the
previous action and reward, the episode-start flag: RL²'s input,
:class:`~metarl.agents.rl2.TrialMemory`) and outputs a Gaussian posterior
``q_t(m) = N(μ_t, diag σ_t²)`` over a latent task embedding m. The **policy** sees the
observation and the posterior's mean and log-variance, detached: the RL loss never
reaches the encoder (as in the paper). The encoder learns from a **decoder** instead,
by the ELBO of the whole trial: for a step t, a sample m ~ q_t must reconstruct every
reward of the trial, past and future (``r̂_t' = d(m, s_t', a_t')``), and q_t stays close
to the previous step's posterior (the first: to N(0, I))::

    ELBO_t = − mean_t' (r̂_t' − r_t')²  −  kl_weight · KL(q_t ‖ q_{t−1})

One iteration: sample trials (the sampling policy runs the encoder step by step), PPO on
the policy heads exactly as RL² does it (GAE over the whole trial, minibatches of whole
trials), then ``vae_updates`` Adam steps on the encoder and decoder with the negative
ELBO averaged over ``elbo_timesteps`` steps t drawn per update. Evaluation is RL²'s: the
return in each episode of a trial on held-out tasks, no gradient step.

Differences from the paper's code (varibad): the decoder reads (s_t', a_t') instead of
s_t'+1 (our batches keep no observation after an episode's last step); the VAE trains on
the iteration's trials instead of a buffer of recent ones; no state/action/reward
embedding layers before the GRU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from torch.distributions import Distribution

from metarl.agent import register_agent
from metarl.agents.rl2 import RL2, RL2Config, TrialMemory, _layer_init
from metarl.errors import CheckpointError
from metarl.rollout import EpisodeBatch


# --------------------------------------------------------------------------------------
# 1. Hyperparameters
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class VariBADConfig(RL2Config):
    """RL²'s keys (trials, PPO, the encoder's GRU width ``hidden_size``) plus the VAE's."""

    #: dimensions of the latent task embedding m.
    latent_size: int = 5
    #: tanh MLP of the policy and value heads on [obs, μ, log σ²].
    policy_hidden: list[int] = dataclasses.field(default_factory=lambda: [128, 128])
    #: ReLU MLP of the reward decoder on [m, obs, action].
    decoder_hidden: list[int] = dataclasses.field(default_factory=lambda: [64, 32])
    #: VAE optimizer (Adam) and updates per iteration.
    vae_lr: float = 1e-3
    vae_updates: int = 3
    #: weight of the KL term against the reconstruction term.
    kl_weight: float = 0.1
    #: ELBO steps t per VAE update (0: every step of the trial).
    elbo_timesteps: int = 64

    def validate(self) -> None:
        super().validate()
        self.check({"latent_size >= 1": self.latent_size >= 1, "vae_lr > 0": self.vae_lr > 0,
                    "vae_updates >= 1": self.vae_updates >= 1, "kl_weight >= 0": self.kl_weight >= 0,
                    "elbo_timesteps >= 0": self.elbo_timesteps >= 0,
                    "aux_coef == 0 (VariBAD's decoder is its prediction loss)": self.aux_coef == 0})


# --------------------------------------------------------------------------------------
# 2. Encoder, policy on the posterior, decoder
# --------------------------------------------------------------------------------------
def _mlp(in_dim: int, hidden: list[int], out_dim: int, activation: type[nn.Module],
         out_std: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [_layer_init(nn.Linear(in_dim, h), np.sqrt(2)), activation()]
        in_dim = h
    return nn.Sequential(*layers, _layer_init(nn.Linear(in_dim, out_dim), out_std))


class VariBADPolicy(TrialMemory):
    """The encoder (the GRU of :class:`TrialMemory` and a linear posterior head), the
    policy and value heads on ``[obs, μ, log σ²]`` (posterior detached), and the reward
    decoder."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 hidden_size: int, latent_size: int, policy_hidden: list[int],
                 decoder_hidden: list[int], init_log_std: float = -0.5,
                 time_input: bool = False, pair_input: bool = False) -> None:
        super().__init__(observation_space, action_space, hidden_size, time_input, pair_input)
        self.latent_size = int(latent_size)
        self.posterior_head = nn.Linear(self.hidden_size, 2 * self.latent_size)
        policy_in = self.obs_dim + 2 * self.latent_size
        self.actor = _mlp(policy_in, policy_hidden, self.act_dim, nn.Tanh, 0.01)
        self.critic = _mlp(policy_in, policy_hidden, 1, nn.Tanh, 1.0)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((self.act_dim,), float(init_log_std)))
        self.decoder = _mlp(self.latent_size + self.obs_dim + self.act_dim, decoder_hidden, 1,
                            nn.ReLU, 1.0)

    def posterior(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ, log σ²)``, each ``(..., latent_size)``, from encoder outputs."""
        mu, logvar = self.posterior_head(hidden).chunk(2, dim=-1)
        return mu, logvar

    def policy_input(self, hidden: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``[obs, μ, log σ²]`` with the posterior detached: no RL gradient reaches the
        encoder. The observation is the first ``obs_dim`` entries of the step input."""
        mu, logvar = self.posterior(hidden)
        return torch.cat([x[..., :self.obs_dim], mu.detach(), logvar.detach()], dim=-1)

    def distribution(self, hidden: torch.Tensor, x: torch.Tensor) -> Distribution:
        return self.action_distribution(self.actor(self.policy_input(hidden, x)),
                                        getattr(self, "log_std", None))

    def value(self, hidden: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.critic(self.policy_input(hidden, x)).squeeze(-1)

    def decode_reward(self, latent: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor
                      ) -> torch.Tensor:
        """``r̂ (...)`` of taking ``actions`` (network code, ``(..., act_dim)``) at ``obs``
        ``(..., obs_dim)`` in the task ``latent`` ``(..., latent_size)``."""
        return self.decoder(torch.cat([latent, obs, actions], dim=-1)).squeeze(-1)

    def policy_parameters(self) -> list[nn.Parameter]:
        """The heads PPO trains (the encoder and decoder are the VAE's)."""
        heads = [*self.actor.parameters(), *self.critic.parameters()]
        return heads if self.discrete else [*heads, self.log_std]

    def vae_parameters(self) -> list[nn.Parameter]:
        return [*self.gru.parameters(), *self.posterior_head.parameters(),
                *self.decoder.parameters()]


# --------------------------------------------------------------------------------------
# 3. The ELBO
# --------------------------------------------------------------------------------------
def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor,
                logvar_p: torch.Tensor) -> torch.Tensor:
    """``KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²))`` of diagonal Gaussians, summed over the last dim."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp()
                  - 1.0).sum(-1)


def elbo_losses(model: VariBADPolicy, hidden: torch.Tensor, obs: torch.Tensor,
                actions: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor,
                rows: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The negative ELBO's two terms for trials ``(T, n)``.

    Args:
        hidden: encoder outputs ``(T, n, hidden)``; ``obs (T, n, obs_dim)``, ``actions``
            (network code, ``(T, n, act_dim)``), ``rewards`` and ``mask (T, n)``.
        rows: the ELBO steps t ``(S,)``; ``noise (S, n, latent)`` standard normal draws
            for their samples ``m = μ_t + σ_t · noise``.

    Returns:
        ``rec``: over the S steps and the n trials, the mean over real rows t' of
        ``(d(m_t, s_t', a_t') − r_t')²``; ``kl``: the mean over real rows t of
        ``KL(q_t ‖ q_{t−1})`` (``q_{−1} = N(0, I)``).
    """
    mu, logvar = model.posterior(hidden)
    prior_mu = torch.cat([torch.zeros_like(mu[:1]), mu[:-1]])
    prior_logvar = torch.cat([torch.zeros_like(logvar[:1]), logvar[:-1]])
    kl = gaussian_kl(mu, logvar, prior_mu, prior_logvar)
    kl_loss = (kl * mask).sum() / mask.sum().clamp(min=1.0)
    latent = mu[rows] + (0.5 * logvar[rows]).exp() * noise            # (S, n, L)
    S, (T, n) = len(rows), mask.shape
    pred = model.decode_reward(latent.unsqueeze(1).expand(S, T, n, -1),
                               obs.unsqueeze(0).expand(S, T, n, -1),
                               actions.unsqueeze(0).expand(S, T, n, -1))   # (S, T, n)
    sq = (pred - rewards.unsqueeze(0)) ** 2 * mask.unsqueeze(0)
    rec = sq.sum(1) / mask.sum(0).clamp(min=1.0)                       # (S, n)
    return rec.mean(), kl_loss


# --------------------------------------------------------------------------------------
# 4. The agent: RL²'s sampling, PPO and evaluation, plus the VAE
# --------------------------------------------------------------------------------------
class VariBAD(RL2):
    """VariBAD: PPO on a policy conditioned on a learned task posterior (see above)."""

    name = "varibad"
    progress_keys: ClassVar[dict[str, str]] = {"R": "trial_return", "rec": "vae/rec",
                                               "kl": "vae/kl"}

    def __init__(self, config: VariBADConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.vae_optimizer = torch.optim.Adam(self.train_policy.vae_parameters(),
                                              lr=config.vae_lr)

    def build_policy(self, observation_space: gym.Space, action_space: gym.Space) -> TrialMemory:
        cfg = self.config
        return VariBADPolicy(observation_space, action_space, cfg.hidden_size, cfg.latent_size,
                             cfg.policy_hidden, cfg.decoder_hidden, cfg.init_log_std,
                             cfg.time_input, cfg.pair_input)

    def ppo_parameters(self) -> list[nn.Parameter]:
        return self.train_policy.policy_parameters()

    def after_ppo(self, batch: EpisodeBatch, inputs: dict[str, torch.Tensor],
                  iteration: int) -> dict[str, float]:
        """``vae_updates`` Adam steps on the encoder and decoder (negative ELBO)."""
        cfg, model, dev = self.config, self.train_policy, self.device
        T, n = batch.mask.shape
        mask = batch.mask.to(dev)
        obs = batch.obs.reshape(T, n, -1).float().to(dev)
        actions = model.action_code(batch.actions.to(dev))
        rewards = batch.rewards.to(dev) * cfg.reward_scale
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence(
            [cfg.seed, 4, iteration]).generate_state(1)[0]))
        recs, kls = [], []
        for _ in range(cfg.vae_updates):
            hidden = self.replay(model, batch, inputs).hidden
            S = T if cfg.elbo_timesteps == 0 else min(cfg.elbo_timesteps, T)
            rows = torch.randperm(T, generator=gen)[:S].sort().values.to(dev)
            noise = torch.randn(S, n, cfg.latent_size, generator=gen).to(dev)
            rec, kl = elbo_losses(model, hidden, obs, actions, rewards, mask, rows, noise)
            loss = rec + cfg.kl_weight * kl
            self.vae_optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.vae_parameters(), cfg.max_grad_norm)
            self.vae_optimizer.step()
            recs.append(rec.item())
            kls.append(kl.item())
        return {"vae/rec": float(np.mean(recs)), "vae/kl": float(np.mean(kls))}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "vae_optimizer": self.vae_optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        try:
            self.vae_optimizer.load_state_dict(state["vae_optimizer"])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"VariBAD checkpoint has no usable VAE optimizer ({exc})") from None


register_agent("varibad", VariBAD, VariBADConfig,
               description="VariBAD (Zintgraf et al. 2020): a policy on a task posterior "
                           "inferred by a recurrent VAE over the trial", default_preset="varibad_default")

__all__ = ["VariBAD", "VariBADConfig", "VariBADPolicy", "elbo_losses", "gaussian_kl"]
