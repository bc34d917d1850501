#!/bin/sh
# CLI: synth --init hf|scaled and synth:PRESET[:SEED][:INIT]: help, refusals naming the option, and a
# scaled folder equal to the in-memory model (deploybench logits on both).
B=${DPB_BIN:-build/deploybench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }

$B synth --help >"$T/h"; rc=$?
check "help lists --init" "[ $rc -eq 0 ] && grep -q -- '--init hf|scaled' $T/h && grep -q 'sqrt(2 x layers)' $T/h"
$B synth --preset qwen3-tiny --out "$T/x" --init Scaled 2>"$T/err"; rc=$?
check "bad --init exit 2" "[ $rc -eq 2 ]"
check "bad --init names the option" "grep -q -- \"--init takes hf or scaled, not 'Scaled'\" $T/err"
check "bad --init writes nothing" "[ ! -e $T/x ]"
$B synth --preset qwen3-tiny --out "$T/x" --init 2>"$T/err"; rc=$?
check "missing --init value refused" "[ $rc -eq 2 ] && grep -q -- '--init' $T/err"
$B inspect synth:qwen3-tiny:7:fast >"$T/o" 2>"$T/err"; rc=$?
check "bad spec init refused" "[ $rc -ne 0 ] && grep -q \"synth:qwen3-tiny:7:fast': init 'fast': expected hf or scaled\" $T/err"

$B synth --preset qwen3-tiny --out "$T/q" --seed 4 --init scaled >"$T/out" 2>&1; rc=$?
check "synth --init scaled exit" "[ $rc -eq 0 ] && grep -q '(init scaled)' $T/out"
# a safetensors file with input_ids I64 [4] = 1, 5, 9, 200 (header of 64 bytes)
H='{"input_ids":{"dtype":"I64","shape":[4],"data_offsets":[0,32]}}'
{ printf '\100\000\000\000\000\000\000\000'; printf '%-64s' "$H"
  printf '\001\000\000\000\000\000\000\000\005\000\000\000\000\000\000\000\011\000\000\000\000\000\000\000\310\000\000\000\000\000\000\000'; } >"$T/in.safetensors"
$B logits --model "$T/q" --input "$T/in.safetensors" --out "$T/a.safetensors" >/dev/null 2>"$T/e1"; r1=$?
$B logits --model synth:qwen3-tiny:4:scaled --input "$T/in.safetensors" --out "$T/b.safetensors" >/dev/null 2>"$T/e2"; r2=$?
$B logits --model synth:qwen3-tiny:4 --input "$T/in.safetensors" --out "$T/c.safetensors" >/dev/null 2>&1; r3=$?
check "logits runs on the folder and in memory" "[ $r1 -eq 0 ] && [ $r2 -eq 0 ] && [ $r3 -eq 0 ]"
check "folder == synth:qwen3-tiny:4:scaled logits" "cmp -s $T/a.safetensors $T/b.safetensors"
check "hf init gives other logits" "! cmp -s $T/a.safetensors $T/c.safetensors"
echo "RESULT pass=$pass fail=$fail skip=0"
[ $fail -eq 0 ]
