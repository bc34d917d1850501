#!/bin/bash
# Ran (call 3 of helper pfd, docs/CUDA.md "Session 5: dense prefill") with the binaries of commit 0fe0713; the DPB_CUDA_PFD
# words other than noattnround exist only in such commits.  ids320.safetensors: input_ids, I64 [320], random ids in
# [1, 30000) (any such file does).
# Device call of helper pfd (issue 5, dense prefill TTFT), session 5.  Carry .devcarry-pfd (bins.txz, xz -9: new/ =
# branch pfd's deploybench, backend_check, attn_lab, pf_bench, test_cuda_backend; main/ = main's deploybench,
# backend_check; lib; shared; ids320.safetensors).  Results in $OUT/r.tgz; the summary is printed last.
# Usage: bash .devcarry-pfd/pfd3.sh [PHASES] (default "ncu ttft checks logits"; also speed, lab, quant)
# Third call: ncu durations of the prefill kernels changed (Qwen3-32B, three settings), the TTFT A/B (latency
# p50 of 10 requests), then the checks.
C=${C:-$PWD/.devcarry-pfd}
OUT=${OUT:-/tmp/out}
R=$OUT/r
mkdir -p "$R"
(cd "$C" && { tar xJf bins.txz 2>/dev/null || python3 -c "import tarfile; tarfile.open('bins.txz').extractall()"; }) || exit 2
export LD_LIBRARY_PATH=$C/lib
export DPB_FIXTURES=$C/shared/fixtures
N=$C/new
M=$C/main
PH=${1:-ncu ttft checks logits}
t0=$(date +%s)
el() { echo "(+$(( $(date +%s) - t0 )) s)"; }
fin() { tar czf "$OUT/r.tgz" -C "$OUT" r; }
trap fin EXIT
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
has() { case " $PH " in *" $1 "*) return 0 ;; esac; return 1; }
if has lab; then
    timeout 60 "$N/attn_lab" --quick --reps 10 > "$R/attn_lab.md" 2> "$R/attn_lab.log"
    echo "== attn_lab exit $? $(el)"
fi
if has quant; then
    timeout 60 "$N/pf_bench" 2048 quant > "$R/quant.md" 2>&1
    echo "== pf_bench quant exit $? $(el)"
fi
if has ncu; then
    NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
    kern() { # name model VAR=VALUE
        local name=$1 m=$2; shift 2
        env DPB_NO_GRAPHS=1 "$@" timeout 45 $NCU --clock-control none --metrics gpu__time_duration.sum --csv \
            --kernel-name regex:"k_fa_prefill|k_qk_prep|k_round|k_norm4|k_kv_rows" --launch-count 60 "$N/deploybench" latency \
            --backend cuda --model synth:$m --prompt-tokens 2048 --gen-tokens 2 --num-requests 1 --warmup 0 \
            --out "$R/n-$name" > "$R/ncu-$name.csv" 2> "$R/ncu-$name.err"
        echo "== ncu $name ($*) exit $?"
        python3 dev/device/ncu_table.py "$R/ncu-$name.csv" 12
    }
    [ -n "$NCU" ] && {
        kern q-new qwen3-32b
        kern q-nofuse qwen3-32b DPB_CUDA_PFD=noqkattn
        kern q-off qwen3-32b DPB_CUDA_PFD=noattnround,noqkpf,noqkattn
    } > "$R/ncu.txt" 2>&1
    rm -rf "$R"/n-*/
    echo "== ncu $(el)"
fi
lat() { # name binary model VAR=VALUE...
    local name=$1 bin=$2 m=$3; shift 3
    env "$@" timeout 40 "$bin/deploybench" latency --backend cuda --model "synth:$m" --prompt-tokens 2048 --gen-tokens 2 \
        --num-requests 10 --warmup 1 --out "$R/l-$name" > "$R/l-$name.log" 2>&1
    local rc=$?
    python3 - "$R/l-$name/cells.jsonl" "$name" "$rc" "$*" <<'PY'
import json, sys
try:
    d = json.loads(open(sys.argv[1]).readline())
    print(f"| {sys.argv[2]} | {sys.argv[4] or 'defaults'} | {d['ttft_ms_p50']:.1f} | {d['ttft_ms_min']:.1f} |")
except Exception as e:
    print(f"| {sys.argv[2]} | {sys.argv[4]} | unavailable (exit {sys.argv[3]}: {e}) | |")
PY
}
if has ttft; then
    {
    echo "| run | env | TTFT p50 ms | min ms |"; echo "|---|---|---:|---:|"
    for m in qwen3-32b yi-34b gpt-oss-20b; do
        lat "$m-main" "$M" $m
        lat "$m-new" "$N" $m
        lat "$m-nofuse" "$N" $m DPB_CUDA_PFD=noqkattn
        lat "$m-off" "$N" $m DPB_CUDA_PFD=noattnround,noqkpf,noqkattn
    done
    } > "$R/ttft.md" 2>&1
    rm -rf "$R"/l-*/
    echo "== latency $(el)"
fi
if has speed; then
    timeout 50 "$N/backend_check" --skip-ops --skip-fixtures --speed synth:qwen3-32b --speed synth:yi-34b --ctx 2048 --new 8 \
        > "$R/speed-new.log" 2>&1
    echo "== speed new exit $? $(el)"
fi
# the checks after the timings, op checks and fixtures in the background
if has checks; then
    left=$(( 232 - ($(date +%s) - t0) ))
    [ $left -lt 20 ] && left=20
    timeout $left "$N/backend_check" --skip-fixtures --speed none > "$R/check-ops.log" 2>&1 &
    p1=$!
    timeout $left "$N/backend_check" --skip-ops --speed none > "$R/check-fx.log" 2>&1 &
    p2=$!
fi
if has logits; then
    for m in qwen3-1b llama-1b gpt-oss-1b; do
        for v in "" noqkattn noattnround,noqkpf,noqkattn; do
            DPB_CUDA_PFD=$v timeout 60 "$N/deploybench" logits --backend cuda --dtype bf16 --model "synth:$m" \
                --input "$C/ids320.safetensors" --out "$R/lg-$m-${v:-default}.st" > "$R/lg-$m-${v:-default}.log" 2>&1 ||
                echo "logits $m ${v:-default}: exit $?"
        done
    done
    python3 - "$R" > "$R/logits.txt" 2>&1 <<'PY'
import json, struct, sys, numpy as np
R = sys.argv[1]
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); e = h['logits']
    a, z = e['data_offsets']; return np.frombuffer(b[8 + n + a:8 + n + z], dtype=np.float32).reshape(e['shape'])
for m in ['qwen3-1b', 'llama-1b', 'gpt-oss-1b']:
    for v in ['noqkattn', 'noattnround,noqkpf,noqkattn']:
        try:
            d, o = load(f"{R}/lg-{m}-default.st"), load(f"{R}/lg-{m}-{v}.st")
        except Exception as ex:
            print(f"logits {m} {v}: unavailable ({ex})"); continue
        print(f"logits {m} [{d.shape[0]} x {d.shape[1]}]: default vs DPB_CUDA_PFD={v}: bitwise {'same' if d.tobytes() == o.tobytes() else 'DIFFERENT'}, max|diff|/max|ref| {np.abs(d - o).max() / np.abs(o).max():.3g}")
PY
    rm -f "$R"/lg-*.st
    echo "== logits $(el)"
fi
if has checks; then
    timeout 100 "$N/test_cuda_backend" > "$R/tcb.log" 2>&1; echo "== test_cuda_backend exit $?: $(tail -1 "$R/tcb.log") $(el)"
    wait $p1; r1=$?
    wait $p2; r2=$?
    echo "== checks: ops exit $r1, fixtures exit $r2 $(el)"
    for f in check-ops check-fx; do grep -E '^== |^FAIL' "$R/$f.log" | tail -8; echo "$f: $(grep -c '^ok' "$R/$f.log") ok lines"; done
    grep -E '^(ok|FAIL).*round_out \+ linear' "$R/check-ops.log" | cut -c1-4 | sort | uniq -c | sed 's/^/round_out + linear: /'
    grep -E '^(ok|FAIL).*qk_prep_attention' "$R/check-ops.log" | cut -c1-4 | sort | uniq -c | sed 's/^/qk_prep_attention: /'
    grep -E '^FAIL|^== ' "$R/check-ops.log" | head -20
    grep -E 'qk_prep|round_out' "$R/check-ops.log" | grep -c '^ok' | sed 's/^/ok lines of qk_prep, round_out: /'
fi
grep -E '^speed .*(prompt 2048|TTFT)|^FAIL' "$R/speed-new.log" 2>/dev/null
cat "$R/quant.md" 2>/dev/null
grep -E '^\| (shape|gpt-oss|qwen3|yi|check)' "$R/attn_lab.md" 2>/dev/null
cat "$R/logits.txt" 2>/dev/null
cat "$R/ncu.txt" 2>/dev/null
cat "$R/ttft.md" 2>/dev/null
el
