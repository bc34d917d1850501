#!/bin/sh
# CLI: synth and inspect, their outputs, errors and exit codes.
B=${DPB_BIN:-build/deploybench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }

# inspect --preset: the published figures (issue 2's acceptance).
$B inspect --preset gpt-oss-20b --json >"$T/g.json" 2>"$T/err"; rc=$?
check "inspect gpt-oss-20b exit" "[ $rc -eq 0 ]"
check "gpt-oss-20b params_total" "grep -q '\"params_total\":[[:space:]]*20914757184,' $T/g.json"
check "gpt-oss-20b params_active" "grep -q '\"params_active\":[[:space:]]*3608307264,' $T/g.json"
check "gpt-oss-20b kv per token" "grep -q '\"kv_bytes_per_token\":[[:space:]]*24576,' $T/g.json"
check "gpt-oss-20b kv fixed" "grep -q '\"kv_bytes_fixed\":[[:space:]]*3145728,' $T/g.json"
check "gpt-oss-20b fits" "grep -q '\"fits\":[[:space:]]*true' $T/g.json"
$B inspect --preset qwen3-32b --json >"$T/q.json"
check "qwen3-32b total=active" "grep -q '\"params_total\":[[:space:]]*32762123264,' $T/q.json && grep -q '\"params_active\":[[:space:]]*32762123264,' $T/q.json"
check "qwen3-32b kv" "grep -q '\"kv_bytes_per_token\":[[:space:]]*262144,' $T/q.json"
$B inspect --preset yi-34b --json >"$T/y.json"
check "yi-34b total" "grep -q '\"params_total\":[[:space:]]*34388917248,' $T/y.json"
check "yi-34b kv" "grep -q '\"kv_bytes_per_token\":[[:space:]]*245760,' $T/y.json"
# A 128k context of qwen3-32b at batch 8 does not fit in 80 GiB.
$B inspect --preset qwen3-32b --context 131072 --batch 8 --json >"$T/q2.json"
check "qwen3 at 128k x8 does not fit" "grep -q '\"fits\":[[:space:]]*false' $T/q2.json"

# synth writes a folder that inspect reads back with the same counts.
$B synth --preset llama-tiny --out "$T/llama" --seed 3 >"$T/out" 2>&1; rc=$?
check "synth exit" "[ $rc -eq 0 ]"
check "synth files" "[ -f $T/llama/config.json ] && [ -f $T/llama/model.safetensors ] && [ -f $T/llama/generation_config.json ]"
$B inspect "$T/llama" --json >"$T/l.json"; rc=$?
check "inspect folder exit" "[ $rc -eq 0 ]"
check "inspect folder total" "grep -q '\"params_total\":[[:space:]]*722048,' $T/l.json"

# Bad input: exit 2 and a one-line message naming the file or option.
$B synth --preset nope --out "$T/x" 2>"$T/err"; rc=$?
check "unknown preset exit 2" "[ $rc -eq 2 ]"
check "unknown preset message" "grep -q \"unknown preset 'nope'\" $T/err"
$B synth --preset llama-tiny --out "$T/x" --seed -1 2>"$T/err"; rc=$?
check "bad seed exit 2" "[ $rc -eq 2 ] && grep -q -- '--seed' $T/err"
$B inspect 2>"$T/err"; rc=$?
check "inspect without model exit 2" "[ $rc -eq 2 ]"
$B inspect "$T/missing" 2>"$T/err"; rc=$?
check "missing folder exit 2" "[ $rc -eq 2 ] && grep -q 'missing' $T/err"
cp -r "$T/llama" "$T/trunc"
head -c 1000 "$T/llama/model.safetensors" >"$T/trunc/model.safetensors"
$B inspect "$T/trunc" 2>"$T/err"; rc=$?
check "truncated safetensors exit 2" "[ $rc -eq 2 ]"
check "truncated safetensors names file" "grep -q 'model.safetensors' $T/err && [ \$(wc -l <$T/err) -eq 1 ]"
cp -r "$T/llama" "$T/badcfg"
sed 's/"num_attention_heads":[[:space:]]*4/"num_attention_heads": 5/' "$T/llama/config.json" >"$T/badcfg/config.json"
$B inspect "$T/badcfg" 2>"$T/err"; rc=$?
check "bad config exit 2 names config.json" "[ $rc -eq 2 ] && grep -q 'config.json' $T/err"
$B nosuchcommand 2>"$T/err"; rc=$?
check "unknown command exit 2" "[ $rc -eq 2 ]"
$B help synth >"$T/h"; rc=$?
check "help synth" "[ $rc -eq 0 ] && grep -q -- '--preset' $T/h && grep -q 'gpt-oss-20b' $T/h"
$B version --json >"$T/v"; rc=$?
check "version --json lists backends" "[ $rc -eq 0 ] && grep -q '\"name\":[[:space:]]*\"cuda\"' $T/v && grep -q '\"name\":[[:space:]]*\"cpu\"' $T/v"

echo "RESULT pass=$pass fail=$fail skip=0"
[ $fail -eq 0 ]
