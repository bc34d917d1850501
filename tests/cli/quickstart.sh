#!/bin/sh
# CLI: quickstart (the README's main job) on a tiny model: it prints real latency figures.
B=${DPB_BIN:-build/deploybench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; cat "$T/out" "$T/err" 2>/dev/null | head -20; fi; }
$B quickstart --model synth:gpt-oss-tiny --requests 3 --prompt-tokens 16 --gen-tokens 8 --threads 1 >"$T/out" 2>"$T/err"; rc=$?
check "quickstart exit 0" "[ $rc -eq 0 ]"
check "three measured rows" "[ \$(grep -c -E '^ +[0-9]+ +[0-9.]+ +[0-9.]+ +[0-9.]+' $T/out) -eq 3 ]"
check "summary lines" "grep -q '^TTFT ms' $T/out && grep -q '^TPOT ms' $T/out && grep -q 'decode tok/s' $T/out"
check "names model and backend" "grep -q 'synth:gpt-oss-tiny (gpt_oss' $T/out && grep -q 'cpu backend' $T/out"
# p50 <= p95 <= max for TTFT
check "percentiles ordered" "awk '/^TTFT ms/ { exit !(\$3 <= \$4 && \$4 <= \$5) }' $T/out"
$B quickstart --gen-tokens 1 >"$T/out" 2>"$T/err"; rc=$?
check "gen-tokens 1 rejected" "[ $rc -eq 2 ] && grep -q -- '--gen-tokens' $T/err"
$B quickstart --model synth:nope >"$T/out" 2>"$T/err"; rc=$?
check "unknown preset" "[ $rc -eq 2 ] && grep -q 'unknown preset' $T/err"
echo "RESULT pass=$pass fail=$fail skip=0"
[ $fail -eq 0 ]
