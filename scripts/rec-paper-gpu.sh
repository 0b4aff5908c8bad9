#!/usr/bin/env bash
# The Mamba4Rec paper's tables in one GPU call (runs ON the GPU machine, from the root of a tree that holds the pack
# folder made by scripts/gpu-pack.sh, which copies this script and rec-ablation.sh; copy ml-1m.sequences.txt.gz and
# Beauty.txt from ../shared/data into it too; device tool: carry the pack folder):
#   1. the GPU test of the materialised attention (a few seconds);
#   2. concurrently on the one GPU (tiny models leave it mostly idle): ML-1M at the paper's settings (max_len 200;
#      Mamba4Rec --preset paper, SASRec/BERT4Rec/GRU4Rec at RecBole's defaults) with seeds, and the --layers 2
#      --dropout 0.5 recipe; Amazon Beauty at the paper's Amazon setting (max_len 50, dropout 0.4), the reference setup and the
#      recipe — each through scripts/rec-ablation.sh (train, then `rec eval --breakdown --ranks` of the best model),
#      every run interrupted after LIMIT seconds if it has not early-stopped (its best model so far is still evaluated);
#   3. alone on the GPU: the efficiency table (Mamba4.Bench receff: peak memory, s/epoch under both objectives,
#      inference s per batch of 4,096 users; SASRec/BERT4Rec with fused and naive attention).
#   bash PACK/rec-paper-gpu.sh    env: LIMIT (training seconds, default 400), OUT (logs; default /tmp/rec-paper),
#                                 ML1M_GRID / BEAUTY_GRID (lines "name|arguments" replacing a grid below; "none" skips it),
#                                 EFFICIENCY=0 (skip step 3). The run logs, evaluations and ranks come back as OUT/logs.tar.gz.
#                                 JOBS (runs at once per dataset, default 3).
#                                 KEEP_RUNS=1: the whole run folders (checkpoints, models) come back instead, as
#                                 OUT/runs.tar.gz.00, .01, … (15 MB parts: cat runs.tar.gz.* | tar xz); PACK/runs.tar.gz, if
#                                 there, is unpacked into OUT first, so its ml1m/NAME and beauty/NAME runs resume (--resume).
#                                 ML1M_DATA, BEAUTY_DATA: the data files' paths (a checkpoint resumes only from the path it
#                                 was made with; ../shared/data/… as on the development machine keeps runs movable both ways).
#                                 DEVICE=cpu: a smoke test of this script on a machine without a GPU.
#                                 MPS=0: no CUDA MPS daemon (by default one is started, and checked, so that the processes run
#                                 on the GPU at once instead of time-slicing it; without a working one, they time-slice).
#                                 NVRTC's cubins are cached in PACK/cuda-cache (MAMBA4_CUDA_CACHE) and come back as
#                                 OUT/cuda-cache.tar.gz: unpacked into the next pack, the ~85 s scan compile is skipped on a
#                                 machine with the same NVRTC and driver (files are checked by their SHA-256).
#                                 With PACK/Mamba4.Cli (MAMBA4_PACK=cli scripts/gpu-pack.sh) instead of Mamba4.Tests, step 1 is skipped.
# Measured (bench/results/rec-ml1m-h100.txt): without MPS, 18 processes on one GPU slowed each ML-1M epoch 15–20× (2–3 s
# alone, ~35–40 s shared: the GPU time-slices between processes); with MPS (rec-ml1m-converged-h100.txt) 7 processes ran
# ML-1M epochs in 1.2 s (Mamba4Rec) to 3.1 s (SASRec) each. On a fresh machine without PACK/cuda-cache every Mamba4Rec
# process first spends 85–135 s in NVRTC (selective_scan.cu). The full protocol of the default grids needs more than one call.
set -uo pipefail
pack=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/rec-paper}
limit=${LIMIT:-400}
mkdir -p "$out"
export MAMBA4_CUDA_CACHE=${MAMBA4_CUDA_CACHE:-$pack/cuda-cache}
. "$pack/gpu-env.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
nproc | sed 's/^/CPU cores: /' | tee -a "$out/gpu.txt"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }

if [ -d "$pack/Mamba4.Tests" ]; then
  stamp "GPU test: materialised attention"
  "$pack/Mamba4.Tests/Mamba4.Tests" -trait "Category=Cuda" -class Mamba4.Tests.AttentionMaterializedTests -parallel none > "$out/gpu-test-attention.log" 2>&1
  grep -E "Total:|FAIL" "$out/gpu-test-attention.log"
  cli="dotnet $pack/Mamba4.Tests/Mamba4.Cli.dll"
else
  cli="dotnet $pack/Mamba4.Cli/Mamba4.Cli.dll"
fi

# CUDA MPS (scripts/gpu-mps.sh): the small processes share the GPU instead of taking turns
. "$pack/gpu-mps.sh"
if [ "${MPS:-1}" = 1 ] && [ "${DEVICE:-cuda}" != cpu ]; then stamp "$(mps_on)"; else stamp "MPS: off"; fi
[ -f "$pack/runs.tar.gz" ] && tar xzf "$pack/runs.tar.gz" -C "$out" && stamp "resuming: $(cd "$out" && ls -d */*/checkpoint.safetensors 2>/dev/null | xargs -r -n1 dirname | tr '\n' ' ')"
ml1m_grid=$(cat <<'EOF'
mamba4rec-paper|--model mamba4rec --preset paper
sasrec|--model sasrec
bert4rec|--model bert4rec
gru4rec|--model gru4rec
mamba4rec-paper-seed2|--model mamba4rec --preset paper --seed 2
sasrec-seed2|--model sasrec --seed 2
bert4rec-seed2|--model bert4rec --seed 2
mamba4rec-paper-seed3|--model mamba4rec --preset paper --seed 3
sasrec-seed3|--model sasrec --seed 3
bert4rec-seed3|--model bert4rec --seed 3
mamba4rec-recipe|--model mamba4rec --layers 2 --dropout 0.5
EOF
)
beauty_grid=$(cat <<'EOF'
mamba4rec-amazon|--model mamba4rec --preset paper --dropout 0.4
sasrec-amazon|--model sasrec --dropout 0.4
bert4rec-amazon|--model bert4rec --dropout 0.4
gru4rec-amazon|--model gru4rec --dropout 0.4
bert4rec|--model bert4rec
mamba4rec-paper|--model mamba4rec --preset paper
mamba4rec-recipe|--model mamba4rec --layers 2 --dropout 0.5
EOF
)
ml1m_grid=${ML1M_GRID:-$ml1m_grid}
beauty_grid=${BEAUTY_GRID:-$beauty_grid}
export MAMBA4_THREADS=1   # many processes share 16 cores; each mostly launches GPU kernels
stamp "accuracy runs: ML-1M ($(echo "$ml1m_grid" | wc -l) runs) and Beauty ($(echo "$beauty_grid" | wc -l) runs) at once, each capped at $limit s of training"
[ "$ml1m_grid" = none ] || GRID=$ml1m_grid JOBS=${JOBS:-3} DEVICE=${DEVICE:-cuda} LIMIT=$limit CLI=$cli OUT=$out/ml1m EXTRA="--max-len 200 ${ML1M_EXTRA:-}" \
  bash "$pack/rec-ablation.sh" "${ML1M_DATA:-$pack/ml-1m.sequences.txt.gz}" pairs > "$out/ml1m.txt" 2>&1 &
ml1m=$!
[ "$beauty_grid" = none ] || GRID=$beauty_grid JOBS=${JOBS:-3} DEVICE=${DEVICE:-cuda} LIMIT=$limit CLI=$cli OUT=$out/beauty EXTRA=${BEAUTY_EXTRA:-} \
  bash "$pack/rec-ablation.sh" "${BEAUTY_DATA:-$pack/Beauty.txt}" seq > "$out/beauty.txt" 2>&1 &
beauty=$!
wait $ml1m $beauty
stamp "accuracy runs done"
grep -h -A100 "^run " "$out/ml1m.txt" "$out/beauty.txt" 2>/dev/null
for f in "$out"/*/*.log; do echo "-- $f"; grep -E " epoch |^stopped|^resum" "$f" | cut -c1-140 | tail -n 3; done
if [ "${KEEP_RUNS:-0}" = 1 ]; then   # everything (logs with every epoch's validation, run folders) in few files
  (cd "$out" && tar czf - $(ls -d ml1m beauty *.txt 2>/dev/null) | split -b 15m -d - runs.tar.gz. && rm -rf ml1m beauty *.txt)
else
  (cd "$out" && tar czf logs.tar.gz --exclude='*.safetensors' --exclude='*.json' */*.log */*.eval.txt */*.ranks.tsv */*/metrics.jsonl 2>/dev/null && rm -rf ml1m beauty)
fi
[ -d "$MAMBA4_CUDA_CACHE" ] && tar czf "$out/cuda-cache.tar.gz" -C "$(dirname "$MAMBA4_CUDA_CACHE")" "$(basename "$MAMBA4_CUDA_CACHE")"
# the device tool returns at most 8 files (16 MiB each) from $OUT: more, and some (run parts among them) stay behind
files=$(find "$out" -type f | wc -l); [ "$files" -gt 8 ] && stamp "warning: $files files under $out; the device tool returns at most 8"
mps_off

unset MAMBA4_THREADS
[ "${EFFICIENCY:-1}" = 0 ] && { stamp "done"; exit 0; }
# the efficiency benchmark needs a GPU and the benchmarks in the pack (MAMBA4_PACK=cli packs none)
[ "${DEVICE:-cuda}" = cpu ] && { stamp "done (DEVICE=cpu: no efficiency benchmark)"; exit 0; }
[ -f "$pack/Mamba4.Bench/Mamba4.Bench.dll" ] || { stamp "done (no Mamba4.Bench in the pack: no efficiency benchmark; pack without MAMBA4_PACK=cli for it)"; exit 0; }
stamp "efficiency (alone on the GPU)"
MAMBA4_DEVICE=cuda timeout 170 dotnet "$pack/Mamba4.Bench/Mamba4.Bench.dll" receff "${ML1M_DATA:-$pack/ml-1m.sequences.txt.gz}" pairs 200 20 2>&1 | tee "$out/receff.txt"
stamp "done"
