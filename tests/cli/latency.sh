#!/bin/sh
# CLI: deploybench latency on a tiny model: its files, units in the column names, percentiles in order,
# per-request identity TTFT + (n-1) TPOT = E2E, --resume skipping finished cells, refusals.
B=${DPB_BIN:-build/deploybench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; cat "$T/out" "$T/err" 2>/dev/null | head -20; fi; }
D=$T/run
$B latency --model synth:gpt-oss-tiny --prompt_tokens 8,16 --gen_tokens 4,6 --num_requests 3 --batch 1,2 \
    --threads 1 --out $D >"$T/out" 2>"$T/err"; rc=$?
check "exit 0" "[ $rc -eq 0 ]"
check "files" "[ -s $D/manifest.json ] && [ -s $D/summary.csv ] && [ -s $D/summary.json ] && [ -s $D/requests.jsonl ] && [ -s $D/cells.jsonl ]"
check "8 cells in the CSV" "[ \$(tail -n +2 $D/summary.csv | wc -l) -eq 8 ]"
# 3 rounds x (batch 1 + batch 2) x 4 (prompt, gen) = 36 requests
check "36 request lines" "[ \$(wc -l < $D/requests.jsonl) -eq 36 ]"
check "units in the header" "head -1 $D/summary.csv | grep -q 'ttft_ms_p50,.*tpot_ms_p95,.*itl_ms_p99,.*e2e_ms_mean,.*prefill_tok_s,decode_tok_s_per_seq,decode_tok_s_aggregate,seed_TPOT_tokps_prefill_included,ttft_cv'"
check "manifest complete" "grep -q '\"status\":[[:space:]]*\"complete\"' $D/manifest.json && grep -q '\"model_sha256\"' $D/manifest.json"
check "percentile method named" "grep -q 'nearest-rank' $D/summary.json"
# p50 <= p95 <= p99 for TTFT, TPOT, ITL, E2E in every row
cols=$(head -1 $D/summary.csv)
check "percentiles ordered" "awk -F, 'NR==1 { for (i=1;i<=NF;i++) c[\$i]=i; next }
  { split(\"ttft_ms tpot_ms itl_ms e2e_ms\", m, \" \"); for (k in m) { p=m[k];
    if (!(\$c[p\"_p50\"]+0 <= \$c[p\"_p95\"]+0 && \$c[p\"_p95\"]+0 <= \$c[p\"_p99\"]+0)) bad=1 } }
  END { exit bad }' $D/summary.csv"
# TTFT + (n-1) TPOT = E2E per request (1 ns)
check "identity per request" "awk '{ match(\$0, /\"n_generated\":[0-9]+/); n=substr(\$0, RSTART+14, RLENGTH-14);
  match(\$0, /\"ttft_ms\":[0-9.e+-]+/); a=substr(\$0, RSTART+10, RLENGTH-10);
  match(\$0, /\"tpot_ms\":[0-9.e+-]+/); b=substr(\$0, RSTART+10, RLENGTH-10);
  match(\$0, /\"e2e_ms\":[0-9.e+-]+/); e=substr(\$0, RSTART+9, RLENGTH-9);
  d=a+(n-1)*b-e; if (d<0) d=-d; if (d>1e-6) bad=1 } END { exit bad }' $D/requests.jsonl"
$B latency --model synth:gpt-oss-tiny --prompt-tokens 8,16 --gen-tokens 4,6 --num-requests 3 --batch 1,2 \
    --threads 1 --out $D --resume >"$T/out" 2>"$T/err"; rc=$?
check "resume: nothing left" "[ $rc -eq 0 ] && grep -q '0 cells measured, 8 already done' $T/out"
check "resume: no new requests" "[ \$(wc -l < $D/requests.jsonl) -eq 36 ]"
check "resume recorded" "grep -q resumed_from $D/manifest.json"
$B latency --model synth:gpt-oss-tiny --prompt-tokens 8,24 --gen-tokens 4,6 --num-requests 3 --batch 1,2 \
    --threads 1 --out $D --resume >"$T/out" 2>"$T/err"; rc=$?
check "resume: grid grown by one prompt length" "[ $rc -eq 0 ] && grep -q '4 cells measured, 4 already done' $T/out && [ \$(tail -n +2 $D/summary.csv | wc -l) -eq 12 ]"
# --resume with another KV dtype: refused, naming it; nothing measured, the manifest keeps the earlier params
NREQ=$(wc -l < $D/requests.jsonl)
$B latency --model synth:gpt-oss-tiny --prompt-tokens 8,24 --gen-tokens 4,6 --num-requests 3 --batch 1,2 \
    --threads 1 --kv-dtype fp8 --out $D --resume >"$T/out" 2>"$T/err"; rc=$?
check "resume with another --kv-dtype refused" "[ $rc -ne 0 ] && grep -q 'measured with kv_dtype \"bf16\", this run asks \"fp8\"' $T/err && [ \$(wc -l < $D/requests.jsonl) -eq $NREQ ] && grep -q '\"kv_dtype\":[[:space:]]*\"bf16\"' $D/manifest.json && ! grep -q '\"kv_dtype\":[[:space:]]*\"fp8\"' $D/manifest.json"
# Ctrl-C (SIGINT): stops after the current round, keeps finished cells, exit 130, manifest "interrupted"
$B latency --model synth:gpt-oss-tiny --prompt-tokens 8,16,24,32 --gen-tokens 4,6 --num-requests 40 --threads 1 \
    --out $T/int >"$T/out" 2>"$T/err" &
pid=$!
# interrupt once the first cell is recorded (not after a fixed time: machines differ in speed)
i=0; while [ $i -lt 2000 ] && ! [ -s $T/int/cells.jsonl ]; do sleep 0.01; i=$((i + 1)); done
kill -INT $pid
wait $pid; rc=$?
check "SIGINT: exit 130, manifest interrupted" "[ $rc -eq 130 ] && grep -q '\"status\":[[:space:]]*\"interrupted\"' $T/int/manifest.json && grep -q 'resume' $T/err"
check "SIGINT: summary holds the finished cells" "[ \$(tail -n +2 $T/int/summary.csv | wc -l) -eq \$(wc -l < $T/int/cells.jsonl) ] && [ \$(wc -l < $T/int/cells.jsonl) -lt 8 ]"
check "SIGINT: every request line whole" "[ ! -s $T/int/requests.jsonl ] || [ \"\$(tail -c 1 $T/int/requests.jsonl | od -An -c | tr -d ' ')\" = '\\n' ]"
$B latency --model synth:gpt-oss-tiny --prompt-tokens 8,16,24,32 --gen-tokens 4,6 --num-requests 40 --threads 1 \
    --out $T/int --resume >"$T/out" 2>"$T/err"; rc=$?
check "SIGINT: --resume completes the grid" "[ $rc -eq 0 ] && [ \$(tail -n +2 $T/int/summary.csv | wc -l) -eq 8 ]"
$B latency --model synth:gpt-oss-tiny --out $D >"$T/out" 2>"$T/err"; rc=$?
check "non-empty folder refused without --resume" "[ $rc -eq 2 ] && grep -q -- '--resume' $T/err"
$B latency --model synth:gpt-oss-tiny --gen-tokens 1 --out $T/x >"$T/out" 2>"$T/err"; rc=$?
check "gen-tokens 1 refused" "[ $rc -eq 2 ] && grep -q -- '--gen-tokens' $T/err"
$B latency --model synth:gpt-oss-tiny --out $T/y --prompt-tokens 8,x >"$T/out" 2>"$T/err"; rc=$?
check "bad list refused" "[ $rc -eq 2 ] && grep -q -- '--prompt-tokens' $T/err"
$B latency --out $T/y >"$T/out" 2>"$T/err"; rc=$?
check "model required" "[ $rc -eq 2 ] && grep -q -- '--model' $T/err"
$B latency --help >"$T/out" 2>&1
check "help names every option" "( for o in model out backend prompt-tokens gen-tokens batch num-requests warmup threads seed cv-threshold tokenizer kv-dtype resume; do grep -q -- \"--\$o\" $T/out || exit 1; done )"
echo "RESULT pass=$pass fail=$fail skip=0"
[ $fail -eq 0 ]
