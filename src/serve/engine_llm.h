/* The model engine behind the OpenAI front end: deploybench's own engine
 * (src/engine/engine.h) driven by one scheduler thread doing continuous
 * batching.
 *
 * Each step of the scheduler:
 *   1. drops requests whose client has gone (their slot is free for this step);
 *   2. admits waiting requests into free sequence slots (FIFO).  KV capacity
 *      is max_batch slots x max_model_len tokens, allocated up front by the
 *      engine, so a request is admitted exactly when a slot is free and its
 *      prompt + max_tokens fit max_model_len (checked at submit);
 *   3. runs one dpb_engine_forward over every decoding sequence (1 token each)
 *      plus prompt chunks of the prefilling ones, at most prefill_chunk prompt
 *      tokens per step (64 when a request needs prompt logprobs), so long
 *      prompts are interleaved with decode instead of stalling it;
 *   4. samples per request (dpb_token_sampler: temperature, top_p, seed),
 *      detokenizes incrementally, applies stop ids / stop strings /
 *      max_tokens / ignore_eos, and emits one chunk per token.
 * Requests submitted while a step runs join at the next step. */
#ifndef DPB_SERVE_ENGINE_LLM_H
#define DPB_SERVE_ENGINE_LLM_H

#include <stdint.h>
#include "engine/engine.h"
#include "serve/engine.h"

typedef struct dpb_llm_engine_config {
    const char *model;         /* a Hugging Face folder or synth:PRESET[:SEED][:INIT] */
    const char *tokenizer;     /* optional tokenizer file/folder (synth models need one for text) */
    const char *chat_template; /* NULL: from the model (dpb_chat_template_choose) */
    const char *model_id;      /* the name served; NULL: model */
    const char *backend;       /* cpu (default), ref, cuda */
    int threads;               /* backend threads, 0: all cores */
    dpb_engine_dtype dtype;
    dpb_engine_kv kv;          /* KV cache element type (auto: as dtype) */
    int max_batch;             /* sequence slots; default 16 */
    uint64_t max_queue;        /* waiting requests beyond this get 503 (Retry-After: 1); default 1024 */
    int64_t max_model_len;     /* tokens per sequence; 0: min(max_position_embeddings, 4096) */
    int64_t prefill_chunk;     /* prompt tokens per step; default 256 */
    double max_request_s;      /* a request running longer is ended ("abort"); default 600, 0: no limit */
    uint64_t fault_step;       /* tests only: forward step N (1-based) fails as an engine failure would; 0: never */
} dpb_llm_engine_config;

void dpb_llm_engine_config_default(dpb_llm_engine_config *c);
dpb_status dpb_llm_engine_create(const dpb_llm_engine_config *c, dpb_serve_engine **out);
/* Stops the scheduler, aborting requests in flight, and frees everything. */
void dpb_llm_engine_destroy(dpb_serve_engine *e);
/* The engine underneath (tests compare its logits with what the server sends). */
dpb_engine *dpb_llm_engine_engine(dpb_serve_engine *e);

/* Harmony output routing, exposed for tests: feed generated token ids, get
 * text routed to reasoning (analysis channel) or content (other channels,
 * and text before any channel header). */
typedef struct dpb_harmony_split {
    int32_t channel, message, end, start, ret, call, constrain; /* ids, -1 when unknown */
    int state;      /* 0 body, 1 channel name, 2 header */
    bool reasoning; /* the current body is analysis */
    char chan[32];
    size_t chan_len;
} dpb_harmony_split;

/* 1: the id was a harmony control token (the text of it is dropped). */
int dpb_harmony_split_token(dpb_harmony_split *h, int32_t id);
/* Routes decoded text of a non-control token: returns 1 for reasoning, 0 for content, -1 to drop (header). */
int dpb_harmony_split_text(dpb_harmony_split *h, const char *text, size_t len);

#endif
