#!/bin/sh
# CLI: tokenize and detokenize on a tiny tokenizer written here, plus the real
# tokenizers from ../shared when present (skipped otherwise).
B=${DPB_BIN:-build/deploybench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0; skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }

# A SentencePiece-style BPE: a=0 b=1 ab=2 U+2581=3 <unk>=4, merge "a b", <|endoftext|>=5 special.
cat >"$T/tok.json" <<'EOF'
{"added_tokens": [{"id": 5, "content": "<|endoftext|>", "special": true}],
 "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
 "pre_tokenizer": null,
 "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}]},
 "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true,
           "vocab": {"a": 0, "b": 1, "ab": 2, "\u2581": 3, "<unk>": 4}, "merges": ["a b"]}}
EOF
TK="--tokenizer $T/tok.json"

out=$($B tokenize $TK --text "ab a"); rc=$?
check "plain ids" "[ $rc -eq 0 ] && [ \"$out\" = '2 3 0' ]"
out=$($B tokenize $TK --text "ab a" --count)
check "--count" "[ \"$out\" = '3' ]"
out=$($B tokenize $TK --text "ab a" --json)
check "--json" "[ '$out' = '{\"count\":3,\"ids\":[2,3,0]}' ]"
out=$($B tokenize $TK --text "a<|endoftext|>")
check "special as text" "[ \"$out\" = '0 4' ]"
out=$($B tokenize $TK --text "a<|endoftext|>" --specials)
check "--specials" "[ \"$out\" = '0 5' ]"
printf 'ab' | $B tokenize $TK >"$T/o"; rc=$?
check "stdin" "[ $rc -eq 0 ] && [ \"\$(cat $T/o)\" = '2' ]"
printf 'b a\n' >"$T/in.txt"
out=$($B tokenize $TK --file "$T/in.txt")
check "--file (newline is unk)" "[ \"$out\" = '1 3 0 4' ]"

printf '{"text": "ab"}\n\n{"text": "b b"}\n' >"$T/in.jsonl"
$B tokenize $TK --jsonl "$T/in.jsonl" >"$T/o"; rc=$?
check "--jsonl exit" "[ $rc -eq 0 ]"
check "--jsonl lines" "[ \$(wc -l <$T/o) -eq 2 ] && head -1 $T/o | grep -q '^{\"ids\":\[2\]}$' && tail -1 $T/o | grep -q '^{\"ids\":\[1,3,1\]}$'"
printf '{"text": "ab"}\n{"txt": 1}\n' >"$T/bad.jsonl"
$B tokenize $TK --jsonl "$T/bad.jsonl" >"$T/o" 2>"$T/err"; rc=$?
check "--jsonl bad line exit 2 names line" "[ $rc -eq 2 ] && grep -q 'bad.jsonl line 2' $T/err"

printf 'a\303(' >"$T/bad.txt"
$B tokenize $TK --file "$T/bad.txt" 2>"$T/err"; rc=$?
check "invalid UTF-8 exit 2" "[ $rc -eq 2 ] && grep -q 'not valid UTF-8 at byte 1' $T/err"

out=$($B detokenize $TK --ids "2, 3, 0")
check "detokenize" "[ \"$out\" = 'ab a' ]"
out=$(echo "[2,3,0]" | $B detokenize $TK --json)
check "detokenize stdin --json" "[ '$out' = '{\"text\":\"ab a\"}' ]"
out=$($B detokenize $TK --ids "0 5 1" --skip-special)
check "--skip-special" "[ \"$out\" = 'ab' ]"
$B detokenize $TK --ids "0 99" 2>"$T/err"; rc=$?
check "out-of-range id exit 2" "[ $rc -eq 2 ] && grep -q 'id #1' $T/err && grep -q '99' $T/err"
$B detokenize $TK --ids "0 x" 2>"$T/err"; rc=$?
check "non-numeric id exit 2" "[ $rc -eq 2 ] && grep -q -- '--ids' $T/err"
$B detokenize $TK --ids "0 1" --stream >"$T/o"; rc=$?
check "--stream" "[ $rc -eq 0 ] && [ \$(wc -l <$T/o) -eq 3 ] && grep -q '^1	\"b\"$' $T/o"

# exact-length prompts on the tiny tokenizer
out=$($B tokenize $TK --exact-tokens 40 --chat-template none --count 2>"$T/err")
check "--exact-tokens count" "[ \"$out\" = '40' ]"
$B tokenize $TK --exact-tokens 2 --chat-template chatml 2>"$T/err"; rc=$?
check "--exact-tokens below overhead" "[ $rc -eq 2 ] && grep -q 'the minimum is' $T/err"

# usage errors
$B tokenize --text hi 2>"$T/err"; rc=$?
check "no tokenizer exit 2" "[ $rc -eq 2 ] && grep -q -- '--model' $T/err"
$B tokenize $TK --text a --file b 2>"$T/err"; rc=$?
check "two inputs exit 2" "[ $rc -eq 2 ]"
$B tokenize $TK --chat-template jinja --text a 2>"$T/err"; rc=$?
check "unknown template exit 2" "[ $rc -eq 2 ] && grep -q 'jinja' $T/err"
$B tokenize --tokenizer "$T/none.json" --text a 2>"$T/err"; rc=$?
check "missing file exit 2 names it" "[ $rc -eq 2 ] && grep -q 'none.json' $T/err"
echo '{"model": {"type": "WordPiece", "vocab": {}}}' >"$T/wp.json"
$B tokenize --tokenizer "$T/wp.json" --text a 2>"$T/err"; rc=$?
check "WordPiece refused" "[ $rc -eq 2 ] && grep -q 'WordPiece' $T/err && [ \$(wc -l <$T/err) -eq 1 ]"
$B tokenize --help >"$T/h"; rc=$?
check "help" "[ $rc -eq 0 ] && grep -q -- '--exact-tokens' $T/h && grep -q -- '--bench' $T/h && grep -q -- '--jsonl' $T/h"
$B help detokenize >"$T/h"; rc=$?
check "help detokenize" "[ $rc -eq 0 ] && grep -q -- '--skip-special' $T/h"

# Real tokenizers from ../shared
S=${DPB_SHARED:-../shared}
if [ -d "$S/data/tokenizers" ]; then
    Z="$S/data/tokenizers"
    out=$($B tokenize --tokenizer "$Z/gpt-oss-harmony/tokenizer.json.gz" --text "Hello, world!")
    check "o200k from .gz" "[ \"$out\" = '13225 11 2375 0' ]"
    out=$($B tokenize --tokenizer "$Z/o200k_base/o200k_base.tiktoken" --specials-file "$Z/o200k_base/o200k_harmony_special_tokens.json" --text "hello world<|endoftext|>" --specials)
    check "o200k tiktoken + specials" "[ \"$out\" = '24912 2375 199999' ]"
    out=$($B tokenize --tokenizer "$Z/gpt-oss-harmony/tokenizer.json.gz" --chat --chat-template harmony --date 2026-11-26 --reasoning low --text "What is 2+2?" --count)
    want=$(grep -m1 '"reasoning_effort": "low"' "$Z/vectors/chat_templates.public.jsonl" | sed 's/.*"ids": \[//; s/\].*//' | tr ',' '\n' | wc -l)
    check "harmony chat count matches reference ($want)" "[ \"$out\" = \"$want\" ]"
    mkdir -p "$T/qwen"
    cp "$Z/qwen3/tokenizer.json.gz" "$T/qwen/"
    echo '{"model_type": "qwen3"}' >"$T/qwen/config.json"
    out=$($B tokenize --model "$T/qwen" --chat --no-thinking --text "hi" --json)
    check "--model folder picks qwen3 template" "echo '$out' | grep -q '151667,271,151668,271\]'"
    out=$($B tokenize --model "$T/qwen" --exact-tokens 1000 --count)
    check "--model exact 1000" "[ \"$out\" = '1000' ]"
    head -c 200000 "$S/data/gsm8k/train.jsonl" >"$T/corpus.txt"
    $B tokenize --tokenizer "$Z/llama2/tokenizer.model" --bench "$T/corpus.txt" --repeat 2 --json >"$T/o"; rc=$?
    check "--bench json" "[ $rc -eq 0 ] && grep -q '\"best_mb_per_s\"' $T/o && grep -q '\"bytes\":200000' $T/o"
    out=$($B detokenize --tokenizer "$Z/llama2/tokenizer.model" --ids "1 15043 29892 3186 29991")
    check "llama2 detokenize drops <s> and the dummy space" "[ \"$out\" = 'Hello, world!' ]"
else
    echo "SKIP shared tokenizer checks: $S/data/tokenizers is absent"
    skip=$((skip + 1))
fi

echo "RESULT pass=$pass fail=$fail skip=$skip"
[ "$fail" -eq 0 ]
