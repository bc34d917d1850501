#!/bin/sh
# Creates seed corpora for the fuzz targets in fuzz-corpus/NAME/ (gitignored)
# from ../shared (or $DPB_SHARED) and a few hand-written inputs.
#   sh tests/fuzz/seed.sh && make fuzz
#   nice build-fuzz/fuzz_safetensors -max_total_time=120 fuzz-corpus/fuzz_safetensors
set -eu
SHARED=${DPB_SHARED:-../shared}
OUT=fuzz-corpus
mkdir -p "$OUT/fuzz_safetensors" "$OUT/fuzz_config" "$OUT/fuzz_st_index"

# safetensors: whole small files; for the models, the header plus a short
# data region (large seeds slow libFuzzer down; the header is what matters).
st() { # name header-json data-bytes
    python3 - "$OUT/fuzz_safetensors/$1" "$2" "$3" <<'PY'
import struct, sys
path, hdr, n = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
open(path, "wb").write(struct.pack("<Q", len(hdr)) + hdr + bytes(range(256)) * (n // 256) + bytes(n % 256))
PY
}
st empty '{}' 0
st meta '{"__metadata__":{"format":"pt"}}' 0
st one '{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}' 16
st mixed '{"__metadata__":{"k\"":"v\u00e9"},"s":{"dtype":"BF16","shape":[],"data_offsets":[0,2]},"e":{"dtype":"U8","shape":[0],"data_offsets":[2,2]},"b":{"dtype":"I64","shape":[1,2],"data_offsets":[2,18]}}' 18
st bad '{"a":{"dtype":"F8_E4M3","shape":[3],"data_offsets":[0,1e3]}}' 3
if [ -d "$SHARED/fixtures" ]; then
    for d in "$SHARED"/fixtures/*/; do
        n=$(basename "$d")
        [ -f "$d/reference.safetensors" ] && head -c 1024 "$d/reference.safetensors" > "$OUT/fuzz_safetensors/$n-reference-head"
        # Same tensor names and dtypes, every dimension 1: a valid small file with a real header.
        python3 - "$d/model.safetensors" "$OUT/fuzz_safetensors/$n-model-small" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
size = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2,
        "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
out, pos = {}, 0
for k, v in h.items():
    if k == "__metadata__":
        out[k] = v
        continue
    sz = size[v["dtype"]]
    out[k] = {"dtype": v["dtype"], "shape": [1] * len(v["shape"]), "data_offsets": [pos, pos + sz]}
    pos += sz
hdr = json.dumps(out, separators=(",", ":")).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hdr)) + hdr + bytes(pos))
PY
        # The real header with a cut data region.
        head -c 9000 "$d/model.safetensors" > "$OUT/fuzz_safetensors/$n-model-head"
        cat "$d/config.json" > "$OUT/fuzz_config/$n-config.json"
        # An index listing the model's tensors over two shards.
        python3 - "$d/model.safetensors" "$OUT/fuzz_st_index/$n-index.json" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
names = [k for k in h if k != "__metadata__"]
wm = {k: "model-%05d-of-00002.safetensors" % (1 + i % 2) for i, k in enumerate(names)}
json.dump({"metadata": {"total_size": 123456}, "weight_map": wm}, open(sys.argv[2], "w"), indent=2)
PY
    done
fi
if [ -d "$SHARED/data/configs" ]; then
    for f in "$SHARED"/data/configs/*/*.json; do
        case "$f" in *hf_api_model.json) continue;; esac
        cat "$f" > "$OUT/fuzz_config/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
fi
printf '{"model_type":"llama","vocab_size":100,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4}' \
    > "$OUT/fuzz_config/minimal.json"
printf '{"eos_token_id":[1,2],"do_sample":true,"temperature":0.7,"top_p":0.9,"top_k":20}' > "$OUT/fuzz_config/generation.json"
printf '{"bos_token":{"content":"<s>"},"eos_token":"</s>","chat_template":[{"name":"default","template":"x"}]}' \
    > "$OUT/fuzz_config/tokenizer.json"
printf '{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}' > "$OUT/fuzz_st_index/small.json"
for t in fuzz_safetensors fuzz_config fuzz_st_index; do
    echo "$OUT/$t: $(ls "$OUT/$t" | wc -l) seeds"
done
