#!/usr/bin/env bash
# The device calls of the third wave: `bash benchmarks/device_run.sh STAGE` in the repo root on the H100/H200,
# with fair-esm, Biopython, h5py, pandas and einops carried as wheels in .whl/ (the machine has none of them).
set -uo pipefail
stage=$1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader
python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)"
gpu_tests() {  # $1: log name, $2: timeout, then pytest arguments
  local log=$1 limit=$2; shift 2
  timeout "$limit" python3 -m pytest -q -s -m gpu -p no:cacheprovider "$@" > "$OUT/$log" 2>&1
  echo "pytest $log exit $?"; tail -2 "$OUT/$log"
  grep -E "FAILED|Error|cosine|min " "$OUT/$log" | grep -v "^tests.*PASSED" | tail -40
}
# This wave's GPU tests (ALiBi, gated GELU, DNABERT-S, ESM-2 from transformers' layout, classifier, plan, CLI).
WAVE_TESTS=(tests/models/common/test_attention_alibi_gpu.py tests/models/common/test_gated_gelu_gpu.py
  tests/models/dnabert tests/models/esm2/test_hf_gpu.py tests/models/classifier tests/data/test_plan_checks.py
  tests/pipeline/test_careless_user.py tests/pipeline/test_dnabert_jobs.py tests/data/test_sequence_dataset.py)
dnabert_speed() {  # $1: timeout, then dnabert_speed.py arguments: DNABERT-S packed beside its own code
  local limit=$1; shift
  timeout "$limit" python3 benchmarks/dnabert_speed.py "$@" --out "$OUT/dnabert_speed.json" > "$OUT/dnabert_speed.log" 2>&1
  echo "dnabert_speed exit $?"; tail -15 "$OUT/dnabert_speed.log"
}
predict_speed() {  # $1: timeout, then predict_speed.py arguments: predict beside VirNucPro's flow and embed --dna
  local limit=$1; shift
  (cd benchmarks && timeout "$limit" python3 predict_speed.py "$@" --out "$OUT/predict_speed.json") > "$OUT/predict_speed.log" 2>&1
  echo "predict_speed exit $?"; grep -v "Processing\|saved to\|^Read " "$OUT/predict_speed.log" | tail -25
}
before_after() {  # $1, $2: timeouts; ESM-2 3B end to end with this tree and with the code before the wave (.old)
  timeout "$1" python3 benchmarks/throughput.py --model esm2_t36_3B_UR50D --systems virnucpro-e2e,matmul-floor \
    --datasets proteome --out "$OUT/after.json" > "$OUT/throughput.log" 2>&1; echo "after exit $?"
  (cd .old && PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks timeout "$2" python3 benchmarks/throughput.py \
    --model esm2_t36_3B_UR50D --systems virnucpro-e2e --datasets proteome --out "$OUT/before.json" \
    >> "$OUT/throughput.log" 2>&1; echo "before exit $?")
  grep -hE "^\| (virnucpro|matmul)" "$OUT/after.md" "$OUT/before.md"
}
start_before_after() {  # $1, $2: timeouts; per-sample ESM-2 3B start-up, this tree (fair-esm's and transformers'
  # layouts) and the code before the wave (.old); no fair-esm process (its row is in results/process_start.md)
  timeout "$1" python3 benchmarks/process_start.py --model esm2_t36_3B_UR50D --toks-per-batch none \
    --out "$OUT/start_after.json" > "$OUT/process_start.log" 2>&1; echo "start after exit $?"
  (cd .old && PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks timeout "$2" python3 benchmarks/process_start.py \
    --model esm2_t36_3B_UR50D --toks-per-batch none --out "$OUT/start_before.json" >> "$OUT/process_start.log" 2>&1
    echo "start before exit $?")
  grep -hE "^\| virnucpro" "$OUT/start_after.md" "$OUT/start_before.md"
}
case $stage in
  new)  # this wave's GPU tests and the kernels' own
    gpu_tests gpu_tests_new.log 420 "${WAVE_TESTS[@]}" tests/models/common/test_kernels_gpu.py
    ;;
  tests)  # every GPU test
    gpu_tests gpu_tests.log 480 tests
    ;;
  final)  # one call of 10 minutes: the wave's GPU tests, predict, DNABERT-S, then ESM-2 3B before/after
    gpu_tests gpu_tests_wave3.log 170 "${WAVE_TESTS[@]}"
    predict_speed 200 --coding-chunks 2000 --virnucpro-frames 500
    dnabert_speed 100 --repeat 4 --sequential-limit 500 --passes 2
    before_after 70 60
    ;;
  lean)  # about 9 minutes, the most needed first: as final, with smaller sizes
    gpu_tests gpu_tests_wave3.log 140 "${WAVE_TESTS[@]}"
    dnabert_speed 80 --repeat 4 --sequential-limit 300 --passes 1
    predict_speed 170 --coding-chunks 1500 --virnucpro-frames 500
    before_after 65 55
    ;;
  short)  # the wave's GPU tests, ESM-2 3B before/after, DNABERT-S beside its own code
    gpu_tests gpu_tests_wave3.log 150 "${WAVE_TESTS[@]}"
    before_after 70 60
    dnabert_speed 90 --repeat 4 --sequential-limit 300 --passes 1
    ;;
  predict)  # virnucpro predict: bf16 and FP8 against VirNucPro's fp32 flow at real sizes (about 8 minutes)
    gpu_tests gpu_tests_predict.log 560 tests/tasks/predict/test_predict_gpu.py
    ;;
  predict-speed)  # benchmarks/predict_speed.py at its default sizes (about 8 minutes)
    predict_speed 560
    ;;
  wave)  # one call under 10 minutes: the wave's GPU tests, DNABERT-S speed, ESM-2 3B throughput and start-up before/after
    gpu_tests gpu_tests_wave3.log 120 "${WAVE_TESTS[@]}"
    dnabert_speed 70 --repeat 4 --sequential-limit 300 --passes 1
    before_after 60 50
    start_before_after 150 110
    ;;
  predict-all)  # one call under 10 minutes: predict's bf16/FP8 parity against VirNucPro at 5,000 frames, then its speed
    gpu_tests gpu_tests_predict.log 390 tests/tasks/predict/test_predict_gpu.py
    predict_speed 180 --coding-chunks 1500 --virnucpro-frames 500
    ;;
  reliability)  # about 6 minutes, issue 25's GPU points: its CUDA tests, then 3B throughput and start-up before/after
    gpu_tests gpu_tests_reliability.log 60 tests/pipeline/test_careless_user.py tests/data/test_plan_checks.py
    before_after 55 45
    start_before_after 140 100
    ;;
  rest)  # after predict-all, in order of need, cut by whatever device time is left: issue 25's GPU
    # points, then the rest of this wave's GPU tests, then DNABERT-S speed
    gpu_tests gpu_tests_reliability.log 60 tests/pipeline/test_careless_user.py tests/data/test_plan_checks.py
    before_after 55 45
    start_before_after 140 100
    gpu_tests gpu_tests_wave3.log 120 "${WAVE_TESTS[@]:0:5}" "${WAVE_TESTS[@]:7}"
    dnabert_speed 70 --repeat 4 --sequential-limit 300 --passes 1
    ;;
  *) echo "unknown stage $stage"; exit 2 ;;
esac
