"""MuJoCo families: model files, single env vs fast path, dynamics tasks, robustness."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import metarl
from metarl.envs import MUJOCO_FAMILIES
from metarl.mujoco_engine import MujocoBatchEngine, assets_dir
from metarl.rollout import GenericBatchEngine, Sampler, make_engine, random_policy

FAMILY_IDS = [f.family_id for f in MUJOCO_FAMILIES]


def test_model_files_load_without_warnings_or_log(tmp_path):
    """Every shipped MJCF compiles with no MuJoCo warning and no MUJOCO_LOG.TXT."""
    files = sorted(p.name for p in assets_dir().glob("*.xml"))
    assert {"half_cheetah.xml", "ant.xml", "hopper.xml", "walker2d.xml", "humanoid.xml"} <= set(files)
    code = (
        "import mujoco, sys\n"
        f"for f in {files!r}:\n"
        f"    m = mujoco.MjModel.from_xml_path({str(assets_dir())!r} + '/' + f)\n"
        "    d = mujoco.MjData(m); mujoco.mj_step(m, d, 10)\n"
    )
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stdout + proc.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


@pytest.mark.parametrize("family_id", FAMILY_IDS)
def test_fast_path_matches_single_env(family_id, mujoco_backend):
    """Same tasks, same reset seeds, same actions: the batched engine and N single envs
    produce identical observations, rewards and terminations at every step."""
    family = metarl.make_family(family_id)
    n, steps = 3, 25
    tasks = family.sample_tasks(n, rng=7)
    seeds = [11, 12, 13]
    engine = family.make_batch_engine(n, num_threads=2)
    engine.set_tasks(tasks)
    envs = [family.make_env(t) for t in tasks]
    assert engine.sim.backend == envs[0]._sim.backend == mujoco_backend
    obs_fast = engine.reset(seeds)
    obs_single = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds, strict=True)])
    np.testing.assert_allclose(obs_fast, obs_single, rtol=1e-12, atol=1e-12)
    rng = np.random.default_rng(0)
    high = engine.single_action_space.high
    last_obs = obs_single.copy()
    for step in range(steps):
        actions = rng.uniform(-1.2, 1.2, (n, *engine.single_action_space.shape)) * high
        # Sub-env 1 sits out the second half (a finished episode in the Sampler).
        active = np.array([True, step < steps // 2, True])
        obs_f, rew_f, term_f, _ = engine.step(actions, active)
        for i, env in enumerate(envs):
            if active[i]:
                obs, rew, term, _, _ = env.step(actions[i])
                last_obs[i] = obs
                assert rew_f[i] == pytest.approx(rew, rel=1e-10, abs=1e-10)
                assert term_f[i] == term
            else:
                assert rew_f[i] == 0.0 and not term_f[i]
        np.testing.assert_allclose(obs_f, last_obs, rtol=1e-10, atol=1e-10)
    engine.close()


@pytest.mark.parametrize("family_id", ["metarl/HalfCheetahVel-v0", "metarl/AntVel-v0"])
def test_engine_equals_plain_mj_step_loop_at_any_thread_count(family_id, mujoco_backend):
    """The engine's batch is exactly a loop of mj_step(frame_skip) over one MjData per
    sub-env, with 1 or 2 threads; Ant's contact forces are filled inside the step."""
    family = metarl.make_family(family_id)
    n, steps = 3, 8
    actions = np.random.default_rng(1).uniform(-1, 1, (steps, n, family.base_model.nu))
    runs = []
    for threads in (1, 2):
        engine = family.make_batch_engine(n, num_threads=threads)
        engine.set_tasks(family.sample_tasks(n, rng=0))
        engine.reset([0, 1, 2])
        datas = [engine.sim.get_data(i) for i in range(n)]
        for k in range(steps):
            engine.step(actions[k], np.ones(n, dtype=bool))
            for i, d in enumerate(datas):
                d.ctrl[:] = actions[k, i]
                mujoco.mj_step(engine.sim.models[i], d, family.frame_skip)
        for i, d in enumerate(datas):
            for field in family.sim_fields:
                np.testing.assert_array_equal(getattr(engine.sim.state, field)[i], getattr(d, field))
        runs.append(engine.sim.state.copy())
        engine.close()
    for field in family.sim_fields:
        np.testing.assert_array_equal(getattr(runs[0], field), getattr(runs[1], field))
    if "cfrc_ext" in family.sim_fields:
        assert np.abs(runs[0].cfrc_ext).max() > 0  # the feet touch the floor


def test_auto_engine_is_fast_and_sampler_agrees_with_generic(mujoco_backend):
    family = metarl.make_family("metarl/HalfCheetahVel-v0")
    fast = make_engine(family, 4, "auto")
    assert isinstance(fast, MujocoBatchEngine)
    fast.close()
    assert isinstance(make_engine(family, 4, "generic"), GenericBatchEngine)
    tasks = family.sample_tasks(2, rng=1)
    policy = random_policy(family.make_env().action_space)
    batches = [Sampler(family, engine=kind).sample(tasks, policy, episodes_per_task=2,
                                                   horizon=15, seed=3)
               for kind in ("fast", "generic")]
    for name in ("obs", "rewards", "terminated", "mask"):
        np.testing.assert_allclose(getattr(batches[0], name).numpy(),
                                   getattr(batches[1], name).numpy(), rtol=1e-5, atol=1e-5)
    assert batches[0].rewards.shape == (15, 4)


@pytest.mark.parametrize("family_id", ["metarl/HalfCheetahVel-v0", "metarl/AntGoal-v0",
                                       "metarl/HopperRandParams-v0"])
def test_check_env(family_id):
    family = metarl.make_family(family_id)
    for task in family.sample_tasks(2, rng=0):
        env = gym.make(family_id, task=task)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(env.unwrapped, skip_render_check=True)


def test_published_variants_are_a_keyword_away():
    cheetah = metarl.make_family("metarl/HalfCheetahVel-v0")
    assert cheetah.constants()["velocity_range"] == [0.0, 2.0] and cheetah.horizon == 100
    promp = metarl.make_family("metarl/HalfCheetahVel-v0", velocity_range=(0.0, 3.0), horizon=200)
    assert promp.task_space["goal_velocity"].high == 3.0 and promp.horizon == 200
    assert metarl.make_family("metarl/AntDir-v0").survive_bonus == 0.05
    assert metarl.make_family("metarl/AntDir-v0", survive_bonus=1.0).survive_bonus == 1.0
    square = metarl.make_family("metarl/AntGoal-v0", goal_region="square", goal_bonus=4.0)
    goals = np.stack([t["goal"] for t in square.sample_tasks(200, rng=0)])
    assert np.abs(goals).max() <= 3.0 and np.linalg.norm(goals, axis=1).max() > 3.0
    for family_id in FAMILY_IDS:
        constants = metarl.make_family(family_id).constants()
        assert constants["horizon"] in (100, 200) and constants["frame_skip"] in (4, 5)


def test_dynamics_tasks_change_the_model_and_the_trajectory(mujoco_backend):
    family = metarl.make_family("metarl/HopperRandParams-v0")
    t1, t2 = family.sample_tasks(2, rng=3)
    default = family.default_task()
    env = family.make_env(default)
    base_mass = env.model.body_mass.copy()
    base_damping = env.model.dof_damping.copy()

    def rollout(task):
        env.set_task(task)
        env.reset(seed=0)
        return np.stack([env.step(np.full(3, 0.3))[0] for _ in range(30)])

    traj0 = rollout(default)
    np.testing.assert_allclose(env.model.body_mass, base_mass)
    traj1 = rollout(t1)
    np.testing.assert_allclose(env.model.body_mass, base_mass * t1["mass_scale"])
    np.testing.assert_allclose(env.model.dof_damping, base_damping * t1["damping_scale"])
    assert not np.allclose(env.model.body_mass[1:], base_mass[1:])
    assert not np.allclose(env.model.dof_damping[3:], base_damping[3:])
    traj2 = rollout(t2)
    assert not np.allclose(traj0, traj1) and not np.allclose(traj1, traj2)
    # The fast path gives each sub-env its own scaled model.
    engine = family.make_batch_engine(2, num_threads=1)
    engine.set_tasks([t1, t2])
    m1, m2 = engine.sim.models
    assert m1 is not m2
    np.testing.assert_allclose(m2.geom_friction, family.base_model.geom_friction * t2["friction_scale"])
    np.testing.assert_allclose(m1.body_inertia, family.base_model.body_inertia * t1["inertia_scale"])
    engine.close()


def test_bad_actions_are_sanitized(mujoco_backend):
    family = metarl.make_family("metarl/HalfCheetahDir-v0")
    engine = family.make_batch_engine(3, num_threads=1)
    engine.set_tasks(family.sample_tasks(3, rng=0))
    actions = np.array([[np.nan] * 6, [5.0, -7.0, np.inf, -np.inf, 0.5, 0.0], [0.0] * 6])
    engine.reset([1, 2, 3])
    with pytest.warns(RuntimeWarning, match="NaN"):
        obs_bad, rew_bad, _, _ = engine.step(actions, np.ones(3, dtype=bool))
    engine.reset([1, 2, 3])
    clean = np.array([[0.0] * 6, [1.0, -1.0, 1.0, -1.0, 0.5, 0.0], [0.0] * 6])
    obs_ok, rew_ok, _, _ = engine.step(clean, np.ones(3, dtype=bool))
    np.testing.assert_array_equal(obs_bad, obs_ok)
    np.testing.assert_array_equal(rew_bad, rew_ok)
    assert np.isfinite(obs_bad).all()
    engine.close()


@pytest.mark.parametrize("family_id", ["metarl/HalfCheetahVel-v0", "metarl/AntDir-v0"])
def test_instability_warns_resets_and_flags(family_id, mujoco_backend, tmp_path, monkeypatch):
    """A diverging sub-env is reset and flagged; the rest of the batch is untouched; no
    MUJOCO_LOG.TXT is written."""
    monkeypatch.chdir(tmp_path)
    family = metarl.make_family(family_id)
    n = 4
    engine = family.make_batch_engine(n, num_threads=2)
    engine.set_tasks(family.sample_tasks(n, rng=0))
    actions = np.zeros((n, engine.single_action_space.shape[0]))
    engine.reset(range(n))
    ref_obs, ref_rew, _, _ = engine.step(actions, np.ones(n, dtype=bool))
    engine.reset(range(n))
    engine.sim.set_state(2, qvel=np.full(engine.sim.models[2].nv, 1e12))  # blow up sub-env 2
    with pytest.warns(RuntimeWarning, match="unstable"):
        obs, rew, term, infos = engine.step(actions, np.ones(n, dtype=bool))
    assert infos["unstable"].tolist() == [0, 0, 1, 0]
    assert term[2] and rew[2] == 0.0 and np.isfinite(obs).all()
    keep = [0, 1, 3]
    np.testing.assert_allclose(obs[keep], ref_obs[keep])
    np.testing.assert_allclose(rew[keep], ref_rew[keep])
    # NaN state injected directly is caught the same way, and the batch keeps going.
    engine.sim.set_state(0, qpos=np.full(engine.sim.models[0].nq, np.nan))
    with pytest.warns(RuntimeWarning, match="unstable"):
        obs, _, term, infos = engine.step(actions, np.ones(n, dtype=bool))
    assert infos["unstable"][0] == 1 and term[0] and np.isfinite(obs).all()
    obs, _, _, infos = engine.step(actions, np.ones(n, dtype=bool))
    assert not infos["unstable"].any()
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    engine.close()


def test_single_env_flags_instability(mujoco_backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = gym.make("metarl/Walker2dRandParams-v0").unwrapped
    env.reset(seed=0)
    env.set_state(qvel=np.full(env.model.nv, np.inf))
    with pytest.warns(RuntimeWarning, match="unstable"):
        obs, reward, terminated, truncated, info = env.step(np.zeros(6))
    assert info["unstable"] == 1.0 and terminated and reward == 0.0 and np.isfinite(obs).all()
    assert not os.path.exists(tmp_path / "MUJOCO_LOG.TXT")


@pytest.mark.parametrize("family_id", ["metarl/HalfCheetahDir-v0", "metarl/AntDir-v0"])
def test_action_scale_maps_the_policy_range_onto_the_actuators(family_id, mujoco_backend):
    """``action_scale=10`` (pytorch-maml-rl's ``normalization_scale``): the policy acts in
    [-10, 10], clipped there, and the env then behaves exactly as the unscaled family
    does under action / 10; the batched engine agrees with the single env."""
    plain = metarl.make_family(family_id)
    scaled = metarl.make_family(family_id, action_scale=10.0)
    assert scaled.constants()["action_scale"] == 10.0
    task = scaled.default_task()
    env_p, env_s = plain.make_env(task), scaled.make_env(task)
    assert env_s.action_space == gym.spaces.Box(-10.0, 10.0, env_p.action_space.shape, np.float32)
    engine = scaled.make_batch_engine(1, num_threads=1)
    engine.set_tasks([task])
    np.testing.assert_array_equal(env_p.reset(seed=5)[0], env_s.reset(seed=5)[0])
    engine.reset([5])
    rng = np.random.default_rng(1)
    for _ in range(30):
        a = rng.normal(0.0, 8.0, env_s.action_space.shape)  # often beyond ±10
        obs_p, rew_p, term_p, _, _ = env_p.step(np.clip(a, -10, 10) / 10)
        obs_s, rew_s, term_s, _, info = env_s.step(a)
        obs_e, rew_e, term_e, _ = engine.step(a[None], np.ones(1, dtype=bool))
        np.testing.assert_allclose(obs_s, obs_p, rtol=1e-9, atol=1e-9)
        assert rew_s == pytest.approx(rew_p, rel=1e-9, abs=1e-9) and term_s == term_p
        np.testing.assert_array_equal(obs_e[0], obs_s)
        assert rew_e[0] == rew_s and term_e[0] == term_s
        if term_s:
            break
    engine.close()
    with pytest.raises(ValueError, match="action_scale"):
        metarl.make_family(family_id, action_scale=0.0)
