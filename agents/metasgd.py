"""Meta-SGD (Li, Zhou, Chen & Li 2017) for RL: MAML with a learned inner learning rate.

Every element of the policy parameters θ gets its own inner step size α (same shape
as θ, initialized to ``inner_lr``); the inner step is ``θ' = θ − α ∘ ∇L_in(θ)`` and the
TRPO outer step optimizes (θ, α) jointly. Everything else (sampling, baseline, inner
loss, TRPO, checkpoints, evaluation) is MAML's; see :mod:`metarl.agents.maml`.
``learn_inner_lr=False`` freezes α at ``inner_lr``, which is exactly MAML.
``log_inner_lr=True`` lets TRPO move log α instead of α: every rate stays positive, and
a step changes each rate by a factor rather than by an amount. The PointNav2D presets
use it: moved directly, the rates of a 20-task meta-batch drift (some turned negative
within 70 meta-iterations) and Meta-SGD ended 0.2 below MAML; in log coordinates they
move by a few percent at most and it ends level with MAML (docs/results.md, "MAML and
Meta-SGD on 2D navigation").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from metarl.agent import register_agent
from metarl.agents.maml import FisherVP, MAMLAgent, MAMLConfig, TaskBatch, Trace, maml_kl_hvp
from metarl.errors import ConfigError
from metarl.family import TaskFamily
from metarl.policies import Dist, Params
from metarl.task import Task


@dataclasses.dataclass
class MetaSGDConfig(MAMLConfig):
    #: meta-learn the per-element inner learning rates (False: frozen at inner_lr = MAML).
    learn_inner_lr: bool = True
    #: TRPO moves log α (rates stay positive) instead of α.
    log_inner_lr: bool = False

    def validate(self) -> None:
        super().validate()
        if self.log_inner_lr and self.inner_lr <= 0:
            raise ConfigError("log_inner_lr needs a positive inner_lr (log α starts at log inner_lr)")


class MetaSGDAgent(MAMLAgent):
    """MAML's machinery with the per-element rates ``self.lrs`` among the meta-parameters."""

    name = "metasgd"
    progress_keys = {"pre": "return/pre", "post": "return/post", "lr": "inner_lr/mean"}

    def __init__(self, config: MetaSGDConfig, family: TaskFamily,
                 train_tasks: Sequence[Task]) -> None:
        super().__init__(config, family, train_tasks)
        self.learn_lr, self.log_lr = bool(config.learn_inner_lr), bool(config.log_inner_lr)
        self.lrs = {k: v.requires_grad_(self.learn_lr) for k, v in self.lrs.items()}

    def _inner_lrs(self, lrs: Params) -> Mapping[str, torch.Tensor | float]:
        # Always the per-element tensors (frozen or learned): with frozen ones equal to
        # inner_lr this computes exactly MAML's update.
        return lrs

    def meta_parameters(self) -> list[torch.Tensor]:
        """θ, plus the inner rates α (or log α, which keeps every rate positive)."""
        params = super().meta_parameters()
        if self.learn_lr:
            params += [v.log() if self.log_lr else v for v in self.lrs.values()]
        return params

    def _split(self, flat: list[torch.Tensor]) -> tuple[Params, Params]:
        """Meta-parameters -> (θ, α), undoing the log of :meth:`meta_parameters`."""
        n = len(self.theta)
        theta, lrs = super()._split(flat[:n])
        if self.learn_lr:
            lrs = {k: v.exp() if self.log_lr else v for k, v in zip(self.lrs, flat[n:], strict=True)}
        return theta, lrs

    def _set_meta_parameters(self, flat: list[torch.Tensor]) -> None:
        super()._set_meta_parameters(flat)
        if self.learn_lr:
            _, lrs = self._split(flat)
            self.lrs = {k: v.detach().requires_grad_(True) for k, v in lrs.items()}

    def _fisher_vp(self, meta: list[torch.Tensor], theta: Params, lrs: Params, trace: Trace,
                   adapted: Params, valid: TaskBatch, old_dist: Dist) -> FisherVP:
        cfg = self.config
        return maml_kl_hvp(self.policy, theta, lrs, trace, adapted, valid, old_dist,
                           cfg.cg_damping, learn_lr=self.learn_lr,
                           second_order=not cfg.first_order, log_lr=self.log_lr)

    def train_iteration(self, iteration: int) -> dict[str, float]:
        metrics = super().train_iteration(iteration)
        metrics["inner_lr/mean"] = float(torch.cat([v.detach().flatten()
                                                    for v in self.lrs.values()]).mean())
        return metrics

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.lrs = {k: v.requires_grad_(self.learn_lr) for k, v in self.lrs.items()}


register_agent("metasgd", MetaSGDAgent, MetaSGDConfig,
               description="Meta-SGD (Li et al. 2017): MAML with a meta-learned per-element "
                           "inner learning rate", default_preset="metasgd_default")
