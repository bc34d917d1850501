#!/bin/sh
# CLI: deploybench memory and energy on a tiny model.  memory: KV exact = analytic in every row,
# device memory "unavailable" without NVML, --resume skips.  energy: without NVML every GPU figure
# is "unavailable" (never 0); with the fake NVML (libfake_nvml.so next to the test programs) the
# numbers are there and the two methods agree within 5 %.
B=${DPB_BIN:-build/deploybench}
FAKE=$(dirname "$B")/tests/libfake_nvml.so
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0; skip=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; cat "$T/out" "$T/err" 2>/dev/null | head -20; fi; }
DPB_NVML_LIBRARY=/nonexistent $B memory --model synth:gpt-oss-tiny --contexts 16,100,300 --gen_tokens 8 --threads 1 \
    --out $T/mem >"$T/out" 2>"$T/err"; rc=$?
check "memory exit 0" "[ $rc -eq 0 ] && [ -s $T/mem/memory.csv ] && [ -s $T/mem/memory.json ] && [ -s $T/mem/manifest.json ]"
check "three rows, KV exact = analytic in each" "[ \$(grep -c '\"kv_exact_equals_analytic\":true' $T/mem/memory.jsonl) -eq 3 ]"
check "device memory unavailable with the reason" "grep -q '\"device_proc_mem_peak_bytes\":\"unavailable: NVML unavailable' $T/mem/memory.jsonl"
check "seed column labelled" "grep -q 'not the KV cache' $T/mem/memory.csv && head -1 $T/mem/memory.csv | grep -q seed_kv_cache_bytes_peak_minus_baseline"
DPB_NVML_LIBRARY=/nonexistent $B memory --model synth:gpt-oss-tiny --contexts 16,100,300,400 --gen-tokens 8 --threads 1 \
    --out $T/mem --resume >"$T/out" 2>"$T/err"; rc=$?
check "memory --resume measures only the new context" "[ $rc -eq 0 ] && [ \$(wc -l < $T/mem/memory.jsonl) -eq 4 ] && [ \$(tail -n +2 $T/mem/memory.csv | wc -l) -eq 4 ]"
DPB_NVML_LIBRARY=/nonexistent $B memory --model synth:gpt-oss-tiny --contexts 16,100 --gen-tokens 8 --threads 1 --kv fp8 \
    --out $T/mem8 >"$T/out" 2>"$T/err"; rc=$?
check "memory --kv fp8: rows in fp8, KV exact = analytic, 1 byte per element" "[ $rc -eq 0 ] && [ \$(grep -c '\"kv_dtype\":\"fp8\"' $T/mem8/memory.jsonl) -eq 2 ] && [ \$(grep -c '\"kv_exact_equals_analytic\":true' $T/mem8/memory.jsonl) -eq 2 ]"
$B memory --model synth:gpt-oss-tiny --contexts 16 --kv int4 --out $T/mem9 >"$T/out" 2>"$T/err"; rc=$?
check "memory --kv int4 refused, naming the option" "[ $rc -eq 2 ] && grep -q -- '--kv takes bf16, f32 or fp8' $T/err"
$B memory --model synth:gpt-oss-tiny --contexts 10000000 --out $T/mem2 >"$T/out" 2>"$T/err"; rc=$?
check "memory: context beyond the model refused" "[ $rc -eq 2 ] && grep -q max_position_embeddings $T/err"

DPB_NVML_LIBRARY=/nonexistent $B energy --model synth:gpt-oss-tiny --contexts 16,32 --gen-tokens 6 --num-runs 2 \
    --threads 1 --idle-seconds 0.2 --out $T/en0 >"$T/out" 2>"$T/err"; rc=$?
check "energy without NVML: exit 0" "[ $rc -eq 0 ] && [ -s $T/en0/energy_summary.csv ] && [ -s $T/en0/energy_runs.csv ]"
check "energy without NVML: unavailable with the reason" "grep -q '\"j_per_1k_tokens\":[[:space:]]*\"unavailable: NVML unavailable' $T/en0/energy_summary.json"
check "energy without NVML: no energy figure is 0" "! grep -E -q '\"[a-z0-9_]*(_j|_w|_per_j|_per_token|per_1k_tokens)\":0[,}]' $T/en0/energy_runs.jsonl"
check "energy without NVML: tok/s measured" "grep -q '\"tok_s_decode\":[1-9]' $T/en0/energy_runs.jsonl"
check "energy: 4 runs recorded" "[ \$(wc -l < $T/en0/energy_runs.jsonl) -eq 4 ]"
if [ -r "$FAKE" ]; then
    DPB_NVML_LIBRARY=$FAKE FAKE_NVML_DEVICES=1 $B energy --model synth:gpt-oss-tiny --contexts 16,32 --gen-tokens 6 \
        --num-runs 2 --threads 1 --idle-seconds 0.3 --power-poll-hz 50 --out $T/en1 >"$T/out" 2>"$T/err"; rc=$?
    check "energy with the fake NVML: exit 0, trace written" "[ $rc -eq 0 ] && [ -s $T/en1/telemetry.csv ] && grep -q prefill_end $T/en1/marks.csv"
    check "fake NVML: avg W within its 100..200 W and methods within 5 %" "awk '{
        match(\$0, /\"total_avg_w\":[0-9.e+-]+/); w=substr(\$0, RSTART+14, RLENGTH-14)+0;
        match(\$0, /\"total_energy_rel_diff\":[0-9.e+-]+/); d=substr(\$0, RSTART+24, RLENGTH-24)+0; if (d<0) d=-d;
        match(\$0, /\"idle_avg_w\":[0-9.e+-]+/); i=substr(\$0, RSTART+13, RLENGTH-13)+0;
        if (!(w>=100 && w<=200 && d<0.05 && i>=100 && i<=200)) bad=1; n++ } END { exit bad || n!=4 }' $T/en1/energy_runs.jsonl"
else
    skip=$((skip + 1)); echo "SKIP fake NVML: $FAKE is absent"
fi

# unify and ape over these folders plus a latency run of the same model and a dense one
$B latency --model synth:gpt-oss-tiny --prompt-tokens 16,32 --gen-tokens 6 --num-requests 2 --threads 1 --out $T/lat >/dev/null 2>&1
$B latency --model synth:qwen3-tiny --prompt-tokens 16 --gen-tokens 6 --num-requests 2 --threads 1 --out $T/latq >/dev/null 2>&1
$B unify --results $T/lat $T/latq $T/mem --results $T/en0 --out $T/uni >"$T/out" 2>"$T/err"; rc=$?
check "unify: three CSVs" "[ $rc -eq 0 ] && [ -s $T/uni/unified_latency_comparison.csv ] && [ -s $T/uni/unified_memory_comparison.csv ] && [ -s $T/uni/unified_energy_comparison.csv ]"
check "unify: the seed's latency columns first" "head -1 $T/uni/unified_latency_comparison.csv | grep -q '^model_short,model,model_type,prompt_tokens,gen_tokens,TTFT_ms,p50_ms,p95_ms,p99_ms,TPOT_tokps,'"
check "unify: 3 latency rows, 4 memory rows, 2 energy rows" "[ \$(tail -n +2 $T/uni/unified_latency_comparison.csv | wc -l) -eq 3 ] && [ \$(tail -n +2 $T/uni/unified_memory_comparison.csv | wc -l) -eq 4 ] && [ \$(tail -n +2 $T/uni/unified_energy_comparison.csv | wc -l) -eq 2 ]"
check "unify: TPOT_tokps is the prefill-included figure" "awk -F, 'NR==1 { for (i=1;i<=NF;i++) c[\$i]=i; next } { if (\$c[\"TPOT_tokps\"] == \"\" ) bad=1 } END { exit bad }' $T/uni/unified_latency_comparison.csv && grep -q \"\$(grep -o '\"seed_TPOT_tokps_prefill_included\":[0-9.]*' $T/lat/cells.jsonl | head -1 | cut -d: -f2 | cut -c1-5)\" $T/uni/unified_latency_comparison.csv"
check "unify: model type from the architecture" "grep -q '^gpt-oss-tiny,synth:gpt-oss-tiny,moe,' $T/uni/unified_latency_comparison.csv && grep -q '^qwen3-tiny,synth:qwen3-tiny,dense,' $T/uni/unified_latency_comparison.csv"
$B ape --results $T/lat $T/latq $T/mem --out $T/uni >"$T/out" 2>"$T/err"; rc=$?
check "ape: files" "[ $rc -eq 0 ] && [ -s $T/uni/ape_analysis.csv ] && [ -s $T/uni/ape_analysis.json ]"
check "ape: MoE active < total, dense active = total, metric / active B" "awk -F, 'NR==1 { for (i=1;i<=NF;i++) c[\$i]=i; next } {
    t=\$c[\"params_total_b\"]+0; a=\$c[\"params_active_b\"]+0; d=\$c[\"decode_tok_s\"]+0; e=\$c[\"decode_tok_s_per_active_b\"]+0;
    if (a <= 0) bad=1; if (\$c[\"model_type\"] == \"moe\" && !(a < t)) bad=1; if (\$c[\"model_type\"] == \"dense\" && a != t) bad=1;
    r = d / a / e; if (r < 0.999 || r > 1.001) bad=1; n++ } END { exit bad || n != 3 }' $T/uni/ape_analysis.csv"
check "ape: memory joined at context 16 (peak GB), energy absent says why" "grep -q 'unavailable: no energy run at this context' $T/uni/ape_analysis.csv && awk -F, 'NR>1 && \$4==16 && \$2==\"synth:gpt-oss-tiny\" { found=1; if (!(\$16+0 > 0)) bad=1 } END { exit bad || !found }' $T/uni/ape_analysis.csv"
$B unify --results $T/nothere --out $T/uni2 >"$T/out" 2>"$T/err"; rc=$?
check "unify: a folder without manifest refused" "[ $rc -eq 2 ] && grep -q 'nothere' $T/err"
echo "RESULT pass=$pass fail=$fail skip=$skip"
[ $fail -eq 0 ]
