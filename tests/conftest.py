"""Shared fixtures."""

from __future__ import annotations

import textwrap

import pytest

import metarl


def representative_family_ids() -> list[str]:
    """Every registered family, with Meta-World's 53 ids cut to two that cover its code
    (ML1 and ML10; the per-class ML1 ids differ by a keyword only, ML45 by its class
    list, and each would cost a benchmark build in every contract test)."""
    keep = {"metarl/MetaWorld-ML1-v3", "metarl/MetaWorld-ML10-v3"}
    return [fid for fid in metarl.family_ids() if "/MetaWorld-" not in fid or fid in keep]


def _mujoco_backends() -> tuple[str, ...]:
    try:
        from metarl.mujoco_backend import available_backends
    except ImportError:  # no mujoco: the MuJoCo tests skip themselves
        return ()
    return available_backends()


@pytest.fixture(params=_mujoco_backends())
def mujoco_backend(request, monkeypatch) -> str:
    """Run the test once per MuJoCo backend the installed ``mujoco`` offers (``batch`` on
    MuJoCo 4, ``threads`` everywhere): the single env and every engine the test builds
    use it."""
    monkeypatch.setenv("METARL_MUJOCO_BACKEND", request.param)
    return request.param


# A complete family in a few lines: what the README shows users.
FAMILY_SOURCE = textwrap.dedent('''
    import gymnasium as gym
    import numpy as np

    import metarl


    class Reach1DEnv(metarl.MetaEnv):
        observation_space = gym.spaces.Box(-10.0, 10.0, shape=(1,), dtype=np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

        def reset(self, *, seed=None, options=None):
            self._begin_episode(seed, options)
            self.x = 0.0
            return np.array([self.x], dtype=np.float32), {}

        def step(self, action):
            self.x = float(np.clip(self.x + float(action[0]), -10, 10))
            reward = -abs(self.x - self.task["target"])
            return np.array([self.x], dtype=np.float32), reward, False, self._tick(), {}


    class Reach1D(metarl.TaskFamily):
        family_id = "FAMILY_ID"
        task_space = {"target": metarl.Uniform(-1.0, 1.0)}
        horizon = 20
        source = "metarl tests"

        def make_env(self, task=None, render_mode=None):
            return Reach1DEnv(self, task, render_mode)
''')


def write_family_module(directory, name, family_id, register_call=True):
    src = FAMILY_SOURCE.replace("FAMILY_ID", family_id)
    if register_call:
        src += "\nmetarl.register(Reach1D)\n"
    path = directory / f"{name}.py"
    path.write_text(src)
    return path


def synthetic_task_batch(seed: int, tasks: int = 2, steps: int = 4, episodes: int = 3,
                         obs_dim: int = 2, act_dim: int = 2):
    """A fixed float64 ``TaskBatch`` ``(tasks, steps, episodes, ...)`` of random
    observations, actions and advantages, with one episode ended early (a padding row),
    for the mechanism tests of the gradient-based agents."""
    import torch

    from metarl.agents.maml import TaskBatch

    g = torch.Generator().manual_seed(seed)
    shape = (tasks, steps, episodes)
    obs = torch.randn(*shape, obs_dim, generator=g, dtype=torch.float64)
    actions = torch.randn(*shape, act_dim, generator=g, dtype=torch.float64)
    adv = torch.randn(*shape, generator=g, dtype=torch.float64)
    mask = torch.ones(*shape, dtype=torch.float64)
    mask[0, -1, 1] = 0.0  # an episode that terminated early
    return TaskBatch(obs, actions, mask, adv)


def interrupted_and_straight_states(agent: str, overrides: dict, tmp_path, stop_after: int = 2):
    """The final checkpoints' agent states of a run trained straight through and of the same
    run stopped after ``stop_after`` iterations and resumed, plus both metrics tables."""
    from metarl.runs import create_run, load_checkpoint, open_run, read_metrics, train_run

    full = create_run(agent, overrides=overrides, out=tmp_path / "full")
    train_run(full, progress=False)
    part = create_run(agent, overrides=overrides, out=tmp_path / "part")
    train_run(part, progress=False, stop_after=stop_after)
    train_run(open_run(part.path), resume=True, progress=False)
    states = [load_checkpoint(r.path / "checkpoint.pt")["agent_state"] for r in (full, part)]
    return states, [read_metrics(r.path) for r in (full, part)]
