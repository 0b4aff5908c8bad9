# Sourced (`. "$(dirname "$0")/gpu-env.sh"`) by the scripts that run ON the GPU machine from a pack made by
# scripts/gpu-pack.sh (gpu-test.sh, gpu-decode.sh, gpu-measure.sh, induction-gpu.sh, rec-paper-gpu.sh): unpacks the .NET
# runtime once and exports what the tests, benchmarks and CLI need — the CUDA libraries, the pack's shared fixtures and
# NVRTC's cubin cache (/tmp/mamba4-cuda-cache unless MAMBA4_CUDA_CACHE is set before).
gpu_pack=$(cd "$(dirname "$0")" && pwd)
# unpacked beside, then renamed into place: two scripts started together (a session's own script beside rec-paper-gpu.sh)
# never see a half-unpacked runtime; the one whose rename loses drops its copy
if [ ! -x /tmp/dotnet/dotnet ]; then
  gpu_tmp=$(mktemp -d /tmp/dotnet.XXXXXX)
  tar xJf "$gpu_pack/dotnet.tar.xz" -C "$gpu_tmp" && mv -T "$gpu_tmp" /tmp/dotnet 2>/dev/null || rm -rf "$gpu_tmp"
fi
export DOTNET_ROOT=/tmp/dotnet PATH=/tmp/dotnet:$PATH DOTNET_CLI_TELEMETRY_OPTOUT=1
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export MAMBA4_SHARED="$gpu_pack/shared" MAMBA4_CUDA_CACHE=${MAMBA4_CUDA_CACHE:-/tmp/mamba4-cuda-cache}

# The failed tests of an xunit v3 log: each "Name [FAIL]" line (v3 puts the tag after the name) and the message under it,
# colour codes stripped. gpu_failures LOG [LINES]
gpu_failures() { sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E -A1 "\[FAIL\]\s*$" | grep -v "^--$" | head -"${2:-20}"; }

# A build of another commit carried as DIR/Mamba4.dll(.xz) beside the pack (xz'd to fit the 64 MiB the tool carries; with
# its own Mamba4.Bench.dll(.xz) where the benchmark changed too), made runnable as a benchmark: real copies of the
# benchmark's own files (the .NET host resolves a symlinked app to its target's folder and would load that folder's
# Mamba4.dll) and links to the rest of the pack's benchmark folder.
# Fails when DIR holds no Mamba4.dll.   gpu_base_build DIR
gpu_base_build() {
  for f in Mamba4 Mamba4.Bench; do [ -f "$1/$f.dll.xz" ] && xz -dc "$1/$f.dll.xz" > "$1/$f.dll"; done
  [ -f "$1/Mamba4.dll" ] || return 1
  for f in "$gpu_pack"/Mamba4.Bench/Mamba4.Bench.*; do [ -e "$1/$(basename "$f")" ] || cp -L "$f" "$1/"; done
  for f in "$gpu_pack"/Mamba4.Bench/*; do [ -e "$1/$(basename "$f")" ] || ln -s "../Mamba4.Bench/$(basename "$f")" "$1/"; done
}

# For the measuring scripts (gpu-measure.sh, gpu-all.sh): the card's name, where logs go ($OUT), mamba_ssm's sources when
# carried as .anchors/ beside the pack, and the benchmark.
gpu_measuring() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  gpu_out=${OUT:-/tmp/out}; mkdir -p "$gpu_out"
  # mamba_ssm's sources, copied once a machine to a folder no call replaces (the tool replaces .anchors/ at every call,
  # which a detached build still reading it, or ninja comparing its files' times, would not survive); files a later
  # call's .anchors/ adds (the model's beside the scan's) join it, the copied ones stay as they are
  gpu_anchors=""
  if [ -f "$gpu_pack/../.anchors/scan_anchor.py" ]; then
    gpu_anchors=/tmp/mamba4-anchors; mkdir -p "$gpu_anchors" && cp -an "$gpu_pack/../.anchors/." "$gpu_anchors/"
  fi
  gpu_bench="$gpu_pack/Mamba4.Bench/Mamba4.Bench.dll"
}

# One region's kernels under Nsight Compute, their times summed by name (ncu_kernel_times.py): seconds, name, command...;
# the CSV and its errors go to $gpu_out/ncu-NAME.*, and nothing profiled outlives the region.
gpu_ncu_region() {
  local limit=$1 name=$2; shift 2
  local ncu=/usr/local/cuda/bin/ncu; [ -x "$ncu" ] || ncu=$(command -v ncu)
  timeout "$limit" "$ncu" --profile-from-start off --metrics gpu__time_duration.sum --cache-control none \
    --clock-control none --csv --print-units base --print-kernel-base function "$@" > "$gpu_out/ncu-$name.csv" 2> "$gpu_out/ncu-$name.err"
  python3 "$gpu_pack/ncu_kernel_times.py" "$gpu_out/ncu-$name.csv" 30 || tail -3 "$gpu_out/ncu-$name.err"
  grep -h "warm-up" "$gpu_out/ncu-$name.csv"
  pkill -f "Mamba4.Bench.dll|model_anchor_profile.py" 2>/dev/null; sleep 1
}

# mamba_ssm's extensions built detached: a call cut by its limit leaves the build running, and the next call on the same
# warm machine finds it done or still going instead of starting over. WHAT = scan (scan_anchor.py's first 21 lines: the
# scan extension) or model (model_anchor.py with ANCHOR_BUILD_ONLY=1: the scan and causal-conv1d extensions, which
# scan_anchor.py then reuses); either runs as ANCHORS/build_anchor.py, so that it finds the sources from its own folder.
# Its log and pid live in /tmp (the tool empties $OUT at every call); gpu_anchor_build_wait copies the log to LOG.
# torch's build locks are removed first when no build runs (a killed build leaves its lock, and the next build would wait
# on it forever). 4-8 minutes on 16 cores (CUDA 13).   gpu_anchor_build_start ANCHORS [scan|model]
gpu_anchor_log=/tmp/mamba4-anchor-build.log gpu_anchor_pid=/tmp/mamba4-anchor-build.pid
gpu_anchor_building() { [ -s "$gpu_anchor_pid" ] && kill -0 "$(cat "$gpu_anchor_pid")" 2> /dev/null; }
gpu_anchor_build_start() {
  local anchors=$1 what=${2:-scan}
  if gpu_anchor_building; then echo "mamba_ssm's build: already running (pid $(cat "$gpu_anchor_pid"))"; return; fi
  rm -f ~/.cache/torch_extensions/*/selective_scan_cuda/lock ~/.cache/torch_extensions/*/causal_conv1d_cuda/lock "$gpu_anchor_pid"
  { echo 'import os; open("'"$gpu_anchor_pid"'", "w").write(str(os.getpid()))'
    if [ "$what" = model ]; then
      printf '%s\n' 'import runpy' 'os.environ["ANCHOR_BUILD_ONLY"] = "1"' \
        'runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_anchor.py"), run_name="__main__")'
    else
      head -21 "$anchors/scan_anchor.py"
    fi; } > "$anchors/build_anchor.py"
  # setsid -f: the build forks off in a session of its own, holding none of this script's descriptors (a pipe on this
  # script's output closes when the script ends, not when the build does)
  (cd "$anchors" && exec setsid -f nohup python3 build_anchor.py > "$gpu_anchor_log" 2>&1 < /dev/null)
  local i; for i in 1 2 3 4 5 6 7 8 9 10; do [ -s "$gpu_anchor_pid" ] && break; sleep 0.5; done   # until it has said its pid
}
# Waits until the build has finished or SECONDS passes LIMIT (the objects built, each minute); copies its log to LOG and
# says how it ended (built, still building: AGAIN tells how to go on, or failed); true when it is built.
# gpu_anchor_build_wait LIMIT LOG [AGAIN]
gpu_anchor_build_wait() {
  local limit=$1 log=$2 again=${3:-call again at once on the warm machine} next=$((SECONDS + 60))
  while gpu_anchor_building && [ $SECONDS -lt "$limit" ]; do
    sleep 5
    [ $SECONDS -ge $next ] && { next=$((SECONDS + 60)); echo "[$SECONDS s] mamba_ssm's build: $(ls ~/.cache/torch_extensions/*/*_cuda/*.o 2>/dev/null | wc -l) objects"; }
  done
  cp "$gpu_anchor_log" "$log" 2> /dev/null
  if grep -q '"build_s"' "$gpu_anchor_log" 2> /dev/null; then echo "[$SECONDS s] mamba_ssm built: $(grep '"build_s"' "$gpu_anchor_log" | tail -1)"; return 0; fi
  if gpu_anchor_building; then echo "[$SECONDS s] mamba_ssm not built yet (the build goes on: $again; what follows runs beside its nvcc)"
  else echo "[$SECONDS s] mamba_ssm's build failed: $(tail -3 "$gpu_anchor_log" 2> /dev/null)"; fi
  return 1
}

# The scan's kernels under Nsight Compute (--set full, per-instruction samples; MAMBA4_CUDA_BENCH=profile: row 1's
# forward by the chunked and both lanes kernels, F32 and BF16, and the main backward), within LIMIT seconds, into one
# archive FILE.tgz: the run's log, the details page (duration, issue slots, stalls, occupancy of each kernel) and the
# source page as CSV (SASS with its stall samples; kernel notes: how to read them). Prints the headline lines. The last
# 30 s of LIMIT read the report (the reads are timed out too: the call's own limit follows soon after).
# gpu_scan_profile BENCH_DLL LIMIT FILE
gpu_scan_profile() {
  local dll=$1 limit=$2 file=$3 ncu=/usr/local/cuda/bin/ncu tmp; tmp=$(mktemp -d)
  [ -x "$ncu" ] || ncu=$(command -v ncu)
  limit=$((limit > 60 ? limit - 30 : (limit > 1 ? limit / 2 : 1)))   # never 0 (timeout 0: none) nor negative
  MAMBA4_DEVICE=cuda MAMBA4_CUDA_BENCH=profile timeout "$limit" "$ncu" -k "regex:scan_forward_lanes|scan_forward_ns16_sel|scan_backward_ns4_tpc4_sel_pf" \
    --launch-count 9 --set full --import-source no -o "$tmp/scan" dotnet "$dll" cuda > "$tmp/ncu-run.log" 2>&1
  echo "ncu rc=$?"
  if [ -f "$tmp/scan.ncu-rep" ]; then
    timeout 20 "$ncu" --import "$tmp/scan.ncu-rep" --page source --csv --print-source sass > "$tmp/scan-source.csv" 2> /dev/null
    timeout 10 "$ncu" --import "$tmp/scan.ncu-rep" --page details > "$tmp/scan-details.txt" 2>&1
    grep -E "^  scan_|Duration|Issue Slots Busy|Warp Cycles Per Issued|Achieved Occupancy" "$tmp/scan-details.txt" | head -40
  else tail -3 "$tmp/ncu-run.log"; fi
  tar czf "$file.tgz" -C "$tmp" $(cd "$tmp" && ls ncu-run.log scan-details.txt scan-source.csv 2> /dev/null)
  rm -rf "$tmp"
}
