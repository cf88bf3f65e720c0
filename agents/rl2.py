"""RL² (Duan et al. 2016, "RL²: Fast Reinforcement Learning via Slow Reinforcement Learning").

A recurrent policy that learns to learn: it runs a **trial** of K consecutive
episodes of one task, and its GRU memory, kept across those episodes and reset only
between trials, is the only thing that adapts at test time (no gradient step).

Read top to bottom (CleanRL style):

1. :class:`RL2Config`  — every hyperparameter, with the defaults we use.
2. :class:`RL2Policy`  — GRU trunk over [obs, previous action, previous reward,
   episode-done flag]; categorical or diagonal-Gaussian head; value head.
3. :func:`trial_inputs` — rebuild the per-step inputs of a whole trial from an
   :class:`~metarl.rollout.EpisodeBatch`, exactly as the sampler fed them.
4. :class:`RL2`        — sampling through :class:`metarl.rollout.Sampler`, GAE over
   the whole trial, PPO with minibatches of whole trials (the GRU is replayed over
   each full sequence from a zero state), evaluation and checkpoints.

Trial layout: a column of the batch is one trial (``episodes_per_trial`` episodes of
``horizon`` rows each). Rows after an early termination are padding (``mask == 0``);
the GRU state is *frozen* there, so the next episode continues from the memory at
the end of the previous one, exactly as if the padding did not exist.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from torch.distributions import Categorical, Distribution, Normal

from metarl.advantages import gae
from metarl.agent import AdaptationResult, MetaAgent, register_agent
from metarl.config import RunConfig
from metarl.distributed import make_sampler
from metarl.errors import CheckpointError, ConfigError
from metarl.family import TaskFamily
from metarl.rollout import EpisodeBatch, Policy, StepContext
from metarl.task import Task

# --------------------------------------------------------------------------------------
# 1. Hyperparameters
# --------------------------------------------------------------------------------------


@dataclass
class RL2Config(RunConfig):
    """Hyperparameters of RL² + PPO, on top of the run keys every agent shares
    (family, seed, device, num_iterations, task split, ...). Presets in
    ``configs/rl2_*.yaml`` set these; ``--set key=value`` overrides them."""

    #: K: episodes of one task in a trial (memory kept across them).
    episodes_per_trial: int = 2
    #: trials (columns) sampled per PPO iteration.
    trials_per_iter: int = 256
    #: draw fresh training tasks from the family every iteration (the RL² paper's
    #: setting for bandits / MDPs) instead of from the run's train task pool.
    fresh_tasks: bool = False
    #: GRU width.
    hidden_size: int = 128
    #: also feed the pair code vec([1, o_{t-1}] ⊗ a_{t-1}) and r_{t-1} times it. For
    #: one-hot states and actions that marks the action's slot and the (state, action)
    #: slot, and places the reward in them, so storing "what did arm a / (s, a) pay" is
    #: linear in the input (the GRU gates need not learn the product themselves).
    pair_input: bool = False
    #: also feed the time left, as fractions of the episode and of the trial, so that a
    #: finite-horizon policy (exploit near the end) and its value need not count steps.
    time_input: bool = False
    #: weight of a self-supervised prediction loss (0: off): a small head reads the GRU
    #: output at step t and the action a_t and predicts the reward r_t (in units of the
    #: batch's reward std) and the next observation o_{t+1}, by squared error. Its
    #: gradient asks the memory to hold what the trial has shown about the task, which
    #: the policy gradient alone teaches slowly (cf. varibad's reward / state decoder).
    aux_coef: float = 0.0
    lr: float = 1e-3
    #: linear learning-rate decay to 0 over num_iterations.
    anneal_lr: bool = True
    #: discount over the whole trial (not reset between the episodes of a trial).
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    #: linear entropy-coefficient anneal target (None: constant).
    ent_coef_final: float | None = None
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    update_epochs: int = 4
    #: minibatches of whole trials per epoch.
    num_minibatches: int = 4
    norm_adv: bool = True
    #: rewards are multiplied by this for the value / advantage targets.
    reward_scale: float = 1.0
    #: Gaussian head: initial log-std in normalized action units.
    init_log_std: float = -0.5

    #: keys removed (no preset or benchmark used them), at the one value old runs hold.
    retired: ClassVar[dict[str, Any]] = {"separate_value": False, "head_hidden": 0,
                                         "prev_obs_input": False}

    def validate(self) -> None:
        super().validate()
        if self.episodes_per_trial < 1 or self.trials_per_iter < 1 or self.hidden_size < 1:
            raise ConfigError("episodes_per_trial, trials_per_iter and hidden_size must be >= 1")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ConfigError("gamma and gae_lambda must lie in [0, 1]")
        if self.aux_coef < 0:
            raise ConfigError(f"aux_coef must be >= 0 (0: no prediction loss), got {self.aux_coef}")
        if self.num_minibatches < 1 or self.num_minibatches > self.trials_per_iter:
            raise ConfigError("num_minibatches must lie in [1, trials_per_iter]: a minibatch "
                              "holds whole trials")


# --------------------------------------------------------------------------------------
# 2. The recurrent policy
# --------------------------------------------------------------------------------------


def _layer_init(layer: nn.Linear, std: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.zeros_(layer.bias)
    return layer


class TrialMemory(nn.Module):
    """A GRU over the steps of a trial, reset only between trials: RL²'s policy trunk,
    VariBAD's encoder.

    Input at step t: ``[obs_t, a_{t-1}, r_{t-1}, d_t]`` where ``a`` is one-hot for a
    ``Discrete`` space (all zeros at the start of a trial) and scaled to [-1, 1] for a
    ``Box``; ``d_t = 1`` when step t starts a new episode inside the trial (the
    previous step ended an episode); with ``pair_input``, ``vec([1, obs_{t-1}] ⊗ a_{t-1})``
    and ``r_{t-1}`` times it follow ``d_t``; with ``time_input``, the fractions of the
    episode and of the trial left (:func:`time_left`) come last. Subclasses add the heads:
    :meth:`distribution` and :meth:`value` read the GRU output and the step's input.
    """

    discrete: bool

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 hidden_size: int = 128, time_input: bool = False,
                 pair_input: bool = False) -> None:
        super().__init__()
        self.obs_dim = int(np.prod(observation_space.shape))
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if self.discrete:
            self.act_dim = int(action_space.n)
            # buffers move with .to(device) and are saved with the state dict
            self.register_buffer("act_scale", torch.ones(1))
        elif isinstance(action_space, gym.spaces.Box) and np.all(np.isfinite(action_space.high)):
            self.act_dim = int(np.prod(action_space.shape))
            high = np.maximum(np.abs(action_space.low), np.abs(action_space.high)).reshape(-1)
            self.register_buffer("act_scale", torch.as_tensor(high, dtype=torch.float32))
        else:
            raise TypeError(f"RL² supports Discrete and bounded Box actions, got {action_space}")
        self.hidden_size = int(hidden_size)
        self.time_input = bool(time_input)
        self.pair_input = bool(pair_input)
        self.input_dim = (self.obs_dim + self.act_dim + 2
                          + (2 * (self.obs_dim + 1) * self.act_dim if self.pair_input else 0)
                          + (2 if self.time_input else 0))
        self.gru = self._make_gru()

    @property
    def needs_prev_obs(self) -> bool:
        """Whether :meth:`features` reads the previous observation."""
        return self.pair_input

    def _make_gru(self) -> nn.GRU:
        gru = nn.GRU(self.input_dim, self.hidden_size)
        for name, p in gru.named_parameters():
            if "weight" in name:
                nn.init.orthogonal_(p)
            else:
                nn.init.zeros_(p)
        return gru

    # ---- inputs ----------------------------------------------------------------------
    def features(self, obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor,
                 done_flag: torch.Tensor, has_prev: torch.Tensor,
                 prev_obs: torch.Tensor | None = None,
                 time_frac: torch.Tensor | None = None) -> torch.Tensor:
        """GRU input ``(..., input_dim)`` from per-step tensors with leading shape ``(...)``.

        ``has_prev`` is False at the first step of a trial, where there is no previous
        action (the sampler passes action 0 there, which must not look like arm 0).
        ``prev_obs`` (needed with ``pair_input``) is the observation
        at the last real step before this one; ``time_frac (..., 2)`` (needed with
        ``time_input``) is :func:`time_left` of the step.
        """
        lead = obs.shape[: prev_reward.dim()]
        obs = obs.reshape(*lead, self.obs_dim).float()
        keep = has_prev.float().unsqueeze(-1)
        act = self.action_code(prev_action, lead) * keep
        parts = [obs]
        if self.needs_prev_obs:
            if prev_obs is None:
                raise ValueError("this policy reads the previous observation: pass prev_obs")
            prev_obs = prev_obs.reshape(*lead, self.obs_dim).float() * keep
        reward = prev_reward.float().unsqueeze(-1)
        parts += [act, reward, done_flag.float().unsqueeze(-1)]
        if self.pair_input:
            # a leading 1 before o_{t-1}: the action's own slot (a bandit's arm)
            slots = torch.cat([torch.ones_like(reward), prev_obs], dim=-1)
            pair = (slots.unsqueeze(-1) * act.unsqueeze(-2)).flatten(-2)
            parts += [pair, pair * reward]
        if self.time_input:
            if time_frac is None:
                raise ValueError("this policy reads the time left: pass time_frac")
            parts.append(time_frac.float())
        return torch.cat(parts, dim=-1)

    # ---- heads (subclasses) --------------------------------------------------------------
    def distribution(self, hidden: torch.Tensor, x: torch.Tensor) -> Distribution:
        """Action distribution at GRU outputs ``hidden (..., hidden)`` and step inputs
        ``x (..., input_dim)``."""
        raise NotImplementedError

    def value(self, hidden: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """State value ``(...)`` at GRU outputs ``hidden`` and step inputs ``x``."""
        raise NotImplementedError

    def action_distribution(self, out: torch.Tensor, log_std: torch.Tensor | None
                            ) -> Distribution:
        """Categorical logits, or a Gaussian of mean ``out`` and ``log_std``, both in
        normalized action units (scaled to the action space here)."""
        if self.discrete:
            return Categorical(logits=out)
        std = log_std.exp().expand_as(out)
        return Normal(out * self.act_scale, std * self.act_scale)

    def log_prob(self, dist: Distribution, actions: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return dist.log_prob(actions.long())
        return dist.log_prob(actions.reshape(*actions.shape[:2], self.act_dim)).sum(-1)

    def entropy(self, dist: Distribution) -> torch.Tensor:
        return dist.entropy() if self.discrete else dist.entropy().sum(-1)

    def action_code(self, actions: torch.Tensor, lead: torch.Size | None = None) -> torch.Tensor:
        """Actions with leading shape ``lead`` (default: the first two dims, ``(T, n)``) as
        the network reads them, ``(*lead, act_dim)``: one-hot, or scaled to [-1, 1]."""
        if self.discrete:
            return nn.functional.one_hot(actions.long(), self.act_dim).float()
        lead = actions.shape[:2] if lead is None else lead
        return (actions.reshape(*lead, self.act_dim).float() / self.act_scale).clamp(-1, 1)

    # ---- recurrence --------------------------------------------------------------------
    def initial_state(self, n: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The state every trial starts from: zeros ``(n, hidden)``."""
        return torch.zeros(n, self.hidden_size, device=device)

    def step(self, x: torch.Tensor, h: torch.Tensor, active: torch.Tensor | None = None
             ) -> torch.Tensor:
        """One step of the GRU for ``(n, input_dim)`` inputs; columns with
        ``active == False`` keep their state (padding rows after an early termination are
        invisible)."""
        out, _ = self.gru(x.unsqueeze(0), h.unsqueeze(0))
        h_new = out.squeeze(0)
        if active is not None:
            h_new = torch.where(active.unsqueeze(-1), h_new, h)
        return h_new

    def unroll(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Outputs ``(T, n, hidden)`` of the GRU over whole trials ``x (T, n, input_dim)``
        from a zero state. Without padding the fused sequence kernel runs; with padding the
        state is frozen on masked rows, step by step, like :meth:`step` during sampling."""
        h = self.initial_state(x.shape[1], x.device)
        if bool((mask > 0).all()):
            out, _ = self.gru(x, h.unsqueeze(0))
            return out
        outs = []
        active = mask > 0
        for t in range(x.shape[0]):
            h = self.step(x[t], h, active[t])
            outs.append(h)
        return torch.stack(outs)


class RL2Policy(TrialMemory):
    """RL²'s policy and value function: linear heads on the GRU output (the step's input
    reaches them only through the GRU). With ``predictor``, a third head
    (:meth:`predict`) reads [GRU output, action] for the prediction loss; acting never
    uses it."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 hidden_size: int = 128, init_log_std: float = -0.5,
                 time_input: bool = False, pair_input: bool = False,
                 predictor: bool = False) -> None:
        super().__init__(observation_space, action_space, hidden_size, time_input, pair_input)
        # Small actor init: start near-uniform / near-zero-mean (CleanRL's recipe).
        self.actor = _layer_init(nn.Linear(self.hidden_size, self.act_dim), 0.01)
        self.critic = _layer_init(nn.Linear(self.hidden_size, 1), 1.0)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((self.act_dim,), float(init_log_std)))
        self.predictor = nn.Sequential(
            _layer_init(nn.Linear(self.hidden_size + self.act_dim, 128), math.sqrt(2)), nn.Tanh(),
            _layer_init(nn.Linear(128, 1 + self.obs_dim), 1.0)) if predictor else None

    def distribution(self, hidden: torch.Tensor, x: torch.Tensor | None = None) -> Distribution:
        return self.action_distribution(self.actor(hidden), getattr(self, "log_std", None))

    def value(self, hidden: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        return self.critic(hidden).squeeze(-1)

    def predict(self, hidden: torch.Tensor, actions: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The prediction head (``predictor=True``): reward ``(T, n)`` and next observation
        ``(T, n, obs_dim)`` of taking ``actions`` at GRU outputs ``hidden``."""
        if self.predictor is None:
            raise RuntimeError("this policy has no prediction head (built with predictor=False)")
        out = self.predictor(torch.cat([hidden, self.action_code(actions)], dim=-1))
        return out[..., 0], out[..., 1:]

    def prediction_losses(self, hidden: torch.Tensor, actions: torch.Tensor,
                          reward_target: torch.Tensor, mask: torch.Tensor,
                          next_obs: torch.Tensor, next_ok: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean squared errors of :meth:`predict`: reward over rows with ``mask``, next
        observation (summed over its entries) over rows with ``next_ok``
        (:func:`prediction_targets`)."""
        r_pred, o_pred = self.predict(hidden, actions)
        r_loss = (((r_pred - reward_target) ** 2) * mask).sum() / mask.sum().clamp(min=1.0)
        o_loss = ((((o_pred - next_obs) ** 2).sum(-1) * next_ok).sum()
                  / next_ok.sum().clamp(min=1.0))
        return r_loss, o_loss



# --------------------------------------------------------------------------------------
# 3. Inputs of a whole trial, rebuilt from the batch
# --------------------------------------------------------------------------------------


def time_left(t: torch.Tensor, horizon: int, trial_steps: int) -> torch.Tensor:
    """``(..., 2)``: the fractions of the episode and of the trial left at row ``t`` of a
    trial of ``trial_steps`` rows (1 at the first step, ``1 / horizon`` and
    ``1 / trial_steps`` at the last). Padding rows keep their place in the trial, so the
    next episode starts at the same row (and time) as without them."""
    t = t.float()
    return torch.stack([1.0 - torch.remainder(t, horizon) / horizon, 1.0 - t / trial_steps], -1)


def trial_inputs(batch: EpisodeBatch, prev_obs: bool = False, time_frac: bool = False
                 ) -> dict[str, torch.Tensor]:
    """Per-step previous action and reward, done flag and has-prev of every row (and the
    previous observation, with ``prev_obs``; the time left, with ``time_frac``), as
    :class:`~metarl.rollout.Sampler` and :func:`make_actor` fed them to the policy.

    The previous observation / action / reward at row t are those of the last *real* row
    before t in the same trial (padding rows do not update them), zeros at t = 0.
    """
    T, n = batch.mask.shape
    rows = torch.arange(T).unsqueeze(1).expand(T, n)
    last_real = torch.where(batch.mask > 0, rows, torch.full_like(rows, -1)).cummax(0).values
    prev_idx = torch.cat([torch.full((1, n), -1, dtype=rows.dtype), last_real[:-1]])
    has_prev = prev_idx >= 0
    idx = prev_idx.clamp(min=0)

    def at_prev(x: torch.Tensor) -> torch.Tensor:
        """Row ``idx`` of ``x (T, n, ...)``, zeros where there is no previous row."""
        trail = (1,) * (x.dim() - 2)
        picked = x.gather(0, idx.reshape(T, n, *trail).expand_as(x))
        return torch.where(has_prev.reshape(T, n, *trail), picked, torch.zeros_like(picked))

    step_in_episode = torch.arange(T) % batch.horizon
    done_flag = ((step_in_episode == 0) & (torch.arange(T) > 0)).unsqueeze(1).expand(T, n)
    inputs = {"prev_action": at_prev(batch.actions), "prev_reward": at_prev(batch.rewards),
              "done_flag": done_flag, "has_prev": has_prev}
    if prev_obs:
        inputs["prev_obs"] = at_prev(batch.obs)
    if time_frac:
        inputs["time_frac"] = time_left(rows, batch.horizon, T)
    return inputs


def prediction_targets(batch: EpisodeBatch, done_flag: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """What the prediction head learns from every row t of a trial: the next observation
    ``o_{t+1}`` ``(T, n, obs_dim)`` and where it exists ``(T, n)`` (row t+1 is real and
    continues row t's episode: the last step of an episode has no stored successor, and the
    next row, flagged in ``done_flag`` of :func:`trial_inputs`, is the following episode's
    first state). The reward target is ``batch.rewards`` where ``batch.mask`` is set."""
    T, n = batch.mask.shape
    obs = batch.obs.reshape(T, n, -1).float()
    next_obs = torch.cat([obs[1:], obs[-1:]])
    same_episode = batch.mask[1:] * (~done_flag[1:]).float()
    next_ok = torch.cat([same_episode, torch.zeros_like(batch.mask[:1])])
    return next_obs, next_ok


def make_actor(policy: TrialMemory, deterministic: bool = False,
               record: list[torch.Tensor] | None = None,
               horizon: int | None = None, episodes_per_trial: int | None = None,
               memory: tuple[int, torch.Tensor] | None = None) -> Policy:
    """The callable :meth:`Sampler.sample` steps: keeps one GRU state per column, reset
    at ``ctx.trial_start`` only (never between the episodes of a trial). A policy with
    ``time_input`` needs the ``horizon`` and ``episodes_per_trial`` of the trials.
    ``memory = (t, states)`` replaces the GRU state before row ``t`` of every trial by
    ``states (columns, hidden)``: a memory built on one task, tried on another."""
    state: dict[str, torch.Tensor] = {}
    if policy.time_input and (horizon is None or episodes_per_trial is None):
        raise ValueError("this policy reads the time left: pass horizon and episodes_per_trial")

    @torch.no_grad()
    def act(obs: torch.Tensor, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        n = obs.shape[0]
        if ctx.trial_start or "h" not in state:
            state["h"] = policy.initial_state(n)
            if policy.needs_prev_obs:
                state["prev_obs"] = torch.zeros_like(obs)
        if memory is not None and ctx.t == memory[0]:
            if memory[1].shape != (n, policy.hidden_size):
                raise ValueError(f"memory has shape {tuple(memory[1].shape)}; this batch "
                                 f"needs ({n}, {policy.hidden_size}): one state a column")
            state["h"] = memory[1].clone()
        has_prev = torch.full((n,), not ctx.trial_start)
        done_flag = ctx.episode_start & (ctx.t > 0)
        time_frac = None
        if policy.time_input:
            time_frac = time_left(torch.full((n,), ctx.t), horizon, horizon * episodes_per_trial)
        x = policy.features(obs, ctx.prev_action, ctx.prev_reward, done_flag, has_prev,
                            state.get("prev_obs"), time_frac)
        state["h"] = policy.step(x, state["h"], ctx.active)
        if policy.needs_prev_obs:
            # like the sampler's previous action / reward, padding rows do not update it
            active = ctx.active.reshape(n, *([1] * (obs.dim() - 1)))
            state["prev_obs"] = torch.where(active, obs, state["prev_obs"])
        if record is not None:
            record.append(state["h"].clone())
        dist = policy.distribution(state["h"], x)
        if deterministic:
            action = dist.probs.argmax(-1) if policy.discrete else dist.mean
        else:
            # Inverse-CDF sampling from the sampler's per-task uniform noise: a batch split
            # into chunks (or Ray actors) draws exactly the same actions.
            u = ctx.noise if ctx.noise is not None else torch.rand(
                (n, 1 if policy.discrete else policy.act_dim), generator=ctx.generator)
            if policy.discrete:
                cdf = dist.probs.cumsum(-1)
                action = (u[:, :1] > cdf).sum(-1).clamp(max=policy.act_dim - 1)
            else:
                z = torch.special.ndtri(u.reshape(dist.mean.shape).clamp(1e-6, 1 - 1e-6))
                action = dist.mean + dist.stddev * z
        logp = dist.log_prob(action) if policy.discrete else dist.log_prob(action).sum(-1)
        return action, logp

    return act


# --------------------------------------------------------------------------------------
# 4. Training: PPO over whole trials
# --------------------------------------------------------------------------------------


@dataclass
class ReplayOut:
    log_probs: torch.Tensor  # (T, n)
    entropy: torch.Tensor    # (T, n)
    values: torch.Tensor     # (T, n)
    hidden: torch.Tensor     # (T, n, hidden): the policy GRU's outputs


class RL2(MetaAgent):
    """RL² meta-learner: PPO on a GRU policy over trials of ``episodes_per_trial`` episodes.

    Trained like every agent, by ``metarl train rl2`` or from Python::

        from metarl.runs import create_run, train_run
        run = create_run("rl2", preset="rl2_bandit_k5_n10", out="runs/bandit")
        agent = train_run(run)
        curve = agent.evaluate_adaptation(run.test_tasks, budget=1, episodes=1, seed=0)
    """

    name = "rl2"
    budget_unit = "episodes"
    progress_keys: ClassVar[dict[str, str]] = {"R": "trial_return", "H": "entropy"}

    def __init__(self, config: RL2Config, family: TaskFamily,
                 train_tasks: Sequence[Task] = ()) -> None:
        super().__init__(config, family, train_tasks)
        cfg: RL2Config = config
        if not cfg.fresh_tasks and not self.train_tasks:
            raise ConfigError("RL² needs train tasks, or fresh_tasks=True to draw them from "
                              "the family every iteration")
        torch.manual_seed(cfg.seed)
        env = family.make_env()
        obs_space, act_space = env.observation_space, env.action_space
        env.close()

        self.policy = self.build_policy(obs_space, act_space)
        self.device = torch.device(cfg.device)
        # Rollouts run on a CPU copy; updates on `device` (the same module when device is cpu).
        self.train_policy = self.policy
        if self.device.type != "cpu":
            self.train_policy = self.build_policy(obs_space, act_space).to(self.device)
            self.train_policy.load_state_dict(self.policy.state_dict())
        self.optimizer = torch.optim.Adam(self.ppo_parameters(), lr=cfg.lr, eps=1e-5)
        self.sampler = make_sampler(family, workers=cfg.workers, ray_address=cfg.ray_address,
                                    engine=cfg.engine, family_kwargs=dict(cfg.family_kwargs))

    def build_policy(self, observation_space: gym.Space, action_space: gym.Space) -> TrialMemory:
        cfg = self.config
        return RL2Policy(observation_space, action_space, cfg.hidden_size, cfg.init_log_std,
                         cfg.time_input, cfg.pair_input, predictor=cfg.aux_coef > 0)

    # ---- sampling ----------------------------------------------------------------------
    def _tasks_for(self, iteration: int) -> list[Task]:
        # Stateless per-iteration streams: resuming at iteration i draws what a run that
        # never stopped would have drawn.
        rng = np.random.default_rng([self.config.seed, 1, iteration])
        n = self.config.trials_per_iter
        if self.config.fresh_tasks:
            return self.family.sample_tasks(n, rng)
        idx = rng.integers(len(self.train_tasks), size=n)
        return [self.train_tasks[i] for i in idx]

    def sample(self, tasks: Sequence[Task], seed: int, trials_per_task: int = 1,
               episodes_per_trial: int | None = None, deterministic: bool = False
               ) -> EpisodeBatch:
        """``trials_per_task`` trials per task, ``episodes_per_trial`` episodes each, with
        the CPU policy."""
        k = int(episodes_per_trial or self.config.episodes_per_trial)
        return self.sampler.sample(tasks, self.actor(k, deterministic),
                                   episodes_per_task=trials_per_task, episodes_per_trial=k,
                                   seed=seed)

    def actor(self, episodes_per_trial: int, deterministic: bool = False) -> Policy:
        """The sampling policy (CPU copy) for trials of ``episodes_per_trial`` episodes."""
        return make_actor(self.policy, deterministic, horizon=self.family.horizon,
                          episodes_per_trial=episodes_per_trial)

    # ---- replay ------------------------------------------------------------------------
    def replay(self, policy: TrialMemory, batch: EpisodeBatch, inputs: dict[str, torch.Tensor],
               cols: torch.Tensor | None = None) -> ReplayOut:
        """Re-run the GRU over whole trials (all columns, or ``cols``) from a zero state."""
        dev = next(policy.parameters()).device

        def pick(x: torch.Tensor | None) -> torch.Tensor | None:
            if x is None:
                return None
            x = x if cols is None else x[:, cols]
            return x.to(dev)

        mask = pick(batch.mask)
        x = policy.features(pick(batch.obs), pick(inputs["prev_action"]),
                            pick(inputs["prev_reward"]), pick(inputs["done_flag"]),
                            pick(inputs["has_prev"]), pick(inputs.get("prev_obs")),
                            pick(inputs.get("time_frac")))
        hidden = policy.unroll(x, mask)
        dist = policy.distribution(hidden, x)
        return ReplayOut(policy.log_prob(dist, pick(batch.actions)), policy.entropy(dist),
                         policy.value(hidden, x), hidden)

    # ---- one PPO iteration ---------------------------------------------------------------
    def train_iteration(self, iteration: int) -> dict[str, float]:
        """Sample ``trials_per_iter`` trials and run PPO epochs on them; return metrics.
        All randomness comes from ``(seed, iteration)``, so resuming is exact."""
        cfg, it = self.config, int(iteration)
        t0 = time.perf_counter()
        batch = self.sample(self._tasks_for(it), seed=int(np.random.SeedSequence(
            [cfg.seed, 2, it]).generate_state(1)[0]))
        t_sample = time.perf_counter() - t0
        inputs = trial_inputs(batch, prev_obs=self.policy.needs_prev_obs,
                              time_frac=self.policy.time_input)
        dev = self.device
        mask = batch.mask.to(dev)
        old_logp = batch.log_probs.to(dev)

        with torch.no_grad():
            values = self.replay(self.train_policy, batch, inputs).values
            # GAE over each whole trial (episode_length=None): advantages flow across the
            # episodes of a trial, and padding rows are skipped, not treated as trial ends.
            adv = gae(batch.rewards.to(dev) * cfg.reward_scale, values, mask, cfg.gamma,
                      cfg.gae_lambda, episode_length=None)
            returns = adv + values

        frac = it / max(cfg.num_iterations, 1)
        lr = cfg.lr * (1.0 - frac) if cfg.anneal_lr else cfg.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        ent_coef = cfg.ent_coef if cfg.ent_coef_final is None else \
            cfg.ent_coef + frac * (cfg.ent_coef_final - cfg.ent_coef)

        n = batch.mask.shape[1]
        if cfg.aux_coef > 0:
            next_obs, next_ok = (x.to(dev) for x in prediction_targets(batch, inputs["done_flag"]))
            # rewards in units of their std, so that the weight means the same in any family
            reward_target = batch.rewards.to(dev)
            reward_target = reward_target / reward_target[mask > 0].std().clamp(min=1e-6)
        mb_size = max(1, math.ceil(n / cfg.num_minibatches))
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence(
            [cfg.seed, 3, it]).generate_state(1)[0]))
        stats: dict[str, list[float]] = {"pg_loss": [], "v_loss": [], "entropy": [],
                                         "approx_kl": [], "clipfrac": [], "ratio0": [],
                                         "aux_reward_loss": [], "aux_obs_loss": []}
        for epoch in range(cfg.update_epochs):
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, mb_size):
                cols = perm[start:start + mb_size]  # whole trials: sequences are never cut
                out = self.replay(self.train_policy, batch, inputs, cols)
                m = mask[:, cols]
                m_sum = m.sum().clamp(min=1.0)
                log_ratio = (out.log_probs - old_logp[:, cols]) * m
                ratio = log_ratio.exp()
                mb_adv = adv[:, cols]
                if cfg.norm_adv:
                    mean = (mb_adv * m).sum() / m_sum
                    std = (((mb_adv - mean) ** 2 * m).sum() / m_sum).sqrt()
                    mb_adv = (mb_adv - mean) / (std + 1e-8)
                pg = torch.max(-mb_adv * ratio,
                               -mb_adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef))
                pg_loss = (pg * m).sum() / m_sum
                v_loss = 0.5 * (((out.values - returns[:, cols]) ** 2) * m).sum() / m_sum
                entropy = (out.entropy * m).sum() / m_sum
                loss = pg_loss + cfg.vf_coef * v_loss - ent_coef * entropy
                if cfg.aux_coef > 0:
                    r_loss, o_loss = self.train_policy.prediction_losses(
                        out.hidden, batch.actions[:, cols].to(dev), reward_target[:, cols], m,
                        next_obs[:, cols], next_ok[:, cols])
                    loss = loss + cfg.aux_coef * (r_loss + o_loss)
                    stats["aux_reward_loss"].append(r_loss.item())
                    stats["aux_obs_loss"].append(o_loss.item())
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.ppo_parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    stats["pg_loss"].append(pg_loss.item())
                    stats["v_loss"].append(v_loss.item())
                    stats["entropy"].append(entropy.item())
                    stats["approx_kl"].append((((ratio - 1) - log_ratio) * m).sum().item()
                                              / m_sum.item())
                    stats["clipfrac"].append((((ratio - 1).abs() > cfg.clip_coef).float() * m)
                                             .sum().item() / m_sum.item())
                    if epoch == 0 and start == 0:
                        # before any update the replayed log-probs equal the sampling ones
                        stats["ratio0"].append(float((ratio - 1).abs().max().item()))
        extra = self.after_ppo(batch, inputs, it)
        if self.train_policy is not self.policy:
            self.policy.load_state_dict({k: v.cpu() for k, v in
                                         self.train_policy.state_dict().items()})

        ep_returns = batch.episode_returns()  # (K, n)
        metrics = {
            "env_steps": float(batch.num_steps),
            "trial_return": float(ep_returns.sum(0).mean()),
            **{f"return_ep{k + 1}": float(ep_returns[k].mean()) for k in range(len(ep_returns))},
            **{k: float(np.mean(v)) for k, v in stats.items() if v},
            "explained_var": float(1 - ((returns - values)[mask > 0].var()
                                        / returns[mask > 0].var().clamp(min=1e-8))),
            "lr": lr, "ent_coef": ent_coef,
            "time_sample": t_sample, "time_total": time.perf_counter() - t0, **extra,
        }
        return metrics

    def ppo_parameters(self) -> list[nn.Parameter]:
        """What PPO optimizes: the whole policy (VariBAD: its heads, not the encoder)."""
        return list(self.train_policy.parameters())

    def after_ppo(self, batch: EpisodeBatch, inputs: dict[str, torch.Tensor],
                  iteration: int) -> dict[str, float]:
        """Runs after the PPO epochs on the iteration's batch (VariBAD trains its encoder
        and decoder here); returns extra metrics."""
        return {}

    # ---- evaluation --------------------------------------------------------------------
    @torch.no_grad()
    def evaluate_adaptation(self, tasks: Sequence[Task], budget: int, episodes: int,
                            seed: int, deterministic: bool = False) -> AdaptationResult:
        """The evaluator's RL² curve: return in episode 1..``budget`` of a trial on each
        held-out task, averaged over ``episodes`` independent trials per task; no gradient
        step, only the GRU memory adapts. Episode k has k - 1 episodes of experience in the
        task before it (the shared x axis). ``deterministic`` acts with the mode."""
        k, per_task = max(int(budget), 1), max(int(episodes), 1)
        batch = self.sample(tasks, seed, trials_per_task=per_task, episodes_per_trial=k,
                            deterministic=deterministic)
        n = len(tasks)
        returns = batch.episode_returns().reshape(k, n, per_task).mean(-1).numpy()
        s = batch.episode_success()
        success = None if s is None else s.reshape(k, n, per_task).mean(-1).numpy()
        return AdaptationResult(budgets=list(range(1, k + 1)), episodes=[float(i) for i in
                                range(k)], returns=returns, success=success,
                                budget_unit=self.budget_unit)

    def close(self) -> None:
        self.sampler.close()

    # ---- checkpoints -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"family": self.family.id, "policy": self.train_policy.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("family") != self.family.id:
            raise CheckpointError(f"this RL² checkpoint was trained on {state.get('family')!r}, "
                                  f"not on {self.family.id!r}: load it with that family")
        try:
            self.train_policy.load_state_dict(state["policy"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"RL² checkpoint does not fit this policy ({exc})") from None
        if self.train_policy is not self.policy:
            self.policy.load_state_dict({k: v.cpu() for k, v in state["policy"].items()})


register_agent("rl2", RL2, RL2Config,
               description="RL²: GRU policy trained with PPO over multi-episode trials "
                           "(Duan et al. 2016)", default_preset="rl2_default")

__all__ = ["RL2", "RL2Config", "RL2Policy", "TrialMemory", "make_actor", "time_left",
           "trial_inputs"]
