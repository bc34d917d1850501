#!/usr/bin/env python3
"""Helpers for dev/eval/lmeval_compare.sh (test tooling, not part of deploybench).

  lmeval_compare.py prepare SHARED_DATA WORKDIR SUBJECT
      Writes WORKDIR/data/{mmlu_test,mmlu_dev}.jsonl for one MMLU subject (from
      ../shared/data/mmlu's CSVs, in the cais/mmlu schema: question, subject,
      choices, answer), task YAMLs that are lm-eval's mmlu and gsm8k tasks with
      the dataset pointed at local files (WORKDIR/tasks), and a Hugging Face
      tokenizer folder for GPT-2 (WORKDIR/tok) from ../shared's tokenizer.json.
  lmeval_compare.py compare LMEVAL_OUT DPB_MMLU_DIR DPB_GSM8K_DIR
      Compares lm-eval's --log_samples output with deploybench's samples.jsonl
      item by item; prints every difference; exit 1 when a choice, a prompt or
      an output differs.
"""
import csv
import glob
import hashlib
import json
import os
import sys

MMLU_YAML = """task: dpb_mmlu_{subject}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/mmlu_test.jsonl
    dev: {data}/mmlu_dev.jsonl
test_split: test
fewshot_split: dev
fewshot_config:
  sampler: first_n
output_type: multiple_choice
description: "The following are multiple choice questions (with answers) about {subject_words}.\\n\\n"
doc_to_text: "{{{{question.strip()}}}}\\nA. {{{{choices[0]}}}}\\nB. {{{{choices[1]}}}}\\nC. {{{{choices[2]}}}}\\nD. {{{{choices[3]}}}}\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
num_fewshot: 5
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

# lm_eval/tasks/gsm8k/gsm8k.yaml (v3) with the dataset pointed at local files
GSM8K_YAML = """task: dpb_gsm8k
dataset_path: json
dataset_kwargs:
  data_files:
    train: {gsm}/train.jsonl
    test: {gsm}/test.jsonl
output_type: generate_until
training_split: train
fewshot_split: train
test_split: test
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: false
    regexes_to_ignore:
      - ","
      - "\\\\$"
      - "(?s).*#### "
      - "\\\\.$"
generation_kwargs:
  until:
    - "Question:"
    - "</s>"
    - "<|im_end|>"
  do_sample: false
  temperature: 0.0
repeats: 1
num_fewshot: 5
filter_list:
  - name: "strict-match"
    filter:
      - function: "regex"
        regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"
      - function: "take_first"
  - name: "flexible-extract"
    filter:
      - function: "regex"
        group_select: -1
        regex_pattern: "(-?[$0-9.,]{{2,}})|(-?[0-9]+)"
      - function: "take_first"
metadata:
  version: 3.0
"""


def read_mmlu(path, subject):
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    for r in rows[1:]:
        out.append({"question": r[0], "subject": subject, "choices": r[1:5], "answer": int(r[5])})
    return out


def prepare(shared, work, subject):
    data = os.path.join(work, "data")
    tasks = os.path.join(work, "tasks")
    tok = os.path.join(work, "tok")
    for d in (data, tasks, tok):
        os.makedirs(d, exist_ok=True)
    for split in ("test", "dev"):
        rows = read_mmlu(os.path.join(shared, "mmlu", split, f"{subject}_{split}.csv"), subject)
        with open(os.path.join(data, f"mmlu_{split}.jsonl"), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    with open(os.path.join(tasks, f"dpb_mmlu_{subject}.yaml"), "w") as f:
        f.write(MMLU_YAML.format(subject=subject, subject_words=subject.replace("_", " "), data=data))
    with open(os.path.join(tasks, "dpb_gsm8k.yaml"), "w") as f:
        f.write(GSM8K_YAML.format(gsm=os.path.join(shared, "gsm8k")))
    src = os.path.join(shared, "tokenizers", "gpt2", "tokenizer.json")
    with open(src, "rb") as a, open(os.path.join(tok, "tokenizer.json"), "wb") as b:
        b.write(a.read())
    with open(os.path.join(tok, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|endoftext|>",
                   "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": 1024}, f)


def sha(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def lm_samples(root, task):
    files = sorted(glob.glob(os.path.join(root, "**", f"samples_{task}_*.jsonl"), recursive=True))
    if not files:
        sys.exit(f"compare: no samples_{task}_*.jsonl under {root}")
    with open(files[-1], encoding="utf-8") as f:
        return {(d["doc_id"], d.get("filter")) if "gsm8k" in task else d["doc_id"]: d for d in map(json.loads, f)}


def ours(path):
    with open(os.path.join(path, "samples.jsonl"), encoding="utf-8") as f:
        return {d["doc_id"]: d for d in map(json.loads, f)}


def context_of(s):
    a = s["arguments"]
    first = a[0] if isinstance(a, list) else a[sorted(a)[0]]
    return first[0] if isinstance(first, list) else first["arg_0"]


def compare(root, mmlu_dir, gsm_dir):
    bad = 0
    # MMLU: same prompts, same loglikelihoods (within 1e-3), same choice
    mine, theirs = ours(mmlu_dir), lm_samples(root, "dpb_mmlu_*")
    maxd = 0.0
    for i in sorted(theirs):
        t, m = theirs[i], mine.get(i)
        if m is None:
            print(f"mmlu doc {i}: missing in deploybench"); bad += 1; continue
        lls = [float(r[0]) for r in t["filtered_resps"]]
        pick = max(range(len(lls)), key=lambda k: (lls[k], -k))
        d = max(abs(a - b) for a, b in zip(lls, m["loglikelihoods"]))
        maxd = max(maxd, d)
        same_prompt = sha(context_of(t)) == m["prompt_sha256"]
        if "ABCD"[pick] != m["extracted"] or not same_prompt or d > 1e-3:
            bad += 1
            print(f"mmlu doc {i}: lm-eval {'ABCD'[pick]} {lls} / deploybench {m['extracted']} {m['loglikelihoods']}"
                  f" / same prompt: {same_prompt}")
    acc_t = sum(t["acc"] for t in theirs.values()) / len(theirs)
    acc_m = sum(m["correct"]["acc"] for m in mine.values()) / len(mine)
    print(f"mmlu: {len(theirs)} items; largest |loglikelihood difference| {maxd:.2e}; acc lm-eval {acc_t:.4f}, "
          f"deploybench {acc_m:.4f}")
    # GSM8K: same prompts (few-shot exemplars), same outputs, same extractions and scores
    mine, theirs = ours(gsm_dir), lm_samples(root, "dpb_gsm8k")
    same_out = 0
    for key in sorted(theirs, key=str):
        t, i = theirs[key], key[0]
        m = mine.get(i)
        if m is None:
            print(f"gsm8k doc {i}: missing in deploybench"); bad += 1; continue
        out = t["resps"][0][0]
        f = t.get("filter")
        same_prompt = sha(context_of(t)) == m["prompt_sha256"]
        ext = t["filtered_resps"][0] if isinstance(t["filtered_resps"], list) else t["filtered_resps"]
        ok = same_prompt and out == m["output"] and ext == m["extracted"][f] and \
            bool(t["exact_match"]) == m["correct"][f]
        same_out += out == m["output"] and f == "strict-match"
        if not ok:
            bad += 1
            print(f"gsm8k doc {i} ({f}): same prompt {same_prompt}; lm-eval output {out!r} -> {ext!r} "
                  f"{t['exact_match']}; deploybench {m['output']!r} -> {m['extracted'][f]!r} {m['correct'][f]}")
    print(f"gsm8k: {len(theirs)} lm-eval samples (per filter); identical outputs in {same_out}")
    print("RESULT " + ("identical item by item" if bad == 0 else f"{bad} differences"))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 5 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3], sys.argv[4]))
    else:
        sys.exit(__doc__)
