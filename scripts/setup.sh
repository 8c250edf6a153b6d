#!/usr/bin/env bash
# Create .venv in the project root and install triune with every extra the tests need
# (`.[dev,train]`). torch==2.13.0 goes first, on its own: installed later, a requirement that
# names torch loosely may pull a multi-GB CUDA build (docs/cpu-stack.md). Idempotent: a stamp
# of pyproject.toml skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi

stamp=".venv/.triune-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip
# TRIUNE_TORCH_INDEX lets a machine without a local CPU wheel choose one, e.g.
# https://download.pytorch.org/whl/cpu
if [ -n "${TRIUNE_TORCH_INDEX:-}" ]; then
  pip install "torch==2.13.0" --index-url "$TRIUNE_TORCH_INDEX"
else
  pip install "torch==2.13.0"
fi
pip install -e ".[dev,train]"
echo "$want" > "$stamp"
