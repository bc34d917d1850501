#!/bin/bash
# helper pdl, session 6: op checks (decode subset) + speed, main (old) vs branch pdl (new), alternating.
# Carry .devcarry-pdl holding lib/, shared/ and bins.tgz (old/backend_check = main's, new/backend_check = this
# branch's, stripped); copy this script there and run `bash .devcarry-pdl/s6pdl.sh` (about 60 s on the H200).
set -u
C=$PWD/.devcarry-pdl
export LD_LIBRARY_PATH=$C/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
O=$OUT/pdl; mkdir -p $O
cd $C && tar xzf bins.tgz && cd - >/dev/null
OLD=$C/old/backend_check NEW=$C/new/backend_check
PHASE=${1:-1}
t0=$(date +%s)
ops() { # label env...: the decode subset of the op checks; stopped after its summary line
    local lab=$1; shift
    env DPB_OPC_ONLY=decode "$@" $NEW --skip-fixtures --speed none > $O/ops_$lab.log 2>&1 & local pid=$!
    for i in $(seq 1 160); do grep -q "^== operations:" $O/ops_$lab.log && break; kill -0 $pid 2>/dev/null || break; sleep 0.25; done
    kill $pid 2>/dev/null; wait $pid 2>/dev/null
    echo "ops $lab: $(grep '^== operations:' $O/ops_$lab.log) ; FAIL lines: $(grep -c '^FAIL' $O/ops_$lab.log) ($(( $(date +%s) - t0 )) s)"
    grep '^FAIL' $O/ops_$lab.log | head -5
}
spd() { # label bin model ctx env...
    local lab=$1 bin=$2 model=$3 ctx=$4; shift 4
    env "$@" timeout 40 $bin --skip-ops --skip-fixtures --speed synth:$model --ctx $ctx > $O/spd_$lab.log 2>&1
    grep -h "decode 63 tokens" $O/spd_$lab.log | sed -E "s/.*prompt ([0-9]+): TTFT ([0-9.]+) ms.*decode 63 tokens ([0-9.]+) tok\/s \(([0-9.]+) ms.*first ids (.*)/$lab $model p\1 ttft \2 decode \3 tok\/s \4 ms ids:\5/" >> $O/table.txt
    grep -h "cuda graph:" $O/spd_$lab.log | sort | uniq -c | head -3
}
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
ops default
ops pdloff DPB_CUDA_PDL=off
for r in 1 2 3; do
    spd old$r $OLD gpt-oss-20b 128,2048
    spd new$r $NEW gpt-oss-20b 128,2048 DPB_CUDA_PDL_REPORT=1
    spd new-pdloff$r $NEW gpt-oss-20b 128,2048 DPB_CUDA_PDL=off
    spd new-mergeold$r $NEW gpt-oss-20b 128,2048 DPB_CUDA_ATTN_MERGE=old
    spd new-unfqkv$r $NEW gpt-oss-20b 128,2048 DPB_CUDA_UNFUSED=qkv
    echo "round $r done ($(( $(date +%s) - t0 )) s)"
done
spd old-q $OLD qwen3-32b 128,2048
spd new-q $NEW qwen3-32b 128,2048
spd new-pdloff-q $NEW qwen3-32b 128 DPB_CUDA_PDL=off
echo "speed done ($(( $(date +%s) - t0 )) s)"
for v in default off early; do
    env DPB_CUDA_PDL=$v timeout 30 $NEW --skip-ops --speed none --fixtures $C/shared/fixtures > $O/fx_$v.log 2>&1
    echo "fixtures (new, DPB_CUDA_PDL=$v): rc $? ; $(grep -c '^FAIL' $O/fx_$v.log) FAIL; $(tail -1 $O/fx_$v.log)"
done
cd $OUT && tar czf pdl.tgz pdl && rm -rf pdl
echo "== table (label model prompt tok/s ms/token first-ids), $(( $(date +%s) - t0 )) s"
tar xzf $OUT/pdl.tgz -O pdl/table.txt
echo "== averages (variant model prompt: mean decode tok/s over rounds, min, max; mean TTFT ms)"
tar xzf $OUT/pdl.tgz -O pdl/table.txt | awk '{v=$1; sub(/[0-9]+$/,"",v); k=v" "$2" "$3; n[k]++; s[k]+=$7; t[k]+=$5; if(!(k in mn)||$7<mn[k])mn[k]=$7; if(!(k in mx)||$7>mx[k])mx[k]=$7} END{for(k in n) printf "%-28s %7.1f  (%s..%s, n=%d)  ttft %.1f\n", k, s[k]/n[k], mn[k], mx[k], n[k], t[k]/n[k]}' | sort
