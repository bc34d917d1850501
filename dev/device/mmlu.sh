#!/bin/bash
# Issue 9 on the H200: full MMLU (loglikelihood, 5-shot, 14,042 questions) with synth:gpt-oss-20b.
# Carry .devcarry with deploybench, its libraries, shared/data/mmlu/{dev,test} and the gpt-oss tokenizer.
set -u
export LD_LIBRARY_PATH=$PWD/.devcarry/lib:${LD_LIBRARY_PATH:-}
D=$PWD/.devcarry/shared/data
date -u
/usr/bin/time -v timeout -s INT ${LIM:-240} .devcarry/deploybench eval --task mmlu --data $D --model synth:gpt-oss-20b \
    --tokenizer $D/tokenizers/gpt-oss-harmony/tokenizer.json.gz --backend cuda --batch ${BATCH:-128} --prefill-chunk 2048 \
    --out $OUT/mmlu-20b > $OUT/mmlu.log 2> $OUT/mmlu.err
echo "mmlu rc=$?"; date -u
tail -5 $OUT/mmlu.log; grep -E "Elapsed|Maximum resident" $OUT/mmlu.err; tail -3 $OUT/mmlu.err
python3 -c "import json;d=json.load(open('$OUT/mmlu-20b/summary.json'));print({k:d[k] for k in d if not isinstance(d[k],(dict,list))})" 2>&1 | head -5
tar -C $OUT --exclude samples.jsonl -czf $OUT/mmlu-20b.tar.gz mmlu-20b && rm -rf $OUT/mmlu-20b
