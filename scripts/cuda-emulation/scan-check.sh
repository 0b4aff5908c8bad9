#!/usr/bin/env bash
# Runs the selective scan's main backward kernel (Kernels/selective_scan.cu, float) on the CPU, without a GPU, for a kernel
# change: main's kernel file against another (OTHER, e.g. the version before the change, `git show HEAD~1:…`), both from
# the same random inputs and chunk carries, over shapes that cover every states-per-thread split (N 1 … 128), partial
# sub-blocks and chunks, flush groups of 1, 2 and 4 sub-blocks, channels that overhang the last block, and the time-invariant form. Every output must agree to
# 1e-5 of its largest value (atomic sums differ in order) with no NaN. Then main's _gbf16 kernel (dΔ, dz written in BF16)
# against its float one: du the same bits, dΔ and dz the rounded F32 ones (the GPU test NarrowGradientsAreTheRoundedF32Ones).
# It checks logic and index math, not timing.
#   bash scripts/cuda-emulation/scan-check.sh OTHER_selective_scan.cu
# Needs g++ (C++20) and python3 with numpy; ~1 minute on two cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/scripts/cuda-emulation"
kernels="$root/src/Mamba4/Backends/Cuda/Kernels"
other=${1:?usage: scan-check.sh OTHER_selective_scan.cu}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py=python3; $py -c "import numpy" 2>/dev/null || py=/usr/bin/python3
for v in main other; do
  src="$kernels/selective_scan.cu"; [ $v = other ] && src="$other"
  $py "$here/scan_prep.py" "$kernels/common.cuh" "$src" "$work/$v.inc"
  g++ -std=c++20 -O2 -pthread -I"$here" -DKERNELS="\"$work/$v.inc\"" "$here/scan_run.cpp" -o "$work/run_$v"
done
failed=0
# [FLUSH_SUBS=k] B L D N CHUNK [lti]   (sub-blocks between the sums of the warps' dB, dC rows: a quarter chunk unless set)
while read -r shape; do
  [ -z "$shape" ] && continue
  set -- $shape
  fs=""; case $1 in FLUSH_SUBS=*) fs=$1; shift ;; esac
  env $fs "$work/run_main" $1 $2 $3 $4 $5 "$work/a.bin" ${6:-} > /dev/null
  env $fs "$work/run_other" $1 $2 $3 $4 $5 "$work/b.bin" ${6:-} > /dev/null
  printf '%-36s ' "$shape"; $py "$here/scan_compare.py" "$work/a.bin" "$work/b.bin" $1 $2 $3 $4 ${6:-} || failed=1
  env $fs GRAD=bf16 "$work/run_main" $1 $2 $3 $4 $5 "$work/c.bin" ${6:-} > /dev/null
  printf '%-36s ' "  main's _gbf16 kernel"; $py "$here/scan_narrow.py" "$work/a.bin" "$work/c.bin" $1 $2 $3 || failed=1
done <<'SHAPES'
2 100 70 16 32
1 200 64 16 64
2 77 40 16 40
1 50 100 16 24
1 90 40 32 32
1 70 70 4 32
1 70 70 8 32
1 45 33 2 16
1 45 33 1 16
1 40 20 64 16
1 36 12 128 8
1 60 50 16 32 lti
FLUSH_SUBS=1 1 200 64 16 64
FLUSH_SUBS=2 1 150 40 32 64
SHAPES
exit $failed
