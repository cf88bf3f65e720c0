"""Users' own families: the Python API, entry points of an installed package, and --import."""

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from conftest import FAMILY_SOURCE, write_family_module

import metarl
from metarl import registry


def test_register_through_python_api(tmp_path):
    namespace: dict = {}
    exec(FAMILY_SOURCE.replace("FAMILY_ID", "mylab/Reach1D-v0"), namespace)  # noqa: S102
    try:
        metarl.register(namespace["Reach1D"])
        assert "mylab/Reach1D-v0" in metarl.family_ids()
        env = gym.make("mylab/Reach1D-v0", task={"target": 0.5})
        env.reset(seed=0)
        _, reward, *_ = env.step(np.array([0.5], dtype=np.float32))
        assert reward == pytest.approx(0.0)
        fam = metarl.make_family("mylab/Reach1D-v0")
        assert len(fam.split(10, 5, seed=0).test) == 5
        with pytest.raises(ValueError, match="already registered"):
            metarl.register(namespace["Reach1D"], kwargs={"horizon": 5})
        metarl.register(namespace["Reach1D"], id="mylab/Reach1D-v1", kwargs={"horizon": 5})
        assert metarl.make_family("mylab/Reach1D").horizon == 5  # latest version
    finally:
        metarl.unregister("mylab/Reach1D-v0")
        metarl.unregister("mylab/Reach1D-v1")


def test_register_needs_a_versioned_id():
    namespace: dict = {}
    exec(FAMILY_SOURCE.replace("FAMILY_ID", "mylab/NoVersion"), namespace)  # noqa: S102
    with pytest.raises(ValueError, match="version suffix"):
        metarl.register(namespace["Reach1D"])


def _make_plugin_package(root, family_id="plugin/Reach1D-v0"):
    """An 'installed' distribution: a package plus a dist-info with an entry point."""
    pkg = root / "reachplugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(FAMILY_SOURCE.replace("FAMILY_ID", family_id))
    dist = root / "reachplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reachplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[metarl.families]\nreach = reachplugin:Reach1D\n")
    return root


def test_entry_point_family_is_found(tmp_path, monkeypatch):
    _make_plugin_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry.load_plugins(force=True)
        assert "plugin/Reach1D-v0" in metarl.family_ids()
        env = gym.make("plugin/Reach1D-v0")
        env.reset(seed=0)
    finally:
        metarl.unregister("plugin/Reach1D-v0")
        sys.modules.pop("reachplugin", None)


def _run_cli(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "metarl.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_entry_point_family_listed_by_cli(tmp_path):
    _make_plugin_package(tmp_path)
    out = _run_cli("families", "--json", env_extra={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    ids = [row["id"] for row in json.loads(out.stdout)]
    assert "plugin/Reach1D-v0" in ids and "metarl/PointNav2D-v0" in ids


def test_import_option_registers_a_family_from_a_file(tmp_path):
    path = write_family_module(tmp_path, "my_families", "file/Reach1D-v0")
    out = _run_cli("families", "--import", str(path))
    assert out.returncode == 0, out.stderr
    assert "file/Reach1D-v0" in out.stdout
    out = _run_cli("show", "file/Reach1D-v0", "--import", str(path), "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["params"] == {"target": "U[-1, 1]"} and len(shown["samples"]) == 3


def test_import_option_takes_a_module_name(tmp_path):
    write_family_module(tmp_path, "my_module_families", "mod/Reach1D-v0")
    out = _run_cli("show", "mod/Reach1D-v0", "--import", "my_module_families",
                   env_extra={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "mod/Reach1D-v0" in out.stdout


def test_cli_errors_are_clear():
    out = _run_cli("show", "metarl/PointNav3D-v0")
    assert out.returncode == 2
    assert "unknown task family" in out.stderr and "metarl/PointNav2D-v0" in out.stderr
    assert "Traceback" not in out.stderr
    out = _run_cli("families", "--import", "no_such_module_xyz")
    assert out.returncode == 2 and "no_such_module_xyz" in out.stderr
    out = _run_cli("families", "--import", "/nonexistent/fams.py")
    assert out.returncode == 2 and "no such file" in out.stderr


def test_cli_help_and_tables():
    out = _run_cli("--help")
    assert out.returncode == 0 and "families" in out.stdout and "show" in out.stdout
    out = _run_cli("families")
    assert out.returncode == 0 and "metarl/Bandit-v0" in out.stdout and "RL²" in out.stdout
    out = _run_cli("show", "TabularMDP-v0")
    assert out.returncode == 0 and "Dirichlet" in out.stdout and "held-out" in out.stdout
