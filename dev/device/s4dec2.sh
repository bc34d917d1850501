#!/bin/bash
# Device call of helper "dec2" (issue 5, session 4): the fused router op and the attention's own bf16 rounding.
# Carry .devcarry-dec2 (bins.tgz: new/ = this branch's deploybench, backend_check, test_cuda_backend; old/ =
# deploybench and backend_check of main 0bd3b7f (= 89c2afb's code) built the same way; lib/, shared/fixtures).
# One call: op checks, fixtures, test_cuda_backend, backend_check --speed old and new, TPOT old and new, and an
# ncu kernel list of a gpt-oss decode step (new) when time is left.  Tables last.  OPS_T: seconds for the op checks
# (default 90: the first pass only; the whole program with its passes needs more than 150).  DPB_CUDA_UNFUSED=qkkv / all
# (the TPOT rows new-unfused-*): the same binary with qk_prep_kv / also the fused router off.
C=${C:-$PWD/.devcarry-dec2}
OUT=${OUT:-/tmp/out}
(cd "$C" && tar xzf bins.tgz) || exit 2
export LD_LIBRARY_PATH=$C/lib
N=$C/new; O=$C/old
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
t0=$(date +%s)
el() { echo "(+$(( $(date +%s) - t0 )) s)"; }
before() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
timeout ${OPS_T:-90} $N/backend_check --skip-fixtures --speed none > $OUT/ops.log 2>&1
echo "== ops exit $? $(el)"; grep -E "^FAIL|checks|failed" $OUT/ops.log | head -30
grep -E "qk_prep_kv|router fused n=1 E=32" $OUT/ops.log | head -24; echo "round_out / router fused / qk_prep_kv lines: $(grep -cE 'router fused|round_out|qk_prep_kv' $OUT/ops.log), FAIL among them: $(grep -E 'router fused|round_out|qk_prep_kv' $OUT/ops.log | grep -c FAIL)"
timeout 55 $N/backend_check --skip-ops --skip-fixtures --speed synth:gpt-oss-20b --speed synth:qwen3-32b --ctx 128,2048 > $OUT/speed-new.log 2>&1
echo "== speed new exit $? $(el)"
before 195 && timeout 50 $O/backend_check --skip-ops --skip-fixtures --speed synth:gpt-oss-20b --speed synth:qwen3-32b --ctx 128,2048 > $OUT/speed-old.log 2>&1
echo "== speed old exit $? $(el)"
before 225 && timeout 35 $N/backend_check --skip-ops --speed none --fixtures $C/shared/fixtures > $OUT/fix.log 2>&1
echo "== fixtures exit $? $(el)"; grep -E "^FAIL|checks|failed" $OUT/fix.log | head -10
before 250 && timeout 12 $N/test_cuda_backend > $OUT/tcb.log 2>&1; echo "== test_cuda_backend exit $?: $(tail -1 $OUT/tcb.log) $(el)"
lat() { # label binary env...
    local lab=$1 bin=$2; shift 2
    env "$@" timeout 10 $bin latency --backend cuda --model synth:gpt-oss-20b --prompt-tokens 128 --gen-tokens 48 \
        --num-requests 1 --warmup 1 --out $OUT/l-$lab > $OUT/l-$lab.log 2>&1
    python3 -c "
import json
d=json.loads(open('$OUT/l-$lab/cells.jsonl').readline())
print('| $lab | %.3f | %.1f |' % (d['tpot_ms_p50'], 1000/d['tpot_ms_p50']))" 2>/dev/null || echo "| $lab | failed: $(tail -1 $OUT/l-$lab.log) | |"
    rm -rf $OUT/l-$lab
}
echo "| decode gpt-oss-20b prompt 128 (deploybench latency) | TPOT ms | tok/s |"; echo "|---|---|---|"
before 262 && lat old $O/deploybench
before 272 && lat new $N/deploybench
before 282 && lat new-unfused-qkkv $N/deploybench DPB_CUDA_UNFUSED=qkkv
before 292 && lat new-unfused-all $N/deploybench DPB_CUDA_UNFUSED=all
if before 265 && [ -n "$NCU" ]; then
    DPB_NO_GRAPHS=1 timeout 25 $NCU --clock-control none --metrics gpu__time_duration.sum --csv --kernel-name regex:"^(?!k_fill)" \
        --launch-skip 1500 --launch-count 300 $N/deploybench latency --backend cuda --model synth:gpt-oss-20b --prompt-tokens 128 \
        --gen-tokens 8 --num-requests 1 --warmup 0 --out $OUT/n-new > $OUT/ncu-new.csv 2> $OUT/ncu-new.err
    echo "== ncu exit $? $(el)"; rm -rf $OUT/n-new
    python3 dev/device/ncu_table.py $OUT/ncu-new.csv 16
fi
echo "== speed (backend_check --speed), old then new"
grep -E "^speed.*(prompt (128|2048): TTFT|roofline)|^FAIL" $OUT/speed-old.log
grep -E "^speed.*(prompt (128|2048): TTFT|roofline)|^FAIL" $OUT/speed-new.log
el
cd $OUT && tar czf /tmp/dec2_logs.tgz . && find $OUT -mindepth 1 -delete && mv /tmp/dec2_logs.tgz $OUT/logs.tgz; ls -la $OUT
