#!/bin/bash
# Issue 8 on the GPU machine, one call each (each fits the 10-minute limit):
#   bash bench/serve/device.sh sweep      # concurrency sweep at 1k/1k with deploybench load
#   bash bench/serve/device.sh overhead   # serving overhead, gpt-oss-20b on CUDA
# Carried (binaries built on the development machine, with CUDA): $C/deploybench, $C/serve_inproc
# (from `sh bench/serve/overhead.sh build-only`: build/bench/serve_inproc), $C/lib (runtime
# libraries, as the other device scripts) and the harmony tokenizer under $C/shared.  Results under $OUT.
#
# The runtime libraries are given to deploybench alone (LD_LIBRARY_PATH on its command line, never
# exported): a carried libcurl/libssl in the environment breaks the system's curl.  The server's
# readiness is its --port-file (written once the engine is built and the port is listening), so no
# health-check loop is needed.
#
# sweep: one `deploybench serve` (MODEL synth:gpt-oss-20b, BACKEND cuda, --max-batch 256,
# --max-model-len 2048, --prefill-chunk 2048), one short warm-up request, then one `deploybench load`
# per level of LEVELS (1,2,4,8,16,32,64,128,256), closed loop, all users at once, --num-requests
# 2 x concurrency below 16 and 1 x from 16 (each user's requests run back to back: one or two full
# 1k/1k requests per user), PT prompt / GT generated tokens (1000/1000, ignore_eos).  A time budget
# (BUDGET, default 540 s from the script's start) keeps the call under 10 minutes: a level is not
# started when the previous level's time per wave of requests, times this level's waves, exceeds
# what is left (the rest are listed as not run), and a level still running when the budget ends is
# interrupted (SIGINT; listed as interrupted).  Split the levels over two calls with LEVELS=... if the
# first call does not reach 256.  Prints a Markdown table; raw logs and summary.json per level under
# $OUT/sweep/cN.
#
# The same flow on a CPU with the tiny preset (what the development machine runs to test it):
#   C=. B=build/deploybench LIBS= MODEL=synth:gpt-oss-tiny BACKEND=cpu MAXB=8 CTX=512 PT=64 GT=32 \
#       LEVELS=1,2,4,8 TOK=../shared/data/tokenizers/gpt2/tokenizer.json OUT=/tmp/dev-sweep \
#       bash bench/serve/device.sh sweep
C=${C:-$PWD/.devcarry}
OUT=${OUT:-/tmp/out}
B=${B:-$C/deploybench}
LIBS=${LIBS-$C/lib}
TOK=${TOK:-$C/shared/data/tokenizers/gpt-oss-harmony/tokenizer.json.gz}
BUDGET=${BUDGET:-540}
T_START=$(date +%s)
mkdir -p "$OUT"
dpb() { LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$B" "$@"; }
left() { echo $((BUDGET - ($(date +%s) - T_START))); }
date -u
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
uptime

# one row of the table from a `deploybench load` log
row() { # concurrency requests log seconds status
    awk -v c="$1" -v n="$2" -v s="$4" -v st="$5" -F: '
        /^Successful requests/ {ok = $2 + 0} /^Failed requests/ {bad = $2 + 0}
        /^Benchmark duration/ {d = $2 + 0} /^Output token throughput/ {tps = $2 + 0}
        /^TTFT mean/ {split($2, a, "/"); t50 = a[2] + 0; t99 = a[3] + 0}
        /^TPOT mean/ {split($2, a, "/"); p50 = a[2] + 0; p99 = a[3] + 0}
        /^ITL mean/ {split($2, a, "/"); i99 = a[3] + 0}
        END {
            if (ok == "" && bad == "") { printf "| %s | %s | %s | | | | | | %s s |\n", c, n, st, s; exit }
            printf "| %s | %s | %d / %d | %.1f | %.1f | %.0f / %.0f | %.2f / %.2f | %.2f | %s s |\n",
                   c, n, ok, bad, d, tps, t50, t99, p50, p99, i99, s
        }' "$3"
}

case "$1" in
sweep)
    MODEL=${MODEL:-synth:gpt-oss-20b}
    BACKEND=${BACKEND:-cuda}
    LEVELS=${LEVELS:-1,2,4,8,16,32,64,128,256}
    MAXB=${MAXB:-256}
    CTX=${CTX:-2048}
    CHUNK=${CHUNK:-2048}
    PT=${PT:-1000}
    GT=${GT:-1000}
    TOKARG=()
    [ -f "$TOK" ] && TOKARG=(--tokenizer "$TOK")
    mkdir -p "$OUT/sweep"
    rm -f "$OUT/port"
    # not through dpb(): $! must be the server itself, not a subshell running it
    LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$B" serve --model "$MODEL" --backend "$BACKEND" \
        "${TOKARG[@]}" --max-batch "$MAXB" --max-model-len "$CTX" --prefill-chunk "$CHUNK" --max-queue 4096 \
        --served-model-name m --port 0 --port-file "$OUT/port" >"$OUT/serve.log" 2>&1 &
    SPID=$!
    trap 'kill $SPID 2>/dev/null' EXIT
    while [ ! -s "$OUT/port" ]; do
        if ! kill -0 $SPID 2>/dev/null; then echo "the server exited:"; tail -20 "$OUT/serve.log"; exit 1; fi
        if [ "$(left)" -le 60 ]; then echo "the server was not ready after $(($(date +%s) - T_START)) s"; tail -5 "$OUT/serve.log"; exit 1; fi
        sleep 0.5
    done
    U="http://127.0.0.1:$(cat "$OUT/port")"
    echo "server ready after $(($(date +%s) - T_START)) s: $(tail -1 "$OUT/serve.log")"
    # one request through every path first (first-use costs stay out of the levels)
    t=$(date +%s.%N)
    dpb load --endpoint "$U" --model m --concurrency 1 --num-requests 1 --prompt-tokens "$PT" --gen-tokens 16 \
        --out "$OUT/sweep/warmup" >"$OUT/sweep/warmup.log" 2>&1 || { echo "warm-up failed:"; tail -5 "$OUT/sweep/warmup.log"; }
    echo "warm-up request: $(awk "BEGIN {printf \"%.1f\", $(date +%s.%N) - $t}") s"
    TABLE="| concurrency | requests | completed / failed | duration (s) | output tok/s | TTFT p50 / p99 (ms) | TPOT p50 / p99 (ms) | ITL p99 (ms) | wall |
|---|---|---|---|---|---|---|---|---|"
    wave=""   # seconds per wave of requests in the last level run
    stop=""
    for c in ${LEVELS//,/ }; do
        n=$c; [ "$c" -lt 16 ] && n=$((2 * c))
        waves=$((n / c))
        L=$(left)
        if [ -z "$stop" ] && [ -n "$wave" ] && [ "$(awk "BEGIN {print ($wave * $waves > $L - 10)}")" = 1 ]; then
            stop="estimate $(awk "BEGIN {printf \"%.0f\", $wave * $waves}") s > $L s left"
        fi
        if [ -n "$stop" ] || [ "$L" -le 15 ]; then
            TABLE="$TABLE
| $c | $n | not run (${stop:-budget spent}) | | | | | | |"
            stop=${stop:-budget spent}
            continue
        fi
        t0=$(date +%s.%N)
        timeout -s INT $((L - 5)) env LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$B" load \
            --endpoint "$U" --model m --concurrency "$c" --num-requests "$n" --ramp-up 0 \
            --prompt-tokens "$PT" --gen-tokens "$GT" --timeout 900 --out "$OUT/sweep/c$c" >"$OUT/sweep/c$c.log" 2>&1
        rc=$?
        s=$(awk "BEGIN {printf \"%.0f\", $(date +%s.%N) - $t0}")
        st="load exit $rc"; [ $rc -eq 124 ] && st="interrupted by the budget"
        TABLE="$TABLE
$(row "$c" "$n" "$OUT/sweep/c$c.log" "$s" "$st")"
        echo "level $c: $n requests, $s s, load exit $rc ($(left) s left)"
        wave=$(awk "BEGIN {print $s / $waves}")
        [ $rc -eq 124 ] && stop="the budget ended during level $c"
    done
    env -u LD_LIBRARY_PATH curl -s -m 5 "$U/metrics" >"$OUT/metrics.txt"
    kill -TERM $SPID
    for i in $(seq 60); do kill -0 $SPID 2>/dev/null || break; sleep 0.5; done
    if kill -0 $SPID 2>/dev/null; then echo "the server did not exit within 30 s of SIGTERM"; kill -KILL $SPID; fi
    wait $SPID 2>/dev/null
    echo "server exit status: $?"
    trap - EXIT
    echo
    echo "$MODEL, $BACKEND, --max-batch $MAXB, --max-model-len $CTX, --prefill-chunk $CHUNK, prompt $PT, generated $GT:"
    echo "$TABLE" | tee "$OUT/sweep/table.md"
    grep -E '^dpb_(requests_total|engine_errors_total|engine_steps_total)' "$OUT/metrics.txt"
    tail -3 "$OUT/serve.log"
    ;;
overhead)
    LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} B=$B INPROC=$C/serve_inproc MODEL=synth:gpt-oss-20b \
        TOK=$TOK BACKEND=cuda THREADS=0 GEN=128 OUT=$OUT/overhead sh bench/serve/overhead.sh 30
    ;;
*) echo "usage: device.sh sweep|overhead"; exit 2 ;;
esac
echo "call time: $(($(date +%s) - T_START)) s"
uptime
