#!/usr/bin/env bash
# Prepares the one device call that measures and verifies the pending SSD patches (docs/cuda-kernel-notes.md, "Session 15"):
#   .device/            main + both patches (GPU tests and benchmark; scripts/gpu-pack.sh)
#   .device/base1-fma/  main's Mamba4.dll (xz), .device/base2-mma/  main + patch 1's — gpu-ssd.sh times each beside .device
#   .anchors/           mamba_ssm's Python sources for its Triton SSD (the anchors less the CUDA sources: under 64 MiB in all)
# then, with the device tool:  carry [".device", ".anchors"],  command  ROUNDS=1 PROFILE=0 OUT=$OUT bash .device/gpu-ssd.sh
# The working tree's ssd_scan.cu is left as main has it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cu=src/Mamba4/Backends/Cuda/Kernels/ssd_scan.cu
git diff --quiet -- "$cu" || { echo "prepare-gpu-call: $cu has local changes; commit or stash them first"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"; git checkout -q -- "$cu"' EXIT
publish() {
  dotnet publish src/Mamba4/Mamba4.csproj -c Release -r linux-x64 --no-self-contained -o "$work/$1" -v q -nologo > "$work/$1.log" 2>&1 \
    || { grep -E " error" "$work/$1.log" | head; echo "prepare-gpu-call: dotnet publish failed ($1)"; exit 1; }
}
echo "main's Mamba4.dll"; publish fma
git apply docs/pending/ssd-tensor-cores-1-mma.patch
echo "main + patch 1"; publish mma
git apply docs/pending/ssd-tensor-cores-2-prefetch.patch
echo "main + both patches: the pack"
rm -rf .device && bash scripts/gpu-pack.sh .device | tail -1
find .device -name "*.pdb" -delete && rm -rf .device/data
mkdir -p .device/base1-fma .device/base2-mma
xz -9c "$work/fma/Mamba4.dll" > .device/base1-fma/Mamba4.dll.xz
xz -9c "$work/mma/Mamba4.dll" > .device/base2-mma/Mamba4.dll.xz
shared=${MAMBA4_SHARED:-../shared}
rm -rf .anchors && cp -r "$shared/anchors" .anchors && rm -rf .anchors/src/csrc .anchors/src/cc1d .anchors/src/einops/tests
grep -qx "/.anchors/" .git/info/exclude 2>/dev/null || echo "/.anchors/" >> .git/info/exclude
kb=$(( $(du -sk .device | cut -f1) + $(du -sk .anchors | cut -f1) + $(git ls-files -z | xargs -0 cat | wc -c) / 1024 ))
echo "carry + tree: $((kb / 1024)) MiB (the device tool takes at most 64)"
