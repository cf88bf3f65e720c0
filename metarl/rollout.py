"""Task-batch rollouts: B tasks x E episodes stepped together, one batched policy call per step.

The unit of sampling is a **task batch**. :class:`Sampler` lays the batch out as
``N = len(tasks) * episodes_per_task`` columns (column ``j`` runs task
``j // episodes_per_task``) and steps all columns in lockstep through a
:class:`BatchEngine`. Each column runs ``episodes_per_trial`` consecutive episodes of
its task (1 for MAML; K for an RL² trial); every episode occupies exactly ``horizon``
time rows, and rows after an early termination are masked out (``mask == 0``). The
result is one :class:`EpisodeBatch` of ``(time, batch)`` tensors.

Engines: :class:`GenericBatchEngine` steps any family's ``MetaEnv`` objects
in-process (users' own families included). Families may provide a faster engine by
implementing ``make_batch_engine(num_envs)`` (the MuJoCo families step all models in
C across threads); both must satisfy the :class:`BatchEngine` protocol.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np
import torch

from metarl.errors import ConfigError
from metarl.family import MetaEnv, TaskFamily
from metarl.task import Task


class BatchEngine(Protocol):
    """N sub-environments, each with its own task, stepped together.

    ``step`` takes actions for all N and an ``active`` mask; inactive sub-envs (episode
    already over) are not stepped and return zeros. Engines never truncate: the
    sampler owns the horizon.
    """

    num_envs: int
    single_observation_space: gym.Space
    single_action_space: gym.Space

    def set_tasks(self, tasks: Sequence[Task]) -> None: ...

    def reset(self, seeds: Sequence[int], mask: np.ndarray | None = None) -> np.ndarray:
        """Reset the sub-envs where ``mask`` is True (all when None); return all observations."""
        ...

    def step(self, actions: np.ndarray, active: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Return ``(obs (N, ...), rewards (N,), terminated (N,) bool, infos)``; ``infos``
        maps a key (e.g. ``"success"``) to an array of N values."""
        ...

    def close(self) -> None: ...


class GenericBatchEngine:
    """Steps N ordinary ``MetaEnv`` objects one after another in this process."""

    info_keys = ("success",)

    def __init__(self, family: TaskFamily, num_envs: int) -> None:
        self.family = family
        self.num_envs = int(num_envs)
        self.envs: list[MetaEnv] = [family.make_env() for _ in range(self.num_envs)]
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self._obs = np.zeros((self.num_envs, *self.single_observation_space.shape),
                             dtype=self.single_observation_space.dtype)

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        if len(tasks) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} tasks, got {len(tasks)}")
        for env, task in zip(self.envs, tasks, strict=True):
            if env.get_task() != task:
                env.set_task(task)

    def reset(self, seeds: Sequence[int], mask: np.ndarray | None = None) -> np.ndarray:
        for i, env in enumerate(self.envs):
            if mask is None or mask[i]:
                self._obs[i], _ = env.reset(seed=int(seeds[i]))
        return self._obs.copy()

    def step(self, actions: np.ndarray, active: np.ndarray):
        rewards = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, dtype=bool)
        infos = {key: np.zeros(self.num_envs) for key in self.info_keys}
        for i, env in enumerate(self.envs):
            if not active[i]:
                continue
            obs, reward, term, _trunc, info = env.step(actions[i])
            self._obs[i], rewards[i], terminated[i] = obs, reward, term
            for key in self.info_keys:
                if key in info:
                    infos[key][i] = float(info[key])
        return self._obs.copy(), rewards, terminated, infos

    def close(self) -> None:
        for env in self.envs:
            env.close()


@dataclass
class StepContext:
    """What a policy sees besides the observation at one time step (all length N)."""

    t: int                       # row index in the batch (0 .. T-1)
    task_index: torch.Tensor     # (N,) long: which task each column runs (index into the whole
                                 # task batch: chunk-local index + task_offset, so per-task
                                 # parameters are indexed the same way in every chunk)
    prev_action: torch.Tensor    # (N, *action_shape); zeros at the start of a trial
    prev_reward: torch.Tensor    # (N,); zeros at the start of a trial
    episode_start: torch.Tensor  # (N,) bool: first step of an episode
    trial_start: bool            # first step of the whole trial (reset recurrent state)
    active: torch.Tensor         # (N,) bool: the column's episode is still running
    generator: torch.Generator   # a seeded generator for anything beyond ``noise``
    #: (N, D) uniform(0, 1) draws for this step, D = action size (1 for Discrete). Each task's
    #: columns draw from that task's own stream, so splitting a batch into chunks (Ray actors)
    #: gives the same actions: sample by inverse CDF, e.g. ``mean + std * ndtri(noise)``.
    noise: torch.Tensor | None = None


#: ``policy(obs (N, ...), ctx) -> (actions (N, ...), log_probs (N,))``.
Policy = Callable[[torch.Tensor, StepContext], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class EpisodeBatch:
    """Rollouts of a task batch as ``(time, batch)`` tensors on the CPU.

    ``T = episodes_per_trial * horizon`` rows; ``N = len(tasks) * episodes_per_task``
    columns. Rows after an episode terminated early are padding: ``mask == 0`` there.
    """

    obs: torch.Tensor            # (T, N, *obs_shape) float32
    actions: torch.Tensor        # (T, N, *act_shape) float32, or (T, N) int64 for Discrete
    rewards: torch.Tensor        # (T, N) float32 (0 where masked)
    terminated: torch.Tensor     # (T, N) bool: episode ended by the env at this step
    dones: torch.Tensor          # (T, N) bool: episode ended at this step (terminated or horizon)
    mask: torch.Tensor           # (T, N) float32: 1 for real steps
    log_probs: torch.Tensor      # (T, N) float32: log-prob under the sampling policy
    task_index: torch.Tensor     # (N,) int64
    tasks: list[Task]
    horizon: int
    episodes_per_trial: int = 1
    infos: dict[str, torch.Tensor] = field(default_factory=dict)  # key -> (T, N)

    #: The ``(T, N, ...)`` tensor fields: what slicing, moving or joining a batch touches.
    TIME_BATCH_FIELDS: ClassVar[tuple[str, ...]] = (
        "obs", "actions", "rewards", "terminated", "dones", "mask", "log_probs")

    @property
    def num_steps(self) -> int:
        """Real environment steps in the batch (mask sum)."""
        return int(self.mask.sum().item())

    def episode_returns(self) -> torch.Tensor:
        """Undiscounted return of each episode: ``(episodes_per_trial, N)``."""
        r = self.rewards.reshape(self.episodes_per_trial, self.horizon, -1)
        return r.sum(dim=1)

    def episode_success(self) -> torch.Tensor | None:
        """Whether each episode reached success at any step: ``(episodes_per_trial, N)``."""
        if "success" not in self.infos:
            return None
        s = self.infos["success"].reshape(self.episodes_per_trial, self.horizon, -1)
        return s.amax(dim=1)

    def select_tasks(self, task_ids: Sequence[int]) -> EpisodeBatch:
        """The columns of some tasks (in the given order), as a new batch."""
        cols = torch.cat([torch.nonzero(self.task_index == i).flatten() for i in task_ids])
        remap = {old: new for new, old in enumerate(task_ids)}
        columns = {name: getattr(self, name)[:, cols] for name in self.TIME_BATCH_FIELDS}
        return EpisodeBatch(
            **columns, task_index=torch.tensor([remap[int(i)] for i in self.task_index[cols]]),
            tasks=[self.tasks[i] for i in task_ids], horizon=self.horizon,
            episodes_per_trial=self.episodes_per_trial,
            infos={k: v[:, cols] for k, v in self.infos.items()},
        )

    def to(self, device: torch.device | str) -> EpisodeBatch:
        moved = {name: getattr(self, name).to(device)
                 for name in (*self.TIME_BATCH_FIELDS, "task_index")}
        return EpisodeBatch(**moved, tasks=self.tasks, horizon=self.horizon,
                            episodes_per_trial=self.episodes_per_trial,
                            infos={k: v.to(device) for k, v in self.infos.items()})


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block.

    During rollouts the policy's forward pass is small (a batch of a few hundred rows),
    while the engine's simulator threads need the cores: torch's spinning OpenMP workers
    would compete with them (measured here: 5x fewer env-steps/s with 2 torch threads).
    """
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _task_streams(seed: int, task_offset: int, n_tasks: int, per_task: int, episodes: int,
                  steps: int, noise_dim: int) -> tuple[np.ndarray, torch.Tensor]:
    """Per-task reset seeds ``(episodes, N)`` and uniform action noise ``(T, N, D)``."""
    seeds, noise = [], []
    for i in range(n_tasks):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(task_offset + i,)))
        seeds.append(rng.integers(0, 2**31 - 1, size=(episodes, per_task)))
        noise.append(rng.random((steps, per_task, noise_dim), dtype=np.float32))
    return (np.concatenate(seeds, axis=1),
            torch.from_numpy(np.concatenate(noise, axis=1)))


def make_engine(family: TaskFamily, num_envs: int, engine: str = "auto") -> BatchEngine:
    """``"auto"``: the family's fast engine when it has one, else the generic one."""
    if engine not in ("auto", "generic", "fast"):
        raise ConfigError(f"engine must be 'auto', 'generic' or 'fast', got {engine!r}")
    fast = getattr(family, "make_batch_engine", None)
    if engine == "fast" and fast is None:
        raise ConfigError(f"{family.id} has no fast engine; use engine='generic'")
    if engine in ("auto", "fast") and fast is not None:
        return fast(num_envs)
    return GenericBatchEngine(family, num_envs)


class Sampler:
    """Samples task batches for one family, reusing its engine between calls."""

    def __init__(self, family: TaskFamily, engine: str = "auto") -> None:
        self.family = family
        self.engine_kind = engine
        self._engine: BatchEngine | None = None

    @property
    def engine(self) -> BatchEngine | None:
        """The engine of the last :meth:`sample` call (None before the first)."""
        return self._engine

    def _engine_for(self, num_envs: int) -> BatchEngine:
        if self._engine is None or self._engine.num_envs != num_envs:
            if self._engine is not None:
                self._engine.close()
            self._engine = make_engine(self.family, num_envs, self.engine_kind)
        return self._engine

    def sample(
        self,
        tasks: Sequence[Task],
        policy: Policy,
        episodes_per_task: int = 1,
        episodes_per_trial: int = 1,
        horizon: int | None = None,
        seed: int = 0,
        task_offset: int = 0,
    ) -> EpisodeBatch:
        """Roll out ``policy`` on every task; see the module docstring for the layout.

        Randomness is drawn per task: task ``i`` of this call uses the stream
        ``SeedSequence(seed, spawn_key=(task_offset + i,))`` for its reset seeds and its
        action noise. A batch split into chunks (``task_offset`` = the chunk's first index)
        therefore reproduces the unsplit batch exactly.
        """
        with torch.no_grad(), single_torch_thread():
            return self._rollout([self.family.validate(t) for t in tasks], policy,
                                 int(episodes_per_task), int(episodes_per_trial),
                                 int(horizon or self.family.horizon), seed, task_offset)

    def _rollout(self, tasks: list[Task], policy: Policy, per_task: int, episodes_per_trial: int,
                 horizon: int, seed: int, task_offset: int) -> EpisodeBatch:
        n_tasks = len(tasks)
        n = n_tasks * per_task
        engine = self._engine_for(n)
        engine.set_tasks([tasks[j // per_task] for j in range(n)])
        task_index = torch.arange(n_tasks).repeat_interleave(per_task)
        policy_task_index = task_index + task_offset

        obs_space, act_space = engine.single_observation_space, engine.single_action_space
        discrete = isinstance(act_space, gym.spaces.Discrete)
        T = episodes_per_trial * horizon
        noise_dim = 1 if discrete else int(np.prod(act_space.shape))
        reset_seeds, noise = _task_streams(seed, task_offset, n_tasks, per_task,
                                           episodes_per_trial, T, noise_dim)
        generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence(seed, spawn_key=(2**31 + task_offset,)).generate_state(1)[0]))
        obs_buf = torch.zeros((T, n, *obs_space.shape), dtype=torch.float32)
        act_buf = (torch.zeros((T, n), dtype=torch.int64) if discrete
                   else torch.zeros((T, n, *act_space.shape), dtype=torch.float32))
        rew_buf = torch.zeros((T, n))
        term_buf = torch.zeros((T, n), dtype=torch.bool)
        done_buf = torch.zeros((T, n), dtype=torch.bool)
        mask_buf = torch.zeros((T, n))
        logp_buf = torch.zeros((T, n))
        info_bufs: dict[str, torch.Tensor] = {}

        prev_action = torch.zeros_like(act_buf[0])
        prev_reward = torch.zeros(n)
        for episode in range(episodes_per_trial):
            obs = torch.as_tensor(engine.reset(reset_seeds[episode]), dtype=torch.float32)
            active = np.ones(n, dtype=bool)
            for step in range(horizon):
                t = episode * horizon + step
                active_t = torch.from_numpy(active.copy())
                ctx = StepContext(t=t, task_index=policy_task_index, prev_action=prev_action,
                                  prev_reward=prev_reward,
                                  episode_start=torch.full((n,), step == 0),
                                  trial_start=t == 0, active=active_t, generator=generator,
                                  noise=noise[t])
                actions, log_probs = policy(obs, ctx)
                actions_np = actions.detach().cpu().numpy()
                next_obs, rewards, terminated, infos = engine.step(actions_np, active)
                mask_t = active_t.float()
                obs_buf[t] = obs
                act_buf[t] = actions.detach().cpu().to(act_buf.dtype)
                rew_buf[t] = torch.as_tensor(rewards, dtype=torch.float32) * mask_t
                term_buf[t] = torch.from_numpy(terminated & active)
                last = step == horizon - 1
                done_buf[t] = torch.from_numpy((terminated | last) & active)
                mask_buf[t] = mask_t
                logp_buf[t] = log_probs.detach().cpu().float() * mask_t
                for key, values in infos.items():
                    buf = info_bufs.setdefault(key, torch.zeros((T, n)))
                    buf[t] = torch.as_tensor(values, dtype=torch.float32) * mask_t
                prev_action = torch.where(
                    active_t.view(-1, *([1] * (act_buf.dim() - 2))), act_buf[t], prev_action)
                prev_reward = torch.where(active_t, rew_buf[t], prev_reward)
                active = active & ~terminated
                obs = torch.as_tensor(next_obs, dtype=torch.float32)
        return EpisodeBatch(obs=obs_buf, actions=act_buf, rewards=rew_buf, terminated=term_buf,
                            dones=done_buf, mask=mask_buf, log_probs=logp_buf,
                            task_index=task_index, tasks=list(tasks), horizon=horizon,
                            episodes_per_trial=episodes_per_trial, infos=info_bufs)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def random_policy(action_space: gym.Space) -> Policy:
    """A policy that samples uniformly from ``action_space`` (bounded Box or Discrete)."""

    def act(obs: torch.Tensor, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        n = obs.shape[0]
        if isinstance(action_space, gym.spaces.Discrete):
            u = ctx.noise[:, 0] if ctx.noise is not None else torch.rand(n, generator=ctx.generator)
            a = torch.clamp((u * int(action_space.n)).long(), max=int(action_space.n) - 1)
            return a, torch.full((n,), -float(np.log(action_space.n)))
        low = torch.as_tensor(action_space.low, dtype=torch.float32)
        high = torch.as_tensor(action_space.high, dtype=torch.float32)
        if ctx.noise is not None:
            u = ctx.noise.reshape(n, *action_space.shape)
        else:
            u = torch.rand((n, *action_space.shape), generator=ctx.generator)
        logp = -torch.log(high - low).sum().expand(n)
        return low + u * (high - low), logp

    return act


__all__: list[Any] = ["BatchEngine", "EpisodeBatch", "GenericBatchEngine", "Policy", "Sampler",
                      "StepContext", "make_engine", "random_policy"]
