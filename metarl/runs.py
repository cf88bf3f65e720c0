"""Agents and runs: the agent registry, the agent interface, run folders, checkpoints,
and the training loop every agent shares (``metarl train``).

A run is a folder::

    config.yaml        resolved config + agent name + preset and its source + the
                       ``--import`` modules the run's family (or agent) needs
    imports/           a copy of each imported .py file
    tasks_train.json   the exact train task pool
    tasks_test.json    the held-out test tasks
    metrics.csv        one row per iteration (TensorBoard events in tb/)
    checkpoint.pt      latest checkpoint, written atomically (tmp file + os.replace)
    eval/              adaptation curve (CSV, JSON, PNG) from ``metarl evaluate``

Resuming (``metarl train --resume DIR``) reloads the config and the checkpoint and
continues at the next iteration (from iteration 0 if the run stopped before its first
checkpoint). Agents derive every iteration's randomness from
``(seed, iteration)`` and the checkpoint also restores the global RNG states, so on the
CPU a resumed run ends with exactly the parameters of an uninterrupted one.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import io
import json
import random
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarl.agent import AgentSpec, MetaAgent, UnknownAgentError, agent_names, get_agent, register_agent
from metarl.atomic import atomic_write_bytes
from metarl.config import (
    EXECUTION_KEYS,
    RunConfig,
    config_differences,
    config_to_dict,
    make_config,
    read_config_file,
    replace_config,
    resolve_config,
    save_config,
)
from metarl.errors import CheckpointError, ConfigError
from metarl.family import TaskFamily
from metarl.registry import import_family_modules, make_family
from metarl.task import Task, load_tasks, save_tasks

CHECKPOINT_FORMAT = 1
CONFIG_FILE, CHECKPOINT_FILE, METRICS_FILE = "config.yaml", "checkpoint.pt", "metrics.csv"
TRAIN_TASKS_FILE, TEST_TASKS_FILE = "tasks_train.json", "tasks_test.json"
IMPORTS_DIR = "imports"


# ---------------------------------------------------------------------------------------
# Files: atomic writes, checkpoints, metrics
# ---------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Global RNG states (torch, numpy legacy, Python); agents should not rely on them,
    but code they call might."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                      *np_state[2:]]}


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))


def save_checkpoint(path: Path, agent_name: str, config: Any, iteration: int,
                    agent_state: Mapping[str, Any]) -> None:
    """Atomically write the checkpoint after ``iteration`` (0-based, completed)."""
    payload = {"format": CHECKPOINT_FORMAT, "agent": agent_name,
               "config": config_to_dict(config), "iteration": int(iteration),
               "agent_state": dict(agent_state), "rng": rng_state()}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: Path, agent_name: str | None = None,
                    config: Any | None = None) -> dict[str, Any]:
    """Read and check a checkpoint; :class:`CheckpointError` says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; the run has not reached its first "
                              "checkpoint (see checkpoint_every) or the folder is not a run")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise CheckpointError(f"{path} is corrupt or not a metarl checkpoint ({exc}); "
                              "nothing was changed") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a metarl checkpoint (format "
                              f"{payload.get('format') if isinstance(payload, dict) else '?'})")
    if agent_name is not None and payload.get("agent") != agent_name:
        raise CheckpointError(f"{path} was written by agent {payload.get('agent')!r}, but the run "
                              f"config says {agent_name!r}; nothing was changed")
    if config is not None:
        diff = config_differences(payload.get("config") or {}, config)
        if diff:
            raise CheckpointError(f"{path} belongs to another config (keys differ: {diff}); "
                                  "nothing was changed")
    return payload


class MetricsLogger:
    """Metrics per iteration to ``metrics.csv`` and TensorBoard (``tb/``).

    On resume the rows after the checkpoint's iteration are dropped, so the CSV of a
    resumed run equals the uninterrupted one's.
    """

    def __init__(self, run_dir: Path, start_iteration: int = 0, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.rows: list[dict[str, Any]] = []
        self.fields: list[str] = ["iteration"]
        if self.path.exists():
            self.fields, self.rows = _read_rows_before(self.path, start_iteration)
            self._rewrite()
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # slow import; only when used

            self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb"),
                                        purge_step=start_iteration or None)

    def _rewrite(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_bytes(self.path, buf.getvalue().encode())

    def log(self, iteration: int, metrics: Mapping[str, float]) -> None:
        row = {"iteration": iteration, **{k: float(v) for k, v in metrics.items()}}
        new = [k for k in row if k not in self.fields]
        self.rows.append(row)
        if new:  # a new column: rewrite the file with the wider header
            self.fields += new
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore").writerow(row)
        if self.writer is not None:
            for key, value in metrics.items():
                if np.isfinite(value):
                    self.writer.add_scalar(key, float(value), iteration)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _read_rows_before(path: Path, start: int) -> tuple[list[str], list[dict[str, Any]]]:
    """The header and the rows of iterations ``0 .. start - 1`` of a metrics CSV, checked
    complete. Rows past ``start`` (the last one possibly cut off by a kill) are dropped;
    a file that lacks, or has a damaged row for, an iteration the checkpoint has
    completed is an error, raised before anything is written."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        found = list(reader)
    if found and (None in found[-1].values() or None in found[-1]):
        found.pop()  # a row cut off by a kill: rows are written before their checkpoint
    rows: list[dict[str, Any]] = []
    for row in found:
        try:
            it = int(row.get("iteration") or "")
        except ValueError:
            it = None
        if it is not None and it >= start:
            break
        if it != len(rows) or None in row.values() or None in row:
            raise CheckpointError(
                f"{path} is damaged at iteration {len(rows)} (of the {start} the checkpoint "
                "completed); nothing was changed. Restore the file, or delete it to resume "
                "without the earlier metrics")
        rows.append(row)
    if "iteration" not in fields or len(rows) < start:
        raise CheckpointError(
            f"{path} is truncated: it has {len(rows)} of the {start} iterations the checkpoint "
            "completed; nothing was changed. Restore the file, or delete it to resume without "
            "the earlier metrics")
    return fields, rows


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of a run's ``metrics.csv`` as floats."""
    with open(Path(run_dir) / METRICS_FILE, newline="") as fh:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                for row in csv.DictReader(fh)]


# ---------------------------------------------------------------------------------------
# Run folders
# ---------------------------------------------------------------------------------------
@dataclass
class Run:
    """An opened run folder with its agent spec, config and task lists."""

    path: Path
    spec: AgentSpec
    config: Any
    train_tasks: list[Task]
    test_tasks: list[Task]
    meta: dict[str, Any]

    def make_family(self) -> TaskFamily:
        return make_family(self.config.family, **self.config.family_kwargs)

    def make_agent(self, seed: int | None = None) -> MetaAgent:
        """A fresh agent for this run's config (``seed`` replaces the config's seed:
        a differently initialized agent, e.g. the random-init baseline)."""
        cfg = self.config
        if seed is not None:
            cfg = make_config(type(cfg), {**config_to_dict(cfg), "seed": int(seed)})
        return self.spec.agent_cls(cfg, self.make_family(), self.train_tasks)

    def load_agent(self) -> tuple[MetaAgent, int]:
        """The agent restored from the checkpoint, and the last completed iteration."""
        agent, payload = self._restore()
        return agent, int(payload["iteration"])

    def _restore(self) -> tuple[MetaAgent, dict[str, Any]]:
        payload = load_checkpoint(self.path / CHECKPOINT_FILE, self.spec.name, self.config)
        agent = self.make_agent()
        try:
            agent.load_state_dict(payload["agent_state"])
        except CheckpointError:
            raise
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{self.path / CHECKPOINT_FILE} does not fit this agent "
                                  f"({exc}); nothing was changed") from None
        return agent, payload


def check_device(device: str) -> None:
    """A clear error for a device torch cannot use (before anything is written)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device ({exc}); use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available here; "
                          "use --device cpu")


def apply_threads(config: Any) -> None:
    """Set torch's CPU thread count from ``config.torch_threads`` (0: leave the default)."""
    n = int(getattr(config, "torch_threads", 0) or 0)
    if n > 0:
        torch.set_num_threads(n)


def default_run_dir(agent: str, config: RunConfig, root: str | Path = "runs") -> Path:
    short = re.sub(r"[^A-Za-z0-9]+", "", config.family.split("/")[-1].split("-v")[0])
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{agent}_{short}_s{config.seed}_{stamp}"


def create_run(agent: str, preset: str | None = None, overrides: Mapping[str, Any] | None = None,
               out: str | Path | None = None, use_default_preset: bool = True,
               imports: Sequence[str] = ()) -> Run:
    """Resolve the config, make the folder and write the config and task lists.

    ``preset=None`` means the agent's default preset (``use_default_preset=False``: the
    config dataclass defaults). ``imports``: the ``--import`` modules (names or ``.py``
    paths) that register the run's family or agent; the run records them (and copies
    the files into ``imports/``), so that resume and evaluate import them again by
    themselves. Everything is validated (agent, preset, keys, family, task split)
    before anything is written; an existing non-empty ``out`` folder is never
    overwritten.
    """
    import_family_modules(list(imports))
    spec = get_agent(agent)
    if preset is None and use_default_preset:
        preset = spec.default_preset
    config, loaded = resolve_config(agent, spec.config_cls, preset, overrides)
    check_device(config.device)
    family = make_family(config.family, **config.family_kwargs)  # unknown family -> clear error
    split = family.split(config.num_train_tasks, config.num_test_tasks, config.split_seed,
                         holdout=getattr(config, "holdout", None))
    path = Path(out) if out is not None else default_run_dir(agent, config)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"{path} already exists and is not empty; pick another --out, or "
                          f"continue it with `metarl train --resume {path}`")
    path.mkdir(parents=True, exist_ok=True)
    meta = {"agent": agent, "preset": str(loaded.path) if loaded else None,
            "source": loaded.source if loaded else "", "family_id": family.id,
            "family_constants": _jsonable(family.constants()),
            "imports": _record_imports(path, imports),
            "created": _dt.datetime.now().isoformat(timespec="seconds")}
    save_config(path / CONFIG_FILE, config, meta)
    save_tasks(str(path / TRAIN_TASKS_FILE), list(split.train))
    save_tasks(str(path / TEST_TASKS_FILE), list(split.test))
    return Run(path, spec, config, list(split.train), list(split.test), meta)


def _record_imports(path: Path, imports: Sequence[str]) -> list[str]:
    """What :func:`open_run` needs to import the modules again: module names as given,
    ``.py`` files by absolute path, with a copy in ``path/imports/``."""
    recorded = []
    for module in imports:
        if module.endswith(".py"):
            source = Path(module).resolve()
            (path / IMPORTS_DIR).mkdir(exist_ok=True)
            shutil.copy2(source, path / IMPORTS_DIR / source.name)
            recorded.append(str(source))
        else:
            recorded.append(module)
    return recorded


def _import_recorded(path: Path, recorded: Sequence[str]) -> None:
    """Import a run's recorded modules: each ``.py`` file from where it was, or from the
    run's copy when the original has gone."""
    modules = []
    for module in recorded:
        if module.endswith(".py") and not Path(module).is_file():
            copy = path / IMPORTS_DIR / Path(module).name
            if not copy.is_file():
                raise CheckpointError(f"{path}: the run needs --import {module}, which is gone, "
                                      f"and so is its copy {copy}")
            module = str(copy)
        modules.append(module)
    import_family_modules(modules)


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def open_run(path: str | Path) -> Run:
    """Open an existing run folder (for resume / evaluate)."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise CheckpointError(f"{path} is not a metarl run folder (no {CONFIG_FILE})")
    data = read_config_file(path / CONFIG_FILE)
    _import_recorded(path, data.get("imports") or [])
    spec = get_agent(str(data.get("agent")))
    config = make_config(spec.config_cls, data["config"], f" in {path / CONFIG_FILE}")
    try:
        train = load_tasks(str(path / TRAIN_TASKS_FILE))
        test = load_tasks(str(path / TEST_TASKS_FILE))
    except OSError as exc:
        raise CheckpointError(f"{path}: missing task list ({exc})") from None
    meta = {k: v for k, v in data.items() if k != "config"}
    return Run(path, spec, config, train, test, meta)


def set_execution(run: Run, values: Mapping[str, Any]) -> Run:
    """``run`` with execution keys changed (``workers``, ``ray_address``, ``device``, ...:
    how it runs, not what it computes), written to its ``config.yaml``; the checkpoint
    stays valid. Any other key is refused: it would make the resumed run another run."""
    other = sorted(set(values) - EXECUTION_KEYS)
    if other:
        raise ConfigError(f"{run.path}: {', '.join(other)} cannot change on resume (only "
                          f"{', '.join(sorted(EXECUTION_KEYS))} can); start a new run")
    config = replace_config(run.config, values, " (resume)")
    check_device(config.device)
    save_config(run.path / CONFIG_FILE, config, run.meta)
    return dataclasses.replace(run, config=config)


# ---------------------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------------------
def train_run(run: Run, resume: bool = False, progress: bool = True,
              on_iteration: Callable[[MetaAgent, int, dict[str, float]], None] | None = None,
              stop_after: int | None = None) -> MetaAgent:
    """Train ``run``'s agent to ``config.num_iterations`` (continuing from the checkpoint
    when ``resume``; a run stopped before its first checkpoint starts again at iteration 0).
    ``stop_after`` stops after that many iterations of this call (tests use it to simulate
    an interruption). ``on_iteration(agent, iteration, metrics)`` runs after each iteration,
    before its checkpoint (benchmarks evaluate there). Returns the trained agent."""
    cfg = run.config
    check_device(cfg.device)
    apply_threads(cfg)
    if resume and (run.path / CHECKPOINT_FILE).exists():
        agent, payload = run._restore()   # validates before anything is written
        set_rng_state(payload["rng"])
        start = int(payload["iteration"]) + 1
    else:
        agent, start = run.make_agent(), 0
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        random.seed(cfg.seed)
    logger = MetricsLogger(run.path, start_iteration=start)
    end = cfg.num_iterations if stop_after is None else min(cfg.num_iterations, start + stop_after)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.num_iterations, initial=start, desc=f"{run.spec.name}",
                   unit="it", dynamic_ncols=True)
    try:
        for it in range(start, end):
            metrics = agent.train_iteration(it)
            logger.log(it, metrics)
            if on_iteration is not None:
                on_iteration(agent, it, metrics)
            if bar is not None:
                bar.set_postfix({label: f"{metrics[key]:.2f}" for label, key in
                                 type(agent).progress_keys.items() if key in metrics})
                bar.update(1)
            if (it + 1) % max(cfg.checkpoint_every, 1) == 0 or it == end - 1:
                save_checkpoint(run.path / CHECKPOINT_FILE, run.spec.name, cfg, it,
                                agent.state_dict())
    finally:
        logger.close()
        if bar is not None:
            bar.close()
    return agent


__all__ = ["AgentSpec", "MetaAgent", "MetricsLogger", "Run", "UnknownAgentError",
           "agent_names", "atomic_write_bytes", "create_run", "default_run_dir", "get_agent",
           "load_checkpoint", "open_run", "read_metrics", "register_agent", "save_checkpoint",
           "set_execution", "train_run"]
