/* libFuzzer target: the safety parsers on the same bytes: CSV, the built-in
 * set's JSONL reader, the refusal detector, response splitting and the judge
 * reply parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "safety/channels.h"
#include "safety/client.h"
#include "safety/refusal.h"
#include "safety/sets.h"

static dpb_refusal_detector *g_det;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_det && dpb_refusal_detector_create(&g_det) != DPB_OK) return 0;
    char *t = malloc(size + 1);
    if (!t) return 0;
    memcpy(t, data, size);
    t[size] = 0;
    dpb_csv c;
    if (dpb_csv_parse(t, size, "fuzz.csv", &c) == DPB_OK) {
        (void)dpb_csv_column(&c, "prompt");
        dpb_csv_free(&c);
    }
    dpb_safety_set s = {0};
    (void)dpb_safety_read_builtin_text(t, size, "fuzz.jsonl", &s);
    dpb_safety_set_free(&s);
    dpb_refusal_result r;
    (void)dpb_refusal_classify(g_det, t, size, &r);
    size_t len = strlen(t); /* splitting works on NUL-terminated decoder output */
    for (int tpl = 0; tpl < 4; tpl++) {
        dpb_safety_split sp;
        if (dpb_safety_split_response((dpb_chat_template)tpl, t, len, &sp) == DPB_OK) dpb_safety_split_free(&sp);
    }
    dpb_refusal_verdict v;
    (void)dpb_judge_parse(t, &v);
    free(t);
    return 0;
}
