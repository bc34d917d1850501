#!/bin/sh
# lm-evaluation-harness (PyPI lm_eval, model local-completions) and deploybench eval --endpoint against the
# same `deploybench serve` (synth:gpt-oss-tiny with random weights, GPT-2 tokenizer, CPU), on the same
# items: 20 MMLU questions of one subject (5-shot, first_n) and 10 GSM8K problems (5-shot, lm-eval's
# sampled exemplars).  The data come from ../shared/data through local task YAMLs (lm-eval's mmlu and
# gsm8k definitions with dataset_path: json); nothing is downloaded but the lm_eval package itself.
#
#   sh dev/eval/lmeval_compare.sh            # VENV (default build/lmeval-venv) is created on first use
# Env: VENV, WORK (default: a temp dir, kept), SUBJECT (default abstract_algebra), MMLU_N (20), GSM_N (10),
#      GSM_MAX (256: max new tokens), DPB_BIN, DPB_SHARED.
# Prints each difference and exits 1 when a prompt, a choice or an output differs.
set -u
B=${DPB_BIN:-build/deploybench}
SH=${DPB_SHARED:-../shared}
D=$SH/data
VENV=${VENV:-build/lmeval-venv}
WORK=${WORK:-$(mktemp -d /tmp/lmeval-compare.XXXXXX)}
SUBJECT=${SUBJECT:-abstract_algebra}
MMLU_N=${MMLU_N:-20}
GSM_N=${GSM_N:-10}
GSM_MAX=${GSM_MAX:-256}
HERE=$(dirname "$0")
[ -d "$D/mmlu" ] || { echo "SKIP: $D is absent"; exit 77; }
if [ ! -x "$VENV/bin/lm_eval" ]; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "lm_eval[api]==0.4.13" transformers || exit 1
fi
"$VENV/bin/python" "$HERE/lmeval_compare.py" prepare "$D" "$WORK" "$SUBJECT" || exit 1

"$B" serve --model synth:gpt-oss-tiny --tokenizer "$D/tokenizers/gpt2/tokenizer.json" --served-model-name tiny \
    --port 0 --port-file "$WORK/port" --max-batch 4 >"$WORK/serve.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null' EXIT
i=0
while [ ! -s "$WORK/port" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
U="http://127.0.0.1:$(cat "$WORK/port")"
echo "server $U, work folder $WORK"

export HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$WORK/hf"
ARGS="model=tiny,base_url=$U/v1/completions,tokenizer_backend=huggingface,tokenizer=$WORK/tok,tokenized_requests=False"
ARGS="$ARGS,num_concurrent=4,max_retries=3,max_length=4096,max_gen_toks=$GSM_MAX"
"$VENV/bin/lm_eval" --model local-completions --model_args "$ARGS" --include_path "$WORK/tasks" \
    --tasks "dpb_mmlu_$SUBJECT" --limit "$MMLU_N" --log_samples --output_path "$WORK/lmeval" >"$WORK/lmeval-mmlu.log" 2>&1 \
    || { tail -30 "$WORK/lmeval-mmlu.log"; exit 1; }
"$VENV/bin/lm_eval" --model local-completions --model_args "$ARGS" --include_path "$WORK/tasks" \
    --tasks dpb_gsm8k --limit "$GSM_N" --log_samples --output_path "$WORK/lmeval" >"$WORK/lmeval-gsm8k.log" 2>&1 \
    || { tail -30 "$WORK/lmeval-gsm8k.log"; exit 1; }

"$B" eval --task mmlu --data "$D" --subset "$SUBJECT" --limit "$MMLU_N" --endpoint "$U" --model tiny --batch 4 \
    --out "$WORK/dpb-mmlu" || exit 1
"$B" eval --task gsm8k --data "$D" --limit "$GSM_N" --max-new-tokens "$GSM_MAX" --endpoint "$U" --model tiny --batch 4 \
    --out "$WORK/dpb-gsm8k" || exit 1
"$VENV/bin/python" "$HERE/lmeval_compare.py" compare "$WORK/lmeval" "$WORK/dpb-mmlu" "$WORK/dpb-gsm8k"
