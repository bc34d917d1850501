#!/bin/bash
# Device call (issue 5): operation checks + decode/TTFT speed of the three models (backend_check), after
# attention_batch and linear_multi.  Carry .devcarry-s (bins.tgz, lib, shared/fixtures).
C=${C:-$PWD/.devcarry-s}
OUT=${OUT:-/tmp/out}
(cd "$C" && tar xzf bins.tgz) || exit 2
export LD_LIBRARY_PATH=$C/lib
date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
t0=$(date +%s)
timeout 150 $C/backend_check --speed none --fixtures $C/shared/fixtures > $OUT/ops.log 2>&1
echo "== ops exit $? (+$(( $(date +%s) - t0 )) s)"; grep -E "^FAIL|checks, |linear_multi|fixture" $OUT/ops.log | head -20
timeout 150 $C/test_cuda_backend > $OUT/tcb.log 2>&1; echo "== test_cuda_backend exit $?"; tail -1 $OUT/tcb.log
timeout 280 $C/backend_check --skip-ops --skip-fixtures --speed synth:gpt-oss-20b --speed synth:qwen3-32b \
    --speed synth:yi-34b --ctx 128,2048 > $OUT/speed.log 2>&1
echo "== speed exit $? (+$(( $(date +%s) - t0 )) s)"; grep -E "^speed|^FAIL|copy" $OUT/speed.log
