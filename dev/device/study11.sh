#!/bin/bash
# Issue 11 on the H200: deploybench study with the three full-size synth models, a reduced grid
# that fits one device call (the full grids: dev/device/study6.sh).  The report is drawn on the
# development machine from the returned folder:
#   tar xzf study-h200.tar.gz && deploybench study --out study-h200 --resume --steps report
# Carry .devcarry (build/deploybench and its non-CUDA libraries).
set -u
export LD_LIBRARY_PATH=$PWD/.devcarry/lib:${LD_LIBRARY_PATH:-}
B=$PWD/.devcarry/deploybench
S=$OUT/study-h200
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv,noheader
date -u
timeout -s INT ${LIM:-520} $B study --backend cuda --out $S --models gpt-oss-20b,qwen3-32b,yi-34b \
    --steps latency,memory,energy,ablate,serve,unify,ape \
    --prompt-tokens 128,2048 --gen-tokens 64 --num-requests 3 --warmup 1 \
    --contexts 2048,8192 --energy-contexts 2048 --num-runs 5 --idle-seconds 5 --power-poll-hz 20 \
    --ablate-tests experts,kv,precision,graphs --ablate-requests 2 \
    --concurrency 1,4,16 --serve-requests 16 --serve-prompt-tokens 512 --serve-gen-tokens 64 > $OUT/study.log 2>&1
echo "study rc=$?"; date -u
grep -E "^study:|rc=|error|FAIL" $OUT/study.log | tail -40
tar -C $OUT -czf $OUT/study-h200.tar.gz study-h200 && rm -rf $S
