#!/bin/sh
# deploybench eval --endpoint against deploybench serve (synth:gpt-oss-tiny, GPT-2 tokenizer, CPU):
# MMLU over HTTP gives the same per-sample choices (and loglikelihoods within 1e-3) as in-process on 20
# items; GSM8K over HTTP gives the same outputs, line for line, as in-process; chat endpoints refuse
# loglikelihoods; errors name the request and carry the server's message.
# EVAL_HTTP_FEWSHOT sets the few-shot count of both tasks (default: MMLU 0, GSM8K 2, to keep CI short; the
# tasks' own is 5).
B=${DPB_BIN:-build/deploybench}
D=${DPB_SHARED:-../shared}/data
TOK=$D/tokenizers/gpt2/tokenizer.json
FS=${EVAL_HTTP_FEWSHOT:-0}
GFS=${EVAL_HTTP_FEWSHOT:-2}
pass=0; fail=0; skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }
T=$(mktemp -d)
SPID=
trap '[ -n "$SPID" ] && kill $SPID 2>/dev/null; [ -n "$KEEP" ] || rm -rf "$T"' EXIT

# argument errors need no data
$B eval --task mmlu --data x --endpoint http://127.0.0.1:1 --out "$T/x" 2>"$T/err"; rc=$?
check "endpoint without --model: exit 2" "[ $rc -eq 2 ] && grep -q -- '--model NAME' $T/err"
$B eval --task gsm8k --data x --model m --chat --out "$T/x" 2>"$T/err"; rc=$?
check "--chat without --endpoint: exit 2" "[ $rc -eq 2 ] && grep -q -- '--chat is for --endpoint' $T/err"

if [ ! -f "$TOK" ] || [ ! -d "$D/mmlu" ] || [ ! -f "$D/gsm8k/test.jsonl" ]; then
    echo "SKIP eval over HTTP: $D is absent (needs ../shared/data: GPT-2 tokenizer, mmlu, gsm8k)"; skip=$((skip + 1))
    echo "RESULT pass=$pass fail=$fail skip=$skip"; exit 0
fi

"$B" serve --model synth:gpt-oss-tiny --tokenizer "$TOK" --served-model-name tiny --port 0 --port-file "$T/port" \
    --threads-engine 1 --max-batch 4 >"$T/serve.log" 2>&1 &
SPID=$!
i=0
while [ ! -s "$T/port" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
PORT=$(cat "$T/port" 2>/dev/null)
if [ -z "$PORT" ]; then
    bad "server did not start"; cat "$T/serve.log"
    echo "RESULT pass=$pass fail=$fail skip=$skip"; exit 1
fi
U="http://127.0.0.1:$PORT"
IN="--model synth:gpt-oss-tiny --tokenizer $TOK --threads 1"

# MMLU: 20 items in process and over HTTP (4 requests per question, 4 in flight)
$B eval --task mmlu --data "$D" $IN --limit 20 --num-fewshot "$FS" --batch 4 --out "$T/in" >"$T/in.out" 2>&1; rc=$?
check "mmlu in process" "[ $rc -eq 0 ]"
$B eval --task mmlu --data "$D" --endpoint "$U" --model tiny --limit 20 --num-fewshot "$FS" --batch 4 --out "$T/http" \
    >"$T/http.out" 2>&1; rc=$?
check "mmlu over HTTP" "[ $rc -eq 0 ]"
[ $rc -eq 0 ] || cat "$T/http.out"
picks() { sed 's/.*"doc_id":\([0-9]*\).*"prompt_sha256":"\([0-9a-f]*\)".*"extracted":"\([A-D]\)".*/\1 \2 \3/' "$1" | sort -n; }
picks "$T/in/samples.jsonl" >"$T/in.picks"
picks "$T/http/samples.jsonl" >"$T/http.picks"
check "mmlu: 20 lines each" "[ \$(wc -l <$T/in.picks) -eq 20 ] && [ \$(wc -l <$T/http.picks) -eq 20 ]"
check "mmlu: same prompts and same choice on every item" "cmp -s $T/in.picks $T/http.picks"
cmp -s "$T/in.picks" "$T/http.picks" || diff "$T/in.picks" "$T/http.picks"
lls() { sed 's/.*"doc_id":\([0-9]*\).*"loglikelihoods":\[\([^]]*\)\].*/\1,\2/' "$1" | sort -n; }
lls "$T/in/samples.jsonl" >"$T/in.ll"
lls "$T/http/samples.jsonl" >"$T/http.ll"
maxd=$(paste -d, "$T/in.ll" "$T/http.ll" | awk -F, '{for (i = 2; i <= 5; i++) { d = $i - $(i + 5); if (d < 0) d = -d; if (d > m) m = d }} END {printf "%.6f", m}')
echo "mmlu: largest |loglikelihood difference| in process vs HTTP: $maxd"
check "mmlu: loglikelihoods agree within 1e-3 ($maxd)" "awk 'BEGIN {exit !($maxd < 1e-3)}'"
check "mmlu: summary counts requests" "grep -q '\"requests\":[[:space:]]*80' $T/http/summary.json"

# GSM8K: the same generations, line for line (lm-eval's sampled exemplars, 16 new tokens)
$B eval --task gsm8k --data "$D" $IN --limit 3 --num-fewshot "$GFS" --max-new-tokens 16 --batch 3 --out "$T/gin" >"$T/gin.out" 2>&1; rc=$?
check "gsm8k in process" "[ $rc -eq 0 ]"
$B eval --task gsm8k --data "$D" --endpoint "$U/v1/completions" --model tiny --limit 3 --num-fewshot "$GFS" --max-new-tokens 16 --batch 3 \
    --out "$T/ghttp" >"$T/ghttp.out" 2>&1; rc=$?
check "gsm8k over HTTP" "[ $rc -eq 0 ]"
sort "$T/gin/samples.jsonl" >"$T/gin.s"; sort "$T/ghttp/samples.jsonl" >"$T/ghttp.s"
check "gsm8k: 3 identical lines (prompt hash, output, extraction)" "[ \$(wc -l <$T/gin.s) -eq 3 ] && cmp -s $T/gin.s $T/ghttp.s"
cmp -s "$T/gin.s" "$T/ghttp.s" || diff "$T/gin.s" "$T/ghttp.s"

# chat endpoints: generation works, loglikelihood is refused with the reason
$B eval --task gsm8k --data "$D" --endpoint "$U" --model tiny --chat --limit 1 --num-fewshot 0 --max-new-tokens 4 \
    --out "$T/gchat" >"$T/gchat.out" 2>&1; rc=$?
check "gsm8k over chat" "[ $rc -eq 0 ] && [ \$(wc -l <$T/gchat/samples.jsonl) -eq 1 ]"
$B eval --task mmlu --data "$D" --endpoint "$U/v1/chat/completions" --model tiny --limit 1 --out "$T/mchat" 2>"$T/err"; rc=$?
check "mmlu on a chat endpoint refused" "[ $rc -ne 0 ] && grep -q 'chat endpoints cannot give loglikelihoods' $T/err"
# errors: the request and the server's message
$B eval --task mmlu --data "$D" --endpoint "$U" --model nope --limit 1 --out "$T/nope" 2>"$T/err"; rc=$?
check "unknown model: names the request and the server's message" \
    "[ $rc -ne 0 ] && grep -q 'doc_id 0' $T/err && grep -q 'HTTP 404' $T/err && grep -q 'does not exist' $T/err"
kill $SPID 2>/dev/null; wait $SPID 2>/dev/null; SPID=
$B eval --task gsm8k --data "$D" --endpoint "$U" --model tiny --limit 1 --num-fewshot 0 --out "$T/down" 2>"$T/err"; rc=$?
check "server gone: transport error after retries" "[ $rc -ne 0 ] && grep -q 'attempts' $T/err"

echo "RESULT pass=$pass fail=$fail skip=$skip"
