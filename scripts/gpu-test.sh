#!/usr/bin/env bash
# Runs ON the GPU machine, from the root of a tree that holds .device/ (made by scripts/gpu-pack.sh):
# unpacks .NET, runs the GPU tests (trait Category=Cuda) and then the CUDA benchmark. Logs go to $OUT when set.
#   bash .device/gpu-test.sh [tests|bench|all] [BENCH]     (default all; BENCH default cuda, e.g. scaling,
#                                                          run with MAMBA4_DEVICE=cuda; its reports land in $OUT too)
set -uo pipefail
what=${1:-all}
bench=${2:-cuda}
dev=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/mamba4-gpu}
mkdir -p /tmp/dotnet "$out"
[ -x /tmp/dotnet/dotnet ] || tar xJf "$dev/dotnet.tar.xz" -C /tmp/dotnet
export DOTNET_ROOT=/tmp/dotnet PATH=/tmp/dotnet:$PATH DOTNET_CLI_TELEMETRY_OPTOUT=1
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export MAMBA4_SHARED="$dev/shared" MAMBA4_CUDA_CACHE=/tmp/mamba4-cuda-cache
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
rc=0
if [ "$what" = all ] || [ "$what" = tests ]; then
  "$dev/Mamba4.Tests/Mamba4.Tests" -trait "Category=Cuda" -parallel none 2>&1 | tee "$out/gpu-tests.log" | grep -vE '^\s*$' | grep -E 'FAIL|Error|error|Assert|expected|GPU|CPU|Total:|scan|registers|^\s+at Mamba4' | head -150
  rc=${PIPESTATUS[0]}
fi
if [ "$what" = all ] || [ "$what" = bench ]; then
  log="$out/gpu-bench.log"; [ "$bench" = cuda ] || log="$out/gpu-bench-$bench.log"
  OUT="$out" MAMBA4_DEVICE=cuda dotnet "$dev/Mamba4.Bench/Mamba4.Bench.dll" "$bench" 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" = 0 ] || rc=1
fi
exit $rc
