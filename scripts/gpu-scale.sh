#!/usr/bin/env bash
# Runs ON the GPU machine (after scripts/gpu-pack.sh; carry .device): a random-weight model of a real shape written by
# `mamba4 init`, then `mamba4 generate --device cuda` at batch 1 in its own dtype (bf16), reporting tokens/s
# (after a warm-up run that compiles the kernels), the peak GPU memory (nvidia-smi, sampled every 0.2 s) and the
# process's peak host RSS.
#   bash .device/gpu-scale.sh [SHAPE] [NEW_TOKENS]      e.g. bash .device/gpu-scale.sh falcon-mamba-7b 64
set -uo pipefail
shape=${1:-falcon-mamba-7b}
new=${2:-64}
dev=$(cd "$(dirname "$0")" && pwd)
dir=/tmp/mamba4-$shape
cli() { bash "$dev/gpu-test.sh" cli "$@"; }
timed() { if [ -x /usr/bin/time ]; then /usr/bin/time -f "$1" "${@:2}"; else "${@:2}"; fi; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[ -f "$dir/model.safetensors.index.json" ] || { timed "init: %e s, peak RSS %M KB" bash "$dev/gpu-test.sh" cli init --shape "$shape" --out "$dir" || exit 1; }
du -sh "$dir"
prompt=$(seq -s, 1 16)
cli generate --model "$dir" --device cuda --prompt-ids "$prompt" --max-new-tokens 4 --greedy > /dev/null || exit 1   # warm-up: kernels compiled and cached
peak=/tmp/gpu-peak.txt; echo 0 > $peak
( while sleep 0.2; do m=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1); [ "$m" -gt "$(cat $peak)" ] && echo "$m" > $peak; done ) &
poll=$!
timed "generate: %e s wall, peak host RSS %M KB" bash "$dev/gpu-test.sh" cli generate --model "$dir" --device cuda --prompt-ids "$prompt" --max-new-tokens "$new" --greedy | tail -c 200
kill $poll 2>/dev/null
echo "peak GPU memory used: $(cat $peak) MiB ($shape, weights in the checkpoint's dtype, batch 1, $new new tokens)"
