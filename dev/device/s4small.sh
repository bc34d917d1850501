#!/bin/bash
# Device call of helper "small" (issue 5, session 4): decode kernels outside attention.
# Carry .devcarry-small (bins.tgz: new/ = this branch's deploybench, backend_check, test_cuda_backend, lab;
# old/ = deploybench and backend_check of a61b28f; lib/, shared/fixtures).  PHASE 1: correctness of every
# variant (op checks default and with DPB_CUDA_PDL=1 DPB_CUDA_GEMV_ASYNC=3), lab rows (GEMV variants with
# the copy bandwidth, router, MoE, norm; again with PDL), decode tok/s of each switch, ncu kernel durations.
# Phase 1 ran with the binaries of e460172 (DPB_CUDA_PDL and DPB_CUDA_GEMV_ASYNC exist only there: both were
# slower and were reverted in 90ff526; with later binaries those lines measure the defaults again).
# PHASE 2: the final defaults: op checks + fixtures, backend_check --speed (old and new), ncu old vs new.
C=${C:-$PWD/.devcarry-small}
OUT=${OUT:-/tmp/out}
PHASE=${1:-1}
(cd "$C" && tar xzf bins.tgz) || exit 2
export LD_LIBRARY_PATH=$C/lib
N=$C/new; O=$C/old
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
t0=$(date +%s)
el() { echo "(+$(( $(date +%s) - t0 )) s)"; }
before() { [ $(( $(date +%s) - t0 )) -lt $1 ]; } # elapsed below $1 s: the step still fits the call
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
lat() { # label binary env... : TPOT of gpt-oss-20b decode, prompt 128
    local lab=$1 bin=$2; shift 2
    env "$@" timeout ${LT:-40} $bin latency --backend cuda --model synth:${MODEL:-gpt-oss-20b} --prompt-tokens ${PT:-128} --gen-tokens 48 \
        --num-requests 1 --warmup 1 --out $OUT/l-$lab > $OUT/l-$lab.log 2>&1
    python3 -c "
import json
d=json.loads(open('$OUT/l-$lab/cells.jsonl').readline())
print('| $lab | %.3f | %.1f |' % (d['tpot_ms_p50'], 1000/d['tpot_ms_p50']))" 2>/dev/null || echo "| $lab | failed: $(tail -1 $OUT/l-$lab.log) | |"
    rm -rf $OUT/l-$lab
}
kern() { # name binary model skip count
    local name=$1 bin=$2 model=$3 skip=$4 cnt=$5
    DPB_NO_GRAPHS=1 timeout 60 $NCU --clock-control none --metrics gpu__time_duration.sum --csv --kernel-name regex:"^(?!k_fill)" \
        --launch-skip $skip --launch-count $cnt $bin latency --backend cuda --model synth:$model --prompt-tokens 128 \
        --gen-tokens 8 --num-requests 1 --warmup 0 --out $OUT/n-$name > $OUT/ncu-$name.csv 2> $OUT/ncu-$name.err
    echo "== ncu $name exit $? $(el)"
    rm -rf $OUT/n-$name
    python3 dev/device/ncu_table.py $OUT/ncu-$name.csv 18
}
if [ "$PHASE" = 1 ]; then
    timeout 80 $N/backend_check --speed none --fixtures $C/shared/fixtures > $OUT/ops.log 2>&1
    echo "== ops+fixtures (defaults) exit $? $(el)"; grep -E "^FAIL|failed" $OUT/ops.log | head -20
    echo "| decode gpt-oss-20b prompt 128 | TPOT ms | tok/s |"; echo "|---|---|---|"
    lat old $O/deploybench
    lat new $N/deploybench
    lat new-pdl $N/deploybench DPB_CUDA_PDL=1
    lat new-async1 $N/deploybench DPB_CUDA_GEMV_ASYNC=1
    lat new-pdl-async1 $N/deploybench DPB_CUDA_PDL=1 DPB_CUDA_GEMV_ASYNC=1
    lat new-pdl-async2 $N/deploybench DPB_CUDA_PDL=1 DPB_CUDA_GEMV_ASYNC=2
    lat new-pdl-async3 $N/deploybench DPB_CUDA_PDL=1 DPB_CUDA_GEMV_ASYNC=3
    el
    (cd $N && OMP_NUM_THREADS=16 timeout 60 ./lab --quick --only gemv,router,moe,norm > $OUT/lab.md 2> $OUT/lab.log; echo "== lab exit $?")
    grep -E "^\| (gemv|router|moe A|moe B|norm|copy)" $OUT/lab.md | grep -E "M=1|copy|router|norm" | head -70
    (cd $N && DPB_CUDA_PDL=1 OMP_NUM_THREADS=16 timeout 40 ./lab --quick --only gemv,moe > $OUT/lab_pdl.md 2> $OUT/lab_pdl.log; echo "== lab PDL exit $?")
    grep -E "graph" $OUT/lab_pdl.md | head -30
    el
    before 200 && DPB_CUDA_PDL=1 DPB_CUDA_GEMV_ASYNC=3 timeout 80 $N/backend_check --speed none --fixtures $C/shared/fixtures > $OUT/ops_pdl.log 2>&1
    echo "== ops+fixtures (PDL, cp.async everywhere) exit $? $(el)"; grep -E "^FAIL|failed" $OUT/ops_pdl.log | head -20
    before 220 && [ -n "$NCU" ] && kern gptoss-new $N/deploybench gpt-oss-20b 1500 900
    before 240 && MODEL=qwen3-32b lat q-old $O/deploybench
    before 255 && MODEL=qwen3-32b lat q-new $N/deploybench
    before 270 && MODEL=qwen3-32b lat q-new-pdl-async1 $N/deploybench DPB_CUDA_PDL=1 DPB_CUDA_GEMV_ASYNC=1
    before 280 && timeout 15 $N/test_cuda_backend > $OUT/tcb.log 2>&1; echo "== test_cuda_backend exit $?: $(tail -1 $OUT/tcb.log) $(el)"
else
    timeout 150 $N/backend_check --speed none --fixtures $C/shared/fixtures > $OUT/ops.log 2>&1
    echo "== ops+fixtures exit $? $(el)"; grep -E "^FAIL|failed|^== " $OUT/ops.log | head -30
    timeout 100 $N/backend_check --skip-ops --skip-fixtures --speed synth:gpt-oss-20b --speed synth:qwen3-32b \
        --ctx 128,2048 > $OUT/speed-new.log 2>&1
    echo "== speed new exit $? $(el)"
    grep -E "^speed.*(prompt (128|2048): TTFT|roofline|with no CUDA)|^FAIL" $OUT/speed-new.log
    before 228 && [ -n "$NCU" ] && kern gptoss-new $N/deploybench gpt-oss-20b 1500 900
    before 242 && (cd $N && OMP_NUM_THREADS=16 timeout 25 ./lab --quick --only gemv,moe > $OUT/lab.md 2> $OUT/lab.log; echo "== lab exit $?")
    grep -E "^\| (copy|gemv|moe A|moe B)" $OUT/lab.md | grep -E "graph|copy" | grep -v "v1\|v2" | head -60
    before 252 && timeout 10 $N/test_cuda_backend > $OUT/tcb.log 2>&1; echo "== test_cuda_backend exit $?: $(tail -1 $OUT/tcb.log) $(el)"
    echo "| decode gpt-oss-20b prompt 128 | TPOT ms | tok/s |"; echo "|---|---|---|"
    before 258 && LT=12 lat old $O/deploybench
    before 266 && LT=12 lat new $N/deploybench
    before 274 && LT=12 lat new-mid-splitK4 $N/deploybench DPB_CUDA_GEMV_MID=splitK4
    before 282 && LT=12 lat new-mid-splitK8 $N/deploybench DPB_CUDA_GEMV_MID=splitK8
fi
el
cd $OUT && tar czf /tmp/small_logs.tgz --exclude=logs.tgz . && find $OUT -mindepth 1 -delete && mv /tmp/small_logs.tgz $OUT/logs.tgz; ls -la $OUT
