#!/usr/bin/env bash
# Runs ON the GPU machine from the checkout root: the fused step's tests, then the GPU tests (final: all of them, beside
# mamba_ssm's build; quick: the model tests and the captured step), [NCU=1] Nsight Compute over one eager step of each
# fused path (NCU_KERNELS: a regex of the kernels, NCU_S: its seconds), [final] mamba_ssm's anchor, the generation bench
# (with the ratios), [measure: the quick tests, the bench while mamba_ssm builds, then its anchor (ratios by hand); the
# shortest run that times both in one call].
#   scripts/gpu-pack.sh .device && (on the GPU machine) bash .device/gpu-decode.sh quick|final|measure
set -uo pipefail
what=${1:-quick}
dev=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/out}; mkdir -p "$out"
. "$dev/gpu-env.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
anchors=$(cd "$dev/../.anchors" 2>/dev/null && pwd)
tests="$dev/Mamba4.Tests/Mamba4.Tests"
if [ "$what" != quick ] && [ -n "$anchors" ]; then
  (ANCHOR_BUILD_ONLY=1 python3 "$anchors/model_anchor.py" > "$out/anchor-build.log" 2>&1) &
  build=$!
fi
# the fused step's tests first: they compile mamba_step.cu, so a broken kernel shows within seconds (and ends the run)
timeout 200 "$tests" -trait "Category=Cuda" -class Mamba4.Tests.CudaMambaStepTests -parallel none > "$out/step-tests.log" 2>&1
echo "step tests rc=$?"; grep -E "FAIL|rror|Total:" "$out/step-tests.log" | head -30
if grep -q "CudaCompileException" "$out/step-tests.log"; then grep -E -A12 "CudaCompileException" "$out/step-tests.log" | head -60; exit 1; fi
if [ "$what" = final ] && [ -n "$anchors" ]; then
  timeout 300 "$tests" -trait "Category=Cuda" -parallel none > "$out/gpu-tests.log" 2>&1
  echo "tests rc=$?"; grep -E "FAIL|Total:" "$out/gpu-tests.log" | head -40
else
  timeout 150 "$tests" -trait "Category=Cuda" -class Mamba4.Tests.CudaModelTests -parallel none 2>&1 | tee -a "$out/gpu-tests.log" | grep -E "FAIL|Assert|rror|Total:|^\s+at Mamba4" | head -40
  timeout 60 "$tests" -trait "Category=Cuda" -method Mamba4.Tests.CudaKernelTests.CapturedDecodeStepEqualsTheOrdinaryStep -parallel none 2>&1 | tee -a "$out/gpu-tests.log" | grep -E "FAIL|Assert|rror|Total:|^\s+at Mamba4" | head -20
fi
# mamba_ssm's timing (after its build), then its generate rows
anchor_timing() {
  wait $build
  python3 "$anchors/model_anchor.py" > "$out/model-anchor.jsonl" 2> "$out/model-anchor.err" || { echo "anchor failed"; tail -5 "$out/model-anchor.err"; }
  grep generate "$out/model-anchor.jsonl"
}
# Nsight Compute gets at most what leaves the anchor and the bench ~180 s of the 600 s a call may run
ncu_s=$(( 420 - SECONDS )); [ "$ncu_s" -gt "${NCU_S:-200}" ] && ncu_s=${NCU_S:-200}
if [ "${NCU:-0}" = 1 ] && [ "$ncu_s" -gt 20 ]; then
  # while mamba_ssm builds (final): one eager step per path and weight kind (MAMBA4_CUDA_BENCH=generation-profile), the
  # fused kernels matching $NCU_KERNELS (default every one) profiled at the card's own clocks, for at most $NCU_S seconds
  ncu=/usr/local/cuda/bin/ncu; [ -x "$ncu" ] || ncu=$(command -v ncu)
  MAMBA4_CUDA_BENCH=generation-profile MAMBA4_DEVICE=cuda timeout "$ncu_s" "$ncu" --clock-control none -k "regex:${NCU_KERNELS:-mamba_step}" \
    --section SpeedOfLight --section Occupancy --section LaunchStats \
    dotnet "$dev/Mamba4.Bench/Mamba4.Bench.dll" cuda-model > "$out/ncu.txt" 2>&1
  echo "ncu rc=$?"
  # one line per profiled kernel: name, duration, DRAM and memory throughput, registers, achieved occupancy
  awk '/^  mamba_step/ {if (k) print k, d, dr, m, r, o; k=$1; d=dr=m=r=o=""} /Duration/ {d=$(NF-1)$NF} /DRAM Throughput/ {dr="dram "$NF"%"} /^ +Memory Throughput/ {m="mem "$NF"%"} /Registers Per Thread/ {r="regs "$NF} /Achieved Occupancy/ {o="occ "$NF"%"} END {print k, d, dr, m, r, o}' "$out/ncu.txt" > "$out/ncu-summary.txt"
  awk '{c[$1]++; if (c[$1] <= 2) print}' "$out/ncu-summary.txt"
  grep -E "==PROF==|==ERROR==|==WARNING==" "$out/ncu.txt" | sort | uniq -c | head -5
fi
if [ "$what" = final ] && [ -n "$anchors" ]; then
  anchor_timing && export MAMBA4_MODEL_ANCHOR="$out/model-anchor.jsonl"
fi
MAMBA4_CUDA_BENCH=generation MAMBA4_DEVICE=cuda timeout 200 dotnet "$dev/Mamba4.Bench/Mamba4.Bench.dll" cuda-model 2>&1 | tee "$out/gpu-bench-generation.log"
if [ "$what" = measure ] && [ -n "$anchors" ]; then
  anchor_timing
fi
echo "elapsed ${SECONDS}s"
