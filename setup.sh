#!/usr/bin/env bash
# One-command setup: a virtual environment in .venv with PyTorch, then metarl (editable) and
# its dev tools. PyTorch goes first and pinned, so that the project's torch range is already
# satisfied and pip pulls no other build. Override with TORCH_SPEC="torch==X.Y" if you want one.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
"$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "$TORCH_SPEC"
.venv/bin/python -m pip install --quiet -e ".[dev,ray]"
echo "metarl installed in .venv — activate with: source .venv/bin/activate"
