#!/usr/bin/env bash
# Quantize a random 1B bf16 Llama (Llama-3.2-1B shapes) to W4A16 and NVFP4A16 with `llmq quantize`, each as its own
# process under /usr/bin/time -v, beside a process that only reads the input once into float32. Prints one JSON line per
# step: wall seconds, CPU seconds (user + system), major / minor page faults, peak RSS, and how much of the input was in
# the page cache when the step started. The model is made on first use in $LLMQ_BENCH_DIR (default /tmp/llmq-bench).
# Targets (issue 3): < 20 s and < 2 GiB peak RSS each. Run once; it takes a minute or two and a few GB of disk.
#   bench/quantize/run.sh          every step starts with the input in the page cache (read once beforehand)
#   bench/quantize/run.sh --cold   every step starts with the input's pages dropped from the page cache (read from disk)
# On a shared machine compare CPU seconds: wall time also counts the time other processes held the cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=warm
[ "${1:-}" = --cold ] && cache=cold
export LLMQ_BENCH_DIR=${LLMQ_BENCH_DIR:-/tmp/llmq-bench}
dotnet build -c Release -v q -nologo bench/Llmq.Bench >/dev/null
dotnet build -c Release -v q -nologo src/Llmq.Cli >/dev/null
bench=bench/Llmq.Bench/bin/Release/net10.0/Llmq.Bench.dll
cli=src/Llmq.Cli/bin/Release/net10.0/Llmq.Cli.dll
model=$LLMQ_BENCH_DIR/llama1b-bf16
dotnet $bench quantize-model

measure() {   # name, command...
  local name=$1; shift
  local f
  for f in "$model"/*.safetensors; do
    if [ $cache = cold ]; then dd if="$f" iflag=nocache count=0 status=none; else cat "$f" >/dev/null; fi
  done
  local cached; cached=$(fincore -b -n -o RES "$model"/*.safetensors 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s / 1048576 }')
  local log; log=$(mktemp)
  /usr/bin/time -v "$@" >/dev/null 2>"$log"
  awk -v name="$name" -v cache="$cache" -v cached="$cached" -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); wall = (n == 3) ? p[1]*3600 + p[2]*60 + p[3] : p[1]*60 + p[2] }
    /User time/ { user = $2 } /System time/ { sys = $2 } /Maximum resident set size/ { rss = $2 }
    /Major \(requiring I\/O\) page faults/ { major = $2 } /Minor \(reclaiming a frame\) page faults/ { minor = $2 }
    END { printf "{\"step\":\"%s\",\"cache\":\"%s\",\"input_cached_mib\":%d,\"wall_s\":%.2f,\"cpu_s\":%.2f,\"user_s\":%.2f,\"sys_s\":%.2f,\"major_faults\":%d,\"minor_faults\":%d,\"peak_rss_mib\":%.0f}\n",
          name, cache, cached, wall, user + sys, user, sys, major, minor, rss / 1024 }' "$log"
  rm -f "$log"
}

measure read-once dotnet $bench read-model
measure quantize-W4A16 dotnet $cli quantize --model "$model" --scheme W4A16 --output "$LLMQ_BENCH_DIR/out-w4a16" --overwrite
measure quantize-NVFP4A16 dotnet $cli quantize --model "$model" --scheme NVFP4A16 --output "$LLMQ_BENCH_DIR/out-nvfp4a16" --overwrite
