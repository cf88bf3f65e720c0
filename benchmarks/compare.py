"""Does meta-learning pay? Every learner we have and the three SB3 baselines (multitask
fine-tuning, the oracle told the task, PPO from scratch) on the same held-out tasks.

A setup is a family, one train/test split shared by every agent (the same
``num_train_tasks``, ``num_test_tasks`` and ``split_seed`` override every preset), an
evaluation (its first ``eval_tasks`` test tasks, the same evaluation seed for all) and, per
agent, a preset plus overrides (the env-step budget of each run is recorded beside its
row). Runs are run folders ``results/compare_runs/<setup>/<agent>_s<seed>``, resumed from
their checkpoints (``--stop-after N`` trains at most N iterations of each run per
invocation, so the long ones advance across sessions).

Points of a curve are counted in episodes of experience in the new task (x): the
gradient learners and the fine-tuned baselines take k rounds of ``episodes`` episodes
(x = k · episodes), the trial learners (RL², VariBAD) are in episode k of a trial (x = k − 1).
Per setup the JSON holds each run's per-task curve and, at every x, mean ± 95% CI over
tasks × seeds, and each agent's paired difference after one round to ``multitask`` with at
least as much experience (its first point at x or after). Across setups: scores
normalized per setup by ``(R − R_scratch(0)) / (R_oracle − R_scratch(0))`` after one round
of adaptation (x = ``episodes`` for rounds, the second episode for trials), their
interquartile mean with a stratified-bootstrap CI and the probability of improvement over
``multitask`` (Agarwal et al. 2021; :mod:`metarl.stats`). The fine-tuned baselines'
learning rate is chosen first, on train tasks (``compare_<setup>_finetune_lr.json``).

    python benchmarks/compare.py --setups pointnav --stop-after 100 --train-only  # train / continue
    python benchmarks/compare.py --evaluate                           # score what exists
    python benchmarks/compare.py --evaluate --progress                # peek at unfinished runs
    python benchmarks/compare.py --setups pointnav --agents maml multitask --seeds 0 --smoke \
        --eval-tasks 2
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib.metadata
import io
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from metarl.config import load_preset, read_config_file
from metarl.evaluation import Curve, mean_ci95, summarize
from metarl.plotting import plot_curves
from metarl.runs import (
    CHECKPOINT_FILE,
    apply_threads,
    create_run,
    open_run,
    read_metrics,
    train_run,
)
from metarl.stats import iqm, probability_of_improvement_ci, stratified_bootstrap_ci

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = RESULTS / "compare_runs"
EVAL_SEED = 30_000
TRIAL_AGENTS = ("rl2", "varibad")
BASELINES = ("multitask", "oracle", "scratch")
#: The fine-tuned baselines' learning rate is chosen per setup, not left at SB3's 3e-4: each
#: candidate fine-tunes the seed-0 run on the first TUNE_TASKS *train* tasks (another
#: evaluation seed), and the best mean return after one round is used on the test tasks
#: (the grid grows past an end that wins: :func:`tuned_finetune_lr`).
FINETUNED = ("multitask", "scratch")
FINETUNE_LRS = (3e-4, 1e-3, 3e-3, 1e-2)
TUNE_TASKS = 20
TUNE_SEED = EVAL_SEED + 1

#: --smoke: small iterations too, so that a Meta-World smoke (H = 500) takes minutes.
_SMOKE_GRADIENT = {"meta_batch_size": 2, "episodes_per_task": 2}
_SMOKE_TRIAL = {"trials_per_iter": 2, "num_minibatches": 1}
SMOKE_SIZES: dict[str, dict[str, Any]] = {
    "maml": _SMOKE_GRADIENT, "metasgd": _SMOKE_GRADIENT, "cavia": _SMOKE_GRADIENT,
    "reptile": _SMOKE_GRADIENT, "rl2": _SMOKE_TRIAL, "varibad": _SMOKE_TRIAL,
    "multitask": {"updates_per_iteration": 1}, "oracle": {"updates_per_iteration": 1},
}


def sb3_baselines(family: str | None, iterations: int, presets: str = "default",
                  suffix: str = "") -> dict[str, tuple[str, dict[str, Any]]]:
    """The three SB3 baselines of a setup: multitask and oracle trained for ``iterations``
    x 10240 env steps, scratch untrained; on ``family`` (None: their presets' PointNav2D),
    from the presets ``<agent>_<presets>``, as rows ``<agent><suffix>``."""
    on = {"family": family} if family else {}
    return {f"multitask{suffix}": (f"multitask_{presets}", {**on, "num_iterations": iterations}),
            f"oracle{suffix}": (f"oracle_{presets}", {**on, "num_iterations": iterations}),
            f"scratch{suffix}": (f"scratch_{presets}", on)}


def agent_of(setup: str, row: str) -> str:
    """The agent of a setup's row: its preset's (a row such as ``multitask_sb3_defaults``
    is the multitask agent with other settings)."""
    return load_preset(SETUPS[setup]["agents"][row][0]).agent


#: setup -> family, shared split, evaluation, and agent -> (preset, overrides).
SETUPS: dict[str, dict[str, Any]] = {
    "pointnav": {
        "family": {"family": "metarl/PointNav2D-v0"},
        "split": {"num_train_tasks": 1000, "num_test_tasks": 400, "split_seed": 0},
        "eval_tasks": 100, "episodes": 20, "rounds": 3,
        "agents": {
            "maml": ("maml_pointnav", {"num_iterations": 70}),
            "metasgd": ("metasgd_pointnav", {"num_iterations": 70}),
            "reptile": ("reptile_pointnav", {"num_iterations": 29}),
            "cavia": ("cavia_pointnav", {"num_iterations": 70}),
            "rl2": ("rl2_pointnav", {"num_iterations": 480}),
            # About 5.4M env steps for every agent: MAML / Meta-SGD / CAVIA 70 x 77k,
            # Reptile 29 x 186k, PPO 527 x 10240. RL² 480 trials-of-2 iterations planned at
            # 11k steps gave 3.6M and 4.4M (seeds 0, 1): its episodes end at the goal, and
            # sooner as it learns. Fewer steps than the others, so not in its favour.
            **sb3_baselines(None, 527),
        },
    },
    # The dynamics family: HalfCheetahRandParams rather than Hopper, because the cheetah never
    # terminates, so every episode is full length and returns compare across dynamics
    # (Hopper's falls end episodes early by amounts that depend on the dynamics).
    # Budget: about 10M env steps for every agent (H = 200), the presets' meta-batch halved
    # so the gradient learners still take 62 (MAML / CAVIA: 62 x 160k) and 25 (Reptile:
    # 25 x 400k) meta-updates; RL² / VariBAD 390 x 25.6k, PPO 977 x 10240. 10M rather than
    # 20M because SB3 PPO runs at 1-2k env steps/s here: 20M would be 3-5 h per run.
    "halfcheetah_randparams": {
        "family": {},
        "split": {"num_train_tasks": 1000, "num_test_tasks": 40, "split_seed": 0},
        "eval_tasks": 40, "episodes": 20, "rounds": 3,
        "agents": {
            "maml": ("maml_halfcheetah_randparams", {"num_iterations": 62, "meta_batch_size": 20}),
            "cavia": ("cavia_halfcheetah_randparams", {"num_iterations": 62,
                                                       "meta_batch_size": 20}),
            "reptile": ("reptile_halfcheetah_randparams", {"num_iterations": 25,
                                                           "meta_batch_size": 20}),
            "rl2": ("rl2_halfcheetah_randparams", {"num_iterations": 390}),
            # RL² with the sample reuse of the tuned PPO's order (10 epochs of 16 minibatches:
            # 160 updates per 25.6k steps, not 16) and a narrower initial Gaussian: an
            # attempt at a meta-learner that beats the tuned multitask, not an ablation.
            "rl2_reuse": ("rl2_halfcheetah_randparams", {"num_iterations": 390,
                                                         "update_epochs": 10,
                                                         "num_minibatches": 16,
                                                         "init_log_std": -1.0}),
            "varibad": ("varibad_halfcheetah_randparams", {"num_iterations": 390}),
            # SB3's own action space (the family's [-1, 1]): the others' action scale 10
            # is a setting of their Gaussian policies, not of the tasks. The baselines are RL
            # Zoo's PPO tuned for HalfCheetah (VecNormalize, 256x256 ReLU, ...); the rows
            # *_sb3_defaults are the same agents at SB3's defaults (64x64 tanh, no
            # normalization), which peak near 1M steps and decline: a weak baseline.
            **sb3_baselines("metarl/HalfCheetahRandParams-v0", 977, "halfcheetah"),
            **sb3_baselines("metarl/HalfCheetahRandParams-v0", 977, suffix="_sb3_defaults"),
        },
    },
    # Meta-World ML1 reach (needs the [metaworld] venv), H = 500, its own 50 train / 50 test
    # goals, the Meta-World presets' 10 episodes per inner step. The budget of
    # benchmarks/metaworld_learning.py, 3M env steps each: MAML 12 x 250k, RL² 60 x 50k, PPO
    # 293 x 10240. MAML and RL² are that benchmark's runs (the same preset, split, budget
    # and seed: training does not read eval_steps), trained once for both.
    "ml1_reach": {
        "family": {},
        "split": {"num_train_tasks": 50, "num_test_tasks": 50, "split_seed": 0},
        "eval_tasks": 50, "episodes": 10, "rounds": 2,
        "agents": {
            "maml": ("maml_metaworld_ml1_reach", {"num_iterations": 12}),
            "rl2": ("rl2_metaworld_ml1_reach", {"num_iterations": 60}),
            # The baselines at the PPO settings Meta-World+'s authors use on this benchmark
            # (3 x 400 ReLU, 16 epochs of 32 minibatches, ...: configs/multitask_metaworld.yaml)
            # rather than SB3's defaults, which nobody tuned for it.
            **sb3_baselines("metarl/MetaWorld-ML1-reach-v3", 293, "metaworld"),
        },
        "shared_runs": {"maml": "metaworld_runs/maml_ml1_reach_s{seed}",
                        "rl2": "metaworld_runs/rl2_ml1_reach_s{seed}"},
    },
    # Reward family, H = 100, about 10M env steps each: MAML / Meta-SGD / CAVIA 62 x 160k,
    # Reptile 25 x 400k, RL² / VariBAD 781 x 12.8k, PPO 977 x 10240.
    "halfcheetah_vel": {
        "family": {},
        "split": {"num_train_tasks": 1000, "num_test_tasks": 40, "split_seed": 0},
        "eval_tasks": 40, "episodes": 20, "rounds": 3,
        "agents": {
            "maml": ("maml_halfcheetahvel", {"num_iterations": 62}),
            "metasgd": ("metasgd_halfcheetahvel", {"num_iterations": 62}),
            "cavia": ("cavia_halfcheetahvel", {"num_iterations": 62}),
            "reptile": ("reptile_halfcheetahvel", {"num_iterations": 25}),
            "rl2": ("rl2_halfcheetah_vel", {"num_iterations": 781}),
            "varibad": ("varibad_halfcheetah_vel", {"num_iterations": 781}),
            **sb3_baselines("metarl/HalfCheetahVel-v0", 977, "halfcheetah"),
        },
    },
}


def run_path(setup: str, agent: str, seed: int) -> Path:
    """The run folder of a setup's row and seed (a shared run: another benchmark's folder)."""
    shared = SETUPS[setup].get("shared_runs", {}).get(agent)
    if shared is not None and RUNS == RESULTS / "compare_runs":  # --smoke: runs of its own
        return RESULTS / shared.format(seed=seed)
    return RUNS / setup / f"{agent}_s{seed}"


def overrides_of(setup: str, agent: str, seed: int, smoke: bool) -> tuple[str, dict[str, Any]]:
    spec = SETUPS[setup]
    preset, extra = spec["agents"][agent]
    over = {**spec["family"], **spec["split"], **extra, "seed": seed,
            "eval_steps": 0}  # compare.py evaluates; the run's own evaluation is not needed
    if smoke:  # a few minutes end to end, the pipeline only
        over.update(num_iterations=0 if agent_of(setup, agent) == "scratch" else 2)
        over.update(SMOKE_SIZES.get(agent_of(setup, agent), {}))
    return preset, over


def train(setup: str, agent: str, seed: int, stop_after: int | None, smoke: bool) -> None:
    path = run_path(setup, agent, seed)
    if (path / CHECKPOINT_FILE).is_file():
        train_run(open_run(path), resume=True, stop_after=stop_after)
        return
    if ready(setup, agent, seed):
        return  # scratch: nothing to train, the run is its config and its initialization
    if path.exists():  # stopped before its first checkpoint: start again
        shutil.rmtree(path)
    preset, over = overrides_of(setup, agent, seed, smoke)
    run = create_run(agent_of(setup, agent), preset=preset, overrides=over, out=path)
    print(f"[{setup}/{path.name}] new run: {preset}, {run.config.num_iterations} iterations",
          flush=True)
    train_run(run, stop_after=stop_after)


def trained_to_end(setup: str, agent: str, seed: int) -> bool:
    """Whether the run is ready and has trained every planned iteration (its metrics rows)."""
    if not ready(setup, agent, seed):
        return False
    path = run_path(setup, agent, seed)
    if not (path / CHECKPOINT_FILE).is_file():
        return True  # scratch: nothing to train
    planned = read_config_file(path / "config.yaml")["config"]["num_iterations"]
    return len(read_metrics(path)) >= planned  # the config alone: the task lists are large


def ready(setup: str, agent: str, seed: int) -> bool:
    """Whether the run can be evaluated: it has a checkpoint, or it is a scratch run (its
    config and its random initialization are all there is)."""
    path = run_path(setup, agent, seed)
    return (path / CHECKPOINT_FILE).is_file() or (
        agent_of(setup, agent) == "scratch" and (path / "config.yaml").is_file())


def load(setup: str, agent: str, seed: int, finetune_lr: float | None) -> tuple[Any, Any, int]:
    """The run, its agent (restored, or untrained for scratch) and its completed iterations;
    ``finetune_lr`` replaces the fine-tuning learning rate, an evaluation setting that the
    checkpoint does not depend on."""
    path = run_path(setup, agent, seed)
    run = open_run(path)
    apply_threads(run.config)  # the run's thread count, as training had: runs share the cores
    if (path / CHECKPOINT_FILE).is_file():
        agent_obj, iteration = run.load_agent()
        done = iteration + 1
    else:
        agent_obj, done = run.make_agent(), 0
    if finetune_lr is not None:
        agent_obj.config = dataclasses.replace(agent_obj.config, finetune_learning_rate=finetune_lr)
    return run, agent_obj, done


def curve_on(setup: str, agent: str, agent_obj: Any, run: Any, tasks: list, seed: int,
             zero_shot: bool = False) -> Any:
    """The setup's adaptation curve (``zero_shot``: only its first point, x = 0)."""
    spec = SETUPS[setup]
    if agent_of(setup, agent) in TRIAL_AGENTS:
        episodes = 1 if zero_shot else run.config.episodes_per_trial
        return agent_obj.evaluate_adaptation(tasks, episodes, 4, seed=seed)
    rounds = 0 if zero_shot else spec["rounds"]
    return agent_obj.evaluate_adaptation(tasks, rounds, spec["episodes"], seed=seed)


def progress(setup: str, agents: list[str], seeds: list[int], eval_tasks: int,
             out_dir: Path) -> None:
    """``--progress``: the zero-shot return (x = 0, before any adaptation; a trial's first
    episode) of every unfinished run at its latest checkpoint, on the setup's evaluation
    tasks and seed, to ``compare_<setup>_progress.json``. A check on long runs, never pooled
    with the results. Rows of runs left out of ``agents`` / ``seeds`` stay while their runs
    are unfinished (each row says at which iteration it was scored)."""
    rows = []
    for agent in agents:
        for seed in seeds:
            path = run_path(setup, agent, seed)
            if not (path / CHECKPOINT_FILE).is_file() or trained_to_end(setup, agent, seed):
                continue
            run, agent_obj, done = load(setup, agent, seed, None)
            tasks = run.test_tasks[:eval_tasks]
            result = curve_on(setup, agent, agent_obj, run, tasks, EVAL_SEED, zero_shot=True)
            agent_obj.close()
            curve = summarize(result, f"{agent} seed {seed}")
            steps = sum(r["env_steps"] for r in read_metrics(path)[:done])
            rows.append({"run": f"{setup}/{path.name}", "agent": agent, "seed": seed,
                         "iterations": done,
                         "planned_iterations": run.config.num_iterations, "env_steps": steps,
                         "eval_tasks": len(tasks), "zero_shot": {"mean": curve.mean[0],
                                                                 "ci95": curve.ci95[0]}})
            print(f"[{setup}/{path.name}] {done}/{run.config.num_iterations} iterations "
                  f"({steps / 1e6:.2f}M steps): zero-shot {curve.mean[0]:.2f} ± "
                  f"{curve.ci95[0]:.2f}", flush=True)
    out = out_dir / f"compare_{setup}_progress.json"
    scored_now = {f"{setup}/{run_path(setup, a, s).name}" for a in agents for s in seeds}
    earlier = json.loads(out.read_text())["runs"] if out.is_file() else []
    for row in earlier:
        if "agent" in row:
            agent, seed = row["agent"], row["seed"]
        else:  # a row written before rows named their agent and seed
            agent, seed = row["run"].split("/", 1)[1].rsplit("_s", 1)
        if (row["run"] not in scored_now and agent in SETUPS[setup]["agents"]
                and not trained_to_end(setup, agent, int(seed))):
            rows.append(row)
    out.write_text(json.dumps({"setup": setup, "eval_seed": EVAL_SEED, "runs": rows}, indent=1))


def tuned_finetune_lr(setup: str, agent: str, out_dir: Path, n_tasks: int = TUNE_TASKS) -> float:
    """The fine-tuning learning rate of ``agent`` on ``setup``, chosen on the first
    ``n_tasks`` train tasks with the seed-0 run (cached in ``compare_<setup>_finetune_lr.json``).
    Candidates are :data:`FINETUNE_LRS`, extended by factors of 3 past whichever end wins
    (at most 2 more): an end that wins is probed further."""
    path = out_dir / f"compare_{setup}_finetune_lr.json"
    doc = json.loads(path.read_text()) if path.is_file() else {}
    entry = doc.get(agent) or {"candidates": {}}
    trials = entry["candidates"]

    def score(lr: float) -> float:
        key = f"{lr:g}"
        if key not in trials:
            if not trained_to_end(setup, agent, 0):
                raise SystemExit(f"{setup}: choosing {agent}'s fine-tuning learning rate needs "
                                 "its seed-0 run, trained to the end; train it first")
            run, agent_obj, _ = load(setup, agent, 0, lr)
            tasks = run.train_tasks[:n_tasks]
            print(f"[{setup}/{agent}_s0] fine-tuning lr {lr:g} on {len(tasks)} train tasks",
                  flush=True)
            c = summarize(curve_on(setup, agent, agent_obj, run, tasks, TUNE_SEED), f"lr {lr:g}")
            agent_obj.close()
            trials[key] = {"lr": lr, "mean": c.mean, "ci95": c.ci95, "episodes": c.episodes}
            doc[agent] = {**entry, "candidates": trials}
            path.write_text(json.dumps(doc, indent=1))  # each trial kept as it finishes
        return trials[key]["mean"][1]

    lrs = sorted(FINETUNE_LRS)
    while True:
        best = max(lrs, key=score)
        room = len(lrs) < len(FINETUNE_LRS) + 2
        if room and best == lrs[0]:
            lrs.insert(0, best / 3)
        elif room and best == lrs[-1]:
            lrs.append(best * 3)
        else:
            break
    doc[agent] = {"chosen": best, "by": "mean return after one round", "train_tasks": n_tasks,
                  "seed": TUNE_SEED, "run_seed": 0, "tried": [f"{lr:g}" for lr in lrs],
                  "candidates": trials}
    path.write_text(json.dumps(doc, indent=1))
    return float(best)


def chosen_finetune_lr(setup: str, agent: str, out_dir: Path) -> float | None:
    """The fine-tuning learning rate :func:`tuned_finetune_lr` chose, if it has."""
    path = out_dir / f"compare_{setup}_finetune_lr.json"
    doc = json.loads(path.read_text()) if path.is_file() else {}
    return doc.get(agent, {}).get("chosen")


def evaluate(setup: str, agent: str, seed: int, eval_tasks: int,
             finetune_lr: float | None = None, cached_only: bool = False) -> dict[str, Any] | None:
    """The run's curve on the first ``eval_tasks`` test tasks (cached beside the run while
    the checkpoint and the fine-tuning learning rate do not change); ``cached_only``: the
    cached curve or nothing, never a new evaluation."""
    path = run_path(setup, agent, seed)
    if not ready(setup, agent, seed):
        print(f"[{setup}/{path.name}] no run yet: left out (train it first)", flush=True)
        return None
    trained = (path / CHECKPOINT_FILE).is_file()

    def finished(done: int, planned: int) -> bool:
        # a run still training would be pooled with finished ones: leave it out
        if done < planned:
            print(f"[{setup}/{path.name}] not finished ({done}/{planned} iterations): "
                  "left out", flush=True)
        return done >= planned

    cache = path / f"compare_eval_{eval_tasks}.json"
    # the checkpoint's content, not its mtime: a fresh clone gives every file a new mtime
    stamp = (hashlib.sha256((path / CHECKPOINT_FILE).read_bytes()).hexdigest() if trained
             else "untrained")
    if cache.is_file():
        doc = json.loads(cache.read_text())
        if doc.get("checkpoint_sha256") == stamp and doc.get("finetune_learning_rate") == finetune_lr:
            return doc if finished(doc["iterations"], doc["planned_iterations"]) else None
    if cached_only:
        why = ("no current score (score it with --agents " + agent + ")"
               if trained_to_end(setup, agent, seed) else "not finished")
        print(f"[{setup}/{path.name}] {why}: left out", flush=True)
        return None
    run, agent_obj, done = load(setup, agent, seed, finetune_lr)
    if not finished(done, run.config.num_iterations):
        agent_obj.close()
        return None
    tasks = run.test_tasks[:eval_tasks]
    print(f"[{setup}/{path.name}] evaluating on {len(tasks)} held-out tasks", flush=True)
    t0 = time.perf_counter()
    result = curve_on(setup, agent, agent_obj, run, tasks, EVAL_SEED)
    agent_obj.close()
    rows = read_metrics(path) if trained else []
    doc = {"run": f"{setup}/{path.name}", "agent": agent, "seed": seed, "iterations": done,
           "planned_iterations": run.config.num_iterations,
           "env_steps": float(sum(r["env_steps"] for r in rows)),
           "train_wall_s": float(sum(iteration_seconds(r) for r in rows)),
           "eval_wall_s": time.perf_counter() - t0, "checkpoint_sha256": stamp,
           "finetune_learning_rate": finetune_lr, "versions": library_versions(),
           "tasks": [t.to_dict() for t in tasks],
           "curve": summarize(result, f"{agent} seed {seed}").to_dict()}
    cache.write_text(json.dumps(doc))
    return doc


def scored(setup: str, agents: list[str], seeds: list[int], n_eval: int, out_dir: Path
           ) -> tuple[dict[str, float], dict[str, list[dict[str, Any]]]]:
    """The fine-tuning learning rates and, per row of the setup, the scored runs of
    ``seeds``: ``agents`` evaluated now where their scores are not current (the fine-tuned
    baselines' rate chosen first), the other rows from their cached scores only."""
    # a baseline whose seed-0 run is unfinished is left out (evaluate() says so)
    lrs = {a: tuned_finetune_lr(setup, a, out_dir, min(TUNE_TASKS, n_eval))
           for a in agents if agent_of(setup, a) in FINETUNED and trained_to_end(setup, a, 0)}
    # the rows left out of --agents keep their cached scores: the setup's JSON loses none
    others = [a for a in SETUPS[setup]["agents"] if a not in agents]
    lrs |= {a: lr for a in others if agent_of(setup, a) in FINETUNED
            and (lr := chosen_finetune_lr(setup, a, out_dir)) is not None}
    docs = {a: [d for s in seeds
                if (d := evaluate(setup, a, s, n_eval, lrs.get(a), cached_only=a in others))]
            for a in SETUPS[setup]["agents"]}
    return lrs, docs


def library_versions() -> dict[str, str]:
    """The versions a score was computed with: a re-install can move the last digits."""
    versions = {"python": platform.python_version()}
    for name in ("metarl", "torch", "numpy", "gymnasium", "mujoco", "stable-baselines3",
                 "sb3-contrib", "metaworld"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def iteration_seconds(row: dict[str, float]) -> float:
    """An iteration's wall-clock as the agent logged it (RL² and the baselines: its total;
    the inner-loop agents: sampling + update)."""
    if "time_total" in row:
        return row["time_total"]
    return row.get("time/sample_s", 0.0) + row.get("time/update_s", 0.0)


def pooled(docs: list[dict[str, Any]], label: str) -> Curve:
    curves = [Curve.from_dict(d["curve"]) for d in docs]
    per_task = [np.concatenate([np.asarray(c.per_task[k]) for c in curves])
                for k in range(len(curves[0].budgets))]
    stats = [mean_ci95(x) for x in per_task]
    steps = np.mean([d["env_steps"] for d in docs])
    seeds = f"{len(docs)} seed" + ("s" if len(docs) != 1 else "")
    return Curve(label=f"{label} ({seeds}, {steps / 1e6:.1f}M steps)",
                 budgets=curves[0].budgets, episodes=curves[0].episodes,
                 mean=[m for m, _ in stats], ci95=[c for _, c in stats],
                 n_tasks=len(per_task[0]), budget_unit=curves[0].budget_unit,
                 per_task=[x.tolist() for x in per_task])


def one_round(curve: Curve) -> int:
    """The row after one round of adaptation: inner step / fine-tuning round 1, or the
    second episode of a trial."""
    return 1 if len(curve.budgets) > 1 else 0


def summarize_setup(setup: str, docs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    tasks = {d["run"]: d["tasks"] for ds in docs.values() for d in ds}
    if len({json.dumps(t) for t in tasks.values()}) > 1:
        raise SystemExit(f"{setup}: the runs were evaluated on different tasks ({sorted(tasks)}); "
                         "every agent of a setup must share the split")
    curves = {a: pooled(d, a) for a, d in docs.items() if d}
    table = {a: {f"{c.episodes[k]:g}": {"mean": c.mean[k], "ci95": c.ci95[k], "budget": c.budgets[k]}
                 for k in range(len(c.budgets))} for a, c in curves.items()}
    out: dict[str, Any] = {"curves": curves, "table": table}
    # every multitask row is a reference: multitask itself and its variants (other settings)
    for ref in [a for a in curves if a == "multitask" or a.startswith("multitask_")]:
        out[f"minus_{ref}_after_one_round"] = paired_with(ref, curves, docs)
    out.setdefault("minus_multitask_after_one_round", {})
    return out


def paired_with(ref: str, curves: dict[str, Curve],
                docs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each other agent's per-task difference to the multitask row ``ref`` after one round,
    within seeds: mean ± 95% CI."""
    paired: dict[str, Any] = {}
    base = {d["seed"]: d["curve"] for d in docs[ref]}
    for a, runs in docs.items():
        if a == ref or not runs or a not in curves:
            continue
        k_self = one_round(curves[a])
        # one round of the agent against multitask with at least as much experience: its
        # row at the same x, or the first after it (a trial's second episode, x = 1,
        # meets multitask after one fine-tuning round, x = episodes): never in the
        # meta-learner's favour
        x = curves[a].episodes[k_self]
        later = [k for k, e in enumerate(curves[ref].episodes) if e >= x]
        if not later:
            continue
        k_base = later[0]
        diffs = np.concatenate([np.asarray(d["curve"]["per_task"][k_self])
                                - np.asarray(base[d["seed"]]["per_task"][k_base])
                                for d in runs if d["seed"] in base])
        if diffs.size:
            m, ci = mean_ci95(diffs)
            paired[a] = {"x_episodes": x, "multitask_x_episodes": curves[ref].episodes[k_base],
                         "mean": m, "ci95": ci, "n": int(diffs.size),
                         "excludes_zero": bool(abs(m) > ci)}
    return paired



def in_aggregate(summary: dict[str, Any]) -> bool:
    """Whether a setup's scores can be normalized: it has the scratch and oracle rows."""
    return {"scratch", "oracle"} <= set(summary["curves"])


def normalized_scores(summaries: dict[str, dict[str, Any]],
                      docs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, np.ndarray]:
    """Per agent, ``(seeds, setups)`` scores after one round, normalized per setup by the
    scratch policy at x = 0 (0) and the oracle at x = 0 (1), or ``multitask`` at x = 0
    where that is higher: an oracle that does worse than the task-blind policy (the tuned
    oracle on HalfCheetahRandParams, 68 task inputs beside 17) is no upper bound, and
    dividing by it would weigh its setup up in the IQM. Setups lacking scratch or the
    oracle are left out."""
    setups = [s for s, summ in summaries.items() if in_aggregate(summ)]
    scores: dict[str, np.ndarray] = {}
    agents = sorted({a for s in setups for a in summaries[s]["curves"]})
    for a in agents:
        if not all(a in summaries[s]["curves"] for s in setups) or not setups:
            continue
        cols = []
        for s in setups:
            c = summaries[s]["curves"]
            low = c["scratch"].mean[0]
            high = max(c[ref].mean[0] for ref in ("oracle", "multitask") if ref in c)
            k = one_round(c[a])
            per_seed = [float(np.mean(d["curve"]["per_task"][k])) for d in docs[s][a]]
            cols.append([(v - low) / (high - low) for v in per_seed])
        n = min(len(col) for col in cols)
        scores[a] = np.array([col[:n] for col in cols]).T
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--agents", nargs="+", default=None, help="default: every agent of the setup")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--stop-after", type=int, default=None,
                    help="train at most this many iterations of each run now")
    ap.add_argument("--evaluate", action="store_true", help="only score the runs as they are")
    ap.add_argument("--train-only", action="store_true",
                    help="train (or continue) the runs and stop: score them later")
    ap.add_argument("--progress", action="store_true",
                    help="with --evaluate: the zero-shot return of each unfinished run at its "
                         "latest checkpoint (compare_<setup>_progress.json), nothing else")
    ap.add_argument("--eval-tasks", type=int, default=None,
                    help="the first N test tasks of the split, the same for every agent "
                         "(default: the setup's eval_tasks)")
    ap.add_argument("--smoke", action="store_true",
                    help="2 small iterations per run, in runs/compare_smoke/: the pipeline only "
                         "(with a small --eval-tasks)")
    args = ap.parse_args()
    if args.progress and not args.evaluate:
        ap.error("--progress scores runs as they are: give --evaluate with it")
    global RUNS
    out_dir = RESULTS
    if args.smoke:  # not a result: beside the other scratch runs, uncommitted
        out_dir = RUNS = Path("runs") / "compare_smoke"
        out_dir.mkdir(parents=True, exist_ok=True)
    summaries, all_docs = {}, {}
    unknown = set(args.agents or []) - {a for s in args.setups for a in SETUPS[s]["agents"]}
    if unknown:
        raise SystemExit(f"no setup of {args.setups} has the agent(s) {sorted(unknown)}; they "
                         + "; ".join(f"{s}: {list(SETUPS[s]['agents'])}" for s in args.setups))
    for setup in args.setups:  # each setup runs the agents of --agents that it has
        agents = [a for a in SETUPS[setup]["agents"] if not args.agents or a in args.agents]
        if not args.evaluate:
            for seed in args.seeds:
                for agent in agents:
                    train(setup, agent, seed, args.stop_after, args.smoke)
        if args.train_only:
            continue
        n_eval = args.eval_tasks or SETUPS[setup]["eval_tasks"]
        if args.progress:
            progress(setup, agents, args.seeds, n_eval, out_dir)
            continue
        lrs, docs = scored(setup, agents, args.seeds, n_eval, out_dir)
        summary = summarize_setup(setup, docs)
        summaries[setup], all_docs[setup] = summary, docs
        out = {"setup": setup, "spec": {k: v for k, v in SETUPS[setup].items()},
               "eval_tasks": n_eval, "eval_seed": EVAL_SEED,
               "finetune_learning_rate": lrs,
               "tasks": next((d["tasks"] for ds in docs.values() for d in ds), []),
               "runs": {a: [{k: v for k, v in d.items() if k not in ("checkpoint_sha256", "tasks")}
                            for d in ds]
                        for a, ds in docs.items()},
               "pooled": {a: c.to_dict() | {"per_task": []} for a, c in summary["curves"].items()},
               "table": summary["table"],
               **{k: v for k, v in summary.items() if k.startswith("minus_")}}
        (out_dir / f"compare_{setup}.json").write_text(json.dumps(out, indent=1))
        if summary["curves"]:
            plot_curves(list(summary["curves"].values()), out_dir / f"compare_{setup}.png",
                        title=f"{setup}: {len(out['tasks'])} held-out tasks per seed")
        for c in summary["curves"].values():
            cells = ", ".join(f"x={e:g}: {m:.2f} ± {ci:.2f}"
                              for e, m, ci in zip(c.episodes, c.mean, c.ci95, strict=True))
            print(f"{setup:10s} {c.label:40s} {cells}")
        for key, paired in summary.items():
            if not key.startswith("minus_"):
                continue
            ref = key.removeprefix("minus_").removesuffix("_after_one_round")
            for a, p in paired.items():
                print(f"{setup:10s} {a} at x={p['x_episodes']:g} - {ref} at "
                      f"x={p['multitask_x_episodes']:g}: {p['mean']:+.2f} ± {p['ci95']:.2f}")
    # the aggregate covers every setup with scores, not only this call's: the others from
    # their cached evaluations (nothing is trained or evaluated for them)
    cached_setups = ([] if args.train_only or args.progress
                     else [s for s in SETUPS if s not in summaries])
    for setup in cached_setups:
        with contextlib.redirect_stdout(io.StringIO()):  # its rows' notes: its own call's
            _, docs = scored(setup, [], args.seeds, SETUPS[setup]["eval_tasks"], out_dir)
        if any(docs.values()):
            summaries[setup], all_docs[setup] = summarize_setup(setup, docs), docs
        if setup not in summaries:
            status = "no scores yet: not in the aggregate"
        elif not in_aggregate(summaries[setup]):
            status = "cached scores, but no scratch and oracle rows yet: not in the aggregate"
        else:
            status = "in the aggregate, from its cached scores"
        print(f"[{setup}] {status}", flush=True)
    scores = normalized_scores(summaries, all_docs)
    if scores:
        # the seeds say what a call with --seeds left out: its aggregate has those seeds only
        agg: dict[str, Any] = {"setups": [s for s in summaries if in_aggregate(summaries[s])],
                               "seeds": args.seeds}
        for a, x in scores.items():
            agg[a] = {"iqm": stratified_bootstrap_ci(x, iqm), "scores": x.tolist()}
            if a != "multitask" and "multitask" in scores:
                agg[a]["p_improvement_over_multitask"] = probability_of_improvement_ci(
                    x, scores["multitask"])
        (out_dir / "compare_aggregate.json").write_text(json.dumps(agg, indent=1))
        for a, v in agg.items():
            if a in scores:
                print(f"aggregate {a:10s} IQM {v['iqm'][0]:.3f} [{v['iqm'][1]:.3f}, {v['iqm'][2]:.3f}]"
                      + (f"  P(> multitask) {v['p_improvement_over_multitask'][0]:.2f}"
                         if "p_improvement_over_multitask" in v else ""))


if __name__ == "__main__":
    main()
