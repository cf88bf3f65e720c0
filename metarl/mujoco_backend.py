"""Where the MuJoCo sub-envs of a batch live and how they are stepped: two backends, one
interface.

* ``"batch"`` — MuJoCo 4's ``mujoco.batch.Batch``: the sub-envs' states are rows of one
  array, stepped in C on MuJoCo's own thread pool with the GIL released; no Python per
  sub-env.
* ``"threads"`` — any ``mujoco`` 3.x (Meta-World pins 3.3): one ``MjData`` per sub-env
  and ``mj_step(model, data, frame_skip)`` over them on a persistent thread pool. The
  bindings release the GIL for the duration of each call, so the threads step in
  parallel; only the call itself and a control copy per sub-env hold it. Its fields are
  gathered into ``(N, ...)`` arrays after every call.

Both give exactly the trajectories of a loop of ``mj_step`` over one ``MjData`` per
sub-env (the tests check each against that loop and against the single env).
:func:`default_backend` picks ``"batch"`` where the installed ``mujoco`` has it;
``METARL_MUJOCO_BACKEND=threads`` forces the other one (the tests run both on MuJoCo 4).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np

try:  # MuJoCo >= 4.0
    from mujoco.batch import Batch
except ImportError:  # MuJoCo 3.x
    Batch = None

BACKENDS = ("batch", "threads")


def available_backends() -> tuple[str, ...]:
    """The backends the installed ``mujoco`` supports."""
    return BACKENDS if Batch is not None else ("threads",)


def default_backend() -> str:
    """``METARL_MUJOCO_BACKEND`` when set, else ``"batch"`` where available."""
    name = os.environ.get("METARL_MUJOCO_BACKEND", "").strip()
    if name:
        if name not in available_backends():
            raise RuntimeError(
                f"METARL_MUJOCO_BACKEND={name!r}, but mujoco {mujoco.__version__} supports "
                f"{', '.join(available_backends())}; unset it or pick one of those")
        return name
    return available_backends()[0]


class BatchBackend:
    """N simulations on one ``mujoco.batch.Batch``: fields are live views of its rows."""

    name = "batch"

    def __init__(self, model: mujoco.MjModel, num_envs: int, num_threads: int) -> None:
        # Batch's nthread counts the calling thread; 0 would mean "all CPUs".
        self._batch = Batch(model, num_envs, nthread=max(1, num_threads))
        self._qpos, self._qvel = self._batch.bind("qpos"), self._batch.bind("qvel")

    def bind(self, field: str) -> np.ndarray:
        return self._batch.bind(field)

    def set_joint_state(self, i: int, qpos: np.ndarray | None, qvel: np.ndarray | None) -> None:
        if qpos is not None:
            self._qpos[i] = qpos
        if qvel is not None:
            self._qvel[i] = qvel

    def warning_counts(self, idx: np.ndarray) -> np.ndarray:
        """``(len(idx), nwarning)`` warning counters."""
        return self._batch.warning[idx, :, 1]

    def set_warning_counts(self, idx: np.ndarray, value: int) -> None:
        self._batch.warning[idx, :, 1] = value

    def set_models(self, models: Sequence[mujoco.MjModel] | None) -> None:
        self._batch.set_models(None if models is None else list(models))

    def reset(self, idx: np.ndarray) -> None:
        """Model defaults, no forward (the caller writes the state, then forwards)."""
        self._batch.reset(idx, stage=mujoco.mjtStage.mjSTAGE_NONE.value)

    def forward(self, idx: np.ndarray) -> None:
        self._batch.forward(idx)

    def step(self, idx: np.ndarray | None, nstep: int) -> None:
        self._batch.step(idx, nstep=nstep)

    def get_data(self, i: int, model: mujoco.MjModel) -> mujoco.MjData:
        """A forwarded copy of simulation ``i`` (the batch keeps only its state)."""
        data = self._batch.get_data(i)
        mujoco.mj_forward(model, data)
        return data

    def close(self) -> None:
        self._batch = None


class ThreadBackend:
    """N ``MjData`` stepped by ``mj_step`` on a thread pool; fields gathered after each call."""

    name = "threads"

    def __init__(self, model: mujoco.MjModel, num_envs: int, num_threads: int,
                 fields: Sequence[str] = ()) -> None:
        n = int(num_envs)
        self._base = model
        self._models = [model] * n
        self._datas = [mujoco.MjData(model) for _ in range(n)]
        self._ctrl = np.zeros((n, model.nu))
        self._ctrl_views = [d.ctrl for d in self._datas]
        self._warnings = [d.warning.number for d in self._datas]  # live (nwarning,) views
        self._fields: dict[str, np.ndarray] = {}
        self._views: dict[str, list[np.ndarray]] = {}
        for field in ("qpos", "qvel", *fields):
            self.bind(field)
        threads = max(1, min(int(num_threads), n))
        # The calling thread steps the first chunk itself, the pool the others.
        self._pool = ThreadPoolExecutor(threads - 1, "metarl-mujoco") if threads > 1 else None
        bounds = np.linspace(0, n, threads + 1).astype(int)
        self._chunks = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def bind(self, field: str) -> np.ndarray:
        if field == "ctrl":
            return self._ctrl
        if field not in self._fields:
            views = [getattr(d, field) for d in self._datas]
            self._views[field] = views
            self._fields[field] = np.stack(views)
        return self._fields[field]

    def _gather(self, idx: np.ndarray | None) -> None:
        for field, out in self._fields.items():
            views = self._views[field]
            if idx is None:
                np.stack(views, out=out)
            elif len(idx):
                out[idx] = np.stack([views[i] for i in idx])

    def set_joint_state(self, i: int, qpos: np.ndarray | None, qvel: np.ndarray | None) -> None:
        d = self._datas[i]
        if qpos is not None:
            d.qpos[:] = qpos
            self._fields["qpos"][i] = d.qpos
        if qvel is not None:
            d.qvel[:] = qvel
            self._fields["qvel"][i] = d.qvel

    def warning_counts(self, idx: np.ndarray) -> np.ndarray:
        return np.stack([self._warnings[i] for i in idx]) if len(idx) else \
            np.zeros((0, mujoco.mjtWarning.mjNWARNING.value), dtype=np.int64)

    def set_warning_counts(self, idx: np.ndarray, value: int) -> None:
        for i in np.atleast_1d(idx):
            self._warnings[i][:] = value

    def set_models(self, models: Sequence[mujoco.MjModel] | None) -> None:
        self._models = [self._base] * len(self._datas) if models is None else list(models)

    def reset(self, idx: np.ndarray) -> None:
        for i in idx:
            mujoco.mj_resetData(self._models[i], self._datas[i])
        self._gather(np.asarray(idx))

    def forward(self, idx: np.ndarray) -> None:
        for i in idx:
            mujoco.mj_forward(self._models[i], self._datas[i])
        self._gather(np.asarray(idx))

    def _step_chunk(self, idx: np.ndarray, nstep: int) -> None:
        models, datas, ctrl, views = self._models, self._datas, self._ctrl, self._ctrl_views
        for i in idx:
            views[i][:] = ctrl[i]
            mujoco.mj_step(models[i], datas[i], nstep)  # releases the GIL

    def step(self, idx: np.ndarray | None, nstep: int) -> None:
        if self._pool is None:
            self._step_chunk(np.arange(len(self._datas)) if idx is None else idx, nstep)
        else:
            chunks = self._chunks if idx is None else np.array_split(idx, len(self._chunks))
            futures = [self._pool.submit(self._step_chunk, c, nstep) for c in chunks[1:]]
            self._step_chunk(chunks[0], nstep)
            for future in futures:
                future.result()
        self._gather(idx)

    def get_data(self, i: int, model: mujoco.MjModel) -> mujoco.MjData:
        """A copy of sub-env ``i``'s ``MjData``, derived fields included. Not forwarded
        again: on MuJoCo 3.x an extra ``mj_forward`` changes the next steps in the last
        bits, and the copy would no longer continue exactly as the sub-env does."""
        return copy.copy(self._datas[i])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def make_backend(name: str, model: mujoco.MjModel, num_envs: int, num_threads: int,
                 fields: Sequence[str]) -> BatchBackend | ThreadBackend:
    """A backend by name (see :func:`available_backends`)."""
    if name not in available_backends():
        raise ValueError(f"MuJoCo backend {name!r} is not available with mujoco "
                         f"{mujoco.__version__}; available: {', '.join(available_backends())}")
    if name == "batch":
        return BatchBackend(model, num_envs, num_threads)
    return ThreadBackend(model, num_envs, num_threads, fields)


__all__ = ["BACKENDS", "BatchBackend", "ThreadBackend", "available_backends", "default_backend",
           "make_backend"]
