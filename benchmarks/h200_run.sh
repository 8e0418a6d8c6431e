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
  start)  # per-sample processes beside fair-esm's (FAIR=none: without), each model from an empty Triton cache;
    # then the GPU tests of the weight copy and the kernels
    for model in esm2_t36_3B_UR50D esm2_t33_650M_UR50D; do
      TRITON_CACHE_DIR=$(mktemp -d) timeout 240 python3 benchmarks/process_start.py --model $model \
        ${FAIR:+--toks-per-batch $FAIR} --out "$OUT/process_start.json" >> "$OUT/bench.log" 2>&1
      echo "process_start $model exit $?"
    done
    grep -vE "^\| |^$|^  - " "$OUT/process_start.md" | tail -22
    timeout 120 python3 -m pytest -q -m gpu tests/models/common/test_upload.py tests/models/common/test_kernels_gpu.py \
      -p no:cacheprovider > "$OUT/gpu_tests_start.log" 2>&1; echo "pytest exit $?"; tail -2 "$OUT/gpu_tests_start.log"
    grep -E "FAILED|Error" "$OUT/gpu_tests_start.log" | head -20
    ;;
  final2)  # the per-sample processes beside fair-esm's, then every GPU test
    FAIR= bash "$0" start
    timeout 300 python3 -m pytest -q -s -m gpu tests -p no:cacheprovider > "$OUT/gpu_tests.log" 2>&1
    echo "pytest exit $?"; tail -3 "$OUT/gpu_tests.log"; grep -E "FAILED|Error|cosine vs fp32 min" "$OUT/gpu_tests.log" | tail -30
    ;;
  bench)  # what a user's process sees, then throughput beside fair-esm and the floors, then the code before
    for model in esm2_t36_3B_UR50D esm2_t33_650M_UR50D; do
      timeout 200 python3 benchmarks/process_start.py --model $model --out "$OUT/process_start.json" \
        >> "$OUT/bench.log" 2>&1; echo "process_start $model exit $?"
    done
    tail -12 "$OUT/process_start.md"
    for model in esm2_t36_3B_UR50D:16384 esm2_t33_650M_UR50D:4096; do
      timeout 160 python3 benchmarks/throughput.py --model ${model%%:*} --out "$OUT/h200.json" --datasets proteome \
        --systems virnucpro-e2e,virnucpro-e2e-fp8,matmul-floor,matmul-floor-fp8,fair-esm-fp16 \
        --fp16-toks-per-batch ${model##*:} >> "$OUT/bench.log" 2>&1; echo "throughput $model exit $?"
    done
    grep -E "^\| (virnucpro|fair|matmul)" "$OUT/h200.md"
    (cd .old && PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks timeout 70 python3 benchmarks/throughput.py \
      --model esm2_t36_3B_UR50D --systems virnucpro-e2e --datasets proteome --out "$OUT/before.json" \
      >> "$OUT/bench.log" 2>&1; echo "before exit $?")
    grep -E "^\| virnucpro" "$OUT/before.md"
    ;;
  final)  # every GPU test (FP8 whole-model parity included), then 3B: bf16, FP8 and windowed e2e beside fair-esm
    timeout 360 python3 -m pytest -q -s -m gpu tests -p no:cacheprovider > "$OUT/gpu_tests.log" 2>&1
    echo "pytest exit $?"; tail -3 "$OUT/gpu_tests.log"; grep -E "FAILED|Error|cosine vs fp32 min" "$OUT/gpu_tests.log" | tail -30
    timeout 190 python3 benchmarks/throughput.py --model esm2_t36_3B_UR50D --out "$OUT/h200_3B.json" --datasets proteome \
      --systems virnucpro-e2e,virnucpro-e2e-fp8,virnucpro-e2e-window,matmul-floor,matmul-floor-fp8,fair-esm-fp16 \
      --fp16-toks-per-batch 16384 > "$OUT/bench_3B.log" 2>&1; echo "throughput exit $?"
    grep -E "tokens/s over|Error" "$OUT/bench_3B.log"
    ;;
  fp8)  # the FP8 tests, then 3B: bf16, FP8 and windowed e2e beside fair-esm and both floors
    timeout 150 python3 -m pytest -q -s -m gpu tests/models/common/test_fp8.py tests/pipeline/test_fp8_selfcheck.py \
      -p no:cacheprovider > "$OUT/gpu_tests_fp8.log" 2>&1; echo "pytest exit $?"; tail -2 "$OUT/gpu_tests_fp8.log"
    grep -E "FAILED" "$OUT/gpu_tests_fp8.log"
    timeout 240 python3 benchmarks/throughput.py --model esm2_t36_3B_UR50D --out "$OUT/h200_3B.json" --datasets proteome \
      --systems virnucpro-e2e,virnucpro-e2e-fp8,virnucpro-e2e-window,matmul-floor,matmul-floor-fp8,fair-esm-fp16 \
      --fp16-toks-per-batch 16384 > "$OUT/bench_3B.log" 2>&1; echo "throughput exit $?"
    grep -E "tokens/s over|Error" "$OUT/bench_3B.log"
    ;;
  long)  # a 4x longer 3B job, bf16 and FP8: fixed costs (two model copies, the first batch checked) amortised
    timeout 300 python3 benchmarks/throughput.py --model esm2_t36_3B_UR50D --out "$OUT/h200_3B_long.json" \
      --datasets proteome --repeat 12 --systems virnucpro-e2e,virnucpro-e2e-fp8 > "$OUT/bench_3B_long.log" 2>&1
    echo "throughput exit $?"; grep -E "tokens/s over|Error|first" "$OUT/bench_3B_long.log"
    ;;
  *) echo "unknown stage $stage"; exit 2 ;;
esac
