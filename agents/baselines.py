"""The baselines every meta-learner is compared with, trained by Stable-Baselines3's PPO on
the same train tasks and evaluated by the same protocol, read top to bottom.

- ``multitask``: SB3 PPO on the train tasks (a new train task every episode, the task
  hidden). On a held-out task it adapts by fine-tuning: round k is one SB3 PPO update
  on ``episodes`` episodes of that task, collected by the current policy.
- ``oracle``: the same PPO, but its observation also carries the task's parameters
  (:class:`~metarl.wrappers.TaskObservation`), evaluated zero-shot on held-out tasks: an
  upper bound on what knowing the task is worth. It does not adapt, so every point of
  its curve is a fresh zero-shot measurement.
- ``scratch``: the fine-tuning of ``multitask`` from a random initialization (nothing is
  trained: ``num_iterations`` is 0), the same experience per round.

Budget and x axis as for the gradient-based meta-learners (:mod:`metarl.agent`): point k
is the policy after k rounds, measured on ``episodes`` fresh episodes (the first episode
of each of ``episodes`` sub-envs, stochastic actions), x = k · ``episodes`` episodes of
experience. The rollouts that measure a point are not the ones the next update learns
from, so a baseline sees twice the episodes of a meta-learner at equal x; the update
uses only ``episodes`` of them, as the meta-learner's step does.

Resume is exact: every iteration seeds SB3 (torch, numpy, the envs) from
``(seed, iteration)`` and starts its rollouts from a reset, and the checkpoint holds the
policy, the optimizer and the step counter.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from metarl.agent import AdaptationResult, MetaAgent, register_agent
from metarl.agents.maml import _seed
from metarl.config import RunConfig
from metarl.errors import CheckpointError, ConfigError
from metarl.family import TaskFamily
from metarl.task import Task
from metarl.wrappers import TaskObservation, TaskSampling

ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}


@dataclasses.dataclass
class PPOBaselineConfig(RunConfig):
    """SB3 PPO's settings (its defaults where not noted) and the fine-tuning rounds."""

    #: hidden layers of the policy and value networks (SB3's default: 64 x 64).
    hidden_sizes: list = dataclasses.field(default_factory=lambda: [64, 64])
    #: parallel train envs (each draws a train task per episode) and steps per env per
    #: PPO update: n_envs x n_steps steps per update (SB3: 1 x 2048).
    n_envs: int = 8
    n_steps: int = 256
    #: PPO updates per meta-iteration (so an iteration is n_envs x n_steps x this).
    updates_per_iteration: int = 5
    batch_size: int = 64
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    #: hidden activation ("tanh", SB3's default, or "relu"), the initial log std of the
    #: Gaussian policy and SB3's orthogonal initialization.
    activation: str = "tanh"
    log_std_init: float = 0.0
    ortho_init: bool = True
    #: SB3's VecNormalize on observations and rewards (RL Zoo's ``normalize: true``). The
    #: statistics are learned on the train tasks, kept in the checkpoint, and frozen while
    #: the trained policy is fine-tuned on a held-out task (scratch learns its own).
    normalize: bool = False
    #: learning rate of the fine-tuning updates on a held-out task (a fresh Adam each task).
    finetune_learning_rate: float = 3e-4

    def validate(self) -> None:
        super().validate()
        self.check({"n_envs >= 1": self.n_envs >= 1, "n_steps >= 2": self.n_steps >= 2,
                    "updates_per_iteration >= 1": self.updates_per_iteration >= 1,
                    "batch_size >= 2": self.batch_size >= 2, "n_epochs >= 1": self.n_epochs >= 1,
                    "learning_rate > 0": self.learning_rate > 0,
                    "finetune_learning_rate > 0": self.finetune_learning_rate > 0,
                    "hidden_sizes non-empty": bool(self.hidden_sizes),
                    "max_grad_norm > 0": self.max_grad_norm > 0,
                    f"activation in {sorted(ACTIVATIONS)}": self.activation in ACTIVATIONS})


@dataclasses.dataclass
class ScratchConfig(PPOBaselineConfig):
    num_iterations: int = 0

    def validate(self) -> None:
        super().validate()
        if self.num_iterations != 0:
            raise ConfigError("scratch fine-tunes a randomly initialized policy and trains "
                              f"nothing: num_iterations must be 0, got {self.num_iterations}")


class PPOBaseline(MetaAgent):
    """``multitask``: SB3 PPO on the train tasks, fine-tuned on each held-out task."""

    name = "multitask"
    progress_keys = {"return": "return/train"}
    #: join the task's parameters to the observation (the oracle).
    task_observation = False
    #: fine-tune on held-out tasks (else every point is a zero-shot measurement).
    fine_tune = True
    #: update the VecNormalize statistics while fine-tuning (only scratch: it has none).
    finetune_normalization = False

    def __init__(self, config: PPOBaselineConfig, family: TaskFamily,
                 train_tasks: Sequence[Task]) -> None:
        super().__init__(config, family, train_tasks)
        if not self.train_tasks and config.num_iterations > 0:
            raise ConfigError(f"{self.name} trains on a fixed pool of train tasks: set "
                              "num_train_tasks >= 1")
        tasks = self.train_tasks or [family.default_task()]
        self._monitors: list[Monitor] = []
        self.train_env = self._normalized(DummyVecEnv([self._env_factory(
            lambda t=tasks: TaskSampling(self.family.make_env(t[0]), t), monitor=True)
            for _ in range(config.n_envs)]))
        self.model = self._ppo(self.train_env, config.n_steps, config.batch_size,
                               config.learning_rate, config.seed)

    # -- construction ------------------------------------------------------------------------
    def _env_factory(self, make: Any, monitor: bool = False) -> Any:
        def build() -> gym.Env:
            env = make()
            if self.task_observation:
                env = TaskObservation(env)
            env = Monitor(env)
            if monitor:
                self._monitors.append(env)
            return env
        return build

    def _normalized(self, env: DummyVecEnv) -> VecEnv:
        if not self.config.normalize:
            return env
        return VecNormalize(env, gamma=self.config.gamma)

    def _ppo(self, env: VecEnv, n_steps: int, batch_size: int, lr: float, seed: int) -> PPO:
        cfg = self.config
        size = n_steps * env.num_envs  # prefer a minibatch size that divides the rollout
        divisor = next(b for b in range(min(batch_size, size), 0, -1) if size % b == 0)
        batch_size = divisor if 2 * divisor >= min(batch_size, size) else min(batch_size, size)
        return PPO("MlpPolicy", env, n_steps=n_steps, batch_size=batch_size,
                   n_epochs=cfg.n_epochs, learning_rate=lr, gamma=cfg.gamma,
                   gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range, ent_coef=cfg.ent_coef,
                   vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
                   policy_kwargs={"net_arch": list(cfg.hidden_sizes),
                                  "activation_fn": ACTIVATIONS[cfg.activation],
                                  "log_std_init": cfg.log_std_init, "ortho_init": cfg.ortho_init},
                   seed=seed, device=cfg.device, verbose=0)

    # -- training ----------------------------------------------------------------------------
    def train_iteration(self, iteration: int) -> dict[str, float]:
        cfg = self.config
        seed = _seed(cfg.seed, iteration)
        self.model.set_random_seed(seed)
        self.train_env.seed(seed)
        self.model._last_obs = None  # start from a reset: the iteration depends on its seed only
        t0 = time.perf_counter()
        seen = [len(m.get_episode_rewards()) for m in self._monitors]
        steps = cfg.n_envs * cfg.n_steps * cfg.updates_per_iteration
        self.model.learn(total_timesteps=steps, reset_num_timesteps=False)
        returns = [r for m, n in zip(self._monitors, seen, strict=True)
                   for r in m.get_episode_rewards()[n:]]
        return {"env_steps": float(steps),
                "return/train": float(np.mean(returns)) if returns else float("nan"),
                "episodes": float(len(returns)), "time_total": time.perf_counter() - t0}

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"policy": {k: v.detach().cpu() for k, v in self.model.policy.state_dict().items()},
                 "optimizer": self.model.policy.optimizer.state_dict(),
                 "num_timesteps": int(self.model.num_timesteps)}
        if isinstance(self.train_env, VecNormalize):
            # tensors, not arrays: checkpoints load with torch.load(weights_only=True)
            state["normalization"] = {name: {"mean": torch.from_numpy(np.array(rms.mean)),
                                             "var": torch.from_numpy(np.array(rms.var)),
                                             "count": float(rms.count)}
                                      for name, rms in self._statistics(self.train_env).items()}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        ours = self.model.policy.state_dict()
        theirs = state.get("policy")
        if not isinstance(theirs, Mapping) or set(theirs) != set(ours) or any(
                tuple(theirs[k].shape) != tuple(v.shape) for k, v in ours.items()):
            raise CheckpointError(f"{self.name}: the checkpoint's policy does not match this "
                                  "config's networks (hidden_sizes, or the family's spaces)")
        self.model.policy.load_state_dict(theirs)
        self.model.policy.optimizer.load_state_dict(state["optimizer"])
        self.model.num_timesteps = int(state["num_timesteps"])
        if isinstance(self.train_env, VecNormalize):
            if "normalization" not in state:
                raise CheckpointError(f"{self.name}: normalize is on but the checkpoint holds no "
                                      "VecNormalize statistics (it was trained without them)")
            for name, rms in self._statistics(self.train_env).items():
                saved = state["normalization"][name]
                rms.mean = saved["mean"].numpy().astype(np.float64)
                rms.var = saved["var"].numpy().astype(np.float64)
                rms.count = float(saved["count"])

    @staticmethod
    def _statistics(env: VecNormalize) -> dict[str, RunningMeanStd]:
        return {"obs": env.obs_rms, "return": env.ret_rms}

    # -- evaluation --------------------------------------------------------------------------
    def evaluate_adaptation(self, tasks: Sequence[Task], budget: int, episodes: int,
                            seed: int) -> AdaptationResult:
        """Per task: measure, then (multitask, scratch) one PPO update on ``episodes``
        episodes, measure, ... ``budget`` times, on a copy of the trained policy."""
        cfg = self.config
        horizon = self.family.horizon
        env = self._normalized(DummyVecEnv([self._env_factory(
            lambda: self.family.make_env(tasks[0])) for _ in range(episodes)]))
        tuner = self._ppo(env, horizon, cfg.batch_size, cfg.finetune_learning_rate, seed)
        trained = {k: v.detach().clone() for k, v in self.model.policy.state_dict().items()}
        returns = np.zeros((budget + 1, len(tasks)))
        success = np.zeros((budget + 1, len(tasks)))
        has_success = False
        for i, task in enumerate(tasks):
            env.env_method("set_task", task)
            tuner.policy.load_state_dict(trained)
            if isinstance(env, VecNormalize):  # this task starts from the trained statistics
                env.obs_rms = copy.deepcopy(self.train_env.obs_rms)
                env.ret_rms = copy.deepcopy(self.train_env.ret_rms)
            tuner.policy.optimizer = tuner.policy.optimizer_class(  # a fresh Adam per task
                tuner.policy.parameters(), lr=cfg.finetune_learning_rate,
                **tuner.policy.optimizer_kwargs)
            for k in range(budget + 1):
                s = _seed(seed, i, k)
                returns[k, i], succ = _measure(tuner, env, horizon, s)
                if succ is not None:
                    has_success = True
                    success[k, i] = succ
                if k < budget and self.fine_tune:
                    tuner.set_random_seed(s + 1)
                    env.seed(s + 1)
                    if isinstance(env, VecNormalize):
                        env.training = self.finetune_normalization
                    tuner.learn(total_timesteps=episodes * horizon, reset_num_timesteps=True)
        env.close()
        return AdaptationResult(budgets=list(range(budget + 1)),
                                episodes=[float(k * episodes) for k in range(budget + 1)],
                                returns=returns, success=success if has_success else None,
                                budget_unit="inner steps")

    def close(self) -> None:
        self.train_env.close()


def _measure(model: PPO, env: VecEnv, horizon: int, seed: int) -> tuple[float, float | None]:
    """Mean return (and success rate) of the first episode of every sub-env, stochastic
    actions; episodes are at most ``horizon`` steps, so ``horizon`` steps end them all.
    Returns are the family's rewards, before any normalization."""
    model.set_random_seed(seed)
    env.seed(seed)
    normalized = isinstance(env, VecNormalize)
    if normalized:
        env.training = False  # measuring changes no statistics
    obs = env.reset()
    n = env.num_envs
    ret, succ = np.zeros(n), np.zeros(n, dtype=bool)
    running, any_success = np.ones(n, dtype=bool), False
    for _ in range(horizon):
        actions, _ = model.predict(obs, deterministic=False)
        obs, rewards, dones, infos = env.step(actions)
        if normalized:
            rewards = env.get_original_reward()
        ret += rewards * running
        for j, info in enumerate(infos):
            if "success" in info:
                any_success = True
                succ[j] |= bool(info["success"]) and running[j]
        running &= ~dones
        if not running.any():
            break
    return float(ret.mean()), (float(succ.mean()) if any_success else None)


class OracleBaseline(PPOBaseline):
    """``oracle``: PPO told the task (its parameters in the observation), zero-shot."""

    name = "oracle"
    task_observation = True
    fine_tune = False


class ScratchBaseline(PPOBaseline):
    """``scratch``: the fine-tuning rounds from a random initialization."""

    name = "scratch"
    finetune_normalization = True

    def train_iteration(self, iteration: int) -> dict[str, float]:
        raise ConfigError("scratch trains nothing (num_iterations is 0)")


for _cls, _cfg, _text in (
        (PPOBaseline, PPOBaselineConfig, "SB3 PPO on the train tasks, fine-tuned on each held-out "
                                         "task (baseline)"),
        (OracleBaseline, PPOBaselineConfig, "SB3 PPO that observes the task's parameters, "
                                            "zero-shot (upper bound)"),
        (ScratchBaseline, ScratchConfig, "SB3 PPO fine-tuned from a random initialization on "
                                         "each held-out task (baseline)")):
    register_agent(_cls.name, _cls, _cfg, description=_text, default_preset=f"{_cls.name}_default")

__all__ = ["OracleBaseline", "PPOBaseline", "PPOBaselineConfig", "ScratchBaseline", "ScratchConfig"]
