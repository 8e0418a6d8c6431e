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
WAVE_TESTS=(tests/models/common/test_attention_alibi_gpu.py tests/models/common/test_gated_linear_gpu.py
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
esm_3b_e2e() {  # $1: tree, $2: name, $3: timeout; ESM-2 3B end to end on the proteome x 8 with that tree's code
  (cd "$1" && PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks timeout "$3" python3 benchmarks/throughput.py \
    --model esm2_t36_3B_UR50D --datasets proteome --repeat 8 --systems virnucpro-e2e \
    --out "$OUT/esm_$2.json" >> "$OUT/throughput.log" 2>&1; echo "3B $2 exit $?")
  grep -hE "^\| (virnucpro|matmul)" "$OUT/esm_$2.md"
}
# The sizes are set so that each stage fits one 10-minute call (the H100 calls of 2026-12-07 took
# 376 s for predict-all, 350 s for rest); the throughput inputs are as large as that allows, since the
# end-to-end figures carry a process's fixed costs (results/device_2026-12-07.md).
case $stage in
  new)  # this wave's GPU tests and the kernels' own
    gpu_tests gpu_tests_new.log 420 "${WAVE_TESTS[@]}" tests/models/common/test_kernels_gpu.py
    ;;
  tests)  # every GPU test
    gpu_tests gpu_tests.log 480 tests
    ;;
  predict-all)  # predict's bf16/FP8 parity against VirNucPro at 5,000 frames (with the per-side feature
    # figures), then its speed on 12,000 coding chunks beside VirNucPro's flow on 500 frames
    gpu_tests gpu_tests_predict.log 360 tests/tasks/predict/test_predict_gpu.py
    predict_speed 230 --coding-chunks 12000 --virnucpro-frames 500
    ;;
  rest)  # in order of need, cut by whatever device time is left: issue 25's GPU points, then the rest
    # of this wave's GPU tests, then DNABERT-S speed
    gpu_tests gpu_tests_reliability.log 60 tests/pipeline/test_careless_user.py tests/data/test_plan_checks.py
    before_after 55 45
    start_before_after 140 100
    gpu_tests gpu_tests_wave3.log 120 "${WAVE_TESTS[@]:0:5}" "${WAVE_TESTS[@]:7}"
    dnabert_speed 150 --repeat 200 --sequential-limit 300 --passes 1
    ;;
  again)  # a second sample of 25's before/after figures, then DNABERT-S speed at a steady state
    before_after 55 45
    start_before_after 140 100
    dnabert_speed 150 --repeat 200 --sequential-limit 300 --passes 1
    ;;
  final)  # sixth session: the float32 residual stream and DNABERT-S in fp16 (parity), 3B speed with either
    # stream in one call, then DNABERT-S end to end at a steady state: bf16 with the default workers and
    # with 8, fp16 with 8
    gpu_tests gpu_tests_final.log 180 tests/models/esm2/test_hf_gpu.py tests/models/dnabert/test_dnabert_gpu_parity.py \
      tests/models/common/test_kernels_gpu.py
    for residual in compute float32; do
      timeout 85 python3 benchmarks/throughput.py --model esm2_t36_3B_UR50D --datasets proteome --repeat 8 \
        --systems virnucpro-e2e$([ $residual = compute ] && echo ,matmul-floor) --passes 1 --residual $residual \
        --out "$OUT/residual_$residual.json" >> "$OUT/throughput.log" 2>&1; echo "residual $residual exit $?"
      grep -hE "^\| (virnucpro|matmul)" "$OUT/residual_$residual.md"
    done
    dnabert_speed 120 --repeat 100 --sequential-limit 300 --passes 1
    for run in "bf16 --systems virnucpro-e2e" "fp16 --systems virnucpro-e2e,virnucpro-gpu-only,matmul-floor"; do
      name=dnabert_speed_w8_${run%% *}
      timeout 55 python3 benchmarks/dnabert_speed.py --repeat 100 --workers 8 --passes 1 --dtype $run \
        --out "$OUT/$name.json" > "$OUT/$name.log" 2>&1; echo "$name exit $?"; grep -E "^\| slices" "$OUT/$name.md"
    done
    ;;
  ramp)  # byte-pair groups that start small: DNABERT-S end to end again (default workers and 8), then a
    # 25 M-token job beside the padded batch, the floor and VirNucPro's loop; at most 8 files come back
    gpu_tests gpu_tests_ramp.log 60 tests/pipeline/test_dnabert_jobs.py
    for workers in 2 8; do
      name=dnabert_speed_ramp_w$workers
      timeout 75 python3 benchmarks/dnabert_speed.py --repeat 100 --workers $workers --passes 1 \
        --systems virnucpro-e2e,virnucpro-gpu-only --out "$OUT/$name.json" > "$OUT/$name.log" 2>&1
      echo "$name exit $?"; grep -E "^\| slices" "$OUT/$name.md"
    done
    timeout 170 python3 benchmarks/dnabert_speed.py --chunks 500 --repeat 400 --workers 8 --passes 1 \
      --sequential-limit 300 --out "$OUT/dnabert_speed_long.json" > "$OUT/dnabert_speed_long.log" 2>&1
    echo "dnabert_speed_long exit $?"; grep -E "^\| slices" "$OUT/dnabert_speed_long.md"
    rm -f "$OUT"/*.md
    ;;
  groups)  # seventh session: where DNABERT-S's GPU time goes (profile), then end to end at byte-pair group
    # sizes of 32 (the library's until now), 8, 4 and 2 characters per budget token, with each run's set-up
    # stages and GPU busy time, beside the packed forward alone, the padded batch, the floor and VirNucPro's loop
    timeout 90 python3 benchmarks/dnabert_profile.py --repeat 20 --out "$OUT/dnabert_profile.json" \
      > "$OUT/dnabert_profile.log" 2>&1; echo "profile exit $?"; tail -28 "$OUT/dnabert_profile.log"
    timeout 300 python3 benchmarks/dnabert_speed.py --chunks 500 --repeat 100 --passes 1 --sequential-limit 300 \
      --stages --group-characters 32,8,4,2 --out "$OUT/dnabert_groups.json" > "$OUT/dnabert_groups.log" 2>&1
    echo "dnabert_groups exit $?"; grep -v "set-up:" "$OUT/dnabert_groups.log" | grep -v "^$" | head -24
    grep "set-up:" "$OUT/dnabert_groups.log" | tail -20
    ;;
  validation)  # seventh session: the validation pass in its own process and byte-pair groups of 4 characters per
    # token, beside the code at the session's start (.base: a thread, groups of 32), DNABERT-S and ESM-2 3B end
    # to end in one call; then the GPU tests of the jobs. At most 8 files come back: the .md files are dropped.
    gpu_tests gpu_tests_validation.log 120 tests/pipeline/test_dnabert_jobs.py tests/pipeline/test_careless_user.py \
      tests/pipeline/test_fp8_selfcheck.py
    timeout 200 python3 benchmarks/dnabert_speed.py --chunks 500 --repeat 100 --passes 1 --sequential-limit 300 \
      --stages --group-characters 4,32 --out "$OUT/dnabert_speed.json" > "$OUT/dnabert_speed.log" 2>&1
    echo "dnabert_speed exit $?"; grep -E "^  [a-z]|virnucpro embed" "$OUT/dnabert_speed.log"
    (cd .base && PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks timeout 60 python3 benchmarks/dnabert_speed.py --chunks 500 \
      --repeat 100 --passes 1 --systems virnucpro-e2e --out "$OUT/dnabert_base.json" > "$OUT/dnabert_base.log" 2>&1
      echo "dnabert base exit $?"; grep -E "^  [a-z]" "$OUT/dnabert_base.log")
    esm_3b_e2e . after 85; esm_3b_e2e .base before 85
    rm -f "$OUT"/*.md
    ;;
  scale)  # seventh session, the final tree: DNABERT-S on both slice sets, then a 24.8 M-token job (4x), each
    # beside the packed forward alone, the floor and VirNucPro's loop (the padded batch on the first two only)
    dnabert_speed 230 --repeat 100 --sequential-limit 300 --passes 1
    timeout 200 python3 benchmarks/dnabert_speed.py --chunks 500 --repeat 400 --passes 1 --sequential-limit 300 \
      --systems virnucpro-e2e,virnucpro-gpu-only,matmul-floor,dnabert-s-fp32-sequential \
      --stages --out "$OUT/dnabert_speed_long.json" > "$OUT/dnabert_speed_long.log" 2>&1
    echo "dnabert_speed_long exit $?"; grep -E "^  [a-z]|virnucpro embed|set-up: (job|last|writer|workers)" \
      "$OUT/dnabert_speed_long.log"
    ;;
  assembly)  # seventh session, after assembly's overlapped check: DNABERT-S end to end on 6.2 M tokens beside the
    # padded batch and the floor, then on 24.8 M beside the floor
    timeout 120 python3 benchmarks/dnabert_speed.py --chunks 500 --repeat 100 --passes 1 --stages \
      --systems virnucpro-e2e,matmul-floor,dnabert-s-padded --out "$OUT/dnabert_assembly.json" \
      > "$OUT/dnabert_assembly.log" 2>&1; echo "dnabert_assembly exit $?"
    timeout 150 python3 benchmarks/dnabert_speed.py --chunks 500 --repeat 400 --passes 1 --stages \
      --systems virnucpro-e2e,matmul-floor --out "$OUT/dnabert_assembly_long.json" \
      > "$OUT/dnabert_assembly_long.log" 2>&1; echo "dnabert_assembly_long exit $?"
    grep -hE "^\| slices|virnucpro embed|set-up: (job|last)" "$OUT"/dnabert_assembly*.log
    rm -f "$OUT"/*.md
    ;;
  fused)  # eighth session: the gated MLP's matmul with GELU(gate) * value in its epilogue: its tile sweep beside
    # cuBLAS + the one-pass kernel, the kernel GPU tests, the forward's profile, then DNABERT-S end to end and the
    # forward alone beside the code before it (.head, b306f68), the padded batch and the floor
    timeout 150 python3 benchmarks/gated_linear.py --out "$OUT/gated_linear.json" > "$OUT/gated_linear.log" 2>&1
    echo "gated_linear exit $?"; grep -E "^\|" "$OUT/gated_linear.log"
    gpu_tests gpu_tests_fused.log 150 tests/models/common/test_gated_linear_gpu.py tests/models/common/test_kernels_gpu.py \
      tests/models/dnabert
    timeout 90 python3 benchmarks/dnabert_profile.py --repeat 20 --out "$OUT/dnabert_profile.json" \
      > "$OUT/dnabert_profile.log" 2>&1; echo "profile exit $?"; tail -12 "$OUT/dnabert_profile.log"
    timeout 150 python3 benchmarks/dnabert_speed.py --chunks 500 --repeat 100 --passes 3 --stages \
      --systems virnucpro-e2e,virnucpro-gpu-only,matmul-floor,dnabert-s-padded --out "$OUT/dnabert_fused.json" \
      > "$OUT/dnabert_fused.log" 2>&1; echo "dnabert_fused exit $?"
    (cd .head && PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks timeout 90 python3 benchmarks/dnabert_speed.py --chunks 500 \
      --repeat 100 --passes 3 --systems virnucpro-e2e,virnucpro-gpu-only --out "$OUT/dnabert_head.json" \
      > "$OUT/dnabert_head.log" 2>&1; echo "dnabert head exit $?")
    grep -hE "^  [a-z]|virnucpro embed|set-up: (job|last)" "$OUT/dnabert_fused.log" "$OUT/dnabert_head.log"
    rm -f "$OUT"/*.md
    ;;
  eighth)  # eighth session, the final tree in one call, in order of need while $LIMIT_S (the call's limit) allows:
    # the fused gated linear unit's GPU tests, DNABERT-S end to end and the forward alone beside the padded batch
    # and the floor, DNABERT-S's GPU tests, the same two systems with the code before the session (.head,
    # b306f68), and ESM-2 3B end to end beside the code before the wave (.old)
    left() { [ $((${LIMIT_S:-600} - SECONDS)) -gt "$1" ] || { echo "skipped from here: ${SECONDS} s gone"; false; }; }
    gpu_tests gpu_tests_gated.log 60 tests/models/common/test_gated_linear_gpu.py
    left 120 && { timeout 110 python3 benchmarks/dnabert_speed.py --chunks 500 --repeat 100 --passes 1 --stages \
      --systems virnucpro-e2e,virnucpro-gpu-only,matmul-floor,dnabert-s-padded --out "$OUT/dnabert_final.json" \
      > "$OUT/dnabert_final.log" 2>&1; echo "dnabert_final exit $?"
      grep -hE "^  [a-z]|virnucpro embed|set-up: (job|last)" "$OUT/dnabert_final.log"; } &&
    left 160 && gpu_tests gpu_tests_dnabert.log 150 tests/models/dnabert &&
    left 70 && { (cd .head && PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks timeout 60 python3 benchmarks/dnabert_speed.py \
      --chunks 500 --repeat 100 --passes 3 --systems virnucpro-e2e,virnucpro-gpu-only --out "$OUT/dnabert_head.json" \
      > "$OUT/dnabert_head.log" 2>&1; echo "dnabert head exit $?"); grep -hE "^  [a-z]" "$OUT/dnabert_head.log"; } &&
    left 180 && { esm_3b_e2e . after 85; esm_3b_e2e .old before 85; }
    rm -f "$OUT"/*.md
    ;;
  ninth)  # ninth session: the GPU tests the eighth left unrun (the gated linear unit's corrected bound, DNABERT-S's
    # model tests on the final code), then ESM-2 3B end to end beside the code before the wave (.old) while time allows
    left() { [ $((${LIMIT_S:-600} - SECONDS)) -gt "$1" ] || { echo "skipped from here: ${SECONDS} s gone"; false; }; }
    gpu_tests gpu_tests_gated.log 170 --durations=5 tests/models/common/test_gated_linear_gpu.py
    left 200 && gpu_tests gpu_tests_dnabert.log $((${LIMIT_S:-600} - SECONDS - 20)) --durations=12 \
      tests/models/dnabert tests/models/common/test_attention_alibi_gpu.py
    left 180 && { esm_3b_e2e . after 85; esm_3b_e2e .old before 85; }
    rm -f "$OUT"/*.md
    ;;
  esm3b)  # ESM-2 3B end to end, this tree beside the code before the wave (.old), in one call
    esm_3b_e2e . after 85; esm_3b_e2e .old before 85
    rm -f "$OUT"/*.md
    ;;
  *) echo "unknown stage $stage (new, tests, predict-all, rest, again, final, ramp, groups, validation, scale, assembly, fused, eighth, ninth, esm3b)"; exit 2 ;;
esac
