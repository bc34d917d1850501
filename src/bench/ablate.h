/* deploybench ablate: one latency cell per value of one factor, the rest
 * fixed; one CSV per test with the varied factor as columns "factor" and
 * "value" before the latency cell's columns (bench/latency.h).
 *
 * Tests (what our engine can vary today):
 *   sampling  greedy; temperature 0.7 + top-p 0.9; temperature 1.0; top-k 50; min-p 0.05
 *   context   prompt tokens 128, 512, 1024, 2048 (those within the model's positions)
 *   batch     1, 2, 4, 8 sequences per round
 *   experts   active experts per token 1, 2, 4, 8 and the config's (MoE models only)
 *   experts_format  MXFP4 experts (as published) or bf16 experts (synth: MoE models, reopened)
 *   effort    harmony reasoning effort low / medium / high in the prompts' system message, each request ending at
 *             the model's EOS (gen_tokens a cap): output length and latency (harmony-templated prompts only)
 *   kv        KV cache bf16, fp8 (E4M3, scale 1), f32
 * Every row carries kv_bytes_allocated; rows of the greedy tests kv, precision, graphs, experts_format and window
 * also first_request_ids (JSON only) and leading_tokens_equal_to_first_value of tokens_compared: how long the
 * first request's output stays equal to the test's first value's (same prompt).
 *   window    sliding-window layers on (as configured), off (full attention) (models with them only)
 * A test that does not apply to the model gives one row whose value says why. */
#ifndef DPB_BENCH_ABLATE_H
#define DPB_BENCH_ABLATE_H

#include <cjson/cJSON.h>
#include "bench/latency.h"
#include "format/checkpoint.h"

#define DPB_ABLATE_TESTS "sampling,context,batch,experts,experts_format,kv,window,precision,graphs,effort"

typedef struct dpb_ablate_opts {
    const char *model;                 /* the --model argument (experts_format reopens synth: models) */
    const dpb_checkpoint_opts *ck_opts; /* the options it was opened with, or NULL */
    const char *backend;
    int threads;
    int64_t prompt_tokens, gen_tokens;  /* the fixed cell */
    int rounds, warmup;
} dpb_ablate_opts;

/* Called with each row as soon as its variant is measured (the CLI appends it to ablation.jsonl). */
typedef dpb_status (*dpb_ablate_row_fn)(const cJSON *row, void *ctx);

/* Runs one test; appends its rows to rows (an array).  Variants whose (test, value) already has a row in done
 * (an array of earlier rows, may be NULL: --resume) are not run again; their earlier rows are copied into rows.
 * on_row (may be NULL) sees each new row.  DPB_E_ARG for an unknown test name. */
dpb_status dpb_ablate_run(const dpb_checkpoint *ck, dpb_study_prompts *p, const dpb_ablate_opts *o, const char *test,
                          const cJSON *done, dpb_ablate_row_fn on_row, void *ctx, cJSON *rows);

/* "test", "factor", "value", then the latency columns; NULL-terminated. */
const char *const *dpb_ablate_columns(void);

#endif
