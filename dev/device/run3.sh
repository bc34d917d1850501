#!/bin/bash
# Device call 3: CPU-side figures on the GPU machine's Xeon: the tokenizer speed
# against tiktoken / HF tokenizers / sentencepiece, the CPU engine's kernels on
# AVX-512, and its benchmarks.  Binaries built on the development machine.
export LD_LIBRARY_PATH=$PWD/.devcarry/lib:$LD_LIBRARY_PATH
C=$PWD/.devcarry
date -u; lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | sed 's/Flags:/flags:/' | cut -c1-60; grep -o -w -E 'avx512f|avx512bw|avx512_bf16|avx512vnni|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
echo "== test_kernels (every SIMD set vs the reference)"; $C/test_kernels 2>&1 | tail -4
echo "== test_engine on the fixtures"; DPB_SHARED=$C/shared $C/test_engine 2>&1 | tail -3
echo "== tokenizer speed"
sh bench/tokenizer/bench.sh --bin $C/deploybench --corpus $C/tokpack/corpus.txt --tokdir $C/tokpack/tokenizers --repeat 5 --ref-repeat 3 --out $OUT/tok 2>&1 | tail -40
echo "== engine kernels, all threads"; $C/bench_kernels 0 1024 2>&1 | tail -15
echo "== engine kernels, 1 thread"; $C/bench_kernels 1 1024 2>&1 | tail -15
echo "== ~1B presets (16 threads)"; $C/bench_engine --threads 0 --prompt 128 --gen 32 synth:gpt-oss-1b synth:qwen3-1b synth:llama-1b 2>&1 | tail -12
echo "== tiny presets"; $C/bench_engine --threads 0 --prompt 128 --gen 64 synth:gpt-oss-tiny synth:qwen3-tiny synth:llama-tiny 2>&1 | tail -8
echo "== prefill 512"; $C/bench_engine --threads 0 --prompt 512 --gen 2 synth:gpt-oss-1b synth:llama-1b 2>&1 | tail -6
echo "== quickstart"; $C/deploybench quickstart 2>&1 | tail -12
