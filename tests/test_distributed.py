"""Sampling on Ray: same seed, same batch as the local sampler; dead workers are replaced."""

import os
import subprocess
import sys

import pytest
import torch
from helpers import assert_same_batch

import metarl
from metarl.distributed import RaySampler, SamplingError, _chunks, make_sampler
from metarl.rollout import Sampler, random_policy

ray = pytest.importorskip("ray")
# Workers cannot import this test module: ship the policies defined here by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def family():
    return metarl.make_family("metarl/PointNav2D-v0")


@pytest.fixture(scope="module")
def ray_sampler(family):
    sampler = RaySampler(family, workers=2)
    yield sampler
    sampler.close()


def test_chunks_cover_tasks_in_order():
    assert _chunks(5, 2) == [(0, 3), (3, 5)]
    assert _chunks(2, 4) == [(0, 1), (1, 2)]
    assert _chunks(40, 3) == [(0, 14), (14, 27), (27, 40)]


def test_ray_batch_equals_local_batch(family, ray_sampler):
    tasks = family.sample_tasks(5, 0)
    policy = random_policy(family.make_env().action_space)
    remote = ray_sampler.sample(tasks, policy, episodes_per_task=3, seed=11)
    local = Sampler(family).sample(tasks, policy, episodes_per_task=3, seed=11)
    assert_same_batch(remote, local)
    assert remote.tasks == local.tasks


class _DieOnce:
    """A policy whose first call, in whichever worker runs it, kills that worker's process."""

    def __init__(self, marker: str, action_space) -> None:
        self.marker = marker
        self.inner = random_policy(action_space)

    def __call__(self, obs, ctx):
        try:  # atomic: exactly one worker, the first to get here, dies
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return self.inner(obs, ctx)
        os._exit(1)  # the actor dies mid-rollout


def test_dead_worker_is_replaced_and_its_share_resampled(family, ray_sampler, tmp_path, caplog):
    tasks = family.sample_tasks(4, 1)
    policy = _DieOnce(str(tmp_path / "died"), family.make_env().action_space)
    before = ray_sampler.restarts
    with caplog.at_level("WARNING"):
        remote = ray_sampler.sample(tasks, policy, episodes_per_task=2, seed=5)
    assert ray_sampler.restarts == before + 1
    assert "replacing it" in caplog.text
    local = Sampler(family).sample(tasks, policy.inner, episodes_per_task=2, seed=5)
    assert torch.equal(remote.rewards, local.rewards)


class _AlwaysDie:
    def __call__(self, obs, ctx):
        os._exit(1)


def test_workers_that_keep_dying_give_a_clear_error(family, ray_sampler):
    ray_sampler.max_retries = 1
    try:
        with pytest.raises(SamplingError, match="died 2 times"):
            ray_sampler.sample(family.sample_tasks(2, 0), _AlwaysDie(), seed=0)
    finally:
        ray_sampler.max_retries = 3


def test_unreachable_cluster_is_a_clear_error(family, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("no GCS at that address")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(SamplingError, match="could not start or join the Ray cluster at 10.9.9.9"):
        RaySampler(family, workers=1, address="10.9.9.9:6379")


def test_local_sampling_never_imports_ray():
    code = ("import sys, metarl; from metarl.distributed import make_sampler; "
            "s = make_sampler(metarl.make_family('PointNav2D'), workers=0); "
            "print(type(s).__name__, 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["Sampler", "False"]
    assert make_sampler  # imported above for the same path
