"""The family registry: versioned ids, default keyword arguments, Gymnasium
registration, and discovery of third-party families through entry points.

Every registered family is also a Gymnasium env id, so
``gymnasium.make("metarl/PointNav2D-v0", task=...)`` works after ``import metarl``.
Installed packages add families through the ``metarl.families`` entry-point group:
each entry point names a :class:`TaskFamily` subclass (registered under its
``family_id``) or a function that calls :func:`register`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import gymnasium as gym

from metarl.errors import FamilyArgumentError, UnknownFamilyError, UserModuleError
from metarl.family import MetaEnv, TaskFamily, TaskLike

ENTRY_POINT_GROUP = "metarl.families"
# The batched task vector env lives in metarl.vector; make_vec reaches it through this.
VECTOR_ENTRY_POINT = "metarl.vector:make_task_vector_env"


@dataclass(frozen=True)
class FamilySpec:
    """What :func:`register` stored: the id, the family class and its default kwargs."""

    id: str
    family_cls: type[TaskFamily]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self, **overrides: Any) -> TaskFamily:
        kwargs = {**self.kwargs, **overrides}
        try:
            return self.family_cls(family_id=self.id, **kwargs)
        except TypeError as exc:
            # Only a call that does not fit the signature is the caller's error; any other
            # TypeError is a bug in the family and keeps its traceback.
            if "argument" not in str(exc):
                raise
            raise FamilyArgumentError(f"{self.id}: bad family keyword arguments {sorted(kwargs)}: "
                                      f"{exc}") from None


_REGISTRY: dict[str, FamilySpec] = {}
#: id prefix -> why those families are not registered here and how to get them.
_UNAVAILABLE: dict[str, str] = {}
_plugins_loaded = False


def register_unavailable(prefix: str, why: str) -> None:
    """Families under ``prefix`` need something not installed (``metarl families``
    skips them); naming one raises :class:`UnknownFamilyError` with ``why``."""
    _UNAVAILABLE[prefix] = why


def _resolve_class(family: type[TaskFamily] | str) -> type[TaskFamily]:
    if isinstance(family, str):
        module_name, _, attr = family.partition(":")
        family = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(family, type) and issubclass(family, TaskFamily)):
        raise TypeError(f"register() needs a TaskFamily subclass, got {family!r}")
    return family


def register(
    family: type[TaskFamily] | str,
    id: str | None = None,  # noqa: A002 - mirrors gymnasium.register
    kwargs: dict[str, Any] | None = None,
    override: bool = False,
) -> FamilySpec:
    """Register a task family under a versioned id (and with Gymnasium).

    Args:
        family: a TaskFamily subclass, or ``"module:Class"``.
        id: ``namespace/Name-vN``; defaults to the class's ``family_id``.
        kwargs: default constructor keyword arguments (a published variant's constants).
        override: replace an existing registration instead of raising.
    """
    family_cls = _resolve_class(family)
    family_id = id or family_cls.family_id
    if not family_id:
        raise ValueError("register() needs an id, or a family class with family_id set")
    ns, name, version = gym.envs.registration.parse_env_id(family_id)
    if version is None:
        raise ValueError(f"family id {family_id!r} needs a version suffix, e.g. '{family_id}-v0'")
    if family_id in _REGISTRY and not override:
        existing = _REGISTRY[family_id]
        if existing.family_cls is family_cls and existing.kwargs == (kwargs or {}):
            return existing  # re-importing a module is harmless
        raise ValueError(f"family id {family_id!r} is already registered; pass override=True "
                         "to replace it, or register under a new version")
    spec = FamilySpec(family_id, family_cls, dict(kwargs or {}))
    _REGISTRY[family_id] = spec
    if family_id in gym.registry:
        del gym.registry[family_id]
    gym.register(
        id=family_id,
        entry_point=make_env,
        vector_entry_point=VECTOR_ENTRY_POINT,
        kwargs={"family_id": family_id},
        # The env truncates at its family's horizon itself (the horizon is a family constant).
        max_episode_steps=None,
    )
    return spec


def make_env(family_id: str, task: TaskLike | None = None, render_mode: str | None = None,
             **family_kwargs: Any) -> MetaEnv:
    """Gymnasium entry point: a family's env for ``task`` (default task when ``None``)."""
    return make_family(family_id, **family_kwargs).make_env(task, render_mode=render_mode)


def load_plugins(force: bool = False) -> None:
    """Register the families that installed packages declare under ``metarl.families``.

    A plugin that fails to load is reported with a warning and skipped, so one broken
    package does not break every command.
    """
    global _plugins_loaded
    if _plugins_loaded and not force:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if isinstance(obj, type) and issubclass(obj, TaskFamily):
                register(obj, override=force)
            elif callable(obj):
                obj()
            else:
                raise TypeError(f"{ep.value} is neither a TaskFamily subclass nor a function")
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break metarl
            warnings.warn(f"metarl: could not load family plugin {ep.name!r} ({ep.value}): {exc}",
                          stacklevel=2)


def import_family_modules(modules: list[str] | None) -> None:
    """Import user modules (``pkg.mod`` or a path to a ``.py`` file) that register families.
    A file is imported once per process (a second import would register its families
    twice)."""
    for module in modules or []:
        path = Path(module)
        if module.endswith(".py"):
            if not path.is_file():
                raise UserModuleError(f"--import {module}: no such file")
            digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
            mod_name = f"_metarl_user_{path.stem}_{digest}"
            if mod_name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(mod_name, path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                del sys.modules[mod_name]  # a fixed file may be imported again
                raise
        else:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name is None or not module.startswith(exc.name):
                    raise  # the module exists, but something it imports does not
                raise UserModuleError(
                    f"--import {module}: {exc}. Pass an importable module name or a path to a .py file"
                ) from None


def resolve_id(family_id: str) -> str:
    """The registered id for ``family_id``; accepts ids without the ``metarl/`` namespace."""
    load_plugins()
    if family_id in _REGISTRY:
        return family_id
    if f"metarl/{family_id}" in _REGISTRY:
        return f"metarl/{family_id}"
    # No version given: the latest registered version, as gymnasium.make does.
    for candidate in (family_id, f"metarl/{family_id}"):
        try:
            ns, name, version = gym.envs.registration.parse_env_id(candidate)
        except gym.error.Error:
            continue
        if version is None:
            versions = [v for k in _REGISTRY
                        for (kns, kname, v) in [gym.envs.registration.parse_env_id(k)]
                        if kns == ns and kname == name and v is not None]
            if versions:
                return gym.envs.registration.get_env_id(ns, name, max(versions))
    for prefix, why in _UNAVAILABLE.items():
        if family_id.startswith(prefix) or f"metarl/{family_id}".startswith(prefix):
            raise UnknownFamilyError(f"{family_id} is not available here: {why}")
    known = sorted(_REGISTRY)
    close = difflib.get_close_matches(family_id, known, n=5, cutoff=0.3)
    close += [k for k in difflib.get_close_matches(f"metarl/{family_id}", known, n=5, cutoff=0.5)
              if k not in close]
    hint = f" Did you mean: {', '.join(close[:5])}?" if close else ""
    raise UnknownFamilyError(
        f"unknown task family {family_id!r}.{hint} Run `metarl families` to list them; a family "
        "from your own module needs `--import MODULE` (CLI) or an import before use."
    )


def make_family(family_id: str, **kwargs: Any) -> TaskFamily:
    """An instance of a registered family; ``kwargs`` override its registered defaults."""
    return _REGISTRY[resolve_id(family_id)].make(**kwargs)


def spec(family_id: str) -> FamilySpec:
    return _REGISTRY[resolve_id(family_id)]


def family_ids() -> list[str]:
    """All registered ids, sorted."""
    load_plugins()
    return sorted(_REGISTRY)


def unregister(family_id: str) -> None:
    """Remove a registration (tests and interactive use)."""
    _REGISTRY.pop(family_id, None)
    if family_id in gym.registry:
        del gym.registry[family_id]
