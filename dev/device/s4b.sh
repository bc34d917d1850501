#!/bin/bash
# Device call (issues 5, 6), session 4's last: every op check and the fixtures, tests/test_cuda_backend, decode and
# TTFT of the three models (backend_check --speed), then the ablations not yet run on the H200: kv (bf16 / fp8 /
# f32), experts_format and effort for gpt-oss-20b at the study's ablation cell (512 / 64), kv for Qwen3-32B at a
# 2048-token prompt, and Qwen3-32B memory at 32k with the fp8 cache.  Carry .devcarry-s (bins.tgz, lib, shared).
# STEPS=ops,speed,ablate,memory (default all); results in $OUT/s4b.tgz.
C=${C:-$PWD/.devcarry-s}
OUT=${OUT:-/tmp/out}
STEPS=${STEPS:-ops,speed,ablate,memory}
(cd "$C" && tar xzf bins.tgz) || exit 2
export LD_LIBRARY_PATH=$C/lib
B=$C/deploybench
R=$OUT/s4b; mkdir -p $R
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
t0=$(date +%s)
el() { echo "(+$(( $(date +%s) - t0 )) s)"; }
has() { case ",$STEPS," in *",$1,"*) return 0;; esac; return 1; }
if has ops; then
    timeout 250 $C/backend_check --speed none --fixtures $C/shared/fixtures > $R/ops.log 2>&1
    echo "== ops exit $? $(el)"; grep -E "^FAIL|checks, |^== PASS|^== FAIL" $R/ops.log | head -20
    timeout 100 $C/test_cuda_backend > $R/tcb.log 2>&1; echo "== test_cuda_backend exit $?: $(tail -1 $R/tcb.log) $(el)"
fi
if has speed; then
    timeout 200 $C/backend_check --skip-ops --skip-fixtures --speed synth:gpt-oss-20b --speed synth:qwen3-32b \
        --speed synth:yi-34b --ctx 128,2048 > $R/speed.log 2>&1
    echo "== speed exit $? $(el)"; grep -E "^speed.*(prompt (128|2048): TTFT|roofline)|^FAIL" $R/speed.log
fi
abl() { # name args...
    local n=$1; shift
    timeout -s INT 150 $B ablate --backend cuda --num-requests 5 --warmup 1 --out $R/abl-$n "$@" > $R/abl-$n.log 2>&1
    echo "== ablate $n exit $? $(el)"; grep -E "^(kv|experts_format|effort) " $R/abl-$n.log
}
if has ablate; then
    abl gptoss --model synth:gpt-oss-20b --tests kv,experts_format --prompt-tokens 512 --gen-tokens 64
    abl gptoss-effort --model synth:gpt-oss-20b --tests effort --prompt-tokens 512 --gen-tokens 64 \
        --tokenizer $C/shared/data/tokenizers/gpt-oss-harmony/tokenizer.json.gz
    abl qwen3 --model synth:qwen3-32b --tests kv --prompt-tokens 2048 --gen-tokens 64
    abl gptoss-8k --model synth:gpt-oss-20b --tests kv --prompt-tokens 8192 --gen-tokens 64
fi
if has memory; then
    timeout -s INT 120 $B memory --model synth:qwen3-32b --backend cuda --contexts 32768 --gen-tokens 64 --kv fp8 \
        --out $R/mem-qwen3-fp8 > $R/mem.log 2>&1
    echo "== memory exit $? $(el)"; tail -3 $R/mem.log
fi
python3 - "$R" <<'PY'
import json, glob, sys, os
print("| run | test | value | TTFT p50 ms | TPOT p50 ms | decode tok/s | KV bytes | leading tokens equal |")
print("|---|---|---|---|---|---|---|---|")
for f in sorted(glob.glob(sys.argv[1] + '/abl-*/ablation.jsonl')):
    for l in open(f):
        try: d = json.loads(l)
        except Exception: continue
        if 'ttft_ms_p50' not in d: print(f"| {f.split('/')[-2]} | {d.get('test')} | {d.get('value')} | - | - | - | - | - |"); continue
        lt = f"{d['leading_tokens_equal_to_first_value']}/{d['tokens_compared']}" if 'tokens_compared' in d else '-'
        print(f"| {f.split('/')[-2]} | {d['test']} | {d['value']} | {d['ttft_ms_p50']:.2f} | {d['tpot_ms_p50']:.3f} | {1000/d['tpot_ms_p50']:.1f} | {d.get('kv_bytes_allocated',0)/2**20:.1f} MiB | {lt} |")
PY
cd $OUT && tar czf s4b.tgz s4b && rm -rf s4b; el
