#!/bin/bash
# Device call (issues 5, 8): attention_batch and the serving path.  Carry .devcarry-s holding bins.tgz
# (deploybench, backend_check, tests/test_cuda_backend built here), lib/ and shared/fixtures.
#   1. backend_check: every op against the reference (attention_batch included) + the fixtures
#   2. tests/test_cuda_backend (engine on the device vs the cpu engine, 2 sequences per decode step)
#   3. in-process batched decode, gpt-oss-20b, prompt 1024, batch 1/16/64/128: attention_batch on and off
C=${C:-$PWD/.devcarry-s}
OUT=${OUT:-/tmp/out}
(cd "$C" && tar xzf bins.tgz) || exit 2
export LD_LIBRARY_PATH=$C/lib
export DPB_SHARED=$C/shared DPB_FIXTURES=$C/shared/fixtures
date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
t0=$(date +%s)
timeout 200 $C/backend_check --speed none --fixtures $C/shared/fixtures > $OUT/backend_check.log 2>&1
echo "== backend_check exit $? (+$(( $(date +%s) - t0 )) s)"; grep -E "^FAIL|checks|attention_batch|fixture" $OUT/backend_check.log | head -30
timeout 200 $C/test_cuda_backend > $OUT/test_cuda_backend.log 2>&1
echo "== test_cuda_backend exit $? (+$(( $(date +%s) - t0 )) s)"; tail -6 $OUT/test_cuda_backend.log
for mode in on off; do
    if [ $mode = off ]; then export DPB_NO_ATTN_BATCH=1; fi
    timeout 200 $C/deploybench latency --backend cuda --model synth:gpt-oss-20b --prompt-tokens 1024 --gen-tokens 32 \
        --batch ${BATCHES:-1,16,64,128} --warmup 1 --num-requests 1 --out $OUT/lat-$mode > $OUT/lat-$mode.log 2>&1
    echo "== latency attention_batch $mode exit $? (+$(( $(date +%s) - t0 )) s)"
    python3 - "$OUT/lat-$mode/cells.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    print(f"batch {d['batch']:4d}: TTFT p50 {d['ttft_ms_p50']:8.1f} ms  TPOT p50 {d['tpot_ms_p50']:7.2f} ms  decode {d['decode_tok_s_aggregate']:8.1f} tok/s aggregate")
PY
done
unset DPB_NO_ATTN_BATCH
cd $OUT && tar czf lat3.tgz lat-on lat-off && rm -rf lat-on lat-off; ls $OUT
