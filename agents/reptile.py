"""Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms")
for RL, read top to bottom.

One meta-iteration:

1. Draw ``meta_batch_size`` train tasks.
2. Per task, k = ``num_inner_steps`` steps of the inner optimizer from θ: roll out
   ``episodes_per_task`` episodes with the current per-task parameters, take one VPG step
   (SGD, step size ``inner_lr``, the same loss, baseline and advantages as MAML's inner
   loop), roll out again, ... giving θ̃_b after k steps. All tasks run batched.
3. Outer step: ``θ ← θ + ε · mean_b (θ̃_b − θ)``, with ε annealed linearly from
   ``outer_lr`` to ``outer_lr_final`` over the run (Nichol et al.'s schedule).

No second derivatives, no validation rollouts, no trust region: the meta-update is the
average of where the inner loop went. With k = 1 it is joint training on the task batch
(−ε α times the first-order MAML gradient with no inner step); with k > 1 the difference
contains the terms that favour fast adaptation (Nichol et al. §5). At test time the
agent adapts as it trained: 0..K steps of the same inner optimizer
(:meth:`~metarl.agents.maml.InnerLoopAgent.evaluate_adaptation`).

Sampling, the inner step, evaluation and checkpoints are MAML's machinery
(:class:`~metarl.agents.maml.InnerLoopAgent`); this file is the outer step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from metarl.agent import register_agent
from metarl.agents.maml import InnerLoopAgent, InnerLoopConfig, TaskBatch
from metarl.policies import Params
from metarl.rollout import EpisodeBatch


@dataclasses.dataclass
class ReptileConfig(InnerLoopConfig):
    #: k: inner SGD steps per task in training (MAML's default of 1 would make Reptile
    #: joint training).
    num_inner_steps: int = 5
    #: outer step size ε at the first iteration, annealed linearly to ``outer_lr_final``.
    outer_lr: float = 1.0
    outer_lr_final: float = 0.0

    def validate(self) -> None:
        super().validate()
        self.check({"num_inner_steps >= 1": self.num_inner_steps >= 1,
                     "outer_lr > 0": self.outer_lr > 0, "outer_lr_final >= 0": self.outer_lr_final >= 0})


def reptile_update(theta: Mapping[str, torch.Tensor], adapted: Mapping[str, torch.Tensor],
                   step_size: float) -> Params:
    """``θ + ε · mean_b (θ̃_b − θ)`` for per-task parameters ``adapted`` of shape ``(B, ...)``."""
    return {k: v + step_size * (adapted[k].mean(0) - v) for k, v in theta.items()}


class ReptileAgent(InnerLoopAgent):
    """Reptile: SGD inner loop per task, outer step towards the mean adapted parameters."""

    name = "reptile"
    progress_keys = {"pre": "return/pre", "after k-1": "return/post", "eps": "outer_lr"}
    validation_rollouts = False  # the outer step needs no episodes of θ̃

    def meta_update(self, iteration: int, raw: list[EpisodeBatch],
                    train_batches: list[TaskBatch], adapted: Params) -> dict[str, float]:
        cfg = self.config
        frac = iteration / max(cfg.num_iterations, 1)
        step_size = cfg.outer_lr + frac * (cfg.outer_lr_final - cfg.outer_lr)
        with self._timed("outer"), torch.no_grad():
            new = reptile_update(self.theta, adapted, step_size)
            step_norm = float(torch.cat([(new[k] - v).flatten() for k, v in self.theta.items()]).norm())
        if not all(torch.isfinite(v).all() for v in new.values()):
            return self._skip(iteration, "updated parameters not finite")
        self.theta = {k: v.detach().requires_grad_(True) for k, v in new.items()}
        return {"outer_lr": step_size, "step_norm": step_norm, "skipped": 0.0}


register_agent("reptile", ReptileAgent, ReptileConfig,
               description="Reptile (Nichol et al. 2018): SGD inner loop, outer step towards "
                           "the mean adapted parameters", default_preset="reptile_default")

__all__ = ["ReptileAgent", "ReptileConfig", "reptile_update"]
