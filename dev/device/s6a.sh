#!/bin/bash
# Device call (issue 5, session 6): programmatic dependent launch for the MoE kernels A/B (decode).
# Carry .devcarry-s6 (lib/, shared/fixtures, bins.tgz with old/ = main 33e76d0, mid/ = branch pdl c60f68e,
# new/ = main with kernels A/B launched programmatically; backend_check each, stripped).
# Decode op subset and fixtures on new (PDL default and off), then speed, binaries alternating, 3 rounds.
set -u
C=$PWD/.devcarry-s6
export LD_LIBRARY_PATH=$C/lib
O=$OUT/s6a; mkdir -p $O
(cd $C && tar xzf bins.tgz) || exit 2
t0=$(date +%s)
el() { echo "(+$(( $(date +%s) - t0 )) s)"; }
date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for v in wait off; do
    DPB_OPC_ONLY=decode DPB_CUDA_PDL=$v timeout 60 $C/new/backend_check --speed none --fixtures $C/shared/fixtures \
        > $O/ops_$v.log 2>&1
    echo "ops+fixtures new DPB_CUDA_PDL=$v: rc $?; $(grep -c '^FAIL' $O/ops_$v.log) FAIL; $(grep -E '^== (operations|PASS|FAIL)' $O/ops_$v.log | tr '\n' ' ') $(el)"
done
for r in 1 2 3; do
    for b in old mid new; do
        timeout 40 $C/$b/backend_check --skip-ops --skip-fixtures --speed synth:gpt-oss-20b --ctx 128,2048 > $O/spd_$b$r.log 2>&1
        grep -h "decode 63 tokens" $O/spd_$b$r.log | sed -E "s/.*prompt ([0-9]+): TTFT ([0-9.]+) ms.*decode 63 tokens ([0-9.]+) tok\/s.*first ids (.*)/$b $r p\1 \3 ttft \2 ids:\4/" >> $O/table.txt
    done
    echo "round $r $(el)"
done
timeout 40 $C/new/backend_check --skip-ops --skip-fixtures --speed synth:qwen3-32b --ctx 128 > $O/spd_q_new.log 2>&1
timeout 40 $C/old/backend_check --skip-ops --skip-fixtures --speed synth:qwen3-32b --ctx 128 > $O/spd_q_old.log 2>&1
grep -h "decode 63" $O/spd_q_*.log | cut -c1-160
cat $O/table.txt | cut -c1-90
echo "== mean decode tok/s (binary prompt: mean min max)"
awk '{k=$1" "$3; n[k]++; s[k]+=$4; if(!(k in mn)||$4<mn[k])mn[k]=$4; if(!(k in mx)||$4>mx[k])mx[k]=$4} END{for(k in n) printf "%-10s %7.1f %7.1f %7.1f\n", k, s[k]/n[k], mn[k], mx[k]}' $O/table.txt | sort
cd $OUT && tar czf s6a.tgz s6a && rm -rf s6a; el
