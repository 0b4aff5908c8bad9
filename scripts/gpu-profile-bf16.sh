#!/usr/bin/env bash
# Runs ON the GPU machine from the checkout root (scripts/gpu-pack.sh .device; carry [".device", ".anchors"]): Nsight Compute's per-kernel times of one BF16 training step, ours then mamba_ssm's (warm machine: its build cached)
. "$(dirname "$0")/gpu-env.sh" && gpu_measuring
echo "[$SECONDS s] ours"
MAMBA4_CUDA_BENCH=region-train-bf16 MAMBA4_DEVICE=cuda gpu_ncu_region 170 ours-train-bf16 dotnet "$gpu_bench" cuda-model 2>&1 | tail -45
echo "[$SECONDS s] mamba_ssm"
[ -n "$gpu_anchors" ] && gpu_ncu_region 170 mamba_ssm-train-bf16 python3 "$gpu_pack/model_anchor_profile.py" "$gpu_anchors" train-bf16 2>&1 | tail -45
echo "[$SECONDS s] done"
