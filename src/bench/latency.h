/* The study's latency grid (deploybench latency), and the pieces the memory
 * and energy commands share with it: prompts of exactly N tokens, per-request
 * metrics from the engine's timestamps, and per-cell statistics.
 *
 * Definitions (docs/STUDY.md):
 *   TTFT      first token's time - start (prefill and the first sample)
 *   TPOT      (last token's time - first token's time) / (n - 1): ms per output
 *             token, the first token excluded, so TTFT + (n-1) TPOT = E2E
 *   ITL       every gap between consecutive tokens of a request
 *   E2E       last token's time - start
 *   prefill   the prefill forward pass alone (t_prefill_done - start)
 *   seed_TPOT_tokps_prefill_included   n / E2E in tokens/s: what the reference
 *             study calls "TPOT" (tokens per second over the whole generate
 *             call, prefill included); kept for comparison only.
 * Percentiles: dpb_hist (DPB_HIST_PERCENTILE_METHOD). */
#ifndef DPB_BENCH_LATENCY_H
#define DPB_BENCH_LATENCY_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core/hist.h"
#include "core/status.h"
#include "engine/engine.h"
#include "format/checkpoint.h"
#include "tokenizer/tokenizer.h"

/* ---- prompts of exactly n tokens ---- */
typedef struct dpb_study_prompts {
    dpb_tokenizer *tok;        /* NULL: random ids */
    dpb_chat_template tpl;
    int64_t vocab;
    uint64_t seed;
    char kind[96];             /* "templated (harmony)" or "random ids (model has no tokenizer)" */
    const char *reasoning;     /* harmony reasoning effort of the templated prompts (NULL: the template's default) */
} dpb_study_prompts;

/* Uses the model's tokenizer and chat template when it has one, else random ids. */
dpb_status dpb_study_prompts_init(const dpb_checkpoint *ck, uint64_t seed, dpb_study_prompts *out);
/* Writes exactly n ids (n >= 1) for request number req into ids[n]. */
dpb_status dpb_study_prompt_make(dpb_study_prompts *p, int64_t n, uint64_t req, int32_t *ids);
void dpb_study_prompts_free(dpb_study_prompts *p);

/* ---- one request ---- */
typedef struct dpb_request_metrics {
    int64_t n;                 /* tokens generated */
    double ttft_ms, tpot_ms, e2e_ms, prefill_ms;
    bool tpot_ok;              /* n >= 2 */
    double seed_tpot_tokps;    /* n / E2E, prefill included */
} dpb_request_metrics;
void dpb_request_metrics_compute(const dpb_gen_result *r, dpb_request_metrics *out);
/* The request as a JSONL record (token_times_ms relative to its start). */
cJSON *dpb_request_json(const dpb_gen_result *r, const dpb_request_metrics *m);

/* ---- statistics ---- */
typedef struct dpb_stat {
    bool ok;
    uint64_t count;
    double mean, std, p50, p95, p99, min, max, cv;
} dpb_stat;
/* From a histogram of ns values, scaled (1e-6: ms).  ok false when empty. */
void dpb_stat_from_hist(const dpb_hist *h, double scale, dpb_stat *out);
/* Adds prefix_mean, prefix_std, prefix_p50, ..., prefix_max (or "unavailable: no samples"). */
void dpb_stat_add_json(cJSON *o, const char *prefix, const dpb_stat *s);

/* ---- one latency cell ---- */
typedef struct dpb_latency_cell {
    int64_t prompt_tokens, gen_tokens;
    int batch;                 /* sequences generated together per round */
    int rounds;                /* measured rounds (each records batch requests) */
    int warmup;                /* unrecorded rounds first */
    double cv_threshold;       /* unstable when the CV of TTFT, TPOT or E2E exceeds it (0: 0.10) */
    const dpb_sampling *sampling; /* NULL: greedy (every request its own seed: sampling->seed + request) */
    int n_stop;                /* 0: exactly gen_tokens, EOS ignored; else gen_tokens is a cap and these ids */
    const int64_t *stop_ids;   /* end a request (its output_tokens says how many it made) */
} dpb_latency_cell;

/* Called after each measured request (may be NULL); a non-OK status stops the cell. */
typedef dpb_status (*dpb_request_fn)(void *user, const dpb_gen_result *r, const dpb_request_metrics *m, int round,
                                     int seq);
/* Called after each round (warm-up included), for progress; may be NULL. */
typedef void (*dpb_round_fn)(void *user);

/* "p128_g64_b1" */
void dpb_latency_cell_key(const dpb_latency_cell *c, char *buf, size_t cap);

/* Runs one cell and returns its summary (a JSON object of the fields in
 * dpb_latency_csv_columns).  DPB_E_INTERRUPTED when Ctrl-C arrives (what was
 * recorded through fn stays recorded; *summary is not set). */
dpb_status dpb_latency_run_cell(dpb_engine *e, dpb_study_prompts *p, const dpb_latency_cell *c, dpb_request_fn fn,
                                dpb_round_fn round_fn, void *user, cJSON **summary);

/* The summary CSV's columns (NULL-terminated), in order. */
extern const char *const dpb_latency_csv_columns[];

/* Writes objs (an array of objects) as CSV with the given columns: numbers
 * %.6g, booleans true/false, strings quoted when needed, absent fields
 * "unavailable".  Written atomically. */
dpb_status dpb_csv_write_objects(const char *path, const char *const *columns, const cJSON *objs);
/* Parses "128,512,1024" into out[cap] (each in [min, max]); errors name opt. */
dpb_status dpb_parse_i64_list(const char *opt, const char *s, long long min, long long max, int64_t *out, size_t cap,
                              size_t *n);
/* A dpb_jsonl_fn that appends a copy of each record to the cJSON array ctx. */
dpb_status dpb_jsonl_collect(const cJSON *obj, size_t line, void *ctx);
/* Writes a JSON value to path atomically (pretty, trailing newline). */
dpb_status dpb_json_write_file(const char *path, const cJSON *v);

#endif
