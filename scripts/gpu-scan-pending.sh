#!/usr/bin/env bash
# Runs ON the GPU machine (packed by scripts/scan-pending-pack.sh; carry [".device", ".anchors"]): a pending scan change
# tested and timed against main in one call.
#   1. In the background: mamba_ssm's scan extension builds (scan_anchor.py's first 21 lines, detached: 4-8 minutes), and
#      every build (var-* and the stack) compiles all its kernels into the cubin cache, NVRTC compiles in parallel
#      (MAMBA4_CUDA_BENCH=compile), so that neither the tests nor a timed run compile.
#   2. The GPU tests of the scan run on the full stack (CudaSelectiveScanTests, CudaMixedPrecisionTests; TESTS=all: every one).
#   3. mamba_ssm's fused scan is timed alone (scan_anchor.py), then the scan table of main and the stack (main, stack);
#      the two CudaModelTests that check the compile groups on the card (unless TESTS=all ran them), a profile (4.
#      below), the table again (stack, main) and the intermediate builds' tables (5.), while the deadline allows.
#   OUT=... [DEADLINE=540] [VARS=var-0-main] [TESTS=all|none] [PROFILE=var-0-main] [FIRST=stack] [SECOND="stack var-0-main"]
#     bash .device/gpu-scan-pending.sh   (device tool timeout_s 600; PROFILE: the build ncu profiles, the stack by default;
#     FIRST: the build timed after main before the profile, SECOND: the builds timed after it; "" for none)
set -uo pipefail
dev=$(cd "$(dirname "$0")" && pwd)
deadline=${DEADLINE:-540}
. "$dev/gpu-env.sh" && gpu_measuring
out=$gpu_out anchors=$gpu_anchors
# mamba_ssm's build, detached (gpu-env.sh: a cut call leaves it running for the next call on the warm machine)
[ -n "$anchors" ] && gpu_anchor_build_start "$anchors"
vars=${VARS-$(cd "$dev" && ls -d var-* 2>/dev/null)}   # VARS=var-0-main: main alone beside the stack (a short call); VARS= none
# every build's kernels compiled into the cubin cache first, several NVRTC compiles at a time (MAMBA4_CUDA_BENCH=compile;
# one by one, as the tests would, the scan's groups alone took minutes with NVRTC 13): the stack first, then the other
# builds together (the files they share with it are cached by then). Logs: $OUT holds at most 8 files that come back, so
# the compiles share compile.log and the timed runs bench.log.
compile() { local s=$SECONDS; MAMBA4_DEVICE=cuda MAMBA4_CUDA_BENCH=compile timeout 240 dotnet "$2/Mamba4.Bench.dll" cuda > "/tmp/compile-$1.log" 2>&1; echo "[$SECONDS s] $1 compiled: rc=$? $((SECONDS - s)) s: $(tail -1 "/tmp/compile-$1.log")"; }
compile stack "$dev/Mamba4.Bench"
for v in $vars; do d="$dev/$v"; gpu_base_build "$d"; compile $v "$d" & done
wait
for f in /tmp/compile-*.log; do echo "== $f"; cat "$f"; done > "$out/compile.log" 2> /dev/null; rm -f /tmp/compile-*.log
T="$dev/Mamba4.Tests/Mamba4.Tests"
# TESTS=all: every GPU test (trait Category=Cuda, the compile groups' checks among them) instead of the two scan classes
if [ "${TESTS:-}" = none ]; then
  echo "GPU tests: not run (TESTS=none)"
elif [ "${TESTS:-}" = all ]; then
  s=$SECONDS; timeout 330 "$T" -trait "Category=Cuda" -parallel none > "$out/t-all.log" 2>&1
  echo "all GPU tests rc=$? $((SECONDS - s)) s: $(grep -E 'Total:' "$out/t-all.log" | sed 's/\x1b\[[0-9;]*m//g')"; gpu_failures "$out/t-all.log" 40
else
  for c in CudaSelectiveScanTests CudaMixedPrecisionTests; do
    s=$SECONDS; timeout 200 "$T" -trait "Category=Cuda" -class "Mamba4.Tests.$c" -parallel none > "$out/t-$c.log" 2>&1
    echo "$c rc=$? $((SECONDS - s)) s: $(grep -E 'Total:' "$out/t-$c.log" | sed 's/\x1b\[[0-9;]*m//g')"; gpu_failures "$out/t-$c.log" 30
  done
fi
if [ -n "$anchors" ] && gpu_anchor_build_wait $((deadline - 150)) "$out/anchor-build.log"; then
  limit=$((deadline - SECONDS - 120 > 120 ? 120 : deadline - SECONDS - 120))
  if [ $limit -ge 30 ]; then
    timeout $limit python3 "$anchors/scan_anchor.py" > "$out/scan-anchor.jsonl" 2> /tmp/scan-anchor.err || echo "scan_anchor.py: $(tail -2 /tmp/scan-anchor.err)"
    { echo "== scan_anchor.py's stderr"; cat /tmp/scan-anchor.err; } >> "$out/anchor-build.log"
    export MAMBA4_SCAN_ANCHOR="$out/scan-anchor.jsonl"
  else echo "scan_anchor.py skipped (deadline)"; fi
fi
bench() { echo "-- $1 (run $2) [$SECONDS s]"; { echo "== $1 (run $2)"; MAMBA4_DEVICE=cuda MAMBA4_CUDA_BENCH=scan timeout 120 dotnet "$3/Mamba4.Bench.dll" cuda 2>&1; } | tee -a "$out/bench.log" | grep -E "^\| [0-9]" | head -7; }
timed() { for v in $1; do
  n=$((n + 1)); [ $SECONDS -gt $((deadline - 40)) ] && break
  dir="$dev/$v"; [ $v = stack ] && dir="$dev/Mamba4.Bench"; [ -f "$dir/Mamba4.Bench.dll" ] || continue   # (PATCHES=none: no var-0-main)
  bench $v $n "$dir"
done; }
n=0; timed "var-0-main ${FIRST-stack}"
if [ "${TESTS:-}" = "" ] && [ $SECONDS -lt $((deadline - 60)) ]; then
  s=$SECONDS; timeout 150 "$T" -trait "Category=Cuda" -method "*EveryKernelFileCompiles*" -method "*EachCompileGroupDefines*" -parallel none > "$out/t-model.log" 2>&1
  echo "compile groups (CudaModelTests) rc=$? $((SECONDS - s)) s: $(grep -E 'Total:' "$out/t-model.log" | sed 's/\x1b\[[0-9;]*m//g')"; gpu_failures "$out/t-model.log" 30
fi
# 4. As the deadline allows: Nsight Compute (--set full, per-instruction samples) of the stack's forward and main backward,
#    row 1, F32 and BF16 (gpu-env.sh's gpu_scan_profile: scan-profile.tgz)
if [ $SECONDS -lt $((deadline - 90)) ]; then
  s=$SECONDS; prof=${PROFILE:-stack}; [ "$prof" = stack ] && prof=Mamba4.Bench
  [ -f "$dev/$prof/Mamba4.Bench.dll" ] || gpu_base_build "$dev/$prof"
  gpu_scan_profile "$dev/$prof/Mamba4.Bench.dll" $((deadline - SECONDS - 20)) "$out/scan-profile"; echo "profile: $((SECONDS - s)) s"
fi
timed "${SECOND-stack var-0-main}"
# 5. What each step of the stack buys, twice each, as the deadline allows
inter=""; for v in $vars; do [ $v != var-0-main ] && inter="$inter $v $v"; done
timed "$inter"
ls "$out"/t-*.log > /dev/null 2>&1 && (cd "$out" && tar czf tests.tgz t-*.log && rm -f t-*.log)
echo "done [$SECONDS s]"
