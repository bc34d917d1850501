#!/bin/sh
# deploybench serve --model on synth:gpt-oss-tiny, CPU: curl streaming, the
# load generator's token counts against the server's usage, the openai Python
# client (skipped when it does not import), and robustness over raw sockets:
# malformed JSON, wrong types, huge max_tokens, a prompt over the context, an
# unknown model, an oversized body, slow headers, a disconnect mid-stream.
B=${DPB_BIN:-build/deploybench}
SH=${DPB_SHARED:-../shared}
pass=0; fail=0; skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
sk() { skip=$((skip + 1)); echo "SKIP: $*"; }
T=$(mktemp -d)
SPID=
trap '[ -n "$SPID" ] && kill $SPID 2>/dev/null; [ -n "$KEEP" ] || rm -rf "$T"' EXIT

start_server() { # args...; sets SPID and PORT
    rm -f "$T/port"
    "$B" serve --model synth:gpt-oss-tiny --served-model-name tiny --port 0 --port-file "$T/port" \
        --threads-engine 1 --max-model-len 512 "$@" >"$T/serve.log" 2>&1 &
    SPID=$!
    i=0
    while [ ! -s "$T/port" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    PORT=$(cat "$T/port" 2>/dev/null)
    U="http://127.0.0.1:$PORT"
}
stop_server() { kill $SPID 2>/dev/null; wait $SPID; RC=$?; SPID=; }
post() { # path body -> status in $CODE, body in $T/resp
    CODE=$(curl -s -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/json' -d "$2" "$U$1")
}

"$B" serve --help | grep -q -- "--max-batch" && ok || bad "serve --help"
"$B" serve --port 0 >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q -- "--model" "$T/err" && ok || bad "no --model: exit 2"
"$B" serve --model synth:gpt-oss-tiny --backend tpu >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q -- "--backend" "$T/err" && ok || bad "bad --backend"

"$B" serve --model synth:gpt-oss-tiny --kv-cache-dtype int4 >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q -- "--kv-cache-dtype: KV dtype 'int4'" "$T/err" && ok || bad "bad --kv-cache-dtype"
# an FP8 KV cache serves (vLLM's spelling fp8_e4m3)
start_server --max-batch 2 --kv-cache-dtype fp8_e4m3
if [ -z "$PORT" ]; then bad "fp8 server did not start"; cat "$T/serve.log"; else
    post /v1/completions '{"model":"tiny","prompt":[1,2,3],"max_tokens":5,"ignore_eos":true}'
    [ "$CODE" = 200 ] && grep -q '"completion_tokens":[[:space:]]*5' "$T/resp" && ok || { bad "fp8 KV completion: $CODE"; cat "$T/resp"; }
    stop_server
fi

start_server --max-batch 4 --idle-timeout 1 --max-body-bytes 4096
if [ -z "$PORT" ]; then bad "server did not start"; cat "$T/serve.log"; else
    # curl streaming: one chunk per token, usage, [DONE]
    curl -sN -H 'Content-Type: application/json' \
        -d '{"model":"tiny","prompt":[1,2,3],"max_tokens":7,"stream":true,"ignore_eos":true,"stream_options":{"include_usage":true}}' \
        "$U/v1/completions" >"$T/sse"
    n=$(grep -c '"text_completion"' "$T/sse")
    [ "$n" -eq 8 ] && tail -2 "$T/sse" | grep -q '^data: \[DONE\]' \
        && grep -q '"usage":{"prompt_tokens":3,"total_tokens":10,"completion_tokens":7}' "$T/sse" && ok || { bad "curl stream ($n chunks)"; cat "$T/sse"; }
    # continuous usage: every chunk carries usage
    curl -sN -d '{"prompt":[1,2,3],"max_tokens":4,"stream":true,"ignore_eos":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}' \
        "$U/v1/completions" >"$T/sse2"
    [ "$(grep -c '"usage":{' "$T/sse2")" -eq 5 ] && ok || { bad "continuous usage"; cat "$T/sse2"; }
    # errors
    post /v1/completions '{"prompt":[1,2'; [ "$CODE" = 400 ] && grep -q '"error":{"message"' "$T/resp" && ok || bad "malformed JSON: $CODE"
    post /v1/completions '{"prompt":[1],"max_tokens":"many"}'; [ "$CODE" = 400 ] && grep -q '"param":"max_tokens"' "$T/resp" && ok || bad "wrong type: $CODE"
    post /v1/completions '{"prompt":[1],"max_tokens":1000000000}'; [ "$CODE" = 400 ] && ok || bad "huge max_tokens: $CODE"
    post /v1/completions "{\"prompt\":[$(seq -s, 1 600)]}"; [ "$CODE" = 400 ] && grep -q "context" "$T/resp" && ok || bad "prompt over the context: $CODE"
    post /v1/completions '{"model":"nope","prompt":[1]}'; [ "$CODE" = 404 ] && grep -q NotFoundError "$T/resp" && ok || bad "unknown model: $CODE"
    post /v1/completions "{\"prompt\":\"$(head -c 6000 /dev/zero | tr '\0' a)\"}"; [ "$CODE" = 413 ] && ok || bad "oversized body: $CODE"
    post /v2/whatever '{}'; [ "$CODE" = 404 ] && ok || bad "unknown path: $CODE"
    # slow headers: a connection that never finishes its headers is closed by the idle timeout
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$PORT" <<'EOF' && ok || bad "slow headers not closed"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
s.settimeout(5)
t = time.time()
try:
    d = s.recv(100)
except socket.timeout:
    sys.exit(1)
sys.exit(0 if time.time() - t < 4.5 else 1)
EOF
        # a disconnect mid-stream: the request is aborted and the server carries on
        python3 - "$PORT" <<'EOF' && ok || bad "disconnect mid-stream"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
b = b'{"prompt":[1,2,3],"max_tokens":400,"stream":true,"ignore_eos":true}'
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(b) + b)
got = b""
while b"data:" not in got:
    got += s.recv(4096)
s.close()
EOF
        i=0
        while ! curl -s "$U/metrics" | grep -q '^dpb_requests_total{outcome="aborted"} 1$' && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
        curl -s "$U/metrics" | grep -q '^dpb_requests_total{outcome="aborted"} 1$' && ok || bad "abort not counted"
    else
        sk "python3 absent: slow-header and disconnect cases"
    fi
    curl -sf "$U/health" >/dev/null && ok || bad "health after the abuse"
    curl -s "$U/metrics" | grep -q '^dpb_generation_tokens_total [1-9]' && ok || bad "metrics"
    if python3 -c 'import openai' 2>/dev/null; then
        python3 tests/py/openai_client_check.py "$U/v1" tiny >"$T/py" 2>&1 && ok || { bad "openai client"; cat "$T/py"; }
    else
        sk "the openai Python package does not import"
    fi
    stop_server
    [ "$RC" -eq 0 ] && ok || bad "SIGTERM exit $RC"
fi

# the load generator (its random prompts are ids 1000..20999: a vocabulary from a tokenizer):
# every request's token-carrying chunks (one per token) equal the server's usage.  (The
# client's own text count, output_tokens_client, can be lower: with random weights some
# tokens are pieces of a UTF-8 character and their chunk's text is empty until it completes.)
TOKG=$SH/data/tokenizers/gpt2/tokenizer.json
if [ -f "$TOKG" ]; then
    start_server --tokenizer "$TOKG" --max-batch 4
    # the load generator: its counted tokens equal the server's usage
    "$B" load --endpoint "$U" --model tiny --concurrency 4 --num-requests 12 --prompt-tokens 24 --gen-tokens 16 \
        --out "$T/load" >"$T/lout" 2>&1
    [ $? -eq 0 ] && grep -Eq '"completed":[[:space:]]*12,' "$T/load/summary.json" \
        && [ "$(grep -c '"output_tokens_server":16,.*"chunks":16,' "$T/load/requests.jsonl")" -eq 12 ] \
        && grep -q '^Total generated tokens: *192$' "$T/lout" && ok || { bad "load"; cat "$T/lout"; head -3 "$T/load/requests.jsonl"; }
    stop_server
else
    sk "$TOKG absent"
fi

# with a tokenizer: text prompts, chat through the harmony template
TOKF=$SH/data/tokenizers/gpt-oss-harmony/tokenizer.json.gz
if [ -f "$TOKF" ]; then
    start_server --tokenizer "$TOKF"
    post /v1/chat/completions '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"temperature":0,"ignore_eos":true}'
    [ "$CODE" = 200 ] && grep -q '"role":"assistant"' "$T/resp" && grep -q '"completion_tokens":5' "$T/resp" && ok || { bad "chat: $CODE"; cat "$T/resp"; }
    post /v1/completions '{"prompt":"Hello world","max_tokens":3,"temperature":0,"echo":true}'
    [ "$CODE" = 200 ] && grep -q '"text":"Hello world' "$T/resp" && ok || { bad "echo: $CODE"; cat "$T/resp"; }
    if python3 -c 'import openai' 2>/dev/null; then
        python3 tests/py/openai_client_check.py "$U/v1" tiny --text >"$T/py" 2>&1 && ok || { bad "openai client (text)"; cat "$T/py"; }
    else
        sk "the openai Python package does not import"
    fi
    stop_server
else
    sk "$TOKF absent"
fi
echo "RESULT pass=$pass fail=$fail skip=$skip"
[ $fail -eq 0 ]
