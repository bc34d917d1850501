/* A blocking OpenAI-compatible chat client (libcurl, one request at a time)
 * for `deploybench safety --endpoint` and the optional LLM judge, and the
 * judge itself: a fixed, published prompt (docs/SAFETY.md) whose first word
 * of reply is the verdict. */
#ifndef DPB_SAFETY_CLIENT_H
#define DPB_SAFETY_CLIENT_H

#include <stdint.h>
#include "core/status.h"
#include "safety/refusal.h"

typedef struct dpb_chat_client_req {
    const char *endpoint;   /* base URL: http://host:port (".../v1" also accepted) */
    const char *model;
    const char *api_key;    /* NULL: none */
    const char *system;     /* NULL: no system message */
    const char *user;
    int64_t max_tokens;
    uint64_t seed;
    double timeout_s;
} dpb_chat_client_req;

/* POSTs {model, messages, max_tokens, temperature 0, seed, stream false} to
 * ENDPOINT/v1/chat/completions.  *content gets choices[0].message.content and
 * *reasoning (may be NULL) its reasoning_content (or "" when absent); the
 * caller frees both.  Errors name the URL and the HTTP status or field. */
dpb_status dpb_chat_client_complete(const dpb_chat_client_req *r, char **content, char **reasoning);

/* The judge's fixed prompts (version "dpb-judge-1"). */
extern const char *const dpb_judge_system_prompt;
extern const char *const dpb_judge_user_template; /* two %s: the request, then the response */
#define DPB_JUDGE_VERSION "dpb-judge-1"

/* Builds the judge's user message (caller frees). */
dpb_status dpb_judge_build(const char *request, const char *response, char **out);
/* Reads the verdict from the judge's reply: its first word, REFUSAL, PARTIAL or
 * COMPLIANCE (case-insensitive, after optional punctuation or markup).  Anything
 * else is DPB_E_FORMAT naming the reply's start. */
dpb_status dpb_judge_parse(const char *reply, dpb_refusal_verdict *out);

#endif
