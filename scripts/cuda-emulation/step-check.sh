#!/usr/bin/env bash
# Runs the fused decoding step (Kernels/mamba_step.cu: in_proj, x_proj, scan, out_proj, the head and its arg-max) on the
# CPU, without a GPU, for a kernel change: main's file against another (OTHER, e.g. `git show HEAD~1:…`), from the same
# seeded weights and states, three steps of one layer, F32 and BF16 weights, 1, 3 and 8 streams, rows read 16 bytes at a
# time or one by one, grids of a warp a row or of 3 blocks (warps loop over rows), conv widths 3, 4 and 5, with and
# without biases. Every output of every step must be bit-identical. It checks logic and index math, not timing, and not
# the persistent layer kernel (its grid barrier needs every block resident at once).
#   bash scripts/cuda-emulation/step-check.sh OTHER_mamba_step.cu      (needs g++ (C++20) and python3; ~1 minute)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/scripts/cuda-emulation"
kernels="$root/src/Mamba4/Backends/Cuda/Kernels"
other=${1:?usage: step-check.sh OTHER_mamba_step.cu}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for v in main other; do
  src="$kernels/mamba_step.cu"; [ $v = other ] && src="$other"
  python3 "$here/step_prep.py" "$kernels/common.cuh" "$src" "$work/$v.inc"
  g++ -std=c++20 -O2 -pthread -I"$here" -DKERNELS="\"$work/$v.inc\"" "$here/step_run.cpp" -o "$work/run_$v"
done
failed=0
# BATCH D E R N K KIND VEC SMALLGRID BIASES
while read -r shape; do
  [ -z "$shape" ] && continue
  a=$("$work/run_main" $shape "$work/a.bin"); "$work/run_other" $shape "$work/b.bin" > /dev/null
  if cmp -s "$work/a.bin" "$work/b.bin"; then r="identical"; else r="DIFFERENT"; failed=1; fi
  printf '%-28s %-10s %s\n' "$shape" "$r" "$a"
done <<'SHAPES'
1 64 128 8 16 4 0 1 0 1
1 64 128 8 16 4 1 1 0 1
3 64 128 8 16 4 0 1 0 0
3 64 128 8 16 4 1 1 1 1
8 64 128 8 16 4 0 1 0 1
1 64 128 8 16 4 0 1 1 1
1 60 120 5 12 4 0 0 0 1
2 60 120 5 12 3 0 0 1 0
1 64 128 8 16 5 0 1 0 1
2 64 128 8 16 5 1 1 1 1
1 64 160 70 80 4 0 1 0 1
SHAPES
[ $failed = 0 ] && echo "every output identical" || { echo "outputs differ"; exit 1; }
