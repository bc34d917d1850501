#!/bin/bash
# Device call (issue 5, TTFT, helper pf), session 4: op checks + fixtures, prefill TTFT variants, cuBLAS/cuBLASLt
# GEMM bench of the prefill shapes (dev/cuda/pf_bench.cu), the grouped-MoE lab at n = 256 / 2048, and ncu kernel
# durations of the gpt-oss-20b and Qwen3-32B 2048-token prefills.  Carry .devcarry-pf (bins.tgz: deploybench,
# backend_check, lab, pf_bench, stripped; lib; shared).  Everything lands in $OUT/r (tarred to $OUT/r.tgz).
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
timeout ${T_CHECK:-110} "$C/backend_check" --speed none > "$R/check.log" 2>&1
echo "== check exit $? $(el): $(grep -c '^FAIL' "$R/check.log") FAIL lines; $(tail -1 "$R/check.log")"
grep '^FAIL' "$R/check.log" | head -20
lat() { # name model VAR=VALUE...
    local name=$1 m=$2; shift 2
    env "$@" timeout 40 "$C/deploybench" latency --backend cuda --model "synth:$m" --prompt-tokens 2048 --gen-tokens 2 \
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
lat oss-t64w gpt-oss-20b DPB_CUDA_MOE_TILE=64w
lat oss-t128 gpt-oss-20b DPB_CUDA_MOE_TILE=128
lat oss-t128w gpt-oss-20b DPB_CUDA_MOE_TILE=128w
lat oss-ex gpt-oss-20b DPB_CUDA_GEMM=ex
lat qwen qwen3-32b
lat qwen-ex qwen3-32b DPB_CUDA_GEMM=ex
lat qwen-lt qwen3-32b DPB_CUDA_GEMM=lt
lat yi yi-34b
lat yi-ex yi-34b DPB_CUDA_GEMM=ex
} | tee "$R/ttft.txt"
echo "== ttft $(el)"
rm -rf "$R"/l-*/
timeout 45 "$C/pf_bench" 2048 > "$R/gemm.md" 2>&1; echo "== gemm exit $? $(el)"
LAB_GRP_N=256,2048 OMP_NUM_THREADS=16 timeout 45 "$C/lab" --only moegrouped --reps 5 > "$R/lab.md" 2> "$R/lab.log"
echo "== lab exit $? $(el)"
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
kern() { # name skip count model
    local name=$1 skip=$2 cnt=$3 m=$4
    timeout 50 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --kernel-name regex:"^(?!k_fill)" \
        --launch-skip "$skip" --launch-count "$cnt" "$C/deploybench" latency --backend cuda --model "synth:$m" \
        --prompt-tokens 2048 --gen-tokens 2 --num-requests 1 --warmup 0 --out "$R/n-$name" > "$R/ncu-$name.csv" 2> "$R/ncu-$name.err"
    echo "== ncu $name exit $? $(el)"
    python3 dev/device/ncu_table.py "$R/ncu-$name.csv" 22
}
if [ -n "$NCU" ]; then
    kern oss 40 330 gpt-oss-20b | tee "$R/ncu-oss.md"
    kern qwen 150 700 qwen3-32b | tee "$R/ncu-qwen.md"
fi
rm -rf "$R"/n-*/
echo "== done $(el)"
cat "$R/ttft.txt"
