/* The backend interface: a table of operations that every backend fills
 * (cpu here, cuda in src/backend/cuda).  Model forward passes
 * (src/models/) are written only against this table.
 *
 * Conventions
 * - Activations are fp32 arrays in backend memory, row-major, one row per
 *   token ("n" rows).  Weights stay in their checkpoint format (bf16, or
 *   MXFP4 blocks + E8M0 scales) and are never expanded in memory.
 * - A matrix W has logical shape [out, in]: y[t, o] = sum_i W[o, i] * x[t, i].
 *   Stored row-major [out, in], or "transposed" as [in, out] (gpt-oss's bf16
 *   experts keep transformers' [E, H, 2I] layout).
 * - MXFP4 (OCP microscaling): blocks U8 [out, in/32, 16], scales U8 [out, in/32];
 *   element 2j of a block is FP4_E2M1[low nibble of byte j], element 2j+1 the
 *   high nibble; value = FP4 * 2^(scale - 127).
 * - Memory: pointers to activations, KV cache, weights and bias/norm vectors
 *   are backend memory (alloc, or map_host for checkpoint bytes).  Argument
 *   structs, dpb_weight descriptor arrays (moe) and the RoPE table are host
 *   memory, read during the call.  The engine moves token ids, positions and
 *   logits with upload/download unless the backend says host_memory.
 * - Every operation returns a dpb_status.  Every operation has a plain
 *   single-threaded reference implementation (dpb_backend_ref()), which the
 *   tests compare the fast ones against.
 * - Kernels of the fast CPU backend compute each output with the same
 *   summation order whatever the number of rows, so one prefill and
 *   token-by-token decode give bitwise-identical results.
 */
#ifndef DPB_BACKEND_H
#define DPB_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/status.h"

typedef enum dpb_wfmt { DPB_W_F32 = 0, DPB_W_BF16, DPB_W_MXFP4 } dpb_wfmt;

typedef struct dpb_weight {
    dpb_wfmt fmt;
    int64_t out, in;      /* logical shape [out, in] */
    bool transposed;      /* f32/bf16 only: stored [in, out] */
    const void *data;     /* f32 / bf16 elements, or MXFP4 blocks */
    const uint8_t *scales; /* MXFP4 only */
} dpb_weight;

/* KV cache element type.  FP8 is E4M3 with a scale of 1 (as vLLM's fp8 KV cache without calibrated scales):
 * values convert with dpb_f32_to_fp8e4m3 (round to nearest even, saturating at +-448). */
typedef enum dpb_kv_dtype { DPB_KV_BF16 = 0, DPB_KV_F32, DPB_KV_FP8 } dpb_kv_dtype;
static inline size_t dpb_kv_dtype_size(dpb_kv_dtype t) { return t == DPB_KV_F32 ? 4 : t == DPB_KV_FP8 ? 1 : 2; }
static inline const char *dpb_kv_dtype_name(dpb_kv_dtype t) { return t == DPB_KV_F32 ? "f32" : t == DPB_KV_FP8 ? "fp8" : "bf16"; }

/* RoPE, precomputed per model (rotate-half convention of transformers). */
#define DPB_ROPE_MAX_HALF 512
typedef struct dpb_rope_table {
    int64_t head_dim;                 /* rotary dim == head_dim */
    float inv_freq[DPB_ROPE_MAX_HALF]; /* head_dim/2 entries, fp32 as transformers computes them */
    float attention_scaling;          /* cos and sin are multiplied by it (YaRN), else 1 */
} dpb_rope_table;

/* One sequence's attention over a chunk of n query rows at positions
 * pos0 .. pos0+n-1.  Keys before pos0 come from the cache; keys of the chunk
 * itself from k_new/v_new (already in the cache dtype).  Causal; with
 * window W > 0 only the W keys ending at the query's own position count.
 * Sinks: one logit per head joining the softmax, with no value. */
typedef struct dpb_attn_args {
    int64_t n, pos0;
    int64_t heads, kv_heads, head_dim;
    const float *q;        /* [n, heads, head_dim], RoPE applied */
    const void *k_new;     /* [n, kv_heads, head_dim], kv_dtype */
    const void *v_new;
    const void *k_cache;   /* [slots, kv_heads, head_dim]; position p is in slot p % slots */
    const void *v_cache;
    int64_t slots;
    int64_t window;        /* 0: full causal */
    dpb_kv_dtype kv_dtype;
    const uint16_t *sinks; /* [heads] bf16, or NULL */
    float scale;           /* 1/sqrt(head_dim) */
    float *out;            /* [n, heads, head_dim] */
    const int64_t *pos_dev; /* backend memory holding pos0 (positions of the n rows), or NULL; backends that
                             * replay captured graphs read the position here, so one capture serves every step */
    bool round_out;         /* out rounded to bf16 as the last step (the same as round_bf16 on out afterwards) */
} dpb_attn_args;

/* A decode step of n sequences, one new row each: row r belongs to sequence seq[r], sits at position pos[r],
 * and its layer cache is k_tab[seq[r]] / v_tab[seq[r]] ([slots, kv_heads, head_dim], ring as above).  The same
 * as, for each row, attention(n = 1, pos0 = pos[r], its k_new/v_new row) followed by kv_write of that row: the
 * row's keys and values go into slot pos[r] % slots, and its output covers positions
 * max(0, pos[r] - window + 1) .. pos[r].  seq, pos, k_tab and v_tab are backend memory (a captured graph
 * replays the operation with new contents); max_pos bounds every pos[r] (it sizes the work split).
 * Requires slots > max_pos, or window > 0 and slots >= window. */
typedef struct dpb_attn_batch_args {
    int64_t n;
    int64_t heads, kv_heads, head_dim;
    const float *q;           /* [n, heads, head_dim], RoPE applied */
    const void *k_new;        /* [n, kv_heads, head_dim], kv_dtype */
    const void *v_new;
    void *const *k_tab;       /* [sequences] cache pointers of this layer */
    void *const *v_tab;
    const int32_t *seq;       /* [n] */
    const int64_t *pos;       /* [n] */
    int64_t slots, window, max_pos;
    dpb_kv_dtype kv_dtype;
    const uint16_t *sinks;    /* [heads] bf16, or NULL */
    float scale;
    float *out;               /* [n, heads, head_dim] */
    bool round_out;           /* out rounded to bf16 as the last step (as in dpb_attn_args) */
} dpb_attn_batch_args;

/* Fill rule of dpb_backend_ops.fill: byte range [0, bytes) as little-endian
 * 8-byte words w(i), i = word index (a last partial word gives its first bytes):
 *   DPB_FILL_CONST   w(i) = word
 *   DPB_FILL_HASH    w(i) = mix64(key + i * 0x9e3779b97f4a7c15)   (splitmix64's finalizer)
 *   DPB_FILL_NORMAL  r = mix64(key + i * 0x9e3779b97f4a7c15);
 *                    w(i) = table[r & 0xffff] | table[(r >> 16) & 0xffff] << 16 | table[(r >> 32) & 0xffff] << 32
 *                           | table[r >> 48] << 48   (table: 65536 bf16 values, host memory)
 * (the synthetic-weight generator of src/synth, run where the weights live). */
typedef enum dpb_fill_kind { DPB_FILL_CONST = 0, DPB_FILL_HASH, DPB_FILL_NORMAL } dpb_fill_kind;
typedef struct dpb_fill_rule {
    dpb_fill_kind kind;
    uint64_t key, word;
    const uint16_t *table;
} dpb_fill_rule;

/* gpt-oss mixture of experts for n rows, routing already chosen. */
typedef struct dpb_moe_args {
    int64_t n, hidden, inter, top_k;
    const float *x;               /* [n, hidden] (normed) */
    const dpb_weight *gate_up;    /* per expert: out = 2*inter (gate even rows, up odd), in = hidden */
    const uint16_t *gate_up_bias; /* [E, 2*inter] bf16 */
    const dpb_weight *down;       /* per expert: out = hidden, in = inter */
    const uint16_t *down_bias;    /* [E, hidden] bf16 */
    const int32_t *idx;           /* [n, top_k] expert ids */
    const float *wts;             /* [n, top_k] routing weights */
    float limit, alpha;           /* clamped SwiGLU: 7, 1.702 */
    bool round_bf16;              /* round the intermediate activations to bf16 */
    float *out;                   /* [n, hidden], overwritten */
} dpb_moe_args;

typedef struct dpb_backend dpb_backend;

typedef struct dpb_backend_ops {
    const char *name;
    /* Memory (host pointers on the cpu backend). */
    dpb_status (*alloc)(dpb_backend *b, size_t bytes, void **out);
    void (*free)(dpb_backend *b, void *p);
    dpb_status (*upload)(dpb_backend *b, void *dst, const void *src, size_t bytes);
    dpb_status (*download)(dpb_backend *b, void *dst, const void *src, size_t bytes);
    /* Backend memory to backend memory. */
    dpb_status (*copy)(dpb_backend *b, void *dst, const void *src, size_t bytes);
    dpb_status (*sync)(dpb_backend *b);
    /* Makes bytes of host memory (checkpoint weights) usable by the kernels;
     * *out is the pointer to pass to operations (the same one on the cpu). */
    dpb_status (*map_host)(dpb_backend *b, const void *host, size_t bytes, const void **out);
    /* Frees what the backend holds (may be NULL). */
    void (*destroy)(dpb_backend *b);

    /* out[t, :] = table row ids[t] (bf16 -> f32); ids already range-checked. */
    dpb_status (*embed)(dpb_backend *b, const dpb_weight *table, const int32_t *ids, int64_t n, float *out);
    /* y[n, w->out] = x[n, w->in] W^T (+ bias[out], bf16, may be NULL). */
    dpb_status (*linear)(dpb_backend *b, const dpb_weight *w, const uint16_t *bias, const float *x, int64_t n,
                         float *y);
    /* RMSNorm in fp32 over n rows of dim: y = x / sqrt(mean(x^2) + eps) * w (bf16). y may equal x. */
    dpb_status (*rmsnorm)(dpb_backend *b, const float *x, const uint16_t *w, int64_t n, int64_t dim, float eps,
                          float *y);
    /* In place on x [n, heads, head_dim]; pos[t] is row t's position. */
    dpb_status (*rope)(dpb_backend *b, float *x, int64_t n, int64_t heads, const int64_t *pos,
                       const dpb_rope_table *rt);
    dpb_status (*attention)(dpb_backend *b, const dpb_attn_args *a);
    /* Copies n rows [kv_heads*head_dim] of k_new/v_new into the cache slots of positions pos0.. (ring). */
    dpb_status (*kv_write)(dpb_backend *b, void *k_cache, void *v_cache, int64_t slots, int64_t row_elems,
                           dpb_kv_dtype dt, const void *k_new, const void *v_new, int64_t n, int64_t pos0);
    /* dst[n] in dt from f32 src (bf16: round to nearest even). */
    dpb_status (*to_kv)(dpb_backend *b, const float *src, int64_t n, dpb_kv_dtype dt, void *dst);
    /* gpt-oss router on logits [n, E]: top-k (ties: lower index first), then softmax over those k. */
    dpb_status (*router_topk)(dpb_backend *b, const float *logits, int64_t n, int64_t E, int64_t k, int32_t *idx,
                              float *wts);
    dpb_status (*moe)(dpb_backend *b, const dpb_moe_args *a);
    /* Dense SwiGLU: out[n, I] = silu(gate) * up, from gate [n, I] and up [n, I]. out may equal gate. */
    dpb_status (*swiglu)(dpb_backend *b, const float *gate, const float *up, int64_t n, int64_t I, float *out);
    /* y[i] += x[i] */
    dpb_status (*add)(dpb_backend *b, float *y, const float *x, int64_t n);
    /* Rounds x to bf16 precision in place. */
    dpb_status (*round_bf16)(dpb_backend *b, float *x, int64_t n);

    /* ---- optional (NULL when a backend lacks them; the engine falls back) ---- */
    /* kv_write with the first position read from backend memory (pos_dev[0]) when the operation runs. */
    dpb_status (*kv_write_at)(dpb_backend *b, void *k_cache, void *v_cache, int64_t slots, int64_t row_elems,
                              dpb_kv_dtype dt, const void *k_new, const void *v_new, int64_t n, const int64_t *pos_dev);
    /* Graphs: the operations issued between graph_begin and graph_end are recorded, not run, and
     * graph_launch replays them (same pointers and shapes; values in memory may change).  A failed
     * capture leaves the backend usable and returns an error.  *stale on launch: the backend moved a
     * buffer the graph uses since the capture (nothing ran; capture again). */
    dpb_status (*graph_begin)(dpb_backend *b);
    dpb_status (*graph_end)(dpb_backend *b, void **graph);
    dpb_status (*graph_launch)(dpb_backend *b, void *graph, bool *stale);
    void (*graph_free)(dpb_backend *b, void *graph);
    /* ids[r] = argmax of logits row r of [n, V] (lowest index on ties; NaN never wins). */
    dpb_status (*argmax)(dpb_backend *b, const float *logits, int64_t n, int64_t V, int32_t *ids);
    /* Fills bytes of backend memory at dst by rule (see dpb_fill_rule). */
    dpb_status (*fill)(dpb_backend *b, void *dst, uint64_t bytes, const dpb_fill_rule *rule);
    /* Fused residual add + RMSNorm over n rows of dim, the same as
     *   [round_bf16(r)]; add(x, r); [round_bf16(x)]; rmsnorm(x, w, eps, y); [round_bf16(y)]
     * (bracketed steps only when round); w NULL: the add and its rounds only, y untouched.
     * r's contents afterwards are unspecified. */
    dpb_status (*add_rmsnorm)(dpb_backend *b, float *x, float *r, const uint16_t *w, int64_t n, int64_t dim, float eps,
                              bool round, float *y);
    /* Attention inputs after the q/k/v projections, in one operation, the same as
     *   [round q, k]; if q_norm: rmsnorm each head of q by q_norm and of k by k_norm, [round q, k];
     *   rope(q), rope(k) at positions pos[n]; [round q]; to_kv(k) -> knew, to_kv(v) -> vnew
     * (bracketed steps only when round).  q [n, nh, hd], k and v [n, nkv, hd]; k is left unspecified. */
    dpb_status (*qk_prep)(dpb_backend *b, float *q, float *k, const float *v, int64_t n, int64_t nh, int64_t nkv,
                          const uint16_t *q_norm, const uint16_t *k_norm, float eps, const int64_t *pos,
                          const dpb_rope_table *rt, bool round, dpb_kv_dtype dt, void *knew, void *vnew);
    /* Decode attention of n sequences in one operation (dpb_attn_batch_args); DPB_E_UNSUPPORTED for a shape
     * it does not take (the engine then goes row by row). */
    dpb_status (*attention_batch)(dpb_backend *b, const dpb_attn_batch_args *a);
    /* y[i][n, w[i]->out] = x[n, in] W_i^T (+ bias[i]) for i < nw (1 <= nw <= 3, every w[i]->in the same; bias
     * may be NULL or hold NULLs), each y[i] then rounded to bf16 when round: the same as nw linear calls (and
     * round_bf16 on each y[i]), in one launch (q/k/v, gate/up at decode).  DPB_E_UNSUPPORTED, having written
     * nothing, for what the backend does not fuse: call it through dpb_backend_linear_multi, which then makes the
     * nw calls. */
    dpb_status (*linear_multi)(dpb_backend *b, int nw, const dpb_weight *const *w, const uint16_t *const *bias,
                               const float *x, int64_t n, bool round, float *const *y);
    /* The bf16 engine's SwiGLU in one pass, the same as round_bf16(gate), round_bf16(up), swiglu,
     * round_bf16(out) (gate and up are left unspecified; out may equal gate). */
    dpb_status (*swiglu_bf16)(dpb_backend *b, float *gate, float *up, int64_t n, int64_t I, float *out);
    /* gpt-oss router in one operation, the same bit for bit as
     *   linear(w, bias, x, n, logits); [round_bf16(logits)]; router_topk(logits, n, w->out, k, idx, wts)
     * (bracketed step only when round); logits [n, w->out] is scratch, left unspecified.  DPB_E_UNSUPPORTED,
     * having written nothing, for a shape it does not take: call it through dpb_backend_router, which then makes
     * the three calls. */
    dpb_status (*router)(dpb_backend *b, const dpb_weight *w, const uint16_t *bias, const float *x, int64_t n,
                         int64_t k, bool round, float *logits, int32_t *idx, float *wts);
    /* qk_prep, then its n rows of knew / vnew written into the cache: row t into slot pos[t] % slots (pos read when
     * the operation runs), the same as qk_prep followed by kv_write_at(k_cache, v_cache, slots, nkv * head_dim, dt,
     * knew, vnew, n, pos) for one sequence's rows (pos[t] = pos[0] + t, n <= slots).  DPB_E_UNSUPPORTED, having
     * written nothing, for what it does not take (the caller then makes the two calls). */
    dpb_status (*qk_prep_kv)(dpb_backend *b, float *q, float *k, const float *v, int64_t n, int64_t nh, int64_t nkv,
                             const uint16_t *q_norm, const uint16_t *k_norm, float eps, const int64_t *pos,
                             const dpb_rope_table *rt, bool round, dpb_kv_dtype dt, void *knew, void *vnew,
                             void *k_cache, void *v_cache, int64_t slots);
    /* Optional (NULL: the engine calls swiglu_bf16, then linear): the bf16 dense MLP's tail in one operation,
     *   swiglu_bf16(gate, up, n, I, gate); linear(down, b_down, gate, n, out)
     * (out [n, down->out]; gate and up are left unspecified), so that a backend need not store the SwiGLU
     * output as fp32 rows when only the down projection reads it. */
    dpb_status (*swiglu_down)(dpb_backend *b, float *gate, float *up, int64_t n, int64_t I, const dpb_weight *down,
                              const uint16_t *b_down, float *out);
    /* Optional: the one-row decode step's q/k/v projections and qk_prep_kv in one operation, the same bit for bit as
     *   linear_multi(3, w, bias, x, 1, false, {q, k, v});
     *   qk_prep_kv(q, k, v, 1, nh, nkv, q_norm, k_norm, eps, pos, rt, round, dt, knew, vnew, k_cache, v_cache, slots)
     * (w = {q, k, v} matrices; k and v are left unspecified).  DPB_E_UNSUPPORTED, having written nothing, for what
     * it does not take (the caller then makes the two calls). */
    dpb_status (*qkv_prep_kv)(dpb_backend *b, const dpb_weight *const *w, const uint16_t *const *bias, const float *x,
                              float *q, float *k, float *v, int64_t nh, int64_t nkv, const uint16_t *q_norm,
                              const uint16_t *k_norm, float eps, const int64_t *pos, const dpb_rope_table *rt, bool round,
                              dpb_kv_dtype dt, void *knew, void *vnew, void *k_cache, void *v_cache, int64_t slots);
} dpb_backend_ops;

struct dpb_backend {
    const dpb_backend_ops *ops;
    int threads;       /* cpu: OpenMP threads used by kernels */
    const char *simd;  /* cpu: "avx512", "avx2", "scalar" */
    bool host_memory;  /* buffers are host memory: the engine reads and writes them directly */
    void *impl;
};

/* "cpu" (fast, threaded, SIMD) or "ref" (plain reference). threads 0 = all cores.
 * Other backends (cuda) register a constructor here. */
dpb_status dpb_backend_open(const char *name, int threads, dpb_backend **out);
void dpb_backend_close(dpb_backend *b);

/* The plain reference table, and the fast cpu table. */
const dpb_backend_ops *dpb_backend_ref_ops(void);
const dpb_backend_ops *dpb_backend_cpu_ops(void);

/* attention_batch for backends whose memory is host memory: row by row through b's attention and kv_write. */
dpb_status dpb_attention_batch_rows(dpb_backend *b, const dpb_attn_batch_args *a);

/* b's linear_multi where it has one and takes the shapes, else nw linear calls (and round_bf16 on each output
 * when round). */
dpb_status dpb_backend_linear_multi(dpb_backend *b, int nw, const dpb_weight *const *w, const uint16_t *const *bias,
                                    const float *x, int64_t n, bool round, float *const *y);

/* b's router where it has one and takes the shape, else linear, round_bf16 (when round) and router_topk. */
dpb_status dpb_backend_router(dpb_backend *b, const dpb_weight *w, const uint16_t *bias, const float *x, int64_t n,
                              int64_t k, bool round, float *logits, int32_t *idx, float *wts);

/* FP4 E2M1 code -> value. */
extern const float dpb_fp4_e2m1[16];
/* 2^(s-127) for an E8M0 scale byte (s = 255 gives NaN as the format says). */
float dpb_e8m0_to_f32(uint8_t s);

/* RoPE table from a model config (default, linear, llama3 or YaRN). */
struct dpb_rope;
dpb_status dpb_rope_table_init(const struct dpb_rope *r, int64_t head_dim, int64_t max_position,
                               dpb_rope_table *out);

/* One matrix element as f32 (slow; tests and references). */
float dpb_weight_get(const dpb_weight *w, int64_t o, int64_t i);

/* Copy bandwidth of this machine (STREAM-like a[i] = b[i] over bytes each,
 * threads as the cpu backend uses them), best of reps, in GB/s. */
dpb_status dpb_cpu_copy_bandwidth(size_t bytes, int reps, double *gbps);

#endif
