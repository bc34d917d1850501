#!/bin/sh
# CLI: deploybench eval -- end to end on the CPU with a tiny synthetic model,
# resume, --score-only, the HumanEval sandbox on canonical solutions, errors.
B=${DPB_BIN:-build/deploybench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0; skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }
lines() { wc -l <"$1" | tr -d ' '; }

# errors name the option, exit 2
$B eval --task nope --data x --model m --out "$T/x" 2>"$T/err"; rc=$?
check "bad task exit 2" "[ $rc -eq 2 ] && grep -q -- '--task' $T/err"
$B eval --task mmlu --model m --out "$T/x" 2>"$T/err"; rc=$?
check "no data exit 2" "[ $rc -eq 2 ] && grep -q -- '--data' $T/err"
$B eval --task mmlu --data x --endpoint http://127.0.0.1:1/v1 --model m --chat --out "$T/x" 2>"$T/err"; rc=$?
check "mmlu --chat refused: no loglikelihoods" "[ $rc -eq 2 ] && grep -q 'chat endpoints cannot give loglikelihoods' $T/err"
$B eval --task mmlu --data "$T/none" --model m --out "$T/x" 2>"$T/err"; rc=$?
check "missing data dir" "[ $rc -eq 2 ] && grep -q -- '--data' $T/err"
$B eval --help >"$T/help"; check "help lists options" "grep -q -- '--score-only' $T/help && grep -q -- '--num-fewshot' $T/help"

D=../shared/data
TOK=$D/tokenizers/qwen3/tokenizer.json.gz
if [ ! -f "$TOK" ] || [ ! -d "$D/mmlu" ]; then
    echo "SKIP end to end: $D is absent"; skip=$((skip + 1))
    echo "RESULT pass=$pass fail=$fail skip=$skip"; exit 0
fi
M="--model synth:qwen3-tiny --tokenizer $TOK --threads 2"

# MMLU, 20 items (1-shot keeps the test short): 20 lines, 4 loglikelihoods each, a summary
$B eval --task mmlu --data $D $M --limit 20 --num-fewshot 1 --out "$T/mmlu" >"$T/out" 2>"$T/err"; rc=$?
check "mmlu exit" "[ $rc -eq 0 ]"
check "mmlu 20 lines" "[ \$(lines $T/mmlu/samples.jsonl) -eq 20 ]"
check "mmlu loglikelihoods" "grep -c '\"loglikelihoods\":\[-[0-9.e-]*,-[0-9.e-]*,-[0-9.e-]*,-[0-9.e-]*\]' $T/mmlu/samples.jsonl | grep -qx 20"
check "mmlu summary" "grep -q '\"acc\"' $T/mmlu/summary.json && grep -q '\"n\":[[:space:]]*20' $T/mmlu/summary.json && grep -q '\"stderr\"' $T/mmlu/summary.json"
check "mmlu prompt hash" "grep -q '\"prompt_sha256\":\"[0-9a-f]\{64\}\"' $T/mmlu/samples.jsonl"
check "mmlu manifest: command line, model hash, complete" "grep -q '\"command\":[[:space:]]*\"eval\"' $T/mmlu/manifest.json && grep -q '\"status\":[[:space:]]*\"complete\"' $T/mmlu/manifest.json && grep -q 'synth:qwen3-tiny' $T/mmlu/manifest.json"
# resume: nothing new to do, the same lines
cp "$T/mmlu/samples.jsonl" "$T/before"
$B eval --task mmlu --data $D $M --limit 20 --num-fewshot 1 --out "$T/mmlu" --resume >/dev/null 2>&1; rc=$?
check "resume no-op" "[ $rc -eq 0 ] && cmp -s $T/before $T/mmlu/samples.jsonl"
# resume after a torn run: drop the last 5 lines and a half line; the same per-sample choices come back
head -n 15 "$T/before" >"$T/mmlu/samples.jsonl"; printf '{"doc_id":15,"ta' >>"$T/mmlu/samples.jsonl"
$B eval --task mmlu --data $D $M --limit 20 --num-fewshot 1 --out "$T/mmlu" --resume >/dev/null 2>&1; rc=$?
check "resume finishes" "[ $rc -eq 0 ] && [ \$(lines $T/mmlu/samples.jsonl) -eq 20 ]"
check "resume same choices" "[ \"\$(grep -o '\"extracted\":\"[A-D]\"' $T/before)\" = \"\$(grep -o '\"extracted\":\"[A-D]\"' $T/mmlu/samples.jsonl)\" ]"
$B eval --task mmlu --data $D $M --limit 20 --num-fewshot 2 --out "$T/mmlu" --resume >/dev/null 2>"$T/err"; rc=$?
check "resume refuses other settings" "[ $rc -eq 2 ] && grep -q 'num_fewshot' $T/err"
$B eval --task mmlu --data $D $M --limit 20 --out "$T/mmlu" >/dev/null 2>"$T/err"; rc=$?
check "non-empty out needs --resume" "[ $rc -eq 2 ]"

# generation tasks (short generations: random weights give chance-level answers)
$B eval --task gsm8k --data $D $M --limit 5 --num-fewshot 1 --max-new-tokens 8 --out "$T/gsm" >/dev/null 2>"$T/err"; rc=$?
check "gsm8k exit" "[ $rc -eq 0 ] && [ \$(lines $T/gsm/samples.jsonl) -eq 5 ]"
check "gsm8k both filters" "grep -q '\"strict-match\"' $T/gsm/summary.json && grep -q '\"flexible-extract\"' $T/gsm/summary.json"
$B eval --task bbh --data $D $M --limit 5 --num-fewshot 0 --max-new-tokens 8 --out "$T/bbh" >/dev/null 2>"$T/err"; rc=$?
check "bbh exit" "[ $rc -eq 0 ] && [ \$(lines $T/bbh/samples.jsonl) -eq 5 ] && grep -q '\"exact_match\"' $T/bbh/summary.json"
$B eval --task humaneval --data $D $M --limit 3 --max-new-tokens 16 --out "$T/he" >/dev/null 2>"$T/err"; rc=$?
if grep -q 'refusing to run model-written code unconfined' "$T/err"; then
    echo "SKIP humaneval: sandbox unavailable here"; skip=$((skip + 1))
else
    check "humaneval exit" "[ $rc -eq 0 ] && [ \$(lines $T/he/samples.jsonl) -eq 3 ] && grep -q '\"pass@1\"' $T/he/summary.json"
fi

# --score-only: gold answers score 1.0, a wrong one 0
awk 'NR <= 4 { n = $0; sub(/.*#### /, "", n); sub(/".*/, "", n); printf "{\"doc_id\":%d,\"output\":\"The answer follows.\\n#### %s\"}\n", NR - 1, n }' $D/gsm8k/test.jsonl >"$T/pred.jsonl"
echo '{"doc_id":4,"output":"#### -1"}' >>"$T/pred.jsonl"
$B eval --task gsm8k --data $D --limit 5 --score-only --predictions "$T/pred.jsonl" --out "$T/so" >"$T/out" 2>"$T/err"; rc=$?
check "score-only exit" "[ $rc -eq 0 ]"
check "score-only strict 4/5" "grep -q 'strict-match: 0.8000' $T/out"
echo '{"doc_id":99,"output":"x"}' >"$T/bad.jsonl"
$B eval --task gsm8k --data $D --limit 5 --score-only --predictions "$T/bad.jsonl" --out "$T/so2" >/dev/null 2>"$T/err"; rc=$?
check "score-only bad doc_id" "[ $rc -ne 0 ] && grep -q 'doc_id' $T/err"

# the sandbox on canonical solutions (all 164 with DPB_EVAL_FULL=1)
N=12; [ -n "$DPB_EVAL_FULL" ] && N=164
$B eval --task humaneval --data $D --canonical --limit $N --out "$T/can" >"$T/out" 2>"$T/err"; rc=$?
if grep -q 'refusing to run model-written code unconfined' "$T/err"; then
    echo "SKIP canonical: sandbox unavailable here"; skip=$((skip + 1))
else
    check "canonical $N/$N" "[ $rc -eq 0 ] && grep -q \"pass@1: 1.0000 +- 0.0000 ($N/$N)\" $T/out"
fi
echo "RESULT pass=$pass fail=$fail skip=$skip"
