#!/bin/bash
# Device call (issue 5), session 5's final measurements.  Carry .devcarry-s (bins.tgz or bins.txz: deploybench,
# backend_check, test_cuda_backend; lib; shared).  STEPS (default speed,hf): any of
#   speed  backend_check --speed for gpt-oss-20b, Qwen3-32B, Yi-34B at prompts 128/512/1024/2048 (decode 63 tokens,
#          TTFT, roofline from the copy bandwidth measured in the same process); SPEED_REPS runs of it (default 1)
#   hf     transformers the reference study's way (dev/device/hf_timing.py: bf16, eager, greedy generate), same
#          models and prompt lengths; gpt-oss-20b 64 new tokens, the dense models 32 (their eager decode is slow)
#   ops    every backend_check op check and the four fixtures, tests/test_cuda_backend
#   fw     dev/device/fullwidth.sh (FW_ARGS) against transformers
# Results: $OUT/s5b.tgz and the tables printed last.
C=${C:-$PWD/.devcarry-s}
OUT=${OUT:-/tmp/out}
STEPS=${STEPS:-speed,hf}
(cd "$C" && if [ -f bins.txz ]; then tar xJf bins.txz; else tar xzf bins.tgz; fi) || exit 2
R=$OUT/s5b; mkdir -p $R
t0=$(date +%s)
el() { echo "(+$(( $(date +%s) - t0 )) s)"; }
has() { case ",$STEPS," in *",$1,"*) return 0;; esac; return 1; }
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
if has speed; then
    # SPEED_REPS (default 1): that many runs of the same command, one after the other, all in speed.log
    for rep in $(seq 1 ${SPEED_REPS:-1}); do
        LD_LIBRARY_PATH=$C/lib timeout 200 $C/backend_check --skip-ops --skip-fixtures --speed synth:gpt-oss-20b \
            --speed synth:qwen3-32b --speed synth:yi-34b --ctx ${CTX:-128,512,1024,2048} >> $R/speed.log 2>&1
        echo "== speed run $rep exit $? $(el)"
    done
fi
if has ops; then
    LD_LIBRARY_PATH=$C/lib timeout ${OPS_T:-250} $C/backend_check --speed none --fixtures $C/shared/fixtures > $R/ops.log 2>&1
    echo "== ops exit $? $(el)"; grep -E "^FAIL|checks, |^== PASS|^== FAIL" $R/ops.log | head -20
    LD_LIBRARY_PATH=$C/lib timeout 100 $C/test_cuda_backend > $R/tcb.log 2>&1
    echo "== test_cuda_backend exit $?: $(tail -1 $R/tcb.log) $(el)"
fi
if has hf; then
    export DPB_REAL_BIN=$C/deploybench
    OUT=$R timeout 330 bash dev/device/common.sh py dev/device/hf_timing.py --models gpt-oss-20b --gen 64 --deadline ${HF_GPTOSS_S:-200} \
        --json $R/hf_gptoss.json > $R/hf1.log 2>&1
    echo "== hf gpt-oss exit $? $(el)"
    OUT=$R timeout 330 bash dev/device/common.sh py dev/device/hf_timing.py --models qwen3-32b,yi-34b --gen 32 \
        --deadline ${HF_DENSE_S:-200} --json $R/hf_dense.json > $R/hf2.log 2>&1
    echo "== hf dense exit $? $(el)"
fi
if has fw; then
    export DPB_REAL_BIN=$C/deploybench
    OUT=$R timeout 300 bash dev/device/fullwidth.sh ${FW_ARGS:-} > $R/fw.log 2>&1
    echo "== fullwidth exit $? $(el)"
fi
grep -E "^speed.*(prompt [0-9]+: TTFT|roofline)|^FAIL" $R/speed.log 2>/dev/null | cut -c1-260
grep -hE '^\|' $R/hf1.log $R/hf2.log 2>/dev/null
grep -E '^\|' $R/fw.log 2>/dev/null
cd $OUT && tar czf s5b.tgz s5b && rm -rf s5b; el
