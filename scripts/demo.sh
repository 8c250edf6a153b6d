#!/usr/bin/env bash
# Set up the environment and run the main job on the embedded demo data: build the synthetic
# eight-task dataset, inspect it, export it for verl, and score stand-in completions against it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
out="${1:-out/demo}"
.venv/bin/triune build-dataset recipes/demo.yaml --out "$out" --workers 2 --overwrite
.venv/bin/triune inspect "$out"
.venv/bin/triune export "$out" --format verl --out "$out-verl" --overwrite
.venv/bin/python scripts/demo_completions.py "$out" "$out-completions.jsonl"
.venv/bin/triune score --data "$out" --completions "$out-completions.jsonl" --out "$out-rewards.jsonl" --step 5 --total-steps 100
