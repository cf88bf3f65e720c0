"""Fault drills: training killed with SIGKILL at random moments and resumed ends with the
parameters of an uninterrupted run; a checkpoint write that fails part-way (a full disk)
leaves the previous checkpoint; a damaged run folder is a clear error that changes nothing.

The kill drills run ``metarl train`` in subprocesses; the default suite kills each agent
once, ``-m slow`` three times.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import metarl.atomic
from metarl.cli import main as cli_main
from metarl.errors import CheckpointError
from metarl.runs import create_run, load_checkpoint, open_run, read_metrics, train_run

# Small runs that take a few seconds of training, checkpointed every iteration.
DRILLS = {
    "maml": ["maml", "--config", "maml_default", "--set", "num_iterations=12",
             "--set", "meta_batch_size=4", "--set", "episodes_per_task=4",
             "--set", "hidden_sizes=[16]", "--set", "checkpoint_every=1"],
    "rl2": ["rl2", "--config", "rl2_default", "--set", "num_iterations=16",
            "--set", "trials_per_iter=32", "--set", "hidden_size=16", "--set", "checkpoint_every=1"],
}
TINY = {"meta_batch_size": 2, "episodes_per_task": 2, "horizon": 10, "hidden_sizes": [8],
        "num_train_tasks": 6, "num_test_tasks": 2, "cg_iters": 3, "eval_episodes": 2,
        "eval_steps": 1, "num_iterations": 4, "checkpoint_every": 1}


def _train(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "metarl.cli", "train", *args, "--no-eval",
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()


def _rows(metrics: Path) -> int:
    return max(0, len(metrics.read_text().splitlines()) - 1) if metrics.exists() else 0


def _wait_for_a_new_row(proc: subprocess.Popen, metrics: Path) -> bool:
    """Wait until the process has logged an iteration (it is training, past its imports);
    False if it finished first."""
    start, deadline = _rows(metrics), time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if _rows(metrics) > start:
            return True
        time.sleep(0.05)
    raise TimeoutError(f"no iteration logged in {metrics} for 300 s")


def _final_state(run_dir: Path) -> tuple[int, dict]:
    payload = load_checkpoint(run_dir / "checkpoint.pt")
    return payload["iteration"], payload["agent_state"]


def _assert_same_tensors(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tensors(x, y, f"{where}[{i}]")


def _deterministic_columns(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if not k.startswith("time") and "per_s" not in k}
            for r in rows]


def _kill_drill(tmp_path: Path, agent: str, kills: int) -> None:
    args = DRILLS[agent]
    reference = tmp_path / "reference"
    _finish(_train([*args, "--out", str(reference)]))

    run = tmp_path / "killed"
    rng = random.Random(kills)
    proc, killed = _train([*args, "--out", str(run)]), 0
    while killed < kills and _wait_for_a_new_row(proc, run / "metrics.csv"):
        time.sleep(rng.uniform(0.0, 0.6))  # a random moment of the next iterations
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed += 1
        proc = _train(["--resume", str(run)])
    _finish(proc)
    assert killed == kills, "training finished before every kill; make the drill run longer"

    it_ref, state_ref = _final_state(reference)
    it_run, state_run = _final_state(run)
    assert it_ref == it_run
    _assert_same_tensors(state_ref, state_run, agent)
    assert _deterministic_columns(read_metrics(run)) == _deterministic_columns(read_metrics(reference))


@pytest.mark.parametrize("agent", sorted(DRILLS))
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, agent):
    _kill_drill(tmp_path, agent, kills=1)


@pytest.mark.slow
@pytest.mark.parametrize("agent", sorted(DRILLS))
def test_three_kills_then_resume_equal_an_uninterrupted_run(tmp_path, agent):
    _kill_drill(tmp_path, agent, kills=3)


def test_a_checkpoint_write_that_fails_part_way_leaves_the_previous_one(tmp_path, monkeypatch):
    full = create_run("maml", overrides=TINY, out=tmp_path / "full")
    train_run(full, progress=False)

    run = create_run("maml", overrides=TINY, out=tmp_path / "r")
    train_run(run, progress=False, stop_after=2)
    real_open = open

    class HalfWrite:
        """A file that writes half of what it is given, then finds the disk full."""

        def __init__(self, fh):
            self.fh = fh

        def write(self, data: bytes) -> int:
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def full_disk_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return HalfWrite(fh) if ".checkpoint.pt.tmp" in str(path) else fh

    monkeypatch.setattr(metarl.atomic, "open", full_disk_open, raising=False)
    with pytest.raises(OSError, match="No space left"):
        train_run(open_run(run.path), resume=True, progress=False)
    monkeypatch.undo()
    assert load_checkpoint(run.path / "checkpoint.pt")["iteration"] == 1
    assert not [p.name for p in run.path.iterdir() if ".tmp" in p.name]

    train_run(open_run(run.path), resume=True, progress=False)
    _assert_same_tensors(_final_state(full.path), _final_state(run.path), "maml")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture
def stopped_run(tmp_path):
    run = create_run("maml", overrides=TINY, out=tmp_path / "r")
    train_run(run, progress=False, stop_after=3)
    return run.path


def test_a_truncated_metrics_file_is_a_clear_error_that_changes_nothing(stopped_run, capsys):
    metrics = stopped_run / "metrics.csv"
    text = metrics.read_text()
    metrics.write_text(text[: text.index("\n2,") + 6])  # cut inside iteration 2's row
    before = _snapshot(stopped_run)
    with pytest.raises(CheckpointError, match="truncated: it has 2 of the 3 iterations"):
        train_run(open_run(stopped_run), resume=True, progress=False)
    assert cli_main(["train", "--resume", str(stopped_run), "--no-eval", "--no-progress"]) == 2
    assert "nothing was changed" in capsys.readouterr().err
    assert _snapshot(stopped_run) == before
    # A row cut off past the checkpoint (a kill while it was written) is simply dropped.
    metrics.write_text(text + "3,-1")
    train_run(open_run(stopped_run), resume=True, progress=False)
    assert [r["iteration"] for r in read_metrics(stopped_run)] == [0, 1, 2, 3]


def test_a_missing_task_list_is_a_clear_error_that_changes_nothing(stopped_run, capsys):
    (stopped_run / "tasks_test.json").unlink()
    before = _snapshot(stopped_run)
    for argv in (["train", "--resume", str(stopped_run), "--no-eval"], ["evaluate", str(stopped_run)]):
        assert cli_main(argv) == 2
        assert "missing task list" in capsys.readouterr().err
    assert _snapshot(stopped_run) == before


def test_an_unknown_key_in_a_hand_edited_config_is_a_clear_error_that_changes_nothing(
        stopped_run, capsys):
    config = stopped_run / "config.yaml"
    config.write_text(config.read_text().replace("  inner_lr:", "  inner_lrr:"))
    before = _snapshot(stopped_run)
    for argv in (["train", "--resume", str(stopped_run), "--no-eval"], ["evaluate", str(stopped_run)]):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert "unknown config key 'inner_lrr'" in err and "config.yaml" in err
    assert _snapshot(stopped_run) == before
