#!/bin/bash
# Device call (issue 5): decode TPOT with linear_multi in one launch / one launch per matrix / off
# (DPB_CUDA_LINEAR_MULTI=""|split|off), Qwen3-32B and gpt-oss-20b, prompt 128, 64 tokens.
C=${C:-$PWD/.devcarry-s}
OUT=${OUT:-/tmp/out}
(cd "$C" && tar xzf bins.tgz) || exit 2
export LD_LIBRARY_PATH=$C/lib
date -u
for m in qwen3-32b gpt-oss-20b; do
    for mode in one split off; do
        v=$mode; [ $mode = one ] && v=
        DPB_CUDA_LINEAR_MULTI=$v timeout 100 $C/deploybench latency --backend cuda --model synth:$m --prompt-tokens 128 \
            --gen-tokens 64 --num-requests 2 --warmup 1 --out $OUT/l-$m-$mode > $OUT/l-$m-$mode.log 2>&1
        python3 -c "
import json,sys
d=json.loads(open('$OUT/l-$m-$mode/cells.jsonl').readline())
print('$m $mode: TPOT p50 %.3f ms (%.1f tok/s), TTFT p50 %.1f ms' % (d['tpot_ms_p50'], 1000/d['tpot_ms_p50'], d['ttft_ms_p50']))"
    done
done
rm -rf $OUT/l-*/
