#!/bin/bash
# Issue 8 on the GPU machine, in two calls (each under 10 minutes):
#   bash bench/serve/device.sh overhead   # serving overhead, gpt-oss-20b on CUDA
#   bash bench/serve/device.sh sweep      # concurrency sweep at 1k/1k with deploybench load
# Carried (binaries built on the development machine, with CUDA):
#   $C/deploybench, $C/serve_inproc (from `sh bench/serve/overhead.sh build-only`: build/bench/serve_inproc),
#   $C/lib (runtime libraries, as the other device scripts), and a tokenizer file $TOK.
# Results under $OUT.
C=${C:-$PWD/.devcarry}
OUT=${OUT:-/tmp/out}
TOK=${TOK:-$C/shared/data/tokenizers/gpt-oss-harmony/tokenizer.json.gz}
export LD_LIBRARY_PATH=$C/lib:$LD_LIBRARY_PATH
mkdir -p "$OUT"
date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; uptime
case "$1" in
overhead)
    B=$C/deploybench INPROC=$C/serve_inproc MODEL=synth:gpt-oss-20b TOK=$TOK BACKEND=cuda THREADS=0 GEN=128 \
        OUT=$OUT/overhead sh bench/serve/overhead.sh 30
    ;;
sweep)
    $C/deploybench serve --model synth:gpt-oss-20b --backend cuda --max-batch 256 --max-model-len 2048 \
        --max-queue 4096 --served-model-name gpt-oss-20b --port 8000 >"$OUT/serve.log" 2>&1 &
    SPID=$!
    for i in $(seq 600); do curl -sf http://127.0.0.1:8000/health >/dev/null && break; sleep 1; done
    $C/deploybench load --endpoint http://127.0.0.1:8000 --model gpt-oss-20b --concurrency 1,8,32,64,128,256 \
        --duration 45 --warmup 2 --ramp-up 5 --prompt-tokens 1000 --gen-tokens 1000 --out "$OUT/sweep" 2>&1 | tail -60
    curl -s http://127.0.0.1:8000/metrics >"$OUT/metrics.txt"
    kill $SPID; wait $SPID
    tail -3 "$OUT/serve.log"
    ;;
*) echo "usage: device.sh overhead|sweep"; exit 2 ;;
esac
uptime
