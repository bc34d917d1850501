#!/bin/bash
# Device call of helper dpf (session 6, dense prefill): op checks of the new paths (dpf_check), the four fixtures
# (backend_check --skip-ops --speed none), then TTFT at 2,048 tokens of main's backend_check and this branch's,
# alternating (3 samples each), an ncu stretch of a Qwen3-32B prefill of each, and a table last.
# Carry .devcarry-dpf (bins.tar.xz: main/backend_check, dpf/backend_check, dpf/dpf_check; lib; shared).
# Usage: [NCUV='dpf'] bash .devcarry-dpf/dpf1.sh [VARIANT_ENV...]   (each VARIANT_ENV e.g. DPB_CUDA_DPF=nomlp: one more sample)
C=${C:-$PWD/.devcarry-dpf}
OUT=${OUT:-/tmp/out}
mkdir -p $OUT
(cd "$C" && { tar xJf bins.tar.xz 2>/dev/null || python3 -c "import tarfile; tarfile.open('bins.tar.xz').extractall()"; }) || exit 2
export LD_LIBRARY_PATH=$C/lib
t0=$(date +%s)
el() { echo "(+$(( $(date +%s) - t0 )) s)"; }
date -u; nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,power.limit --format=csv,noheader
timeout 40 $C/dpf/dpf_check > $OUT/ops.log 2>&1; rc=$?; echo "== dpf_check exit $rc $(el)"
grep -E "^FAIL|== dpf" $OUT/ops.log
if [ $rc != 0 ]; then # which failures the session 4 norm sum (DPB_CUDA_DPF=oldsum) has too
    DPB_CUDA_DPF=oldsum timeout 40 $C/dpf/dpf_check > $OUT/ops-oldsum.log 2>&1; echo "== dpf_check oldsum exit $? $(el)"
    grep -E "^FAIL|== dpf" $OUT/ops-oldsum.log
fi
timeout 60 $C/dpf/backend_check --skip-ops --speed none --fixtures $C/shared/fixtures > $OUT/fx.log 2>&1
echo "== fixtures exit $? $(el)"; grep -E "^FAIL|^==|worst" $OUT/fx.log | head -30
SP="--skip-ops --skip-fixtures --speed synth:qwen3-32b --speed synth:yi-34b --speed synth:gpt-oss-20b --ctx 2048 --new 2"
for i in 1 2 3; do
    for v in main dpf; do
        timeout 30 $C/$v/backend_check $SP > $OUT/sp-$v-$i.log 2>&1; echo "== $v $i exit $? $(el)"
    done
done
for e in "$@"; do
    env $e timeout 30 $C/dpf/backend_check $SP > "$OUT/sp-env-$e.log" 2>&1; echo "== $e exit $? $(el)"
done
NCUV=${NCUV:-main dpf}
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
if [ -n "$NCU" ] && [ $(( $(date +%s) - t0 )) -lt 130 ]; then
    for v in $NCUV; do
        DPB_NO_GRAPHS=1 timeout 25 $NCU --clock-control none --metrics gpu__time_duration.sum --csv \
            --kernel-name regex:"^(?!k_fill)" --launch-skip 200 --launch-count 45 $C/$v/backend_check --skip-ops \
            --skip-fixtures --speed synth:qwen3-32b --ctx 2048 --new 2 > $OUT/ncu-$v.csv 2> $OUT/ncu-$v.err
        echo "== ncu $v exit $? $(el)"
        python3 - $OUT/ncu-$v.csv <<'PY'
import csv, sys
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
if rows:
    h = rows[0]; ki, vi, ui = h.index('Kernel Name'), h.index('Metric Value'), h.index('Metric Unit')
    sc = {'ns': 1e-3, 'nsecond': 1e-3, 'us': 1, 'usecond': 1, 'ms': 1e3, 'msecond': 1e3}
    for r in rows[1:31]:
        print('    %-64s %9.2f us' % (r[ki].split('(')[0][:64], float(r[vi].replace(',', '')) * sc.get(r[ui], 1)))
PY
    done
fi
echo "== table (TTFT ms at 2048; backend_check --speed, --new 2) $(el)"
for m in qwen3-32b yi-34b gpt-oss-20b; do
    for f in $OUT/sp-*.log; do
        v=$(basename $f .log); v=${v#sp-}
        t=$(grep -E "^speed synth:$m prompt 2048: TTFT" $f | sed -E 's/.*TTFT ([0-9.]+) ms.*/\1/')
        ng=$(grep -E "^speed synth:$m prompt 2048 with no CUDA graphs" $f | sed -E 's/.*TTFT ([0-9.]+) ms.*/\1/')
        ch=$(grep -E "^speed synth:$m prompt 2048 with prefill_chunk" $f | sed -E 's/.*TTFT ([0-9.]+) ms.*/\1/')
        printf "%-12s %-28s %8s  (no graphs %s, chunk %s)\n" $m "$v" "${t:-?}" "${ng:-?}" "${ch:-?}"
    done
done
grep -hE "^FAIL" $OUT/sp-*.log | head -5
cd $OUT && tar czf logs.tgz *.log ncu-* 2>/dev/null; ls $OUT | head
