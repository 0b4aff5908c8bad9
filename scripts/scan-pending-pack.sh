#!/usr/bin/env bash
# Packs a scan-kernel change that waits for a GPU (docs/pending/scan-bwd-*.patch, applied in order) for one device call:
#   .device/var-0-main/      main's Mamba4.dll (xz), the baseline timed in the same call
#   .device/var-K-NAME/      main + patches 1..K (xz), for every K but the last: what each step of the stack buys
#   .device/Mamba4.Tests|Bench  main + every patch (scripts/gpu-pack.sh): the build the GPU tests run on
#   .anchors/                mamba_ssm's scan_anchor.py and its selective_scan sources (from ../shared/anchors)
# The working tree must be clean; it is restored (and main rebuilt) at the end. Then, with the device tool:
#   carry [".device", ".anchors"], command: bash .device/gpu-scan-pending.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -z "$(git status --porcelain --untracked-files=no)" ] || { echo "scan-pending-pack.sh: the working tree has changes; commit or stash them first"; exit 1; }
patches=(docs/pending/scan-bwd-*.patch)
[ -e "${patches[0]}" ] || { echo "scan-pending-pack.sh: no docs/pending/scan-bwd-*.patch"; exit 1; }
shared=${MAMBA4_SHARED:-../shared}
[ -f "$shared/anchors/scan_anchor.py" ] || { echo "scan-pending-pack.sh: $shared/anchors/scan_anchor.py not found (set MAMBA4_SHARED)"; exit 1; }
dll=src/Mamba4/bin/Release/net10.0/Mamba4.dll
build() { if dotnet build src/Mamba4/Mamba4.csproj -c Release -v q -nologo | grep -E " error"; then exit 1; fi; }
keep() { mkdir -p ".device/$1" && xz -9 -c $dll > ".device/$1/Mamba4.dll.xz"; echo "packed .device/$1"; }
restore() { git checkout -q -- src; dotnet build Mamba4.slnx -c Release -v q -nologo > /dev/null || true; }
trap restore EXIT
mkdir -p .device && rm -rf .device/var-*
build && keep var-0-main
k=0
for p in "${patches[@]}"; do
  k=$((k + 1)); git apply "$p"
  [ $k -lt ${#patches[@]} ] && build && keep "var-$k-$(basename "$p" .patch)"
done
if dotnet build Mamba4.slnx -c Release -v q -nologo | grep -E " error"; then exit 1; fi
bash scripts/gpu-pack.sh .device
find .device -name "*.pdb" -delete && rm -rf .device/data
rm -rf .anchors && mkdir -p .anchors/src/csrc && cp "$shared/anchors/scan_anchor.py" .anchors/ && cp -r "$shared/anchors/src/csrc/selective_scan" .anchors/src/csrc/
du -sh .device .anchors
