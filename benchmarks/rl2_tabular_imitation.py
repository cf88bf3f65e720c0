"""Can the tabular RL² policy *hold* a good learner? A behaviour-cloning capacity check.

    python benchmarks/rl2_tabular_imitation.py              # about 30 minutes on one core

The RL² agent of ``configs/rl2_tabular_n10.yaml`` (as ``CLONE_OPTIONS`` sets it: the pair
code, and no prediction loss, so PPO alone is measured) is not
trained by RL here: its policy is fitted by cross-entropy to the actions of the greedy
baseline (``run_tabular(..., "greedy")``, optimism tuned on training MDPs as in
``rl2_tabular.py``) on fresh MDPs every step, then run by the real sampler on the same
1000 held-out MDPs as ``rl2_tabular.py``. A clone that scores near greedy shows the
architecture can represent a learner past the paper's bar, so a shortfall of the RL-trained
agent is one of optimization, not capacity.

Then PPO continues the clone (``--ppo-iterations`` per setting, lr ``--ppo-lr`` held
constant, no entropy bonus) under two advantage settings, from the same clone and on the
same MDPs: the discount and GAE λ of the tabular preset so far (γ = 0.99, λ = 0.9) and
undiscounted Monte Carlo advantages (γ = 1, λ = 1). The held-out return every few
iterations shows whether PPO's own estimate of the policy gradient keeps a policy it is
given, or pulls it elsewhere. Writes ``benchmarks/results/rl2_tabular_imitation.json`` and
``rl2_tabular_imitation_ppo.png``.
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
from rl2_common import RESULTS, ci, evaluate_trials, load_preset_config  # noqa: E402

from metarl.agents.classic import mdp_params, run_tabular, tune_greedy_optimism  # noqa: E402
from metarl.agents.rl2 import RL2, trial_inputs  # noqa: E402
from metarl.family import TaskFamily  # noqa: E402
from metarl.rollout import EpisodeBatch  # noqa: E402
from metarl.task import Task  # noqa: E402

#: The tabular preset's policy as cloned (and as PPO continues it): with the pair code, and
#: without the prediction loss (the study measures what PPO alone does with the clone).
CLONE_OPTIONS = {"pair_input": True, "aux_coef": 0.0}
#: Every held-out score here runs the same trials' coin flips.
EVAL_SEED = 12345


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="cross-entropy steps")
    parser.add_argument("--trials", type=int, default=128, help="greedy trials per step")
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ppo-iterations", type=int, default=25,
                        help="PPO iterations continuing the clone, per setting (0: none)")
    parser.add_argument("--ppo-lr", type=float, default=1e-4,
                        help="constant PPO learning rate: small, so a drop is not step noise")
    parser.add_argument("--ppo-eval-every", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg, _, family = load_preset_config("rl2_tabular_n10", CLONE_OPTIONS)
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
        dist = policy.distribution(policy.unroll(x, torch.ones(T, n)))
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
        returns = evaluate_trials(agent, test, seed=EVAL_SEED, deterministic=deterministic)
        result[name] = ci(returns.sum(0))
        result[f"{name}_per_episode"] = returns.mean(1).tolist()
        print(f"{name}: {result[name]['mean']:.2f} ± {result[name]['ci95']:.2f}  "
              f"(greedy {result['greedy']['mean']:.2f})")
    clone_state = {k: v.clone() for k, v in policy.state_dict().items()}
    agent.close()
    if args.ppo_iterations > 0:
        result["ppo_continuation"] = [
            continue_with_ppo(clone_state, label, overrides, args, family, test, result["clone_sampled"])
            for label, overrides in PPO_SETTINGS.items()]
        plot_continuation(result, RESULTS / "rl2_tabular_imitation_ppo.png")
    out = RESULTS / "rl2_tabular_imitation.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


#: Advantage settings PPO continues the clone under, named by their values (not by a preset,
#: which may change).
PPO_SETTINGS = {"γ=0.99, λ=0.9": {"gamma": 0.99, "gae_lambda": 0.9},
                "γ=1, λ=1": {"gamma": 1.0, "gae_lambda": 1.0}}


def continue_with_ppo(clone_state: dict[str, torch.Tensor], label: str, overrides: dict,
                      args: argparse.Namespace, family: TaskFamily, test: list[Task],
                      clone_score: dict) -> dict:
    """PPO from the clone for ``args.ppo_iterations`` iterations (fresh MDPs each, the same
    draws for every setting); the held-out return every ``args.ppo_eval_every``."""
    cfg, _, _ = load_preset_config("rl2_tabular_n10", {
        **CLONE_OPTIONS, "lr": args.ppo_lr, "anneal_lr": False, "ent_coef": 0.0,
        "ent_coef_final": 0.0, "seed": args.seed, **overrides})
    agent = RL2(cfg, family)
    agent.policy.load_state_dict(clone_state)  # the critic head starts untrained
    curve = [{"iteration": 0, "held_out": clone_score}]
    log = []
    for it in range(args.ppo_iterations):
        m = agent.train_iteration(it)
        log.append({k: m[k] for k in ("trial_return", "entropy", "approx_kl", "explained_var")})
        if (it + 1) % args.ppo_eval_every == 0 or it + 1 == args.ppo_iterations:
            score = ci(evaluate_trials(agent, test, seed=EVAL_SEED).sum(0))
            curve.append({"iteration": it + 1, "held_out": score})
            print(f"PPO {label}  it {it + 1}  held-out {score['mean']:.2f}  "
                  f"entropy {m['entropy']:.3f}  kl {m['approx_kl']:.4f}", flush=True)
    agent.close()
    return {"setting": label, "overrides": overrides, "lr": cfg.lr, "ent_coef": cfg.ent_coef,
            "iterations": args.ppo_iterations, "curve": curve, "log": log}


def plot_continuation(result: dict, path: Path) -> None:
    """Held-out return against PPO iterations from the clone, one line per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for run in result["ppo_continuation"]:
        its = [p["iteration"] for p in run["curve"]]
        mean = np.array([p["held_out"]["mean"] for p in run["curve"]])
        half = np.array([p["held_out"]["ci95"] for p in run["curve"]])
        ax.plot(its, mean, marker="o", label=f"PPO, {run['setting']}")
        ax.fill_between(its, mean - half, mean + half, alpha=0.2)
    ax.axhline(result["greedy"]["mean"], color="grey", ls="--", label="greedy (imitated)")
    ax.axhline(150.0, color="black", ls=":", label="target 150")
    ax.set_xlabel("PPO iterations from the clone")
    ax.set_ylabel(f"return per trial, {result['instances']} held-out MDPs")
    ax.set_title(f"PPO continuing the greedy clone (lr {result['ppo_continuation'][0]['lr']:g}, "
                 "no entropy bonus)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
