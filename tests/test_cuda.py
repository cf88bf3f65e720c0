"""The learner on a GPU: the same MAML iteration on cuda as on the CPU (skipped without CUDA)."""

import pytest
import torch

import metarl
from metarl.agents.maml import MAMLAgent, MAMLConfig
from metarl.config import make_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY = {"meta_batch_size": 4, "episodes_per_task": 4, "horizon": 20, "hidden_sizes": [16],
        "num_train_tasks": 8, "num_test_tasks": 2, "cg_iters": 5}


def _agent(device: str) -> MAMLAgent:
    cfg = make_config(MAMLConfig, {**TINY, "device": device})
    family = metarl.make_family(cfg.family)
    split = family.split(cfg.num_train_tasks, cfg.num_test_tasks, cfg.split_seed)
    return MAMLAgent(cfg, family, split.train)


def test_cuda_iteration_matches_cpu_iteration():
    cpu, gpu = _agent("cpu"), _agent("cuda")
    assert all(p.device.type == "cuda" for p in gpu.theta.values())
    m_cpu, m_gpu = cpu.train_iteration(0), gpu.train_iteration(0)
    # Sampling runs on the CPU from the same parameters: identical pre-adaptation batch.
    assert m_cpu["return/pre"] == m_gpu["return/pre"]
    assert m_gpu["return/post"] == pytest.approx(m_cpu["return/post"], rel=1e-3, abs=1e-3)
    for k in cpu.theta:
        torch.testing.assert_close(gpu.theta[k].cpu(), cpu.theta[k], rtol=1e-3, atol=1e-4)
    assert m_gpu["time/phase_transfer_s"] >= 0.0
    cpu.close()
    gpu.close()
