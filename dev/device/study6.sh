#!/bin/bash
# Issue 6 on the H200: the in-process study for one synth model, step by step.
#   bash dev/device/study6.sh MODEL STEP[,STEP...] [SECONDS_PER_STEP]
# MODEL: gpt-oss-20b | qwen3-32b | yi-34b; STEP: latency memory energy ablate.
# Results go to $OUT/MODEL/STEP (resumable: rerun the same step with --resume after a timeout).
# Everything ends up in $OUT/MODEL.tar.gz (the device tool returns a limited number of files).
# Carry .devcarry (build/deploybench + its non-CUDA libraries, see dev/device/run7.sh).
set -u
M=$1; STEPS=$2; LIM=${3:-540}
export LD_LIBRARY_PATH=$PWD/.devcarry/lib:${LD_LIBRARY_PATH:-}
B=$PWD/.devcarry/deploybench
R=$OUT/$M; mkdir -p $R
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv,noheader
case $M in
    gpt-oss-20b) CTX=2048,8192,16384,32768,65536,131008 ;;
    *) CTX=2048,8192,16384,32768 ;;
esac
for S in ${STEPS//,/ }; do
    t0=$(date +%s)
    case $S in
    latency) timeout -s INT $LIM $B latency --model synth:$M --backend cuda --prompt-tokens 128,512,1024,2048 \
                 --gen-tokens 64,128,256 --num-requests 10 --warmup 1 --out $R/latency ;;
    memory)  timeout -s INT $LIM $B memory --model synth:$M --backend cuda --contexts ${MEM_CTX:-$CTX} --gen-tokens 64 \
                 --out $R/memory ${MEM_RESUME:+--resume} ;;
    energy)  timeout -s INT $LIM $B energy --model synth:$M --backend cuda --contexts 2048 --gen-tokens 64 --num-runs 5 \
                 --idle-seconds 10 --power-poll-hz 20 --out $R/energy ;;
    ablate)  timeout -s INT $LIM $B ablate --model synth:$M --backend cuda --tests ${ABL_TESTS:-all} --prompt-tokens 512 \
                 --gen-tokens 64 --num-requests ${ABL_N:-5} --warmup 1 --out $R/ablate ;;
    esac > $R/$S.log 2>&1
    echo "== $M $S rc=$? $(( $(date +%s) - t0 )) s"; tail -${TAILN:-16} $R/$S.log
done
tar -C $OUT -czf $OUT/$M.tar.gz $M && rm -rf $R
