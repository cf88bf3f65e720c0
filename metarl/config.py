"""Run configuration: one dataclass of keys per agent, YAML presets, ``--set`` overrides.

Every agent declares its keys as a dataclass that extends :class:`RunConfig` (the keys
all agents share: family, seed, iterations, task split, checkpointing). A preset is a
YAML file in ``configs/`` (one per (agent, family)) that names the paper it
reproduces::

    agent: maml
    source: "Finn et al. 2017 (MAML) §5.3; pytorch-maml-rl configs/maml/2d-navigation.yaml"
    description: "2D navigation, MAML paper setting"
    config:
      family: metarl/PointNav2D-v0
      meta_batch_size: 20
      ...

Resolution order (later wins): the dataclass defaults, the preset's ``config``, the
command line (``--family``, ``--seed``, ``--device``) and ``--set key=value``
overrides. Values are parsed as YAML (``--set inner_lr=0.05``, ``--set hidden_sizes=[32,32]``)
and checked against the key's declared type; a key that does not exist is an error
that lists the keys that do.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

import metarl.configs
from metarl.atomic import atomic_write_bytes
from metarl.errors import ConfigError

#: Where the presets live: the ``metarl.configs`` package, which is ``configs/`` at the
#: repository root in a checkout and ships inside the wheel.
CONFIG_DIR = Path(metarl.configs.__file__).resolve().parent


@dataclasses.dataclass
class RunConfig:
    """Keys every agent shares. Agents extend this dataclass with their own keys."""

    #: task family id (``metarl families`` lists them).
    family: str = "metarl/PointNav2D-v0"
    #: keyword arguments for the family (a published variant's constants).
    family_kwargs: dict = dataclasses.field(default_factory=dict)
    #: seed of everything random in the run (sampling, initialization, task draws).
    seed: int = 0
    #: device for network updates ("cpu", "cuda", "cuda:1"); rollouts stay on the CPU.
    device: str = "cpu"
    #: torch intra-op CPU threads (0 = torch's default). Meta-RL tensors are small: one
    #: thread avoids oversubscription (we measured 2 threads 4x slower on a busy 2-core box).
    torch_threads: int = 1
    #: number of meta-iterations.
    num_iterations: int = 100
    #: train task pool size; meta-batches are drawn from it.
    num_train_tasks: int = 1000
    #: held-out test tasks (evaluation).
    num_test_tasks: int = 40
    #: seed of the train / test split (independent of ``seed``, so runs with different
    #: seeds share their test tasks).
    split_seed: int = 0
    #: out-of-distribution split, e.g. ``{goal_velocity: [2.5, 3.0]}``: test tasks inside
    #: the ranges, train tasks outside (see ``TaskFamily.split``).
    holdout: dict | None = None
    #: rollout engine: "auto" (the family's fast engine if it has one), "generic", "fast".
    engine: str = "auto"
    #: Ray sampling actors; 0 samples in this process (and Ray is never imported).
    workers: int = 0
    #: address of a running Ray cluster to sample on (``ray start --head`` prints it);
    #: None with workers > 0 starts a local cluster.
    ray_address: str | None = None
    #: write a checkpoint every this many iterations (and always after the last one).
    checkpoint_every: int = 10
    #: held-out evaluation after training (``metarl train`` runs it when > 0):
    #: largest adaptation budget (inner steps, or episodes of a trial).
    eval_steps: int = 3
    #: episodes per task at each budget during evaluation.
    eval_episodes: int = 20

    def validate(self) -> None:
        """Checks every agent's config passes; agents extend it (calling super)."""
        checks = {
            "num_iterations >= 0": self.num_iterations >= 0,
            "num_train_tasks >= 0": self.num_train_tasks >= 0,  # 0: fresh tasks per iteration
            "num_test_tasks >= 1": self.num_test_tasks >= 1,
            "workers >= 0": self.workers >= 0, "torch_threads >= 0": self.torch_threads >= 0,
            "checkpoint_every >= 1": self.checkpoint_every >= 1,
            "eval_steps >= 0": self.eval_steps >= 0, "eval_episodes >= 1": self.eval_episodes >= 1,
        }
        self.check(checks)

    @staticmethod
    def check(checks: Mapping[str, bool]) -> None:
        """Raise one :class:`ConfigError` naming every ``{condition: holds}`` that fails
        (agents' ``validate`` calls it with their own keys)."""
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"invalid config values: {', '.join(bad)} must hold")


#: Keys that choose how a run executes, not what it computes: sampling on Ray or locally
#: gives the same batches, and so do the generic and fast engines; another device computes
#: the same updates up to floating-point rounding. A checkpoint stays valid when only
#: these differ (resume with more workers, or on a GPU, say).
EXECUTION_KEYS = frozenset({"workers", "ray_address", "engine", "torch_threads", "device"})


def config_differences(stored: Mapping[str, Any], config: Any) -> list[str]:
    """Keys whose values differ between a stored config dict (a checkpoint's) and the
    config dataclass ``config``, execution keys aside. A key the stored dict lacks,
    because it was written before the key existed, counts as that key's default."""
    current = config_to_dict(config)
    old = {**config_defaults(type(config)), **_drop_retired(type(config), stored)}
    return sorted(k for k in set(current) | set(old)
                  if k not in EXECUTION_KEYS and current.get(k) != old.get(k))


def same_results_config(stored: Mapping[str, Any], config: Any) -> bool:
    """Whether a stored config dict describes the same computation as ``config``."""
    return not config_differences(stored, config)


@dataclasses.dataclass(frozen=True)
class Preset:
    """A parsed preset file."""

    name: str
    path: Path
    agent: str
    source: str
    description: str
    values: dict[str, Any]


def config_keys(cls: type) -> dict[str, Any]:
    """``{key: declared type}`` of a config dataclass (the resolved annotations)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(key: str, tp: Any, value: Any) -> Any:
    """Check ``value`` against the declared type ``tp``; convert where it is lossless
    (an int where a float is expected, a list where a tuple is)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(key, arg, value)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"config key {key!r}: expected {_type_name(tp)}, got {value!r}")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        value = _numeric(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is dict or origin is dict:
        if isinstance(value, Mapping):
            return dict(value)
    elif tp in (list, tuple) or origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            item_tp = args[0] if args else Any
            items = [coerce(f"{key}[{i}]", item_tp, v) for i, v in enumerate(value)]
            return tuple(items) if (tp is tuple or origin is tuple) else items
    else:  # an unusual annotation: accept as is
        return value
    raise ConfigError(f"config key {key!r}: expected {_type_name(tp)}, got {value!r} "
                      f"({type(value).__name__})")


def _unknown_key_error(key: str, keys: Sequence[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key {key!r}{where}.{hint} Known keys: {', '.join(sorted(keys))}")


def _drop_retired(cls: type, values: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``values`` without the keys ``cls.retired`` lists (keys removed from the config, each
    with the one value that still means today's computation: old run folders record them).
    A retired key set to anything else is an error: that run cannot be reproduced now."""
    retired = getattr(cls, "retired", {})
    out = {}
    for key, value in values.items():
        if key not in retired:
            out[key] = value
        elif value != retired[key]:
            raise ConfigError(f"{key}{where} = {value!r}: this key was removed from "
                              f"{cls.__name__} (it only survives as {retired[key]!r}); "
                              "this config needs an older metarl")
    return out


def make_config(cls: type, values: Mapping[str, Any], where: str = "") -> Any:
    """Build a config dataclass from ``values``, validating every key and type."""
    keys = config_keys(cls)
    kwargs = {}
    for key, value in _drop_retired(cls, values, where).items():
        if key not in keys:
            raise _unknown_key_error(key, list(keys), where)
        kwargs[key] = coerce(key, keys[key], value)
    cfg = cls(**kwargs)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def replace_config(cfg: Any, values: Mapping[str, Any], where: str = "") -> Any:
    """A copy of ``cfg`` with ``values`` applied (validated like :func:`make_config`)."""
    return make_config(type(cfg), {**config_to_dict(cfg), **values}, where)


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``["a=1", "b=[32, 32]", "c=cpu"]`` -> ``{"a": 1, "b": [32, 32], "c": "cpu"}`` (YAML values)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from None
        out[key] = _numeric(value)
    return out


_FLOAT_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _numeric(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; users mean a number."""
    if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
        return float(value)
    return value


def _plain(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain ``{key: value}`` (tuples become lists, so the dict is YAML/JSON-ready)."""
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def config_defaults(cls: type) -> dict[str, Any]:
    """``{key: default}`` of a config dataclass, as :func:`config_to_dict` writes values
    (keys without a default are left out)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = _plain(f.default_factory())
    return out


def list_presets(agent: str | None = None) -> list[str]:
    """Preset names in ``configs/`` (optionally only those of ``agent``)."""
    if not CONFIG_DIR.is_dir():
        return []
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    return [n for n in names if agent is None or n.startswith(f"{agent}_")]


def find_preset(name_or_path: str) -> Path:
    """A preset by name (``maml_pointnav``), file name, or path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    for candidate in (CONFIG_DIR / name_or_path, CONFIG_DIR / f"{name_or_path}.yaml"):
        if candidate.is_file():
            return candidate
    names = list_presets()
    close = difflib.get_close_matches(name_or_path, names, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"no config preset or file {name_or_path!r}.{hint} Presets in "
                      f"{CONFIG_DIR}: {', '.join(names) or '(none)'}")


def load_preset(name_or_path: str) -> Preset:
    """Read and check the structure of a preset file."""
    path = find_preset(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset must be a mapping with keys agent, source, config")
    extra = set(data) - {"agent", "source", "description", "config"}
    if extra:
        raise ConfigError(f"{path}: unknown top-level keys {sorted(extra)}; a preset has agent, "
                          "source, description and config (the run keys go under config:)")
    values = data.get("config") or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: 'config' must be a mapping of key: value")
    if "agent" not in data:
        raise ConfigError(f"{path}: a preset must say which agent it is for (agent: ...)")
    return Preset(name=path.stem, path=path, agent=str(data["agent"]),
                  source=str(data.get("source", "")), description=str(data.get("description", "")),
                  values=values)


def resolve_config(
    agent: str,
    config_cls: type,
    preset: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Any, Preset | None]:
    """The agent's config: defaults < preset < ``overrides`` (command-line values).

    A preset written for another agent is rejected (its keys would not match).
    """
    values: dict[str, Any] = {}
    loaded = None
    if preset is not None:
        loaded = load_preset(preset)
        if loaded.agent != agent:
            raise ConfigError(f"preset {loaded.path} is for agent {loaded.agent!r}, not {agent!r}; "
                              f"presets for {agent}: {', '.join(list_presets(agent)) or '(none)'}")
        cfg = make_config(config_cls, loaded.values, f" in preset {loaded.path}")
        values = config_to_dict(cfg)
    values.update(overrides or {})
    return make_config(config_cls, values, " (from --set / command line)"), loaded


def save_config(path: str | Path, cfg: Any, extra: Mapping[str, Any] | None = None) -> None:
    """Write the resolved config (plus e.g. agent name and preset source) as YAML,
    atomically."""
    doc = dict(extra or {})
    doc["config"] = config_to_dict(cfg)
    atomic_write_bytes(path, yaml.safe_dump(doc, sort_keys=False).encode())


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a file written by :func:`save_config`."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read run config {path}: {exc}") from None
    if not isinstance(data, dict) or "config" not in data:
        raise ConfigError(f"{path} is not a run config (no 'config' section)")
    return data


__all__ = ["CONFIG_DIR", "Preset", "RunConfig", "coerce", "config_keys", "config_to_dict",
           "find_preset", "list_presets", "load_preset", "make_config", "parse_overrides",
           "read_config_file", "replace_config", "resolve_config", "save_config"]
