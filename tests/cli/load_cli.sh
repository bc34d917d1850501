#!/bin/sh
# deploybench serve + load end to end: files written, exit codes, usage errors,
# and a server killed (kill -9) mid-run: errors counted, summary written, exit 1.
B=${DPB_BIN:-build/deploybench}
pass=0; fail=0; skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
ulimit -n 4096 2>/dev/null
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

start_server() { # args...; sets SPID and PORT
    rm -f "$T/port"
    "$B" serve --engine synthetic --port 0 --port-file "$T/port" "$@" >"$T/serve.log" 2>&1 &
    SPID=$!
    i=0
    while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    PORT=$(cat "$T/port" 2>/dev/null)
}

# usage errors exit 2 and name the option
"$B" load --out "$T/x" >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q -- "--endpoint" "$T/err" && ok || bad "missing --endpoint"
"$B" load --endpoint http://127.0.0.1:1 --out "$T/x" --concurrency 1 --bogus >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q -- "--bogus" "$T/err" && ok || bad "unknown option"
"$B" load --endpoint http://127.0.0.1:1 --out "$T/x" --concurrency 1 --verdict nope >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q "preset" "$T/err" && ok || bad "unknown preset"
"$B" load --help | grep -q -- "--slo-search" && ok || bad "load --help"
"$B" serve --help | grep -q "calibration target" && ok || bad "serve --help"

# a sweep: two levels, files and columns
start_server --ttft 5 --itl 1
if [ -z "$PORT" ]; then bad "server did not start"; else
    "$B" load --endpoint "http://127.0.0.1:$PORT" --concurrency 1,4 --num-requests 12 --gen-tokens 8 \
        --goodput ttft:1000,tpot:1000 --verdict llama2-70b --out "$T/run" >"$T/out" 2>&1
    rc=$?
    [ $rc -eq 0 ] && ok || { bad "sweep exit $rc"; cat "$T/out"; }
    P0SPID=$SPID; P0PORT=$PORT
    for f in manifest.json summary.json sweep.csv serving_table.md requests.jsonl; do
        [ -s "$T/run/$f" ] && ok || bad "missing $f"
    done
    [ "$(wc -l < "$T/run/sweep.csv")" -eq 3 ] && ok || bad "sweep.csv rows"
    [ "$(wc -l < "$T/run/requests.jsonl")" -eq 24 ] && ok || bad "requests.jsonl lines"
    grep -q '"p99_tpot_ms"' "$T/run/summary.json" && grep -q '"mean_ttft_ms"' "$T/run/summary.json" && ok || bad "vLLM keys"
    grep -Eq '"result":[[:space:]]*"VALID"' "$T/run/summary.json" && ok || bad "verdict VALID"
    grep -q '"commit"' "$T/run/manifest.json" && grep -q '"cpu_model"' "$T/run/manifest.json" && ok || bad "manifest"
    head -1 "$T/run/sweep.csv" | grep -q "p99_ttft_ms" && ok || bad "csv header"
    # client-side counting with a real tokenizer (GPT-2 from ../shared): chunks of 4 words
    # are 4 tokens each, so the client's count matches the server's usage
    TOKF=${DPB_SHARED:-../shared}/data/tokenizers/gpt2/tokenizer.json
    if [ -f "$TOKF" ]; then
        start_server --ttft 2 --itl 1 --tokens-per-chunk 4
        "$B" load --endpoint "http://127.0.0.1:$PORT" --concurrency 2 --num-requests 6 --gen-tokens 17 \
            --tokenizer "$TOKF" --out "$T/tok" >"$T/out" 2>&1
        [ $? -eq 0 ] && grep -Eq '"mismatch_rate":[[:space:]]*0$' "$T/tok/summary.json" \
            && grep -q '"output_tokens_client":17,"output_tokens_client_method":"tokenizer:tokenizer.json"' "$T/tok/requests.jsonl" \
            && ok || { bad "--tokenizer"; cat "$T/out"; }
        "$B" load --endpoint "http://127.0.0.1:$PORT" --concurrency 2 --num-requests 6 --gen-tokens 17 --out "$T/tok2" >/dev/null 2>&1
        grep -Eq '"mismatch_rate":[[:space:]]*1$' "$T/tok2/summary.json" && ok || bad "chunk counting mismatch"
        kill $SPID 2>/dev/null; wait $SPID 2>/dev/null
        SPID=$P0SPID; PORT=$P0PORT
    else
        echo "SKIP --tokenizer: ../shared absent"; skip=$((skip + 1))
    fi
    # a custom limit the server cannot meet: INVALID with the reason (the exit status stays 0)
    "$B" load --endpoint "http://127.0.0.1:$PORT" --concurrency 1 --num-requests 3 --gen-tokens 4 --slo ttft:1,tpot:1000 \
        --out "$T/inv" >"$T/out" 2>&1
    [ $? -eq 0 ] && grep -Eq '"result":[[:space:]]*"INVALID"' "$T/inv/summary.json" && grep -q "p99 TTFT .* > 1 ms" "$T/inv/summary.json" \
        && grep -q ",INVALID$" "$T/inv/sweep.csv" && ok || { bad "INVALID verdict"; cat "$T/out"; }
    P0=$PORT; S0=$SPID
    # a dataset file (plain and JSON lines), chat, per-chunk times recorded
    printf 'one two three\n{"prompt": "four five"}\n\n' >"$T/prompts.txt"
    "$B" load --endpoint "http://127.0.0.1:$PORT" --api chat --dataset "$T/prompts.txt" --concurrency 1 --num-requests 2 \
        --gen-tokens 3 --record-chunks --out "$T/ds" >"$T/out" 2>&1
    [ $? -eq 0 ] && grep -q '"prompt_tokens_server":3,' "$T/ds/requests.jsonl" && grep -q '"prompt_tokens_server":2,' "$T/ds/requests.jsonl" \
        && grep -Eq '"chunk_times_ms":\[[0-9.]+,[0-9.]+,[0-9.]+\]' "$T/ds/requests.jsonl" && ok || { bad "dataset/record-chunks"; cat "$T/out" "$T/ds/requests.jsonl"; }
    printf '{"prompt": 5}\n' >"$T/bad.txt"
    "$B" load --endpoint "http://127.0.0.1:$PORT" --dataset "$T/bad.txt" --concurrency 1 --out "$T/ds2" >/dev/null 2>"$T/err"
    [ $? -eq 2 ] && grep -q "line 1" "$T/err" && ok || { bad "bad dataset"; cat "$T/err"; }
    # open loop, chat API
    "$B" load --endpoint "http://127.0.0.1:$PORT/v1" --api chat --request-rate 200 --num-requests 10 --gen-tokens 4 \
        --out "$T/chat" >"$T/out" 2>&1 && grep -Eq '"completed":[[:space:]]*10,' "$T/chat/summary.json" && ok || { bad "chat open loop"; cat "$T/out"; }
    # --slo-search against a server that refuses beyond 4 in flight
    start_server --ttft 5 --itl 1 --max-queue 4
    "$B" load --endpoint "http://127.0.0.1:$PORT" --slo-search --slo ttft:100,tpot:50 --slo-search-start 50 \
        --slo-search-steps 2 --num-requests 40 --gen-tokens 3 --out "$T/slo" >"$T/out" 2>&1
    rc=$?
    [ $rc -eq 0 ] && grep -q "highest_valid_request_rate" "$T/slo/summary.json" && grep -q "SLO search: highest VALID rate" "$T/out" \
        && ok || { bad "slo-search exit $rc"; cat "$T/out"; }
    kill $SPID 2>/dev/null; wait $SPID 2>/dev/null
    SPID=$S0; PORT=$P0
    # a fleet: two endpoints, requests alternate
    P1=$PORT; S1=$SPID
    start_server --ttft 2 --itl 1
    "$B" load --endpoint "http://127.0.0.1:$P1" --endpoint "http://127.0.0.1:$PORT" --concurrency 2 --num-requests 10 \
        --gen-tokens 3 --out "$T/fleet" >"$T/out" 2>&1
    [ $? -eq 0 ] && [ "$(grep -c ":$P1\"" "$T/fleet/requests.jsonl")" -eq 5 ] && [ "$(grep -c ":$PORT\"" "$T/fleet/requests.jsonl")" -eq 5 ] \
        && ok || { bad "fleet"; cat "$T/out"; }
    # Ctrl-C: exit 130, what finished is kept
    "$B" load --endpoint "http://127.0.0.1:$PORT" --concurrency 2 --duration 30 --gen-tokens 20 --out "$T/int" >"$T/out" 2>&1 &
    LPID=$!
    sleep 1
    kill -INT $LPID
    wait $LPID
    rc=$?
    [ $rc -eq 130 ] && [ -s "$T/int/summary.json" ] && grep -Eq '"interrupted":[[:space:]]*[1-9]' "$T/int/summary.json" \
        && ok || { bad "interrupt: exit $rc"; cat "$T/out"; }
    kill $SPID 2>/dev/null; wait $SPID 2>/dev/null
    SPID=$S1; PORT=$P1
    # the server dies mid-run
    "$B" load --endpoint "http://127.0.0.1:$PORT" --concurrency 4 --duration 4 --gen-tokens 50 \
        --max-consecutive-failures 20 --out "$T/kill" >"$T/out" 2>&1 &
    LPID=$!
    sleep 0.7
    kill -9 $SPID
    wait $SPID 2>/dev/null
    wait $LPID
    rc=$?
    [ $rc -eq 1 ] && ok || { bad "exit code after the server died: $rc"; cat "$T/out"; }
    [ -s "$T/kill/summary.json" ] && ok || bad "no summary after the server died"
    grep -Eq '"early_close":[[:space:]]*[1-9]' "$T/kill/summary.json" && ok || { bad "early_close not counted"; grep -A8 failures "$T/kill/summary.json"; }
    grep -Eq '"failed":[[:space:]]*[1-9]' "$T/kill/summary.json" && ok || bad "failed not counted"
    # every JSONL line is whole
    python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$T/kill/requests.jsonl" 2>/dev/null && ok || \
        { command -v python3 >/dev/null && bad "torn JSONL" || skip=$((skip + 1)); }
fi
kill $SPID 2>/dev/null
# --launch: start, wait for /health, run, stop
LP=$((20000 + $$ % 30000)) # --launch needs the port in advance; vary it so parallel runs do not collide
"$B" load --launch "exec $B serve --engine synthetic --port $LP --ttft 1 --itl 1" --endpoint http://127.0.0.1:$LP \
    --concurrency 2 --num-requests 4 --gen-tokens 2 --out "$T/launch" >"$T/out" 2>&1
[ $? -eq 0 ] && grep -Eq '"completed":[[:space:]]*4,' "$T/launch/summary.json" && ok || { bad "--launch"; cat "$T/out"; }
sleep 0.2
if command -v ss >/dev/null && ss -ltn | grep -q ":$LP "; then bad "--launch left the server running"; else ok; fi
echo "RESULT pass=$pass fail=$fail skip=$skip"
