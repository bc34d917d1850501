#!/bin/sh
# CLI: generate with text prompts and chat templates (needs ../shared's Qwen3 tokenizer).
B=${DPB_BIN:-build/deploybench}
S=${DPB_SHARED:-../shared}
if [ ! -f "$S/data/tokenizers/qwen3/tokenizer.json.gz" ]; then
    echo "SKIP: $S/data/tokenizers/qwen3/tokenizer.json.gz absent"; echo "RESULT pass=0 fail=0 skip=1"; exit 0
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; cat "$T/out" "$T/err" 2>/dev/null | head; fi; }
TOK="$S/data/tokenizers/qwen3/tokenizer.json.gz"
# The chat prompt is the ChatML rendering: 11 tokens for "Hello, world" with Qwen3's template
# (<|im_start|> user \n Hello , world <|im_end|> \n <|im_start|> assistant \n).
$B generate --model synth:qwen3-tiny --tokenizer "$TOK" --prompt "Hello, world" --chat --chat-template chatml \
    --max-new-tokens 4 --greedy --json >"$T/out" 2>"$T/err"; rc=$?
check "chat exit 0" "[ $rc -eq 0 ]"
check "chat prompt tokens" "grep -q '\"prompt_tokens\":[[:space:]]*11,' $T/out"
check "text field" "grep -q '\"text\":' $T/out"
$B generate --model synth:qwen3-tiny --tokenizer "$TOK" --prompt "Hello, world" --max-new-tokens 2 --json >"$T/out" 2>"$T/err"; rc=$?
check "plain prompt tokens (Hello , world)" "[ $rc -eq 0 ] && grep -q '\"prompt_tokens\":[[:space:]]*3,' $T/out"
# Streams decoded text, not ids.
$B generate --model synth:qwen3-tiny --tokenizer "$TOK" --prompt "Hi" --max-new-tokens 4 --greedy >"$T/out" 2>"$T/err"; rc=$?
check "streams text" "[ $rc -eq 0 ] && ! grep -q -E '^[0-9]+ [0-9]+ ' $T/out && grep -q 'generated 4' $T/err"
$B generate --model synth:qwen3-tiny --prompt "Hi" >"$T/out" 2>"$T/err"; rc=$?
check "no tokenizer: exit 2, says so" "[ $rc -eq 2 ] && grep -q 'has no tokenizer' $T/err"
$B generate --model synth:qwen3-tiny --prompt-ids 1,2 --chat >"$T/out" 2>"$T/err"; rc=$?
check "--chat needs text" "[ $rc -eq 2 ] && grep -q -- '--chat needs a text --prompt' $T/err"
$B generate --model synth:qwen3-tiny --tokenizer "$TOK" --prompt "Hi" --chat --chat-template nope >"$T/out" 2>"$T/err"; rc=$?
check "bad template name" "[ $rc -eq 2 ] && grep -q 'nope' $T/err"
echo "RESULT pass=$pass fail=$fail skip=0"
[ $fail -eq 0 ]
