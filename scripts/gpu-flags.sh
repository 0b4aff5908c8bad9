#!/usr/bin/env bash
# Runs ON the GPU machine (scripts/gpu-pack.sh .device; carry [".device"]): a training-step change's quick check in a few
# minutes without mamba_ssm (session 11 decided the tiled conv and the decoding L2 prefetch with it:
# bench/results/gpu-flags-h100-2026-12-07.txt) — the GPU tests of the ops (CudaOpsTests, CudaKernelTests,
# CudaMambaStepTests, CudaModelTests: the model's gradients against transformers' float64 reference), `bench cuda` in its
# scan mode (with its conv table: per-element vs tiled, and their largest difference), `bench cuda-model` in its flags mode
# (the 8 × 2048 training step with each conv, interleaved), then our BF16 training step's kernels under Nsight Compute
# (region train-bf16, with the wall time of its unprofiled warm-up steps). With .anchors carried too, mamba_ssm's extensions
# build in the background from the start (so a second call on the warm machine finds them cached) and, when the build is
# done in time, its BF16 step is profiled the same way. Logs to $OUT (at most 8 files).
#   OUT=... [DEADLINE=580] [BENCH=0] [CLASSES="CudaOpsTests ..."] bash .device/gpu-flags.sh
set -uo pipefail
dev=$(cd "$(dirname "$0")" && pwd)
. "$dev/gpu-env.sh" && gpu_measuring
out=$gpu_out bench=$gpu_bench anchors=$gpu_anchors
deadline=${DEADLINE:-580}
left() { echo $((deadline - SECONDS)); }
if [ -n "$anchors" ]; then
  (MAX_JOBS=6 ANCHOR_BUILD_ONLY=1 nice -n 10 python3 "$anchors/model_anchor.py" > "$out/anchor-build.log" 2>&1) &
  build=$!
fi
for c in ${CLASSES:-CudaOpsTests CudaKernelTests CudaMambaStepTests CudaModelTests}; do
  timeout 200 "$dev/Mamba4.Tests/Mamba4.Tests" -trait "Category=Cuda" -class "Mamba4.Tests.$c" -parallel none > "$out/t.log" 2>&1
  echo "$c rc=$?: $(grep -E 'Total:' "$out/t.log")"; gpu_failures "$out/t.log"; cat "$out/t.log" >> "$out/tests.log"
done
if [ "${BENCH:-1}" = 1 ]; then   # BENCH=0: the tests and the profile only (a last call with little device time left)
  MAMBA4_CUDA_BENCH=scan MAMBA4_DEVICE=cuda timeout 150 dotnet "$bench" cuda > "$out/gpu-bench-cuda.log" 2>&1
  echo "bench cuda rc=$?"; grep -A6 "causal conv1d" "$out/gpu-bench-cuda.log"
  MAMBA4_CUDA_BENCH=flags MAMBA4_DEVICE=cuda timeout 200 dotnet "$bench" cuda-model > "$out/gpu-bench-flags.log" 2>&1
  echo "bench cuda-model (flags) rc=$?"; grep -vE "^\s*$" "$out/gpu-bench-flags.log"
fi
# our BF16 training step, kernel by kernel (Nsight Compute; for the autocast decision: the rounding passes' share)
echo "[$SECONDS s] ours, region train-bf16"
MAMBA4_CUDA_BENCH=region-train-bf16 MAMBA4_DEVICE=cuda gpu_ncu_region "$(( $(left) < 150 ? $(left) : 150 ))" ours-train-bf16 dotnet "$bench" cuda-model
if [ -n "$anchors" ]; then
  if kill -0 $build 2>/dev/null; then echo "[$SECONDS s] mamba_ssm still building: its region skipped"
  elif [ "$(left)" -gt 60 ]; then
    echo "[$SECONDS s] mamba_ssm built ($(head -c 120 "$out/anchor-build.log")), region train-bf16"
    gpu_ncu_region "$(( $(left) < 120 ? $(left) : 120 ))" mamba_ssm-train-bf16 python3 "$dev/model_anchor_profile.py" "$anchors" train-bf16
  fi
fi
rm -f "$out/t.log"; find "$out" -name "*.err" -empty -delete   # at most 8 files come back
echo "elapsed ${SECONDS}s"
