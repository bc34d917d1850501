#!/bin/bash
# Device call: where a gpt-oss-20b decode step spends its time (nsys kernel summary), and
# deploybench memory for gpt-oss-20b to 128k (issue 6). Carry .devcarry (see dev/device/run7.sh).
export LD_LIBRARY_PATH=$PWD/.devcarry/lib:$LD_LIBRARY_PATH
B=$PWD/.devcarry/deploybench
date -u
NSYS=$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems*/bin/nsys 2>/dev/null | head -1)
echo "nsys: ${NSYS:-absent}"
if [ -n "$NSYS" ]; then
    timeout 200 $NSYS profile -t cuda -o $OUT/prof --force-overwrite true .devcarry/backend_check --skip-ops --skip-fixtures \
        --speed synth:gpt-oss-20b --ctx 128 > $OUT/prof.log 2>&1
    echo "nsys rc=$?"; grep "^speed" $OUT/prof.log | head -3
    timeout 120 $NSYS stats -r cuda_gpu_kern_sum -f csv -o $OUT/kern $OUT/prof.nsys-rep > /dev/null 2>&1
    ls $OUT
    python3 - "$OUT" <<'PY'
import csv, glob, sys
f = sorted(glob.glob(sys.argv[1] + '/kern*.csv'))
if not f: print('no kernel summary'); sys.exit()
rows = list(csv.DictReader(open(f[0])))
tot = sum(float(r['Total Time (ns)']) for r in rows)
print(f"| kernel | share | calls | avg us | med us |\n|---|---|---|---|---|")
for r in rows[:28]:
    print(f"| {r['Name'][:70]} | {100*float(r['Total Time (ns)'])/tot:.1f} % | {r['Instances']} | {float(r['Avg (ns)'])/1e3:.1f} | {float(r['Med (ns)'])/1e3:.1f} |")
PY
    rm -f $OUT/prof.nsys-rep $OUT/prof.sqlite
fi
timeout -s KILL 200 $B memory --model synth:gpt-oss-20b --backend cuda --contexts 2048,8192,16384,32768,65536,131072 \
    --gen-tokens 64 --out $OUT/memory-gpt-oss-20b > $OUT/memory.log 2>&1
echo "memory rc=$?"; tail -12 $OUT/memory.log
date -u
