/* libFuzzer target: the evaluation readers (CSV/MMLU, GSM8K and HumanEval
 * JSONL, BBH JSON and cot prompts) and the answer extraction on the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "eval/eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *t = (const char *)data;
    dpb_eval_set s = {0};
    (void)dpb_eval_mmlu_parse(t, size, "x", "f.csv", &s);
    dpb_eval_set_free(&s);
    (void)dpb_eval_gsm8k_parse(t, size, "f.jsonl", &s);
    dpb_eval_set_free(&s);
    (void)dpb_eval_humaneval_parse(t, size, "f.jsonl", &s);
    dpb_eval_set_free(&s);
    (void)dpb_eval_bbh_parse(t, size, "x", "f.json", &s);
    dpb_eval_set_free(&s);
    char *d = NULL, *sh = NULL;
    if (dpb_eval_bbh_cot_parse(t, size, "f.txt", &d, &sh) == DPB_OK) { free(d); free(sh); }
    char *z = malloc(size + 1);
    if (!z) return 0;
    memcpy(z, data, size);
    z[size] = 0;
    char *x = NULL;
    bool m;
    if (dpb_eval_gsm8k_strict(z, &x) == DPB_OK) { (void)dpb_eval_gsm8k_match(x, z, &m); free(x); }
    if (dpb_eval_gsm8k_flexible(z, &x) == DPB_OK) free(x);
    if (dpb_eval_gsm8k_cot_strict(z, &x) == DPB_OK) free(x);
    if (dpb_eval_bbh_extract(z, &x) == DPB_OK) free(x);
    free(z);
    return 0;
}
