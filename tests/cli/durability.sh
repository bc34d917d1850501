#!/bin/sh
# CLI: durability of deploybench latency.  20 trials of kill -9 at random moments of a run (each
# trial resumes the same folder); after every kill each JSONL line is complete and manifest.json
# whole; a final --resume finishes to the same set of cells as a clean run, each cell once.
B=${DPB_BIN:-build/deploybench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; cat "$T/out" "$T/err" 2>/dev/null | head -20; fi; }
GRID="--model synth:gpt-oss-tiny --prompt-tokens 8,16,24 --gen-tokens 4,6 --num-requests 3 --warmup 0 --threads 1"
t0=$(date +%s%N)
$B latency $GRID --out $T/clean >"$T/out" 2>"$T/err"; rc=$?
t1=$(date +%s%N)
# kill moments: uniform over the clean run's duration (so they fall in start-up, requests and writes)
span=$(awk -v a=$t0 -v b=$t1 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
check "clean run" "[ $rc -eq 0 ] && [ \$(tail -n +2 $T/clean/summary.csv | wc -l) -eq 6 ]"
# Every line of a JSONL file is a whole record: it starts with {"cell": and ends with }, and the
# file ends with a newline.
lines_ok() {
    [ -s "$1" ] || return 0
    [ "$(tail -c 1 "$1" | od -An -c | tr -d ' ')" = '\n' ] || return 1
    awk '!/^\{"cell":".*\}$/ { bad=1 } END { exit bad }' "$1"
}
tail -n +2 $T/clean/summary.csv | cut -d, -f1 | sort >$T/a
folder=0; D=$T/killed0; finished_same=0; finished_diff=0
trials=0; torn=0; whole=0; killed_mid=0
seed=$(date +%s)
while [ $trials -lt 20 ]; do
    delay=$(awk -v s=$((seed + trials)) -v s2=$span 'BEGIN { srand(s); printf "%.3f", rand() * s2 }')
    $B latency $GRID --out $D --resume >/dev/null 2>&1 &
    pid=$!
    sleep $delay
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    rc=$?
    [ $rc -eq 137 ] && killed_mid=$((killed_mid + 1))
    trials=$((trials + 1))
    for f in $D/requests.jsonl $D/cells.jsonl; do lines_ok $f || torn=$((torn + 1)); done
    if [ -f $D/manifest.json ]; then
        head -c 1 $D/manifest.json | grep -q '{' && tail -c 2 $D/manifest.json | grep -q '}' || whole=$((whole + 1))
    fi
    if [ $rc -eq 0 ]; then
        # this folder finished under kills: same cells as the clean run; the next trials use a new one
        tail -n +2 $D/summary.csv | cut -d, -f1 | sort >$T/c
        if cmp -s $T/a $T/c; then finished_same=$((finished_same + 1)); else finished_diff=$((finished_diff + 1)); fi
        folder=$((folder + 1)); D=$T/killed$folder
    fi
done
echo "folders finished under kills: $finished_same"
check "folders finished under kills have the clean run's cells" "[ $finished_diff -eq 0 ]"
check "20 trials, every JSONL line complete" "[ $torn -eq 0 ]"
check "manifest.json whole after every kill" "[ $whole -eq 0 ]"
echo "clean run $span s; killed mid-run: $killed_mid of 20"; check "most trials were killed mid-run" "[ $killed_mid -ge 8 ]"
echo "before the final resume: $(cat $D/cells.jsonl 2>/dev/null | wc -l) cells, $(cat $D/requests.jsonl 2>/dev/null | wc -l) requests recorded"
$B latency $GRID --out $D --resume >"$T/out" 2>"$T/err"; rc=$?
check "resume finishes" "[ $rc -eq 0 ] && grep -q '\"status\":[[:space:]]*\"complete\"' $D/manifest.json"
tail -n +2 $D/summary.csv | cut -d, -f1 | sort >$T/b
check "same set of cells as the clean run" "cmp -s $T/a $T/b"
check "each cell once in cells.jsonl" "[ \$(wc -l < $D/cells.jsonl) -eq 6 ] && [ \$(cut -d, -f1 $D/cells.jsonl | sort -u | wc -l) -eq 6 ]"
# Each finished cell's requests are in requests.jsonl under that cell's attempt.
ok=1
while read -r line; do
    cell=$(echo "$line" | sed 's/^{"cell":"\([^"]*\)".*/\1/')
    att=$(echo "$line" | sed 's/.*"attempt":"\([^"]*\)".*/\1/')
    n=$(grep -c "^{\"cell\":\"$cell\",\"attempt\":\"$att\"" $D/requests.jsonl)
    [ "$n" -eq 3 ] || ok=0
done <$D/cells.jsonl
check "every finished cell has its 3 requests recorded" "[ $ok -eq 1 ]"
echo "RESULT pass=$pass fail=$fail skip=0"
[ $fail -eq 0 ]
