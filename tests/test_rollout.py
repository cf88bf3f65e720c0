"""The task-batch sampler on the generic engine: layout, masking, reproducibility, chunking."""

import numpy as np
import torch

import metarl
from metarl.rollout import Sampler, StepContext, random_policy


def _policy_towards(goal_of_task):
    """A deterministic policy that heads for each column's own goal (uses ctx.task_index)."""

    def act(obs: torch.Tensor, ctx: StepContext):
        goals = goal_of_task[ctx.task_index]
        return torch.clamp(goals - obs, -0.1, 0.1), torch.zeros(obs.shape[0])

    return act


def test_layout_task_index_and_matching_single_env():
    family = metarl.make_family("metarl/PointNav2D-v0")
    tasks = family.sample_tasks(3, 0)
    goals = torch.tensor(np.stack([t["goal"] for t in tasks]), dtype=torch.float32)
    batch = Sampler(family, engine="generic").sample(tasks, _policy_towards(goals),
                                                     episodes_per_task=2, seed=0)
    assert batch.obs.shape == (100, 6, 2) and batch.task_index.tolist() == [0, 0, 1, 1, 2, 2]
    # Column 4 runs task 2: replay its actions in a plain single env, step for step.
    env = family.make_env(tasks[2])
    obs, _ = env.reset(seed=0)
    for t in range(100):
        if batch.mask[t, 4] == 0:
            break
        assert np.allclose(obs, batch.obs[t, 4].numpy())
        obs, reward, term, _, _ = env.step(batch.actions[t, 4].numpy())
        assert np.isclose(reward, batch.rewards[t, 4].item(), atol=1e-6)
        assert bool(term) == bool(batch.terminated[t, 4])


def test_rows_after_termination_are_masked():
    family = metarl.make_family("metarl/PointNav2D-v0")
    task = family.task(goal=[0.05, 0.05])  # reachable in one step: terminates at t = 0
    goals = torch.tensor([[0.05, 0.05]])
    batch = Sampler(family).sample([task], _policy_towards(goals), episodes_per_task=1)
    assert batch.terminated[0, 0] and batch.dones[0, 0]
    assert batch.mask[1:, 0].sum() == 0 and batch.rewards[1:, 0].abs().sum() == 0
    assert batch.num_steps == 1


def test_same_seed_same_batch_and_chunks_reproduce_the_whole():
    family = metarl.make_family("metarl/Bandit-v0")
    sampler = Sampler(family)
    tasks = family.sample_tasks(4, 1)
    policy = random_policy(family.make_env().action_space)
    a = sampler.sample(tasks, policy, episodes_per_task=3, seed=7)
    b = sampler.sample(tasks, policy, episodes_per_task=3, seed=7)
    c = sampler.sample(tasks, policy, episodes_per_task=3, seed=8)
    assert torch.equal(a.actions, b.actions) and torch.equal(a.rewards, b.rewards)
    assert not torch.equal(a.actions, c.actions)
    first = sampler.sample(tasks[:1], policy, episodes_per_task=3, seed=7)
    rest = sampler.sample(tasks[1:], policy, episodes_per_task=3, seed=7, task_offset=1)
    assert torch.equal(a.actions, torch.cat([first.actions, rest.actions], dim=1))
    assert torch.equal(a.rewards, torch.cat([first.rewards, rest.rewards], dim=1))


def test_trials_carry_previous_action_and_reward():
    family = metarl.make_family("metarl/TabularMDP-v0")
    seen = []

    def policy(obs, ctx: StepContext):
        seen.append((ctx.t, ctx.trial_start, bool(ctx.episode_start[0]), ctx.prev_action.clone(),
                     ctx.prev_reward.clone()))
        return torch.full((obs.shape[0],), ctx.t % 5, dtype=torch.int64), torch.zeros(obs.shape[0])

    batch = Sampler(family).sample(family.sample_tasks(2, 0), policy, episodes_per_task=1,
                                   episodes_per_trial=3, seed=0)
    assert batch.obs.shape[0] == 30 and batch.episode_returns().shape == (3, 2)
    assert seen[0][1] and not seen[10][1]  # trial starts once
    assert seen[10][2] and not seen[11][2]  # episode 2 starts at row 10
    for t in range(1, 30):
        assert torch.equal(seen[t][3], batch.actions[t - 1])
        assert torch.equal(seen[t][4], batch.rewards[t - 1])
    assert torch.allclose(batch.episode_returns().sum(0), batch.rewards.sum(0))
    # Every episode starts in state 0 of its MDP.
    assert (batch.obs[[0, 10, 20], :, 0] == 1).all()


def test_select_tasks_keeps_columns_of_those_tasks():
    family = metarl.make_family("metarl/PointNav2D-v0")
    tasks = family.sample_tasks(3, 0)
    policy = random_policy(family.make_env().action_space)
    batch = Sampler(family).sample(tasks, policy, episodes_per_task=2, seed=0)
    sub = batch.select_tasks([2, 0])
    assert sub.tasks == [tasks[2], tasks[0]] and sub.task_index.tolist() == [0, 0, 1, 1]
    assert torch.equal(sub.obs[:, 0], batch.obs[:, 4]) and torch.equal(sub.obs[:, 3], batch.obs[:, 1])
