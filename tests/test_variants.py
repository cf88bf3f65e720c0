"""The benchmarks' variant options: ``--set`` needs a ``--tag``, and a tag names the files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from variants import add_variant_arguments, tagged, tagged_title, variant_options  # noqa: E402


def _parse(argv: list[str]) -> tuple[dict, str]:
    parser = argparse.ArgumentParser()
    add_variant_arguments(parser)
    return variant_options(parser, parser.parse_args(argv))


def test_overrides_are_parsed_as_yaml_values_under_their_tag():
    assert _parse([]) == ({}, "")
    assert _parse(["--tag", "plain"]) == ({}, "plain")
    assert _parse(["--set", "num_iterations=2000", "--set", "lr=1e-3", "--tag", "long"]) == (
        {"num_iterations": 2000, "lr": 0.001}, "long")


def test_an_override_without_a_tag_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(["--set", "num_iterations=2000"])
    assert exc.value.code == 2
    assert "give the variant a --tag" in capsys.readouterr().err


def test_the_tag_suffixes_a_name_and_the_preset_keeps_its_own():
    assert tagged("rl2_tabular", "it2000") == "rl2_tabular_it2000"
    assert tagged("maml_pointnav", "") == "maml_pointnav"
    assert tagged_title("RL² on tabular MDPs", "seed1") == "RL² on tabular MDPs, seed1"
    assert tagged_title("RL² on tabular MDPs", "") == "RL² on tabular MDPs"


def test_maml_pointnav_refuses_an_untagged_override_before_training(capsys):
    import maml_pointnav

    with pytest.raises(SystemExit):
        maml_pointnav.main(["--set", "gae_lambda=1.0", "--agents"])
    assert "give the variant a --tag" in capsys.readouterr().err
