#!/usr/bin/env bash
# Issue 6's throughput target on a random 1B bf16 Llama (Llama-3.2-1B shapes): first the in-process side-by-side bench
# (read once vs `GgufConverter.Convert` to Q4_K_M, alternating, twice: wall s, CPU s, ratio), then each step as its own
# process under GNU time for peak RSS (`llmq gguf` for the conversion). The model is made on first use in
# $LLMQ_BENCH_DIR (default /tmp/llmq-bench). Run once; it takes minutes and a few GB of disk.
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=bench/Llmq.Bench/bin/Release/net10.0/Llmq.Bench.dll
cli=src/Llmq.Cli/bin/Release/net10.0/Llmq.Cli.dll
for project in bench/Llmq.Bench src/Llmq.Cli; do dotnet build -c Release -v q -nologo $project >/dev/null; done
export LLMQ_BENCH_DIR=${LLMQ_BENCH_DIR:-/tmp/llmq-bench}
dotnet $bench gguf-convert
for step in read-once gguf-Q4_K_M; do
  format="{\"step\":\"$step\",\"wall_s\":%e,\"user_s\":%U,\"sys_s\":%S,\"peak_rss_kib\":%M}"
  case $step in
    read-once) /usr/bin/time -f "$format" dotnet $bench read-model >/dev/null ;;
    *) /usr/bin/time -f "$format" dotnet $cli gguf --model "$LLMQ_BENCH_DIR/llama1b-bf16" --type Q4_K_M \
         --output "$LLMQ_BENCH_DIR/llama1b-Q4_K_M.gguf" --overwrite >/dev/null ;;
  esac
done
