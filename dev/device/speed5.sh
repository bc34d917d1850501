#!/bin/bash
# Device call (issues 5, 8): after tensor-core prefill attention, grouped MoE, attention_batch, linear_multi and
# swiglu_bf16: every op check and the fixtures, tests/test_cuda_backend, decode and TTFT of the three models
# (backend_check --speed), and batched in-process decode of gpt-oss-20b.  Carry .devcarry-s (bins.tgz, lib,
# shared/fixtures).
C=${C:-$PWD/.devcarry-s}
OUT=${OUT:-/tmp/out}
(cd "$C" && tar xzf bins.tgz) || exit 2
export LD_LIBRARY_PATH=$C/lib
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
t0=$(date +%s)
timeout 170 $C/backend_check --speed none --fixtures $C/shared/fixtures > $OUT/ops.log 2>&1
echo "== ops exit $? (+$(( $(date +%s) - t0 )) s)"; grep -E "^FAIL|checks, |^== PASS|^== FAIL" $OUT/ops.log | head -20
timeout 100 $C/test_cuda_backend > $OUT/tcb.log 2>&1; echo "== test_cuda_backend exit $?: $(tail -1 $OUT/tcb.log)"
timeout 200 $C/backend_check --skip-ops --skip-fixtures --speed synth:gpt-oss-20b --speed synth:qwen3-32b \
    --speed synth:yi-34b --ctx 128,2048 > $OUT/speed.log 2>&1
echo "== speed exit $? (+$(( $(date +%s) - t0 )) s)"; grep -E "^speed.*(prompt (128|2048): TTFT|roofline)|^FAIL" $OUT/speed.log
timeout 120 $C/deploybench latency --backend cuda --model synth:gpt-oss-20b --prompt-tokens 1024 --gen-tokens 32 \
    --batch 1,16,64,128,256 --warmup 1 --num-requests 1 --out $OUT/lat-batch > $OUT/lat-batch.log 2>&1
echo "== batched latency exit $? (+$(( $(date +%s) - t0 )) s)"
python3 - "$OUT/lat-batch/cells.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    print(f"batch {d['batch']:4d}: TTFT p50 {d['ttft_ms_p50']:8.1f} ms  TPOT p50 {d['tpot_ms_p50']:7.2f} ms  decode {d['decode_tok_s_aggregate']:8.1f} tok/s")
PY
cd $OUT && tar czf lat5.tgz lat-batch && rm -rf lat-batch
