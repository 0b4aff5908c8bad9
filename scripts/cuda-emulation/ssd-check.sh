#!/usr/bin/env bash
# Runs Kernels/ssd_scan.cu on the CPU, without a GPU: every kernel of the SSD forward and backward, in the order and
# grids of CudaBackend.SsdScan.cs, with a CUDA block as 256 threads (shim.h: barriers, warp shuffles, mma.sync.m16n8k8
# tf32 by the PTX ISA's fragment layout, cvt.rna.tf32), scratch poisoned with NaN. For each shape it checks y and the
# last state against a float64 recurrence (1e-5 of max |ref|), and — given a second version of ssd_scan.cu — every output
# of that version against main's (1e-5 for y and the state, 1e-4 for the gradients; no NaN). It checks logic and index
# math; it is no substitute for the GPU tests (the card's own rounding, timings, resources).
#   bash scripts/cuda-emulation/ssd-check.sh                   main's y and last state against the float64 recurrence
#   bash scripts/cuda-emulation/ssd-check.sh OTHER_ssd_scan.cu that too, and every output of main, the gradients included,
#                                                              against that file (a kernel change: the backward has no
#                                                              float64 twin here, only the other version)
#   TF32=1 bash scripts/cuda-emulation/ssd-check.sh            main's TF32-product kernels (…_tf32) as the other version:
#                                                              against float64 and main's F32-accurate ones at TF32's
#                                                              tolerance (TOL, default 2e-3 for y and the state, 5e-3 for the gradients)
# Needs g++ (C++20) and python3 with numpy; ~1 minute on two cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/scripts/cuda-emulation"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kernels="$root/src/Mamba4/Backends/Cuda/Kernels"
py=python3; $py -c "import numpy" 2>/dev/null || py=/usr/bin/python3   # a python with numpy (Debian: python3-numpy)
other=${1:-}
$py "$here/prep.py" "$kernels/common.cuh" "$kernels/ssd_scan.cu" "$work/main.inc"
g++ -std=c++20 -O2 -pthread -I"$here" -DKERNELS="\"$work/main.inc\"" "$here/run.cpp" -o "$work/run_main"
if [ -n "$other" ]; then
  $py "$here/prep.py" "$kernels/common.cuh" "$other" "$work/other.inc"
  g++ -std=c++20 -O2 -pthread -I"$here" -DKERNELS="\"$work/other.inc\"" "$here/run.cpp" -o "$work/run_other"
fi
failed=0
# the shapes of CudaSsdScanTests.MatchesCpuReference (P, N up to 128 / 256, groups, short last chunks, chunk 256, a chunk no
# multiple of 32), one with the benchmark's P 64, N 128, chunk 256, and the tests' no-D/bias/softplus and clamped cases
for s in "2 37 4 2 8 16 8" "1 100 3 1 16 32 32" "1 70 2 2 64 64 64" "1 50 2 1 128 16 16" "1 40 2 2 32 256 16" \
         "2 300 2 1 24 48 256" "1 1 2 1 8 16 8" "1 90 2 1 40 24 100" "1 512 2 1 64 128 256" \
         "1 129 4 4 8 16 128 plain" "2 60 2 1 16 16 16 clamp"; do
  echo "shape b L H G P N chunk [mode] = $s"
  set -- $s
  SSD_TF32=0 "$work/run_main" "${@:1:7}" "$work/main.bin" ${8:-} || { failed=$((failed + 1)); continue; }
  otherBin="$work/main.bin"   # no second version: main against itself (the float64 check alone)
  if [ "${TF32:-0}" = 1 ]; then
    SSD_TF32=1 "$work/run_main" "${@:1:7}" "$work/other.bin" ${8:-} || { failed=$((failed + 1)); continue; }
    otherBin="$work/other.bin"
  elif [ -n "$other" ]; then
    "$work/run_other" "${@:1:7}" "$work/other.bin" ${8:-} || { failed=$((failed + 1)); continue; }
    otherBin="$work/other.bin"
  fi
  TOL=${TOL:-$([ "${TF32:-0}" = 1 ] && echo 2e-3,5e-3)} $py "$here/compare.py" "${@:1:7}" "$work/main.bin" "$otherBin" ${8:-} || failed=$((failed + 1))
done
if [ "${TF32:-0}" = 1 ]; then   # a NaN in x or C reaches the same outputs of y with TF32 products as with F32-accurate ones
  for input in x C; do
    for m in 0 1; do NAN_IN=$input NAN_AT=100 SSD_TF32=$m "$work/run_main" 1 70 2 1 16 32 32 "$work/nan$m.bin"; done
    $py -c "import numpy as np, sys; a, b = (np.isnan(np.fromfile(f, np.float32)[:70 * 2 * 16]) for f in sys.argv[1:]); ok = a.any() and (a == b).all(); print(f'NaN in $input: y NaNs F32-accurate {a.sum()}, TF32 {b.sum()}', 'OK' if ok else '<-- BAD'); sys.exit(0 if ok else 1)" "$work/nan0.bin" "$work/nan1.bin" || failed=$((failed + 1))
  done
fi
echo "$failed shape(s) failed"
[ "$failed" = 0 ]
