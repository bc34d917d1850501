#!/usr/bin/env python3
"""Exactness on a whole corpus: deploybench's ids against the reference libraries.

    python3 bench/tokenizer/ref_compare.py --corpus corpus.txt --tokdir TOKDIR [--bin build/deploybench]
        [--chunk-lines N]

The corpus is cut into chunks of N lines (default 200) so that a difference is
reported with its position; each chunk is encoded by both sides (no specials:
tiktoken encode_ordinary, HF encode(add_special_tokens=False), sentencepiece encode)
and the id lists compared.  Prints one JSON object per tokenizer; exit 1 on any difference.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--tokdir", required=True)
    ap.add_argument("--bin", default="build/deploybench")
    ap.add_argument("--chunk-lines", type=int, default=200)
    a = ap.parse_args()
    lines = open(a.corpus, encoding="utf-8").read().split("\n")
    chunks = ["\n".join(lines[i:i + a.chunk_lines]) for i in range(0, len(lines), a.chunk_lines)]
    tmp = tempfile.mkdtemp()
    jl = os.path.join(tmp, "chunks.jsonl")
    with open(jl, "w") as f:
        for c in chunks:
            f.write(json.dumps({"text": c}) + "\n")

    def ours(args):
        out = subprocess.run([a.bin, "tokenize", *args, "--jsonl", jl], check=True, capture_output=True,
                             text=True).stdout
        return [json.loads(l)["ids"] for l in out.splitlines()]

    refs = []
    try:
        import tiktoken
        import tiktoken.load
        ranks = tiktoken.load.load_tiktoken_bpe(os.path.join(a.tokdir, "o200k_base/o200k_base.tiktoken"))
        spec = json.load(open(os.path.join(a.tokdir, "o200k_base/o200k_harmony_special_tokens.json")))
        enc = tiktoken.Encoding("o200k_harmony", pat_str=spec["pat_str"], mergeable_ranks=ranks,
                                special_tokens=spec["special_tokens"])
        refs.append(("tiktoken o200k", ["--tokenizer", os.path.join(a.tokdir, "gpt-oss-harmony/tokenizer.json.gz")],
                     enc.encode_ordinary))
    except ImportError:
        print(json.dumps({"reference": "tiktoken", "unavailable": True}))
    try:
        import tokenizers
        for name, rel in [("qwen3", "qwen3/tokenizer.json.gz"), ("yi", "yi-1.5/tokenizer.json"),
                          ("gpt2", "gpt2/tokenizer.json")]:
            p = os.path.join(a.tokdir, rel)
            if p.endswith(".gz"):
                q = os.path.join(tmp, name + ".json")
                open(q, "wb").write(gzip.open(p).read())
                p = q
            tok = tokenizers.Tokenizer.from_file(p)
            refs.append(("tokenizers " + name, ["--tokenizer", os.path.join(a.tokdir, rel)],
                         lambda s, tok=tok: tok.encode(s, add_special_tokens=False).ids))
    except ImportError:
        print(json.dumps({"reference": "tokenizers", "unavailable": True}))
    try:
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=os.path.join(a.tokdir, "llama2/tokenizer.model"))
        refs.append(("sentencepiece llama2", ["--tokenizer", os.path.join(a.tokdir, "llama2/tokenizer.model")],
                     sp.encode))
    except ImportError:
        print(json.dumps({"reference": "sentencepiece", "unavailable": True}))
    bad_total = 0
    for name, args, fn in refs:
        got = ours(args)
        bad, first, ntok = 0, None, 0
        for i, c in enumerate(chunks):
            want = fn(c)
            ntok += len(want)
            if got[i] != want:
                bad += 1
                if first is None:
                    m = min(len(want), len(got[i]))
                    k = next((j for j in range(m) if want[j] != got[i][j]), m)
                    first = {"chunk": i, "token": k, "want": want[max(0, k - 3):k + 3],
                             "got": got[i][max(0, k - 3):k + 3]}
        bad_total += bad
        print(json.dumps({"reference": name, "chunks": len(chunks), "tokens": ntok, "mismatched_chunks": bad,
                          "first_mismatch": first}), flush=True)
    return 1 if bad_total else 0


if __name__ == "__main__":
    sys.exit(main())
