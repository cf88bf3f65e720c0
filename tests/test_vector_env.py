"""The task-batch VectorEnv: gymnasium.make_vec, per-sub-env tasks, autoreset, generic path."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import metarl
from metarl.family import MetaEnv, TaskFamily
from metarl.mujoco_engine import MujocoBatchEngine
from metarl.rollout import GenericBatchEngine
from metarl.spaces import Uniform
from metarl.vector import TaskVectorEnv


def test_make_vec_through_gymnasium_with_tasks():
    family = metarl.make_family("metarl/HalfCheetahVel-v0")
    tasks = family.sample_tasks(3, rng=0)
    envs = gym.make_vec("metarl/HalfCheetahVel-v0", num_envs=3, tasks=tasks)
    assert isinstance(envs, TaskVectorEnv) and isinstance(envs.engine, MujocoBatchEngine)
    assert envs.tasks == tasks
    assert envs.observation_space.shape == (3, 17) and envs.action_space.shape == (3, 6)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, _ = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    obs, rew, term, trunc, infos = envs.step(np.zeros((3, 6), dtype=np.float32))
    assert rew.shape == (3,) and term.dtype == bool and trunc.dtype == bool
    assert "reward_forward" in infos and infos["_reward_forward"].all()
    # Same start and actions, different goal velocities: rewards differ exactly by the task.
    forward = infos["reward_forward"]
    goals = np.array([t["goal_velocity"] for t in tasks])
    v = infos["x_velocity"]
    np.testing.assert_allclose(forward, -np.abs(v - goals))
    envs.close()


def test_metarl_make_vec_and_family_kwargs():
    envs = metarl.make_vec("metarl/HalfCheetahVel-v0", num_envs=2, velocity_range=(0.0, 3.0),
                           horizon=200)
    assert envs.family.task_space["goal_velocity"].high == 3.0 and envs.horizon == 200
    envs.close()
    with pytest.raises(ValueError, match="2 tasks for 3"):
        metarl.make_vec("metarl/HalfCheetahDir-v0", num_envs=3,
                        tasks=[{"direction": 1.0}, {"direction": -1.0}])


def test_single_task_broadcast_and_set_tasks():
    envs = metarl.make_vec("metarl/HalfCheetahDir-v0", num_envs=2, engine="generic")
    assert isinstance(envs.engine, GenericBatchEngine)
    envs.set_tasks({"direction": -1.0})
    assert [t["direction"] for t in envs.tasks] == [-1.0, -1.0]
    envs.reset(seed=1, options={"tasks": [{"direction": 1.0}, {"direction": -1.0}]})
    assert [t["direction"] for t in envs.tasks] == [1.0, -1.0]
    envs.close()


@pytest.mark.parametrize("engine", ["auto", "generic"])
def test_seeding_is_reproducible(engine):
    a = metarl.make_vec("metarl/AntDir-v0", num_envs=2, engine=engine)
    b = metarl.make_vec("metarl/AntDir-v0", num_envs=2, engine=engine)
    oa, _ = a.reset(seed=5)
    ob, _ = b.reset(seed=5)
    np.testing.assert_array_equal(oa, ob)
    assert not np.array_equal(oa[0], oa[1])  # sub-env i is seeded with seed + i
    act = np.full((2, 8), 0.2, dtype=np.float32)
    np.testing.assert_array_equal(a.step(act)[0], b.step(act)[0])
    a.close()
    b.close()


def test_fast_and_generic_vector_envs_agree():
    family = metarl.make_family("metarl/AntGoal-v0")
    tasks = family.sample_tasks(2, rng=4)
    fast = metarl.make_vec("metarl/AntGoal-v0", num_envs=2, tasks=tasks, engine="fast")
    slow = metarl.make_vec("metarl/AntGoal-v0", num_envs=2, tasks=tasks, engine="generic")
    np.testing.assert_allclose(fast.reset(seed=3)[0], slow.reset(seed=3)[0])
    rng = np.random.default_rng(0)
    for _ in range(10):
        act = rng.uniform(-1, 1, (2, 8)).astype(np.float32)
        out_f, out_s = fast.step(act), slow.step(act)
        for x, y in zip(out_f[:4], out_s[:4], strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-10)
    fast.close()
    slow.close()


def test_autoreset_next_step_at_horizon():
    envs = metarl.make_vec("metarl/HalfCheetahVel-v0", num_envs=2, horizon=3)
    first, _ = envs.reset(seed=0)
    act = np.zeros((2, 6), dtype=np.float32)
    for step in range(3):
        obs, rew, term, trunc, _ = envs.step(act)
        assert trunc.all() == (step == 2) and not term.any()
    obs, rew, term, trunc, _ = envs.step(act)  # the autoreset step
    assert (rew == 0).all() and not term.any() and not trunc.any()
    assert not np.allclose(obs, first)  # fresh reset noise from new seeds
    obs, rew, term, trunc, _ = envs.step(act)
    assert (rew != 0).all()
    envs.close()


def test_autoreset_after_termination_is_per_sub_env():
    envs = metarl.make_vec("metarl/PointNav2D-v0", num_envs=2,
                           tasks=[{"goal": [0.05, 0.0]}, {"goal": [0.4, 0.4]}])
    envs.reset(seed=0)
    obs, rew, term, trunc, infos = envs.step(np.array([[0.05, 0.0], [0.0, 0.0]], np.float32))
    assert term.tolist() == [True, False] and infos["success"][0] == 1
    obs, rew, term, trunc, _ = envs.step(np.array([[0.1, 0.1], [0.1, 0.1]], np.float32))
    np.testing.assert_allclose(obs[0], [0.0, 0.0])  # sub-env 0 was reset
    assert rew[0] == 0 and rew[1] != 0
    np.testing.assert_allclose(obs[1], [0.1, 0.1])
    envs.close()


class _Reach1D(TaskFamily):
    """A user's own family, with no fast engine."""

    family_id = "tests/Reach1D-v0"
    task_space = {"target": Uniform(-1.0, 1.0)}
    horizon = 4

    def make_env(self, task=None, render_mode=None):
        return _Reach1DEnv(self, task)


class _Reach1DEnv(MetaEnv):
    def __init__(self, family: TaskFamily, task: Any = None) -> None:
        self.observation_space = gym.spaces.Box(-10, 10, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1, 1, shape=(1,), dtype=np.float32)
        self._x = 0.0
        super().__init__(family, task)

    def reset(self, *, seed=None, options=None):
        self._begin_episode(seed, options)
        self._x = float(self.np_random.uniform(-0.1, 0.1))
        return np.array([self._x], np.float32), {}

    def step(self, action):
        self._x += float(np.clip(action[0], -1, 1))
        reward = -abs(self._x - self._task["target"])
        return np.array([self._x], np.float32), reward, False, self._tick(), {}


@pytest.fixture
def user_family():
    metarl.register(_Reach1D, override=True)
    yield _Reach1D.family_id
    metarl.unregister(_Reach1D.family_id)


def test_generic_path_for_a_users_family(user_family):
    envs = gym.make_vec(user_family, num_envs=3, tasks=[{"target": t} for t in (-0.5, 0.0, 0.5)])
    assert isinstance(envs.engine, GenericBatchEngine)
    obs, _ = envs.reset(seed=2)
    obs2, rew, term, trunc, _ = envs.step(np.zeros((3, 1), np.float32))
    np.testing.assert_allclose(rew, -np.abs(obs[:, 0] - np.array([-0.5, 0.0, 0.5])), rtol=1e-6)
    for _ in range(3):
        *_, trunc, _ = envs.step(np.zeros((3, 1), np.float32))
    assert trunc.all()
    with pytest.raises(ValueError, match="no fast engine"):
        metarl.make_vec(user_family, num_envs=2, engine="fast")
    envs.close()
