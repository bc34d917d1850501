#!/bin/sh
# Runs every test program in $BUILD/tests and every tests/cli/*.sh, then prints
# the closing line "N passed, N failed, N skipped".  Exit status 1 on failure.
BUILD=${BUILD:-build}
export DPB_BIN="$PWD/$BUILD/deploybench"
pass=0; fail=0; skip=0; broken=""
for t in "$BUILD"/tests/test_* tests/cli/*.sh; do
    [ -e "$t" ] || continue
    case "$t" in *.d|*.o) continue;; esac
    name=$(basename "$t")
    log=$(mktemp)
    if [ "${t%.sh}" != "$t" ]; then sh "$t" >"$log" 2>&1; rc=$?; else "$t" >"$log" 2>&1; rc=$?; fi
    res=$(grep '^RESULT ' "$log" | tail -n 1)
    if [ -z "$res" ]; then
        echo "$name: crashed or printed no RESULT (exit $rc)"; cat "$log"; fail=$((fail + 1)); broken="$broken $name"
    else
        p=$(echo "$res" | sed 's/.*pass=\([0-9]*\).*/\1/')
        f=$(echo "$res" | sed 's/.*fail=\([0-9]*\).*/\1/')
        s=$(echo "$res" | sed 's/.*skip=\([0-9]*\).*/\1/')
        pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
        if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then
            [ "$f" -eq 0 ] && fail=$((fail + 1))
            echo "$name: $p passed, $f failed, $s skipped (exit $rc)"; cat "$log"; broken="$broken $name"
        else
            echo "$name: $p passed, $s skipped"
            grep '^SKIP' "$log" | sed 's/^/    /'
        fi
    fi
    rm -f "$log"
done
[ -n "$broken" ] && echo "failing:$broken"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
