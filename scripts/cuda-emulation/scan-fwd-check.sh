#!/usr/bin/env bash
# Runs the selective scan's time-parallel forward kernels (scan_forward_lanes, _bf16, _obf16 of Kernels/selective_scan.cu)
# on the CPU, without a GPU, against the recurrence in double: shapes with partial tiles (L not a multiple of 64), blocks
# that overhang D, one and several batch rows, with and without z, Δ-bias, h0, D, softplus, the last state, and
# misaligned tensors (the plain-load paths). Checks logic and index math, not timing.
#   bash scripts/cuda-emulation/scan-fwd-check.sh      (needs g++ (C++20) and python3; ~1 minute on two cores)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/scripts/cuda-emulation"
kernels="$root/src/Mamba4/Backends/Cuda/Kernels"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/scan_fwd_prep.py" "$kernels/common.cuh" "$kernels/selective_scan.cu" "$work/k.inc"
g++ -std=c++20 -O2 -pthread -I"$here" -DKERNELS="\"$work/k.inc\"" "$here/scan_fwd_run.cpp" -o "$work/run"
failed=0
while read -r shape; do
  [ -z "$shape" ] && continue
  printf '%-40s ' "$shape"; "$work/run" $shape || failed=1
done <<'SHAPES'
1 64 32 f32
2 200 64 f32
1 130 40 f32
1 77 36 f32 noz nobias
2 65 32 f32 noh0 nod nosoftplus nolast
1 90 44 f32 odd
2 150 64 bf16
1 70 40 bf16 noz
1 100 34 bf16 odd
2 120 64 obf16
1 70 36 obf16 odd
SHAPES
exit $failed
