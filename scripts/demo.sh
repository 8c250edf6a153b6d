#!/usr/bin/env bash
# Set up the environment and run the whole demo on embedded data, offline, in a few minutes on two
# cores: build the synthetic eight-task dataset, inspect it, filter it (V-Triune's rules, dedup,
# caps), export it for verl, score stand-in completions; then GRPO-train the tiny random Qwen2.5-VL
# on it for a few steps (per-source metrics, checkpoints, evaluation), evaluate the last checkpoint
# with `triune eval`, and write the report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
out="${1:-out/demo}"
triune=.venv/bin/triune
$triune build-dataset recipes/demo.yaml --out "$out" --workers 2 --overwrite
$triune inspect "$out"
$triune filter "$out" --recipe recipes/filters/demo.yaml --out "$out-filtered" --overwrite --report
$triune export "$out" --format verl --out "$out-verl" --overwrite
.venv/bin/python scripts/demo_completions.py "$out" "$out-completions.jsonl"
$triune score --data "$out" --completions "$out-completions.jsonl" --out "$out-rewards.jsonl" --step 5 --total-steps 100

# Training: a fresh run directory each time (use --resume to continue one).
rm -rf "$out-run" "$out-eval"
$triune train recipes/train/demo.yaml --out "$out-run" --set data.path="$out"
last="$(ls -d "$out-run"/checkpoints/step-* | tail -n 1)"
$triune eval "$last/policy" --data "$out" --split test --max-new-tokens 32 --out "$out-eval"
$triune report "$out-run"
echo "open $out-run/report.html"
