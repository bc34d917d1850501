#!/bin/sh
# Accuracy and ceiling of `deploybench load` on ONE core, against the synthetic
# server on loopback (the server gets the other cores).  Dev tool; numbers go
# in docs/PERF.md with the host's load average, which this prints.
#
# usage: bench/load/ceiling.sh OUTDIR [CLIENT_CORE] [SERVER_CORES] [SERVER_THREADS]
#   e.g. bench/load/ceiling.sh /tmp/ceil 0 1-8 8
# Each run: `load` closed loop, ttft 50 ms; LEVELS below are "streams:itl_ms:gen_tokens".
set -u
OUT=${1:?usage: ceiling.sh OUTDIR [CLIENT_CORE] [SERVER_CORES] [SERVER_THREADS]}
CC=${2:-0}
SC=${3:-1}
ST=${4:-1}
B=${DPB_BIN:-build/deploybench}
LEVELS=${LEVELS:-"1000:50:20 1000:10:50 2000:10:50 5000:50:20 10000:100:20 10000:50:20"}
RATE_LEVELS=${RATE_LEVELS:-"100 1000"}
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "fd limit $(ulimit -n); cores $(nproc); load average $(cat /proc/loadavg)" | tee "$OUT/host.txt"
start() { # ttft itl
    rm -f "$OUT/port"
    taskset -c "$SC" "$B" serve --engine synthetic --ttft "$1" --itl "$2" --port 0 --port-file "$OUT/port" \
        --threads "$ST" --engine-threads "$ST" --max-connections 60000 >"$OUT/serve.log" 2>&1 &
    SPID=$!
    i=0; while [ ! -s "$OUT/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    URL="http://127.0.0.1:$(cat "$OUT/port")"
}
echo "streams,itl_ms,gen_tokens,offered_token_chunks_per_s_steady,completed,failed,output_tok_per_s,sse_events_per_s_incl_usage_and_done,client_cpu_of_one_core,ttft_p50_minus_50_ms,ttft_p99_minus_50_ms,itl_p50_minus_itl_ms,itl_p99_minus_itl_ms,tpot_p99_minus_itl_ms,p99_send_lag_ms,client_bound" >"$OUT/ceiling.csv"
for lv in $LEVELS; do
    s=${lv%%:*}; rest=${lv#*:}; itl=${rest%%:*}; gen=${rest#*:}
    start 50 "$itl"
    taskset -c "$CC" "$B" load --endpoint "$URL" --concurrency "$s" --num-requests $((s * 3)) --warmup "$s" --ramp-up 1 \
        --gen-tokens "$gen" --prompt-tokens 16 --timeout 120 --out "$OUT/s$s.itl$itl" >"$OUT/log.s$s.itl$itl" 2>&1
    kill $SPID; wait $SPID 2>/dev/null
    python3 - "$OUT/s$s.itl$itl/summary.json" "$s" "$itl" "$gen" >>"$OUT/ceiling.csv" <<'PY'
import json, sys
p, s, itl, gen = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
try:
    l = json.load(open(p))["levels"][0]
except Exception:
    print(f"{s},{itl},{gen},,,,,,,,,,,,,"); sys.exit()
c = l["client"]
f = lambda k, off: "" if l.get(k) is None else f"{l[k] - off:.3f}"
print(f"{s},{itl},{gen},{s * 1000 / itl:.0f},{l['completed']},{l['failed']},{l['output_throughput']:.0f},{c['sse_events_per_s']:.0f},"
      f"{c['cpu_utilization_of_one_core']:.2f},{f('median_ttft_ms', 50)},{f('p99_ttft_ms', 50)},"
      f"{f('median_itl_ms', itl)},{f('p99_itl_ms', itl)},{f('p99_tpot_ms', itl)},{f('p99_send_lag_ms', 0)},{c['client_bound']}")
PY
    tail -1 "$OUT/ceiling.csv"
done
# request rate ceiling: 1-token responses, no delay, closed loop
echo "concurrency,completed,failed,req_per_s,client_cpu_of_one_core" >"$OUT/reqs.csv"
for c in $RATE_LEVELS; do
    start 0 0
    taskset -c "$CC" "$B" load --endpoint "$URL" --concurrency "$c" --num-requests $((c * 50)) --gen-tokens 1 \
        --prompt-tokens 4 --out "$OUT/rps$c" >"$OUT/log.rps$c" 2>&1
    kill $SPID; wait $SPID 2>/dev/null
    python3 -c "import json,sys; l=json.load(open(sys.argv[1]))['levels'][0]; print(f\"$c,{l['completed']},{l['failed']},{l['request_throughput']:.0f},{l['client']['cpu_utilization_of_one_core']:.2f}\")" \
        "$OUT/rps$c/summary.json" >>"$OUT/reqs.csv"
    tail -1 "$OUT/reqs.csv"
done
echo "load average after: $(cat /proc/loadavg)" | tee -a "$OUT/host.txt"
