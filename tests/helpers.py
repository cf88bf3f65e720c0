"""Assertions shared by several test files."""

from __future__ import annotations

import torch

#: The tensors of a sampled batch that must match exactly between two samplers.
BATCH_FIELDS = ("obs", "actions", "rewards", "mask", "log_probs", "task_index")


def assert_same_batch(got, expected) -> None:
    """Two batches of the same tasks, policy and seed are equal, field for field."""
    for name in BATCH_FIELDS:
        assert torch.equal(getattr(got, name), getattr(expected, name)), name
