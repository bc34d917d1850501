#!/bin/sh
# Soak: C concurrent streaming clients (default 1000) for S seconds (default
# 300) from `deploybench load` against `deploybench serve --model` (default
# synth:gpt-oss-tiny, CPU) on loopback.  The server's VmRSS is read from
# /proc/PID/status every I seconds (default 3).
#
# Passes when the load generator reports no failed request, the server counts
# no aborted or failed request, the server exits 0 on SIGTERM with no
# sanitizer report in its log, and the mean RSS of the last minute is within
# 5 % of the mean RSS of the first minute after the warm-up (the first minute;
# shorter runs: a fifth of the run, and windows of min(60 s, the rest / 2)).
# Prints a table; keeps everything under OUT.  A dev script, not a CI test.
#
# usage: bench/serve/soak.sh [S] [C]
# env:   B (build/deploybench: the server; under ASan: B=build-asan/deploybench), LOADB (the load
#        generator, default build/deploybench), TOK (tokenizer, default ../shared gpt2), MODEL
#        (synth:gpt-oss-tiny), BATCH (--max-batch, 64), THREADS (--threads-engine, 1), PROMPT (16),
#        GEN (32), I (RSS sampling interval, 3 s), OUT (results; default a temp dir),
#        SERVE_WRAP (a command prefix for the server)
S=${1:-300}
C=${2:-1000}
B=${B:-build/deploybench}
LOADB=${LOADB:-build/deploybench}
MODEL=${MODEL:-synth:gpt-oss-tiny}
TOK=${TOK:-../shared/data/tokenizers/gpt2/tokenizer.json}
BATCH=${BATCH:-64}
THREADS=${THREADS:-1}
PROMPT=${PROMPT:-16}
GEN=${GEN:-32}
I=${I:-3}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
ulimit -n $((C * 2 + 256)) 2>/dev/null || ulimit -n 4096
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo -dirty)"
    echo "server: $B; load: $LOADB; model $MODEL; $C clients; $S s; --max-batch $BATCH; --threads-engine $THREADS"
    echo "prompt $PROMPT tokens, $GEN generated; nproc $(nproc)"
    echo "uptime before: $(uptime)"
} >"$OUT/info.txt"
rm -f "$OUT/port"
$SERVE_WRAP "$B" serve --model "$MODEL" --tokenizer "$TOK" --max-batch "$BATCH" --max-queue $((C + 64)) \
    --threads-engine "$THREADS" --max-model-len 512 --port 0 --port-file "$OUT/port" --served-model-name m \
    >"$OUT/serve.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null' EXIT
k=0; while [ ! -s "$OUT/port" ] && [ $k -lt 1200 ] && kill -0 $SPID 2>/dev/null; do sleep 0.1; k=$((k + 1)); done
PORT=$(cat "$OUT/port" 2>/dev/null)
if [ -z "$PORT" ]; then echo "the server did not start:"; cat "$OUT/serve.log"; exit 1; fi
# time, VmRSS (kB), open fds, requests in the server (waiting + running)
( while kill -0 $SPID 2>/dev/null; do
      r=$(awk '/VmRSS/ {print $2}' /proc/$SPID/status 2>/dev/null)
      f=$(ls /proc/$SPID/fd 2>/dev/null | wc -l)
      q=$(curl -s -m 2 "http://127.0.0.1:$PORT/metrics" | awk '/^dpb_num_requests_(waiting|running) / {n += $2} END {print n + 0}')
      echo "$(date +%s.%N) $r $f $q"; sleep "$I"
  done ) >"$OUT/rss.txt" &
RPID=$!
T0=$(date +%s.%N)
echo "$T0" >"$OUT/t0"
"$LOADB" load --endpoint "http://127.0.0.1:$PORT" --model m --concurrency "$C" --duration "$S" \
    --prompt-tokens "$PROMPT" --gen-tokens "$GEN" --ramp-up 5 --timeout 600 --max-consecutive-failures 0 \
    --out "$OUT/load" >"$OUT/load.log" 2>&1
LRC=$?
curl -s "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics.txt"
kill $RPID 2>/dev/null
kill -TERM $SPID
wait $SPID
SRC=$?
trap - EXIT
echo "uptime after: $(uptime)" >>"$OUT/info.txt"
python3 - "$OUT" "$S" "$LRC" "$SRC" "$C" <<'PY'
import json, re, sys
out, S, lrc, src, C = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t0 = float(open(out + "/t0").read())
samp = [l.split() for l in open(out + "/rss.txt") if len(l.split()) == 4]
rows = [(float(a[0]) - t0, int(a[1])) for a in samp]
fds = max(int(a[2]) for a in samp) if samp else 0
inq = max(int(a[3]) for a in samp) if samp else 0
warm = 60 if S >= 180 else S / 5
win = min(60, (S - warm) / 2)
first = [r for t, r in rows if warm <= t < warm + win]
last = [r for t, r in rows if S - win <= t < S]
after = [r for t, r in rows if warm <= t < S]
mean = lambda v: sum(v) / len(v) if v else float("nan")
growth = (mean(last) - mean(first)) / mean(first) * 100 if first and last else float("nan")
spread = (max(after) - min(after)) / min(after) * 100 if after else float("nan")
summ = json.load(open(out + "/load/summary.json"))
lv = summ["levels"][0]
m = open(out + "/metrics.txt").read()
def metric(name):
    g = re.search(r"^" + re.escape(name) + r" (\S+)$", m, re.M)
    return float(g.group(1)) if g else float("nan")
aborted = metric('dpb_requests_total{outcome="aborted"}')
failed_srv = metric('dpb_requests_total{outcome="failed"}')
finished = metric('dpb_requests_total{outcome="finished"}')
log = open(out + "/serve.log", errors="replace").read()
san = [l for l in log.splitlines() if "Sanitizer" in l or "runtime error" in l]
info = open(out + "/info.txt").read().strip().splitlines()
print("\n".join("  " + l for l in info))
rows_t = [
    ("clients (concurrent streams)", f"{C}"),
    ("duration (s)", f"{S}"),
    ("requests completed / failed (load)", f"{lv['completed']} / {lv['failed']}"),
    ("server: finished / aborted / failed", f"{finished:.0f} / {aborted:.0f} / {failed_srv:.0f}"),
    ("output tok/s", f"{lv['output_throughput']:.0f}"),
    ("TTFT p50 / p99 (ms)", f"{lv['median_ttft_ms']:.0f} / {lv['p99_ttft_ms']:.0f}"),
    ("TPOT p50 / p99 (ms)", f"{lv['median_tpot_ms']:.1f} / {lv['p99_tpot_ms']:.1f}"),
    ("most requests in the server (waiting + running) / open fds", f"{inq} / {fds}"),
    (f"RSS samples (every {float(rows[1][0] - rows[0][0]) if len(rows) > 1 else 0:.1f} s)", f"{len(rows)}"),
    ("RSS at start (kB)", f"{rows[0][1] if rows else 'n/a'}"),
    (f"RSS mean, first window [{warm:.0f}, {warm + win:.0f}) s (kB)", f"{mean(first):.0f} ({len(first)} samples)"),
    (f"RSS mean, last window [{S - win:.0f}, {S}) s (kB)", f"{mean(last):.0f} ({len(last)} samples)"),
    ("RSS growth, last vs first window", f"{growth:+.2f} %"),
    (f"RSS min / max after {warm:.0f} s (kB)", f"{min(after) if after else 'n/a'} / {max(after) if after else 'n/a'} (spread {spread:.2f} %)"),
    ("load exit / server exit on SIGTERM", f"{lrc} / {src}"),
    ("sanitizer reports in the server log", f"{len(san)}"),
]
w = max(len(a) for a, _ in rows_t)
print(f"| {'what':<{w}} | value |\n|{'-' * (w + 2)}|-------|")
for a, b in rows_t:
    print(f"| {a:<{w}} | {b} |")
for l in san[:5]:
    print("  " + l)
ok = lrc == 0 and lv["failed"] == 0 and aborted == 0 and failed_srv == 0 and src == 0 and not san and abs(growth) <= 5
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
RC=$?
echo "results: $OUT"
exit $RC
