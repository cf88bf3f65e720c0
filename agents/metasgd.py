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
move by a few percent at most and it ends level with MAML (README, "MAML and Meta-SGD
on 2D navigation").
"""

from __future__ import annotations

import dataclasses

from metarl.agents.maml import MAMLAgent, MAMLConfig
from metarl.errors import ConfigError
from metarl.runs import register_agent


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
    """MAML's machinery with ``self.lrs`` among the meta-parameters."""

    name = "metasgd"
    progress_keys = {"pre": "return/pre", "post": "return/post", "lr": "inner_lr/mean"}

    def __init__(self, config: MetaSGDConfig, *args, **kwargs) -> None:
        # Decide before the base class builds self.lrs (requires_grad follows learn_lr).
        self.learn_lr = bool(config.learn_inner_lr)
        self.log_lr = bool(config.log_inner_lr)
        super().__init__(config, *args, **kwargs)

    def _inner_lrs(self, lrs):
        # Always the per-element tensors (frozen or learned): with frozen ones equal to
        # inner_lr this computes exactly MAML's update.
        return lrs


register_agent("metasgd", MetaSGDAgent, MetaSGDConfig,
               description="Meta-SGD (Li et al. 2017): MAML with a meta-learned per-element "
                           "inner learning rate", default_preset="metasgd_default")
