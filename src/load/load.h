/* The load generator's engine: one level (one concurrency or one request
 * rate) against one or more OpenAI-compatible endpoints, on one thread, with
 * libcurl's multi interface driven by epoll (socket callbacks).
 *
 * Clocks: every timestamp is CLOCK_MONOTONIC ns.  For each request:
 *   t_sched  the intended send time (open loop: the precomputed arrival;
 *            closed loop: when its user became free),
 *   t_send   when it was handed to libcurl,
 *   t_first  the first SSE event carrying an output token,
 *   t_last   the last such event, t_done the end of the response.
 * TTFT = t_first - t_send; "from schedule" variants use t_sched instead.
 * E2EL = t_done - t_send.  TPOT = (E2EL - TTFT) / (N - 1).
 * ITL per chunk: gaps between token-carrying events; per token: each gap
 * divided evenly over the tokens that event carried. */
#ifndef DPB_LOAD_H
#define DPB_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core/hist.h"
#include "core/jsonl.h"
#include "core/status.h"

/* Client-side token counting.  Until a tokenizer is plugged in (the
 * tokenizer issue), the client counts token-carrying SSE events ("chunks")
 * and labels the count so. */
typedef struct dpb_load_tokenizer {
    const char *name;
    void *ctx;
    dpb_status (*count)(void *ctx, const char *text, size_t len, uint64_t *n_tokens);
} dpb_load_tokenizer;

typedef enum { DPB_LOAD_CLOSED = 0, DPB_LOAD_OPEN = 1 } dpb_load_mode;

typedef enum {
    DPB_FAIL_CONNECT = 0,  /* could not connect / resolve */
    DPB_FAIL_TIMEOUT,      /* --timeout elapsed */
    DPB_FAIL_HTTP_STATUS,  /* a non-2xx status */
    DPB_FAIL_MALFORMED,    /* SSE or JSON that does not parse, or an in-band error event */
    DPB_FAIL_EARLY_CLOSE,  /* the connection ended before [DONE] */
    DPB_FAIL_EMPTY,        /* a complete response with no output token */
    DPB_FAIL_OTHER,
    DPB_FAIL_N
} dpb_load_fail;
const char *dpb_load_fail_name(dpb_load_fail f);

typedef struct dpb_load_config {
    const char *const *endpoints; /* base URLs, e.g. "http://127.0.0.1:8000" */
    size_t n_endpoints;
    const char *model;
    bool chat;                    /* /v1/chat/completions instead of /v1/completions */
    const char *api_key;          /* NULL: no Authorization header */
    /* workload */
    uint64_t prompt_tokens, gen_tokens;
    uint32_t id_lo, id_hi;        /* random token-id prompts draw from [id_lo, id_hi); 0, 0: [1000, 21000) */
    const char *const *prompts;   /* dataset prompts (NULL: random) */
    size_t n_prompts;
    bool ignore_eos;              /* send vLLM's ignore_eos so outputs are exactly gen_tokens long */
    bool usage_stats;             /* send stream_options {include_usage, continuous_usage_stats} */
    /* load */
    dpb_load_mode mode;
    uint64_t concurrency;         /* closed loop: users */
    double ramp_up_s;             /* closed loop: user i starts at i * ramp_up_s / users (0: all at once) */
    double rate;                  /* open loop: requests/s (INFINITY: all at once) */
    double burstiness;            /* gamma shape; 1 = Poisson */
    uint64_t max_concurrency;     /* open loop: in-flight cap, 0 = none (waiting counts as latency from schedule) */
    uint64_t num_requests;        /* 0: use duration */
    double duration_s;
    uint64_t warmup;              /* requests before measuring, not recorded */
    double timeout_s, connect_timeout_s;
    uint64_t max_consecutive_failures; /* stop the level after this many in a row (0 = never) */
    uint64_t seed;
    const dpb_load_tokenizer *tokenizer;
    /* goodput limits, ms (0: not set) */
    double slo_ttft_ms, slo_tpot_ms, slo_e2el_ms;
    /* output */
    dpb_jsonlog *jsonl;             /* per-request records (may be NULL) */
    int level;                    /* written into each record */
    bool record_chunks;           /* add every chunk's time to the records */
} dpb_load_config;

void dpb_load_config_default(dpb_load_config *c);

typedef struct dpb_load_result {
    uint64_t issued, completed, failed, interrupted;
    uint64_t fails[DPB_FAIL_N];
    char first_error[256];
    uint64_t good;                /* completed within every goodput limit */
    uint64_t input_tokens, output_tokens;       /* server usage where given, else the client's count */
    uint64_t server_counted, client_counted, mismatched; /* requests with each count; both given and different */
    const char *client_count_method;           /* "chunks" or "tokenizer:NAME" */
    bool any_server_usage;
    double duration_s;            /* first send (or schedule start) to last completion */
    /* histograms in ns */
    dpb_hist *ttft, *ttft_sched, *tpot, *itl_chunk, *itl_token, *e2el, *e2el_sched, *send_lag, *dispatch_lag;
    /* self-measurement */
    double cpu_s, wall_s;
    uint64_t sse_events, bytes_received, peak_inflight;
    uint64_t jsonl_dropped;       /* records too long for the line buffer (not expected) */
    bool aborted;                 /* stopped early (consecutive failures) */
    char abort_reason[256];
} dpb_load_result;

dpb_status dpb_load_result_create(dpb_load_result **out);
void dpb_load_result_free(dpb_load_result *r);

/* Runs one level (warm-up first when asked).  Request failures are counted,
 * not returned; the status is for setup errors and DPB_E_INTERRUPTED (Ctrl-C,
 * after which r holds what finished). */
dpb_status dpb_load_run(const dpb_load_config *c, dpb_load_result *r);

/* Arrival offsets (ns from the start) of a gamma process with the given rate
 * and shape (burstiness); rate = INFINITY gives all zeros.  Exposed for tests. */
dpb_status dpb_load_arrivals(double rate, double burstiness, uint64_t n, uint64_t seed, uint64_t **out);

/* The summary of one level: vLLM's keys (mean_ttft_ms, p99_tpot_ms, ...) and
 * ours (docs/LOADGEN.md); the caller frees *out with cJSON_Delete. */
dpb_status dpb_load_summary(const dpb_load_config *c, const dpb_load_result *r, cJSON **out);

#endif
