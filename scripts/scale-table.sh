#!/usr/bin/env bash
# Reproduces README's "Large models" table: for each shape, a random-weight HF directory (mamba4 init), then batch-1
# decoding per weight type (bench mode `scale`: load, a 16-token prompt, 2 warm-up steps, 16 timed greedy steps; peak
# RSS = VmHWM, private memory = RssAnon, mapped weights = RssFile), with the load average beside each number.
# One directory at a time, deleted after use (the largest, falcon-mamba-7b bf16, is 14.5 GB on disk).
# Usage: scripts/scale-table.sh [WORKDIR] [shape ...]   (default shapes: mamba-1.4b mamba-2.8b mamba2-2.7b falcon-mamba-7b)
# int8 is written directly by `mamba4 init --dtype int8` (quantize's layout): `mamba4 quantize` loads the model as F32
# first, which a 7B model cannot do in 24 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/mamba4-scale}; shift || true
shapes=("$@"); [ ${#shapes[@]} -gt 0 ] || shapes=(mamba-1.4b mamba-2.8b mamba2-2.7b falcon-mamba-7b)
[ -n "${NO_BUILD:-}" ] || dotnet build Mamba4.slnx -c Release -v q -nologo >/dev/null
cli="dotnet src/Mamba4.Cli/bin/Release/net10.0/Mamba4.Cli.dll"
bench="dotnet bench/Mamba4.Bench/bin/Release/net10.0/Mamba4.Bench.dll"
mem_gib=$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)
echo "# $(date -u +%FT%TZ) $(nproc) cores, ${mem_gib} GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for shape in "${shapes[@]}"; do
  # f32 only where its weights fit with room (the 7B model's are 29 GB).
  types=(f32 bf16 int8); [ "$shape" = falcon-mamba-7b ] && types=(bf16 int8)
  for type in "${types[@]}"; do
    dir="$work/$shape-$type"
    rm -rf "$dir"
    start=$(date +%s)
    $cli init --shape "$shape" --dtype "$type" --out "$dir" 2>&1 | tail -1
    echo "# init $shape $type: $(( $(date +%s) - start )) s, $(du -sh "$dir" | cut -f1) on disk"
    echo "$($bench scale "$dir" own 16) load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
    rm -rf "$dir"
  done
done
