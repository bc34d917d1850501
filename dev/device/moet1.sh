#!/bin/bash
# Device call 1 of helper moet (issue 5, session 6): the grouped MoE's wgmma configurations (DPB_CUDA_MOE_WGCFG).
# 1. lab moegrouped rows at n = 16 (against the CPU), 256 and 2048 (against kernels A/B), every configuration;
# 2. TTFT of a 2,048-token prompt, synth:gpt-oss-20b: `deploybench latency` p50 (min) of 5 after 1 warm-up, main's
#    binary and ours with each configuration, alternating.  Carry .devcarry-moet (bins-main.tgz: main's deploybench
#    of 33e76d0; bins-moet.tgz: ours and the lab; lib).
C=${C:-$PWD/.devcarry-moet}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/bm /tmp/bo
tar xzf "$C/bins-main.tgz" -C /tmp/bm && tar xzf "$C/bins-moet.tgz" -C /tmp/bo || exit 2
export LD_LIBRARY_PATH=$C/lib
t0=$(date +%s)
el() { echo "(+$(( $(date +%s) - t0 )) s)"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
LAB_GRP_SHORT=1 LAB_GRP_N=${LAB_GRP_N:-16,256,2048} OMP_NUM_THREADS=16 timeout 70 /tmp/bo/lab --only moegrouped --reps 5 \
    > "$OUT/lab.md" 2> "$OUT/lab.log"
echo "== lab exit $? $(el)"
TAB=$OUT/ttft.txt
: > "$TAB"
lat() { # label binary [env...]
    local lab=$1 bin=$2
    shift 2
    rm -rf "/tmp/l-$lab"
    env "$@" timeout 30 "$bin" latency --backend cuda --model synth:gpt-oss-20b --prompt-tokens 2048 --gen-tokens 2 \
        --num-requests 5 --warmup 1 --out "/tmp/l-$lab" > "$OUT/lat-$lab.log" 2>&1
    local rc=$?
    python3 - "/tmp/l-$lab/cells.jsonl" "$lab" "$rc" >> "$TAB" <<'PY'
import json, sys
try:
    d = json.loads(open(sys.argv[1]).readline())
    print(f"{sys.argv[2]:<22} TTFT p50 {d['ttft_ms_p50']:6.2f} ms  min {d['ttft_ms_min']:6.2f}  max {d['ttft_ms_max']:6.2f}")
except Exception as ex:
    print(f"{sys.argv[2]:<22} unavailable (exit {sys.argv[3]}: {ex})")
PY
    tail -n 1 "$TAB"
}
for r in 1 2; do
    lat main-$r /tmp/bm/deploybench
    lat coarse-$r /tmp/bo/deploybench DPB_CUDA_MOE_WGCFG=coarse
    lat fine-$r /tmp/bo/deploybench DPB_CUDA_MOE_WGCFG=fine
    lat bm192-$r /tmp/bo/deploybench DPB_CUDA_MOE_WGCFG=bm192
    lat bm256-$r /tmp/bo/deploybench DPB_CUDA_MOE_WGCFG=bm256
done
echo "== ttft done $(el)"
grep -E "^FAIL|fail|error" "$OUT/lab.log" | head -5
echo "== lab (moegrouped, n = 16 / 256 / 2048)"
grep -E "grouped|^\|---|^\| group" "$OUT/lab.md" | grep -v "graph\|cuBLAS model" | cut -c1-230
echo "== TTFT 2048 (deploybench latency p50 of 5)"
cat "$TAB"
