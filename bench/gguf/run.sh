#!/usr/bin/env bash
# Issue 6's throughput target on a random 1B bf16 Llama (Llama-3.2-1B shapes): first the in-process side-by-side bench
# (read once vs `GgufConverter.Convert` to Q4_K_M, alternating, twice: wall s, CPU s, ratio), then each step as its own
# process under /usr/bin/time -v for peak RSS (`llmq gguf` for the conversion). The model is made on first use in
# $LLMQ_BENCH_DIR (default /tmp/llmq-bench). Run once; it takes minutes and a few GB of disk.
set -euo pipefail
cd "$(dirname "$0")/../.."
export LLMQ_BENCH_DIR=${LLMQ_BENCH_DIR:-/tmp/llmq-bench}
dotnet build -c Release -v q -nologo bench/Llmq.Bench >/dev/null
dotnet build -c Release -v q -nologo src/Llmq.Cli >/dev/null
bench=bench/Llmq.Bench/bin/Release/net10.0/Llmq.Bench.dll
cli=src/Llmq.Cli/bin/Release/net10.0/Llmq.Cli.dll
model=$LLMQ_BENCH_DIR/llama1b-bf16
dotnet $bench gguf-convert

measure() {   # name, command...
  local name=$1; shift
  local log; log=$(mktemp)
  /usr/bin/time -v "$@" >/dev/null 2>"$log"
  awk -v name="$name" -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); wall = (n == 3) ? p[1]*3600 + p[2]*60 + p[3] : p[1]*60 + p[2] }
    /User time/ { user = $2 } /System time/ { sys = $2 } /Maximum resident set size/ { rss = $2 }
    END { printf "{\"step\":\"%s\",\"wall_s\":%.2f,\"cpu_s\":%.2f,\"peak_rss_mib\":%.0f}\n", name, wall, user + sys, rss / 1024 }' "$log"
  rm -f "$log"
}

measure read-once dotnet $bench read-model
measure gguf-Q4_K_M dotnet $cli gguf --model "$model" --type Q4_K_M --output "$LLMQ_BENCH_DIR/llama1b-Q4_K_M.gguf" --overwrite
