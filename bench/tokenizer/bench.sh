#!/bin/sh
# Tokenizer speed: deploybench's tokenizers against tiktoken / HF tokenizers /
# sentencepiece, single-threaded, on one corpus file.  See docs/TOKENIZER.md "Speed".
#
#   bench/tokenizer/bench.sh [--corpus FILE] [--tokdir DIR] [--shared DIR] [--bin PATH]
#                            [--repeat N] [--out DIR] [--no-ref]
#   bench/tokenizer/bench.sh --make-pack DIR [--shared DIR]
#
# --corpus FILE  the text to encode; default: built from --shared as
#                  cat gsm8k/train.jsonl mmlu/test/*.csv   (C-locale name order)
#                = 10,528,215 bytes (GSM8K train JSONL as stored + all 57 MMLU test CSVs).
# --tokdir DIR   tokenizer files laid out like ../shared/data/tokenizers (default: SHARED/data/tokenizers)
# --shared DIR   the shared data folder (default ../shared)
# --bin PATH     the deploybench binary (default build/deploybench)
# --repeat N     runs per tokenizer; best and median are reported (default 5)
# --ref-repeat N runs per reference library (default: --repeat)
# --out DIR      where results.jsonl and the corpus go (default a new temporary folder)
# --no-ref       skip the Python reference libraries
# --make-pack DIR  write DIR/corpus.txt and DIR/tokenizers/... (about 25 MB) to carry to a
#                machine without ../shared; then run there:
#                  bench/tokenizer/bench.sh --corpus DIR/corpus.txt --tokdir DIR/tokenizers
set -eu
SHARED=../shared
CORPUS=""
TOKDIR=""
BIN=build/deploybench
REPEAT=5
REF_REPEAT=""
OUT=""
REF=1
PACK=""
while [ $# -gt 0 ]; do
    case "$1" in
    --corpus) CORPUS=$2; shift 2 ;;
    --tokdir) TOKDIR=$2; shift 2 ;;
    --shared) SHARED=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --ref-repeat) REF_REPEAT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-ref) REF=0; shift ;;
    --make-pack) PACK=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

build_corpus() { # $1 = output file
    d="$SHARED/data"
    [ -f "$d/gsm8k/train.jsonl" ] && [ -d "$d/mmlu/test" ] || {
        echo "bench.sh: $d/gsm8k/train.jsonl or $d/mmlu/test is missing; give --corpus" >&2; exit 2; }
    # shellcheck disable=SC2046
    LC_ALL=C cat "$d/gsm8k/train.jsonl" $(LC_ALL=C ls "$d"/mmlu/test/*.csv) >"$1"
}

if [ -n "$PACK" ]; then
    Z="$SHARED/data/tokenizers"
    mkdir -p "$PACK/tokenizers"
    build_corpus "$PACK/corpus.txt"
    for f in gpt-oss-harmony/tokenizer.json.gz qwen3/tokenizer.json.gz yi-1.5/tokenizer.json llama2/tokenizer.model \
             gpt2/tokenizer.json o200k_base/o200k_base.tiktoken o200k_base/o200k_harmony_special_tokens.json; do
        mkdir -p "$PACK/tokenizers/$(dirname "$f")"
        cp "$Z/$f" "$PACK/tokenizers/$f"
    done
    echo "pack written to $PACK ($(du -sh "$PACK" | cut -f1)); corpus $(wc -c <"$PACK/corpus.txt") bytes"
    exit 0
fi

[ -x "$BIN" ] || { echo "bench.sh: $BIN not found (make first, or --bin)" >&2; exit 2; }
[ -n "$OUT" ] || OUT=$(mktemp -d)
mkdir -p "$OUT"
[ -n "$TOKDIR" ] || TOKDIR="$SHARED/data/tokenizers"
if [ -z "$CORPUS" ]; then CORPUS="$OUT/corpus.txt"; build_corpus "$CORPUS"; fi
RES="$OUT/results.jsonl"
: >"$RES"
echo "corpus: $CORPUS ($(wc -c <"$CORPUS") bytes); results: $RES" >&2

ours() { # name, tokenizer args...
    name=$1; shift
    line=$("$BIN" tokenize "$@" --bench "$CORPUS" --repeat "$REPEAT" --json) || { echo "bench.sh: $name failed" >&2; return; }
    echo "$line" | sed "s/^{/{\"lib\":\"deploybench\",\"name\":\"$name\",/" >>"$RES"
}
ours o200k --tokenizer "$TOKDIR/gpt-oss-harmony/tokenizer.json.gz"
ours o200k-tiktoken-file --tokenizer "$TOKDIR/o200k_base/o200k_base.tiktoken" \
    --specials-file "$TOKDIR/o200k_base/o200k_harmony_special_tokens.json"
ours qwen3 --tokenizer "$TOKDIR/qwen3/tokenizer.json.gz"
ours yi --tokenizer "$TOKDIR/yi-1.5/tokenizer.json"
ours llama2 --tokenizer "$TOKDIR/llama2/tokenizer.model"
ours gpt2 --tokenizer "$TOKDIR/gpt2/tokenizer.json"
# load time of the uncompressed gpt-oss tokenizer.json (the form a checkpoint ships)
gunzip -c "$TOKDIR/gpt-oss-harmony/tokenizer.json.gz" >"$OUT/gpt-oss-tokenizer.json"
printf 'x' >"$OUT/tiny.txt"
for i in 1 2 3 4 5; do
    "$BIN" tokenize --tokenizer "$OUT/gpt-oss-tokenizer.json" --bench "$OUT/tiny.txt" --repeat 1 --json |
        sed 's/^{/{"lib":"deploybench","name":"gpt-oss tokenizer.json load",/' >>"$RES"
done

if [ "$REF" = 1 ] && command -v python3 >/dev/null 2>&1; then
    python3 "$(dirname "$0")/ref_speed.py" --corpus "$CORPUS" --tokdir "$TOKDIR" --repeat "${REF_REPEAT:-$REPEAT}" >>"$RES" ||
        echo "bench.sh: ref_speed.py failed" >&2
fi

# Summary table
python3 - "$RES" <<'EOF' 2>/dev/null || cat "$RES"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
loads = [r["load_ms"] for r in rows if r.get("name") == "gpt-oss tokenizer.json load"]
print("| library | tokenizer | tokens | load ms | best MB/s | median MB/s |")
print("|---|---|---:|---:|---:|---:|")
for r in rows:
    if r.get("name") == "gpt-oss tokenizer.json load":
        continue
    if "unavailable" in r:
        print(f"| {r['lib']} | unavailable: {r['unavailable']} | | | | |")
        continue
    name = r.get("name", r.get("tokenizer"))
    print(f"| {r['lib']} | {name} | {int(r['tokens'])} | {r['load_ms']:.0f} | {r['best_mb_per_s']:.2f} | {r['median_mb_per_s']:.2f} |")
if loads:
    loads.sort()
    print(f"\ngpt-oss tokenizer.json (uncompressed) load, {len(loads)} runs: best {loads[0]:.0f} ms, median {loads[len(loads)//2]:.0f} ms")
EOF
