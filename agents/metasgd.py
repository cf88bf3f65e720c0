"""Meta-SGD (Li, Zhou, Chen & Li 2017) for RL: MAML with a learned inner learning rate.

Every element of the policy parameters θ gets its own inner step size α (same shape
as θ, initialized to ``inner_lr``); the inner step is ``θ' = θ − α ∘ ∇L_in(θ)`` and the
TRPO outer step optimizes (θ, α) jointly. Everything else (sampling, baseline, inner
loss, TRPO, checkpoints, evaluation) is MAML's; see :mod:`metarl.agents.maml`.
``learn_inner_lr=False`` freezes α at ``inner_lr``, which is exactly MAML.
"""

from __future__ import annotations

import dataclasses

from metarl.agents.maml import MAMLAgent, MAMLConfig

from metarl.runs import register_agent


@dataclasses.dataclass
class MetaSGDConfig(MAMLConfig):
    #: meta-learn the per-element inner learning rates (False: frozen at inner_lr = MAML).
    learn_inner_lr: bool = True


class MetaSGDAgent(MAMLAgent):
    """MAML's machinery with ``self.lrs`` among the meta-parameters."""

    name = "metasgd"
    progress_keys = {"pre": "return/pre", "post": "return/post", "lr": "inner_lr/mean"}

    def __init__(self, config: MetaSGDConfig, *args, **kwargs) -> None:
        # Decide before the base class builds self.lrs (requires_grad follows learn_lr).
        self.learn_lr = bool(config.learn_inner_lr)
        super().__init__(config, *args, **kwargs)

    def _inner_lrs(self, lrs):
        # Always the per-element tensors (frozen or learned): with frozen ones equal to
        # inner_lr this computes exactly MAML's update.
        return lrs


register_agent("metasgd", MetaSGDAgent, MetaSGDConfig,
               description="Meta-SGD (Li et al. 2017): MAML with a meta-learned per-element "
                           "inner learning rate", default_preset="metasgd_default")
