#!/usr/bin/env bash
# Runs ON the GPU machine from the checkout root (scripts/gpu-pack.sh .device; carry [".device", ".anchors"]): the SSD scan
# (issue 19 target 5) in one call — its GPU tests (CudaSsdScanTests, or the classes in CLASSES), mamba_ssm's Triton SSD timed (scripts/ssd_anchor.py)
# then ours (bench cuda-ssd, with the ratios; BASE_TESTS=1 runs the test classes on each carried base build too), our kernels' times under Nsight Compute (one forward, one backward) and
# mamba_ssm's by torch.profiler (scripts/ssd_anchor_profile.py; PROFILE=0 leaves it out), all on the same card. SECTIONS=1 adds ncu's main sections
# of each of our kernels (occupancy, throughput, stalls) to $OUT/ncu-ssd-sections.txt (SECTIONS_SKIP=547: the TF32 kernels').
. "$(dirname "$0")/gpu-env.sh" && gpu_measuring
ncu=/usr/local/cuda/bin/ncu; [ -x "$ncu" ] || ncu=$(command -v ncu)
# run_tests TESTS_DIR LABEL: the GPU test classes (CLASSES, e.g. "CudaSsdScanTests CudaModelTests": the Mamba-2 model against
# transformers) of one build, each class's totals and failures printed, its log added to tests.log
run_tests() {
  for c in ${CLASSES:-CudaSsdScanTests}; do
    timeout 200 "$1/Mamba4.Tests" -trait "Category=Cuda" -class "Mamba4.Tests.$c" -parallel none > "$gpu_out/t.log" 2>&1
    local rc=$?
    echo "$2$c rc=$rc: $(grep -E 'Total:' "$gpu_out/t.log")"; gpu_failures "$gpu_out/t.log"
    cat "$gpu_out/t.log" >> "$gpu_out/tests.log"
  done
}
echo "[$SECONDS s] tests"
run_tests "$gpu_pack/Mamba4.Tests" ""
echo "[$SECONDS s] mamba_ssm SSD (Triton), then ours"
if [ -n "$gpu_anchors" ]; then
  timeout 240 python3 "$gpu_pack/ssd_anchor.py" "$gpu_anchors" > "$gpu_out/ssd-anchor.jsonl" 2> "$gpu_out/ssd-anchor.err" || tail -2 "$gpu_out/ssd-anchor.err"
  cat "$gpu_out/ssd-anchor.jsonl"
  export MAMBA4_SSD_ANCHOR="$gpu_out/ssd-anchor.jsonl"
fi
# with base builds carried as .device/base*/Mamba4.dll(.xz) (Mamba4.dll of other commits, xz'd to fit the 64 MiB the tool
# carries), each base and this build alternate twice: before and after on the same card in one call (gpu_base_build).
bases=()
for d in "$gpu_pack"/base*/; do gpu_base_build "$d" && bases+=("$d"); done
if [ "${BASE_TESTS:-0}" = 1 ]; then   # the same test classes on each base build: a copy of the tests with its Mamba4.dll
  for d in "${bases[@]}"; do
    rm -rf "$d/tests" && cp -r "$gpu_pack/Mamba4.Tests" "$d/tests" && cp "$d/Mamba4.dll" "$d/tests/Mamba4.dll"
    run_tests "$d/tests" "$(basename "$d") "
  done
fi
for run in $(seq "${ROUNDS:-2}"); do   # ROUNDS=1: one of each
  for d in "${bases[@]}"; do
    echo "-- base build $(basename "$d") (run $run)"; MAMBA4_DEVICE=cuda timeout 120 dotnet "$d/Mamba4.Bench.dll" cuda-ssd 2>&1 | grep -E "^\| [0-9]|registers"
  done
  echo "-- this build (run $run)"; MAMBA4_DEVICE=cuda timeout 120 dotnet "$gpu_bench" cuda-ssd 2>&1 | grep -vE "^\s*$" | tee -a "$gpu_out/bench-cuda-ssd.log"
  [ ${#bases[@]} -gt 0 ] || break
done
echo "[$SECONDS s] ours under ncu"
# cuda-ssd runs 23 forwards (5 kernels each), 23 backwards (13) and 23 steps with F32-accurate products, then the same with
# TF32 products (437 launches later): skip to the last forward and the first backward (less ssd_reduce) of each
# NCU_BASES=1: each carried base build's kernels too
# kernel_times BENCH NAME SKIP: the 17 ssd_ kernels from launch SKIP of one benchmark run, times summed by name
kernel_times() {
  timeout 200 "$ncu" -k regex:ssd_ --launch-skip "$3" --launch-count 17 --metrics gpu__time_duration.sum --cache-control all \
    --clock-control none --csv --print-units base --print-kernel-base function dotnet "$1" cuda-ssd > "$gpu_out/ncu-$2.csv" 2> "$gpu_out/ncu-$2.err"
  python3 "$gpu_pack/ncu_kernel_times.py" "$gpu_out/ncu-$2.csv" 30 || tail -5 "$gpu_out/ncu-$2.err"
}
targets=("$gpu_bench"); [ "${NCU_BASES:-0}" = 1 ] && for d in "${bases[@]}"; do targets+=("$d/Mamba4.Bench.dll"); done
for bench in "${targets[@]}"; do
  name=$(basename "$(dirname "$bench")"); [ "$bench" = "$gpu_bench" ] && name=ssd || echo "-- base build $name"
  kernel_times "$bench" "$name" 110
  [ "$bench" = "$gpu_bench" ] && kernel_times "$bench" "$name-tf32" 547   # TF32 products: this build's
done
if [ "${SECTIONS:-0}" = 1 ]; then
  timeout 240 "$ncu" -k regex:ssd_ --launch-skip "${SECTIONS_SKIP:-110}" --launch-count 17 --section SpeedOfLight --section Occupancy \
    --section LaunchStats --section WarpStateStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    dotnet "$gpu_bench" cuda-ssd > "$gpu_out/ncu-ssd-sections.txt" 2>&1
  grep -E "^  ssd_|Duration|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Mem Busy" "$gpu_out/ncu-ssd-sections.txt" | head -120
fi
echo "[$SECONDS s] mamba_ssm under torch.profiler"
[ -n "$gpu_anchors" ] && [ "${PROFILE:-1}" = 1 ] && timeout 200 python3 "$gpu_pack/ssd_anchor_profile.py" "$gpu_anchors" 2>&1 | grep -v Warn | tail -25
echo "[$SECONDS s] done"
