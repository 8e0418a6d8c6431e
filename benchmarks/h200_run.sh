#!/usr/bin/env bash
# The device calls behind benchmarks/results/: `bash benchmarks/h200_run.sh STAGE` in the repo root on the H200,
# with fair-esm and Biopython carried as wheels in .whl/ (the machine has neither and no network).
set -uo pipefail
stage=$1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm --format=csv,noheader
case $stage in
  tests)  # every GPU test but the whole-model FP8 parity, then the FP8 levers on 3B
    timeout 290 python3 -m pytest -q -s -m gpu tests -p no:cacheprovider --ignore=tests/models/esm2/test_fp8_parity.py \
      > "$OUT/gpu_tests.log" 2>&1; echo "pytest exit $?"; tail -4 "$OUT/gpu_tests.log"; grep -E "FAILED|Error" "$OUT/gpu_tests.log" | head -20
    timeout 250 python3 benchmarks/fp8_levers.py --model esm2_t36_3B_UR50D --passes 2 --out "$OUT/fp8_levers_3B.json" \
      > "$OUT/fp8_levers_3B.log" 2>&1; echo "fp8_levers exit $?"; tail -28 "$OUT/fp8_levers_3B.log"
    ;;
  *) echo "unknown stage $stage"; exit 2 ;;
esac
