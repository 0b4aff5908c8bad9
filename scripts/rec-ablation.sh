#!/usr/bin/env bash
# Why does Mamba4Rec trail SASRec on HR@10 on Amazon Beauty? An ablation grid under the full protocol (300 epochs,
# patience 10, every run on the same split and evaluation), then each model's test metrics broken down by history
# length, target popularity and repeats (`rec eval --breakdown`, per-user ranks in NAME.ranks.tsv). Runs go in
# parallel (JOBS at a time); on a GPU (DEVICE=cuda, JOBS=11) the default grid takes ~15 minutes, on 2 CPU cores many
# hours (JOBS=1 there). Results: README, "Why Mamba4Rec trails on Beauty's HR@10".
#
#   scripts/rec-ablation.sh [DATA] [FORMAT]          default: ../shared/data/amazon-beauty/Beauty.txt seq
#   env: DEVICE (cpu|cuda), JOBS (parallel runs), OUT (results folder, default runs/ablation),
#        CLI (the mamba4 command, default ./mamba4; may hold arguments, e.g. "dotnet path/Mamba4.Cli.dll"),
#        LIMIT (seconds before every run is interrupted with a checkpoint; its best model so far is still evaluated),
#        EXTRA (arguments added to every run, e.g. "--epochs 1" for a smoke test),
#        GRID (lines "name|arguments" replacing the grid below)
# A run whose folder OUT/NAME holds a checkpoint (interrupted by LIMIT or Ctrl-C) is resumed with --resume; note that
# the checkpoint records the data file's full path, so resume with the data at the same path.
set -uo pipefail
cd "$(dirname "$0")/.."
command -v python3 > /dev/null || { echo "rec-ablation.sh: python3 is needed for the summary table" >&2; exit 1; }
data=${1:-../shared/data/amazon-beauty/Beauty.txt}
format=${2:-seq}
out=${OUT:-runs/ablation}
mkdir -p "$out"
# name | arguments (on top of the reference setup)
grid=(
  "mamba4rec|--model mamba4rec"
  "sasrec|--model sasrec"
  "gru4rec|--model gru4rec"
  "mamba4rec-seed2|--model mamba4rec --seed 2"
  "sasrec-seed2|--model sasrec --seed 2"
  "sasrec-seed3|--model sasrec --seed 3"
  "mamba4rec-recbole|--model mamba4rec --objective recbole"
  "sasrec-recbole|--model sasrec --objective recbole"
  "mamba4rec-residual|--model mamba4rec --residual"
  "mamba4rec-2layers|--model mamba4rec --layers 2"
  "mamba4rec-2layers-seed2|--model mamba4rec --layers 2 --seed 2"
  "mamba4rec-3layers|--model mamba4rec --layers 3"
  "sasrec-1layer|--model sasrec --layers 1"
  "mamba4rec-dropout0.5|--model mamba4rec --dropout 0.5"
  "sasrec-dropout0.2|--model sasrec --dropout 0.2"
  "mamba4rec-residual-dropout0.5|--model mamba4rec --residual --dropout 0.5"
  "mamba4rec-2layers-dropout0.4|--model mamba4rec --layers 2 --dropout 0.4"
  "mamba4rec-2layers-dropout0.5|--model mamba4rec --layers 2 --dropout 0.5"
  "mamba4rec-2layers-dropout0.5-seed2|--model mamba4rec --layers 2 --dropout 0.5 --seed 2"
  "mamba4rec-2layers-dropout0.5-seed3|--model mamba4rec --layers 2 --dropout 0.5 --seed 3"
)
if [ -n "${GRID:-}" ]; then mapfile -t grid <<< "$GRID"; fi
export REC_DATA=$data REC_FORMAT=$format REC_OUT=$out REC_CLI=${CLI:-./mamba4} REC_DEVICE=${DEVICE:-cpu} REC_LIMIT=${LIMIT:-0} REC_EXTRA=${EXTRA:-}

run() {   # one grid line: train, then evaluate the best model with the breakdown
  local name=${1%%|*} args cli extra
  read -r -a args <<< "${1#*|}"
  read -r -a cli <<< "$REC_CLI"
  read -r -a extra <<< "$REC_EXTRA"
  local train=("${cli[@]}" rec train --data "$REC_DATA" --format "$REC_FORMAT" --device "$REC_DEVICE" --out "$REC_OUT/$name" --json "${args[@]}" "${extra[@]}")
  [ -f "$REC_OUT/$name/checkpoint.safetensors" ] && train+=(--resume)   # an interrupted run continues (its log is appended to)
  [ -f "$REC_OUT/$name/checkpoint.safetensors" ] || : > "$REC_OUT/$name.log"
  echo "start $name: ${train[*]}"
  if [ "$REC_LIMIT" -gt 0 ]; then timeout -s INT "$REC_LIMIT" "${train[@]}" >> "$REC_OUT/$name.log" 2>&1; else "${train[@]}" >> "$REC_OUT/$name.log" 2>&1; fi
  echo "done  $name (exit $?)"
  [ -f "$REC_OUT/$name/model/config.json" ] || return 0
  "${cli[@]}" rec eval --checkpoint "$REC_OUT/$name/model" --data "$REC_DATA" --format "$REC_FORMAT" --device "$REC_DEVICE" \
    --breakdown --ranks "$REC_OUT/$name.ranks.tsv" > "$REC_OUT/$name.eval.txt" 2>&1
}
export -f run
printf '%s\n' "${grid[@]}" | xargs -d '\n' -P "${JOBS:-1}" -n 1 bash -c 'run "$1"' _

echo "run                                 hit@10  ndcg@10  mrr@10  best_epoch  epochs"
for entry in "${grid[@]}"; do
  name=${entry%%|*}
  line=$(tail -n 1 "$out/$name.log" 2>/dev/null)
  case "$line" in
    "{"*) python3 -c 'import json, sys
j = json.loads(sys.argv[2])
print("%-35s %.4f  %.4f  %.4f  %10s  %6s" % (sys.argv[1], j["hit@10"], j["ndcg@10"], j["mrr@10"], j.get("best_epoch", "?"), j.get("epochs", "?")))' "$name" "$line" ;;
    *) echo "$name: unfinished after $(grep -o ' epoch [0-9]*/' "$out/$name.log" 2>/dev/null | tail -n 1 | tr -dc 0-9) epochs; best model so far: $(grep '^test ' "$out/$name.eval.txt" 2>/dev/null | grep -o 'hit@10 [0-9.]*  ndcg@10 [0-9.]*  mrr@10 [0-9.]*')" ;;
  esac
done
