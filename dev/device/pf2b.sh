#!/bin/bash
# Device call of helper pf2 (issue 5, TTFT at 2,048 tokens), session 4: TTFT and decode of the three models
# (backend_check --speed ... --ctx 2048 --new 16), Qwen3-32B's TTFT with DPB_CUDA_PF2 words (the passes of this
# branch off: before/after in one call), engine logits of three 1B synth models with and without those passes
# (bitwise where expected), ncu durations of the kernels changed, then the op checks, the fixtures and test_cuda_backend.  Carry .devcarry-pf2
# (bins.tgz: deploybench, backend_check, test_cuda_backend; lib; shared; ids320.safetensors).  Results in
# $OUT/r.tgz; the summary is printed last.  Usage: bash dev/device/pf2b.sh [VARIANTS...] (DPB_CUDA_PF2 values
# for the Qwen3 latency runs besides the defaults; default "noqk,nocopy,nomlp"; Yi-34B: defaults and that).
C=${C:-$PWD/.devcarry-pf2}
OUT=${OUT:-/tmp/out}
R=$OUT/r
mkdir -p "$R"
(cd "$C" && tar xzf bins.tgz) || exit 2
export LD_LIBRARY_PATH=$C/lib
export DPB_FIXTURES=$C/shared/fixtures
t0=$(date +%s)
el() { echo "(+$(( $(date +%s) - t0 )) s)"; }
fin() { tar czf "$OUT/r.tgz" -C "$OUT" r; }
trap fin EXIT
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
timeout 140 "$C/backend_check" --skip-ops --skip-fixtures --speed synth:qwen3-32b --speed synth:yi-34b \
    --speed synth:gpt-oss-20b --ctx 2048 --new 16 > "$R/speed.log" 2>&1
echo "== speed exit $? $(el)"
lat() { # name model VAR=VALUE...
    local name=$1 m=$2; shift 2
    env "$@" timeout 35 "$C/deploybench" latency --backend cuda --model "synth:$m" --prompt-tokens 2048 --gen-tokens 2 \
        --num-requests 3 --warmup 1 --out "$R/l-$name" > "$R/l-$name.log" 2>&1
    local rc=$?
    python3 - "$R/l-$name/cells.jsonl" "$name" "$rc" "$*" <<'PY'
import json, sys
try:
    d = json.loads(open(sys.argv[1]).readline())
    print(f"TTFT {sys.argv[2]} ({sys.argv[4] or 'defaults'}): p50 {d['ttft_ms_p50']:.1f} ms, min {d['ttft_ms_min']:.1f} ms")
except Exception as e:
    print(f"TTFT {sys.argv[2]}: unavailable (exit {sys.argv[3]}: {e})")
PY
}
{
i=0
for v in "" "${@:-noqk,nocopy,nomlp}"; do lat "q$i" qwen3-32b DPB_CUDA_PF2=$v; i=$((i + 1)); done
for v in "" noqk,nocopy,nomlp; do lat "y$i" yi-34b DPB_CUDA_PF2=$v; i=$((i + 1)); done
} > "$R/ttft.txt" 2>&1
# ncu: this branch's kernels (and the conversions they replace) in a Qwen3-32B 2,048-token prefill, with and
# without the passes (first 10 layers' launches of these kernels)
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
kern() { # name VAR=VALUE
    local name=$1; shift
    env DPB_NO_GRAPHS=1 "$@" timeout 40 $NCU --clock-control none --metrics gpu__time_duration.sum --csv \
        --kernel-name regex:"k_qk_prep|k_norm4|k_round|k_swiglu|k_split" --launch-count 70 "$C/deploybench" latency \
        --backend cuda --model synth:qwen3-32b --prompt-tokens 2048 --gen-tokens 2 --num-requests 1 --warmup 0 \
        --out "$R/n-$name" > "$R/ncu-$name.csv" 2> "$R/ncu-$name.err"
    echo "== ncu $name ($*) exit $?"
    python3 dev/device/ncu_table.py "$R/ncu-$name.csv" 22
}
[ -n "$NCU" ] && { kern new; kern off DPB_CUDA_PF2=noqk,nocopy,nomlp; } > "$R/ncu.txt" 2>&1
rm -rf "$R"/n-*/
rm -rf "$R"/l-*/
echo "== latency $(el)"
left=$(( 292 - ($(date +%s) - t0) ))
timeout $left "$C/backend_check" --skip-fixtures --speed none > "$R/check-ops.log" 2>&1 &
p1=$!
timeout $left "$C/backend_check" --skip-ops --speed none > "$R/check-fx.log" 2>&1 &
p2=$!
timeout 100 "$C/test_cuda_backend" > "$R/tcb.log" 2>&1; echo "== test_cuda_backend exit $?: $(tail -1 "$R/tcb.log") $(el)"
# engine logits, 320 tokens (n > 4: every prefill path), with and without this branch's passes
for m in qwen3-1b llama-1b gpt-oss-1b; do
    for v in "" noqk,nocopy,nomlp; do
        DPB_CUDA_PF2=$v timeout 60 "$C/deploybench" logits --backend cuda --dtype bf16 --model "synth:$m" \
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
    try:
        d, o = (load(f"{R}/lg-{m}-{v}.st") for v in ['default', 'noqk,nocopy,nomlp'])
    except Exception as ex:
        print(f"logits {m}: unavailable ({ex})"); continue
    def cmp(a, b):
        return f"bitwise {'same' if a.tobytes() == b.tobytes() else 'DIFFERENT'}, max|diff|/max|ref| {np.abs(a - b).max() / np.abs(b).max():.3g}, argmax agree {(a.argmax(1) == b.argmax(1)).mean():.3f}"
    print(f"logits {m} [{d.shape[0]} x {d.shape[1]}]: default vs DPB_CUDA_PF2=noqk,nocopy,nomlp: {cmp(d, o)}")
PY
rm -f "$R"/lg-*.st
echo "== logits $(el)"
wait $p1; r1=$?
wait $p2; r2=$?
echo "== checks: ops exit $r1, fixtures exit $r2 $(el)"
for f in check-ops check-fx; do grep -E '^== |^FAIL' "$R/$f.log" | tail -12; echo "$f: $(grep -c '^ok' "$R/$f.log") ok lines"; done
grep -E 'qk_prep|add_rmsnorm|swiglu|round' "$R/check-ops.log" | grep -c '^ok' | sed 's/^/ok lines of qk_prep, add_rmsnorm, swiglu, round: /'
grep -E '^speed .*(prompt 2048|TTFT)|^FAIL|^== (PASS|FAIL)' "$R/speed.log"
cat "$R/ncu.txt" "$R/ttft.txt" "$R/logits.txt"
