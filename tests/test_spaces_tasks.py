"""Parameter spaces and the Task value type."""

import json

import numpy as np
import pytest

from metarl import Choice, Dirichlet, LogUniform, Normal, Task, TaskError, Uniform, UniformDisk
from metarl.task import load_tasks, save_tasks


@pytest.mark.parametrize(
    "space",
    [
        Uniform(0.0, 2.0),
        Uniform(-0.5, 0.5, shape=(2,)),
        LogUniform.from_base(1.5, 3.0, shape=(4,)),
        Choice([-1.0, 1.0]),
        Normal(1.0, 1.0, shape=(3, 2)),
        Dirichlet(1.0, 10, batch_shape=(10, 5)),
        UniformDisk(3.0),
    ],
)
def test_samples_lie_in_space_and_are_reproducible(space):
    draws_a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    draws_b = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    for a, b in zip(draws_a, draws_b, strict=True):
        assert np.array_equal(a, b)
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert space.contains(space.sample(rng))
    assert space.describe()


def test_membership_rejects_outside_values():
    assert not Uniform(0, 2).contains(2.1)
    assert not Uniform(0, 2).contains(float("nan"))
    assert not LogUniform.from_base(1.5, 3.0).contains(1.5**3.1)
    assert LogUniform.from_base(1.5, 3.0).contains(1.5**3)
    assert not Choice([-1.0, 1.0]).contains(0.0)
    assert not Dirichlet(1.0, 3).contains([0.5, 0.6, 0.1])
    assert not UniformDisk(3.0).contains([3.0, 0.1])


def test_disk_is_area_uniform():
    rng = np.random.default_rng(0)
    radii = np.array([np.linalg.norm(UniformDisk(3.0).sample(rng)) for _ in range(4000)])
    # Area-uniform: P(r < R/2) = 1/4, not 1/2 as for a uniform radius.
    assert abs(np.mean(radii < 1.5) - 0.25) < 0.03


def test_log_uniform_matches_power_law():
    rng = np.random.default_rng(0)
    space = LogUniform.from_base(1.5, 3.0)
    exponents = np.log([space.sample(rng) for _ in range(4000)]) / np.log(1.5)
    assert abs(exponents.mean()) < 0.1 and abs(exponents.min() + 3) < 0.05
    assert abs(exponents.max() - 3) < 0.05


def test_task_is_immutable_hashable_and_json_round_trips():
    t = Task("metarl/PointNav2D-v0", goal=[0.1, -0.2])
    with pytest.raises(AttributeError):
        t.x = 1
    with pytest.raises(ValueError):
        t["goal"][0] = 5.0  # read-only array
    u = Task.from_json(t.to_json())
    assert u == t and hash(u) == hash(t)
    assert t != t.replace(goal=[0.1, -0.2000001])
    assert len({t, u}) == 1
    assert t != Task("metarl/Other-v0", goal=[0.1, -0.2])


def test_task_list_file_round_trip(tmp_path):
    tasks = [Task("x/A-v0", v=float(i), w=[i, i + 1]) for i in range(3)]
    save_tasks(tmp_path / "tasks.json", tasks)
    assert load_tasks(tmp_path / "tasks.json") == tasks


def test_malformed_json_task_is_a_clear_error():
    with pytest.raises(TaskError, match="malformed task JSON"):
        Task.from_json('{"family": "x/A-v0", "params": {')
    with pytest.raises(TaskError, match="must be a JSON object"):
        Task.from_json("[1, 2]")
    json.loads(Task("x/A-v0", v=1.5).to_json())
