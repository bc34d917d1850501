#!/bin/sh
# Soak: C concurrent streaming clients (default 1000) for S seconds (default
# 300) against `deploybench serve --model` on the CPU; RSS of the server
# sampled every 5 s.  Passes when no request failed and the RSS after warm-up
# stays within 5 % (max vs min of the samples after the first minute, or the
# first fifth of the run when shorter).  A dev script, not a CI test.
#
# usage: bench/serve/soak.sh [S] [C]
# env:   B (build/deploybench), TOK (tokenizer, default ../shared gpt2), MODEL (synth:gpt-oss-tiny),
#        BATCH (--max-batch, default 64), OUT (kept results; default a temp dir), SERVE_WRAP
#        (a command prefix for the server, e.g. "valgrind -q")
S=${1:-300}
C=${2:-1000}
B=${B:-build/deploybench}
MODEL=${MODEL:-synth:gpt-oss-tiny}
TOK=${TOK:-../shared/data/tokenizers/gpt2/tokenizer.json}
BATCH=${BATCH:-64}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
ulimit -n $((C * 2 + 256)) 2>/dev/null || ulimit -n 4096
rm -f "$OUT/port"
$SERVE_WRAP "$B" serve --model "$MODEL" --tokenizer "$TOK" --max-batch "$BATCH" --max-queue $((C + 64)) \
    --max-model-len 512 --port 0 --port-file "$OUT/port" --served-model-name m >"$OUT/serve.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null' EXIT
k=0; while [ ! -s "$OUT/port" ] && [ $k -lt 600 ]; do sleep 0.1; k=$((k + 1)); done
PORT=$(cat "$OUT/port")
( while kill -0 $SPID 2>/dev/null; do
      echo "$(date +%s) $(awk '/VmRSS/ {print $2}' /proc/$SPID/status)"; sleep 5
  done ) >"$OUT/rss.txt" &
RPID=$!
"$B" load --endpoint "http://127.0.0.1:$PORT" --model m --concurrency "$C" --duration "$S" --prompt-tokens 16 \
    --gen-tokens 32 --ramp-up 5 --timeout 600 --max-consecutive-failures 0 --out "$OUT/load" >"$OUT/load.log" 2>&1
LRC=$?
curl -s "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics.txt"
kill $RPID 2>/dev/null
python3 - "$OUT" "$S" "$LRC" <<'PY'
import json, sys
out, S, lrc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [l.split() for l in open(out + "/rss.txt") if len(l.split()) == 2]
t0 = int(rows[0][0]); warm = min(60, S // 5)
rss = [int(r[1]) for r in rows if int(r[0]) - t0 >= warm]
lv = json.load(open(out + "/load/summary.json"))["levels"][0]
spread = (max(rss) - min(rss)) / min(rss) * 100 if rss else float("nan")
print(f"load exit {lrc}; completed {lv['completed']}, failed {lv['failed']}, output {lv['output_throughput']:.0f} tok/s, "
      f"p99 TTFT {lv['p99_ttft_ms']:.0f} ms")
print(f"server RSS after {warm} s: min {min(rss)} kB, max {max(rss)} kB, spread {spread:.2f} % over {len(rss)} samples")
ok = lrc == 0 and lv["failed"] == 0 and spread <= 5
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
RC=$?
echo "results: $OUT"
exit $RC
