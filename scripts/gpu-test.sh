#!/usr/bin/env bash
# Runs ON the GPU machine, from the root of a tree that holds .device/ (made by scripts/gpu-pack.sh):
# unpacks .NET, runs the GPU tests (trait Category=Cuda) and then the CUDA benchmark. Logs go to $OUT when set.
#   bash .device/gpu-test.sh [tests|bench|all|profile] [BENCH...]   or   bash .device/gpu-test.sh cli ARGS... (the mamba4 CLI, e.g. generate --device cuda ...)   (default: all, benchmarks "cuda"; profile = ncu over the scan kernels)
#   e.g. bash .device/gpu-test.sh all cuda-model. Before `cuda` / `cuda-model`, mamba_ssm's scan / model is built and timed
#   from ../shared/anchors (when present) in the same call, and the benchmark prints the ratios against it.  MAMBA4_CUDA_BENCH=scan limits `cuda` to the selective scan (CudaBench.cs).
#   MAMBA4_SASS=REGEX: at the end, the SASS of the cached kernels whose names match (cuobjdump) into $OUT/sass.txt, with
#   their registers and spills, and the cached cubins into $OUT/cubins.tar.xz.
set -uo pipefail
what=${1:-all}
shift || true
benches=("${@:-cuda}")
dev=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/mamba4-gpu}
mkdir -p "$out"
. "$dev/gpu-env.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
rc=0
if [ "$what" = cli ]; then
  dotnet "$dev/Mamba4.Tests/Mamba4.Cli.dll" "$@"
  exit $?
fi
if [ "$what" = all ] || [ "$what" = tests ]; then
  # MAMBA4_TEST_CLASS=Mamba4.Tests.SomeClass runs one class only
  "$dev/Mamba4.Tests/Mamba4.Tests" -trait "Category=Cuda" ${MAMBA4_TEST_CLASS:+-class "$MAMBA4_TEST_CLASS"} -parallel none 2>&1 | tee "$out/gpu-tests.log" | grep -vE '^\s*$' | grep -E 'FAIL|Error|error|Assert|expected|GPU|CPU|Total:|scan|registers|^\s+at Mamba4' | head -150
  rc=${PIPESTATUS[0]}
fi
if [ "$what" = all ] || [ "$what" = bench ]; then
  # The reference implementation, timed in the same call on the same card (../shared/anchors travels with the tree):
  # its JSON lines go to the benchmark, which prints our time, its time and the ratio; none where it is not there.
  # (../shared/anchors beside the checkout, or a copy carried into the checkout as .anchors/: the device tool sends only the checkout)
  anchors=""
  for a in "$dev/../../shared/anchors" "$dev/../.anchors"; do [ -z "$anchors" ] && [ -f "$a/scan_anchor.py" ] && anchors=$(cd "$a" && pwd); done
  for b in "${benches[@]}"; do
    if [ -n "$anchors" ] && [ "$b" = cuda ] && [ "${MAMBA4_CUDA_BENCH:-}" != profile ]; then
      python3 "$anchors/scan_anchor.py" > "$out/scan-anchor.jsonl" 2> "$out/scan-anchor.err" && export MAMBA4_SCAN_ANCHOR="$out/scan-anchor.jsonl" \
        || echo "mamba_ssm scan anchor failed (see scan-anchor.err): no same-run ratios"
    fi
    if [ -n "$anchors" ] && [ "$b" = cuda-ssd ]; then
      python3 "$dev/ssd_anchor.py" "$anchors" > "$out/ssd-anchor.jsonl" 2> "$out/ssd-anchor.err" && export MAMBA4_SSD_ANCHOR="$out/ssd-anchor.jsonl" \
        || echo "mamba_ssm SSD anchor failed (see ssd-anchor.err): no same-run ratios"
    fi
    if [ -n "$anchors" ] && [ "$b" = cuda-model ]; then
      python3 "$anchors/model_anchor.py" > "$out/model-anchor.jsonl" 2> "$out/model-anchor.err" && export MAMBA4_MODEL_ANCHOR="$out/model-anchor.jsonl" \
        || echo "mamba_ssm model anchor failed (see model-anchor.err): no same-run ratios"
      # prefill and 8 × 2048 training, which model_anchor.py does not time (its extensions, already built, are reused)
      [ "${MAMBA4_CUDA_BENCH:-}" = generation ] || python3 "$dev/model_anchor_more.py" "$anchors" >> "$out/model-anchor.jsonl" 2> "$out/model-anchor-more.err" \
        || echo "mamba_ssm prefill/8x2048 anchor failed (see model-anchor-more.err): no same-run ratios for those rows"
    fi
    OUT="$out" MAMBA4_DEVICE=cuda dotnet "$dev/Mamba4.Bench/Mamba4.Bench.dll" "$b" 2>&1 | tee "$out/gpu-bench-$b.log"
    [ "${PIPESTATUS[0]}" = 0 ] || rc=1
  done
fi
if [ "$what" = profile ]; then
  # Nsight Compute over a few scan calls (CudaBench's profile mode): full report in $out/ncu.txt, the key lines here
  ncu=/usr/local/cuda/bin/ncu; [ -x "$ncu" ] || ncu=$(command -v ncu)
  MAMBA4_CUDA_BENCH=profile timeout 300 "$ncu" --target-processes all -k regex:scan_ --launch-count 16 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section SchedulerStats --section WarpStateStats \
    --section InstructionStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    dotnet "$dev/Mamba4.Bench/Mamba4.Bench.dll" cuda > "$out/ncu.txt" 2>&1 || rc=1
  grep -E '^  scan_|profiled|failed|Duration|Registers Per|Achieved Occupancy|Theoretical Occupancy|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|Compute \(SM\) Throughput|Memory Throughput|Executed Ipc A|Block Limit (Reg|Shared)|Dynamic Shared' "$out/ncu.txt" | head -200
fi
if [ -n "${MAMBA4_SASS:-}" ]; then
  dump=/usr/local/cuda/bin/cuobjdump; [ -x "$dump" ] || dump=$(command -v cuobjdump)
  for c in "$MAMBA4_CUDA_CACHE"/*.cubin; do
    for fn in $("$dump" -elf "$c" 2>/dev/null | grep -oE '\.text\.[A-Za-z0-9_]+' | sed 's/^\.text\.//' | sort -u | grep -E "$MAMBA4_SASS"); do
      echo "== $fn ($(basename "$c"))"; "$dump" -res-usage -fun "$fn" "$c" | grep -E 'REG|STACK'; "$dump" -sass -fun "$fn" "$c" | grep -E '^\s+/\*[0-9a-f]+\*/'
    done
  done > "$out/sass.txt" 2>&1
  grep -E '^== |REG:' "$out/sass.txt" | paste - - | awk '{print $2, $4, $5}' | head -40
  tar cJf "$out/cubins.tar.xz" -C "$MAMBA4_CUDA_CACHE" . 2>/dev/null || true
fi
exit $rc
