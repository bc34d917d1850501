#!/bin/bash
# Device call (issue 5), session 5's first: where the time goes at 6649d9a, for the helpers of this session.
# backend_check --speed (three models, 128 / 2048), then ncu kernel durations (graphs off) of a gpt-oss-20b decode
# step after a 2,048-token prompt, and of the 2,048-token prefills of gpt-oss-20b and Qwen3-32B: per-kernel table
# and one layer in launch order.  Carry .devcarry-s (bins.tgz, lib, shared).
C=${C:-$PWD/.devcarry-s}
OUT=${OUT:-/tmp/out}
(cd "$C" && tar xzf bins.tgz) || exit 2
export LD_LIBRARY_PATH=$C/lib
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
t0=$(date +%s)
el() { echo "(+$(( $(date +%s) - t0 )) s)"; }
timeout 150 $C/backend_check --skip-ops --skip-fixtures --speed synth:gpt-oss-20b --speed synth:qwen3-32b \
    --speed synth:yi-34b --ctx 128,2048 > $OUT/speed.log 2>&1
echo "== speed exit $? $(el)"; grep -E "^speed.*(TTFT|roofline)|^FAIL" $OUT/speed.log
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
order() { # csv first count: kernels in launch order
    python3 - "$@" <<'PY'
import csv, sys
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
h = rows[0]; ki, vi, ui = h.index('Kernel Name'), h.index('Metric Value'), h.index('Metric Unit')
gi = h.index('Grid Size') if 'Grid Size' in h else None; bi = h.index('Block Size') if 'Block Size' in h else None
sc = {'ns': 1e-3, 'nsecond': 1e-3, 'us': 1, 'usecond': 1, 'ms': 1e3, 'msecond': 1e3}
a, n = int(sys.argv[2]), int(sys.argv[3])
for r in rows[1 + a:1 + a + n]:
    v = float(r[vi].replace(',', '')) * sc.get(r[ui], 1)
    print('    %-60s %9.2f us  grid %s block %s' % (r[ki].split('(')[0][:60], v, r[gi] if gi else '', r[bi] if bi else ''))
PY
}
kern() { # name skip count first_of_layer layer_len args...
    local name=$1 skip=$2 cnt=$3 f=$4 n=$5; shift 5
    DPB_NO_GRAPHS=1 timeout 150 $NCU --clock-control none --metrics gpu__time_duration.sum --csv \
        --kernel-name regex:"^(?!k_fill)" --launch-skip $skip --launch-count $cnt "$@" > $OUT/ncu-$name.csv 2> $OUT/ncu-$name.err
    echo "== ncu $name exit $? $(el)"
    python3 dev/device/ncu_table.py $OUT/ncu-$name.csv 30
    echo "one stretch in launch order (kernels $f..$((f + n))):"; order $OUT/ncu-$name.csv $f $n
}
if [ -n "$NCU" ]; then
    kern gptoss-decode2048 1300 600 100 40 $C/deploybench latency --backend cuda --model synth:gpt-oss-20b \
        --prompt-tokens 2048 --gen-tokens 8 --num-requests 1 --warmup 0 --out $OUT/n1
    kern gptoss-prefill 0 700 60 60 $C/deploybench latency --backend cuda --model synth:gpt-oss-20b --prompt-tokens 2048 \
        --gen-tokens 2 --num-requests 1 --warmup 0 --out $OUT/n2
    kern qwen3-prefill 0 1400 100 50 $C/deploybench latency --backend cuda --model synth:qwen3-32b --prompt-tokens 2048 \
        --gen-tokens 2 --num-requests 1 --warmup 0 --out $OUT/n3
    rm -rf $OUT/n?
fi
cd $OUT && tar czf ncu.tgz ncu-*.csv && rm -f ncu-*.csv
el
