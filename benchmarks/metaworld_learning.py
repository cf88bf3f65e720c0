"""Meta-World learning benchmark: MAML and RL² on ML1 (reach, push, pick-place) and ML10,
several training seeds, held-out success after adaptation beside the published figures.

Each run is an ordinary metarl run folder, ``results/metaworld_runs/<agent>_<setup>_s<seed>``
(plus ``_<tag>`` for a variant), trained with the preset ``configs/<agent>_metaworld_<setup>.yaml``
for the stated budget of :data:`BUDGET_ITERATIONS` (3M env steps; the presets plan the
paper's 100-500M, out of reach on 2 cores) and the ``--set`` overrides of a variant. A run
whose folder exists is resumed from its checkpoint, so the long runs go on over several
invocations: ``--stop-after N`` trains at most N iterations of each run per invocation
(checkpointed), ``--evaluate`` scores what the runs have reached so far (an unfinished run
is reported with its iteration, and only runs at their budget are pooled).

Evaluation, on the run's held-out tasks (ML10: the 5 test classes; ML1: the test goals):
Meta-World's own protocol (``metarl evaluate --protocol metaworld``: 1 inner step on 10
episodes, or 10 episodes of a trial, then the success rate; overall and per class, see
:data:`metarl.evaluation.METAWORLD`), and metarl's adaptation curve (success and return
before and after adaptation). The JSON records the
env steps and training wall-clock of every run, the Meta-World, MuJoCo and reward versions.
Named so because a ``benchmarks/metaworld.py`` would shadow the ``metaworld`` package for
scripts run from this folder. Needs the ``[metaworld]`` venv::

    .venv-metaworld/bin/python benchmarks/metaworld_learning.py --setups ml1_reach --seeds 0 1 --stop-after 50
    .venv-metaworld/bin/python benchmarks/metaworld_learning.py --evaluate
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
from variants import add_variant_arguments, tagged, variant_options

from metarl.evaluation import evaluate_protocol, evaluate_run, mean_ci95
from metarl.plotting import plot_runs
from metarl.runs import (
    CHECKPOINT_FILE,
    create_run,
    load_checkpoint,
    open_run,
    read_metrics,
    set_execution,
    train_run,
)

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = RESULTS / "metaworld_runs"
SETUPS = ("ml1_reach", "ml1_push", "ml1_pick_place", "ml10")
AGENTS = ("maml", "rl2")
AGENT_NAMES = {"maml": "MAML", "rl2": "RL²"}
#: The stated budget: 3M env steps per run (H = 500). MAML: 25 tasks x 10 episodes, before and
#: after its inner step, 250k steps an iteration on ML1 (ML10: 20 tasks, 200k); RL²: 10 trials
#: of 10 episodes, 50k. The run plans exactly these iterations, so RL²'s learning rate anneals
#: over them (as in ``compare.py``), not over the preset's 10000.
BUDGET_STEPS = 3_000_000
BUDGET_ITERATIONS = {("maml", "ml1_reach"): 12, ("maml", "ml1_push"): 12,
                     ("maml", "ml1_pick_place"): 12, ("maml", "ml10"): 15,
                     **{("rl2", s): 60 for s in SETUPS}}
#: Held-out (meta-test) success rates published for MAML and RL², each with its source and
#: the Meta-World version it ran on. The original paper's figures come from its v1 envs and
#: v1 rewards on mujoco-py: not comparable to today's v3 envs and v2 rewards number for number.
PUBLISHED: list[dict[str, Any]] = [
    *({"agent": a, "setup": s, "test_success": v,
       "source": "Yu et al. 2019, Meta-World (arXiv 1910.10897v1), Table 1, 10 seeds",
       "short": "Yu et al. 2019, v1 envs",
       "version": "Meta-World v1 envs and rewards, mujoco-py (MuJoCo 2.0)"}
      for a, s, v in (("maml", "ml10", 0.316), ("rl2", "ml10", 0.358),
                      ("maml", "ml45", 0.399), ("rl2", "ml45", 0.333))),
    {"agent": "maml", "setup": "ml10", "test_success": 0.36, "train_success": 0.25,
     "source": "Papers with Code's entry for the Meta-World paper (which revision of the "
               "paper it took this from is not stated; 1910.10897v1 gives 0.316)",
     "version": "not stated", "short": "Papers with Code, version not stated"},
    {"agent": "maml", "setup": "ml10", "test_success": 0.132, "train_success": 0.21,
     "source": "Atamuradov 2025, 'Evaluating MAML on MetaWorld ML10' (arXiv 2511.12383), "
               "MAML-TRPO, final success",
     "version": "Meta-World v3 envs (Gymnasium API)", "short": "Atamuradov 2025, v3 envs"},
]


def run_dir(agent: str, setup: str, seed: int, tag: str) -> Path:
    return RUNS / tagged(f"{agent}_{setup}_s{seed}", tag)


def train(agent: str, setup: str, seed: int, overrides: dict[str, Any], tag: str,
          stop_after: int | None, execution: dict[str, Any]) -> None:
    path = run_dir(agent, setup, seed, tag)
    plan = {"num_iterations": BUDGET_ITERATIONS[agent, setup], **overrides}
    if (path / "config.yaml").is_file():
        run = open_run(path)
        if run.config.num_iterations != plan["num_iterations"]:
            raise SystemExit(f"[{path.name}] plans {run.config.num_iterations} iterations, this "
                             f"benchmark {plan['num_iterations']}: move the folder aside (or "
                             "give a variant its own --tag) to start the run anew")
        print(f"[{path.name}] resuming")
        if execution:
            run = set_execution(run, execution)
        train_run(run, resume=True, stop_after=stop_after)
    else:
        run = create_run(agent, preset=f"{agent}_metaworld_{setup}",
                         overrides={**plan, **execution, "seed": seed}, out=path)
        print(f"[{path.name}] new run, {run.config.num_iterations} iterations planned")
        train_run(run, stop_after=stop_after)


def score(path: Path) -> dict[str, Any]:
    """The run's held-out curve (evaluated now) and its budget so far."""
    run = open_run(path)
    iteration = int(load_checkpoint(path / CHECKPOINT_FILE)["iteration"]) + 1
    # minutes per run on 2 cores (about 1M env steps): say what is being done meanwhile
    print(f"[{path.name}] scoring at iteration {iteration}: its curve and Meta-World's "
          "protocol on the held-out tasks", flush=True)
    rows = read_metrics(path)
    curve = evaluate_run(path, random_baseline=False, plot=False)["curves"][0]
    protocol = evaluate_protocol(path)
    env_steps = sum(r["env_steps"] for r in rows)  # every agent logs each iteration's own
    wall = sum(r["time_total"] if "time_total" in r else r["time/sample_s"] + r["time/update_s"]
               for r in rows)
    return {"run": path.name, "iterations": iteration,
            "planned_iterations": run.config.num_iterations, "env_steps": float(env_steps),
            "train_wall_s": float(wall), "budget_unit": curve.budget_unit,
            "budgets": curve.budgets, "success": curve.success_mean, "return": curve.mean,
            "per_task_success": curve.per_task_success,
            "protocol": {k: protocol[k] for k in ("success", "return", "per_class", "num_tasks",
                                                  "per_task_class", "per_task_success")}}


def at_budget(score: dict[str, Any]) -> bool:
    """Whether a scored run reached its budget (only those are pooled)."""
    return score["iterations"] >= score["planned_iterations"]


def _mean_ci(values: list[float]) -> dict[str, float]:
    return dict(zip(("mean", "ci95"), mean_ci95(values), strict=True))


def aggregate(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and 95% CI over tasks x seeds, pooling the seeds whose runs reached their budget:
    Meta-World's protocol success (overall and per task class), and the curve's success
    before adaptation and after it (its last budget)."""
    scores = [s for s in scores if at_budget(s)]
    if not scores:
        return {"seeds": 0}
    successes = [x for s in scores for x in s["protocol"]["per_task_success"]]
    classes = [c for s in scores for c in s["protocol"]["per_task_class"]]
    out: dict[str, Any] = {"seeds": len(scores), "tasks_x_seeds": len(successes),
                           "protocol_success": _mean_ci(successes),
                           "protocol_success_per_class": {
                               name: _mean_ci([x for x, c in zip(successes, classes, strict=True)
                                               if c == name])
                               for name in sorted(set(classes))}}
    curves = [s["per_task_success"] for s in scores]
    if all(curves):
        out["success_unadapted"] = _mean_ci([x for c in curves for x in c[0]])
        out["success_adapted"] = _mean_ci([x for c in curves for x in c[-1]])
    return out


def write_results(out: Path, results: dict[str, Any], versions: dict[str, str]
                  ) -> dict[str, Any]:
    """Write the scored (agent, setup) pairs into ``out`` and return what it holds now; the
    pairs this call did not score keep their earlier results."""
    earlier = json.loads(out.read_text())["results"] if out.is_file() else {}
    doc = {"versions": versions, "published": PUBLISHED,
           "results": dict(sorted({**earlier, **results}.items()))}
    out.write_text(json.dumps(doc, indent=1))
    return doc


def _pct(stat: dict[str, float] | None) -> str:
    return "—" if stat is None else f"{100 * stat['mean']:.1f} ± {100 * stat['ci95']:.1f} %"


def table(results: dict[str, Any]) -> str:
    """The docs' Markdown table of the pooled results, one row per (agent, setup)."""
    lines = ["| agent | setup | seeds at the budget (tasks × seeds) | env steps / run | "
             "train wall-clock / run | success un-adapted | success adapted | Meta-World "
             "protocol | published (held-out) |", "|---" * 9 + "|"]
    for key, res in results.items():
        agent, setup = key.split("_", 1)
        done = [r for r in res["runs"] if at_budget(r)]
        if not done:
            continue
        steps = np.mean([r["env_steps"] for r in done]) / 1e6
        hours = np.mean([r["train_wall_s"] for r in done]) / 3600
        published = "; ".join(f"{100 * p['test_success']:.1f} % ({p['short']})" for p in PUBLISHED
                              if (p["agent"], p["setup"]) == (agent, setup)) or "—"
        lines.append(f"| {AGENT_NAMES[agent]} | {setup} | {res['seeds']} "
                     f"({res['tasks_x_seeds']}) | {steps:.2f}M | {hours:.1f} h | "
                     f"{_pct(res.get('success_unadapted'))} | {_pct(res.get('success_adapted'))} "
                     f"| {_pct(res['protocol_success'])} | {published} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=SETUPS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--stop-after", type=int, default=None,
                        help="train at most this many iterations of each run now")
    parser.add_argument("--workers", type=int, default=None,
                        help="sampling workers (the preset's 2 by default); results do not "
                             "depend on it, so it needs no --tag")
    parser.add_argument("--evaluate", action="store_true",
                        help="only score the runs as they are (no training)")
    add_variant_arguments(parser, " in every run", "the run folders and result files",
                          "num_iterations=300")
    args = parser.parse_args()
    overrides, tag = variant_options(parser, args)
    execution = {} if args.workers is None else {"workers": args.workers}
    if not args.evaluate:
        for setup in args.setups:
            for agent in args.agents:
                for seed in args.seeds:
                    train(agent, setup, seed, overrides, tag, args.stop_after, execution)
    results: dict[str, Any] = {}
    for setup in args.setups:
        for agent in args.agents:
            paths = [run_dir(agent, setup, seed, tag) for seed in args.seeds]
            paths = [p for p in paths if (p / CHECKPOINT_FILE).is_file()]
            if not paths:
                continue
            scores = [score(p) for p in paths]
            key = f"{agent}_{setup}"
            pooled = results[key] = {"runs": scores, **aggregate(scores)}
            plot_runs(paths, RESULTS / f"{tagged('metaworld_' + key, tag)}.png",
                      title=f"{agent} on Meta-World {setup}")
            for s in scores:
                print(f"[{s['run']}] {s['iterations']}/{s['planned_iterations']} iterations, "
                      f"{s['env_steps'] / 1e6:.2f}M env steps: protocol success "
                      f"{s['protocol']['success']['mean']:.3f}")
            print(key, f"{pooled['seeds']} seed(s) at the budget, over tasks x seeds:",
                  json.dumps({k: pooled[k] for k in ("protocol_success", "success_unadapted",
                                                     "success_adapted") if k in pooled}))
    versions = {"metaworld": importlib.metadata.version("metaworld"),
                "mujoco": mujoco.__version__, "reward_function_version": "v2"}
    out = RESULTS / f"{tagged('metaworld', tag)}.json"
    doc = write_results(out, results, versions)
    print(f"wrote {out}")
    print(table(doc["results"]))


if __name__ == "__main__":
    main()
