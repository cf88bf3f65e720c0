"""Can the tabular RL² policy *hold* a good learner? A behaviour-cloning capacity check.

    python benchmarks/rl2_tabular_imitation.py              # 3000 steps, about 20 minutes

The RL² agent of ``configs/rl2_tabular_n10.yaml`` (with ``pair_input: true``) is not
trained by RL here: its policy is fitted by cross-entropy to the actions of the greedy
baseline (``run_tabular(..., "greedy")``, optimism tuned on training MDPs as in
``rl2_tabular.py``) on fresh MDPs every step, then run by the real sampler on the same
1000 held-out MDPs as ``rl2_tabular.py``. A clone that scores near greedy shows the
architecture can represent a learner past the paper's bar, so a shortfall of the RL-trained
agent is one of optimization, not capacity. Writes
``benchmarks/results/rl2_tabular_imitation.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metarl.agents.classic import mdp_params, run_tabular, tune_greedy_optimism  # noqa: E402
from metarl.agents.rl2 import RL2, trial_inputs  # noqa: E402
from rl2_common import RESULTS, ci, load_preset_config  # noqa: E402

from metarl.rollout import EpisodeBatch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="cross-entropy steps")
    parser.add_argument("--trials", type=int, default=128, help="greedy trials per step")
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg, _, family = load_preset_config("rl2_tabular_n10", {"pair_input": True})
    n_eps, horizon = cfg.episodes_per_trial, family.horizon
    split = family.split(1000, args.instances, seed=cfg.split_seed)
    optimism = tune_greedy_optimism(*mdp_params(split.train), n_eps, horizon,
                                    np.random.default_rng(args.seed + 1))
    agent = RL2(cfg, family)
    policy = agent.policy
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(args.seed)
    T, n = n_eps * horizon, args.trials
    episode_end = (torch.arange(T) % horizon == horizon - 1).unsqueeze(1).expand(T, n)
    log, t0 = [], time.perf_counter()
    for step in range(args.steps):
        tasks = family.sample_tasks(n, rng)
        trace: dict[str, list[np.ndarray]] = {}
        run_tabular(*mdp_params(tasks), n_eps, horizon, "greedy", rng, optimism=optimism,
                    trace=trace)
        state, action, reward = (torch.as_tensor(np.stack(trace[k])) for k in ("state", "action", "reward"))
        # greedy's trials as the sampler would have recorded them, so the policy's inputs
        # come from the same trial_inputs the PPO replay uses
        batch = EpisodeBatch(
            obs=torch.nn.functional.one_hot(state, family.n_states).float(), actions=action,
            rewards=reward.float(), terminated=torch.zeros(T, n, dtype=torch.bool),
            dones=episode_end, mask=torch.ones(T, n), log_probs=torch.zeros(T, n),
            task_index=torch.arange(n), tasks=tasks, horizon=horizon, episodes_per_trial=n_eps)
        inputs = trial_inputs(batch, prev_obs=policy.needs_prev_obs)
        x = policy.features(batch.obs, inputs["prev_action"], inputs["prev_reward"],
                            inputs["done_flag"], inputs["has_prev"], inputs["prev_obs"])
        dist = policy.distribution(policy.head_input(policy.unroll(x, torch.ones(T, n)), x))
        loss = -dist.log_prob(action).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        if step % 100 == 0 or step == args.steps - 1:
            accuracy = float((dist.probs.argmax(-1) == action).float().mean())
            log.append({"step": step, "loss": loss.item(), "accuracy": accuracy})
            print(f"step {step}/{args.steps}  loss {loss.item():.3f}  accuracy {accuracy:.3f}  "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)
    test = list(split.test)
    greedy = run_tabular(*mdp_params(test), n_eps, horizon, "greedy",
                         np.random.default_rng(args.seed), optimism=optimism).sum(1)
    result = {"benchmark": "rl2_tabular_imitation", "steps": args.steps, "trials_per_step": n,
              "imitated_env_steps": args.steps * n * T, "greedy_optimism": optimism,
              "instances": len(test), "config": dict(vars(cfg)), "log": log,
              "greedy": ci(greedy), "train_wall_s": time.perf_counter() - t0}
    for name, deterministic in (("clone_sampled", False), ("clone_argmax", True)):
        returns = agent.evaluate(test, seed=12345, deterministic=deterministic)["returns"]
        result[name] = ci(returns.sum(0))
        result[f"{name}_per_episode"] = returns.mean(1).tolist()
        print(f"{name}: {result[name]['mean']:.2f} ± {result[name]['ci95']:.2f}  "
              f"(greedy {result['greedy']['mean']:.2f})")
    agent.close()
    out = RESULTS / "rl2_tabular_imitation.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
