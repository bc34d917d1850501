#!/bin/bash
# Device call (issue 5): single-sequence decode through attention_batch (DPB_ATTN_BATCH_MIN=1, the default)
# or the per-sequence attention (=2), gpt-oss-20b and Qwen3-32B at prompts 128 and 2048; test_cuda_backend.
C=${C:-$PWD/.devcarry-s}
OUT=${OUT:-/tmp/out}
(cd "$C" && tar xzf bins.tgz) || exit 2
export LD_LIBRARY_PATH=$C/lib
date -u
timeout 120 $C/backend_check --speed none --skip-fixtures > $OUT/ops.log 2>&1
echo "backend_check exit $?: $(grep -E '^FAIL|checks, ' $OUT/ops.log | head -8 | tr '\n' ' ')"
timeout 100 $C/test_cuda_backend > $OUT/tcb.log 2>&1; echo "test_cuda_backend exit $?: $(tail -1 $OUT/tcb.log)"
for m in qwen3-32b gpt-oss-20b; do
    for mn in 1 2; do
        DPB_ATTN_BATCH_MIN=$mn timeout 100 $C/deploybench latency --backend cuda --model synth:$m --prompt-tokens 128,2048 \
            --gen-tokens 64 --num-requests 2 --warmup 1 --out $OUT/l-$m-$mn > $OUT/l-$m-$mn.log 2>&1
        python3 -c "
import json
for l in open('$OUT/l-$m-$mn/cells.jsonl'):
    d=json.loads(l); print('$m min=$mn prompt %d: TPOT p50 %.3f ms (%.1f tok/s), TTFT p50 %.1f ms' % (d['prompt_tokens'], d['tpot_ms_p50'], 1000/d['tpot_ms_p50'], d['ttft_ms_p50']))"
    done
done
rm -rf $OUT/l-*/
