"""MuJoCo task families on the ``mujoco`` bindings: one definition, two speeds.

A :class:`MujocoFamily` writes its observation, reward and termination **once**, as
functions of a batch of simulator states (:class:`SimBatch`: ``(N, ...)`` numpy arrays
of ``qpos``, ``qvel``, ``cfrc_ext``, ...). Both runtimes below call exactly those
functions on exactly the same stepping code (:class:`MujocoSim`):

* :class:`MujocoEnv`, the single ``gymnasium.Env`` (a simulator batch of one, stepped
  on the calling thread);
* :class:`MujocoBatchEngine`, the fast path behind ``family.make_batch_engine(n)``,
  which steps all N sub-envs in C across threads with the GIL released.

Two stepping backends, chosen per family (``MujocoFamily.stepping``), both closed loop
(one call per env step, ``frame_skip`` physics steps each):

* ``"rollout"``: ``mujoco.rollout.Rollout`` with its persistent C thread pool. The
  full physics state of every sub-env lives in one ``(N, nstate)`` array; each call
  copies states into per-thread scratch ``MjData``, steps, and copies them out, so
  there is no Python per sub-env and the scratch data stay in cache. It returns only
  the state, so it serves families whose functions read ``qpos``/``qvel`` only
  (HalfCheetah, Hopper, Walker2d). The solver warm start restarts from zero at each
  env step (the single env does the same, so both stay identical).
* ``"threads"``: one ``MjData`` per sub-env, ``mj_step`` (+ ``mj_rnePostConstraint``
  when ``cfrc_ext`` is read) on a persistent ``ThreadPoolExecutor`` over chunks of
  sub-envs; every ``MjData`` field is available (Ant's contact forces, Humanoid's
  ``cinert``/``cvel``/centre of mass). A few microseconds of Python per sub-env and
  step, next to hundreds of microseconds of physics for those bodies.

Measured on this 2-core machine, physics only, N = 800, one thread: HalfCheetah raw
``mj_step`` loop on one MjData ~28.5k env-steps/s, 800 MjData stepped from Python
~25.8k (cache misses + call overhead), ``mujoco.rollout`` ~30.3k; Ant 4.3k / 4.4k / 4.7k.
Hence rollout where the state suffices and the thread pool elsewhere
(``benchmarks/sampler_throughput.py`` reports both, "physics_only_stepping").

Robustness: NaN actions become 0 and out-of-range actions are clipped to the
actuator range (with a warning for NaN); a sub-env whose simulation diverges
(MuJoCo's bad-qacc/qvel/qpos check, or a non-finite state) is reported with a
warning, reset, marked ``terminated`` and flagged ``infos["unstable"] = 1``. MuJoCo
resets a diverged ``MjData`` itself; the threads backend sees that as its warning
counters (pre-set to a sentinel, which also keeps MuJoCo from printing and writing
``MUJOCO_LOG.TXT``) being cleared, the rollout backend as the sub-env's clock not
advancing by ``frame_skip`` substeps (MuJoCo's message goes to a scoped handler).
"""

from __future__ import annotations

import copy
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import mujoco.rollout
import numpy as np

from metarl.family import MetaEnv, TaskFamily, TaskLike
from metarl.task import Task

ASSETS = Path(__file__).resolve().parent.parent / "envs" / "assets"

# Warning counters start at this value; mj_resetData (called by MuJoCo on a diverged
# state) zeroes them, and mj_warning does not print or log while a counter is nonzero.
_WARN_SENTINEL = 1 << 30
_N_WARNINGS = len(mujoco.MjData(mujoco.MjModel.from_xml_string("<mujoco/>")).warning)
_BADQACC = int(mujoco.mjtWarning.mjWARN_BADQACC)
_FULLPHYSICS = mujoco.mjtState.mjSTATE_FULLPHYSICS
# mujoco.rollout zeroes warning counters itself, so during a rollout call MuJoCo's
# warnings are routed to a Python handler instead of the console and MUJOCO_LOG.TXT;
# the handler is process-wide, so calls that swap it are serialized.
_HANDLER_LOCK = threading.Lock()


def assets_dir() -> Path:
    """Folder of the MJCF files shipped with metarl (``metarl.envs/assets``)."""
    try:
        import metarl.envs as envs_pkg

        return Path(envs_pkg.__file__).resolve().parent / "assets"
    except ImportError:  # pragma: no cover - only without the envs package
        return ASSETS


_MODEL_CACHE: dict[str, mujoco.MjModel] = {}


def load_model(name: str) -> mujoco.MjModel:
    """Compile ``assets/<name>`` once per process; callers must not mutate the result
    (dynamics families copy it first)."""
    path = Path(name) if os.path.isabs(name) else assets_dir() / name
    key = str(path)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = mujoco.MjModel.from_xml_path(key)
    return _MODEL_CACHE[key]


def default_num_threads() -> int:
    """Simulator threads: ``METARL_ENGINE_THREADS`` when set (a Ray sampling worker owns
    one core, not the machine), else the cores this process may run on."""
    if os.environ.get("METARL_ENGINE_THREADS"):
        return max(1, int(os.environ["METARL_ENGINE_THREADS"]))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


class SimBatch:
    """Simulator quantities of N sub-envs: ``batch.qpos`` is ``(N, nq)``,
    ``batch.cfrc_ext`` is ``(N, nbody, 6)``, ... (the ``MjData`` field names)."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, np.ndarray]) -> None:
        self.fields = fields

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(
                f"SimBatch has no field {name!r}; add it to the family's sim_fields "
                f"(has {sorted(self.fields)})") from None

    def copy(self) -> SimBatch:
        return SimBatch({k: v.copy() for k, v in self.fields.items()})

    def take(self, idx: np.ndarray) -> SimBatch:
        return SimBatch({k: v[idx] for k, v in self.fields.items()})


class MujocoFamily(TaskFamily):
    """Base class of the MuJoCo families: a model file, a frame skip, reset noise, and
    the three vectorized functions :meth:`observe`, :meth:`reward`, :meth:`terminated`.

    ``params`` passed to them is :meth:`task_arrays` of the sub-envs' tasks: each task
    parameter stacked over the batch (``params["goal_velocity"]`` is ``(N,)``).
    """

    #: MJCF file under ``envs/assets``.
    model_file: ClassVar[str] = ""
    #: physics steps per env step.
    frame_skip: int = 5
    #: ``MjData`` fields the vectorized functions read (gathered after every step).
    sim_fields: tuple[str, ...] = ("qpos", "qvel")
    #: call ``mj_rnePostConstraint`` after stepping (for ``cfrc_ext``/``cacc``/``cfrc_int``).
    needs_rne_post: bool = False
    #: reset: ``qpos0 + U(-s, s)``; ``qvel = s' · N(0, 1)`` (or ``U(-s', s')``) as in Gymnasium.
    reset_qpos_noise: float = 0.1
    reset_qvel_noise: float = 0.1
    reset_qvel_normal: bool = True
    #: how N sub-envs are stepped: ``"rollout"`` (mujoco.rollout, state in/out in C),
    #: ``"threads"`` (mj_step per MjData on a thread pool) or ``"auto"``: rollout when
    #: the functions read only ``qpos``/``qvel``, threads when they need other fields.
    stepping: ClassVar[str] = "auto"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_model = load_model(self.model_file)
        self._dt = float(self.base_model.opt.timestep) * self.frame_skip
        self._obs_dim: int | None = None

    # ---- the three vectorized functions (override) -------------------------------------
    def observe(self, sim: SimBatch, params: dict[str, np.ndarray]) -> np.ndarray:
        """``(N, obs_dim)`` observations."""
        raise NotImplementedError

    def reward(self, prev: SimBatch, sim: SimBatch, action: np.ndarray,
               params: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(N,)`` rewards for the transition ``prev -> sim`` under ``action`` (clipped),
        and a dict of ``(N,)`` reward terms for ``infos``."""
        raise NotImplementedError

    def terminated(self, sim: SimBatch, params: dict[str, np.ndarray]) -> np.ndarray:
        """``(N,)`` bool: the episode ends in this state (the body fell)."""
        return np.zeros(len(sim.qpos), dtype=bool)

    # ---- helpers ---------------------------------------------------------------------
    @property
    def dt(self) -> float:
        """Seconds per env step."""
        return self._dt

    def task_arrays(self, tasks: Sequence[Task]) -> dict[str, np.ndarray]:
        """Task parameters stacked over the batch."""
        return {name: np.stack([np.asarray(t[name], dtype=np.float64) for t in tasks])
                for name in self.task_space}

    def model_for_task(self, task: Task) -> mujoco.MjModel:
        """The model a sub-env runs for ``task``; the shared base model unless the
        family varies dynamics (then a scaled copy)."""
        return self.base_model

    def obs_dim(self) -> int:
        if self._obs_dim is None:
            sim = MujocoSim(self, 1, num_threads=0)
            sim.set_tasks([self.default_task()])
            self._obs_dim = int(sim.reset_envs(np.array([0]), [np.random.default_rng(0)]).shape[1])
        return self._obs_dim

    def constants(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "model_file": self.model_file,
                "frame_skip": self.frame_skip, "dt": self.dt,
                "reset_qpos_noise": self.reset_qpos_noise,
                "reset_qvel_noise": self.reset_qvel_noise}

    def make_env(self, task: TaskLike | None = None, render_mode: str | None = None) -> MujocoEnv:
        return MujocoEnv(self, task, render_mode)

    def make_batch_engine(self, num_envs: int, num_threads: int | None = None,
                          stepping: str | None = None) -> MujocoBatchEngine:
        """The fast path (picked up by ``metarl.rollout.make_engine(..., "auto")``)."""
        return MujocoBatchEngine(self, num_envs, num_threads, stepping)

    def stepping_backend(self) -> str:
        """The stepping backend ``"auto"`` resolves to for this family."""
        if self.stepping != "auto":
            return self.stepping
        state_only = set(self.sim_fields) <= {"qpos", "qvel"} and not self.needs_rne_post
        return "rollout" if state_only else "threads"


class DynamicsFamily(MujocoFamily):
    """A MuJoCo family whose tasks scale model fields elementwise.

    Each task parameter ``<field>_scale`` multiplies ``model.<field>`` of the base
    model; every sub-env gets its own ``MjModel`` copy (``mj_setConst`` is rerun so
    quantities derived from masses stay consistent). Copies are cached per task.
    """

    #: task parameter name -> MjModel field it scales.
    scaled_fields: ClassVar[dict[str, str]] = {
        "mass_scale": "body_mass",
        "inertia_scale": "body_inertia",
        "damping_scale": "dof_damping",
        "friction_scale": "geom_friction",
    }
    _CACHE_SIZE = 512

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._models: OrderedDict[Task, mujoco.MjModel] = OrderedDict()

    def model_for_task(self, task: Task) -> mujoco.MjModel:
        model = self._models.get(task)
        if model is not None:
            self._models.move_to_end(task)
            return model
        model = copy.copy(self.base_model)
        for param, field in self.scaled_fields.items():
            if param in task:
                base = getattr(self.base_model, field)
                getattr(model, field)[:] = base * np.asarray(task[param]).reshape(base.shape)
        mujoco.mj_setConst(model, mujoco.MjData(model))
        self._models[task] = model
        if len(self._models) > self._CACHE_SIZE:
            self._models.popitem(last=False)
        return model


def sanitize_actions(actions: np.ndarray, low: np.ndarray, high: np.ndarray,
                     where: str = "metarl") -> np.ndarray:
    """NaN -> 0 (with a warning), +-inf and out-of-range values clipped to the actuator
    range; returns a float64 ``(N, nu)`` copy."""
    a = np.array(actions, dtype=np.float64)
    if not np.isfinite(a).all():
        if np.isnan(a).any():
            warnings.warn(f"{where}: NaN in actions replaced by 0", RuntimeWarning, stacklevel=3)
        a = np.nan_to_num(a, nan=0.0, posinf=np.inf, neginf=-np.inf)
    return np.clip(a, low, high)


class MujocoSim:
    """N sub-envs of one family: their models, data, task parameters and the stepping
    code shared by the single env and the batched engine."""

    def __init__(self, family: MujocoFamily, num_envs: int, num_threads: int = 0,
                 stepping: str | None = None) -> None:
        self.family = family
        self.num_envs = n = int(num_envs)
        if n < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        base = family.base_model
        self.stepping = stepping or family.stepping_backend()
        if self.stepping not in ("rollout", "threads"):
            raise ValueError(f"stepping must be 'rollout' or 'threads', got {self.stepping!r}")
        self.models: list[mujoco.MjModel] = [base] * n
        # The threads backend keeps one MjData per sub-env; the rollout backend keeps the
        # states in an array and needs one MjData only, for resets and snapshots.
        self.datas = [mujoco.MjData(base) for _ in range(n if self.stepping == "threads" else 1)]
        self.tasks: list[Task | None] = [None] * n
        self.params: dict[str, np.ndarray] = {}
        self.ctrl_low = base.actuator_ctrlrange[:, 0].copy()
        self.ctrl_high = base.actuator_ctrlrange[:, 1].copy()
        self.fields = tuple(family.sim_fields)
        probe = self.datas[0]
        self.buffers = {f: np.zeros((n, *np.shape(getattr(probe, f)))) for f in self.fields}
        self.state = SimBatch(self.buffers)
        # Row views of the batch buffers paired with views into each MjData: they stay
        # valid for the life of the MjData, and caching them keeps the hot loop short.
        self._ctrl_buf = np.zeros((n, base.nu))
        self._copies = [[(self.buffers[f][i], getattr(d, f)) for f in self.fields]
                        for i, d in enumerate(self.datas)] if self.stepping == "threads" else []
        self._ctrl = [(d.ctrl, self._ctrl_buf[i]) for i, d in enumerate(self.datas)]
        self._warn = [d.warning[_BADQACC] for d in self.datas]
        self._rngs: list[np.random.Generator] = [np.random.default_rng(i) for i in range(n)]
        self.obs: np.ndarray | None = None
        self._all = np.arange(n)
        self.num_threads = int(num_threads)
        if self.stepping == "rollout" and not set(self.fields) <= {"qpos", "qvel"}:
            raise ValueError(f"{family.id}: stepping='rollout' only provides qpos/qvel, but the "
                             f"family reads {self.fields}; use stepping='threads'")
        self._pool: ThreadPoolExecutor | None = None
        self._roll: mujoco.rollout.Rollout | None = None
        if self.stepping == "threads" and self.num_threads > 1:
            self._pool = ThreadPoolExecutor(self.num_threads, thread_name_prefix="metarl-mj")
        if self.stepping == "rollout":
            # Full physics state of every sub-env (time, qpos, qvel, act, ...); rollout
            # steps it on per-thread scratch MjData with a persistent C thread pool.
            nstate = mujoco.mj_stateSize(base, _FULLPHYSICS)
            self._state = np.zeros((n, nstate))
            self._out = np.zeros((n, family.frame_skip, nstate))
            self._ctrl3 = np.zeros((n, family.frame_skip, base.nu))
            self._sens = np.zeros((n, family.frame_skip, base.nsensordata))
            threads = self.num_threads if self.num_threads > 1 else 0
            self._roll = mujoco.rollout.Rollout(nthread=threads)
            self._scratch = [mujoco.MjData(base) for _ in range(max(1, threads))]
            self._substeps_time = family.frame_skip * base.opt.timestep
            self._half_timestep = 0.5 * base.opt.timestep
            self._qpos_slice = slice(1, 1 + base.nq)  # state layout: time, qpos, qvel, ...
            self._qvel_slice = slice(1 + base.nq, 1 + base.nq + base.nv)
        for d in self.datas:
            self._arm(d)

    # ---- tasks -------------------------------------------------------------------------
    def set_tasks(self, tasks: Sequence[Task]) -> None:
        if len(tasks) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} tasks, got {len(tasks)}")
        for i, task in enumerate(tasks):
            if self.tasks[i] != task:
                self.tasks[i] = task
                self.models[i] = self.family.model_for_task(task)
        self.params = self.family.task_arrays(self.tasks)  # type: ignore[arg-type]

    # ---- reset -------------------------------------------------------------------------
    @staticmethod
    def _arm(d: mujoco.MjData) -> None:
        for k in range(_N_WARNINGS):
            d.warning[k].number = _WARN_SENTINEL

    def _reset_one(self, i: int) -> None:
        fam, m, d, rng = self.family, self.models[i], self._data_for(i), self._rngs[i]
        mujoco.mj_resetData(m, d)
        d.qpos[:] = m.qpos0 + rng.uniform(-fam.reset_qpos_noise, fam.reset_qpos_noise, m.nq)
        if fam.reset_qvel_normal:
            d.qvel[:] = fam.reset_qvel_noise * rng.standard_normal(m.nv)
        else:
            d.qvel[:] = rng.uniform(-fam.reset_qvel_noise, fam.reset_qvel_noise, m.nv)
        mujoco.mj_forward(m, d)
        if fam.needs_rne_post:
            mujoco.mj_rnePostConstraint(m, d)
        self._arm(d)
        self._store(i, d)

    def _data_for(self, i: int) -> mujoco.MjData:
        return self.datas[i] if self._roll is None else self.datas[0]

    def _store(self, i: int, d: mujoco.MjData) -> None:
        """Copy sub-env ``i``'s state from ``d`` into the batch buffers (and state array)."""
        if self._roll is None:
            for dst, src in self._copies[i]:
                dst[...] = src
        else:
            mujoco.mj_getState(self.models[i], d, self._state[i], _FULLPHYSICS)
            self.buffers["qpos"][i] = d.qpos
            self.buffers["qvel"][i] = d.qvel

    def reset_envs(self, idx: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Reset sub-envs ``idx`` with their generators; return all observations."""
        if self.tasks[0] is None:
            raise RuntimeError("set_tasks must be called before reset")
        for i, rng in zip(idx, rngs, strict=True):
            self._rngs[int(i)] = rng
            self._reset_one(int(i))
        self._observe_all(np.asarray(idx))
        return self.obs  # type: ignore[return-value]

    def _observe_all(self, idx: np.ndarray) -> None:
        if self.obs is None or len(idx) == self.num_envs:
            self.obs = np.asarray(self.family.observe(self.state, self.params), dtype=np.float64)
        elif len(idx):
            sub = {k: v[idx] for k, v in self.params.items()}
            self.obs[idx] = self.family.observe(self.state.take(idx), sub)

    # ---- step --------------------------------------------------------------------------
    def _advance(self, idx: Sequence[int], bad: list[int]) -> None:
        """Step sub-envs ``idx`` with the controls in ``_ctrl_buf`` (runs on a pool thread;
        mj_step releases the GIL, so only these few lines of Python hold it)."""
        models, datas, copies = self.models, self.datas, self._copies
        ctrls, warns, fs = self._ctrl, self._warn, self.family.frame_skip
        step, rne = mujoco.mj_step, mujoco.mj_rnePostConstraint
        post = self.family.needs_rne_post
        for i in idx:
            d, m = datas[i], models[i]
            dst, src = ctrls[i]
            dst[:] = src
            step(m, d, fs)
            if post:
                rne(m, d)
            if warns[i].number != _WARN_SENTINEL:
                bad.append(i)
            for dst, src in copies[i]:
                dst[...] = src

    def _advance_rollout(self, idx: np.ndarray, full: bool, bad: list[int]) -> None:
        """Step sub-envs ``idx`` with one mujoco.rollout call (the GIL released inside)."""
        fs = self.family.frame_skip
        if full:
            models, state0, out = self.models, self._state, self._out
            ctrl3, sens = self._ctrl3, self._sens
            ctrl3[:] = self._ctrl_buf[:, None, :]
            t0 = state0[:, 0].copy()
        else:
            models = [self.models[i] for i in idx]
            state0 = self._state[idx]
            out = np.empty((len(idx), *self._out.shape[1:]))
            sens = np.empty((len(idx), *self._sens.shape[1:]))
            ctrl3 = np.repeat(self._ctrl_buf[idx][:, None, :], fs, axis=1)
            t0 = state0[:, 0]
        messages: list[str] = []
        with _HANDLER_LOCK:
            previous = mujoco.get_mju_user_warning()
            mujoco.set_mju_user_warning(messages.append)
            try:
                self._roll.rollout(models, self._scratch, state0, ctrl3,  # type: ignore[union-attr]
                                   nstep=fs, state=out, sensordata=sens, skip_checks=True)
            finally:
                mujoco.set_mju_user_warning(previous)
        final = out[:, -1]
        if full:
            self._state[:] = final
            self.buffers["qpos"][:] = final[:, self._qpos_slice]
            self.buffers["qvel"][:] = final[:, self._qvel_slice]
        else:
            self._state[idx] = final
            self.buffers["qpos"][idx] = final[:, self._qpos_slice]
            self.buffers["qvel"][idx] = final[:, self._qvel_slice]
        # MuJoCo resets a diverged MjData (time back to 0) and rollout then stops stepping
        # it: a clock that did not advance by frame_skip substeps marks the sub-env unstable.
        # (All models of a family share the timestep; rand params do not scale it.)
        jumped = np.abs(final[:, 0] - t0 - self._substeps_time) > self._half_timestep
        if messages or jumped.any():
            bad.extend(int(i) for i in idx[jumped])
            if not jumped.any():
                warnings.warn(f"{self.family.id}: MuJoCo warning: {messages[0]}",
                              RuntimeWarning, stacklevel=4)

    def set_state(self, i: int, qpos: np.ndarray | None = None,
                  qvel: np.ndarray | None = None) -> None:
        """Overwrite sub-env ``i``'s joint positions / velocities (tests, scripted starts);
        the observation is refreshed at the next step."""
        m, d = self.models[i], self.get_data(i)
        if qpos is not None:
            d.qpos[:] = qpos
        if qvel is not None:
            d.qvel[:] = qvel
        if np.isfinite(d.qpos).all() and np.isfinite(d.qvel).all():
            mujoco.mj_forward(m, d)  # derived fields (xpos, cfrc_ext, ...) for the new state
        self._store(i, d)

    def get_data(self, i: int) -> mujoco.MjData:
        """Sub-env ``i``'s ``MjData``, brought up to date (with the rollout backend the
        state lives in an array, and this is a snapshot in a shared MjData)."""
        d = self._data_for(i)
        if self._roll is not None:
            mujoco.mj_setState(self.models[i], d, self._state[i], _FULLPHYSICS)
            mujoco.mj_forward(self.models[i], d)
        return d

    def step(self, actions: np.ndarray, active: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Step the active sub-envs; inactive ones keep their observation and get zero
        reward. Returns ``(obs, rewards, terminated, infos)`` for all N."""
        n, fam = self.num_envs, self.family
        actions = np.asarray(actions)
        if actions.shape != (n, len(self.ctrl_low)):
            raise ValueError(f"expected actions of shape {(n, len(self.ctrl_low))}, "
                             f"got {actions.shape}")
        ctrl = sanitize_actions(actions, self.ctrl_low, self.ctrl_high, fam.id)
        self._ctrl_buf[:] = ctrl
        full = active is None or bool(np.all(active))
        idx = self._all if full else np.flatnonzero(active)
        prev = self.state.copy()
        bad: list[int] = []
        if self._roll is not None:
            if len(idx):
                self._advance_rollout(idx, full, bad)
        elif self._pool is not None and len(idx) >= 2 * self.num_threads:
            # A few chunks per thread balance envs whose contacts make them slower.
            order = idx.tolist()
            k = min(len(order), 4 * self.num_threads)
            chunks = [order[j::k] for j in range(k)]
            for fut in [self._pool.submit(self._advance, c, bad) for c in chunks]:
                fut.result()
        else:
            self._advance(idx.tolist(), bad)

        rewards = np.zeros(n)
        terminated = np.zeros(n, dtype=bool)
        infos: dict[str, np.ndarray] = {"unstable": np.zeros(n)}
        if len(idx):
            # The whole batch needs no gathering copies (the common case).
            cur, before = (self.state, prev) if full else (self.state.take(idx), prev.take(idx))
            sub = self.params if full else {k: v[idx] for k, v in self.params.items()}
            finite = np.ones(len(idx), dtype=bool)
            for v in cur.fields.values():
                finite &= np.isfinite(v.reshape(len(idx), -1)).all(axis=1)
            rew, terms = fam.reward(before, cur, ctrl if full else ctrl[idx], sub)
            rewards[idx] = rew
            terminated[idx] = fam.terminated(cur, sub)
            for key, val in terms.items():
                infos.setdefault(key, np.zeros(n))[idx] = val
            if not finite.all():
                bad.extend(int(i) for i in idx[~finite])
        self._observe_all(idx)
        if bad:
            bad_idx = np.unique(bad)
            warnings.warn(f"{fam.id}: simulation became unstable in sub-env(s) "
                          f"{bad_idx.tolist()[:10]}; reset them (infos['unstable'] = 1)",
                          RuntimeWarning, stacklevel=3)
            for i in bad_idx:
                self._reset_one(int(i))
            self._observe_all(bad_idx)
            rewards[bad_idx] = 0.0
            terminated[bad_idx] = True
            infos["unstable"][bad_idx] = 1.0
            for key in infos:
                if key != "unstable":
                    infos[key][bad_idx] = 0.0
        return self.obs.copy(), rewards, terminated, infos  # type: ignore[union-attr]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._roll is not None:
            self._roll.close()
            self._roll = None


def _spaces(family: MujocoFamily) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    m = family.base_model
    obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(family.obs_dim(),), dtype=np.float64)
    act_space = gym.spaces.Box(m.actuator_ctrlrange[:, 0].astype(np.float32),
                               m.actuator_ctrlrange[:, 1].astype(np.float32), dtype=np.float32)
    return obs_space, act_space


class MujocoEnv(MetaEnv):
    """The single ``gymnasium.Env`` of a MuJoCo family: a :class:`MujocoSim` of one.

    ``info`` carries the family's reward terms and ``"unstable"``; episodes are
    truncated at the family horizon.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, family: MujocoFamily, task: TaskLike | None = None,
                 render_mode: str | None = None) -> None:
        self._sim = MujocoSim(family, 1, num_threads=0)
        self.observation_space, self.action_space = _spaces(family)
        super().__init__(family, task, render_mode)
        self.metadata = {"render_modes": [], "render_fps": int(round(1.0 / family.dt))}

    def _apply_task(self, task: Task) -> None:
        self._sim.set_tasks([task])

    @property
    def model(self) -> mujoco.MjModel:
        """The ``MjModel`` this env runs (a scaled copy for dynamics tasks)."""
        return self._sim.models[0]

    @property
    def data(self) -> mujoco.MjData:
        """The current ``MjData`` (a synchronized copy: write the state with
        :meth:`set_state`)."""
        return self._sim.get_data(0)

    def set_state(self, qpos: np.ndarray | None = None, qvel: np.ndarray | None = None) -> None:
        """Overwrite joint positions / velocities (like Gymnasium's ``set_state``)."""
        self._sim.set_state(0, qpos, qvel)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._begin_episode(seed, options)
        obs = self._sim.reset_envs(np.array([0]), [self.np_random])
        return obs[0].copy(), {}

    def step(self, action):
        obs, rew, term, infos = self._sim.step(np.asarray(action)[None], None)
        truncated = self._tick() and not term[0]
        info = {k: float(v[0]) for k, v in infos.items()}
        return obs[0], float(rew[0]), bool(term[0]), bool(truncated), info

    def close(self) -> None:
        self._sim.close()


class MujocoBatchEngine:
    """The fast :class:`~metarl.rollout.BatchEngine` of a MuJoCo family: N sub-envs,
    each with its own task (and own ``MjModel`` for dynamics tasks), stepped by a
    persistent thread pool with the GIL released."""

    def __init__(self, family: MujocoFamily, num_envs: int, num_threads: int | None = None,
                 stepping: str | None = None) -> None:
        self.family = family
        self.num_envs = int(num_envs)
        threads = default_num_threads() if num_threads is None else int(num_threads)
        self.sim = MujocoSim(family, self.num_envs, num_threads=threads, stepping=stepping)
        self.single_observation_space, self.single_action_space = _spaces(family)
        self.sim.set_tasks([family.default_task()] * self.num_envs)

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        # Tasks already validated by this family (the Sampler's, the vector env's) are
        # taken as they are: validating 800 of them per batch would cost milliseconds.
        fid = self.family.id
        self.sim.set_tasks([t if isinstance(t, Task) and t.family == fid
                            else self.family.validate(t) for t in tasks])

    def reset(self, seeds: Sequence[int], mask: np.ndarray | None = None) -> np.ndarray:
        idx = np.arange(self.num_envs) if mask is None else np.flatnonzero(mask)
        rngs = [np.random.default_rng(int(seeds[i])) for i in idx]
        return self.sim.reset_envs(idx, rngs).copy()

    def step(self, actions: np.ndarray, active: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        return self.sim.step(actions, active)

    def close(self) -> None:
        self.sim.close()


__all__ = ["DynamicsFamily", "MujocoBatchEngine", "MujocoEnv", "MujocoFamily", "MujocoSim",
           "SimBatch", "assets_dir", "load_model", "sanitize_actions"]
