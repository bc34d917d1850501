#!/bin/sh
# CLI: deploybench ablate on tiny models: one CSV per test with the factor as a column, the
# config's value marked, tests that do not apply say why, unknown tests refused.
B=${DPB_BIN:-build/deploybench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; cat "$T/out" "$T/err" 2>/dev/null | head -20; fi; }
$B ablate --model synth:gpt-oss-tiny --tests sampling,experts,kv,window,batch --prompt-tokens 16 --gen-tokens 4 \
    --num-requests 2 --threads 1 --out $T/a >"$T/out" 2>"$T/err"; rc=$?
check "exit 0 and one CSV per test" "[ $rc -eq 0 ] && for t in sampling experts kv window batch; do [ -s $T/a/ablation_\$t.csv ] || exit 1; done"
check "factor columns first" "head -1 $T/a/ablation_kv.csv | grep -q '^test,factor,value,cell,prompt_tokens,gen_tokens,batch,requests,'"
check "sampling: 5 variants" "[ \$(tail -n +2 $T/a/ablation_sampling.csv | wc -l) -eq 5 ] && grep -q 'greedy' $T/a/ablation_sampling.csv && grep -q 'top_p=0.9' $T/a/ablation_sampling.csv"
check "experts: 1,2,4 (config),8" "[ \$(tail -n +2 $T/a/ablation_experts.csv | wc -l) -eq 4 ] && grep -q '^experts,experts_per_tok,4 (config),' $T/a/ablation_experts.csv"
check "kv: bf16, fp8 and f32" "grep -q '^kv,kv_dtype,bf16,' $T/a/ablation_kv.csv && grep -q '^kv,kv_dtype,fp8 (e4m3),' $T/a/ablation_kv.csv && grep -q '^kv,kv_dtype,f32,' $T/a/ablation_kv.csv"
# kv_bytes_allocated of bf16 : fp8 : f32 = 2 : 1 : 4; bf16's leading tokens all equal its own
# (the last three columns; earlier fields hold quoted commas)
kvcol() { awk -F, -v back="$1" 'NR > 1 { printf "%s ", $(NF - back) }' $T/a/ablation_kv.csv; }
KB=$(kvcol 2); KB1=${KB%% *}; KB3=${KB% }; KB3=${KB3##* }; KB2=${KB#* }; KB2=${KB2%% *}
check "kv: the last columns" "head -1 $T/a/ablation_kv.csv | grep -q ',kv_bytes_allocated,tokens_compared,leading_tokens_equal_to_first_value\$'"
check "kv: KV bytes bf16 : fp8 : f32 = 2 : 1 : 4" "[ \"$KB\" = '$KB1 $KB2 $KB3 ' ] && [ $KB2 -gt 0 ] && [ $KB1 -eq $((2 * KB2)) ] && [ $KB3 -eq $((4 * KB2)) ]"
check "kv: tokens compared with bf16's, bf16 equal to itself" "[ \"\$(kvcol 1)\" = '4 4 4 ' ] && [ \"\$(kvcol 0 | cut -d' ' -f1)\" = 4 ]"
check "window: on and off" "grep -q 'on (window 8)' $T/a/ablation_window.csv && grep -q 'off (full attention)' $T/a/ablation_window.csv"
check "batch: 1,2,4,8 with batch column" "[ \"\$(tail -n +2 $T/a/ablation_batch.csv | cut -d, -f7 | tr '\n' ' ')\" = '1 2 4 8 ' ]"
check "rows recorded as they finish" "[ \$(wc -l < $T/a/ablation.jsonl) -eq 18 ] && grep -q '\"status\":[[:space:]]*\"complete\"' $T/a/manifest.json"
$B ablate --model synth:qwen3-tiny --tests experts,window --prompt-tokens 16 --gen-tokens 4 --num-requests 1 --threads 1 \
    --out $T/q >"$T/out" 2>"$T/err"; rc=$?
check "dense model: experts and window not applicable, with why" "[ $rc -eq 0 ] && grep -q 'not applicable: a dense model has no experts' $T/q/ablation_experts.csv && grep -q 'not applicable: the model has no sliding-window layers' $T/q/ablation_window.csv"
$B ablate --model synth:qwen3-tiny --tests precision,graphs --prompt-tokens 16 --gen-tokens 4 --num-requests 1 --threads 1 \
    --out $T/p >"$T/out" 2>"$T/err"; rc=$?
check "precision: bf16 and f32 rows; graphs: not applicable on the cpu, with why" "[ $rc -eq 0 ] && [ \$(tail -n +2 $T/p/ablation_precision.csv | wc -l) -eq 2 ] && grep -q 'f32 (reference mode)' $T/p/ablation_precision.csv && grep -q 'not applicable: only the cuda backend' $T/p/ablation_graphs.csv"
# --resume: a complete folder runs nothing again; a folder whose last row was lost (a killed run) runs that
# value alone; without --resume a used folder is refused
$B ablate --model synth:gpt-oss-tiny --tests kv,batch --prompt-tokens 16 --gen-tokens 4 --num-requests 1 --threads 1 \
    --out $T/r >"$T/out" 2>"$T/err"; rc=$?
cp $T/r/ablation_batch.csv $T/batch_before.csv
$B ablate --model synth:gpt-oss-tiny --tests kv,batch --prompt-tokens 16 --gen-tokens 4 --num-requests 1 --threads 1 \
    --out $T/r --resume >"$T/out" 2>"$T/err"; rc2=$?
check "resume of a complete folder: no row added, the CSVs list the same cells" "[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ \$(wc -l < $T/r/ablation.jsonl) -eq 7 ] && [ \"\$(cut -d, -f1-10 $T/batch_before.csv)\" = \"\$(cut -d, -f1-10 $T/r/ablation_batch.csv)\" ]"
head -n 6 $T/r/ablation.jsonl > $T/j && cat $T/j > $T/r/ablation.jsonl && printf '{"test":"batch","fac' >> $T/r/ablation.jsonl
$B ablate --model synth:gpt-oss-tiny --tests kv,batch --prompt-tokens 16 --gen-tokens 4 --num-requests 1 --threads 1 \
    --out $T/r --resume >"$T/out" 2>"$T/err"; rc=$?
check "resume after a lost row: that value alone again, the partial line dropped" "[ $rc -eq 0 ] && [ \$(wc -l < $T/r/ablation.jsonl) -eq 7 ] && [ \$(grep -c '\"value\":\"8\"' $T/r/ablation.jsonl) -eq 1 ] && [ \$(tail -n +2 $T/r/ablation_batch.csv | wc -l) -eq 4 ] && ! grep -q '\"fac\$' $T/r/ablation.jsonl"
$B ablate --model synth:gpt-oss-tiny --tests kv --prompt-tokens 16 --gen-tokens 4 --num-requests 1 --threads 1 \
    --out $T/r >"$T/out" 2>"$T/err"; rc=$?
check "a used folder without --resume refused" "[ $rc -ne 0 ] && [ -s $T/err ]"
$B ablate --model synth:gpt-oss-tiny --tests experts_format --prompt-tokens 16 --gen-tokens 4 --num-requests 1 --threads 1 \
    --out $T/f >"$T/out" 2>"$T/err"; rc=$?
check "experts_format: mxfp4 (config) and bf16 measured" "[ $rc -eq 0 ] && grep -q '^experts_format,experts_format,mxfp4 (config),p16_g4_b1,' $T/f/ablation_experts_format.csv && grep -q '^experts_format,experts_format,bf16,p16_g4_b1,' $T/f/ablation_experts_format.csv"
$B ablate --model synth:qwen3-tiny --tests experts_format --prompt-tokens 16 --gen-tokens 4 --num-requests 1 --threads 1 \
    --out $T/g >"$T/out" 2>"$T/err"; rc=$?
check "experts_format on a dense model: why, and no 0 printed" "[ $rc -eq 0 ] && grep -q 'not applicable: a dense model has no experts' $T/g/ablation_experts_format.csv && ! grep -q 'TTFT' $T/out"
HT=../shared/data/tokenizers/gpt-oss-harmony/tokenizer.json.gz
skip=0
if [ -f "$HT" ]; then
    $B ablate --model synth:gpt-oss-tiny --tokenizer "$HT" --tests effort --prompt-tokens 200 --gen-tokens 6 --num-requests 1 \
        --threads 1 --out $T/e >"$T/out" 2>"$T/err"; rc=$?
    check "effort: low, medium (default), high, each stopping at EOS with its output length" "[ $rc -eq 0 ] && grep -q '^effort,reasoning_effort,low,' $T/e/ablation_effort.csv && grep -q '^effort,reasoning_effort,medium (default),' $T/e/ablation_effort.csv && grep -q '^effort,reasoning_effort,high,' $T/e/ablation_effort.csv && head -1 $T/e/ablation_effort.csv | grep -q ',output_tokens_mean' && [ \$(grep -c '\"stops_at_eos\":true' $T/e/ablation.jsonl) -eq 3 ]"
else
    echo "skip: effort ablation needs $HT (../shared absent)"; skip=1
fi
$B ablate --model synth:gpt-oss-tiny --tests effort --prompt-tokens 16 --gen-tokens 4 --num-requests 1 --threads 1 \
    --out $T/n >"$T/out" 2>"$T/err"; rc=$?
check "effort without a harmony tokenizer: why" "[ $rc -eq 0 ] && grep -q 'not applicable: only harmony-templated prompts' $T/n/ablation_effort.csv"
$B ablate --model synth:qwen3-tiny --tests fp8kv --out $T/x >"$T/out" 2>"$T/err"; rc=$?
check "unknown test refused before any work" "[ $rc -eq 2 ] && grep -q \"unknown test 'fp8kv'\" $T/err && [ ! -e $T/x ]"
echo "RESULT pass=$pass fail=$fail skip=$skip"
[ $fail -eq 0 ]
