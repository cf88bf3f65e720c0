"""The ``metarl`` command line.

    metarl families                     list every registered task family
    metarl show metarl/PointNav2D-v0    one family: task space, default split, sample tasks

Every command that takes a family id also takes ``--import MODULE`` (repeatable):
a module name or a ``.py`` path whose import registers the user's own families.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from metarl.errors import MetaRLError
from metarl.registry import family_ids, import_family_modules, make_family


def _family_parent() -> argparse.ArgumentParser:
    """Options shared by every command that names a family."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="import MODULE (a module name or a path to a .py file) first, so the families it "
             "registers are available; repeatable",
    )
    return parent


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _bounded_int(text, 1)


def nonnegative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return _bounded_int(text, 0)


def _bounded_int(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def _cmd_families(args: argparse.Namespace) -> int:
    rows = []
    for fid in family_ids():
        fam = make_family(fid)
        params = "; ".join(f"{k} ~ {v}" for k, v in fam.describe()["params"].items())
        rows.append((fid, fam.varies, params, str(fam.horizon), fam.source))
    if args.json:
        keys = ("id", "varies", "params", "horizon", "source")
        print(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=1))
        return 0
    header = ("id", "varies", "task parameters", "H", "source")
    limits = (34, 16, 60, 4, 70)
    rows_cut = [tuple(_cut(c, n) for c, n in zip(r, limits, strict=True)) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows_cut)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows_cut:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"\n{len(rows)} families. `metarl show ID` for details.")
    return 0


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _cmd_show(args: argparse.Namespace) -> int:
    fam = make_family(args.family)
    info = fam.describe()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        split = fam.split(args.train, args.test, seed=args.seed)
    sample = fam.sample_tasks(args.samples, np.random.default_rng(args.seed))
    if args.json:
        out = {**info, "default_task": fam.default_task().to_dict(),
               "split": split.to_dict(), "samples": [t.to_dict() for t in sample]}
        print(json.dumps(out, indent=1))
        return 0
    print(f"{info['id']}  —  {info['description']}")
    print(f"  varies:   {info['varies']}")
    print(f"  horizon:  {info['horizon']}")
    print(f"  source:   {info['source']}")
    print("  constants:")
    for k, v in info["constants"].items():
        print(f"    {k} = {v}")
    print("  task space:")
    for k, v in info["params"].items():
        print(f"    {k} ~ {v}")
    print(f"  default task (gymnasium.make with no task): {_task_str(fam.default_task())}")
    print(f"  default split (seed {args.seed}): {len(split.train)} train / {len(split.test)} "
          f"held-out test tasks, disjoint={split.disjoint}")
    for w in caught:
        print(f"    note: {w.message}")
    print(f"    first test task: {_task_str(split.test[0])}" if split.test else "")
    print(f"  {args.samples} sampled tasks (seed {args.seed}):")
    for t in sample:
        print(f"    {_task_str(t)}")
    return 0


def _task_str(task: Any) -> str:
    text = json.dumps(task.to_dict()["params"])
    return _cut(text, 110)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metarl",
        description="Meta-reinforcement learning on parameterized Gymnasium task families: "
                    "list families, train MAML / Meta-SGD / RL², evaluate adaptation curves.",
        epilog="Run `metarl COMMAND --help` for each command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parent = _family_parent()

    p = sub.add_parser("families", parents=[parent], help="list registered task families",
                       description="List every registered task family: id, what varies between "
                                   "tasks, the task parameters and their distributions, the "
                                   "horizon and the source of the constants.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_families)

    p = sub.add_parser("show", parents=[parent], help="describe one family",
                       description="Show one family's constants, task space, default task, "
                                   "default train/test split and a few sampled tasks.")
    p.add_argument("family", help="family id, e.g. metarl/PointNav2D-v0 (the metarl/ prefix "
                                   "may be left out)")
    p.add_argument("--seed", type=int, default=0, help="seed for the split and samples (default 0)")
    p.add_argument("--samples", type=positive_int, default=3, help="tasks to sample (default 3)")
    p.add_argument("--train", type=positive_int, default=40,
                   help="train tasks in the split (default 40)")
    p.add_argument("--test", type=positive_int, default=40,
                   help="test tasks in the split (default 40)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_show)

    # --- further commands (train / evaluate / plot) register here ---
    _add_run_commands(sub, parent)
    return parser


def _add_run_commands(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Training, evaluation and plotting live in metarl.commands (it imports this module)."""
    import metarl.commands as commands

    commands.add_commands(sub, parent)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        import_family_modules(getattr(args, "imports", []))
        return int(args.func(args) or 0)
    except (MetaRLError, FileNotFoundError) as exc:
        # Bad input (metarl's own errors, a missing file): one line that says what to do.
        # Anything else is a bug and keeps its traceback.
        print(f"metarl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("metarl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
