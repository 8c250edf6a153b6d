#!/usr/bin/env bash
# Set up the environment and run every check CI runs: lint, format, types, doctests, tests.
# Arguments go to the final pytest run (e.g. `bash scripts/test.sh -x tests/test_cli.py`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
bin=.venv/bin
"$bin/ruff" check .
"$bin/ruff" format --check .
"$bin/mypy"  # packages and options: [tool.mypy] in pyproject.toml
# The `>>>` examples in docstrings (a separate run: `tests/` holds helper modules that must be
# imported once, under their package name).
"$bin/python" -m pytest --doctest-modules triune_data triune_train
exec "$bin/python" -m pytest "$@"
