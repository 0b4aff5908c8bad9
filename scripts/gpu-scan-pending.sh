#!/usr/bin/env bash
# Runs ON the GPU machine (packed by scripts/scan-pending-pack.sh; carry [".device", ".anchors"]): a pending scan change
# tested and timed against main in one call.
#   1. In the background: mamba_ssm's scan extension builds (scan_anchor.py's first 21 lines), and every var-* build
#      compiles its kernels by one untimed run of the scan table (selective_scan.cu takes NVRTC ~20-30 s per element type,
#      three types in the table: cold, a timed run would spend its time there).
#   2. The GPU tests of the scan run on the full stack (CudaSelectiveScanTests, CudaMixedPrecisionTests).
#   3. mamba_ssm's fused scan is timed alone (scan_anchor.py), then the scan table of main and the stack in the order
#      main, stack, stack, main, then the intermediate builds, while the deadline allows; then CudaModelTests.
#   OUT=... [DEADLINE=420] bash .device/gpu-scan-pending.sh
set -uo pipefail
dev=$(cd "$(dirname "$0")" && pwd)
deadline=${DEADLINE:-420}
. "$dev/gpu-env.sh" && gpu_measuring
out=$gpu_out anchors=$gpu_anchors
[ -n "$anchors" ] && { head -21 "$anchors/scan_anchor.py" > /tmp/build_anchor.py; (cd "$anchors" && python3 /tmp/build_anchor.py > "$out/anchor-build.log" 2>&1) & }
vars=$(cd "$dev" && ls -d var-* 2>/dev/null)
for v in $vars; do
  d="$dev/$v"; xz -dc "$d/Mamba4.dll.xz" > "$d/Mamba4.dll"
  for f in "$dev"/Mamba4.Bench/Mamba4.Bench.*; do cp -L "$f" "$d/"; done
  for f in "$dev"/Mamba4.Bench/*; do [ -e "$d/$(basename "$f")" ] || ln -s "../Mamba4.Bench/$(basename "$f")" "$d/"; done
  (MAMBA4_DEVICE=cuda MAMBA4_CUDA_BENCH=scan timeout 250 dotnet "$d/Mamba4.Bench.dll" cuda > "$out/warm-$v.log" 2>&1; echo "[$SECONDS s] $v compiled: rc=$?") &
done
T="$dev/Mamba4.Tests/Mamba4.Tests"
for c in CudaSelectiveScanTests CudaMixedPrecisionTests; do
  s=$SECONDS; timeout 200 "$T" -trait "Category=Cuda" -class "Mamba4.Tests.$c" -parallel none > "$out/t-$c.log" 2>&1
  echo "$c rc=$? $((SECONDS - s)) s: $(grep -E 'Total:' "$out/t-$c.log" | sed 's/\x1b\[[0-9;]*m//g')"; gpu_failures "$out/t-$c.log" 30
done
wait
if [ -n "$anchors" ]; then
  echo "[$SECONDS s] mamba_ssm built: $(tail -1 "$out/anchor-build.log")"
  timeout 120 python3 "$anchors/scan_anchor.py" > "$out/scan-anchor.jsonl" 2> "$out/scan-anchor.err" || echo "scan_anchor.py: $(tail -2 "$out/scan-anchor.err")"
  export MAMBA4_SCAN_ANCHOR="$out/scan-anchor.jsonl"
fi
bench() { echo "-- $1 (run $2) [$SECONDS s]"; MAMBA4_DEVICE=cuda MAMBA4_CUDA_BENCH=scan timeout 80 dotnet "$3/Mamba4.Bench.dll" cuda 2>&1 | tee "$out/bench-$2-$1.log" | grep -E "^\| [0-9]" | head -7; }
order="var-0-main stack stack var-0-main"
for v in $vars; do [ $v != var-0-main ] && order="$order $v $v"; done
n=0
for v in $order; do
  n=$((n + 1)); [ $SECONDS -gt $((deadline - 40)) ] && break
  dir="$dev/$v"; [ $v = stack ] && dir="$dev/Mamba4.Bench"; bench $v $n "$dir"
done
if [ $SECONDS -lt $((deadline - 60)) ]; then
  s=$SECONDS; timeout $((deadline - SECONDS)) "$T" -trait "Category=Cuda" -class Mamba4.Tests.CudaModelTests -parallel none > "$out/t-model.log" 2>&1
  echo "CudaModelTests rc=$? $((SECONDS - s)) s: $(grep -E 'Total:' "$out/t-model.log" | sed 's/\x1b\[[0-9;]*m//g')"; gpu_failures "$out/t-model.log" 30
fi
(cd "$out" && tar czf tests.tgz t-*.log && rm -f t-*.log) 2>/dev/null
echo "done [$SECONDS s]"
