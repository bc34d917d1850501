#!/bin/sh
# Serving overhead: the same requests in-process (deploybench generate) and
# over HTTP (deploybench serve + deploybench load, concurrency 1), TTFT and
# ITL p50/p99 of each and their difference.  A dev script (needs python3).
#
# usage: bench/serve/overhead.sh [N]        (N requests each way, default 30)
#        bench/serve/overhead.sh build-only  (only builds build/bench/serve_inproc)
# env:   MODEL (synth:gpt-oss-tiny)  TOK (a tokenizer file, default ../shared gpt2)
#        BACKEND (cpu)  GEN (64 tokens)  THREADS (engine threads, default 1)
#        B (build/deploybench)  OUT (a folder kept with the raw results; default a temp dir)
# Prompts: N lines of words; both sides tokenize the same text the same way
# (no chat template).  Both sides are warm (2 warm-up requests each).
# In-process TTFT is from just before dpb_engine_generate to the first token
# sampled (the prompt already tokenized); over HTTP it is the client's send ->
# first token chunk, so the difference is everything serving adds (HTTP,
# JSON, tokenization, scheduling, SSE, the client).  ITL: gaps between
# consecutive tokens.
set -e
N=${1:-30}
B=${B:-build/deploybench}
MODEL=${MODEL:-synth:gpt-oss-tiny}
TOK=${TOK:-../shared/data/tokenizers/gpt2/tokenizer.json}
BACKEND=${BACKEND:-cpu}
GEN=${GEN:-64}
THREADS=${THREADS:-1}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
[ "$N" = build-only ] || python3 - "$N" >"$OUT/prompts.txt" <<'PY'
import random, sys
random.seed(1)
w = "the of and to in is that it for on with as was at by an be this from or have not are but".split()
for i in range(int(sys.argv[1])):
    print(" ".join(random.choice(w) for _ in range(100)))
PY
# the in-process side: bench/serve/inproc.c on build/libdeploybench.a (built here when missing;
# INPROC=path uses a prebuilt one, e.g. carried to the GPU machine)
INPROC=${INPROC:-build/bench/serve_inproc}
if [ ! -x "$INPROC" ]; then
    LIBS="$(pkg-config --libs libcjson libpcre2-8 libutf8proc zlib libcurl libmicrohttpd) -fopenmp -pthread -ldl -lm"
    if nm build/libdeploybench.a 2>/dev/null | grep -q 'cudaMalloc'; then
        CH=${CUDA_HOME:-/usr/local/cuda}
        LIBS="$LIBS -L$CH/lib64 -Wl,-rpath,$CH/lib64 -lcublasLt -lcublas -lcudart -lstdc++ -lrt"
    fi
    mkdir -p "$(dirname "$INPROC")"
    cc -O2 -std=c17 -D_GNU_SOURCE -Isrc bench/serve/inproc.c build/libdeploybench.a $LIBS -o "$INPROC"
fi
[ "$N" = build-only ] && { echo "built $INPROC"; exit 0; }
"$INPROC" "$MODEL" "$TOK" "$OUT/prompts.txt" "$GEN" "$BACKEND" "$THREADS" 2 >"$OUT/inproc.jsonl"
rm -f "$OUT/port"
"$B" serve --model "$MODEL" --tokenizer "$TOK" --backend "$BACKEND" --threads-engine "$THREADS" --max-batch 1 \
    --max-model-len 4096 --port 0 --port-file "$OUT/port" --served-model-name m >"$OUT/serve.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null' EXIT
k=0; while [ ! -s "$OUT/port" ] && [ $k -lt 1200 ]; do sleep 0.1; k=$((k + 1)); done
"$B" load --endpoint "http://127.0.0.1:$(cat "$OUT/port")" --model m --dataset "$OUT/prompts.txt" --concurrency 1 \
    --num-requests "$N" --gen-tokens "$GEN" --warmup 2 --out "$OUT/http" >"$OUT/load.log" 2>&1
python3 - "$OUT" <<'PY'
import json, math, sys
out = sys.argv[1]
def pct(v, p):  # nearest rank, as deploybench load
    v = sorted(v); return v[max(1, math.ceil(p / 100 * len(v))) - 1]
ttft, itl = [], []
for l in open(out + "/inproc.jsonl"):
    d = json.loads(l); t = d["token_times_ms"]
    ttft.append(d["ttft_ms"]); itl += [b - a for a, b in zip(t, t[1:])]
lv = json.load(open(out + "/http/summary.json"))["levels"][0]
print(f"requests: {len(ttft)} in-process, {lv['completed']} over HTTP; prompt tokens per request {d['prompt_tokens']}, generated {d['generated_tokens']}")
print("| metric | in-process | HTTP | difference |")
print("|---|---|---|---|")
for name, v in (("ttft", ttft), ("itl", itl)):
    for p in (50, 99):
        a, b = pct(v, p), lv[f"p{p}_{name}_ms"]
        print(f"| {name.upper()} p{p} (ms) | {a:.3f} | {b:.3f} | {b - a:+.3f} |")
PY
echo "raw results: $OUT"
