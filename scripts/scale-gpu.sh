#!/usr/bin/env bash
# The GPU row of README's "Large models" table: falcon-mamba-7b in bf16 on one GPU (random weights of the real shape).
# Usage: scripts/scale-gpu.sh [WORKDIR]   (needs ~15 GB of disk and a GPU with ≥ 16 GB free)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/mamba4-scale}/falcon-mamba-7b-bf16
[ -n "${NO_BUILD:-}" ] || dotnet build Mamba4.slnx -c Release -v q -nologo >/dev/null
cli="dotnet src/Mamba4.Cli/bin/Release/net10.0/Mamba4.Cli.dll"
[ -f "$dir/model.safetensors.index.json" ] || $cli init --shape falcon-mamba-7b --dtype bf16 --out "$dir" --force
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
# GPU memory in use, sampled every second while generate runs; generate prints tokens/s (prompt included) on stderr.
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -l 1 > "$dir.gpu-mem.txt" & sampler=$!
/usr/bin/time -f "peak host RSS %M KB" $cli generate --model "$dir" --device cuda --prompt-ids 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16 --max-new-tokens 64 --greedy
kill $sampler
echo "peak GPU memory used: $(sort -n "$dir.gpu-mem.txt" | tail -1) MiB"
