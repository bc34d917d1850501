/* Accuracy evaluations compatible with lm-evaluation-harness (docs/EVAL.md):
 * readers for the MMLU, GSM8K, BBH and HumanEval files in ../shared/data,
 * prompt builders, and the scoring rules (answer extraction, exact match).
 *
 * Every reader treats its file as hostile: sizes are capped before reading,
 * counts and lengths are checked, and errors name the file, line and field.
 * Nothing is downloaded; the user gives the data folder. */
#ifndef DPB_EVAL_H
#define DPB_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/status.h"

/* One evaluation item.  Unused fields are NULL / -1. */
typedef struct dpb_eval_item {
    char *subset;      /* MMLU subject, BBH task, else NULL */
    char *question;    /* MMLU question, GSM8K question, BBH input, HumanEval prompt */
    char *choices[4];  /* MMLU */
    int answer;        /* MMLU: 0..3 */
    char *target;      /* GSM8K full answer (with "#### n"), BBH target */
    char *task_id;     /* HumanEval */
    char *entry_point; /* HumanEval */
    char *canonical;   /* HumanEval canonical_solution */
    char *test;        /* HumanEval test code (defines check(candidate)) */
} dpb_eval_item;

typedef struct dpb_eval_set {
    dpb_eval_item *items;
    size_t n, cap;
} dpb_eval_set;

void dpb_eval_set_free(dpb_eval_set *s);

/* Byte caps for one input file (a hostile file larger than this is refused). */
#define DPB_EVAL_MAX_FILE (256u << 20)

/* ---- CSV (RFC 4180: quotes, doubled quotes, newlines inside quotes) ---- */
/* Splits the text into rows of exactly ncols fields (else an error naming
 * what and the line).  fields[row * ncols + col] are owned strings. */
dpb_status dpb_eval_csv_parse(const char *text, size_t len, size_t ncols, const char *what, char ***fields,
                              size_t *nrows);
void dpb_eval_csv_free(char **fields, size_t nrows, size_t ncols);

/* ---- readers ---- */
/* One MMLU CSV: with the header question,choice0..3,answer (answer 0-3) or
 * the original header-less layout (answer A-D).  subject names the items. */
dpb_status dpb_eval_mmlu_parse(const char *text, size_t len, const char *subject, const char *what, dpb_eval_set *out);
/* Every <subject>_<split>.csv in dir (sorted by subject), or only subject's. */
dpb_status dpb_eval_mmlu_load_dir(const char *dir, const char *split, const char *subject, dpb_eval_set *out);
/* GSM8K JSONL {question, answer}. */
dpb_status dpb_eval_gsm8k_parse(const char *text, size_t len, const char *what, dpb_eval_set *out);
dpb_status dpb_eval_gsm8k_load(const char *path, dpb_eval_set *out);
/* One BBH task file {examples:[{input,target}]}. */
dpb_status dpb_eval_bbh_parse(const char *text, size_t len, const char *task, const char *what, dpb_eval_set *out);
/* A cot-prompts/<task>.txt: drops the canary line and the "-----" line;
 * *description gets the one-line task description, *shots the exemplars
 * (both owned, trailing whitespace trimmed). */
dpb_status dpb_eval_bbh_cot_parse(const char *text, size_t len, const char *what, char **description, char **shots);
/* Sorted task names (the bbh/<task>.json files), owned. */
dpb_status dpb_eval_bbh_tasks(const char *dir, char ***names, size_t *n);
/* HumanEval JSONL (already decompressed). */
dpb_status dpb_eval_humaneval_parse(const char *text, size_t len, const char *what, dpb_eval_set *out);
/* HumanEval.jsonl.gz (or plain .jsonl), decompressed with zlib under a cap. */
dpb_status dpb_eval_humaneval_load(const char *path, dpb_eval_set *out);
/* Reads a gzip (or plain) file into a NUL-terminated buffer of at most max bytes. */
dpb_status dpb_eval_read_gz(const char *path, size_t max, char **out, size_t *len);

/* ---- prompts (lm-evaluation-harness templates; caller frees) ---- */
/* "{question}\nA. {c0}\nB. {c1}\nC. {c2}\nD. {c3}\nAnswer:" */
dpb_status dpb_eval_mmlu_prompt(const dpb_eval_item *it, char **out);
/* The description line, k shots ("...Answer: X" joined by "\n\n") and the question. */
dpb_status dpb_eval_mmlu_fewshot(const dpb_eval_item *it, const dpb_eval_set *dev, int k, char **out);
/* "Question: q\nAnswer: a\n\n" x k + "Question: q\nAnswer:".  The k shots are
 * pool->items[shots[0..k)] (lm-eval's sampler, see dpb_eval_fewshot_random), or
 * the first k of pool when shots is NULL. */
dpb_status dpb_eval_gsm8k_prompt(const dpb_eval_item *it, const dpb_eval_set *pool, const size_t *shots, int k,
                                 char **out);
/* lm-eval's default few-shot sampler: for each of n_docs documents in order,
 * Random(seed).sample(pool, k) with one generator shared by all documents
 * (seed 1234 is lm-eval's default fewshot_random_seed).  *shots gets n_docs x k
 * pool indexes (caller frees).  MMLU uses first_n instead (the first k). */
dpb_status dpb_eval_fewshot_random(size_t n_docs, size_t pool_n, int k, uint64_t seed, size_t **shots);
/* gsm8k_cot: lm-eval's 8 fixed exemplars (first k), "Q: q\nA: ...\n\n" + "Q: q\nA:". */
dpb_status dpb_eval_gsm8k_cot_prompt(const dpb_eval_item *it, int k, char **out);
/* BBH: description + "\n\n" + shots + "\n\nQ: input\nA: Let's think step by step.\n" (k == 0: no shots). */
dpb_status dpb_eval_bbh_prompt(const dpb_eval_item *it, const char *description, const char *shots, int k, char **out);

/* ---- scoring ---- */
#define DPB_EVAL_INVALID "[invalid]" /* lm-eval's filter fallback */
/* GSM8K strict-match: first capture of "#### (\-?[0-9\.\,]+)"; else "[invalid]". */
dpb_status dpb_eval_gsm8k_strict(const char *output, char **out);
/* gsm8k_cot strict-match: first capture of "The answer is (\-?[0-9\.\,]+)." */
dpb_status dpb_eval_gsm8k_cot_strict(const char *output, char **out);
/* flexible-extract: the last match of "(-?[$0-9.,]{2,})|(-?[0-9]+)", its non-empty group. */
dpb_status dpb_eval_gsm8k_flexible(const char *output, char **out);
/* lm-eval's GSM8K exact_match: removes ",", "$", "(?s).*#### " and "\.$" from both,
 * then compares ignoring case. */
dpb_status dpb_eval_gsm8k_match(const char *extracted, const char *target, bool *match);
/* BBH get-answer filter: first match of "(?<=the answer is )(.*)(?=.)"; else "[invalid]". */
dpb_status dpb_eval_bbh_extract(const char *output, char **out);
/* BBH exact_match: byte equality (lm-eval's bbh template sets no ignore_case). */
bool dpb_eval_bbh_match(const char *extracted, const char *target);
/* MMLU acc: index of the largest loglikelihood (first on ties, as numpy.argmax). */
int dpb_eval_argmax(const double *ll, int n);
/* Truncates text at the first occurrence of any stop string (in place). */
void dpb_eval_apply_stops(char *text, const char *const *stops, int nstops);
/* Standard error of a mean of 0/1 outcomes (lm-eval's mean_stderr): sqrt(p(1-p)/(n-1)). */
double dpb_eval_stderr(double correct, double n);

#endif
