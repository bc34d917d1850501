/* The inference engine: a model on a backend, a KV cache per sequence slot,
 * forward steps over several independent sequences, sampling, and
 * generation with per-token CLOCK_MONOTONIC timestamps.
 *
 * KV cache: per slot and layer, K and V of [slots, kv_heads, head_dim] in
 * bf16 (default), f32 or FP8 E4M3 (scale 1).  A full-attention layer keeps max_ctx slots; a
 * sliding-window layer keeps a ring of min(W, max_ctx) slots.  The bytes
 * allocated are exactly
 *     max_seqs * sum over layers of slots * 2 * kv_heads * head_dim * elem_size
 * (dpb_engine_kv_bytes, dpb_kv_bytes_analytic). */
#ifndef DPB_ENGINE_H
#define DPB_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include "backend/backend.h"
#include "core/status.h"
#include "engine/token_sampler.h"
#include "format/checkpoint.h"

typedef enum dpb_engine_dtype { DPB_ENGINE_BF16 = 0, DPB_ENGINE_F32 } dpb_engine_dtype;

/* KV cache element type; auto: bf16 in bf16 mode, f32 in f32 mode. */
typedef enum dpb_engine_kv { DPB_ENGINE_KV_AUTO = 0, DPB_ENGINE_KV_BF16, DPB_ENGINE_KV_F32, DPB_ENGINE_KV_FP8 } dpb_engine_kv;
/* "auto", "bf16", "f32" or "fp8" (also "fp8_e4m3", vLLM's spelling). */
dpb_status dpb_engine_kv_parse(const char *s, dpb_engine_kv *out);
/* The cache's element type for a choice in an engine mode. */
dpb_kv_dtype dpb_engine_kv_resolve(dpb_engine_kv kv, dpb_engine_dtype dtype);

typedef struct dpb_engine_opts {
    const char *backend;      /* "cpu" (default) or "ref" */
    int threads;              /* 0: all cores */
    dpb_engine_dtype dtype;   /* bf16: bf16 KV + bf16-rounded activations; f32: reference mode */
    dpb_engine_kv kv;         /* KV cache element type (ablation: bf16 vs fp8; f32 in bf16 mode) */
    int64_t max_ctx;          /* tokens per sequence; 0: min(max_position_embeddings, 4096) */
    int max_seqs;             /* sequence slots (batch); 0: 1 */
    int64_t prefill_chunk;    /* rows per forward pass; 0: 256 */
    int64_t experts_per_tok;  /* MoE ablation: active experts per token; 0: the config's */
    int no_sliding;           /* ablation: sliding-window layers attend to the full context */
    int no_graphs;            /* device backends: run decode steps op by op instead of replaying a captured
                               * graph (ablation; also DPB_NO_GRAPHS=1 in the environment) */
} dpb_engine_opts;

typedef struct dpb_engine dpb_engine;

/* ck must outlive the engine. */
dpb_status dpb_engine_create(const dpb_checkpoint *ck, const dpb_engine_opts *opts, dpb_engine **out);
void dpb_engine_destroy(dpb_engine *e);

/* Exact bytes of KV cache allocated. */
uint64_t dpb_engine_kv_bytes(const dpb_engine *e);
/* Bytes of the engine's persistent activation workspace (prefill_chunk rows);
 * operations add short-lived buffers of at most a pass's activations. */
uint64_t dpb_engine_workspace_bytes(const dpb_engine *e);
/* The same formula from a config, for planning (inspect, memory). */
dpb_status dpb_kv_bytes_analytic(const dpb_model_config *cfg, int64_t batch, int64_t max_ctx, size_t elem_size,
                                 uint64_t *out);
int64_t dpb_engine_max_ctx(const dpb_engine *e);
int dpb_engine_max_seqs(const dpb_engine *e);
int64_t dpb_engine_vocab(const dpb_engine *e);
const dpb_model_config *dpb_engine_config(const dpb_engine *e);
dpb_backend *dpb_engine_backend(dpb_engine *e);

/* Forgets a slot's tokens. */
dpb_status dpb_engine_seq_reset(dpb_engine *e, int seq);
int64_t dpb_engine_seq_len(const dpb_engine *e, int seq);
/* Makes slot dst hold what slot src holds: its KV cache (every layer, whole
 * rings of sliding layers) and its length, as if src's tokens had been run
 * in dst.  dst == src does nothing. */
dpb_status dpb_engine_seq_copy(dpb_engine *e, int dst, int src);

/* One forward step: segments of new tokens for distinct sequence slots,
 * each appended at its slot's current length. */
typedef struct dpb_engine_seg {
    int seq;
    const int32_t *tokens;
    int64_t n;
} dpb_engine_seg;

typedef enum dpb_logits_mode {
    DPB_LOGITS_LAST = 0, /* logits [nseg, V]: the last token of each segment */
    DPB_LOGITS_ALL,      /* logits [sum n, V]: every token */
    DPB_LOGITS_NONE
} dpb_logits_mode;

dpb_status dpb_engine_forward(dpb_engine *e, const dpb_engine_seg *segs, int nseg, dpb_logits_mode mode,
                              float *logits);

/* As dpb_engine_forward with DPB_LOGITS_LAST, but returns each segment's
 * greedy next token (argmax of its last logits, lowest id on ties) in
 * ids[nseg]; a device backend computes it on the device and transfers only
 * the ids. */
dpb_status dpb_engine_forward_argmax(dpb_engine *e, const dpb_engine_seg *segs, int nseg, int32_t *ids);

/* Decode steps replayed from captured graphs / captured, since creation
 * (0 on backends without graphs or with no_graphs). */
void dpb_engine_graph_stats(const dpb_engine *e, uint64_t *replays, uint64_t *captures);

/* Generation. */
typedef struct dpb_gen_request {
    const int32_t *prompt;
    int64_t n_prompt;
    int64_t max_new;          /* tokens to generate at most */
    dpb_sampling sampling;
    bool ignore_eos;          /* generate exactly max_new */
    int n_stop;               /* stop ids (eos from generation_config) */
    const int64_t *stop_ids;
} dpb_gen_request;

typedef enum dpb_stop_reason { DPB_STOP_LENGTH = 0, DPB_STOP_EOS, DPB_STOP_CONTEXT } dpb_stop_reason;

typedef struct dpb_gen_result {
    int32_t *ids;          /* generated ids (owned), n of them */
    uint64_t *t_ns;        /* CLOCK_MONOTONIC when each token was sampled */
    int64_t n;
    uint64_t t_start_ns;   /* before the prompt's prefill */
    uint64_t t_prefill_done_ns; /* after the prefill's forward pass */
    dpb_stop_reason stop;
} dpb_gen_result;

/* Called as each token is sampled (may be NULL); returning false stops that sequence. */
typedef bool (*dpb_token_cb)(void *user, int req, int32_t id, uint64_t t_ns);

/* Generates for n requests together (slots 0..n-1, reset first; n <= max_seqs):
 * prompts are prefilled in one step set, then decode steps run all live
 * sequences at once. */
dpb_status dpb_engine_generate(dpb_engine *e, const dpb_gen_request *reqs, int n, dpb_gen_result *results,
                               dpb_token_cb cb, void *user);
void dpb_gen_result_free(dpb_gen_result *r);

#endif
