"""The agent contract: what every meta-learner implements, documented once.

A meta-learner is a :class:`MetaAgent` subclass plus a config dataclass (an extension of
:class:`~metarl.config.RunConfig`), registered with :func:`register_agent`. Everything
else is shared: :func:`metarl.runs.train_run` is the one training loop (it calls
:meth:`MetaAgent.train_iteration`, logs, checkpoints with :meth:`MetaAgent.state_dict`),
:func:`metarl.evaluation.evaluate_run` the one evaluator (it calls
:meth:`MetaAgent.evaluate_adaptation` on the held-out tasks).

An agent is built as ``Agent(config, family, train_tasks)``: it never sees the held-out
tasks before it is evaluated on them.

Budgets. Agents adapt in one of two ways, named by :attr:`MetaAgent.budget_unit`:

- ``"inner steps"`` (MAML, Meta-SGD, Reptile, CAVIA): point k of the curve is the policy
  after k gradient steps, k = 0..K, each step on ``episodes`` fresh episodes of the task;
  the return at point k is the mean over the ``episodes`` episodes sampled there.
- ``"episodes"`` (RL², VariBAD): point k is episode k of a trial, k = 1..K, with memory
  kept across the episodes; the return at point k is the mean over ``episodes``
  independent trials.

The x axis shared by all agents is the number of episodes of experience in the new task
before the point: ``k · episodes`` for inner steps, ``k − 1`` for episodes of a trial.
"""

from __future__ import annotations

import difflib
import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from metarl.config import RunConfig
from metarl.errors import MetaRLError
from metarl.family import TaskFamily
from metarl.task import Task

BudgetUnit = Literal["inner steps", "episodes"]


@dataclass
class AdaptationResult:
    """Per-task returns at each adaptation budget, as an agent reports them."""

    #: budgets evaluated: ``[0, 1, ..., K]`` inner steps, or ``[1, ..., K]`` episodes.
    budgets: list[int]
    #: episodes of experience in the new task before each point (the shared x axis).
    episodes: list[float]
    #: ``(len(budgets), n_tasks)``: mean undiscounted return per task at each budget.
    returns: np.ndarray
    #: same shape, success rate per task, where the family defines success.
    success: np.ndarray | None = None
    #: what a budget counts (see the module docstring).
    budget_unit: BudgetUnit = "inner steps"

    def __post_init__(self) -> None:
        self.returns = np.asarray(self.returns, dtype=np.float64)
        rows = len(self.budgets)
        if len(self.episodes) != rows or self.returns.ndim != 2 or self.returns.shape[0] != rows:
            raise ValueError(f"an AdaptationResult needs one returns row (n_tasks,) and one "
                             f"x value per budget: {rows} budgets, {len(self.episodes)} x "
                             f"values, returns of shape {self.returns.shape}")
        if self.success is not None:
            self.success = np.asarray(self.success, dtype=np.float64)
            if self.success.shape != self.returns.shape:
                raise ValueError(f"success {self.success.shape} and returns "
                                 f"{self.returns.shape} must have the same shape")


class MetaAgent(ABC):
    """What the run machinery needs from a meta-learner (see the module docstring)."""

    #: the agent's registered name (``metarl train NAME``).
    name: ClassVar[str] = ""
    #: how :meth:`evaluate_adaptation` counts its budget.
    budget_unit: ClassVar[BudgetUnit] = "inner steps"
    #: metric keys shown in the progress bar, ``{label: metric key}``.
    progress_keys: ClassVar[dict[str, str]] = {}

    def __init__(self, config: RunConfig, family: TaskFamily, train_tasks: Sequence[Task]) -> None:
        self.config = config
        self.family = family
        self.train_tasks = list(train_tasks)

    @abstractmethod
    def train_iteration(self, iteration: int) -> dict[str, float]:
        """One meta-iteration; returns scalar metrics for the CSV / TensorBoard / progress
        bar, among them ``env_steps``: the environment steps this iteration sampled.
        Randomness must come from ``(config.seed, iteration)`` so that resuming is exact."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training (parameters, optimizer state, counters)."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; raise :class:`~metarl.errors.CheckpointError` on a
        mismatch."""

    @abstractmethod
    def evaluate_adaptation(self, tasks: Sequence[Task], budget: int, episodes: int,
                            seed: int) -> AdaptationResult:
        """Adapt to each of ``tasks`` from the meta-learned state, with ``budget`` points
        of ``episodes`` episodes each (see the module docstring), and report the returns
        (and success) per task at every point. Leaves the agent unchanged."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release samplers / engines."""


# ---------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------
class UnknownAgentError(MetaRLError, KeyError):
    """An agent name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class AgentSpec:
    """A registered agent: its class, its config dataclass and a one-line description."""

    name: str
    agent_cls: type[MetaAgent]
    config_cls: type
    description: str = ""
    #: preset used by ``metarl train NAME`` without --config / --family.
    default_preset: str | None = None


_AGENTS: dict[str, AgentSpec] = {}


def register_agent(name: str, agent_cls: type[MetaAgent], config_cls: type,
                   description: str = "", default_preset: str | None = None,
                   override: bool = False) -> AgentSpec:
    """Make an agent available to ``metarl train NAME``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"agent name {name!r} must be lowercase letters, digits, underscores")
    if name in _AGENTS and not override and _AGENTS[name].agent_cls is not agent_cls:
        raise ValueError(f"agent {name!r} is already registered")
    spec = AgentSpec(name, agent_cls, config_cls, description, default_preset)
    _AGENTS[name] = spec
    return spec


def _load_builtin_agents() -> None:
    importlib.import_module("metarl.agents")  # agents/__init__.py imports each agent module


def agent_names() -> list[str]:
    _load_builtin_agents()
    return sorted(_AGENTS)


def get_agent(name: str) -> AgentSpec:
    """The registered agent ``name``, or an error listing the known ones."""
    _load_builtin_agents()
    if name in _AGENTS:
        return _AGENTS[name]
    close = difflib.get_close_matches(name, list(_AGENTS), n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownAgentError(f"unknown agent {name!r}.{hint} Known agents: "
                            f"{', '.join(sorted(_AGENTS)) or '(none)'}")


__all__ = ["AdaptationResult", "AgentSpec", "BudgetUnit", "MetaAgent", "UnknownAgentError",
           "agent_names", "get_agent", "register_agent"]
