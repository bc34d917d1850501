#!/bin/bash
# Device call (issue 5): dense decode, binary of commit 4544cf9 (session 2's 51.1 tok/s) against today's, in one
# call on one machine; the GPU's power and clock state around it.  Carry .devcarry-s (bins.tgz, deploybench_old.gz).
C=${C:-$PWD/.devcarry-s}
OUT=${OUT:-/tmp/out}
(cd "$C" && tar xzf bins.tgz && gunzip -kf deploybench_old.gz && chmod +x deploybench_old) || exit 2
export LD_LIBRARY_PATH=$C/lib
timeout 60 $C/test_cuda_backend > $OUT/tcb.log 2>&1; echo "test_cuda_backend exit $?: $(tail -1 $OUT/tcb.log)"; grep -E "FAIL|linear_multi" $OUT/tcb.log | head -12
nvidia-smi --query-gpu=name,power.limit,power.max_limit,clocks.max.sm,clocks.max.mem,clocks.sm,clocks.mem,temperature.gpu --format=csv
nvidia-smi dmon -s pc -d 1 > $OUT/dmon.log 2>&1 &
DM=$!
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
kill $DM; sort -k3 -n $OUT/dmon.log | tail -3; rm -rf $OUT/l-*/
