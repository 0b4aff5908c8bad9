#!/usr/bin/env bash
# Runs ON the GPU machine (scripts/gpu-pack.sh .device; carry [".device"]): what decides the defaults written without a GPU
# in session 10, in a few minutes and without mamba_ssm — the GPU tests of the ops concerned (CudaOpsTests: the tiled conv
# against the CPU; CudaKernelTests: the BF16 operands rounded once, bit for bit; CudaMambaStepTests: the L2 prefetch bit for
# bit; CudaModelTests: the model gradients with the tiled conv), `bench cuda` in its scan mode
# (its conv table: per-element vs tiled, and their largest difference) and `bench cuda-model` in its flags mode (the 8 × 2048
# training step with each conv, the batch-1 decoding step with and without the prefetch, interleaved), then our BF16
# training step's kernels under Nsight Compute (region train-bf16). Logs to $OUT.
#   OUT=... bash .device/gpu-flags.sh
set -uo pipefail
dev=$(cd "$(dirname "$0")" && pwd)
. "$dev/gpu-env.sh" && gpu_measuring
out=$gpu_out bench=$gpu_bench
for c in CudaOpsTests CudaKernelTests CudaMambaStepTests CudaModelTests; do
  timeout 200 "$dev/Mamba4.Tests/Mamba4.Tests" -trait "Category=Cuda" -class "Mamba4.Tests.$c" -parallel none > "$out/tests-$c.log" 2>&1
  echo "$c rc=$?: $(grep -E 'Total:' "$out/tests-$c.log")"; grep -E "^\s*\[FAIL\]" "$out/tests-$c.log" | head -10
done
MAMBA4_CUDA_BENCH=scan MAMBA4_DEVICE=cuda timeout 150 dotnet "$bench" cuda > "$out/gpu-bench-cuda.log" 2>&1
echo "bench cuda rc=$?"; grep -A6 "causal conv1d" "$out/gpu-bench-cuda.log"
MAMBA4_CUDA_BENCH=flags MAMBA4_DEVICE=cuda timeout 200 dotnet "$bench" cuda-model > "$out/gpu-bench-flags.log" 2>&1
echo "bench cuda-model (flags) rc=$?"; grep -vE "^\s*$" "$out/gpu-bench-flags.log"
# our BF16 training step, kernel by kernel (Nsight Compute; for the autocast decision: the rounding passes' share)
echo "ours, region train-bf16"; MAMBA4_CUDA_BENCH=region-train-bf16 MAMBA4_DEVICE=cuda gpu_ncu_region 150 ours-train-bf16 dotnet "$bench" cuda-model
echo "elapsed ${SECONDS}s"
