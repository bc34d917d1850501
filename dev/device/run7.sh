#!/bin/bash
# Device call 7: the in-process study (issue 6) on the H200 with synth:gpt-oss-20b.
export LD_LIBRARY_PATH=$PWD/.devcarry/lib:$LD_LIBRARY_PATH
B=$PWD/.devcarry/deploybench
date -u
timeout -s KILL 330 $B latency --model synth:gpt-oss-20b --backend cuda --prompt-tokens 128,512,1024,2048 \
    --gen-tokens 64,128,256 --num-requests 5 --warmup 1 --out $OUT/latency-gpt-oss-20b > $OUT/latency.log 2>&1
echo "latency rc=$?"; tail -15 $OUT/latency.log
timeout -s KILL 120 $B memory --model synth:gpt-oss-20b --backend cuda --contexts 2048,8192,16384,32768 --gen-tokens 64 \
    --out $OUT/memory-gpt-oss-20b > $OUT/memory.log 2>&1
echo "memory rc=$?"; tail -8 $OUT/memory.log
timeout -s KILL 110 $B energy --model synth:gpt-oss-20b --backend cuda --contexts 2048 --gen-tokens 64 --num-runs 5 \
    --idle-seconds 10 --power-poll-hz 20 --out $OUT/energy-gpt-oss-20b > $OUT/energy.log 2>&1
echo "energy rc=$?"; tail -12 $OUT/energy.log
date -u
