#!/usr/bin/env bash
# Create (or reuse) the project-local virtual environment .venv and install directsam into it.
# torch is installed first at a pinned version so pip does not pull a multi-GB CUDA build
# where a CPU wheel is available; override with TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0+cu128").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
STAMP=.venv/.directsam-installed
HASH=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$HASH" > "$STAMP"
fi
