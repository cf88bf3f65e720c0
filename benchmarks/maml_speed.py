"""Where a MAML meta-iteration's time goes, in one run: seconds per meta-iteration and its
split (sampling / inner loop / outer TRPO step / other), CPU-seconds per wall-second, and
the outer step against one forward+backward of the policy over the same batch (how many
"backward-equivalents" a TRPO step costs). Means over iterations 2..N (so the split adds up).

The paper setting by default (configs/maml_pointnav.yaml: meta-batch 20 x 20 episodes,
H 100, 10 meta-iterations; the mean of iterations 2..N is reported). ``--set`` changes
preset keys (e.g. ``torch_threads=2``, or ``--preset metasgd_pointnav --agent metasgd``,
``--preset maml_halfcheetahvel``); ``--tag`` names the result file
``benchmarks/results/maml_speed[_<tag>].json``. Run it on an otherwise idle machine::

    python benchmarks/maml_speed.py
    python benchmarks/maml_speed.py --set torch_threads=2 --tag threads2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from variants import add_variant_arguments, tagged, variant_options

from metarl.agents.maml import inner_losses
from metarl.runs import create_run, train_run

RESULTS = Path(__file__).resolve().parent / "results"


def backward_seconds(agent: Any, repeats: int = 5) -> float:
    """Median seconds of one forward+backward of the policy's VPG loss over a meta-batch
    of the run's size (one inner batch: tasks x episodes x H)."""
    cfg = agent.config
    tasks = agent.train_tasks[:cfg.meta_batch_size]
    raw, prepared, _ = agent._adapt_and_sample(tasks, 1, cfg.episodes_per_task, [1, 2], last=False)
    batch = prepared[0]
    theta = {k: v.detach().requires_grad_(True) for k, v in agent.theta.items()}
    params = {k: v.unsqueeze(0).expand(batch.obs.shape[0], *v.shape) for k, v in theta.items()}
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        inner_losses(agent.policy, params, batch).sum().backward()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default="maml")
    ap.add_argument("--preset", default="maml_pointnav")
    ap.add_argument("--iterations", type=int, default=10)
    add_variant_arguments(ap, "", "the result file", "torch_threads=2")
    args = ap.parse_args()
    overrides, tag = variant_options(ap, args)
    rows: list[dict[str, float]] = []
    clock = {"cpu": time.process_time(), "wall": time.perf_counter()}

    def on_iteration(agent: Any, it: int, metrics: dict[str, float]) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        rows.append({**metrics, "cpu_s": cpu - clock["cpu"], "wall_s": wall - clock["wall"]})
        clock.update(cpu=cpu, wall=wall)

    with tempfile.TemporaryDirectory() as tmp:
        run = create_run(args.agent, preset=args.preset, out=f"{tmp}/run", overrides={
            **overrides, "num_iterations": args.iterations, "checkpoint_every": 10**6})
        agent = train_run(run, progress=False, on_iteration=on_iteration)
        fwd_bwd = backward_seconds(agent)
        agent.close()
    steady = rows[1:] if len(rows) > 1 else rows

    def med(key: str) -> float:  # mean over the steady iterations, so the split adds up
        return float(np.mean([r[key] for r in steady]))

    split = {"sampling": med("time/phase_sampling_s"), "inner": med("time/phase_inner_s"),
             "outer": med("time/phase_outer_s"), "transfer": med("time/phase_transfer_s")}
    per_iteration = med("wall_s")
    split["other"] = per_iteration - sum(split.values())
    result = {
        "agent": args.agent, "preset": args.preset, "overrides": overrides,
        "iterations": args.iterations, "mean_of_iterations": f"2..{args.iterations}",
        "seconds_per_iteration": per_iteration, "split_s": split,
        "cpu_s_per_wall_s": float(sum(r["cpu_s"] for r in steady) / sum(r["wall_s"] for r in steady)),
        "forward_backward_s": fwd_bwd,
        "outer_step_in_backward_equivalents": split["outer"] / fwd_bwd,
        "env_steps_per_iteration": med("env_steps"),
        "line_search_steps": med("ls_steps"),
        "torch_threads": run.config.torch_threads,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "cpu": platform.processor() or _cpu_model(),
                    "load_avg_1min": os.getloadavg()[0]},
    }
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{tagged('maml_speed', tag)}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
