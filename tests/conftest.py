"""Shared fixtures."""

from __future__ import annotations

import pytest


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
