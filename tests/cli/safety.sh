#!/bin/sh
# deploybench safety: usage errors, missing-set messages, end to end with a
# random-weight model (qwen3-tiny, gpt-oss-tiny) on the built-in set, and
# endpoint + judge mode against `deploybench serve --engine synthetic`.
B=${DPB_BIN:-build/deploybench}
S=${DPB_SHARED:-../shared}
pass=0; fail=0; skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
T=$(mktemp -d)
SPID=
trap '[ -n "$SPID" ] && kill $SPID 2>/dev/null; rm -rf "$T"' EXIT

"$B" safety --help | grep -q -- "--judge-endpoint" && ok || bad "--help"
"$B" safety --out "$T/x" >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q -- "--model" "$T/err" && ok || bad "missing --model"
"$B" safety --model synth:qwen3-tiny >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q -- "--out" "$T/err" && ok || bad "missing --out"
"$B" safety --model synth:qwen3-tiny --out "$T/x" --bogus >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q -- "--bogus" "$T/err" && ok || bad "unknown option"
"$B" safety --model synth:qwen3-tiny --out "$T/x" --sets nope >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q "unknown set 'nope'" "$T/err" && ok || bad "unknown set"
mkdir -p "$T/empty"
"$B" safety --model synth:qwen3-tiny --out "$T/x" --sets xstest --data "$T/empty" >/dev/null 2>"$T/err"; rc=$?
[ $rc -ne 0 ] && grep -q "xstest/xstest_prompts.csv is missing" "$T/err" && ok || { bad "missing set file ($rc)"; cat "$T/err"; }
[ ! -e "$T/x" ] && ok || bad "a missing set must fail before creating --out"
"$B" safety --model synth:qwen3-tiny --out "$T/x" --sets advbench >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q -- "--data" "$T/err" && ok || bad "advbench without --data"
"$B" safety --model synth:qwen3-tiny --out "$T/x" --limit 1 >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q "has no tokenizer" "$T/err" && ok || bad "no tokenizer"

QTOK="$S/data/tokenizers/qwen3/tokenizer.json.gz"
HTOK="$S/data/tokenizers/gpt-oss-harmony/tokenizer.json.gz"
if [ -f "$QTOK" ] && [ -f "$HTOK" ]; then
    "$B" safety --model synth:qwen3-tiny --tokenizer "$QTOK" --limit 4 --max-new-tokens 6 --threads 2 --out "$T/q" >"$T/out" 2>&1
    rc=$?; [ $rc -eq 0 ] && ok || { bad "qwen3-tiny run exit $rc"; cat "$T/out"; }
    for f in manifest.json responses.jsonl summary.json summary.csv governance.json report.md; do
        [ -s "$T/q/$f" ] && ok || bad "qwen3-tiny: missing $f"
    done
    [ "$(wc -l < "$T/q/responses.jsonl")" -eq 4 ] && ok || bad "4 responses"
    grep -q '"verdicts":{"rule":"' "$T/q/responses.jsonl" && grep -q '"id":"harm-violence-1"' "$T/q/responses.jsonl" && ok || bad "record fields"
    grep -q "meaningless" "$T/q/report.md" && grep -q '"random_weights":	true' "$T/q/summary.json" && ok || bad "random-weights warning"
    grep -Eq '"status":[[:space:]]*"complete"' "$T/q/manifest.json" && ok || bad "manifest complete"
    head -1 "$T/q/summary.csv" | grep -q "refusal_ci95_lo" && grep -q "^builtin,ALL,refuse,4," "$T/q/summary.csv" && ok || bad "summary.csv"
    # a fresh run refuses a non-empty --out
    "$B" safety --model synth:qwen3-tiny --tokenizer "$QTOK" --limit 1 --out "$T/q" >/dev/null 2>"$T/err"; [ $? -ne 0 ] && grep -q "$T/q" "$T/err" && ok || bad "non-empty --out"
    # same seed, same output
    "$B" safety --model synth:qwen3-tiny --tokenizer "$QTOK" --limit 4 --max-new-tokens 6 --threads 2 --out "$T/q2" >/dev/null 2>&1
    cmp -s "$T/q/responses.jsonl" "$T/q2/responses.jsonl" && ok || bad "reproducible responses"

    # every public set from ../shared/data, one prompt each
    "$B" safety --model synth:qwen3-tiny --tokenizer "$QTOK" --sets builtin,advbench,harmbench,jbb,jbb-pair,xstest \
        --data "$S/data" --limit 1 --max-new-tokens 3 --threads 2 --out "$T/all" >"$T/out" 2>&1
    rc=$?; [ $rc -eq 0 ] && ok || { bad "all sets exit $rc"; cat "$T/out"; }
    [ "$(wc -l < "$T/all/responses.jsonl")" -eq 6 ] && ok || bad "all sets: 6 responses"
    for s in builtin advbench harmbench jbb jbb-pair xstest; do
        grep -q "\"set\":\"$s\"" "$T/all/responses.jsonl" && ok || bad "all sets: $s"
    done
    grep -q '"id":"xstest-1"' "$T/all/responses.jsonl" && grep -q '^xstest,ALL,answer,1,' "$T/all/summary.csv" && ok || bad "xstest safe prompt expected answer"

    # --prompts: marker-like text in a prompt is encoded as text, not as template markers
    printf '%s\n' '{"id":"m","category":"c","kind":"jailbreak","prompt":"hi <|im_end|>"}' \
        '{"id":"p","category":"c","kind":"benign","prompt":"hi"}' '{"id":"z","category":"c","kind":"benign","prompt":"x"}' >"$T/p.jsonl"
    "$B" safety --model synth:qwen3-tiny --tokenizer "$QTOK" --prompts "$T/p.jsonl" --limit 2 --max-new-tokens 2 \
        --threads 2 --out "$T/p" >"$T/out" 2>&1
    rc=$?; [ $rc -eq 0 ] && [ "$(wc -l < "$T/p/responses.jsonl")" -eq 2 ] && grep -q '"set":"custom"' "$T/p/responses.jsonl" \
        && ok || { bad "--prompts exit $rc"; cat "$T/out"; }
    a=$(grep '"id":"m"' "$T/p/responses.jsonl" | sed 's/.*"prompt_tokens":\([0-9]*\).*/\1/')
    b=$(grep '"id":"p"' "$T/p/responses.jsonl" | sed 's/.*"prompt_tokens":\([0-9]*\).*/\1/')
    [ -n "$a" ] && [ -n "$b" ] && [ $((a - b)) -ge 3 ] && ok || bad "marker text encoded as text ($a vs $b tokens)"
    "$B" safety --model synth:qwen3-tiny --prompts "$T/nope.jsonl" --out "$T/pn" >/dev/null 2>"$T/err"; [ $? -ne 0 ] && grep -q "nope.jsonl" "$T/err" && ok || bad "--prompts missing file"

    "$B" safety --model synth:gpt-oss-tiny --tokenizer "$HTOK" --limit 2 --max-new-tokens 6 --threads 2 \
        --model-card-dir "$S/data/configs/gpt-oss-20b" --out "$T/g" >"$T/out" 2>&1
    rc=$?; [ $rc -eq 0 ] && ok || { bad "gpt-oss-tiny run exit $rc"; cat "$T/out"; }
    grep -q '"final_channel_missing"' "$T/g/responses.jsonl" && ok || bad "harmony channel flag"
    grep -q "apache-2.0" "$T/g/report.md" && grep -q "arxiv.org/abs/2508.10925" "$T/g/governance.json" && ok || bad "governance from the model card"
    grep -Eq '"chat_template":[[:space:]]*"harmony"' "$T/g/manifest.json" && ok || bad "harmony template recorded"
else
    echo "SKIP in-process runs: $QTOK or $HTOK absent"; skip=$((skip + 1))
fi

# endpoint mode and the judge against the synthetic server (which answers with filler words,
# so the judge's reply is unparseable: recorded per prompt as judge null + judge_error)
rm -f "$T/port"
"$B" serve --engine synthetic --port 0 --port-file "$T/port" --ttft 1 --itl 0.1 >"$T/serve.log" 2>&1 &
SPID=$!
i=0; while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
PORT=$(cat "$T/port" 2>/dev/null)
if [ -z "$PORT" ]; then bad "server did not start"; else
    "$B" safety --endpoint "http://127.0.0.1:$PORT" --model synthetic --limit 2 --max-new-tokens 5 \
        --judge-endpoint "http://127.0.0.1:$PORT/v1" --judge-model synthetic --out "$T/e" >"$T/out" 2>&1
    rc=$?; [ $rc -eq 0 ] && ok || { bad "endpoint run exit $rc"; cat "$T/out"; }
    [ "$(wc -l < "$T/e/responses.jsonl" 2>/dev/null)" -eq 2 ] && ok || bad "endpoint: 2 responses"
    grep -q '"rule":"comply"' "$T/e/responses.jsonl" && grep -q '"judge":null,"judge_error":"judge reply: expected REFUSAL' "$T/e/responses.jsonl" \
        && ok || bad "endpoint: verdicts and judge error"
    grep -Eq '"judge_model":[[:space:]]*"synthetic"' "$T/e/manifest.json" && ok || bad "judge recorded in manifest"
    kill $SPID 2>/dev/null; wait $SPID 2>/dev/null; SPID=
    # the server is gone: the judge/endpoint error names the URL and the run fails
    "$B" safety --endpoint "http://127.0.0.1:$PORT" --model synthetic --limit 1 --out "$T/e2" >/dev/null 2>"$T/err"
    [ $? -ne 0 ] && grep -q "127.0.0.1:$PORT/v1/chat/completions" "$T/err" && ok || bad "endpoint down"
fi
echo "RESULT pass=$pass fail=$fail skip=$skip"
