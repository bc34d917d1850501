#!/bin/sh
# Broken model folders through the CLI: exit code 2 and one stderr line
# naming the file and the field or tensor.  Crafted with printf; valid
# folders come from `deploybench synth`.
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0; skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

if ! "$DPB_BIN" inspect --help >/dev/null 2>&1; then
    echo "SKIP: deploybench inspect not built"; echo "RESULT pass=0 fail=0 skip=1"; exit 0
fi

# 8-byte little-endian length of $1, then $1, then $2 zero bytes.
st_file() { # out header data_len
    len=$(printf '%s' "$2" | wc -c)
    b=""; n=$len
    for i in 1 2 3 4 5 6 7 8; do b="$b\\$(printf '%03o' $((n % 256)))"; n=$((n / 256)); done
    { printf "$b"; printf '%s' "$2"; head -c "$3" /dev/zero; } > "$1"
}

CONFIG='{"model_type":"llama","vocab_size":16,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2}'

# expect DIR NEEDLE...: exit 2, one line, naming each needle.
expect() {
    dir=$1; shift
    "$DPB_BIN" inspect "$dir" >"$T/out" 2>"$T/err"; rc=$?
    lines=$(wc -l < "$T/err")
    if [ "$rc" -ne 2 ]; then bad "$dir: exit $rc, want 2: $(cat "$T/err")"; return; fi
    if [ "$lines" -ne 1 ]; then bad "$dir: $lines stderr lines: $(cat "$T/err")"; return; fi
    for n in "$@"; do
        if ! grep -qF -- "$n" "$T/err"; then bad "$dir: message lacks '$n': $(cat "$T/err")"; return; fi
    done
    ok
}

case_st() { # name header data_len needles...
    d="$T/$1"; mkdir -p "$d"; printf '%s' "$CONFIG" > "$d/config.json"
    st_file "$d/model.safetensors" "$2" "$3"; shift 3
    expect "$d" "$d/model.safetensors" "$@"
}

case_st short '' 0 "header length 0"
d="$T/tiny"; mkdir -p "$d"; printf '%s' "$CONFIG" > "$d/config.json"; printf 'abc' > "$d/model.safetensors"
expect "$d" "$d/model.safetensors" "too short"
case_st beyond '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' 0 "tensor 'a'" "past the end of the file"
case_st json '{"a":{"dtype":"F32",}}' 0 "not valid JSON"
case_st dup '{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"w":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}' 4 "tensor 'w' appears twice"
case_st overlap '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12 "tensor 'b'" "overlap"
case_st hole '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}' 12 "tensor 'b'" "hole"
case_st overflow '{"x":{"dtype":"BF16","shape":[2, 9223372036854775807],"data_offsets":[0,4]}}' 4 "tensor 'x'" "overflows"
case_st size '{"x":{"dtype":"BF16","shape":[2, 3],"data_offsets":[0,10]}}' 10 "tensor 'x'" "needs 12"
case_st dtype '{"x":{"dtype":"F13","shape":[1],"data_offsets":[0,1]}}' 1 "tensor 'x'" "unknown dtype 'F13'"
case_st trailing '{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}' 5 "4 trailing bytes"
case_st float '{"x":{"dtype":"U8","shape":[1000],"data_offsets":[0,1e3]}}' 1000 "tensor 'x'" "1e3, which is not an integer"

# Header length 2^63: "\000...\200".
d="$T/huge"; mkdir -p "$d"; printf '%s' "$CONFIG" > "$d/config.json"
printf '\000\000\000\000\000\000\000\200{}' > "$d/model.safetensors"
expect "$d" "$d/model.safetensors" "header length 9223372036854775808"

# Config errors.
d="$T/heads"; mkdir -p "$d"
printf '{"model_type":"llama","vocab_size":16,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":3}' > "$d/config.json"
expect "$d" "$d/config.json" "does not divide"
d="$T/vocab"; mkdir -p "$d"
printf '{"model_type":"llama","vocab_size":1099511627776,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2}' > "$d/config.json"
expect "$d" "$d/config.json" "vocab_size"
d="$T/arch"; mkdir -p "$d"; printf '{"model_type":"mamba"}' > "$d/config.json"
expect "$d" "$d/config.json" "mamba"

# From a valid synth folder: trailing byte, missing shard, binding.
if "$DPB_BIN" synth --preset llama-tiny --out "$T/good" --shard-gb 0.001 >/dev/null 2>&1; then
    if "$DPB_BIN" inspect "$T/good" >/dev/null 2>&1; then ok; else bad "synth llama-tiny folder does not inspect"; fi
    cp -r "$T/good" "$T/trail"
    f=$(ls "$T/trail"/*.safetensors | head -n 1)
    printf 'x' >> "$f"
    expect "$T/trail" "$f" "1 trailing bytes"
    if [ -f "$T/good/model.safetensors.index.json" ]; then
        cp -r "$T/good" "$T/noshard"
        f=$(ls "$T/noshard"/*.safetensors | head -n 1)
        rm "$f"
        expect "$T/noshard" "model.safetensors.index.json" "$(basename "$f")" "does not exist"
    fi
    # Config of a different width: every tensor mis-shaped, in one line.
    cp -r "$T/good" "$T/bind"
    sed 's/"intermediate_size":[[:space:]]*256/"intermediate_size": 512/' "$T/good/config.json" > "$T/bind/config.json"
    expect "$T/bind" "$T/bind" "tensor problems" "mlp.up_proj.weight"
else
    skip=$((skip + 1)); echo "SKIP: synth --preset llama-tiny failed: $("$DPB_BIN" synth --preset llama-tiny --out "$T/good2" 2>&1)"
fi
echo "RESULT pass=$pass fail=$fail skip=$skip"
[ "$fail" -eq 0 ]
