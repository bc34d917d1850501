/* Splits a generated response into the part to classify (the answer) and the
 * model's reasoning: gpt-oss harmony channels (`final` vs `analysis`) and
 * Qwen3 <think> blocks.  Decode the generated ids with special tokens kept. */
#ifndef DPB_SAFETY_CHANNELS_H
#define DPB_SAFETY_CHANNELS_H

#include <stdbool.h>
#include <stddef.h>
#include "core/status.h"
#include "tokenizer/tokenizer.h"

typedef struct dpb_safety_split {
    char *final;          /* the answer (owned; "" when none) */
    char *reasoning;      /* analysis channel / think block (owned; "" when none) */
    bool final_missing;   /* harmony: no `final` channel was produced (truncated or malformed) */
    bool has_reasoning;   /* reasoning is non-blank */
} dpb_safety_split;

/* tpl selects the format: HARMONY parses channels, QWEN3 <think>...</think>,
 * anything else keeps the whole text as the answer.  Leftover markers of the
 * form <|...|> are removed from both parts. */
dpb_status dpb_safety_split_response(dpb_chat_template tpl, const char *text, size_t len, dpb_safety_split *out);
void dpb_safety_split_free(dpb_safety_split *s);

#endif
