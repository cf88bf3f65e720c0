"""Bad input fails with one clear line; bugs keep their tracebacks; nothing a flag says is
ignored; a run folder remembers the modules its family needs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import write_family_module

import metarl
from metarl.cli import main as cli_main
from metarl.errors import CheckpointError, ConfigError, FamilyArgumentError, UserModuleError
from metarl.runs import create_run, load_checkpoint, open_run, set_execution, train_run

TINY = {"meta_batch_size": 2, "episodes_per_task": 2, "horizon": 10, "hidden_sizes": [8],
        "num_train_tasks": 6, "num_test_tasks": 2, "cg_iters": 3, "eval_episodes": 2,
        "eval_steps": 1, "num_iterations": 2, "checkpoint_every": 1}
TINY_SET = [item for k, v in TINY.items() for item in ("--set", f"{k}={v}")]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``metarl ARGS`` in a fresh interpreter (nothing registered in this one leaks in)."""
    return subprocess.run([sys.executable, "-m", "metarl.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_resume_applies_execution_flags_and_refuses_the_others(tmp_path, monkeypatch, capsys):
    run = create_run("maml", overrides=TINY, out=tmp_path / "r")
    train_run(run, progress=False, stop_after=1)
    seen = {}

    def fake_train_run(run, resume=False, progress=True):
        seen.update(workers=run.config.workers, device=run.config.device, resume=resume)

    monkeypatch.setattr("metarl.runs.train_run", fake_train_run)
    assert cli_main(["train", "--resume", str(run.path), "--workers", "2", "--device", "cpu",
                     "--no-eval", "--no-progress"]) == 0
    assert seen == {"workers": 2, "device": "cpu", "resume": True}
    assert "workers=2" in capsys.readouterr().out
    assert yaml.safe_load((run.path / "config.yaml").read_text())["config"]["workers"] == 2
    # the checkpoint still fits the run's config (workers is how it runs, not what)
    assert load_checkpoint(run.path / "checkpoint.pt", "maml", open_run(run.path).config)[
        "iteration"] == 0

    # Flags that change what the run computes are refused, even when falsy (--seed 0).
    for flags in (["--seed", "0"], ["--set", "inner_lr=0.2"], ["--family", "PointNav2D-v0"]):
        assert cli_main(["train", "--resume", str(run.path), *flags, "--no-eval"]) == 2
        assert "drop " + flags[0] in capsys.readouterr().err
    with pytest.raises(ConfigError, match="cannot change on resume"):
        set_execution(open_run(run.path), {"seed": 3})


def test_counts_must_be_positive(tmp_path, capsys):
    for argv in (["show", "PointNav2D-v0", "--train", "-5"], ["show", "PointNav2D-v0", "--test", "0"],
                 ["train", "maml", "--workers", "0", "--out", str(tmp_path / "a")],
                 ["evaluate", str(tmp_path), "--tasks", "0"]):
        with pytest.raises(SystemExit) as exc:
            cli_main(argv)
        assert exc.value.code == 2
        assert "must be >= " in capsys.readouterr().err
    with pytest.raises(ConfigError, match="num_test_tasks >= 1"):
        create_run("maml", overrides={**TINY, "num_test_tasks": 0}, out=tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_bug_keeps_its_traceback_and_bad_input_is_one_line(tmp_path, monkeypatch, capsys):
    from metarl.agents.maml import MAMLAgent

    def broken(self, iteration):
        raise ValueError("a bug deep in training")

    monkeypatch.setattr(MAMLAgent, "train_iteration", broken)
    with pytest.raises(ValueError, match="a bug deep in training"):
        cli_main(["train", "maml", *TINY_SET, "--out", str(tmp_path / "r"), "--no-progress"])
    # bad input stays a one-line error with exit status 2
    assert cli_main(["families", "--import", str(tmp_path / "missing.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli_main(["families", "--import", "no_such_module_anywhere"]) == 2
    assert "importable module name" in capsys.readouterr().err
    with pytest.raises(UserModuleError):
        metarl.registry.import_family_modules(["no_such_module_anywhere"])
    with pytest.raises(FamilyArgumentError, match="bad family keyword"):
        metarl.make_family("metarl/PointNav2D-v0", no_such_kwarg=1)


def test_a_module_that_raises_while_importing_keeps_its_traceback(tmp_path):
    (tmp_path / "fails.py").write_text("import metarl\nraise RuntimeError('inside the module')\n")
    proc = _cli("families", "--import", str(tmp_path / "fails.py"))
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "RuntimeError: inside the module" in proc.stderr


def test_an_agent_module_that_fails_to_import_fails_loudly():
    code = textwrap.dedent("""
        import sys
        sys.modules["metarl.agents.rl2"] = None      # import of it now raises ImportError
        from metarl.runs import get_agent
        get_agent("maml")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "agent module metarl.agents.rl2 failed to import" in proc.stderr


def test_an_rl2_checkpoint_for_another_family_is_a_clear_error(tmp_path):
    from metarl.agents.rl2 import RL2, RL2Config
    from metarl.config import make_config

    bandit = metarl.make_family("metarl/Bandit-v0", arms=5, pulls=10)
    cfg = make_config(RL2Config, {"family": bandit.id, "family_kwargs": {"arms": 5, "pulls": 10},
                                  "fresh_tasks": True, "num_train_tasks": 0, "hidden_size": 8,
                                  "trials_per_iter": 4, "num_minibatches": 1})
    state = RL2(cfg, bandit, []).state_dict()
    mdp = metarl.make_family("metarl/TabularMDP-v0")
    other = RL2(make_config(RL2Config, {"family": mdp.id, "fresh_tasks": True, "hidden_size": 8,
                                        "num_train_tasks": 0}), mdp, [])
    with pytest.raises(CheckpointError, match="trained on 'metarl/Bandit-v0'.*TabularMDP"):
        other.load_state_dict(state)
    RL2(cfg, bandit, []).load_state_dict(state)


def test_a_run_remembers_its_import_modules(tmp_path):
    (tmp_path / "lab").mkdir()
    module = write_family_module(tmp_path / "lab", "reach_families", "testlab/Reach1D-v0")
    out = tmp_path / "run"
    proc = _cli("train", "maml", "--import", str(module), "--family", "testlab/Reach1D-v0",
                *TINY_SET, "--out", str(out), "--no-eval", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    meta = yaml.safe_load((out / "config.yaml").read_text())
    assert meta["imports"] == [str(module.resolve())]
    assert (out / "imports" / "reach_families.py").read_text() == module.read_text()
    # Resume (of the finished run: it rebuilds the agent and its family) and evaluate, in
    # fresh processes, without --import.
    proc = _cli("train", "--resume", str(out), "--no-eval", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    module.unlink()  # the original is gone: the run's copy is imported instead
    proc = _cli("evaluate", str(out), "--no-random")
    assert proc.returncode == 0, proc.stderr
    assert (out / "eval" / "curve.json").is_file()
