#!/bin/sh
# Three clients against the same synthetic server, one after another, at the
# same settings: deploybench load, a minimal asyncio+aiohttp client that times
# TTFT as vLLM's benchmark does, and GuideLLM (PyPI).  Dev tool only.
#
# usage: bench/load/compare.sh OUTDIR [CONCURRENCY_LIST] [TTFT_MS] [ITL_MS] [GEN_TOKENS]
# env:   VENV (default /tmp/lgvenv, with guidellm and aiohttp installed), DPB_BIN,
#        REQS_PER_STREAM (default 4), SERVER_THREADS (default 1), TASKSET_CLIENT /
#        TASKSET_SERVER (e.g. "taskset -c 2" to pin each to its own core)
# prerequisites: python3 -m venv /tmp/lgvenv && /tmp/lgvenv/bin/pip install guidellm aiohttp
# GuideLLM needs a tokenizer: a folder with tokenizer.json + config.json, used as the model name
# (default /tmp/gpt2tok, made from ../shared/data/tokenizers/gpt2).
set -u
OUT=${1:?usage: compare.sh OUTDIR [CONC] [TTFT] [ITL] [GEN]}
CONC=${2:-16,100,500}
TTFT=${3:-20}
ITL=${4:-5}
GEN=${5:-20}
VENV=${VENV:-/tmp/lgvenv}
B=${DPB_BIN:-build/deploybench}
RPS=${REQS_PER_STREAM:-4}
TOK=${GL_TOKENIZER:-/tmp/gpt2tok}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
if [ ! -f "$TOK/tokenizer.json" ]; then
    mkdir -p "$TOK"
    cp "${SHARED:-../shared}/data/tokenizers/gpt2/tokenizer.json" "$TOK/" || exit 1
    echo '{"model_type":"gpt2"}' >"$TOK/config.json"
    echo '{"tokenizer_class":"GPT2TokenizerFast"}' >"$TOK/tokenizer_config.json"
fi
ulimit -n 20000 2>/dev/null || ulimit -n 4096
echo "load average before: $(cat /proc/loadavg)" | tee "$OUT/host.txt"
nproc >>"$OUT/host.txt"
for c in $(echo "$CONC" | tr ',' ' '); do
    n=$((c * RPS))
    for client in deploybench aiohttp guidellm; do
        rm -f "$OUT/port"
        ${TASKSET_SERVER:-} "$B" serve --engine synthetic --ttft "$TTFT" --itl "$ITL" --model "$TOK" --port 0 \
            --port-file "$OUT/port" --threads "${SERVER_THREADS:-1}" --engine-threads "${SERVER_THREADS:-1}" >"$OUT/serve.log" 2>&1 &
        spid=$!
        i=0; while [ ! -s "$OUT/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
        url="http://127.0.0.1:$(cat "$OUT/port")"
        echo "== c=$c $client ($n requests)"
        case $client in
        deploybench)
            /usr/bin/time -f "%U %S %e" -o "$OUT/time.$client.$c" ${TASKSET_CLIENT:-} "$B" load --endpoint "$url" \
                --model "$TOK" --concurrency "$c" --num-requests "$n" --gen-tokens "$GEN" --prompt-tokens 10 \
                --out "$OUT/dpb.$c" >"$OUT/log.$client.$c" 2>&1 ;;
        aiohttp)
            /usr/bin/time -f "%U %S %e" -o "$OUT/time.$client.$c" ${TASKSET_CLIENT:-} "$VENV/bin/python" \
                "$HERE/aiohttp_client.py" "$url" --model "$TOK" --concurrency "$c" --num-requests "$n" \
                --gen-tokens "$GEN" --prompt-tokens 10 --out "$OUT/aiohttp.$c.json" >"$OUT/log.$client.$c" 2>&1 ;;
        guidellm)
            (cd "$OUT" && HF_HUB_OFFLINE=1 /usr/bin/time -f "%U %S %e" -o "$OUT/time.$client.$c" ${TASKSET_CLIENT:-} \
                "$VENV/bin/guidellm" run \
                --backend "kind=openai_http,target=$url,model=$TOK,request_format=/v1/completions" \
                --profile "kind=concurrent,streams=$c" --constraint "kind=max_requests,count=$n" \
                --data "kind=synthetic_text,prompt_tokens=10,output_tokens=$GEN" --tokenizer kind=huggingface_auto \
                --output "kind=json,path=$OUT/guidellm.$c.json" --disable-console-interactive \
                >"$OUT/log.$client.$c" 2>&1) ;;
        esac
        echo "   exit $?"
        kill "$spid"; wait "$spid" 2>/dev/null
    done
done
echo "load average after: $(cat /proc/loadavg)" | tee -a "$OUT/host.txt"
python3 "$HERE/summarize.py" "$OUT" "$CONC" "$TTFT" "$ITL" | tee "$OUT/compare.md"
