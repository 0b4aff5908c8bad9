#!/usr/bin/env bash
# Builds what the GPU machine needs (it has no .NET) into a folder, by default .device/ of this checkout:
#   dotnet.tar.xz (the local .NET runtime, made once), Mamba4.Tests/ and Mamba4.Bench/ (framework-dependent
#   Release builds), shared/fixtures (from ../shared or $MAMBA4_SHARED) and gpu-test.sh.
#
#   [MAMBA4_BASE=COMMIT] scripts/gpu-pack.sh [TARGET]        e.g.  scripts/gpu-pack.sh /work/main/.device
#
# Then, with the device tool: carry [".device"] and the command  bash .device/gpu-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-.device}
mkdir -p "$target"
target=$(cd "$target" && pwd)
root=$(dirname "$(readlink -f "$(command -v dotnet)")")
if [ ! -s "$target/dotnet.tar.xz" ]; then
  echo "packing the .NET runtime from $root ..."
  tar cf - -C "$root" dotnet host shared/Microsoft.NETCore.App shared/Microsoft.AspNetCore.App | xz -9e -T2 > "$target/dotnet.tar.xz"   # -9e: 1.5 MB under the default, room under the 64 MiB the tool carries
fi
# MAMBA4_PACK=tests leaves the benchmarks out (the device tool carries at most 64 MiB with the tree); MAMBA4_PACK=cli
# packs only the mamba4 command (Mamba4.Cli/, ~10 MB: room for data and run folders beside it, as rec-paper-gpu.sh uses).
projects="tests/Mamba4.Tests/Mamba4.Tests.csproj bench/Mamba4.Bench/Mamba4.Bench.csproj"
[ "${MAMBA4_PACK:-}" = tests ] && projects="tests/Mamba4.Tests/Mamba4.Tests.csproj" && rm -rf "$target/Mamba4.Bench"
[ "${MAMBA4_PACK:-}" = cli ] && projects="src/Mamba4.Cli/Mamba4.Cli.csproj" && rm -rf "$target/Mamba4.Bench" "$target/Mamba4.Tests"
for proj in $projects; do
  name=$(basename "$proj" .csproj)
  rm -rf "$target/$name"
  dotnet publish "$proj" -c Release -r linux-x64 --no-self-contained -o "$target/$name" -v q -nologo | grep -E "error|warn" || true
  (cd "$target/$name" && rm -rf CodeCoverage alpine ubuntu macos arm64 x86 InstrumentationEngine .playwright)   # .playwright: the browser test's driver (135 MB; no chromium there)
done
# The benchmarks share most of their files with the tests: link those (relative links travel with the device tool) and
# leave out the XML docs, so that both fit the 64 MiB the tool carries.
rm -f "$target"/Mamba4.*/*.xml
# The device runs only the Category=Cuda tests: the OpenAI SDK (5.4 MB, for the server's SDK tests), the test platform's
# translated messages and the symbol files stay here (checked: the Cuda tests are found and run without them).
rm -rf "$target"/Mamba4.*/OpenAI.dll "$target"/Mamba4.*/*.pdb "$target"/Mamba4.*/{cs,de,es,fr,it,ja,ko,pl,pt-BR,ru,tr,zh-Hans,zh-Hant}
if [ -d "$target/Mamba4.Bench" ] && [ -d "$target/Mamba4.Tests" ]; then
  for f in "$target"/Mamba4.Bench/*; do
    name=$(basename "$f")
    [ -f "$f" ] && [ ! -L "$f" ] && cmp -s "$f" "$target/Mamba4.Tests/$name" && ln -sf "../Mamba4.Tests/$name" "$f"
  done
fi
# MAMBA4_BASE=COMMIT: that commit's Mamba4.dll (xz) in TARGET/base/, built in a worktree of its own (this checkout is not
# touched), so that gpu-all.sh's decode part times the step kernels of both builds in turn in one call.
rm -rf "$target/base"
if [ -n "${MAMBA4_BASE:-}" ]; then
  wt=$(mktemp -d /tmp/mamba4-base.XXXXXX)
  trap 'git worktree remove --force "$wt" 2> /dev/null || true; rm -rf "$wt"; git worktree prune' EXIT   # also when a step fails (set -e) or ^C
  git worktree add -q --detach "$wt" "$MAMBA4_BASE"
  if ! dotnet build "$wt/src/Mamba4/Mamba4.csproj" -c Release -v q -nologo > "$wt/build.log" 2>&1; then tail -20 "$wt/build.log"; exit 1; fi
  mkdir -p "$target/base" && xz -9 -c "$wt/src/Mamba4/bin/Release/net10.0/Mamba4.dll" > "$target/base/Mamba4.dll.xz"
  git -C "$wt" log -1 --format="%h %s" > "$target/base/COMMIT"
  git worktree remove --force "$wt"
  echo "base: $(cat "$target/base/COMMIT")"
fi
shared=${MAMBA4_SHARED:-}
for c in ../shared ../../shared; do [ -z "$shared" ] && [ -d "$c/fixtures" ] && shared=$c; done
[ -n "$shared" ] || { echo "no shared/fixtures found (set MAMBA4_SHARED)"; exit 1; }
rm -rf "$target/shared" && mkdir -p "$target/shared" && cp -r "$shared/fixtures" "$target/shared/"
# Tiny Shakespeare (gzip, ~0.4 MB) for gpu-all.sh's F32-vs-BF16 training check
[ -f "$shared/data/text/tinyshakespeare.txt" ] && mkdir -p "$target/data" && gzip -9c "$shared/data/text/tinyshakespeare.txt" > "$target/data/tinyshakespeare.txt.gz"
cp scripts/gpu-*.sh scripts/rec-ablation.sh scripts/rec-paper-gpu.sh scripts/induction-gpu.sh "$target/"
cp scripts/ssd_anchor.py scripts/ssd_anchor_profile.py "$target/"
cp scripts/model_anchor_more.py scripts/model_anchor_profile.py scripts/ncu_kernel_times.py "$target/"
du -sh "$target" | sed 's/^/packed: /'
kb=$(du -sk "$target" | cut -f1)
[ "$kb" -gt 56000 ] && echo "warning: $((kb / 1024)) MiB packed; the device tool carries at most 64 MiB with the tree (MAMBA4_PACK=tests leaves the benchmarks out)"
exit 0
