"""The worker-process engine (Python-bound families such as Meta-World) equals the
in-process engine step for step, for any number of workers."""

from __future__ import annotations

import numpy as np

import metarl
from metarl.rollout import GenericBatchEngine
from metarl.worker_engine import WorkerBatchEngine


def test_worker_engine_equals_the_in_process_engine():
    family = metarl.make_family("metarl/SparsePointNav-v0")
    n = 7  # 2 workers of 4 sub-envs: one padding sub-env
    tasks = family.sample_tasks(n, rng=0)
    seeds = list(range(10, 10 + n))
    reference = GenericBatchEngine(family, n)
    reference.set_tasks(tasks)
    engine = WorkerBatchEngine(family, n, workers=2)
    try:
        engine.set_tasks(tasks)
        np.testing.assert_array_equal(engine.reset(seeds), reference.reset(seeds))
        rng = np.random.default_rng(0)
        for _ in range(25):
            actions = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
            active = rng.random(n) > 0.2
            ours, theirs = engine.step(actions, active), reference.step(actions, active)
            for a, b in zip(ours[:3], theirs[:3], strict=True):
                np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(ours[3]["success"], theirs[3]["success"])
        mask = np.zeros(n, dtype=bool)
        mask[[1, 6]] = True
        np.testing.assert_array_equal(engine.reset(seeds, mask), reference.reset(seeds, mask))
        engine.set_tasks(tasks[::-1])  # switching tasks reaches the workers
        reference.set_tasks(tasks[::-1])
        np.testing.assert_array_equal(engine.reset(seeds), reference.reset(seeds))
    finally:
        engine.close()
