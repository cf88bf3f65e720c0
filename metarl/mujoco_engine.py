"""MuJoCo task families on the ``mujoco`` bindings: one definition, two speeds.

A :class:`MujocoFamily` writes its observation, reward and termination **once**, as
functions of a batch of simulator states (:class:`SimBatch`: ``(N, ...)`` numpy arrays
of ``qpos``, ``qvel``, ``cfrc_ext``, ...). Both runtimes below call exactly those
functions on exactly the same stepping code (:class:`MujocoSim`):

* :class:`MujocoEnv`, the single ``gymnasium.Env`` (a simulator batch of one, stepped
  on the calling thread);
* :class:`MujocoBatchEngine`, the fast path behind ``family.make_batch_engine(n)``,
  which steps all N sub-envs in C across threads with the GIL released.

Stepping (:mod:`metarl.mujoco_backend`, chosen from the installed ``mujoco``): on MuJoCo 4
one ``mujoco.batch.Batch`` holds the N sub-envs' states as rows (with each sub-env's
solver warm start) and steps them in C on its own thread pool, the GIL released, no
Python per sub-env; on MuJoCo 3.x (which Meta-World pins) each sub-env has an ``MjData``
and ``mj_step`` runs over them on a thread pool, the GIL released inside each call. Either
way a closed-loop call per env step, ``frame_skip`` physics steps each. Dynamics tasks
give each sub-env its own ``MjModel``. The fields a family reads (``sim_fields``) are
bound once as ``(N, ...)`` arrays: ``qpos``/``qvel`` are the state, derived fields
(``cfrc_ext``, ``cinert``, ...) are copied out after every call and describe the state
before the last substep, as after ``mj_step`` on an ``MjData``. The single env is a batch
of one on the calling thread, so both runtimes share every line of stepping code, and
both backends are bit-identical to a loop of ``mj_step`` over one ``MjData`` each.

``cfrc_ext`` (and ``cacc``/``cfrc_int``) are only filled by ``mj_rnePostConstraint``,
which ``mj_step`` runs when the model has an acceleration sensor; a family that sets
``needs_rne_post`` gets such a sensor added to its compiled model (a world-frame
accelerometer, ``rne_probe``), so its contact forces are computed inside the step.

Robustness: NaN actions become 0 and out-of-range actions are clipped to the
actuator range (with a warning for NaN); a sub-env whose simulation diverges
(MuJoCo's bad-qacc/qvel/qpos check, or a non-finite state) is reported with a
warning, reset, marked ``terminated`` and flagged ``infos["unstable"] = 1``. MuJoCo
resets a diverged simulation itself, which clears its warning counters: they are
pre-set to a sentinel, so a cleared one marks the sub-env, and MuJoCo, which prints
and writes ``MUJOCO_LOG.TXT`` only on a warning's first occurrence, stays quiet.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from metarl.errors import ConfigError
from metarl.family import MetaEnv, TaskFamily, TaskLike
from metarl.mujoco_backend import BatchBackend, ThreadBackend, default_backend, make_backend
from metarl.task import Task

ASSETS = Path(__file__).resolve().parent.parent / "envs" / "assets"

# Warning counters start at this value; mj_resetData (called by MuJoCo on a diverged
# state) zeroes them, and mj_warning does not print or log while a counter is nonzero.
_WARN_SENTINEL = 1 << 30
# The warnings of a state MuJoCo found diverged (and reset).
_DIVERGED = [int(w) for w in (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL,
                              mujoco.mjtWarning.mjWARN_BADQACC)]
# Sensors whose evaluation makes mj_step run mj_rnePostConstraint (fills cfrc_ext).
_RNE_SENSORS = {mujoco.mjtSensor.mjSENS_ACCELEROMETER, mujoco.mjtSensor.mjSENS_FORCE,
                mujoco.mjtSensor.mjSENS_TORQUE, mujoco.mjtSensor.mjSENS_FRAMELINACC,
                mujoco.mjtSensor.mjSENS_FRAMEANGACC}


def assets_dir() -> Path:
    """Folder of the MJCF files shipped with metarl (``metarl.envs/assets``)."""
    try:
        import metarl.envs as envs_pkg

        return Path(envs_pkg.__file__).resolve().parent / "assets"
    except ImportError:  # pragma: no cover - only without the envs package
        return ASSETS


_MODEL_CACHE: dict[tuple[str, bool], mujoco.MjModel] = {}


def load_model(name: str, rne_probe: bool = False) -> mujoco.MjModel:
    """Compile ``assets/<name>`` once per process; callers must not mutate the result
    (dynamics families copy it first). ``rne_probe`` adds a world-frame accelerometer
    when the model has no sensor that makes ``mj_step`` compute ``cfrc_ext``."""
    path = Path(name) if os.path.isabs(name) else assets_dir() / name
    key = (str(path), bool(rne_probe))
    if key not in _MODEL_CACHE:
        spec = mujoco.MjSpec.from_file(str(path))
        if rne_probe and not any(s.type in _RNE_SENSORS for s in spec.sensors):
            spec.worldbody.add_site(name="rne_probe")
            spec.add_sensor(name="rne_probe", type=mujoco.mjtSensor.mjSENS_ACCELEROMETER,
                            objtype=mujoco.mjtObj.mjOBJ_SITE, objname="rne_probe")
        _MODEL_CACHE[key] = spec.compile()
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
    #: the functions read ``cfrc_ext``/``cacc``/``cfrc_int``, which ``mj_rnePostConstraint``
    #: fills: the compiled model gets an accelerometer so that ``mj_step`` runs it.
    needs_rne_post: ClassVar[bool] = False
    #: reset: ``qpos0 + U(-s, s)``; ``qvel = s' · N(0, 1)`` (or ``U(-s', s')``) as in Gymnasium.
    reset_qpos_noise: float = 0.1
    reset_qvel_noise: float = 0.1
    reset_qvel_normal: bool = True

    def __init__(self, action_scale: float | None = None, **kwargs: Any) -> None:
        """``action_scale=s``: the policy acts in ``[-s, s]`` per actuator, mapped linearly
        onto the actuator's control range (rllab's ``NormalizedEnv`` / pytorch-maml-rl's
        ``normalization_scale``, 10 in its MuJoCo configs). Out-of-range actions are
        clipped to ``[-s, s]`` first; the control cost is taken on the mapped control.
        ``None`` (default): actions are the controls themselves."""
        super().__init__(**kwargs)
        self.base_model = load_model(self.model_file, rne_probe=self.needs_rne_post)
        self._dt = float(self.base_model.opt.timestep) * self.frame_skip
        self._obs_dim: int | None = None
        ctrl_low, ctrl_high = self.base_model.actuator_ctrlrange.T.copy()
        self.action_scale: float | None = None
        self.action_low, self.action_high = ctrl_low, ctrl_high
        if action_scale is not None:
            scale = float(action_scale)
            if not (math.isfinite(scale) and scale > 0):
                raise ConfigError(f"{self.id}: action_scale must be a positive number, got "
                                 f"{action_scale!r}")
            self.action_scale = scale
            self.action_low, self.action_high = np.full_like(ctrl_low, -scale), \
                np.full_like(ctrl_high, scale)
            # control = offset + gain * action, mapping [-s, s] onto [ctrl_low, ctrl_high]
            self._ctrl_gain = (ctrl_high - ctrl_low) / (2 * scale)
            self._ctrl_offset = ctrl_low + self._ctrl_gain * scale

    def to_control(self, actions: np.ndarray) -> np.ndarray:
        """Actuator controls for ``(N, nu)`` actions already clipped to the action space."""
        if self.action_scale is None:
            return actions
        return self._ctrl_offset + self._ctrl_gain * actions

    # ---- the three vectorized functions (override) -------------------------------------
    def observe(self, sim: SimBatch, params: dict[str, np.ndarray]) -> np.ndarray:
        """``(N, obs_dim)`` observations."""
        raise NotImplementedError

    def reward(self, prev: SimBatch, sim: SimBatch, action: np.ndarray,
               params: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(N,)`` rewards for the transition ``prev -> sim`` under ``action`` (the control
        applied: clipped, and mapped by ``to_control``),
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
            sim = MujocoSim(self, 1)
            sim.set_tasks([self.default_task()])
            self._obs_dim = int(sim.reset_envs(np.array([0]), [np.random.default_rng(0)]).shape[1])
        return self._obs_dim

    def constants(self) -> dict[str, Any]:
        out = {"horizon": self.horizon, "model_file": self.model_file,
               "frame_skip": self.frame_skip, "dt": self.dt,
               "reset_qpos_noise": self.reset_qpos_noise,
               "reset_qvel_noise": self.reset_qvel_noise}
        if self.action_scale is not None:
            out["action_scale"] = self.action_scale
        return out

    def make_env(self, task: TaskLike | None = None, render_mode: str | None = None) -> MujocoEnv:
        return MujocoEnv(self, task, render_mode)

    def make_batch_engine(self, num_envs: int, num_threads: int | None = None,
                          backend: str | None = None) -> MujocoBatchEngine:
        """The fast path (picked up by ``metarl.rollout.make_engine(..., "auto")``);
        ``backend``: ``"batch"`` or ``"threads"`` (default: :func:`default_backend`)."""
        return MujocoBatchEngine(self, num_envs, num_threads, backend)


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
    """NaN -> 0 (with a warning), +-inf and out-of-range values clipped to ``[low, high]``
    (the family's action space); returns a float64 ``(N, nu)`` copy."""
    a = np.array(actions, dtype=np.float64)
    if not np.isfinite(a).all():
        if np.isnan(a).any():
            warnings.warn(f"{where}: NaN in actions replaced by 0", RuntimeWarning, stacklevel=3)
        a = np.nan_to_num(a, nan=0.0, posinf=np.inf, neginf=-np.inf)
    return np.clip(a, low, high)


class MujocoSim:
    """N sub-envs of one family on one backend (:mod:`metarl.mujoco_backend`: MuJoCo 4's
    ``mujoco.batch`` or ``mj_step`` on a thread pool): their models, states, task
    parameters and the stepping code shared by the single env and the batched engine."""

    def __init__(self, family: MujocoFamily, num_envs: int, num_threads: int = 1,
                 backend: str | None = None) -> None:
        self.family = family
        self.num_envs = n = int(num_envs)
        if n < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        base = family.base_model
        self.num_threads = max(1, int(num_threads))
        self.fields = tuple(family.sim_fields)
        self._backend: BatchBackend | ThreadBackend | None = make_backend(
            backend or default_backend(), base, n, self.num_threads, self.fields)
        #: the backend's name, ``"batch"`` or ``"threads"``.
        self.backend = self._backend.name
        self.models: list[mujoco.MjModel] = [base] * n
        self.tasks: list[Task | None] = [None] * n
        self.params: dict[str, np.ndarray] = {}
        # Live (N, ...) arrays: qpos/qvel are the state, the other fields are copied out
        # by every call (one substep behind the state, as after mj_step).
        self.state = SimBatch({f: self._backend.bind(f) for f in self.fields})
        self._qpos, self._qvel = self._backend.bind("qpos"), self._backend.bind("qvel")
        self._ctrl = self._backend.bind("ctrl")
        self._rngs: list[np.random.Generator] = [np.random.default_rng(i) for i in range(n)]
        self.obs: np.ndarray | None = None
        self._all = np.arange(n)
        self._arm(self._all)

    # ---- tasks -------------------------------------------------------------------------
    def set_tasks(self, tasks: Sequence[Task]) -> None:
        if len(tasks) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} tasks, got {len(tasks)}")
        changed = False
        for i, task in enumerate(tasks):
            if self.tasks[i] != task:
                self.tasks[i] = task
                model = self.family.model_for_task(task)
                changed |= model is not self.models[i]
                self.models[i] = model
        if changed:
            base = self.family.base_model
            self._live.set_models(None if all(m is base for m in self.models) else self.models)
        self.params = self.family.task_arrays(self.tasks)  # type: ignore[arg-type]

    @property
    def _live(self) -> BatchBackend | ThreadBackend:
        if self._backend is None:
            raise RuntimeError(f"{self.family.id}: this simulator batch was closed")
        return self._backend

    # ---- reset -------------------------------------------------------------------------
    def _arm(self, idx: np.ndarray) -> None:
        self._live.set_warning_counts(idx, _WARN_SENTINEL)

    def _reset(self, idx: np.ndarray) -> None:
        """Default state plus the family's reset noise (drawn from each sub-env's
        generator, in the order Gymnasium draws it), then ``mj_forward``."""
        fam, batch = self.family, self._live
        batch.reset(idx)
        for i in idx:
            m, rng = self.models[i], self._rngs[i]
            qpos = m.qpos0 + rng.uniform(-fam.reset_qpos_noise, fam.reset_qpos_noise, m.nq)
            if fam.reset_qvel_normal:
                qvel = fam.reset_qvel_noise * rng.standard_normal(m.nv)
            else:
                qvel = rng.uniform(-fam.reset_qvel_noise, fam.reset_qvel_noise, m.nv)
            batch.set_joint_state(i, qpos, qvel)
        batch.forward(idx)
        self._arm(idx)

    def reset_envs(self, idx: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Reset sub-envs ``idx`` with their generators; return all observations."""
        if self.tasks[0] is None:
            raise RuntimeError("set_tasks must be called before reset")
        idx = np.asarray(idx, dtype=np.int64)
        for i, rng in zip(idx, rngs, strict=True):
            self._rngs[int(i)] = rng
        self._reset(idx)
        self._observe_all(idx)
        return self.obs  # type: ignore[return-value]

    def _observe_all(self, idx: np.ndarray) -> None:
        if self.obs is None or len(idx) == self.num_envs:
            self.obs = np.asarray(self.family.observe(self.state, self.params), dtype=np.float64)
        elif len(idx):
            sub = {k: v[idx] for k, v in self.params.items()}
            self.obs[idx] = self.family.observe(self.state.take(idx), sub)

    # ---- state access (tests, scripted starts, rendering) -----------------------------
    def set_state(self, i: int, qpos: np.ndarray | None = None,
                  qvel: np.ndarray | None = None) -> None:
        """Overwrite sub-env ``i``'s joint positions / velocities; derived fields are
        recomputed (``mj_forward``) and the observation refreshes at the next step. A
        diverged state is caught (reset and flagged) by the next step."""
        self._live.set_joint_state(i, qpos, qvel)
        if np.isfinite(self._qpos[i]).all() and np.isfinite(self._qvel[i]).all():
            self._live.forward([i])

    def get_data(self, i: int) -> mujoco.MjData:
        """A snapshot of sub-env ``i`` as an ``MjData`` of its model, forwarded (a copy:
        write the state with :meth:`set_state`)."""
        return self._live.get_data(i, self.models[i])

    # ---- step --------------------------------------------------------------------------
    def step(self, actions: np.ndarray, active: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Step the active sub-envs; inactive ones keep their observation and get zero
        reward. Returns ``(obs, rewards, terminated, infos)`` for all N."""
        n, fam, batch = self.num_envs, self.family, self._live
        actions = np.asarray(actions)
        if actions.shape != (n, len(fam.action_low)):
            raise ValueError(f"expected actions of shape {(n, len(fam.action_low))}, "
                             f"got {actions.shape}")
        ctrl = fam.to_control(sanitize_actions(actions, fam.action_low, fam.action_high, fam.id))
        full = active is None or bool(np.all(active))
        idx = self._all if full else np.flatnonzero(active)
        prev = self.state.copy()
        if len(idx):
            self._ctrl[idx] = ctrl[idx]
            # All sub-envs in C on the batch's threads, the GIL released.
            batch.step(None if full else idx, nstep=fam.frame_skip)

        rewards = np.zeros(n)
        terminated = np.zeros(n, dtype=bool)
        infos: dict[str, np.ndarray] = {"unstable": np.zeros(n)}
        bad = np.zeros(n, dtype=bool)
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
            # MuJoCo resets a sub-env whose qpos/qvel/qacc blew up, which zeroes its
            # warning counters (armed at a sentinel, which also keeps MuJoCo quiet).
            counts = batch.warning_counts(idx)
            diverged = (counts[:, _DIVERGED] != _WARN_SENTINEL).any(axis=1)
            bad[idx] = diverged | ~finite
            self._report_other_warnings(idx, counts)
        self._observe_all(idx)
        if bad.any():
            bad_idx = np.flatnonzero(bad)
            warnings.warn(f"{fam.id}: simulation became unstable in sub-env(s) "
                          f"{bad_idx.tolist()[:10]}; reset them (infos['unstable'] = 1)",
                          RuntimeWarning, stacklevel=3)
            self._reset(bad_idx)
            self._observe_all(bad_idx)
            rewards[bad_idx] = 0.0
            terminated[bad_idx] = True
            infos["unstable"][bad_idx] = 1.0
            for key in infos:
                if key != "unstable":
                    infos[key][bad_idx] = 0.0
        return self.obs.copy(), rewards, terminated, infos  # type: ignore[union-attr]

    def _report_other_warnings(self, idx: np.ndarray, counts: np.ndarray) -> None:
        """Warnings that do not reset the simulation (contact or constraint buffers
        full, ...) once per occurrence, as a Python warning, then re-armed. ``counts``:
        the ``(len(idx), nwarning)`` warning counters of sub-envs ``idx``."""
        raised = counts > _WARN_SENTINEL
        if raised.any():
            kinds = sorted({mujoco.mjtWarning(int(k)).name for k in np.flatnonzero(raised.any(axis=0))})
            hit = idx[raised.any(axis=1)]
            warnings.warn(f"{self.family.id}: MuJoCo warning(s) {kinds} in sub-env(s) "
                          f"{hit.tolist()[:10]}", RuntimeWarning, stacklevel=4)
            self._arm(hit)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


def _spaces(family: MujocoFamily) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(family.obs_dim(),), dtype=np.float64)
    act_space = gym.spaces.Box(family.action_low.astype(np.float32),
                               family.action_high.astype(np.float32), dtype=np.float32)
    return obs_space, act_space


class MujocoEnv(MetaEnv):
    """The single ``gymnasium.Env`` of a MuJoCo family: a :class:`MujocoSim` of one.

    ``info`` carries the family's reward terms and ``"unstable"``; episodes are
    truncated at the family horizon.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, family: MujocoFamily, task: TaskLike | None = None,
                 render_mode: str | None = None) -> None:
        self._sim = MujocoSim(family, 1)
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
    thread pool with the GIL released (``engine.sim.backend`` names the backend)."""

    def __init__(self, family: MujocoFamily, num_envs: int, num_threads: int | None = None,
                 backend: str | None = None) -> None:
        self.family = family
        self.num_envs = int(num_envs)
        threads = default_num_threads() if num_threads is None else int(num_threads)
        self.sim = MujocoSim(family, self.num_envs, num_threads=threads, backend=backend)
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
