#!/usr/bin/env bash
# The real interop check (docs/interop.md): verl and EasyR1 run their OWN dataset and reward code
# on triune's export of the demo dataset, each in a venv of its own under .venv-interop/ (verl
# and EasyR1 pin other transformers releases than triune's venv).
#
#   bash scripts/interop_check.sh [--easyr1 PATH]      (or EASYR1_DIR=PATH)
#
# - verl: the pinned release from PyPI (CPU torch installed first, or pip pulls a CUDA build);
# - EasyR1: not on PyPI, so a local checkout (PATH); without one its half is skipped;
# - triune's own venv builds the demo dataset and both exports ($TRIUNE_PYTHON, default .venv).
# Nothing is downloaded but packages from PyPI; models are built in code (scripts/interop/tiny_qwen.py).
# Venvs are reused while their pins are unchanged. The report goes to out/interop/report.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
EASYR1=${EASYR1_DIR:-}
if [[ "${1:-}" == "--easyr1" ]]; then EASYR1=$2; fi
PY=${TRIUNE_PYTHON:-$ROOT/.venv/bin/python}
BASE_PY=${TRIUNE_INTEROP_BASE_PYTHON:-python3.11}  # verl supports Python 3.10-3.12
VENVS=${TRIUNE_INTEROP_VENVS:-$ROOT/.venv-interop}
OUT=$ROOT/out/interop
TORCH="torch==2.13.0"
VERL_PINS=("verl[verl-core,math]==0.9.1")
EASYR1_PINS=("transformers>=4.54,<5" datasets pillow qwen-vl-utils jinja2 ray tensordict codetiming pyyaml
             omegaconf pydantic "math-verify>=0.8,<0.10")
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH=$ROOT
export HF_DATASETS_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1

venv() {  # venv DIR PINS...: create or reuse a venv holding exactly these pins
  local dir=$1; shift
  local want="$TORCH $*"
  if [[ -x $dir/bin/python && -f $dir/.triune-pins && "$(cat "$dir/.triune-pins")" == "$want" ]]; then
    return
  fi
  echo "== creating $dir ($want)"
  rm -rf "$dir"
  "$BASE_PY" -m venv "$dir"
  "$dir/bin/python" -m pip install -q "$TORCH"
  "$dir/bin/python" -m pip install -q "$TORCH" "$@"
  echo "$want" > "$dir/.triune-pins"
}

mkdir -p "$OUT"
status=0
{
  echo "== triune: demo dataset and exports ($(date -u +%FT%TZ))"
  "$PY" -c "import cli; cli.main()" build-dataset recipes/demo.yaml --out "$OUT/demo" --workers 1 --overwrite --json > /dev/null
  "$PY" -c "import cli; cli.main()" export "$OUT/demo" --format verl --out "$OUT/demo-verl" --overwrite > /dev/null
  "$PY" -c "import cli; cli.main()" export "$OUT/demo" --format easyr1 --out "$OUT/demo-easyr1" --overwrite > /dev/null
  ls "$OUT/demo-verl" "$OUT/demo-easyr1"
} 2>&1 | tee "$OUT/report.txt"

quiet() { grep -v -E "^(WARNING|Filtering|Map|Generating)|^\s*$" || true; }  # pip's and datasets' noise

venv "$VENVS/verl" "${VERL_PINS[@]}" 2>&1 | quiet
echo "== verl" | tee -a "$OUT/report.txt"
"$VENVS/verl/bin/python" scripts/interop/verl_check.py --export "$OUT/demo-verl" 2>&1 | quiet \
  | tee -a "$OUT/report.txt" || status=1

if [[ -n $EASYR1 ]]; then
  venv "$VENVS/easyr1" "${EASYR1_PINS[@]}" 2>&1 | quiet
  echo "== EasyR1 ($EASYR1)" | tee -a "$OUT/report.txt"
  "$VENVS/easyr1/bin/python" scripts/interop/easyr1_check.py --easyr1 "$EASYR1" --export "$OUT/demo-easyr1" 2>&1 \
    | quiet | tee -a "$OUT/report.txt" || status=1
else
  echo "== EasyR1: skipped (no checkout: --easyr1 PATH or EASYR1_DIR)" | tee -a "$OUT/report.txt"
fi
echo "== interop check: $([[ $status -eq 0 ]] && echo PASSED || echo FAILED)" | tee -a "$OUT/report.txt"
exit $status
