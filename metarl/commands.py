"""``metarl train``, ``metarl evaluate`` and ``metarl plot`` (hooked into metarl.cli).

    metarl train maml                                   quick preset on PointNav2D, then evaluate
    metarl train maml --family metarl/HalfCheetahVel-v0 the family's preset (MAML paper)
    metarl train metasgd --config metasgd_pointnav --set num_iterations=10 --seed 1
    metarl train --resume runs/maml_PointNav2D_s0_...   continue a stopped run
    metarl evaluate RUN_DIR --steps 3 --tasks 40        held-out adaptation curve (CSV, JSON, PNG)
    metarl plot RUN_A RUN_B --out curves.png            several runs on one figure
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from metarl.cli import nonnegative_int, positive_int
from metarl.config import CONFIG_DIR, list_presets, parse_overrides
from metarl.errors import ConfigError
from metarl.registry import resolve_id


def _preset_for_family(agent: str, family_id: str) -> str | None:
    """The agent's preset written for ``family_id`` (not the quick default), if any."""
    for name in list_presets(agent):
        if name == f"{agent}_default":
            continue
        try:
            data = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        fam = (data.get("config") or {}).get("family")
        if fam is not None and fam == family_id:
            return name
    return None


def _cmd_train(args: argparse.Namespace) -> int:
    from metarl.runs import create_run, get_agent, open_run, set_execution, train_run

    if args.resume:
        # What the run computes is fixed by its saved config; how it executes may change.
        given = [flag for flag, value in (("--config", args.config), ("--family", args.family),
                                          ("--seed", args.seed), ("--out", args.out),
                                          ("--set", args.overrides or None))
                 if value is not None]
        if given:
            raise ConfigError(f"--resume continues a run with its saved config; drop "
                              f"{', '.join(given)}, or start a new run with them")
        run = open_run(args.resume)
        if args.agent and args.agent != run.spec.name:
            raise ConfigError(f"{args.resume} is a {run.spec.name!r} run, not {args.agent!r}")
        execution = {key: getattr(args, key) for key in ("workers", "ray_address", "device")
                     if getattr(args, key) is not None}
        if execution:
            run = set_execution(run, execution)
        print(f"resuming {run.path} ({run.spec.name} on {run.config.family}"
              + "".join(f", {k}={v}" for k, v in execution.items()) + ")")
        train_run(run, resume=True, progress=not args.no_progress)
    else:
        if not args.agent:
            raise ConfigError("name an agent (metarl train maml|metasgd|...) or pass --resume DIR")
        spec = get_agent(args.agent)
        overrides: dict[str, Any] = parse_overrides(args.overrides)
        preset = args.config
        if args.family:
            family_id = resolve_id(args.family)
            overrides["family"] = family_id
            if preset is None:
                preset = _preset_for_family(spec.name, family_id)
                if preset is None:
                    print(f"no {spec.name} preset for {family_id}; using the agent's defaults")
                    preset = ""  # explicit: no preset
        for key in ("seed", "device", "workers", "ray_address"):
            if getattr(args, key) is not None:
                overrides[key] = getattr(args, key)
        run = create_run(spec.name, preset=preset or None, overrides=overrides, out=args.out,
                         use_default_preset=preset != "", imports=args.imports)
        print(f"run folder: {run.path}  ({spec.name} on {run.config.family}"
              + (f", preset {Path(run.meta['preset']).stem}" if run.meta.get("preset") else "") + ")")
        if run.meta.get("source"):
            print(f"preset source: {run.meta['source']}")
        train_run(run, progress=not args.no_progress)
    if not args.no_eval and run.config.eval_steps > 0:
        _evaluate(run.path, None, None, None, 12345, True)
    print(f"resume or extend with: metarl train --resume {run.path}")
    return 0


def _evaluate(run_dir: str | Path, steps: int | None, tasks: int | None, episodes: int | None,
              seed: int, random_baseline: bool) -> None:
    from metarl.evaluation import evaluate_run

    result = evaluate_run(run_dir, budget=steps, num_tasks=tasks, episodes=episodes, seed=seed,
                          random_baseline=random_baseline)
    for curve in result["curves"]:
        points = ", ".join(f"{b}: {m:.2f} ± {c:.2f}" for b, m, c in
                           zip(curve.budgets, curve.mean, curve.ci95, strict=True))
        print(f"{curve.label} [{curve.budget_unit}; mean ± 95% CI over {curve.n_tasks} tasks] "
              f"{points}")
        if curve.success_mean:
            rates = ", ".join(f"{b}: {m:.2f} ± {c:.2f}" for b, m, c in
                              zip(curve.budgets, curve.success_mean, curve.success_ci95 or
                                  [float("nan")] * len(curve.budgets), strict=True))
            print(f"    success rate: {rates}")
    for name, stats in result.get("per_class", {}).items():
        what = "success" if "success_mean" in stats else "return"
        mean, ci = (stats["success_mean"], stats["success_ci95"]) if what == "success" else \
            (stats["mean"], stats["ci95"])
        print(f"    {name} ({stats['n_tasks']} tasks) {what} at the last budget: "
              f"{mean[-1]:.2f} ± {ci[-1]:.2f}")
    for kind, path in result["paths"].items():
        print(f"{kind}: {path}")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    if args.protocol:
        from metarl.evaluation import PROTOCOLS, evaluate_protocol

        if args.steps is not None or args.episodes is not None:
            raise ConfigError("--protocol fixes the adaptation budget: drop --steps / --episodes")
        doc = evaluate_protocol(args.run, PROTOCOLS[args.protocol], args.tasks, args.seed)
        s, r = doc["success"], doc["return"]
        print(f"{doc['agent']} (iteration {doc['iteration']}), {args.protocol} protocol, "
              f"{doc['num_tasks']} held-out tasks: success {s['mean']:.3f} ± {s['ci95']:.3f}, "
              f"return {r['mean']:.1f} ± {r['ci95']:.1f}")
        for name, c in doc["per_class"].items():
            print(f"    {name} ({c['n_tasks']} tasks): success {c['success']['mean']:.3f} ± "
                  f"{c['success']['ci95']:.3f}")
        print(f"json: {Path(args.run) / 'eval' / f'protocol_{args.protocol}.json'}")
        return 0
    _evaluate(args.run, args.steps, args.tasks, args.episodes, args.seed, not args.no_random)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from metarl.plotting import plot_runs

    out = args.out or str(Path(args.runs[0]) / "eval" / "compare.png")
    path = plot_runs(args.runs, out, title=args.title or "", include_random=args.random)
    print(f"png: {path}")
    return 0


def add_commands(sub: Any, parents: argparse.ArgumentParser | Sequence[argparse.ArgumentParser]
                 ) -> None:
    """Add ``train``, ``evaluate`` and ``plot`` to the ``metarl`` sub-command parser."""
    parents = [parents] if isinstance(parents, argparse.ArgumentParser) else list(parents)

    p = sub.add_parser(
        "train", parents=parents, help="train a meta-learner (maml, metasgd, rl2, ...)",
        description="Train an agent into a run folder (config, task lists, metrics, TensorBoard, "
                    "checkpoints), then evaluate it on held-out tasks. Config: the agent's "
                    f"preset for the family from {CONFIG_DIR} (or --config), then --set "
                    "overrides.")
    p.add_argument("agent", nargs="?", help="agent name, e.g. maml or metasgd")
    p.add_argument("--family", help="task family id (default: the preset's)")
    p.add_argument("--config", help="preset name in configs/ (e.g. maml_pointnav) or a YAML path")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable); an unknown key lists the known ones")
    p.add_argument("--seed", type=int, help="run seed (default: the preset's, 0)")
    p.add_argument("--device", help="device for network updates, e.g. cpu or cuda")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="sample on N Ray actors on this machine (needs the ray extra); "
                        "default: sample in this process")
    p.add_argument("--ray-address", dest="ray_address", default=None,
                   help="sample on an existing Ray cluster at ADDRESS (ray start --head prints it)")
    p.add_argument("--out", help="run folder (default runs/AGENT_FAMILY_sSEED_TIME); must be new")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation at the end")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "evaluate", parents=parents, help="held-out adaptation curve of a run",
        description="Adaptation curve on the run's held-out test tasks: mean return (95%% CI over "
                    "tasks) after 0..K adaptation steps, for the trained agent and for a randomly "
                    "initialized one. Writes eval/curve.csv, eval/curve.json and eval/curve.png.")
    p.add_argument("run", help="run folder")
    p.add_argument("--steps", type=nonnegative_int,
                   help="largest budget K (default: the run's eval_steps)")
    p.add_argument("--tasks", type=positive_int,
                   help="number of test tasks (default: all of the run's)")
    p.add_argument("--episodes", type=positive_int,
                   help="episodes per task per budget (default: the run's eval_episodes)")
    p.add_argument("--seed", type=int, default=12345, help="evaluation seed (default 12345)")
    p.add_argument("--no-random", action="store_true", help="skip the random-init curve")
    p.add_argument("--protocol", choices=["metaworld"], default=None,
                   help="score the run by a benchmark's own protocol instead (metaworld: "
                        "Meta-World's meta-RL evaluation, 1 step on 10 episodes or 10 episodes "
                        "of a trial, then success; writes eval/protocol_metaworld.json)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "plot", parents=parents, help="several runs' adaptation curves on one figure",
        description="Put the evaluated curves of several runs on one figure; the x axis is episodes "
                    "of experience in the new task, shared by gradient-based agents and RL².")
    p.add_argument("runs", nargs="+", help="run folders (evaluated) or curve JSON files")
    p.add_argument("--out", help="PNG path (default: FIRST_RUN/eval/compare.png)")
    p.add_argument("--title", help="figure title")
    p.add_argument("--random", action="store_true", help="include the random-init curves")
    p.set_defaults(func=_cmd_plot)


__all__ = ["add_commands"]
