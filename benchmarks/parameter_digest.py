"""SHA-256 of a preset's trained parameters: train ``N`` iterations of a preset in a scratch
run folder and hash every tensor of the agent's state (parameters, learning rates, optimizer
moments). Run it before and after a refactor: equal digests mean bit-identical training.

    python benchmarks/parameter_digest.py maml maml_pointnav 3
    python benchmarks/parameter_digest.py rl2 rl2_bandit_k5_n10 3
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from collections.abc import Iterator
from typing import Any

import torch

from metarl.runs import create_run, train_run


def tensors(x: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of a nested state, with its path, in a fixed order."""
    if isinstance(x, torch.Tensor):
        yield prefix, x
    elif isinstance(x, dict):
        for k in sorted(x, key=str):
            yield from tensors(x[k], f"{prefix}/{k}")
    elif isinstance(x, list | tuple):
        for i, v in enumerate(x):
            yield from tensors(v, f"{prefix}/{i}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("agent")
    ap.add_argument("preset")
    ap.add_argument("iterations", type=int)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = create_run(args.agent, preset=args.preset,
                         overrides={"num_iterations": args.iterations}, out=f"{tmp}/run")
        agent = train_run(run, progress=False)
        state = agent.state_dict()
        agent.close()
    digest = hashlib.sha256()
    for name, t in tensors(state):
        digest.update(name.encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    print(args.agent, args.preset, args.iterations, digest.hexdigest())


if __name__ == "__main__":
    main()
