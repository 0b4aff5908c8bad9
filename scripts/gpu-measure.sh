#!/usr/bin/env bash
# Runs ON the GPU machine from the checkout root (scripts/gpu-pack.sh .device; carry [".device", ".anchors"]): issue 19's
# measurements in one call, everything against mamba_ssm on the same card:
#   1. mamba_ssm's extensions build in the background (ANCHOR_BUILD_ONLY) while 2. the GPU tests run (all of Category=Cuda;
#      TESTS=0 skips them); 3. mamba_ssm's model is timed (model_anchor.py, model_anchor_more.py), then ours beside it
#      (bench cuda-model: the ratios); 4. Nsight Compute times every kernel of one region of ours (MAMBA4_CUDA_BENCH=
#      region-..., REGIONS) and of mamba_ssm (ANCHOR_REGIONS), summed by name (ncu_kernel_times.py), as the deadline allows.
#   Timing comes before profiling: in the first run the profiled processes left the host busy and slowed mamba_ssm's
#   host-bound rows by up to 2x (bench/results/gpu-measure-h100-2026-12-06-s7.txt); each profile now ends its processes.
#   mamba_ssm's build takes 260-480 s on a fresh machine: with the tests beside it the whole call needs ~600 s.
#   A probe between full runs: TESTS="CudaMambaStepTests CudaModelTests" runs those classes only, MODEL_ANCHOR=0 skips
#   mamba_ssm's model timing (its build still runs, for ANCHOR_REGIONS), BENCH=generation times only that part of ours.
#   OUT=... [DEADLINE=570] [TESTS=1|0|"Class ..."] [MODEL_ANCHOR=1|0] [BENCH=mode] [REGIONS="train-bf16 ..."]
#   [ANCHOR_REGIONS="train-bf16 ..."] bash .device/gpu-measure.sh
set -uo pipefail
dev=$(cd "$(dirname "$0")" && pwd)
deadline=${DEADLINE:-570}
. "$dev/gpu-env.sh" && gpu_measuring
out=$gpu_out anchors=$gpu_anchors bench=$gpu_bench
left() { echo $((deadline - SECONDS)); }
ncu_region() { gpu_ncu_region "$(( $(left) < 90 ? $(left) : 90 ))" "$@"; }
if [ -n "$anchors" ]; then
  (ANCHOR_BUILD_ONLY=1 python3 "$anchors/model_anchor.py" > "$out/anchor-build.log" 2>&1) &
  build=$!
fi
tests=${TESTS:-1}
if [ "$tests" != 0 ]; then
  echo "[$SECONDS s] GPU tests ($tests)"
  if [ "$tests" = 1 ]; then filter=(-trait "Category=Cuda"); else filter=(); for c in $tests; do filter+=(-class "Mamba4.Tests.$c"); done; fi
  timeout 260 "$dev/Mamba4.Tests/Mamba4.Tests" "${filter[@]}" -parallel none > "$out/gpu-tests.log" 2>&1
  echo "tests rc=$?"; grep -E "Total:" "$out/gpu-tests.log"; gpu_failures "$out/gpu-tests.log" 40
fi
if [ -n "$anchors" ] && [ "${MODEL_ANCHOR:-1}" = 1 ]; then
  wait $build; echo "[$SECONDS s] mamba_ssm built: $(head -c 200 "$out/anchor-build.log")"
  timeout 160 python3 "$anchors/model_anchor.py" > "$out/model-anchor.jsonl" 2> "$out/model-anchor.err" || echo "model_anchor.py failed: $(tail -2 "$out/model-anchor.err")"
  timeout 120 python3 "$dev/model_anchor_more.py" "$anchors" >> "$out/model-anchor.jsonl" 2> "$out/model-anchor-more.err" || echo "model_anchor_more.py failed: $(tail -2 "$out/model-anchor-more.err")"
  export MAMBA4_MODEL_ANCHOR="$out/model-anchor.jsonl"
  echo "[$SECONDS s] mamba_ssm timed"; cat "$out/model-anchor.jsonl"
fi
echo "[$SECONDS s] ours: bench cuda-model"
MAMBA4_CUDA_BENCH=${BENCH:-} MAMBA4_DEVICE=cuda timeout "$(( $(left) > 30 ? $(left) : 30 ))" dotnet "$bench" cuda-model > "$out/gpu-bench-cuda-model.log" 2>&1
echo "bench rc=$?"; grep -vE "^\s*$" "$out/gpu-bench-cuda-model.log" | head -80
for r in ${REGIONS-decode64-bf16 train-bf16}; do
  [ "$(left)" -gt 60 ] || { echo "skipped region $r (deadline)"; continue; }
  echo "[$SECONDS s] ours, region $r"
  MAMBA4_CUDA_BENCH=region-$r MAMBA4_DEVICE=cuda ncu_region "ours-$r" dotnet "$bench" cuda-model
done
if [ -n "$anchors" ]; then
  kill -0 $build 2>/dev/null && { echo "[$SECONDS s] waiting for mamba_ssm's build"; wait $build; }
  for r in ${ANCHOR_REGIONS-train-bf16}; do
    [ "$(left)" -gt 60 ] || { echo "skipped mamba_ssm region $r (deadline)"; continue; }
    echo "[$SECONDS s] mamba_ssm, region $r"
    ncu_region "mamba_ssm-$r" python3 "$dev/model_anchor_profile.py" "$anchors" "$r"
  done
fi
echo "elapsed ${SECONDS}s"
