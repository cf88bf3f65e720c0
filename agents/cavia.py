"""CAVIA (Zintgraf, Shiarlis, Kurin, Hofmann & Whiteson 2019, "Fast Context Adaptation via
Meta-Learning") for RL, read top to bottom.

The policy reads a context vector φ joined to the observation (``context_size``
entries, zeros at the start of every task). Per task, the inner loop adapts **only φ**:
``φ'_b = φ − α ∇_φ L_in,b(θ, φ)`` with MAML's VPG inner loss, from φ = 0; the network
weights θ never change inside a task. The outer loop is MAML's TRPO on θ alone, through
the inner loop (second order unless ``first_order``). At test time the agent adapts
its context by the same inner steps (0..K), so a new task is met by moving a handful of
numbers rather than every weight.

Everything but the parameter set is MAML's machinery (:mod:`metarl.agents.maml`): the
inner step adapts the names its step sizes name (here only ``context``), and the TRPO
curvature is the generic double-backward Hessian of the KL through the inner loop,
which is exact: the KL's gradient vanishes at the old policy, so its Hessian there is
``Jᵀ F J``. The context is not a meta-parameter: it starts at zero for every task.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from metarl.agent import register_agent
from metarl.agents.maml import (
    FisherVP,
    MAMLAgent,
    MAMLConfig,
    TaskBatch,
    Trace,
    kl_hvp,
    outer_loss_and_kl,
)
from metarl.policies import Dist, Params, make_policy

CONTEXT = "context"


@dataclasses.dataclass
class CAVIAConfig(MAMLConfig):
    #: entries of the context vector φ (the only parameters adapted per task).
    context_size: int = 5
    #: inner step size on φ (CAVIA's 2D-navigation setting: 1.0).
    inner_lr: float = 1.0

    def validate(self) -> None:
        super().validate()
        self.check({"context_size >= 1": self.context_size >= 1})


class CAVIAAgent(MAMLAgent):
    """MAML's TRPO on the network weights, with an inner loop on the context alone."""

    name = "cavia"

    def build_policy(self, observation_space: Any, action_space: Any) -> torch.nn.Module:
        cfg = self.config
        return make_policy(observation_space, action_space, cfg.hidden_sizes, cfg.activation,
                           cfg.init_std, context_size=cfg.context_size)

    def _inner_lrs(self, lrs: Params) -> Mapping[str, torch.Tensor | float]:
        return {CONTEXT: self.config.inner_lr}

    def meta_parameters(self) -> list[torch.Tensor]:
        """The network weights θ (not the context: it starts at zero in every task)."""
        return [v for k, v in self.theta.items() if k != CONTEXT]

    def _split(self, flat: list[torch.Tensor]) -> tuple[Params, Params]:
        weights = iter(flat)
        theta = {k: (torch.zeros_like(v.detach()) if k == CONTEXT else next(weights))
                 for k, v in self.theta.items()}
        return theta, self.lrs

    def _fisher_vp(self, meta: list[torch.Tensor], theta: Params, lrs: Params, trace: Trace,
                   adapted: Params, valid: TaskBatch, old_dist: Dist) -> FisherVP:
        with torch.enable_grad():
            _, kl = outer_loss_and_kl(self.policy, adapted, valid, old_dist)
        return kl_hvp(kl, meta, self.config.cg_damping)


register_agent("cavia", CAVIAAgent, CAVIAConfig,
               description="CAVIA (Zintgraf et al. 2019): a context vector adapted by the inner "
                           "loop, network weights by MAML's TRPO", default_preset="cavia_default")

__all__ = ["CAVIAAgent", "CAVIAConfig"]
