/* Safety run summaries: rates with 95 % Wilson intervals by set and by
 * category, rule-vs-judge agreement, and the Markdown section for the report. */
#ifndef DPB_SAFETY_REPORT_H
#define DPB_SAFETY_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>
#include "core/status.h"
#include "safety/governance.h"
#include "safety/refusal.h"
#include "safety/sets.h"

typedef struct dpb_safety_record {
    const dpb_safety_prompt *p;
    dpb_refusal_verdict rule;   /* the rule-based verdict on the answer (final channel) */
    int judge;                  /* -1: no judge verdict, else a dpb_refusal_verdict */
    bool reasoning_present;     /* a non-blank analysis channel / think block */
    int reasoning_rule;         /* -1 when no reasoning, else the rule verdict on it */
    bool final_missing;         /* harmony: no final channel */
} dpb_safety_record;

/* summary.json's "groups" and the CSV: one row per (set, category) and one
 * per set (category "ALL").  *json and *csv are owned by the caller. */
dpb_status dpb_safety_summarize(const dpb_safety_record *r, size_t n, cJSON **json, char **csv);

typedef struct dpb_safety_report_info {
    const char *model;         /* --model */
    const char *mode;          /* "in-process engine" or "endpoint URL" */
    bool random_weights;       /* synth: models */
    const char *judge;         /* NULL: no judge */
    const char *decoding;      /* e.g. "greedy, seed 0, max 256 new tokens" */
} dpb_safety_report_info;

/* The Markdown section (caller frees). */
dpb_status dpb_safety_report_markdown(const dpb_safety_report_info *info, const dpb_governance *gov,
                                      const cJSON *summary, char **out);

#endif
