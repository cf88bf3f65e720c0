"""Is a gradient learner's adaptation specific to the task it adapted on?

A rise in return after the inner step proves little by itself: the step might improve the
policy for every task alike. This benchmark takes an inner-loop run (MAML, Meta-SGD,
CAVIA, Reptile), adapts it on each of N held-out tasks with ``--episodes`` episodes, and
rolls out every adapted policy twice: on its own task and on another held-out task (task
i's adaptation on task i + 1). Adaptation specific to the task shows as own > other,
paired on the task rolled out (task i + 1 adapted to itself, against adapted to task i);
the un-adapted policy is the reference for both.

A trial learner (RL², VariBAD) adapts in its memory, its GRU state. Between episodes:
episode 2 of each of ``--episodes`` trials per task runs with its own memory (own), with
the memory the same trial had on the task before it in the list (other), or with a zero
memory, and, as the control, with the memory of another trial on the same task: a memory
also carries where the body was, which differs between any two trials. Episode 1 is the
reference (before). Within an episode: the memory is swapped in the middle of episode 1,
and the rest of the episode is scored. Dynamics-specific memory shows as other trial >
other task. Every
rollout has the same seed, so on a task they share their action and reset noise and own −
other is paired; the return over the first ``EARLY_STEPS`` steps after a swap shows what
the memory does before the new steps can inform it.

    python benchmarks/adaptation_specificity.py \\
        benchmarks/results/compare_runs/halfcheetah_randparams/maml_s0 --tasks 40
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from metarl.agents.rl2 import RL2, make_actor
from metarl.evaluation import mean_ci95
from metarl.runs import apply_threads, open_run

SEED = 40_000
#: steps at the start of an episode whose return is reported apart (trial learners)
EARLY_STEPS = 20


def stat(x: np.ndarray) -> dict:
    m, ci = mean_ci95(x)
    return {"mean": m, "ci95": ci}


def specificity(run_dir: Path, num_tasks: int, episodes: int) -> dict:
    run = open_run(run_dir)
    apply_threads(run.config)
    agent, iteration = run.load_agent()
    tasks = list(run.test_tasks[:num_tasks])
    if len(tasks) < 2:
        raise SystemExit("--tasks must be at least 2: each adaptation is also tried on another task")
    if isinstance(agent, RL2):
        doc = memory_specificity(agent, tasks, episodes)
        agent.close()
        return {"run": str(run_dir), "agent": run.spec.name, "iteration": iteration + 1,
                "tasks": len(tasks), "episodes": episodes, "seed": SEED, **doc}
    if not hasattr(agent, "_adapt_and_sample"):
        raise SystemExit(f"{run_dir}: {run.spec.name} is neither an inner-loop agent (MAML, "
                         "Meta-SGD, CAVIA, Reptile) nor a trial learner (RL², VariBAD): it "
                         "has no adaptation to swap between tasks")
    other = tasks[1:] + tasks[:1]  # task i's adapted policy on task i + 1
    raw, _, params = agent._adapt_and_sample(tasks, 1, episodes, [SEED, SEED + 1], last=False)

    def per_task(batch) -> np.ndarray:  # mean return of each task's episodes
        return batch.episode_returns()[0].view(len(tasks), episodes).mean(1).numpy()

    def returns(on: list, seed: int) -> np.ndarray:
        return per_task(agent._sample(on, params, per_task=True, seed=seed, episodes=episodes))

    before = per_task(raw[0])
    own, swapped = returns(tasks, SEED + 2), returns(other, SEED + 2)
    before_other = np.roll(before, -1)  # the un-adapted policy on the task tried
    agent.close()
    return {"run": str(run_dir), "agent": run.spec.name, "iteration": iteration + 1,
            "tasks": len(tasks), "episodes": episodes, "seed": SEED,
            "before": stat(before), "own_task": stat(own), "other_task": stat(swapped),
            "own_minus_before": stat(own - before),
            "other_minus_before": stat(swapped - before_other),
            # on the same task: adapted to it, against adapted to the task before it
            "own_minus_other": stat(np.roll(own, -1) - swapped)}


def memory_specificity(agent: RL2, tasks: list, episodes: int) -> dict:
    """Trial learners: a trial's memory against another task's, swapped in between the
    episodes and in the middle of episode 1 (see the module docstring)."""
    horizon, n = agent.family.horizon, len(tasks)
    if episodes < 2:
        raise SystemExit("--episodes must be at least 2 for a trial learner: the control "
                         "swaps in another trial's memory on the same task")

    def rollout(memory: tuple[int, torch.Tensor] | None = None,
                record: list | None = None) -> torch.Tensor:
        actor = make_actor(agent.policy, record=record, horizon=horizon, episodes_per_trial=2,
                           memory=memory)
        # the same seed for every rollout: each task's action and reset noise is the same
        batch = agent.sampler.sample(tasks, actor, episodes_per_task=episodes,
                                     episodes_per_trial=2, seed=SEED)
        return batch.rewards.view(2 * horizon, n, episodes)  # (row, task, trial)

    def ret(r: torch.Tensor, start: int, steps: int) -> np.ndarray:
        """Return over rows [start, start + steps), mean over each task's trials."""
        return r[start:start + steps].sum(0).mean(-1).numpy()

    def other_task(states: torch.Tensor) -> torch.Tensor:
        # column block i (task i's trials) moves to block i + 1: task i's memory on task i + 1
        return torch.roll(states, episodes, dims=0)

    def other_trial(states: torch.Tensor) -> torch.Tensor:
        # the control: another trial's memory on the same task (trial k's on trial k + 1)
        return torch.roll(states.view(n, episodes, -1), 1, dims=1).reshape(states.shape)

    record: list[torch.Tensor] = []
    own = rollout(record=record)
    mid = horizon // 2
    swapped = {(t, how.__name__): rollout((t, how(record[t - 1])))
               for t in (horizon, mid) for how in (other_task, other_trial)}
    zero = rollout((horizon, torch.zeros_like(record[horizon - 1])))

    def compared(t: int, steps: int) -> dict:
        """Own memory against the swapped ones, over ``steps`` rows from the swap at t."""
        o, x, c = (ret(own, t, steps), ret(swapped[t, "other_task"], t, steps),
                   ret(swapped[t, "other_trial"], t, steps))
        # all on the same task with the same noise: paired
        return {"own_task": stat(o), "other_task": stat(x), "other_trial": stat(c),
                "own_minus_other": stat(o - x), "other_trial_minus_other": stat(c - x)}

    def between(steps: int) -> dict:
        b, o, z = ret(own, 0, steps), ret(own, horizon, steps), ret(zero, horizon, steps)
        return {"before": stat(b), "zero_memory": stat(z), "own_minus_before": stat(o - b),
                "own_minus_zero": stat(o - z), **compared(horizon, steps)}

    return {**between(horizon), "early_steps": EARLY_STEPS, "early": between(EARLY_STEPS),
            "within_episode": {"swap_step": mid, "rest_of_episode": compared(mid, horizon - mid),
                               "early": compared(mid, EARLY_STEPS)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path,
                    help="run folders of inner-loop (MAML, ...) or trial (RL², VariBAD) agents")
    ap.add_argument("--tasks", type=int, default=40, help="held-out tasks (the first N)")
    ap.add_argument("--episodes", type=int, default=20,
                    help="episodes per adaptation (trial learners: memories built per task)")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: print only)")
    args = ap.parse_args()
    docs = [specificity(r, args.tasks, args.episodes) for r in args.runs]
    for d in docs:
        keys = ("before", "own_task", "other_task", "other_trial", "zero_memory",
                "own_minus_other", "other_trial_minus_other")
        cells = ", ".join(f"{k} {d[k]['mean']:+.1f} ± {d[k]['ci95']:.1f}" for k in keys if k in d)
        print(f"{d['run']}: {cells}")
        if "early" in d:
            cells = ", ".join(f"{k} {d['early'][k]['mean']:+.1f} ± {d['early'][k]['ci95']:.1f}"
                              for k in keys)
            print(f"  first {d['early_steps']} steps: {cells}")
            w = d["within_episode"]
            cells = "; ".join(f"{part}: " + ", ".join(
                f"{k} {w[part][k]['mean']:+.1f} ± {w[part][k]['ci95']:.1f}"
                for k in ("own_minus_other", "other_trial_minus_other"))
                for part in ("rest_of_episode", "early"))
            print(f"  memory swapped at step {w['swap_step']} of episode 1: {cells}")
    if args.out:
        args.out.write_text(json.dumps(docs, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
