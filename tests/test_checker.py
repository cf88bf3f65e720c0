"""``check_family``: it passes on every registered family, and a family that breaks the
contract fails it with a message naming the check, the step and the field."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import metarl
from metarl.checker import FamilyCheckError, check_family
from metarl.envs.bandit import Bandit
from metarl.table_engine import ArrayBatchEngine

pytestmark = pytest.mark.filterwarnings("ignore:.*A Box observation space m:UserWarning")
OURS = [f for f in metarl.family_ids() if "/MetaWorld-" not in f]
METAWORLD = (["metarl/MetaWorld-ML1-reach-v3", "metarl/MetaWorld-ML10-v3"]
             if importlib.util.find_spec("metaworld") is not None else [])


@pytest.mark.parametrize("family_id", OURS + METAWORLD)
def test_every_registered_family_passes(family_id):
    done = check_family(family_id, num_tasks=3, steps=40)
    assert done[:4] == ["tasks", "gymnasium", "seeding", "task switching"]
    fam = metarl.make_family(family_id)
    assert ("batched engine" in done) == hasattr(fam, "make_batch_engine")


class _OffByOneReward(ArrayBatchEngine):
    """An engine that pays 1 more than the env at step 3 of every episode."""

    def step(self, actions, active):
        t = self._t.copy()
        obs, rewards, terminated, infos = super().step(actions, active)
        return obs, np.where(t == 2, rewards + 1.0, rewards), terminated, infos


class _BrokenBandit(Bandit):
    family_id = "tests/BrokenBandit-v0"

    def make_batch_engine(self, num_envs):
        return _OffByOneReward(self, num_envs)


def test_an_engine_that_differs_from_its_env_in_one_reward_fails_naming_step_and_field():
    with pytest.raises(FamilyCheckError, match=r"batched engine differs .* at step 3, sub-env 0 .*"
                                               r"field reward: "):
        check_family(_BrokenBandit(), num_tasks=2)


class _LeakyBandit(Bandit):
    """``set_task`` forgets to change the payoffs of a used env."""

    family_id = "tests/LeakyBandit-v0"

    def make_env(self, task=None, render_mode=None):
        env = super().make_env(task, render_mode)
        env._apply_task = lambda task: None  # the old task's payoffs stay
        return env


def test_a_set_task_that_keeps_the_old_task_fails():
    with pytest.raises(FamilyCheckError, match=r"set_task\(.*\) on a used env vs a fresh env: "
                                               r"step \d+, reward differs"):
        check_family(_LeakyBandit(arms=2, pulls=50), num_tasks=2, steps=50)

