#!/bin/bash
# Device call (issue 5, TTFT, helper pf), session 4, the second: the grouped-MoE lab at n = 256 / 2048, TTFT of the
# three models (backend_check --speed ... --ctx 2048), a few before/after TTFT variants (deploybench latency), then
# the op checks and the fixtures (two backend_check processes side by side: correctness only).  Carry .devcarry-pf
# (bins.tgz: deploybench, backend_check, lab, test_cuda_backend; lib; shared).  Results in $OUT/r.tgz; the summary is printed last.
C=${C:-$PWD/.devcarry-pf}
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
LAB_GRP_N=256,2048 OMP_NUM_THREADS=16 timeout 30 "$C/lab" --only moegrouped --reps 5 > "$R/lab.md" 2> "$R/lab.log"
echo "== lab exit $? $(el)"
timeout 110 "$C/backend_check" --skip-ops --skip-fixtures --speed synth:gpt-oss-20b --speed synth:qwen3-32b \
    --speed synth:yi-34b --ctx 2048 --new 16 > "$R/speed.log" 2>&1
echo "== speed exit $? $(el)"
lat() { # name model VAR=VALUE...
    local name=$1 m=$2; shift 2
    env "$@" timeout 30 "$C/deploybench" latency --backend cuda --model "synth:$m" --prompt-tokens 2048 --gen-tokens 2 \
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
lat oss gpt-oss-20b
lat oss-t64 gpt-oss-20b DPB_CUDA_MOE_TILE=64
lat qwen-ex qwen3-32b DPB_CUDA_GEMM=ex
} > "$R/ttft.txt" 2>&1
rm -rf "$R"/l-*/
echo "== latency $(el)"
left=$(( 285 - ($(date +%s) - t0) ))
timeout $left "$C/backend_check" --skip-fixtures --speed none > "$R/check-ops.log" 2>&1 &
p1=$!
timeout $left "$C/backend_check" --skip-ops --speed none > "$R/check-fx.log" 2>&1 &
p2=$!
timeout 100 "$C/test_cuda_backend" > "$R/tcb.log" 2>&1; echo "== test_cuda_backend exit $?: $(tail -1 "$R/tcb.log") $(el)"
wait $p1; r1=$?
wait $p2; r2=$?
echo "== checks: ops exit $r1, fixtures exit $r2 $(el)"
for f in check-ops check-fx; do grep -E '^== |^FAIL' "$R/$f.log" | tail -12; done
grep -E '^speed .*(prompt 2048|TTFT)|^FAIL|^== (PASS|FAIL)' "$R/speed.log"
cat "$R/ttft.txt"
grep -E '^\| moe n>8 \| n=2048' "$R/lab.md" | cut -d'|' -f4,5,9,10
