#!/bin/bash
# Device call (issue 5), session 4's first: the GEMV fix 48a898c measured (binary of 4544cf9 against today's, one
# machine), tests/test_cuda_backend, decode and TTFT of the three models (backend_check --speed), and where the time
# goes: ncu kernel durations of gpt-oss-20b decode steps (graphs off) and of the 2048-token prefills, else the
# operation profile.  Carry .devcarry-s (bins.tgz, deploybench_old.gz, lib, shared/fixtures).
C=${C:-$PWD/.devcarry-s}
OUT=${OUT:-/tmp/out}
(cd "$C" && tar xzf bins.tgz && gunzip -kf deploybench_old.gz && chmod +x deploybench_old) || exit 2
export LD_LIBRARY_PATH=$C/lib
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
t0=$(date +%s)
el() { echo "(+$(( $(date +%s) - t0 )) s)"; }
timeout 60 $C/test_cuda_backend > $OUT/tcb.log 2>&1; echo "== test_cuda_backend exit $?: $(tail -1 $OUT/tcb.log) $(el)"
for b in deploybench_old deploybench; do
    for m in qwen3-32b gpt-oss-20b; do
        timeout 60 $C/$b latency --backend cuda --model synth:$m --prompt-tokens 128 --gen-tokens 64 --num-requests 2 \
            --warmup 1 --out $OUT/l-$b-$m > $OUT/l-$b-$m.log 2>&1
        python3 -c "
import json
d=json.loads(open('$OUT/l-$b-$m/cells.jsonl').readline())
print('$b $m: TPOT p50 %.3f ms (%.1f tok/s)' % (d['tpot_ms_p50'], 1000/d['tpot_ms_p50']))"
    done
done
rm -rf $OUT/l-*/; el
timeout 200 $C/backend_check --skip-ops --skip-fixtures --speed synth:gpt-oss-20b --speed synth:qwen3-32b \
    --speed synth:yi-34b --ctx 128,2048 > $OUT/speed.log 2>&1
echo "== speed exit $? $(el)"; grep -E "^speed.*(prompt (128|2048): TTFT|roofline)|^FAIL" $OUT/speed.log
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
echo "ncu: ${NCU:-absent}"
kern() { # name skip count args...
    local name=$1 skip=$2 cnt=$3; shift 3
    DPB_NO_GRAPHS=1 timeout 150 $NCU --clock-control none --metrics gpu__time_duration.sum --csv --kernel-name regex:"^(?!k_fill)" --launch-skip $skip \
        --launch-count $cnt "$@" > $OUT/ncu-$name.csv 2> $OUT/ncu-$name.err
    echo "== ncu $name exit $? $(el)"
    python3 dev/device/ncu_table.py $OUT/ncu-$name.csv 25
}
if [ -n "$NCU" ]; then
    # gpt-oss decode: prompt 128, 8 tokens: skip the prefill and first steps, then ~2 steps of kernels
    kern gptoss-decode 1500 900 $C/deploybench latency --backend cuda --model synth:gpt-oss-20b --prompt-tokens 128 \
        --gen-tokens 8 --num-requests 1 --warmup 0 --out $OUT/n1
    kern gptoss-prefill 0 700 $C/deploybench latency --backend cuda --model synth:gpt-oss-20b --prompt-tokens 2048 \
        --gen-tokens 2 --num-requests 1 --warmup 0 --out $OUT/n2
    kern qwen3-prefill 0 1400 $C/deploybench latency --backend cuda --model synth:qwen3-32b --prompt-tokens 2048 \
        --gen-tokens 2 --num-requests 1 --warmup 0 --out $OUT/n3
    kern qwen3-decode 1500 1200 $C/deploybench latency --backend cuda --model synth:qwen3-32b --prompt-tokens 128 \
        --gen-tokens 4 --num-requests 1 --warmup 0 --out $OUT/n4
    rm -rf $OUT/n?
fi
el
