"""Stable-Baselines3's PPO runs on every family's default task (the Gymnasium contract end to end)."""

import warnings

import gymnasium as gym
import pytest
from conftest import representative_family_ids
from stable_baselines3 import PPO


@pytest.mark.parametrize("family_id", representative_family_ids())
def test_sb3_ppo_runs_on_default_task(family_id):
    env = gym.make(family_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = PPO("MlpPolicy", env, n_steps=512, batch_size=128, n_epochs=1, seed=0,
                    device="cpu", policy_kwargs={"net_arch": [32, 32]})
        model.learn(total_timesteps=2048)
    assert model.num_timesteps >= 2048
    env.close()
