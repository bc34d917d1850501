/* The synthetic engine: answers OpenAI requests with tokens on a known
 * schedule and no model, so the load generator's own accuracy and ceiling can
 * be measured.  It is a calibration target only, not a model server.
 *
 * Schedule for a request accepted at t0 (the moment submit is called):
 *   the first chunk (1 token) at t0 + ttft;
 *   then chunks of tokens_per_chunk tokens (fewer for the last) every
 *   tokens_per_chunk * itl, each interval plus a uniform jitter in [-jitter, +jitter]
 *   (clamped so time never runs backwards).
 * So with jitter 0 and (N - 1) divisible by K: E2E - TTFT = (N - 1) * itl, TPOT = itl.
 * Output length: max_tokens (default 16, as the OpenAI API's default).
 * Prompt tokens: the number of ids, or of whitespace-separated words in the
 * prompt / message contents (a stand-in for a tokenizer).
 * Each token's text is one word with a leading space (" the", " of", ...). */
#ifndef DPB_SERVE_SYNTHETIC_H
#define DPB_SERVE_SYNTHETIC_H

#include <stdint.h>
#include "serve/engine.h"

typedef struct dpb_synth_engine_config {
    double ttft_ms, itl_ms, jitter_ms;
    uint32_t tokens_per_chunk; /* >= 1 */
    uint64_t default_max_tokens;
    uint64_t max_model_len;
    uint64_t max_queue;        /* requests in flight beyond this get 503; 0 = unlimited */
    uint64_t seed;
    unsigned threads;          /* scheduling threads, requests spread round-robin (0 or 1: one) */
    const char *model_id;
} dpb_synth_engine_config;

void dpb_synth_engine_config_default(dpb_synth_engine_config *c);
dpb_status dpb_synth_engine_create(const dpb_synth_engine_config *c, dpb_serve_engine **out);
/* Stops its thread, aborting requests still in flight, and frees it. */
void dpb_synth_engine_destroy(dpb_serve_engine *e);

#endif
