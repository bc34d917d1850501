/* The chat template a checkpoint's prompts use: shared by `generate --chat`
 * and the server's /v1/chat/completions. */
#ifndef DPB_TOKENIZER_CHAT_CHOOSE_H
#define DPB_TOKENIZER_CHAT_CHOOSE_H

#include "format/checkpoint.h"
#include "tokenizer/tokenizer.h"

/* name (e.g. --chat-template) when given, else the model folder's markers
 * (dpb_chat_template_detect), else the architecture (gpt-oss: harmony,
 * qwen3: qwen3, others: none). */
dpb_status dpb_chat_template_choose(const dpb_checkpoint *ck, const char *name, dpb_chat_template *out);

#endif
