#!/bin/bash
# Device call (issues 5, 6, 8): where the time goes, by operation (DPB_OP_PROFILE: each backend op timed
# to its synchronization, graphs off), for gpt-oss-20b prefill at 2048 and batched decode at 16 and 128
# sequences (the serving sweep's shapes), and Qwen3-32B prefill at 2048; then Qwen3-32B memory at 32k.
# Carry a folder with deploybench + lib (C=.devcarry-s).  Results under $OUT (tables *.md, tarballs).
C=${C:-$PWD/.devcarry-s}
B=$C/deploybench
export LD_LIBRARY_PATH=$C/lib
OUT=${OUT:-/tmp/out}
MEMLIM=${MEMLIM:-300}
date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
t0=$(date +%s)
lat() { # profile-name model args...
    local name=$1; shift
    DPB_OP_PROFILE=$OUT/prof-$name.md timeout 150 $B latency --backend cuda --warmup 0 --num-requests 1 \
        --out $OUT/lat-$name "$@" > $OUT/lat-$name.log 2>&1
    echo "== $name: exit $? (+$(( $(date +%s) - t0 )) s)"
    head -30 $OUT/prof-$name.md 2>/dev/null | grep -E "calls, |^\| " | head -22
}
lat gptoss-prefill2048 --warmup 1 --model synth:gpt-oss-20b --prompt-tokens 2048 --gen-tokens 2
lat gptoss-b16 --model synth:gpt-oss-20b --prompt-tokens 1024 --gen-tokens 16 --batch 16
lat gptoss-b128 --model synth:gpt-oss-20b --prompt-tokens 1024 --gen-tokens 16 --batch 128
lat qwen3-prefill2048 --warmup 1 --model synth:qwen3-32b --prompt-tokens 2048 --gen-tokens 2
# unprofiled batched decode for comparison (graphs on)
timeout 150 $B latency --backend cuda --model synth:gpt-oss-20b --prompt-tokens 1024 --gen-tokens 32 --batch 1,16,128 \
    --warmup 1 --num-requests 2 --out $OUT/lat-batch > $OUT/lat-batch.log 2>&1
echo "== batch latency exit $? (+$(( $(date +%s) - t0 )) s)"; grep -E "^\||batch" $OUT/lat-batch.log | tail -8
timeout -s INT $MEMLIM $B memory --model synth:qwen3-32b --backend cuda --contexts 32768 --gen-tokens 64 \
    --out $OUT/memory-qwen3-32b-32k > $OUT/memory.log 2>&1
echo "== memory exit $? (+$(( $(date +%s) - t0 )) s)"; tail -8 $OUT/memory.log
cd $OUT && tar czf lat.tgz lat-* memory-qwen3-32b-32k memory.log 2>/dev/null; rm -rf lat-gptoss-*/ lat-qwen3-*/ lat-batch/ memory-qwen3-32b-32k; ls $OUT
