#!/bin/sh
# CLI: deploybench study --synthetic end to end on the CPU with small grids: every step's files,
# the study manifest and commands.sh, figures (PNG/SVG/PDF when gnuplot is installed), report.html,
# summary.md, paper/*.tex (and main.pdf when latexmk is installed), escaping of a hostile model
# name, --resume skipping finished steps, and report.html in headless Chromium (no console
# messages, a non-empty screenshot) when chromium is installed.
B=${DPB_BIN:-build/deploybench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0; skip=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; tail -30 "$T/err" 2>/dev/null; fi; }
skip() { skip=$((skip + 1)); echo "SKIP $1"; }
ok() { if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }
S=$T/study
# A model name with every character HTML and LaTeX treat specially (and a space-free shell word).
HOSTILE='l&a<m>_50%$#~^{x}'
GRID="--prompt-tokens 8,16 --gen-tokens 4,8 --num-requests 2 --warmup 0 --contexts 16,32 --memory-gen-tokens 4
      --energy-contexts 8 --energy-gen-tokens 4 --num-runs 1 --idle-seconds 0.2 --ablate-tests kv,batch
      --ablate-prompt-tokens 8 --ablate-gen-tokens 4 --ablate-requests 1 --threads 1"

# 1. latency only, then the rest with --resume: the latency step is not run again.
$B study --synthetic --models "gpt-oss-tiny,$HOSTILE=synth:llama-tiny" $GRID --steps latency --out $S >"$T/out" 2>"$T/err"; rc=$?
check "latency-only call: exit 0, two latency folders" "[ $rc -eq 0 ] && [ -s $S/gpt-oss-tiny/latency/summary.csv ] && [ -s '$S/$HOSTILE/latency/summary.csv' ]"
$B study --synthetic --models "gpt-oss-tiny,$HOSTILE=synth:llama-tiny" $GRID --resume --out $S >"$T/out" 2>"$T/err"; rc=$?
check "resumed study: exit 0" "[ $rc -eq 0 ]"
check "resumed study: latency already complete, not rerun" "grep -q 'gpt-oss-tiny latency already complete' $T/err && [ \$(grep -c '^\"\$DPB\" latency' $S/commands.sh) -eq 2 ]"
for m in gpt-oss-tiny "$HOSTILE"; do
    check "$m: memory, energy, ablate files" "[ -s '$S/$m/memory/memory.csv' ] && [ -s '$S/$m/energy/energy_summary.csv' ] && [ -s '$S/$m/ablate-kv/ablation_kv.csv' ] && [ -s '$S/$m/ablate-batch/ablation_batch.csv' ]"
done
# 2. a grid split over calls: another generation length for one model joins the same folder.
$B study --synthetic --models gpt-oss-tiny $GRID --gen-tokens 6 --steps latency,unify --resume --out $S >"$T/out" 2>"$T/err"; rc=$?
check "split grid: new cells join the finished ones" "[ $rc -eq 0 ] && [ \$(tail -n +2 $S/gpt-oss-tiny/latency/summary.csv | wc -l) -eq 6 ] && grep -q '^p16_g6_b1,' $S/gpt-oss-tiny/latency/summary.csv"
check "split grid: commands.sh lists every run, unify sees each folder once" \
    "[ \$(grep -c '^\"\$DPB\" latency --model synth:gpt-oss-tiny' $S/commands.sh) -eq 2 ] && [ \$(grep -c '^\"\$DPB\" unify' $S/commands.sh) -eq 2 ] && [ \$(tail -1 $S/commands.sh | grep -o 'gpt-oss-tiny/latency' | wc -l) -eq 1 ]"
check "unified CSVs and APE" "[ -s $S/unified/unified_latency_comparison.csv ] && [ -s $S/unified/unified_memory_comparison.csv ] && [ -s $S/ape/ape_analysis.csv ]"
check "study manifest: complete, models marked synthetic, stand-in named" \
    "grep -q '\"status\":[[:space:]]*\"complete\"' $S/manifest.json && grep -q '\"synthetic\":[[:space:]]*true' $S/manifest.json && grep -q '\"stands_for\":[[:space:]]*\"gpt-oss-20b\"' $S/manifest.json"
check "eval and safety skipped with the reason; serve ran with prompt ids inside the 512-token vocabulary" \
    "grep -q 'no --tokenizer: a synth: model has none' $S/manifest.json && grep -q -- '--prompt-ids 1:512' $S/commands.sh && [ -s $S/gpt-oss-tiny/serve/summary.json ] && grep -q '\"failed\":[[:space:]]*0' $S/gpt-oss-tiny/serve/summary.json"
check "commands.sh: every step command, runnable shell" \
    "sh -n $S/commands.sh && grep -q '^\"\$DPB\" memory --model synth:gpt-oss-tiny' $S/commands.sh && grep -q '^\"\$DPB\" ablate ' $S/commands.sh && grep -q '^\"\$DPB\" unify ' $S/commands.sh && grep -q '^\"\$DPB\" report --results' $S/commands.sh"
grep -qF "'$S/$HOSTILE/memory'" $S/commands.sh; ok "commands.sh quotes the hostile name" $?
check "report.html, summary.md, paper/main.tex" "[ -s $S/report.html ] && [ -s $S/summary.md ] && [ -s $S/paper/main.tex ]"
check "report.html: self-contained (no script, no remote reference)" "! grep -qi '<script' $S/report.html && ! grep -Eq '(src|href)=\"(https?:)?//' $S/report.html"
grep -qF 'l&amp;a&lt;m&gt;_50%$#~^{x}' $S/report.html && ! grep -qF 'a<m>' $S/report.html; ok "report.html: model name escaped" $?
grep -qF 'l\&a\textless{}m\textgreater{}\_50\%\$\#\textasciitilde{}\textasciicircum{}\{x\}' $S/paper/main.tex; ok "paper: model name escaped" $?
check "paper: booktabs tables, definitions" "grep -q 'booktabs' $S/paper/main.tex && grep -q 'toprule' $S/paper/main.tex && grep -q 'prefill' $S/paper/main.tex"
check "summary.md: reference study's published numbers as a labelled column" "grep -q 'reference study' $S/summary.md && grep -q '9,764' $S/summary.md && grep -q '476' $S/summary.md"
check "energy figure drawn, or listed as not drawn with the reason (no NVML or RAPL)" \
    "grep -q 'Energy per 1k generated tokens: \\*\\*not drawn\\*\\*: ' $S/summary.md || [ -s $S/figures/energy_per_1k.png ]"
if command -v gnuplot >/dev/null 2>&1; then
    for f in ttft_vs_prompt tpot_itl_vs_gen latency_percentiles memory_kv_vs_context ape; do
        check "figure $f: PNG, SVG, PDF" "[ -s $S/figures/$f.png ] && [ -s $S/figures/$f.svg ] && [ -s $S/figures/$f.pdf ] && head -c 8 $S/figures/$f.png | od -c | grep -q 'P   N   G' && grep -q '<svg' $S/figures/$f.svg"
    done
    check "report.html inlines the PNG figures" "[ \$(grep -o 'src=\"data:image/png;base64,' $S/report.html | wc -l) -ge 5 ]"
    check "paper has the figures as PDF" "[ -s $S/paper/figures/ttft_vs_prompt.pdf ] && grep -q 'includegraphics.*figures/ttft_vs_prompt.pdf' $S/paper/main.tex"
else
    skip "figures: gnuplot is not installed (Debian: gnuplot-nox)"
    check "without gnuplot the figures are listed as not drawn" "grep -q 'gnuplot is not installed' $S/summary.md"
fi
if command -v latexmk >/dev/null 2>&1; then
    check "paper/main.pdf built by latexmk" "[ -s $S/paper/main.pdf ] && head -c 5 $S/paper/main.pdf | grep -q '%PDF-'"
else
    skip "paper PDF: latexmk is not installed (Debian: latexmk texlive-latex-recommended)"
fi

# 2. report.html in headless Chromium: no console message, a non-empty screenshot.
CH=$(command -v chromium || command -v chromium-browser)
if [ -n "$CH" ]; then
    mkdir -p $T/chrome
    HOME=$T/chrome timeout 120 "$CH" --headless --no-sandbox --disable-gpu --user-data-dir=$T/chrome \
        --screenshot=$T/shot.png --window-size=1200,1800 --enable-logging=stderr --v=0 "file://$S/report.html" \
        >$T/chrome.out 2>$T/chrome.err
    check "chromium: a non-empty screenshot" "[ \$(wc -c < $T/shot.png) -gt 20000 ]"
    check "chromium: no console messages" "! grep -q 'CONSOLE' $T/chrome.err"
    HOME=$T/chrome timeout 120 "$CH" --headless --no-sandbox --disable-gpu --user-data-dir=$T/chrome --dump-dom \
        "file://$S/report.html" >$T/dom.html 2>/dev/null
    check "chromium: the DOM has the tables and figures" "grep -q '<table>' $T/dom.html && grep -q 'Definitions' $T/dom.html"
else
    skip "browser check: chromium is not installed (Debian: chromium)"
fi

# 3. usage errors name the option
$B study --out $T/x --steps latency,bogus >"$T/out" 2>"$T/err"; rc=$?
check "unknown step refused, naming it" "[ $rc -eq 2 ] && grep -q \"unknown step 'bogus'\" $T/err && [ ! -e $T/x ]"
$B study --out $T/x --models 'a/b=synth:llama-tiny' >"$T/out" 2>"$T/err"; rc=$?
check "a model name with / refused" "[ $rc -eq 2 ] && grep -q 'not usable as a folder name' $T/err"
$B study --synthetic $GRID --out $S >"$T/out" 2>"$T/err"; rc=$?
check "a used folder without --resume refused" "[ $rc -ne 0 ] && grep -q -- '--resume' $T/err"
echo '{"synthetic": true, "prompt_tokens": [8], "gen_tokens": [4], "steps": "latency", "models": {"q": "synth:qwen3-tiny"}}' >$T/cfg.json
$B study --config $T/cfg.json --num-requests 1 --dry-run --out $T/d >"$T/out" 2>"$T/err"; rc=$?
check "--config + --dry-run: the command, options from both" "[ $rc -eq 0 ] && grep -q 'deploybench latency --model synth:qwen3-tiny --out $T/d/q/latency --backend cpu --prompt-tokens 8 --gen-tokens 4 --num-requests 1' $T/out && [ ! -e $T/d ]"
$B study --synthetic --models llama-tiny --steps latency --prompt-tokens 8 --gen-tokens 4 --num-requests 1 --warmup 0 \
    --tokenizer "$(printf 'x\necho INJECTED')" --out $T/inj >"$T/out" 2>"$T/err"
check "a newline in an argument adds no command to commands.sh" "[ -s $T/inj/commands.sh ] && ! DPB=true sh $T/inj/commands.sh 2>&1 | grep -q INJECTED"
$B study --help >"$T/out" 2>&1
check "--help explains steps, grids, resume and splitting" "grep -q -- '--steps' $T/out && grep -q -- '--resume' $T/out && grep -q -- '--backend' $T/out && grep -q 'Splitting' $T/out"
echo "RESULT pass=$pass fail=$fail skip=$skip"
[ $fail -eq 0 ]
