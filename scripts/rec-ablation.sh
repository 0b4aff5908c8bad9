#!/usr/bin/env bash
# Why does Mamba4Rec trail SASRec on HR@10 on Amazon Beauty? An ablation grid under the full protocol (300 epochs,
# patience 10, every run on the same split and evaluation), then each model's test metrics broken down by history
# length, target popularity and repeats (`rec eval --breakdown`). Runs go in parallel (JOBS at a time); on a GPU
# (DEVICE=cuda) the whole grid takes ~10 minutes, on 2 CPU cores many hours (JOBS=1 there).
#
#   scripts/rec-ablation.sh [DATA] [FORMAT]          default: ../shared/data/amazon-beauty/Beauty.txt seq
#   env: DEVICE (cpu|cuda), JOBS (parallel runs), OUT (results folder, default runs/ablation),
#        CLI (the mamba4 command, default ./mamba4), LIMIT (seconds before every run is interrupted with a checkpoint),
#        EXTRA (arguments added to every run, e.g. "--epochs 1" for a smoke test),
#        GRID (lines "name|arguments" replacing the grid below)
set -uo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/amazon-beauty/Beauty.txt}
format=${2:-seq}
out=${OUT:-runs/ablation}
cli=${CLI:-./mamba4}
jobs=${JOBS:-1}
device=${DEVICE:-cpu}
limit=${LIMIT:-0}
extra=${EXTRA:-}
mkdir -p "$out"
# name | arguments (on top of the reference setup)
grid=(
  "mamba4rec|--model mamba4rec"
  "sasrec|--model sasrec"
  "gru4rec|--model gru4rec"
  "mamba4rec-seed2|--model mamba4rec --seed 2"
  "sasrec-seed2|--model sasrec --seed 2"
  "mamba4rec-2layers|--model mamba4rec --layers 2"
  "sasrec-1layer|--model sasrec --layers 1"
  "mamba4rec-dropout0.5|--model mamba4rec --dropout 0.5"
  "sasrec-dropout0.2|--model sasrec --dropout 0.2"
  "mamba4rec-recbole|--model mamba4rec --objective recbole"
  "sasrec-recbole|--model sasrec --objective recbole"
)
if [ -n "${GRID:-}" ]; then mapfile -t grid <<< "$GRID"; fi
run() {
  local name=${1%%|*} args=${1#*|}
  local cmd="$cli rec train --data $data --format $format --device $device --out $out/$name --json $args $extra"
  echo "start $name: $cmd"
  if [ "$limit" -gt 0 ]; then timeout -s INT "$limit" $cmd > "$out/$name.log" 2>&1; else $cmd > "$out/$name.log" 2>&1; fi
  echo "done  $name (exit $?)"
}
export -f run
export cli data format device out limit extra
printf '%s\n' "${grid[@]}" | xargs -P "$jobs" -I{} bash -c 'run "$@"' _ {}
evaluate() {
  local name=${1%%|*}
  [ -f "$out/$name/model/config.json" ] || return 0
  $cli rec eval --checkpoint "$out/$name/model" --data "$data" --format "$format" --device "$device" --breakdown \
    --ranks "$out/$name.ranks.tsv" > "$out/$name.eval.txt" 2>&1
}
export -f evaluate
printf '%s\n' "${grid[@]}" | xargs -P "$jobs" -I{} bash -c 'evaluate "$@"' _ {}
echo "run                   hit@10  ndcg@10  mrr@10  best_epoch  epochs"
for entry in "${grid[@]}"; do
  name=${entry%%|*}
  line=$(tail -n 1 "$out/$name.log" 2>/dev/null)
  case "$line" in
    "{"*) python3 -c 'import json, sys
j = json.loads(sys.argv[2])
print("%-20s %.4f  %.4f  %.4f  %10s  %6s" % (sys.argv[1], j["hit@10"], j["ndcg@10"], j["mrr@10"], j.get("best_epoch", "?"), j.get("epochs", "?")))' "$name" "$line" ;;
    *) echo "$name: unfinished after $(grep -c ' epoch ' "$out/$name.log" 2>/dev/null) epochs; best model so far: $(grep '^test ' "$out/$name.eval.txt" 2>/dev/null | grep -o 'hit@10 [0-9.]*  ndcg@10 [0-9.]*  mrr@10 [0-9.]*')" ;;
  esac
done
