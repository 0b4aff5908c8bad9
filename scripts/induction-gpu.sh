#!/usr/bin/env bash
# Induction heads (issue 22) on the GPU machine: many runs of `mamba4 train --task induction-heads` side by side under
# CUDA MPS, each the Mamba model alone (--ablation false --transformer false --device cuda, unless its options name
# --ablation or --transformer: `name|--ablation true --transformer true` is the whole default command) with its own options.
#   scripts/gpu-pack.sh .device && (device tool, carry .device) bash .device/induction-gpu.sh
# Settings (environment):
#   GRID      lines "name|train options" (default below: the preset, and the preset without held keys, seeds 1-4)
#   DEADLINE  seconds for the whole script (default 540); runs still going are stopped with a checkpoint 20 s before it
#   LENGTHS   test lengths (default 256,4096,65536,262144,1048576); SAMPLES held-out sequences per length (default 128);
#             a run whose options name --lengths or --samples keeps its own
#   KEEP_RUNS=1  the run folders come back in $OUT/runs.tar.gz; a runs.tar.gz beside this script is unpacked first, and
#                every run whose folder holds a checkpoint resumes (--resume) instead of starting again
# Each run's log is $OUT/<name>.log; the summary prints each run's accuracy by length.
set -u
pack=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/induction-out}; mkdir -p "$out" /tmp/induction-runs
deadline=${DEADLINE:-540}; t0=$(date +%s)
left() { echo $(( deadline - ($(date +%s) - t0) )); }
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
. "$pack/gpu-env.sh"
cli="dotnet $pack/Mamba4.Tests/Mamba4.Cli.dll"; [ -d "$pack/Mamba4.Tests" ] || cli="dotnet $pack/Mamba4.Cli/Mamba4.Cli.dll"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
. "$pack/gpu-mps.sh"; stamp "$(mps_on)"
runs=/tmp/induction-runs
[ -f "$pack/runs.tar.gz" ] && tar xzf "$pack/runs.tar.gz" -C "$runs" && stamp "unpacked: $(ls "$runs" | tr '\n' ' ')"
grid=${GRID:-$(printf '%s\n' "preset-s1|--seed 1" "preset-s2|--seed 2" "preset-s3|--seed 3" "preset-s4|--seed 4" \
  "nohold-s1|--hold 0 --seed 1" "nohold-s2|--hold 0 --seed 2" "nohold-s3|--hold 0 --seed 3" "nohold-s4|--hold 0 --seed 4")}
# compile every kernel once before the runs start (they would all compile the same ones at once otherwise)
stamp "warm-up"
timeout 150 $cli train --task induction-heads --ablation false --transformer false --device cuda --steps 2 --eval-every 2 --state-passing 0.5 \
  --lengths 256,4096 --samples 8 --out /tmp/induction-warm > "$out/warm-up.log" 2>&1 || { echo "warm-up failed:"; tail -5 "$out/warm-up.log"; }
export MAMBA4_THREADS=1   # the processes share the cores; each mostly launches kernels
stamp "runs: $(echo "$grid" | wc -l) at once"
while IFS='|' read -r name opts; do
  [ -n "$name" ] || continue
  resume=""; [ -f "$runs/$name/selective/checkpoint.safetensors" ] && resume="--resume"
  limit=$(( $(left) - 20 )); [ "$limit" -gt 0 ] || { echo "$name: no time left before the deadline" | tee -a "$out/$name.log"; continue; }
  ( s=$(date +%s)
    # SIGTERM at the deadline: the trainer writes a checkpoint and stops (a later call resumes it)
    timeout -k 30 "$limit" $cli train --task induction-heads --device cuda \
      $([[ "$opts" == *--ablation* ]] || echo "--ablation false") $([[ "$opts" == *--transformer* ]] || echo "--transformer false") \
      --checkpoint-every 1000 $([[ "$opts" == *--lengths* ]] || echo "--lengths ${LENGTHS:-256,4096,65536,262144,1048576}") \
      $([[ "$opts" == *--samples* ]] || echo "--samples ${SAMPLES:-128}") --json \
      --out "$runs/$name" $resume $opts >> "$out/$name.log" 2>&1
    echo "$name: rc $?, $(( $(date +%s) - s )) s wall ${resume:+(resumed)}" >> "$out/$name.log" ) &
done <<< "$grid"
wait
stamp "runs done"
mps_off
for f in "$out"/*.log; do
  [ "$(basename "$f")" = warm-up.log ] && continue
  echo "== $(basename "$f" .log): $(grep -E "^selective: length" "$f" | sed -E 's/selective: length +([0-9]+): +([0-9.]+) %.*/\1:\2/' | tr '\n' ' ')$(grep -E "rc [0-9]+" "$f" | tail -1)"
done
[ "${KEEP_RUNS:-0}" = 1 ] && tar czf "$out/runs.tar.gz" -C "$runs" . && stamp "run folders: $(du -h "$out/runs.tar.gz" | cut -f1)"
exit 0
