#!/usr/bin/env bash
# Set up the environment and run the main job on the embedded demo data: build the synthetic
# eight-task dataset, inspect it, and score a few demo completions against it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
out="${1:-out/demo}"
.venv/bin/triune build-dataset recipes/demo.yaml --out "$out" --workers 2 --overwrite
.venv/bin/triune inspect "$out"
