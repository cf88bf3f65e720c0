"""Shared fixtures."""

from __future__ import annotations

import pytest

import metarl


def representative_family_ids() -> list[str]:
    """Every registered family, with Meta-World's 53 ids cut to two that cover its code
    (ML1 and ML10; the per-class ML1 ids differ by a keyword only, ML45 by its class
    list, and each would cost a benchmark build in every contract test)."""
    keep = {"metarl/MetaWorld-ML1-v3", "metarl/MetaWorld-ML10-v3"}
    return [fid for fid in metarl.family_ids() if "/MetaWorld-" not in fid or fid in keep]


def _mujoco_backends() -> tuple[str, ...]:
    try:
        from metarl.mujoco_backend import available_backends
    except ImportError:  # no mujoco: the MuJoCo tests skip themselves
        return ()
    return available_backends()


@pytest.fixture(params=_mujoco_backends())
def mujoco_backend(request, monkeypatch) -> str:
    """Run the test once per MuJoCo backend the installed ``mujoco`` offers (``batch`` on
    MuJoCo 4, ``threads`` everywhere): the single env and every engine the test builds
    use it."""
    monkeypatch.setenv("METARL_MUJOCO_BACKEND", request.param)
    return request.param
