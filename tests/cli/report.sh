#!/bin/sh
# CLI: deploybench report on folders that were not written by deploybench study: a serving sweep
# (deploybench load against the synthetic calibration server) gives the throughput-vs-latency and
# goodput figures; figures without data are listed as not drawn (never an empty plot); without
# gnuplot every figure is listed with the reason; usage errors name the option.
B=${DPB_BIN:-build/deploybench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0; skip=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; tail -30 "$T/err" 2>/dev/null; fi; }
R=$T/results
mkdir -p $R/calibration
P=$((20000 + $$ % 30000))
$B load --launch "exec $B serve --engine synthetic --port $P --ttft 5 --itl 2" --endpoint http://127.0.0.1:$P \
    --concurrency 1,2,4 --num-requests 6 --gen-tokens 8 --goodput ttft:50,tpot:10 --out $R/calibration/serve \
    >"$T/out" 2>"$T/err"; rc=$?
check "serving sweep against the synthetic server" "[ $rc -eq 0 ] && [ -s $R/calibration/serve/sweep.csv ]"
# An energy folder as a GPU run writes it (numbers made up for the test), for the energy figure and
# the reference study's published bar beside a model named gpt-oss-20b.
mkdir -p $R/gpt-oss-20b/energy
echo '{"schema": "deploybench.manifest/1", "command": "energy", "status": "complete", "model": {"spec": "synth:gpt-oss-20b"}}' \
    >$R/gpt-oss-20b/energy/manifest.json
echo '{"schema": "deploybench.energy/1", "contexts": [{"context": 2048, "gen_tokens": 64, "j_per_1k_tokens": 2613.5,
  "seed_j_per_1k_tokens_avg_w_x_time_no_idle": 2713.0, "idle_avg_w": 132.7, "total_avg_w": 340.3, "tok_s_decode": 177,
  "total_energy_rel_diff": 0.042}]}' >$R/gpt-oss-20b/energy/energy_summary.json
$B report --results $R --out $T/rep --no-pdf >"$T/out" 2>"$T/err"; rc=$?
check "report: exit 0, files written to --out" "[ $rc -eq 0 ] && [ -s $T/rep/report.html ] && [ -s $T/rep/summary.md ] && [ -s $T/rep/paper/main.tex ] && [ ! -e $R/report.html ]"
check "serving table from the sweep" "grep -q '### Serving sweep' $T/rep/summary.md && [ \$(grep -c '^| calibration | ' $T/rep/summary.md) -ge 3 ]"
check "figures without data listed as not drawn, with why" \
    "grep -q 'TTFT vs prompt length: \\*\\*not drawn\\*\\*: no latency results' $T/rep/summary.md && grep -q 'Memory and KV cache vs context: \\*\\*not drawn\\*\\*: no memory results' $T/rep/summary.md && [ ! -e $T/rep/figures/ttft_vs_prompt.png ]"
if command -v gnuplot >/dev/null 2>&1; then
    check "throughput vs latency and goodput drawn (PNG, SVG, PDF)" \
        "for f in throughput_vs_latency goodput; do [ -s $T/rep/figures/\$f.png ] && [ -s $T/rep/figures/\$f.svg ] && [ -s $T/rep/figures/\$f.pdf ] || exit 1; done"
    check "energy figure with the reference study's published bar" \
        "[ -s $T/rep/figures/energy_per_1k.png ] && grep -q '9764' $T/rep/figures/energy_per_1k.dat && grep -q 'gpt-oss-20b \\[synthetic\\], 2048/64' $T/rep/figures/energy_per_1k.dat"
    check "the gnuplot script and data stay beside the figure" "[ -s $T/rep/figures/goodput.gp ] && [ -s $T/rep/figures/goodput-0.dat ] && grep -q \"set output 'goodput.svg'\" $T/rep/figures/goodput.gp"
else
    skip=$((skip + 1)); echo "SKIP serving figures: gnuplot is not installed (Debian: gnuplot-nox)"
fi
DPB_GNUPLOT=$T/no-such-gnuplot $B report --results $R --out $T/rep2 --no-pdf >"$T/out" 2>"$T/err"; rc=$?
check "without gnuplot: still a report, every figure listed with the reason" \
    "[ $rc -eq 0 ] && [ \$(grep -c 'not drawn\\*\\*: gnuplot is not installed' $T/rep2/summary.md) -eq 3 ] && ! grep -q 'data:image/png' $T/rep2/report.html"
$B report >"$T/out" 2>"$T/err"; rc=$?
check "--results is required" "[ $rc -eq 2 ] && grep -q -- '--results DIR is required' $T/err"
$B report --results $T/none >"$T/out" 2>"$T/err"; rc=$?
check "a missing folder is named" "[ $rc -eq 2 ] && grep -q \"$T/none: not a folder\" $T/err"
echo "RESULT pass=$pass fail=$fail skip=$skip"
[ $fail -eq 0 ]
