"""Run folders: config resolution and validation, checkpoints, exact resume, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from metarl.cli import main as cli_main
from metarl.config import (
    RunConfig,
    coerce,
    config_differences,
    config_to_dict,
    make_config,
    parse_overrides,
)
from metarl.errors import CheckpointError, ConfigError, UnknownFamilyError
from metarl.runs import (
    UnknownAgentError,
    create_run,
    get_agent,
    load_checkpoint,
    open_run,
    read_metrics,
    train_run,
)

TINY = {"meta_batch_size": 2, "episodes_per_task": 2, "horizon": 10, "hidden_sizes": [8],
        "num_train_tasks": 6, "num_test_tasks": 2, "cg_iters": 3, "eval_episodes": 2,
        "eval_steps": 1, "num_iterations": 4, "checkpoint_every": 1}


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_presets_resolve_and_name_their_source():
    from metarl.config import list_presets, load_preset, resolve_config

    names = list_presets("maml") + list_presets("metasgd")
    for fam in ("pointnav", "halfcheetahvel", "halfcheetahdir", "antdir", "antgoal", "default"):
        assert f"maml_{fam}" in names and f"metasgd_{fam}" in names
    for name in names:
        preset = load_preset(name)
        assert preset.source.strip(), name
        cfg, _ = resolve_config(preset.agent, get_agent(preset.agent).config_cls, name)
        assert cfg.family.startswith("metarl/")


def test_unknown_config_key_lists_known_keys():
    with pytest.raises(ConfigError, match="unknown config key 'inner_lrr'.*inner_lr.*Known keys"):
        create_run("maml", overrides={"inner_lrr": 0.1}, out="/nonexistent/never")
    with pytest.raises(ConfigError, match="expected int"):
        make_config(RunConfig, {"seed": "zero"})
    assert coerce("x", list[int], (1, 2)) == [1, 2]
    assert parse_overrides(["a=1", "b=[32, 32]", "c=cuda", "d=1e-3"]) == {
        "a": 1, "b": [32, 32], "c": "cuda", "d": 1e-3}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["oops"])


def test_unknown_agent_and_family():
    with pytest.raises(UnknownAgentError, match="unknown agent 'mamll'.*Did you mean maml"):
        get_agent("mamll")
    with pytest.raises(UnknownFamilyError, match="unknown task family"):
        create_run("maml", overrides={"family": "metarl/NoSuch-v0"}, out="/nonexistent/never")


def test_cli_bad_input_exits_2_with_message(tmp_path, capsys):
    assert cli_main(["train", "nosuchagent", "--out", str(tmp_path / "a")]) == 2
    assert "unknown agent" in capsys.readouterr().err
    assert cli_main(["train", "maml", "--set", "nokey=1", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'nokey'" in err and "meta_batch_size" in err
    assert cli_main(["train", "maml", "--family", "NoSuch-v0", "--out", str(tmp_path / "c")]) == 2
    assert "unknown task family" in capsys.readouterr().err
    assert cli_main(["train", "maml", "--device", "nonsense", "--out", str(tmp_path / "d")]) == 2
    assert "not a torch device" in capsys.readouterr().err
    assert cli_main(["train", "--resume", str(tmp_path / "e")]) == 2
    assert "not a metarl run folder" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in "abcde")  # nothing written


@pytest.mark.parametrize("agent,extra", [("maml", {}), ("metasgd", {}),
                                         ("metasgd", {"log_inner_lr": True}),
                                         ("maml", {"fisher_subsample": 0.5})])
def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path, agent, extra):
    full = create_run(agent, overrides=TINY | extra, out=tmp_path / "full")
    train_run(full, progress=False)

    part = create_run(agent, overrides=TINY | extra, out=tmp_path / "part")
    train_run(part, progress=False, stop_after=2)          # "interrupted" after iteration 1
    assert load_checkpoint(part.path / "checkpoint.pt")["iteration"] == 1
    train_run(open_run(part.path), resume=True, progress=False)

    a = load_checkpoint(full.path / "checkpoint.pt")
    b = load_checkpoint(part.path / "checkpoint.pt")
    assert a["iteration"] == b["iteration"] == 3
    for group in ("theta", "lrs"):
        for k, v in a["agent_state"][group].items():
            assert torch.equal(v, b["agent_state"][group][k]), (group, k)
    ra, rb = read_metrics(full.path), read_metrics(part.path)
    assert [r["iteration"] for r in rb] == [0, 1, 2, 3]
    assert [r["return/post"] for r in ra] == [r["return/post"] for r in rb]


def test_a_key_added_after_a_checkpoint_was_written_counts_as_its_default():
    """Checkpoints stay loadable when a config gains a key, unless its value differs."""
    from metarl.agents.rl2 import RL2Config

    cfg = make_config(RL2Config, {"hidden_size": 32})
    stored = config_to_dict(cfg)
    del stored["time_input"]                       # written before the key existed
    assert config_differences(stored, cfg) == []
    on = make_config(RL2Config, {"hidden_size": 32, "time_input": True})
    assert config_differences(stored, on) == ["time_input"]
    stored["workers"] = 4                          # execution keys never count
    assert config_differences(stored, cfg) == []
    stored["hidden_size"] = 64
    assert config_differences(stored, cfg) == ["hidden_size"]


def test_corrupt_or_mismatched_checkpoint_is_a_clear_error_and_changes_nothing(tmp_path):
    run = create_run("maml", overrides={**TINY, "num_iterations": 2}, out=tmp_path / "r")
    train_run(run, progress=False, stop_after=1)
    ckpt = run.path / "checkpoint.pt"
    good = ckpt.read_bytes()

    ckpt.write_bytes(b"not a checkpoint")
    before = _snapshot(run.path)
    with pytest.raises(CheckpointError, match="corrupt"):
        train_run(open_run(run.path), resume=True, progress=False)
    assert _snapshot(run.path) == before

    # a checkpoint from another config (other network size)
    other = create_run("maml", overrides={**TINY, "hidden_sizes": [4]}, out=tmp_path / "o")
    train_run(other, progress=False, stop_after=1)
    ckpt.write_bytes((other.path / "checkpoint.pt").read_bytes())
    before = _snapshot(run.path)
    with pytest.raises(CheckpointError, match="another config"):
        train_run(open_run(run.path), resume=True, progress=False)
    assert _snapshot(run.path) == before

    # right config, wrong tensors
    ckpt.write_bytes(good)
    payload = torch.load(ckpt, weights_only=True)
    payload["agent_state"]["theta"]["mean.weight"] = torch.zeros(3, 3)
    torch.save(payload, ckpt)
    before = _snapshot(run.path)
    with pytest.raises(CheckpointError, match="shape"):
        train_run(open_run(run.path), resume=True, progress=False)
    assert _snapshot(run.path) == before
    # the CLI says so too, with exit status 2
    assert cli_main(["train", "--resume", str(run.path), "--no-progress", "--no-eval"]) == 2


def test_out_folder_is_never_overwritten(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    with pytest.raises(ConfigError, match="already exists"):
        create_run("maml", overrides=TINY, out=out)
    assert os.listdir(out) == ["precious.txt"]
