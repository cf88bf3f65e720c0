"""Sampling on Ray: the same task-batch rollouts, spread over actors on one or many machines.

:class:`RaySampler` has the interface of :class:`metarl.rollout.Sampler`. The task batch is
cut into contiguous chunks, one per actor; each actor owns a local ``Sampler`` (with the
family's fast engine) and runs whole rollouts per call. The policy (weights and per-task
adapted parameters included) is shipped once per call with ``ray.put``. Because the
sampler draws its randomness per task (see ``Sampler.sample``), the gathered batch is
identical to a local one with the same seed, whichever actor finishes first.

A worker that dies mid-call is replaced and its chunk sampled again (same seeds, so the
same result); the call goes on and says so in the log. Ray stays optional: nothing here
is imported unless a sampler with workers or a cluster address is asked for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import torch

from metarl.errors import ConfigError, MetaRLError
from metarl.family import TaskFamily
from metarl.registry import import_family_modules, make_family
from metarl.rollout import EpisodeBatch, Policy, Sampler
from metarl.task import Task

log = logging.getLogger(__name__)


class SamplingError(MetaRLError, RuntimeError):
    """Sampling could not finish: the cluster is gone or workers keep dying."""


def _require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SamplingError('Ray is not installed; install the extra: pip install "metarl[ray]"'
                            ) from None
    return ray


class _Worker:
    """One Ray actor: a local sampler for one family (the family rebuilt from its id)."""

    def __init__(self, family_id: str, family_kwargs: dict[str, Any], imports: list[str],
                 engine: str, threads: int) -> None:
        torch.set_num_threads(threads)
        os.environ["METARL_ENGINE_THREADS"] = str(threads)
        import_family_modules(imports)
        self.sampler = Sampler(make_family(family_id, **family_kwargs), engine=engine)

    def sample(self, tasks: list[dict[str, Any]], policy: Policy, kwargs: dict[str, Any]
               ) -> EpisodeBatch:
        return self.sampler.sample([Task.from_dict(t) for t in tasks], policy, **kwargs)

    def pid(self) -> int:
        return os.getpid()


def _chunks(n_tasks: int, n_workers: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges, as even as possible, none empty."""
    n_workers = max(1, min(n_workers, n_tasks))
    base, extra = divmod(n_tasks, n_workers)
    bounds, start = [], 0
    for w in range(n_workers):
        stop = start + base + (1 if w < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def concat_batches(parts: Sequence[EpisodeBatch]) -> EpisodeBatch:
    """Join chunk batches column-wise, in task order; task indices become global."""
    offsets, total = [], 0
    for part in parts:
        offsets.append(total)
        total += len(part.tasks)
    cat = {name: torch.cat([getattr(p, name) for p in parts], dim=1)
           for name in EpisodeBatch.TIME_BATCH_FIELDS}
    task_index = torch.cat([p.task_index + off for p, off in zip(parts, offsets, strict=True)])
    keys = set().union(*(p.infos for p in parts))
    infos = {k: torch.cat([p.infos.get(k, torch.zeros_like(p.rewards)) for p in parts], dim=1)
             for k in sorted(keys)}
    return EpisodeBatch(**cat, task_index=task_index, tasks=[t for p in parts for t in p.tasks],
                        horizon=parts[0].horizon, episodes_per_trial=parts[0].episodes_per_trial,
                        infos=infos)


class RaySampler:
    """Task-batch sampling on ``workers`` Ray actors (see the module docstring).

    Args:
        family: the family to sample (rebuilt in each actor from its registered id).
        workers: number of actors; on a local cluster, one CPU each.
        address: an existing cluster to join (``ray start --head`` prints it); ``None``
            starts a local one.
        family_kwargs: keyword overrides the family was made with.
        imports: modules (or .py paths) the actors import first, for users' own families.
        engine: ``"auto"``, ``"generic"`` or ``"fast"``, as for :class:`Sampler`.
        max_retries: how often one chunk may be re-sampled after its worker died.
    """

    def __init__(self, family: TaskFamily, workers: int = 2, address: str | None = None,
                 family_kwargs: dict[str, Any] | None = None, imports: Sequence[str] = (),
                 engine: str = "auto", threads_per_worker: int = 1, max_retries: int = 3,
                 ready_timeout_s: float = 120.0) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.ray = _require_ray()
        self.family = family
        self.workers = int(workers)
        self.max_retries = int(max_retries)
        self._actor_args = (family.id, dict(family_kwargs or {}), list(imports), engine,
                            int(threads_per_worker))
        self._owns_cluster = False
        if not self.ray.is_initialized():
            try:
                if address:
                    self.ray.init(address=address, log_to_driver=False)
                else:
                    # A local cluster stays on the loopback interface.
                    self.ray.init(num_cpus=self.workers * int(threads_per_worker),
                                  include_dashboard=False, log_to_driver=False,
                                  object_store_memory=1 << 30, _node_ip_address="127.0.0.1")
                    self._owns_cluster = True
            except Exception as exc:  # noqa: BLE001 - any failure to connect is the same to users
                where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
                raise SamplingError(f"could not start or join {where}: {exc}. Check the address "
                                    "(`ray status` on the head node) or run without --ray-address"
                                    ) from exc
        self._remote_cls = self.ray.remote(num_cpus=int(threads_per_worker))(_Worker)
        self.actors = [self._new_actor() for _ in range(self.workers)]
        self.restarts = 0
        # Fail loudly instead of hanging when the cluster cannot place the actors.
        try:
            self.ray.get([a.pid.remote() for a in self.actors], timeout=ready_timeout_s)
        except self.ray.exceptions.GetTimeoutError:
            self.close()
            raise SamplingError(
                f"{self.workers} sampling actors ({threads_per_worker} CPU each) were not placed "
                f"within {ready_timeout_s:.0f} s: the Ray cluster has too few free CPUs. Use fewer "
                "--workers or add nodes (`ray status` shows free resources)") from None

    def _new_actor(self) -> Any:
        return self._remote_cls.remote(*self._actor_args)

    def sample(self, tasks: Sequence[Task], policy: Policy, episodes_per_task: int = 1,
               episodes_per_trial: int = 1, horizon: int | None = None, seed: int = 0
               ) -> EpisodeBatch:
        """Same contract and result as :meth:`metarl.rollout.Sampler.sample`."""
        ray = self.ray
        tasks = [self.family.validate(t) for t in tasks]
        policy_ref = ray.put(policy)
        common = {"episodes_per_task": episodes_per_task, "episodes_per_trial": episodes_per_trial,
                  "horizon": horizon, "seed": seed}
        bounds = _chunks(len(tasks), len(self.actors))
        payloads = [[t.to_dict() for t in tasks[a:b]] for a, b in bounds]

        def submit(worker: int) -> Any:
            a, _ = bounds[worker]
            return self.actors[worker].sample.remote(payloads[worker], policy_ref,
                                                     {**common, "task_offset": a})

        futures = [submit(w) for w in range(len(bounds))]
        parts: list[EpisodeBatch | None] = [None] * len(bounds)
        retries = [0] * len(bounds)
        pending = dict(enumerate(futures))
        while pending:
            worker, future = next(iter(pending.items()))
            try:
                parts[worker] = ray.get(future)
                del pending[worker]
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ActorUnavailableError) as exc:
                retries[worker] += 1
                if retries[worker] > self.max_retries:
                    raise SamplingError(
                        f"sampling worker {worker} died {retries[worker]} times in one call "
                        f"(last: {type(exc).__name__}); giving up. Is the cluster still up?"
                    ) from exc
                log.warning("sampling worker %d died (%s); replacing it and re-sampling its "
                            "%d tasks", worker, type(exc).__name__, len(payloads[worker]))
                self.restarts += 1
                self.actors[worker] = self._new_actor()
                pending[worker] = submit(worker)
            except ray.exceptions.RaySystemError as exc:
                raise SamplingError(f"the Ray cluster failed during sampling: {exc}") from exc
        return concat_batches([p for p in parts if p is not None])

    def worker_pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self._owns_cluster:
            self.ray.shutdown()
            self._owns_cluster = False


def make_sampler(family: TaskFamily, workers: int = 0, ray_address: str | None = None,
                 engine: str = "auto", **kwargs: Any) -> Sampler | RaySampler:
    """The local :class:`Sampler` when ``workers == 0`` and no address is given (Ray is then
    never imported), else a :class:`RaySampler`."""
    if workers == 0 and not ray_address:
        return Sampler(family, engine=engine)
    return RaySampler(family, workers=max(workers, 1), address=ray_address, engine=engine, **kwargs)
