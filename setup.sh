#!/usr/bin/env bash
# One-command setup: a virtual environment with PyTorch, then metarl (editable) and its dev
# tools. PyTorch goes first and pinned, so that the project's torch range is already
# satisfied and pip pulls no other build. Override with TORCH_SPEC="torch==X.Y" if you want one.
#
#   ./setup.sh              .venv: metarl, dev tools, Ray; the newest mujoco (4.x)
#   ./setup.sh --metaworld  .venv-metaworld: the same plus Meta-World, which pins mujoco 3.3.0.
#                           A venv of its own: installing the extra over an existing mujoco 4
#                           downgrades it in place and leaves a broken install behind.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
case "${1:-}" in
  "") VENV="${VENV:-.venv}"; EXTRAS="dev,ray" ;;
  --metaworld) VENV="${VENV:-.venv-metaworld}"; EXTRAS="dev,ray,metaworld" ;;
  *) echo "usage: ./setup.sh [--metaworld]" >&2; exit 2 ;;
esac
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
"$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]"
echo "metarl installed in $VENV (mujoco $("$VENV/bin/python" -c 'import mujoco; print(mujoco.__version__)')) — activate with: source $VENV/bin/activate"
