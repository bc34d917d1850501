#!/bin/sh
# CLI: generate and logits -- outputs, the fixtures' greedy ids, bad input and exit codes.
B=${DPB_BIN:-build/deploybench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0; skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }

# A synthetic tiny model, fixed length: exactly 6 ids and 6 per-token times in the JSON.
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2,3,4 --max-new-tokens 6 --ignore-eos --threads 1 --json >"$T/g.json" 2>"$T/err"; rc=$?
check "generate exit" "[ $rc -eq 0 ]"
check "generated_tokens 6" "grep -q '\"generated_tokens\":[[:space:]]*6,' $T/g.json"
check "6 token times" "[ \$(tr -d '\n\t ' <$T/g.json | sed 's/.*\"token_times_ms\":\[\([^]]*\)\].*/\1/' | awk -F, '{print NF}') -eq 6 ]"
check "ttft and tpot" "grep -q '\"ttft_ms\"' $T/g.json && grep -q '\"tpot_ms\":[[:space:]]*[0-9]' $T/g.json"
check "stop length" "grep -q '\"stop_reason\":[[:space:]]*\"length\"' $T/g.json"
# Greedy is deterministic; the same seed samples the same ids; threads do not change results.
$B generate --model synth:qwen3-tiny --prompt-ids 5,6,7 --max-new-tokens 5 --ignore-eos --threads 1 >"$T/a" 2>/dev/null
$B generate --model synth:qwen3-tiny --prompt-ids 5,6,7 --max-new-tokens 5 --ignore-eos --threads 2 >"$T/b" 2>/dev/null
check "greedy same across threads" "[ -s $T/a ] && cmp -s $T/a $T/b"
$B generate --model synth:qwen3-tiny --prompt-ids 5,6,7 --max-new-tokens 8 --ignore-eos --temperature 1.5 --top-k 50 --top-p 0.95 --min-p 0.01 --seed 9 >"$T/c" 2>/dev/null
$B generate --model synth:qwen3-tiny --prompt-ids 5,6,7 --max-new-tokens 8 --ignore-eos --temperature 1.5 --top-k 50 --top-p 0.95 --min-p 0.01 --seed 9 >"$T/d" 2>/dev/null
check "seeded sampling reproducible" "[ -s $T/c ] && cmp -s $T/c $T/d"
check "8 sampled ids" "[ \$(wc -w <$T/c) -eq 8 ]"

# Fixtures: the greedy continuation of transformers (f32).
F=../shared/fixtures
if [ -d "$F/llama-tiny" ]; then
    # logits: the command writes input_ids and logits [48, 512] in the reference format
    $B logits --model "$F/llama-tiny" --input "$F/llama-tiny/reference.safetensors" --out "$T/l.safetensors" --threads 1 2>"$T/err"; rc=$?
    check "logits exit" "[ $rc -eq 0 ]"
    check "logits header" "grep -a -q '\"logits\":{\"dtype\":\"F32\",\"shape\":\[48,512\]' $T/l.safetensors"
    check "logits size" "[ \$(( \$(stat -c %s $T/l.safetensors) - 48 * 8 - 48 * 512 * 4 )) -lt 400 ]"
    $B logits --model "$F/llama-tiny" --input "$F/llama-tiny/model.safetensors" --out "$T/x.safetensors" 2>"$T/err"; rc=$?
    check "logits without input_ids exit 2" "[ $rc -eq 2 ] && grep -q 'input_ids' $T/err"
    $B logits --model "$F/llama-tiny" --input "$F/llama-tiny/reference.safetensors" --out "$T/y.safetensors" --dtype f16 2>"$T/err"; rc=$?
    check "logits bad dtype exit 2" "[ $rc -eq 2 ] && grep -q -- '--dtype' $T/err"
    # --prefill-chunk: the same logits in chunks of 8 rows (the CPU engine's chunked prefill is exact), bad values named
    $B logits --model "$F/llama-tiny" --input "$F/llama-tiny/reference.safetensors" --out "$T/l8.safetensors" --threads 1 --prefill-chunk 8 2>"$T/err"; rc=$?
    check "logits --prefill-chunk 8 equals one pass" "[ $rc -eq 0 ] && cmp -s $T/l.safetensors $T/l8.safetensors"
    $B logits --model "$F/llama-tiny" --input "$F/llama-tiny/reference.safetensors" --out "$T/l0.safetensors" --prefill-chunk 0 2>"$T/err"; rc=$?
    check "logits --prefill-chunk 0 exit 2" "[ $rc -eq 2 ] && grep -q -- '--prefill-chunk' $T/err"
else
    echo "SKIP fixtures: $F is absent"; skip=$((skip + 1))
fi

# Ablation switches: all 8 experts and no sliding window change the output of a fixed prompt.
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2,3,4,5,6,7,8,9,10,11,12 --max-new-tokens 6 --ignore-eos --threads 1 --json >"$T/base.json" 2>/dev/null
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2,3,4,5,6,7,8,9,10,11,12 --max-new-tokens 6 --ignore-eos --threads 1 --json --kv-dtype f32 >"$T/kv.json" 2>/dev/null; rc=$?
check "kv f32 runs and grows the cache" "[ $rc -eq 0 ] && [ \$(grep kv_bytes $T/kv.json | tr -dc 0-9) -eq \$((2 * \$(grep kv_bytes $T/base.json | tr -dc 0-9))) ]"
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2 --experts-per-token 99 2>"$T/err"; rc=$?
check "experts-per-token out of range exit 2" "[ $rc -eq 2 ] && grep -q -- '--experts-per-token' $T/err"
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2 --experts-per-token 9 2>"$T/err"; rc=$?
check "experts-per-token above the model's experts" "[ $rc -eq 2 ] && grep -q 'experts per token' $T/err"
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2,3,4,5,6,7,8,9,10,11,12 --max-new-tokens 6 --ignore-eos --threads 1 --json --no-sliding-window >"$T/ns.json" 2>/dev/null; rc=$?
check "no-sliding-window runs with a full cache" "[ $rc -eq 0 ] && [ \$(grep kv_bytes $T/ns.json | tr -dc 0-9) -gt \$(grep kv_bytes $T/base.json | tr -dc 0-9) ]"

# Bad input: exit 2 with a message naming the problem.
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2,3,4,5 --max-context 3 2>"$T/err"; rc=$?
check "prompt over context exit 2" "[ $rc -eq 2 ]"
check "prompt over context states both lengths" "grep -q '5 tokens' $T/err && grep -q 'context is 3 tokens' $T/err"
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,999999999 2>"$T/err"; rc=$?
check "id out of range exit 2" "[ $rc -eq 2 ] && grep -q '999999999' $T/err && grep -q 'vocabulary' $T/err"
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,-3 2>"$T/err"; rc=$?
check "negative id exit 2" "[ $rc -eq 2 ] && grep -q 'prompt-ids' $T/err"
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2 --threads 0 2>"$T/err"; rc=$?
check "threads 0 exit 2" "[ $rc -eq 2 ] && grep -q -- '--threads' $T/err"
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2 --threads lots 2>"$T/err"; rc=$?
check "threads text exit 2" "[ $rc -eq 2 ] && grep -q -- '--threads' $T/err"
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2 --max-new-tokens 0 2>"$T/err"; rc=$?
check "max-new-tokens 0 exit 2" "[ $rc -eq 2 ] && grep -q -- '--max-new-tokens' $T/err"
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2 --temperature -1 2>"$T/err"; rc=$?
check "negative temperature exit 2" "[ $rc -eq 2 ] && grep -q -- '--temperature' $T/err"
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2 --temperature nan 2>"$T/err"; rc=$?
check "nan temperature exit 2" "[ $rc -eq 2 ] && grep -q -- '--temperature' $T/err"
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2 --top-p 1.5 2>"$T/err"; rc=$?
check "top-p 1.5 exit 2" "[ $rc -eq 2 ] && grep -q -- '--top-p' $T/err"
$B generate --model synth:gpt-oss-tiny --prompt-ids 1,2 --greedy --temperature 0.7 2>"$T/err"; rc=$?
check "greedy with temperature exit 2" "[ $rc -eq 2 ]"
$B generate --model synth:gpt-oss-tiny --prompt "hello" 2>"$T/err"; rc=$?
check "text prompt needs a tokenizer" "[ $rc -eq 2 ] && grep -q 'has no tokenizer' $T/err"
$B generate --prompt-ids 1 2>"$T/err"; rc=$?
check "no model exit 2" "[ $rc -eq 2 ] && grep -q -- '--model' $T/err"
$B generate --model /nonexistent --prompt-ids 1 2>"$T/err"; rc=$?
check "missing folder exit 2" "[ $rc -eq 2 ] && grep -q nonexistent $T/err"
$B generate --help >"$T/h"; rc=$?
check "help" "[ $rc -eq 0 ] && grep -q -- '--ignore-eos' $T/h && grep -q -- '--dtype' $T/h"

echo "RESULT pass=$pass fail=$fail skip=$skip"
[ $fail -eq 0 ]
