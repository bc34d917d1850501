/* Evaluations against an OpenAI-compatible server (deploybench eval
 * --endpoint), the way lm-evaluation-harness's local-completions model asks:
 *
 *  - loglikelihood: POST /v1/completions {prompt: context + continuation,
 *    max_tokens: 1, temperature: 0, logprobs: 1, echo: true, seed}; the score
 *    is the sum of choices[0].logprobs.token_logprobs over the continuation's
 *    prompt tokens.  lm-eval counts the context's tokens with its own
 *    tokenizer; here the split is where the server's tokens put it: the
 *    continuation starts at the first prompt token whose text_offset is at or
 *    after the context's end (a token straddling the boundary belongs to the
 *    continuation, and is counted in straddled).  The generated token is not
 *    part of the prompt (usage.prompt_tokens says how many are).
 *  - generation: POST /v1/completions {prompt, max_tokens, temperature: 0,
 *    stop (the first 4), seed}, or /v1/chat/completions with the prompt as one
 *    user message; every stop string is applied again on the client.
 *
 * Chat endpoints cannot give loglikelihoods (no prompt logprobs): that is
 * refused with a message saying so. */
#ifndef DPB_EVAL_REMOTE_H
#define DPB_EVAL_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/status.h"
#include "eval/lm.h"
#include "load/post.h"

typedef struct dpb_eval_remote {
    char *completions_url; /* owned */
    char *chat_url;        /* owned */
    const char *model;
    bool chat;             /* generation through /v1/chat/completions */
    uint64_t seed;         /* sent with every request (lm-eval: 1234) */
    dpb_post_opts post;    /* max_inflight: --batch */
} dpb_eval_remote;

typedef struct dpb_eval_remote_stats {
    int64_t requests;
    int64_t prompt_tokens;   /* as the server counted them */
    int64_t straddled;       /* loglikelihoods whose context ended inside a token */
} dpb_eval_remote_stats;

/* endpoint: http://host:port, .../v1, .../v1/completions or
 * .../v1/chat/completions (the last one implies chat). */
dpb_status dpb_eval_remote_init(dpb_eval_remote *r, const char *endpoint, const char *model, bool chat,
                                int inflight);
void dpb_eval_remote_free(dpb_eval_remote *r);

/* ll[q * nc + c] as dpb_eval_loglik (ids: the questions' doc_ids, for error messages; may be NULL); context/continuation split as lm-eval's
 * _encode_pair (trailing whitespace of the context moves to the continuation). */
dpb_status dpb_eval_remote_loglik(dpb_eval_remote *r, const char *const *contexts, const size_t *ids, int nq,
                                  const char *const *conts, int nc, double *ll, dpb_eval_remote_stats *stats);

/* Greedy generations for n prompts (outputs owned by the caller). */
dpb_status dpb_eval_remote_generate(dpb_eval_remote *r, const char *const *prompts, const size_t *ids, int n,
                                    int64_t max_new,
                                    const char *const *stops, int nstops, char **outputs,
                                    dpb_eval_remote_stats *stats);

/* The pieces, exposed for tests. */
/* Request body for one loglikelihood (caller frees). */
dpb_status dpb_eval_remote_ll_body(const dpb_eval_remote *r, const char *prompt, char **out);
/* Reads a /v1/completions reply with echo + logprobs: ctx_bytes is where the
 * continuation starts in the prompt (prompt_bytes long).  what names the
 * request in errors.  *straddled is set when a token spans the boundary. */
dpb_status dpb_eval_remote_ll_parse(const char *reply, size_t len, size_t ctx_bytes, const char *prompt,
                                    const char *what, double *ll, int64_t *prompt_tokens, bool *straddled);
/* The generated text of a completions or chat reply (caller frees). */
dpb_status dpb_eval_remote_gen_parse(const char *reply, size_t len, bool chat, const char *what, char **text,
                                     int64_t *prompt_tokens);

#endif
