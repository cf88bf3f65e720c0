"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

import metarl

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index):
    try:
        exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {})  # noqa: S102
    finally:
        for family_id in ("mylab/Reach1D-v0", "mylab/FastReach1D-v0"):
            metarl.unregister(family_id)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2
