"""MAML on Ray: the same run as local sampling, and a worker killed mid-iteration is survived."""

import pytest
import torch

import metarl
from metarl.config import make_config

ray = pytest.importorskip("ray")

from metarl.agents.maml import MAMLAgent, MAMLConfig  # noqa: E402

TINY = {"meta_batch_size": 4, "episodes_per_task": 2, "horizon": 10, "hidden_sizes": [8],
        "num_train_tasks": 8, "num_test_tasks": 2, "cg_iters": 3}


def _agent(**overrides) -> MAMLAgent:
    cfg = make_config(MAMLConfig, {**TINY, **overrides})
    family = metarl.make_family(cfg.family)
    split = family.split(cfg.num_train_tasks, cfg.num_test_tasks, cfg.split_seed)
    return MAMLAgent(cfg, family, split.train)


def _run(agent: MAMLAgent, iterations: int) -> list[dict[str, float]]:
    try:
        return [agent.train_iteration(it) for it in range(iterations)]
    finally:
        theta = {k: v.detach().clone() for k, v in agent.theta.items()}
        agent.close()
        agent.final_theta = theta


def test_ray_sampling_gives_the_same_run_as_local_sampling():
    local, remote = _agent(), _agent(workers=2)
    local_metrics, remote_metrics = _run(local, 2), _run(remote, 2)
    for a, b in zip(local_metrics, remote_metrics, strict=True):
        assert a["return/pre"] == b["return/pre"] and a["return/post"] == b["return/post"]
    for k in local.final_theta:
        assert torch.equal(local.final_theta[k], remote.final_theta[k])


def test_actor_killed_mid_iteration_is_replaced_and_the_run_goes_on(caplog):
    reference = _run(_agent(), 2)
    agent = _agent(workers=2)
    sampler = agent.sampler
    real_sample, calls = sampler.sample, []

    def sample_and_kill(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # between the pre- and post-adaptation rollouts of iteration 0
            ray.kill(sampler.actors[0])
        return real_sample(*args, **kwargs)

    sampler.sample = sample_and_kill
    with caplog.at_level("WARNING"):
        metrics = _run(agent, 2)
    assert sampler.restarts >= 1 and "replacing it" in caplog.text
    # Re-sampled chunks use the same per-task seeds, so nothing changed.
    assert [m["return/post"] for m in metrics] == [m["return/post"] for m in reference]


def test_dead_cluster_is_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    from metarl.distributed import RaySampler, SamplingError
    from metarl.runs import create_run, load_checkpoint, train_run

    real_sample, calls = RaySampler.sample, []

    def sample_then_lose_cluster(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # iteration 2 starts: every worker is gone and none comes back
            for actor in self.actors:
                ray.kill(actor)
            self.max_retries = 0
        return real_sample(self, *args, **kwargs)

    monkeypatch.setattr(RaySampler, "sample", sample_then_lose_cluster)
    run = create_run("maml", overrides={**TINY, "workers": 2, "num_iterations": 4,
                                        "checkpoint_every": 1}, out=tmp_path / "run")
    with pytest.raises(SamplingError, match="giving up"):
        train_run(run, progress=False)
    checkpoint = load_checkpoint(run.path / "checkpoint.pt")
    assert checkpoint["iteration"] == 1  # the last finished iteration, intact
    if ray.is_initialized():
        ray.shutdown()
