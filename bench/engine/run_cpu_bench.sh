#!/bin/sh
# CPU engine benchmarks (issue 4): kernel speed and engine decode/prefill on the
# ~1B synthetic presets and the tiny presets, each against the copy bandwidth
# measured in the same run.  Run from the repository root on an otherwise idle
# machine:  sh bench/engine/run_cpu_bench.sh [threads]
set -e
T=${1:-0}
make -j"$(nproc)" bench >/dev/null
echo "== kernels (threads ${T:-all}, 1 GiB matrices)"
./build/bench/bench_kernels "$T" 1024
echo "== ~1B presets, bf16 engine, 128-token prompt, 32 new tokens"
./build/bench/bench_engine --threads "$T" --prompt 128 --gen 32 synth:gpt-oss-1b synth:qwen3-1b synth:llama-1b
echo "== tiny presets"
./build/bench/bench_engine --threads "$T" --prompt 128 --gen 64 synth:gpt-oss-tiny synth:qwen3-tiny synth:llama-tiny
echo "== prefill, 512-token prompt"
./build/bench/bench_engine --threads "$T" --prompt 512 --gen 2 synth:gpt-oss-1b synth:llama-1b
