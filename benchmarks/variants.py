"""A benchmark's variants: ``--set KEY=VALUE`` overrides of its preset, run under a ``--tag``
so that their files never replace the preset's. Shared by the MAML and RL² benchmarks (no
agent is imported here)."""

from __future__ import annotations

import argparse
from typing import Any

from metarl.config import parse_overrides


def add_variant_arguments(parser: argparse.ArgumentParser, scope: str = "",
                          files: str = "the checkpoint, curve and result files",
                          example: str = "num_iterations=2000") -> None:
    """``--set`` (repeatable) and ``--tag``. ``scope`` says where an override applies
    (e.g. " in every run"), ``files`` what the tag names, ``example`` an override."""
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help=f"override a preset key{scope} (repeatable), e.g. {example}; "
                             "pair with --tag")
    parser.add_argument("--tag", default="", help=f"suffix of {files} of a variant")


def variant_options(parser: argparse.ArgumentParser, args: argparse.Namespace
                    ) -> tuple[dict[str, Any], str]:
    """``(overrides, tag)`` from :func:`add_variant_arguments`' options. Overrides need a
    tag: a variant written under the preset's file names would replace its results."""
    overrides = parse_overrides(args.overrides)
    if overrides and not args.tag:
        parser.error("--set changes the preset: give the variant a --tag so that its files "
                     "do not replace the preset's")
    return overrides, args.tag


def tagged(name: str, tag: str) -> str:
    """``name`` with the variant's ``_tag`` suffix (none for the preset itself)."""
    return f"{name}_{tag}" if tag else name


def tagged_title(title: str, tag: str) -> str:
    """A figure's ``title`` naming the variant it shows (unchanged for the preset)."""
    return f"{title}, {tag}" if tag else title
