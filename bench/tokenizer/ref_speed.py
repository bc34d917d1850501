#!/usr/bin/env python3
"""Single-threaded encode speed of the reference libraries on one corpus file.

    python3 bench/tokenizer/ref_speed.py --corpus corpus.txt --tokdir TOKDIR [--repeat 3]

TOKDIR is laid out like ../shared/data/tokenizers (gpt-oss-harmony/tokenizer.json.gz,
qwen3/tokenizer.json.gz, yi-1.5/tokenizer.json, llama2/tokenizer.model, gpt2/tokenizer.json,
o200k_base/o200k_base.tiktoken + o200k_harmony_special_tokens.json).  No network is used.
Each library that imports is timed; one JSON object per line goes to stdout:
{"lib", "tokenizer", "bytes", "tokens", "load_ms", "best_mb_per_s", "median_mb_per_s", "runs"}.
MB/s is 10^6 bytes of the corpus file per second, best of --repeat runs, one thread
(RAYON_NUM_THREADS=1; one encode call on the whole text).
"""
import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, times


def report(lib, name, nbytes, ntok, load_s, times):
    print(json.dumps({
        "lib": lib, "tokenizer": name, "bytes": nbytes, "tokens": ntok,
        "load_ms": round(load_s * 1000, 1),
        "best_mb_per_s": round(nbytes / min(times) / 1e6, 3),
        "median_mb_per_s": round(nbytes / statistics.median(times) / 1e6, 3),
        "runs": len(times)}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--tokdir", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    raw = open(a.corpus, "rb").read()
    text = raw.decode("utf-8")
    n = len(raw)
    tmp = tempfile.mkdtemp()

    def plain_json(rel):
        p = os.path.join(a.tokdir, rel)
        if p.endswith(".gz"):
            q = os.path.join(tmp, rel.replace("/", "_")[:-3])
            with gzip.open(p, "rb") as f, open(q, "wb") as g:
                g.write(f.read())
            return q
        return p

    try:
        import tiktoken
        import tiktoken.load
        t0 = time.perf_counter()
        ranks = tiktoken.load.load_tiktoken_bpe(os.path.join(a.tokdir, "o200k_base/o200k_base.tiktoken"))
        spec = json.load(open(os.path.join(a.tokdir, "o200k_base/o200k_harmony_special_tokens.json")))
        enc = tiktoken.Encoding("o200k_harmony", pat_str=spec["pat_str"], mergeable_ranks=ranks,
                                special_tokens=spec["special_tokens"])
        load = time.perf_counter() - t0
        ids, times = timed(lambda: enc.encode_ordinary(text), a.repeat)
        report("tiktoken " + tiktoken.__version__, "o200k", n, len(ids), load, times)
    except ImportError as e:
        print(json.dumps({"lib": "tiktoken", "unavailable": str(e)}), flush=True)

    try:
        import tokenizers
        for name, rel in [("o200k", "gpt-oss-harmony/tokenizer.json.gz"), ("qwen3", "qwen3/tokenizer.json.gz"),
                          ("yi", "yi-1.5/tokenizer.json"), ("gpt2", "gpt2/tokenizer.json")]:
            p = plain_json(rel)
            t0 = time.perf_counter()
            tok = tokenizers.Tokenizer.from_file(p)
            load = time.perf_counter() - t0
            ids, times = timed(lambda: tok.encode(text, add_special_tokens=False).ids, a.repeat)
            report("tokenizers " + tokenizers.__version__, name, n, len(ids), load, times)
    except ImportError as e:
        print(json.dumps({"lib": "tokenizers", "unavailable": str(e)}), flush=True)

    try:
        import sentencepiece as spm
        t0 = time.perf_counter()
        sp = spm.SentencePieceProcessor(model_file=os.path.join(a.tokdir, "llama2/tokenizer.model"))
        load = time.perf_counter() - t0
        ids, times = timed(lambda: sp.encode(text), a.repeat)
        report("sentencepiece " + spm.__version__, "llama2", n, len(ids), load, times)
    except ImportError as e:
        print(json.dumps({"lib": "sentencepiece", "unavailable": str(e)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
