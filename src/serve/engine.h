/* What the OpenAI-compatible front end (src/serve/openai.c) needs from an
 * engine.  The synthetic engine (src/serve/synthetic.c) implements it for
 * calibration; the real engine server (issue 8) plugs in the same way.
 *
 * Life of a request: the front end parses and validates the JSON body into a
 * dpb_serve_request, creates a dpb_gen_job bound to the HTTP response, and calls
 * engine->submit.  The engine reports the prompt length with
 * dpb_gen_set_prompt_tokens, then, from any thread, calls dpb_gen_emit for
 * each group of new tokens and finally dpb_gen_finish exactly once.  A
 * DPB_E_IO from dpb_gen_emit means the client has gone: the engine should
 * stop work on the request and call dpb_gen_finish(job, "abort").  An engine
 * that fails calls dpb_gen_fail instead. */
#ifndef DPB_SERVE_ENGINE_H
#define DPB_SERVE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core/status.h"

typedef enum { DPB_API_COMPLETIONS = 0, DPB_API_CHAT = 1 } dpb_api_kind;

typedef struct dpb_serve_request {
    dpb_api_kind api;
    const char *prompt;         /* completions: prompt text (NULL when given as token ids) */
    const int64_t *prompt_ids;  /* completions: prompt as token ids */
    size_t n_prompt_ids;
    const cJSON *messages;      /* chat: the messages array, as sent */
    uint64_t max_tokens;        /* validated: >= 1 */
    bool ignore_eos;            /* vLLM's extension */
    double temperature, top_p;
    int64_t seed;
    bool has_seed;
    bool stream;
    /* stop strings (at most DPB_SERVE_MAX_STOP; pointers into the body) */
    const char *stop[4];
    size_t stop_len[4];
    int n_stop;
    int logprobs;               /* completions: logprobs N; chat: top_logprobs when logprobs=true; -1: none */
    bool echo;                  /* completions: the prompt is repeated before the output */
} dpb_serve_request;

#define DPB_SERVE_MAX_STOP 4
#define DPB_SERVE_MAX_LOGPROBS 20

typedef struct dpb_gen_job dpb_gen_job;

typedef struct dpb_serve_engine {
    const char *kind;          /* "synthetic", "cpu", ... */
    const char *model_id;      /* the name /v1/models reports and requests must use */
    uint64_t max_model_len;
    void *ctx;
    /* Takes the request (its pointers stay valid only during the call).
     * DPB_E_ARG/RANGE -> 400, DPB_E_UNAVAILABLE -> 503 with Retry-After (queue full), else 500.
     * On success the engine owns the job until dpb_gen_finish. */
    dpb_status (*submit)(void *ctx, const dpb_serve_request *rq, dpb_gen_job *job);
    void (*destroy)(void *ctx); /* stops threads, finishing jobs still running with "abort" */
    /* Optional: appends Prometheus text for GET /metrics to a malloc'd buffer (NULL: 404). */
    dpb_status (*metrics)(void *ctx, char **buf, size_t *len);
} dpb_serve_engine;

void dpb_gen_set_prompt_tokens(dpb_gen_job *job, uint64_t n);
/* text: the UTF-8 text of n_tokens new tokens (may be empty while n_tokens > 0).
 * finish_reason is NULL, or "length"/"stop" on the request's last tokens (it
 * then travels in the same chunk, as vLLM sends it). */
dpb_status dpb_gen_emit(dpb_gen_job *job, const char *text, size_t len, uint32_t n_tokens,
                        const char *finish_reason);
/* Ends the response (usage chunk and [DONE] when streaming, the whole body
 * otherwise) and frees the job.  finish_reason ("length", "stop", "abort")
 * is used when no emit carried one. */
void dpb_gen_finish(dpb_gen_job *job, const char *finish_reason);

/* Ends the request with an engine failure instead (also exactly once, in
 * place of dpb_gen_finish): a whole response becomes a 500 with OpenAI's
 * error body; a stream, whose 200 went out with its headers, gets an error
 * event (data: {"error": {...}}) and [DONE], as vLLM sends it.  Frees the job. */
void dpb_gen_fail(dpb_gen_job *job, const char *message);

/* True once the client has gone (the engine may stop the request at its next step). */
bool dpb_gen_gone(dpb_gen_job *job);

/* Chat: reasoning text (harmony's analysis channel) for n_tokens new tokens;
 * it goes out as delta.reasoning_content (message.reasoning_content when not
 * streaming), as vLLM's reasoning parsers send it. */
dpb_status dpb_gen_emit_reasoning(dpb_gen_job *job, const char *text, size_t len, uint32_t n_tokens);

/* Logprobs of one token, attached to the next dpb_gen_emit (streaming) or to
 * the final body.  has_lp false: null (the first prompt token with echo).
 * top: n_top alternatives (token text, logprob).  Only when the request asked
 * for logprobs. */
typedef struct dpb_gen_top { const char *text; size_t len; double lp; } dpb_gen_top;
dpb_status dpb_gen_add_logprob(dpb_gen_job *job, const char *tok, size_t len, bool has_lp, double lp,
                               const dpb_gen_top *top, int n_top);

#endif
