#!/usr/bin/env bash
# Packs a scan-kernel change that waits for a GPU (docs/pending/scan-*.patch, applied in name order) for one device call:
#   .device/var-0-main/      main's Mamba4.dll and Mamba4.Bench.dll (xz), the baseline timed in the same call
#   .device/var-K-NAME/      main + patches 1..K (xz), for every K but the last: what each step of the stack buys
#   .device/Mamba4.Tests|Bench  main + every patch (scripts/gpu-pack.sh): the build the GPU tests run on
#   .anchors/                mamba_ssm's scan_anchor.py and its selective_scan sources (from ../shared/anchors)
# The working tree must be clean; it is restored (and main rebuilt) at the end. Then, with the device tool:
#   carry [".device", ".anchors"], command: bash .device/gpu-scan-pending.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -z "$(git status --porcelain --untracked-files=no)" ] || { echo "scan-pending-pack.sh: the working tree has changes; commit or stash them first"; exit 1; }
# PATCHES=none: main alone (the packed build is main's: its GPU tests, mamba_ssm beside it; then VARS= on the device)
patches=()
if [ "${PATCHES:-}" != none ]; then
  patches=(docs/pending/scan-*.patch)
  [ -e "${patches[0]}" ] || { echo "scan-pending-pack.sh: no docs/pending/scan-*.patch (PATCHES=none packs main alone)"; exit 1; }
fi
shared=${MAMBA4_SHARED:-../shared}
[ -f "$shared/anchors/scan_anchor.py" ] || { echo "scan-pending-pack.sh: $shared/anchors/scan_anchor.py not found (set MAMBA4_SHARED)"; exit 1; }
# each build keeps its own benchmark too: a patch may change the benchmark with the library (a new setting it times)
out=bench/Mamba4.Bench/bin/Release/net10.0
build() { if dotnet build bench/Mamba4.Bench/Mamba4.Bench.csproj -c Release -v q -nologo | grep -E " error"; then exit 1; fi; }
keep() { mkdir -p ".device/$1" && for f in Mamba4 Mamba4.Bench; do xz -9 -c $out/$f.dll > ".device/$1/$f.dll.xz"; done; echo "packed .device/$1"; }
# the patches may add files (under scripts/): what `git apply` created is removed again
restore() { git checkout -q -- src tests bench scripts; for f in $(cat .device/.created 2>/dev/null); do rm -f "$f"; done; dotnet build Mamba4.slnx -c Release -v q -nologo > /dev/null || true; }
trap restore EXIT
mkdir -p .device && rm -rf .device/var-* .device/.created
[ ${#patches[@]} -gt 0 ] && build && keep var-0-main
k=0
for p in "${patches[@]}"; do
  k=$((k + 1)); git apply "$p"; git apply --numstat --summary "$p" | sed -n 's/^ create mode [0-9]* //p' >> .device/.created
  [ $k -lt ${#patches[@]} ] && build && keep "var-$k-$(basename "$p" .patch)"
done
if dotnet build Mamba4.slnx -c Release -v q -nologo | grep -E " error"; then exit 1; fi
bash scripts/gpu-pack.sh .device
find .device -name "*.pdb" -delete && rm -rf .device/data
rm -rf .anchors && mkdir -p .anchors/src/csrc && cp "$shared/anchors/scan_anchor.py" .anchors/ && cp -r "$shared/anchors/src/csrc/selective_scan" .anchors/src/csrc/
du -sh .device .anchors
