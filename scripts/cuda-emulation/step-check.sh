#!/usr/bin/env bash
# Runs the fused decoding step (Kernels/mamba_step.cu: in_proj, x_proj, scan, out_proj, the head and its arg-max) on the
# CPU, without a GPU: three steps of one layer from seeded weights and states, F32 and BF16 weights, 1, 2, 3 and 8 streams,
# rows read 16 bytes at a time or one by one, grids of a warp a row or of 3 blocks (warps loop over rows), conv widths 3, 4
# and 5, r and n past 64, with and without biases. Each step's output, logits, ids and states must agree with the step
# computed in double (step_run.cpp; 1e-5 of the largest value); given OTHER (a changed file, or main's before a change:
# `git show HEAD~1:…`), every output of every step of main's file must also be bit-identical to OTHER's. It checks logic
# and index math, not timing, and not the persistent layer kernel (its grid barrier needs every block resident at once).
#   bash scripts/cuda-emulation/step-check.sh [OTHER_mamba_step.cu]   (needs g++ (C++20) and python3; ~15 s, ~1.5 min with OTHER)
#   SHAPES="1 4 8": those configurations only (line numbers of the list below; the tests run three)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/scripts/cuda-emulation"
kernels="$root/src/Mamba4/Backends/Cuda/Kernels"
other=${1:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for v in main ${other:+other}; do
  src="$kernels/mamba_step.cu"; [ $v = other ] && src="$other"
  python3 "$here/step_prep.py" "$kernels/common.cuh" "$src" "$work/$v.inc"
  g++ -std=c++20 -O2 -pthread -I"$here" -DKERNELS="\"$work/$v.inc\"" "$here/step_run.cpp" -o "$work/run_$v"
done
failed=0
# BATCH D E R N K KIND VEC SMALLGRID BIASES
shapes="1 64 128 8 16 4 0 1 0 1
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
"
while read -r shape; do
  [ -z "$shape" ] && continue
  a=$("$work/run_main" $shape "$work/a.bin") || failed=1
  r=""
  if [ -n "$other" ]; then
    "$work/run_other" $shape "$work/b.bin" > /dev/null || true
    if cmp -s "$work/a.bin" "$work/b.bin"; then r="identical"; else r="DIFFERENT"; failed=1; fi
  fi
  printf '%-28s %-10s %s\n' "$shape" "$r" "$a"
done <<< "$(echo "$shapes" | awk -v only="${SHAPES:-}" 'BEGIN { n = split(only, a, " "); for (i = 1; i <= n; i++) keep[a[i]] = 1 } NF && (n == 0 || NR in keep)')"
[ $failed = 0 ] && echo "every step as computed in double${other:+, and every output identical to OTHER}" || { echo "FAILED"; exit 1; }
