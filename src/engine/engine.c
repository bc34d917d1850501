/* The engine: KV cache, the generic decoder forward pass over the backend
 * interface, and generation. */
#include "engine/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/checked.h"
#include "core/timeutil.h"
#include "backend/prof.h"
#include "models/model.h"
#include "synth/synth.h"

#define LOGIT_ROWS 16 /* staging rows for logits of device backends (at least) */
#define GRAPH_CACHE 8 /* captured decode steps kept, by sequence set */

/* A captured decode step: one token for each of seqs[0..n), logits mode. */
typedef struct egraph {
    int n, mode;       /* mode: 0 logits, 1 argmax */
    int32_t *seqs;
    void *g;           /* NULL until captured */
    int runs;          /* eager runs seen (capture on the second) */
    bool failed;       /* capture failed: stay eager for this key */
    uint64_t used;
} egraph;

struct dpb_engine {
    const dpb_checkpoint *ck;
    dpb_backend *be;
    dpb_model m;
    dpb_engine_dtype dtype;
    dpb_kv_dtype kvdt;
    int64_t max_ctx, R;
    int max_seqs;
    int64_t *slots;         /* per layer */
    void **kc, **vc;        /* [seq * L + l] */
    int64_t *seq_len;
    uint64_t kv_bytes;
    uint64_t alloc_bytes;     /* everything allocated through the backend (KV + workspace) */
    /* scratch, R rows */
    float *x, *xn, *q, *k, *v, *att, *tmp, *hid;
    void *knew, *vnew;
    int64_t *pos, *pos_dev;   /* host; backend copy (the same when host_memory) */
    int32_t *ids, *ids_dev;
    int32_t *seqs, *seq_dev;  /* sequence of each row: host; backend copy (decode steps, attention_batch) */
    void **kvtab;             /* attention_batch: backend memory, [L][2][max_seqs] cache pointers (K, then V) */
    bool attn_batch;          /* decode steps of several sequences go through attention_batch */
    int attn_batch_min;       /* ... from this many sequences (DPB_ATTN_BATCH_MIN, default 2: one sequence is faster on
                               * the per-sequence kernels at short contexts, docs/PERF.md) */
    float *logits_dev;        /* non-host backends: [lrows, V] staging for logits */
    int64_t lrows;
    int32_t *argmax_dev;      /* [lrows] */
    dpb_checkpoint *placed;   /* synthetic weights generated where the backend keeps memory */
    void **placed_mem;
    size_t n_placed;
    bool graphs;
    egraph gcache[GRAPH_CACHE];
    uint64_t gclock, g_replays, g_captures;
    dpb_fwd f;
};

static int64_t layer_slots(const dpb_model_config *c, int l, int64_t max_ctx)
{
    if (c->sliding_window > 0 && c->layer_sliding[l]) return c->sliding_window < max_ctx ? c->sliding_window : max_ctx;
    return max_ctx;
}

dpb_status dpb_kv_bytes_analytic(const dpb_model_config *c, int64_t batch, int64_t max_ctx, size_t elem, uint64_t *out)
{
    uint64_t tot = 0;
    for (int l = 0; l < (int)c->num_layers && l < DPB_MAX_LAYERS; l++) {
        uint64_t b;
        if (!dpb_mul_u64((uint64_t)layer_slots(c, l, max_ctx), 2 * (uint64_t)c->num_kv_heads, &b) ||
            !dpb_mul_u64(b, (uint64_t)c->head_dim * elem, &b) || !dpb_add_u64(tot, b, &tot))
            return dpb_error_set(DPB_E_RANGE, "KV cache size overflows");
    }
    if (!dpb_mul_u64(tot, (uint64_t)batch, &tot)) return dpb_error_set(DPB_E_RANGE, "KV cache size overflows");
    *out = tot;
    return DPB_OK;
}

uint64_t dpb_engine_kv_bytes(const dpb_engine *e) { return e->kv_bytes; }
uint64_t dpb_engine_workspace_bytes(const dpb_engine *e) { return e->alloc_bytes - e->kv_bytes; }
int64_t dpb_engine_max_ctx(const dpb_engine *e) { return e->max_ctx; }
int dpb_engine_max_seqs(const dpb_engine *e) { return e->max_seqs; }
int64_t dpb_engine_vocab(const dpb_engine *e) { return e->m.cfg.vocab_size; }
const dpb_model_config *dpb_engine_config(const dpb_engine *e) { return &e->m.cfg; }
dpb_backend *dpb_engine_backend(dpb_engine *e) { return e->be; }

void dpb_engine_destroy(dpb_engine *e)
{
    if (!e) return;
    dpb_backend *be = e->be;
    if (be) {
        int64_t L = e->m.cfg.num_layers;
        if (e->kc)
            for (int64_t i = 0; i < (int64_t)e->max_seqs * L; i++) {
                if (e->kc[i]) be->ops->free(be, e->kc[i]);
                if (e->vc[i]) be->ops->free(be, e->vc[i]);
            }
        void *bufs[] = {e->x, e->xn, e->q, e->k, e->v, e->att, e->tmp, e->hid, e->knew, e->vnew, e->f.tmp_a,
                        e->f.tmp_b, e->f.router_logits, e->f.ridx, e->f.rwts,
                        be->host_memory ? NULL : e->pos_dev, be->host_memory ? NULL : e->ids_dev, e->logits_dev,
                        e->argmax_dev, be->host_memory ? NULL : e->seq_dev, e->kvtab};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            if (bufs[i]) be->ops->free(be, bufs[i]);
        for (int i = 0; i < GRAPH_CACHE; i++) {
            if (e->gcache[i].g) be->ops->graph_free(be, e->gcache[i].g);
            free(e->gcache[i].seqs);
        }
    }
    free(e->kc);
    free(e->vc);
    free(e->slots);
    free(e->seq_len);
    free(e->pos);
    free(e->ids);
    free(e->seqs);
    dpb_model_unbind(&e->m);
    for (size_t i = 0; be && i < e->n_placed; i++) be->ops->free(be, e->placed_mem[i]);
    free(e->placed_mem);
    dpb_checkpoint_close(e->placed);
    dpb_backend_close(be);
    free(e);
}

/* Synthetic weights of a checkpoint opened without them: one backend
 * allocation per tensor, filled where it lives. */
static dpb_status place_tensor(void *ctx, const dpb_fill_rule *r, uint64_t bytes, const void **out)
{
    dpb_engine *e = ctx;
    dpb_backend *be = e->be;
    void *p = NULL, **grown;
    if (bytes > (uint64_t)SIZE_MAX) return dpb_error_set(DPB_E_RANGE, "tensor of %llu bytes", (unsigned long long)bytes);
    if (!(grown = realloc(e->placed_mem, (e->n_placed + 1) * sizeof *grown))) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    e->placed_mem = grown;
    dpb_status st = be->ops->alloc(be, (size_t)bytes, &p);
    if (st) return st;
    e->placed_mem[e->n_placed++] = p;
    if (be->ops->fill) st = be->ops->fill(be, p, bytes, r);
    else if (be->host_memory) {
        const uint64_t piece = 4u << 20;
        int64_t np = (int64_t)((bytes + piece - 1) / piece);
        #pragma omp parallel for schedule(dynamic, 1)
        for (int64_t j = 0; j < np; j++) {
            uint64_t o = (uint64_t)j * piece, n = bytes - o < piece ? bytes - o : piece;
            dpb_synth_fill_rule(r, o, n, (uint8_t *)p + o);
        }
    } else st = dpb_error_set(DPB_E_UNSUPPORTED, "backend '%s' cannot generate synthetic weights", be->ops->name);
    if (!st) *out = p;
    return st;
}

static dpb_status balloc(dpb_engine *e, int64_t elems, size_t es, void *out)
{
    size_t bytes;
    if (elems < 1) elems = 1;
    if (!dpb_mul_size((size_t)elems, es, &bytes)) return dpb_error_set(DPB_E_RANGE, "engine: buffer size overflows");
    dpb_status st = e->be->ops->alloc(e->be, bytes, (void **)out);
    if (!st) e->alloc_bytes += bytes;
    return st;
}

/* Weights as the backend's kernels see them (the same pointers on the cpu). */
static dpb_status map_w(dpb_engine *e, dpb_weight *w)
{
    if (!w->data) return DPB_OK;
    size_t n = (size_t)(w->out * w->in), bytes = w->fmt == DPB_W_F32 ? n * 4 : w->fmt == DPB_W_BF16 ? n * 2 : n / 2;
    dpb_status st = e->be->ops->map_host(e->be, w->data, bytes, &w->data);
    if (!st && w->fmt == DPB_W_MXFP4) st = e->be->ops->map_host(e->be, w->scales, n / 32, (const void **)&w->scales);
    return st;
}
static dpb_status map_v(dpb_engine *e, const uint16_t **v, int64_t len)
{
    if (!*v) return DPB_OK;
    const void *p;
    dpb_status st = e->be->ops->map_host(e->be, *v, (size_t)len * 2, &p);
    if (!st) *v = p;
    return st;
}
static dpb_status map_model(dpb_engine *e)
{
    dpb_model *m = &e->m;
    const dpb_model_config *c = &m->cfg;
    const int64_t H = c->hidden_size, I = c->intermediate_size, hd = c->head_dim, E = c->num_experts;
    const int64_t qd = c->num_heads * hd, kvd = c->num_kv_heads * hd;
    bool tied = m->lm_head.data == m->embed.data;
    dpb_status st;
    if ((st = map_w(e, &m->embed))) return st;
    if (tied) m->lm_head = m->embed;
    else if ((st = map_w(e, &m->lm_head))) return st;
    if ((st = map_v(e, &m->final_norm, H))) return st;
    for (int64_t l = 0; l < c->num_layers; l++) {
        dpb_layer_weights *lw = &m->layers[l];
        dpb_weight *ws[] = {&lw->q, &lw->k, &lw->v, &lw->o, &lw->router, &lw->gate, &lw->up, &lw->down_dense};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            if ((st = map_w(e, ws[i]))) return st;
        if ((st = map_v(e, &lw->attn_norm, H)) || (st = map_v(e, &lw->mlp_norm, H)) || (st = map_v(e, &lw->bq, qd)) ||
            (st = map_v(e, &lw->bk, kvd)) || (st = map_v(e, &lw->bv, kvd)) || (st = map_v(e, &lw->bo, H)) ||
            (st = map_v(e, &lw->q_norm, hd)) || (st = map_v(e, &lw->k_norm, hd)) || (st = map_v(e, &lw->sinks, c->num_heads)) ||
            (st = map_v(e, &lw->router_bias, E)) || (st = map_v(e, &lw->gate_up_bias, E * 2 * I)) ||
            (st = map_v(e, &lw->down_bias, E * H)) || (st = map_v(e, &lw->b_gate, I)) || (st = map_v(e, &lw->b_up, I)) ||
            (st = map_v(e, &lw->b_down, H)))
            return st;
        for (int64_t x = 0; lw->gate_up && x < E; x++)
            if ((st = map_w(e, &lw->gate_up[x])) || (st = map_w(e, &lw->down[x]))) return st;
    }
    return DPB_OK;
}

dpb_status dpb_engine_kv_parse(const char *s, dpb_engine_kv *out)
{
    static const struct { const char *name; dpb_engine_kv kv; } t[] = {
        {"auto", DPB_ENGINE_KV_AUTO}, {"bf16", DPB_ENGINE_KV_BF16}, {"f32", DPB_ENGINE_KV_F32},
        {"fp8", DPB_ENGINE_KV_FP8},   {"fp8_e4m3", DPB_ENGINE_KV_FP8}};
    for (size_t i = 0; s && i < sizeof t / sizeof t[0]; i++)
        if (strcmp(s, t[i].name) == 0) {
            *out = t[i].kv;
            return DPB_OK;
        }
    return dpb_error_set(DPB_E_ARG, "KV dtype '%s': expected auto, bf16, f32 or fp8", s ? s : "(null)");
}

dpb_kv_dtype dpb_engine_kv_resolve(dpb_engine_kv kv, dpb_engine_dtype dtype)
{
    switch (kv) {
    case DPB_ENGINE_KV_BF16: return DPB_KV_BF16;
    case DPB_ENGINE_KV_F32: return DPB_KV_F32;
    case DPB_ENGINE_KV_FP8: return DPB_KV_FP8;
    default: return dtype == DPB_ENGINE_F32 ? DPB_KV_F32 : DPB_KV_BF16;
    }
}

dpb_status dpb_engine_create(const dpb_checkpoint *ck, const dpb_engine_opts *opts, dpb_engine **out)
{
    *out = NULL;
    dpb_engine_opts o = {0};
    if (opts) o = *opts;
    if (o.threads < 0 || o.threads > 4096) return dpb_error_set(DPB_E_ARG, "threads: %d is outside [0, 4096]", o.threads);
    if (o.max_seqs < 0 || o.max_seqs > 65536) return dpb_error_set(DPB_E_ARG, "max_seqs: %d is outside [0, 65536]", o.max_seqs);
    if (o.max_ctx < 0) return dpb_error_set(DPB_E_ARG, "max_ctx: %lld is negative", (long long)o.max_ctx);
    if (o.prefill_chunk < 0 || o.prefill_chunk > 65536)
        return dpb_error_set(DPB_E_ARG, "prefill_chunk: %lld is outside [0, 65536]", (long long)o.prefill_chunk);
    dpb_engine *e = calloc(1, sizeof *e);
    if (!e) return dpb_error_set(DPB_E_NOMEM, "engine: out of memory");
    e->ck = ck;
    dpb_status st = dpb_backend_open(o.backend, o.threads, &e->be);
    if (st) goto fail;
    const char *prof = getenv("DPB_OP_PROFILE");
    if (prof && *prof) {
        dpb_backend *w;
        if ((st = dpb_backend_prof_wrap(e->be, prof, &w))) goto fail;
        e->be = w;
    }
    if (dpb_checkpoint_is_synthetic(ck) && !dpb_checkpoint_has_weights(ck)) {
        if ((st = dpb_synth_placed(ck, place_tensor, e, &e->placed))) goto fail;
        ck = e->placed;
    }
    if ((st = dpb_model_bind(ck, &e->m))) goto fail;
    if (o.experts_per_tok) {
        if (e->m.cfg.num_experts <= 0 || o.experts_per_tok < 1 || o.experts_per_tok > e->m.cfg.num_experts ||
            o.experts_per_tok > 64) {
            st = dpb_error_set(DPB_E_ARG, "experts per token: %lld is outside [1, %lld] for this model",
                               (long long)o.experts_per_tok, (long long)e->m.cfg.num_experts);
            goto fail;
        }
        e->m.cfg.experts_per_tok = o.experts_per_tok;
    }
    if (o.no_sliding) {
        e->m.cfg.sliding_window = 0;
        for (int64_t l = 0; l < e->m.cfg.num_layers; l++) e->m.layers[l].sliding = false;
    }
    if ((st = map_model(e))) goto fail;
    const dpb_model_config *c = &e->m.cfg;
    if (!dpb_checkpoint_tensor_count(ck) || !e->m.embed.data)
        { st = dpb_error_set(DPB_E_ARG, "engine: the model has no weight data"); goto fail; }
    e->dtype = o.dtype;
    if ((unsigned)o.kv > DPB_ENGINE_KV_FP8) { st = dpb_error_set(DPB_E_ARG, "engine: unknown KV dtype %d", (int)o.kv); goto fail; }
    e->kvdt = dpb_engine_kv_resolve(o.kv, o.dtype);
    int64_t maxpos = c->max_position_embeddings > 0 ? c->max_position_embeddings : 4096;
    e->max_ctx = o.max_ctx ? o.max_ctx : (maxpos < 4096 ? maxpos : 4096);
    if (e->max_ctx > maxpos) {
        st = dpb_error_set(DPB_E_ARG, "context of %lld tokens exceeds the model's max_position_embeddings %lld",
                           (long long)e->max_ctx, (long long)maxpos);
        goto fail;
    }
    e->max_seqs = o.max_seqs ? o.max_seqs : 1;
    /* Prefill chunk: 256 rows on host backends (cache-sized); 2048 on
     * device backends, where per-chunk costs (expert dequantization for the
     * grouped MoE GEMMs) dominate: TTFT at a 2048-token gpt-oss-20b prompt on
     * the H200 is 121 ms in one chunk vs 414 ms in 256-row chunks, at 13.44 GiB
     * peak (docs/PERF.md). Never more rows than the context holds. */
    e->R = o.prefill_chunk ? o.prefill_chunk : (e->be->host_memory ? 256 : 2048);
    if (!o.prefill_chunk && e->R > e->max_ctx * e->max_seqs) e->R = e->max_ctx * e->max_seqs;
    if (e->R < e->max_seqs) e->R = e->max_seqs;
    const int64_t L = c->num_layers, H = c->hidden_size, I = c->intermediate_size;
    const int64_t qd = c->num_heads * c->head_dim, kvd = c->num_kv_heads * c->head_dim;
    size_t es = dpb_kv_dtype_size(e->kvdt);
    if ((st = dpb_kv_bytes_analytic(c, e->max_seqs, e->max_ctx, es, &e->kv_bytes))) goto fail;
    e->slots = calloc((size_t)L, sizeof *e->slots);
    e->kc = calloc((size_t)(L * e->max_seqs), sizeof *e->kc);
    e->vc = calloc((size_t)(L * e->max_seqs), sizeof *e->vc);
    e->seq_len = calloc((size_t)e->max_seqs, sizeof *e->seq_len);
    e->pos = calloc((size_t)e->R, sizeof *e->pos);
    e->ids = calloc((size_t)e->R, sizeof *e->ids);
    e->seqs = calloc((size_t)e->R, sizeof *e->seqs);
    if (!e->slots || !e->kc || !e->vc || !e->seq_len || !e->pos || !e->ids || !e->seqs) {
        st = dpb_error_set(DPB_E_NOMEM, "engine: out of memory");
        goto fail;
    }
    uint64_t check = 0;
    for (int64_t l = 0; l < L; l++) {
        e->slots[l] = layer_slots(c, (int)l, e->max_ctx);
        for (int s = 0; s < e->max_seqs; s++) {
            if ((st = balloc(e, e->slots[l] * kvd, es, &e->kc[s * L + l]))) goto fail;
            if ((st = balloc(e, e->slots[l] * kvd, es, &e->vc[s * L + l]))) goto fail;
            check += 2 * (uint64_t)(e->slots[l] * kvd) * es;
        }
    }
    if (check != e->kv_bytes) { st = dpb_error_set(DPB_E_INTERNAL, "engine: KV bytes %llu != formula %llu",
                                                   (unsigned long long)check, (unsigned long long)e->kv_bytes); goto fail; }
    int64_t R = e->R;
    int64_t wide = 2 * I > qd ? 2 * I : qd;
    if (H > wide) wide = H;
    if ((st = balloc(e, R * H, 4, &e->x)) || (st = balloc(e, R * H, 4, &e->xn)) || (st = balloc(e, R * qd, 4, &e->q)) ||
        (st = balloc(e, R * kvd, 4, &e->k)) || (st = balloc(e, R * kvd, 4, &e->v)) ||
        (st = balloc(e, R * qd, 4, &e->att)) || (st = balloc(e, R * H, 4, &e->tmp)) ||
        (st = balloc(e, R * H, 4, &e->hid)) || (st = balloc(e, R * kvd, es, &e->knew)) ||
        (st = balloc(e, R * kvd, es, &e->vnew)) || (st = balloc(e, R * wide, 4, &e->f.tmp_a)) ||
        (st = balloc(e, R * wide, 4, &e->f.tmp_b)))
        goto fail;
    if (c->num_experts > 0 &&
        ((st = balloc(e, R * c->num_experts, 4, &e->f.router_logits)) ||
         (st = balloc(e, R * c->experts_per_tok, 4, &e->f.ridx)) || (st = balloc(e, R * c->experts_per_tok, 4, &e->f.rwts))))
        goto fail;
    if (e->be->host_memory) {
        e->ids_dev = e->ids;
        e->pos_dev = e->pos;
        e->seq_dev = e->seqs;
    } else {
        /* logits staging: a decode step of every sequence at once, up to 256 rows */
        e->lrows = e->max_seqs > LOGIT_ROWS ? (e->max_seqs < 256 ? e->max_seqs : 256) : LOGIT_ROWS;
        if (e->lrows > R) e->lrows = R;
        if ((st = balloc(e, R, sizeof(int32_t), &e->ids_dev)) || (st = balloc(e, R, sizeof(int64_t), &e->pos_dev)) ||
            (st = balloc(e, e->lrows * c->vocab_size, sizeof(float), &e->logits_dev)) ||
            (e->be->ops->argmax && (st = balloc(e, e->lrows, sizeof(int32_t), &e->argmax_dev))) ||
            (st = balloc(e, R, sizeof(int32_t), &e->seq_dev)))
            goto fail;
        const char *ng = getenv("DPB_NO_GRAPHS");
        e->graphs = !o.no_graphs && !(ng && *ng && strcmp(ng, "0") != 0) && e->be->ops->graph_begin &&
                    e->be->ops->graph_end && e->be->ops->graph_launch && e->be->ops->graph_free &&
                    e->be->ops->kv_write_at;
    }
    /* Decode steps of several sequences: one attention_batch per layer instead of an attention and a kv_write
     * per sequence (DPB_NO_ATTN_BATCH=1: row by row, for before/after timings). */
    const char *nab = getenv("DPB_NO_ATTN_BATCH");
    if (e->be->ops->attention_batch && !(nab && *nab && strcmp(nab, "0") != 0)) {
        size_t nt = (size_t)(2 * L * e->max_seqs);
        void **tab = malloc(nt * sizeof *tab);
        if (!tab) {
            st = dpb_error_set(DPB_E_NOMEM, "engine: out of memory");
            goto fail;
        }
        for (int64_t l = 0; l < L; l++)
            for (int s = 0; s < e->max_seqs; s++) {
                tab[(2 * l) * e->max_seqs + s] = e->kc[s * L + l];
                tab[(2 * l + 1) * e->max_seqs + s] = e->vc[s * L + l];
            }
        st = balloc(e, (int64_t)nt, sizeof *tab, &e->kvtab);
        if (!st) st = e->be->ops->upload(e->be, e->kvtab, tab, nt * sizeof *tab);
        free(tab);
        if (st) goto fail;
        e->attn_batch = true;
        const char *mn = getenv("DPB_ATTN_BATCH_MIN");
        e->attn_batch_min = mn && atoi(mn) >= 1 ? atoi(mn) : 2;
    }
    e->f.be = e->be;
    e->f.m = &e->m;
    e->f.round_bf16 = e->dtype == DPB_ENGINE_BF16;
    *out = e;
    return DPB_OK;
fail:
    dpb_engine_destroy(e);
    return st;
}

dpb_status dpb_engine_seq_reset(dpb_engine *e, int seq)
{
    if (seq < 0 || seq >= e->max_seqs)
        return dpb_error_set(DPB_E_ARG, "sequence slot %d is outside [0, %d)", seq, e->max_seqs);
    e->seq_len[seq] = 0;
    return DPB_OK;
}

dpb_status dpb_engine_seq_copy(dpb_engine *e, int dst, int src)
{
    if (dst < 0 || dst >= e->max_seqs || src < 0 || src >= e->max_seqs)
        return dpb_error_set(DPB_E_ARG, "sequence copy: slot %d or %d is outside [0, %d)", dst, src, e->max_seqs);
    if (dst == src) return DPB_OK;
    const int64_t L = e->m.cfg.num_layers, kvd = e->m.cfg.num_kv_heads * e->m.cfg.head_dim;
    const size_t es = dpb_kv_dtype_size(e->kvdt);
    /* only the slots src has written (a ring wraps: then all of it) */
    for (int64_t l = 0; l < L; l++) {
        int64_t used = e->seq_len[src] < e->slots[l] ? e->seq_len[src] : e->slots[l];
        size_t bytes = (size_t)(used * kvd) * es;
        if (!bytes) continue;
        dpb_status st = e->be->ops->copy(e->be, e->kc[dst * L + l], e->kc[src * L + l], bytes);
        if (!st) st = e->be->ops->copy(e->be, e->vc[dst * L + l], e->vc[src * L + l], bytes);
        if (st) return dpb_error_prefix(st, "sequence copy %d -> %d", src, dst);
    }
    e->seq_len[dst] = e->seq_len[src];
    return DPB_OK;
}

int64_t dpb_engine_seq_len(const dpb_engine *e, int seq)
{
    return seq >= 0 && seq < e->max_seqs ? e->seq_len[seq] : -1;
}

typedef struct part {
    int seg, seq;
    int64_t off, n, row, pos0; /* segment offset, rows, first row in the chunk, first position */
} part;

#define CK(x) do { if ((st = (x))) return st; } while (0)

/* Token ids and positions of a pass to the backend (device backends). */
/* A chunk of np single-row parts (a decode step) whose attention runs as one attention_batch. */
static bool attn_batched(const dpb_engine *e, int np, int64_t nrows)
{
    return e->attn_batch && np >= e->attn_batch_min && nrows == np;
}

/* ids and positions of the chunk's rows, and their sequences when attention_batch reads them. */
static dpb_status upload_rows(dpb_engine *e, int np, int64_t nrows)
{
    dpb_backend *be = e->be;
    dpb_status st;
    if (be->host_memory) return DPB_OK;
    CK(be->ops->upload(be, e->ids_dev, e->ids, (size_t)nrows * sizeof *e->ids));
    CK(be->ops->upload(be, e->pos_dev, e->pos, (size_t)nrows * sizeof *e->pos));
    if (attn_batched(e, np, nrows)) CK(be->ops->upload(be, e->seq_dev, e->seqs, (size_t)nrows * sizeof *e->seqs));
    return DPB_OK;
}

/* x += r, then y = rmsnorm(x, w), with the bf16 rounds of bf16 mode: one
 * fused operation where the backend has it. */
static dpb_status add_norm(dpb_engine *e, float *x, float *r, const uint16_t *w, int64_t n, float *y)
{
    dpb_backend *be = e->be;
    const dpb_backend_ops *ops = be->ops;
    const int64_t H = e->m.cfg.hidden_size;
    const bool rb = e->dtype == DPB_ENGINE_BF16;
    const float eps = (float)e->m.cfg.rms_norm_eps;
    dpb_status st;
    if (ops->add_rmsnorm) return ops->add_rmsnorm(be, x, r, w, n, H, eps, rb, y);
    if (rb) CK(ops->round_bf16(be, r, n * H));
    CK(ops->add(be, x, r, n * H));
    if (rb) CK(ops->round_bf16(be, x, n * H));
    if (w) {
        CK(ops->rmsnorm(be, x, w, n, H, eps, y));
        if (rb) CK(ops->round_bf16(be, y, n * H));
    }
    return DPB_OK;
}

/* q, k, v after their projections -> q ready for attention, knew/vnew in the cache dtype. */
static dpb_status qk_prep(dpb_engine *e, const dpb_layer_weights *lw, int64_t nrows)
{
    dpb_backend *be = e->be;
    const dpb_backend_ops *ops = be->ops;
    const dpb_model *m = &e->m;
    const dpb_model_config *c = &m->cfg;
    const int64_t hd = c->head_dim, nh = c->num_heads, nkv = c->num_kv_heads, qd = nh * hd, kvd = nkv * hd;
    const bool rb = e->dtype == DPB_ENGINE_BF16;
    const float eps = (float)c->rms_norm_eps;
    dpb_status st;
    if (ops->qk_prep)
        return ops->qk_prep(be, e->q, e->k, e->v, nrows, nh, nkv, lw->q_norm, lw->k_norm, eps, e->pos_dev, &m->rope, rb,
                            e->kvdt, e->knew, e->vnew);
    if (rb) {
        CK(ops->round_bf16(be, e->q, nrows * qd));
        CK(ops->round_bf16(be, e->k, nrows * kvd));
    }
    if (lw->q_norm) {
        CK(ops->rmsnorm(be, e->q, lw->q_norm, nrows * nh, hd, eps, e->q));
        CK(ops->rmsnorm(be, e->k, lw->k_norm, nrows * nkv, hd, eps, e->k));
        if (rb) {
            CK(ops->round_bf16(be, e->q, nrows * qd));
            CK(ops->round_bf16(be, e->k, nrows * kvd));
        }
    }
    CK(ops->rope(be, e->q, nrows, nh, e->pos_dev, &m->rope));
    CK(ops->rope(be, e->k, nrows, nkv, e->pos_dev, &m->rope));
    if (rb) CK(ops->round_bf16(be, e->q, nrows * qd));
    CK(ops->to_kv(be, e->k, nrows * kvd, e->kvdt, e->knew));
    CK(ops->to_kv(be, e->v, nrows * kvd, e->kvdt, e->vnew));
    return DPB_OK;
}

/* One pass over rows [0, nrows) made of parts (ids and positions uploaded). */
static dpb_status run_chunk(dpb_engine *e, const part *parts, int np, int64_t nrows)
{
    dpb_backend *be = e->be;
    const dpb_backend_ops *ops = be->ops;
    const dpb_model *m = &e->m;
    const dpb_model_config *c = &m->cfg;
    const int64_t H = c->hidden_size, L = c->num_layers, hd = c->head_dim;
    const int64_t nh = c->num_heads, nkv = c->num_kv_heads, qd = nh * hd, kvd = nkv * hd;
    const bool rb = e->dtype == DPB_ENGINE_BF16;
    const bool devpos = !be->host_memory && ops->kv_write_at;
    const float eps = (float)c->rms_norm_eps;
    size_t es = dpb_kv_dtype_size(e->kvdt);
    dpb_status st;
    e->f.n = nrows;
    CK(ops->embed(be, &m->embed, e->ids_dev, nrows, e->x));
    CK(ops->rmsnorm(be, e->x, m->layers[0].attn_norm, nrows, H, eps, e->xn));
    if (rb) CK(ops->round_bf16(be, e->xn, nrows * H));
    for (int64_t l = 0; l < L; l++) {
        const dpb_layer_weights *lw = &m->layers[l];
        const dpb_weight *w3[3] = {&lw->q, &lw->k, &lw->v};
        const uint16_t *b3[3] = {lw->bq, lw->bk, lw->bv};
        /* one row of one sequence with the position on the device: its k and v go into the cache in qk_prep's
         * launch where the backend offers it (the attention reads this position from knew / vnew, never from the
         * cache slot, which holds a position outside its keys: writing it first changes nothing); where the
         * backend offers it, the q/k/v projections and that step are one operation */
        const bool one_row = devpos && ops->qk_prep_kv && ops->qk_prep && np == 1 && nrows == 1 && !attn_batched(e, np, nrows);
        bool kv_done = false, qkv_done = false;
        if (one_row && ops->qkv_prep_kv) {
            st = ops->qkv_prep_kv(be, w3, b3, e->xn, e->q, e->k, e->v, nh, nkv, lw->q_norm, lw->k_norm, eps, e->pos_dev,
                                  &m->rope, rb, e->kvdt, e->knew, e->vnew, e->kc[parts[0].seq * L + l],
                                  e->vc[parts[0].seq * L + l], e->slots[l]);
            if (st == DPB_OK) kv_done = qkv_done = true;
            else if (st != DPB_E_UNSUPPORTED) return st;
            else dpb_error_clear();
        }
        if (!qkv_done) {
            float *y3[3] = {e->q, e->k, e->v};
            CK(dpb_backend_linear_multi(be, 3, w3, b3, e->xn, nrows, false, y3));
        }
        if (one_row && !kv_done) {
            st = ops->qk_prep_kv(be, e->q, e->k, e->v, nrows, nh, nkv, lw->q_norm, lw->k_norm, eps, e->pos_dev,
                                 &m->rope, rb, e->kvdt, e->knew, e->vnew, e->kc[parts[0].seq * L + l],
                                 e->vc[parts[0].seq * L + l], e->slots[l]);
            if (st == DPB_OK) kv_done = true;
            else if (st != DPB_E_UNSUPPORTED) return st;
            else dpb_error_clear();
        }
        if (!kv_done) CK(qk_prep(e, lw, nrows));
        bool batched = false;
        if (attn_batched(e, np, nrows)) {
            dpb_attn_batch_args a = {np, nh, nkv, hd, e->q, e->knew, e->vnew, e->kvtab + (2 * l) * e->max_seqs,
                                     e->kvtab + (2 * l + 1) * e->max_seqs, e->seq_dev, e->pos_dev, e->slots[l],
                                     lw->sliding ? c->sliding_window : 0, e->max_ctx - 1, e->kvdt, lw->sinks,
                                     m->attn_scale, e->att, rb};
            st = ops->attention_batch(be, &a);
            if (st == DPB_E_UNSUPPORTED) {
                e->attn_batch = false; /* this model's shapes: row by row from now on */
                dpb_error_clear();
            } else if (st) return st;
            else batched = true;
        }
        for (int p = 0; p < np && !batched; p++) {
            const part *pp = &parts[p];
            dpb_attn_args a = {pp->n, pp->pos0, nh, nkv, hd, e->q + pp->row * qd,
                               (char *)e->knew + (size_t)(pp->row * kvd) * es, (char *)e->vnew + (size_t)(pp->row * kvd) * es,
                               e->kc[pp->seq * L + l], e->vc[pp->seq * L + l], e->slots[l],
                               lw->sliding ? c->sliding_window : 0, e->kvdt, lw->sinks, m->attn_scale,
                               e->att + pp->row * qd, devpos ? e->pos_dev + pp->row : NULL, rb};
            CK(ops->attention(be, &a));
        }
        for (int p = 0; p < np && !batched && !kv_done; p++) {
            const part *pp = &parts[p];
            void *kc = e->kc[pp->seq * L + l], *vc = e->vc[pp->seq * L + l];
            const void *kn = (char *)e->knew + (size_t)(pp->row * kvd) * es, *vn = (char *)e->vnew + (size_t)(pp->row * kvd) * es;
            if (devpos) CK(ops->kv_write_at(be, kc, vc, e->slots[l], kvd, e->kvdt, kn, vn, pp->n, e->pos_dev + pp->row));
            else CK(ops->kv_write(be, kc, vc, e->slots[l], kvd, e->kvdt, kn, vn, pp->n, pp->pos0));
        }
        /* bf16 mode: the attention rounded its output (round_out) */
        CK(ops->linear(be, &lw->o, lw->bo, e->att, nrows, e->tmp));
        CK(add_norm(e, e->x, e->tmp, lw->mlp_norm, nrows, e->xn));
        CK(m->arch->mlp(&e->f, lw, e->xn, e->tmp));
        /* the residual add, and the next layer's attention norm */
        CK(add_norm(e, e->x, e->tmp, l + 1 < L ? m->layers[l + 1].attn_norm : NULL, nrows, e->xn));
    }
    return DPB_OK;
}

/* Final norm of the n rows at h (in place, backend memory). */
static dpb_status final_norm(dpb_engine *e, float *h, int64_t n)
{
    dpb_backend *be = e->be;
    dpb_status st;
    CK(be->ops->rmsnorm(be, h, e->m.final_norm, n, e->m.cfg.hidden_size, (float)e->m.cfg.rms_norm_eps, h));
    if (e->dtype == DPB_ENGINE_BF16) CK(be->ops->round_bf16(be, h, n * e->m.cfg.hidden_size));
    return DPB_OK;
}

/* lm_head over rows [r, r + k) of h into the staging buffer, and argmax
 * there when ids are wanted (device backends; k <= lrows). */
static dpb_status head_stage(dpb_engine *e, const float *h, int64_t k, bool argmax)
{
    dpb_backend *be = e->be;
    dpb_status st;
    CK(be->ops->linear(be, &e->m.lm_head, NULL, h, k, e->logits_dev));
    if (argmax) CK(be->ops->argmax(be, e->logits_dev, k, e->m.cfg.vocab_size, e->argmax_dev));
    return DPB_OK;
}

/* logits_host[n, V] (or, device backends only, greedy ids[n]) = lm_head(h[n, H]):
 * straight into host memory, or through the staging buffer for device backends. */
static dpb_status lm_head(dpb_engine *e, const float *h, int64_t n, float *logits_host, int32_t *ids)
{
    dpb_backend *be = e->be;
    const int64_t V = e->m.cfg.vocab_size, H = e->m.cfg.hidden_size;
    dpb_status st;
    if (be->host_memory) return be->ops->linear(be, &e->m.lm_head, NULL, h, n, logits_host);
    for (int64_t r = 0; r < n; r += e->lrows) {
        int64_t k = n - r < e->lrows ? n - r : e->lrows;
        CK(head_stage(e, h + r * H, k, ids != NULL));
        if (ids) CK(be->ops->download(be, ids + r, e->argmax_dev, (size_t)k * sizeof *ids));
        else CK(be->ops->download(be, logits_host + r * V, e->logits_dev, (size_t)(k * V) * sizeof(float)));
    }
    return DPB_OK;
}

/* The backend takes the argmax itself (device backends with the argmax op). */
static bool device_argmax(const dpb_engine *e) { return !e->be->host_memory && e->be->ops->argmax && e->argmax_dev; }

/* The decode step of np single-token parts as a graph: replayed when one
 * was captured for this sequence set, captured on its second occurrence.
 * *done false: run it op by op. */
static dpb_status decode_graph(dpb_engine *e, const part *parts, int np, bool argmax, bool *done)
{
    dpb_backend *be = e->be;
    const int64_t H = e->m.cfg.hidden_size;
    dpb_status st;
    *done = false;
    if (!e->graphs || np > e->lrows || (argmax && !device_argmax(e))) return DPB_OK;
    int mode = argmax ? 1 : 0;
    egraph *g = NULL, *victim = &e->gcache[0];
    for (int i = 0; i < GRAPH_CACHE && !g; i++) {
        egraph *c = &e->gcache[i];
        if (c->seqs && c->n == np && c->mode == mode) {
            bool same = true;
            for (int j = 0; j < np && same; j++) same = c->seqs[j] == parts[j].seq;
            if (same) g = c;
        }
        if (!c->seqs || c->used < victim->used) victim = c;
    }
    if (!g) {
        g = victim;
        if (g->g) be->ops->graph_free(be, g->g);
        free(g->seqs);
        memset(g, 0, sizeof *g);
        if (!(g->seqs = malloc((size_t)np * sizeof *g->seqs))) return dpb_error_set(DPB_E_NOMEM, "forward: out of memory");
        for (int j = 0; j < np; j++) g->seqs[j] = parts[j].seq;
        g->n = np;
        g->mode = mode;
    }
    g->used = ++e->gclock;
    if (g->failed) return DPB_OK;
    if (g->g) {
        bool stale = false;
        CK(be->ops->graph_launch(be, g->g, &stale));
        if (!stale) {
            e->g_replays++;
            *done = true;
            return DPB_OK;
        }
        be->ops->graph_free(be, g->g);
        g->g = NULL;
        g->runs = 1;
    }
    if (g->runs++ < 1) return DPB_OK; /* first time: op by op, which also sizes every buffer */
    CK(be->ops->graph_begin(be));
    st = run_chunk(e, parts, np, np);
    for (int p = 0; p < np && !st; p++)
        st = be->ops->copy(be, e->hid + p * H, e->x + parts[p].row * H, (size_t)H * sizeof(float));
    if (!st) st = final_norm(e, e->hid, np);
    if (!st) st = head_stage(e, e->hid, np, argmax);
    void *graph = NULL;
    dpb_status ge = be->ops->graph_end(be, &graph);
    if (st || ge) {
        if (graph) be->ops->graph_free(be, graph);
        g->failed = true; /* this set stays op by op */
        dpb_error_clear();
        return DPB_OK;
    }
    g->g = graph;
    e->g_captures++;
    bool stale = false;
    CK(be->ops->graph_launch(be, g->g, &stale));
    if (stale) return dpb_error_set(DPB_E_INTERNAL, "forward: a graph went stale right after its capture");
    *done = true;
    return DPB_OK;
}

void dpb_engine_graph_stats(const dpb_engine *e, uint64_t *replays, uint64_t *captures)
{
    *replays = e->g_replays;
    *captures = e->g_captures;
}

static dpb_status forward_impl(dpb_engine *e, const dpb_engine_seg *segs, int nseg, dpb_logits_mode mode, float *logits,
                               int32_t *ids)
{
    const dpb_model_config *c = &e->m.cfg;
    const int64_t H = c->hidden_size, V = c->vocab_size;
    dpb_backend *be = e->be;
    dpb_status st = DPB_OK;
    if (nseg < 0 || (nseg > 0 && !segs)) return dpb_error_set(DPB_E_ARG, "forward: bad segment list");
    if (mode != DPB_LOGITS_NONE && !logits && !ids) return dpb_error_set(DPB_E_ARG, "forward: no logits buffer");
    for (int i = 0; i < nseg; i++) {
        const dpb_engine_seg *s = &segs[i];
        if (s->seq < 0 || s->seq >= e->max_seqs)
            return dpb_error_set(DPB_E_ARG, "forward: sequence slot %d is outside [0, %d)", s->seq, e->max_seqs);
        if (s->n < 1 || !s->tokens) return dpb_error_set(DPB_E_ARG, "forward: segment %d has no tokens", i);
        for (int j = 0; j < i; j++)
            if (segs[j].seq == s->seq) return dpb_error_set(DPB_E_ARG, "forward: sequence slot %d appears twice in one step", s->seq);
        if (s->n > e->max_ctx - e->seq_len[s->seq])
            return dpb_error_set(DPB_E_RANGE, "sequence %d: %lld new tokens after %lld do not fit the context of %lld tokens",
                                 s->seq, (long long)s->n, (long long)e->seq_len[s->seq], (long long)e->max_ctx);
        for (int64_t t = 0; t < s->n; t++)
            if (s->tokens[t] < 0 || s->tokens[t] >= V)
                return dpb_error_set(DPB_E_RANGE, "sequence %d: token id %d at position %lld is outside the vocabulary [0, %lld)",
                                     s->seq, s->tokens[t], (long long)(e->seq_len[s->seq] + t), (long long)V);
    }
    part *parts = malloc((size_t)(nseg > 0 ? nseg : 1) * sizeof *parts);
    if (!parts) return dpb_error_set(DPB_E_NOMEM, "forward: out of memory");
    int64_t out_row = 0; /* DPB_LOGITS_ALL: next row of logits */
    int si = 0;
    int64_t soff = 0;
    while (si < nseg) {
        /* Fill one chunk of at most R rows. */
        int np = 0;
        int64_t rows = 0;
        while (si < nseg && rows < e->R) {
            const dpb_engine_seg *s = &segs[si];
            int64_t take = s->n - soff;
            if (take > e->R - rows) take = e->R - rows;
            part *p = &parts[np++];
            p->seg = si;
            p->seq = s->seq;
            p->off = soff;
            p->n = take;
            p->row = rows;
            p->pos0 = e->seq_len[s->seq];
            for (int64_t t = 0; t < take; t++) {
                e->ids[rows + t] = s->tokens[soff + t];
                e->pos[rows + t] = p->pos0 + t;
                e->seqs[rows + t] = s->seq;
            }
            rows += take;
            soff += take;
            if (soff == s->n) {
                si++;
                soff = 0;
            }
        }
        if ((st = upload_rows(e, np, rows))) break;
        /* A decode step (one token per sequence, the whole step in this chunk, last logits): graph. */
        bool done = false;
        if (mode == DPB_LOGITS_LAST && rows == np && si == nseg && parts[0].seg == 0 && parts[0].off == 0 &&
            (st = decode_graph(e, parts, np, ids != NULL, &done)))
            break;
        if (done) {
            for (int p = 0; p < np; p++) e->seq_len[parts[p].seq] += 1;
            if (ids) st = be->ops->download(be, ids, e->argmax_dev, (size_t)np * sizeof *ids);
            else st = be->ops->download(be, logits, e->logits_dev, (size_t)(np * V) * sizeof(float));
            if (st) break;
            continue;
        }
        if ((st = run_chunk(e, parts, np, rows))) break;
        for (int p = 0; p < np; p++) e->seq_len[parts[p].seq] += parts[p].n;
        /* Logits. */
        if (mode == DPB_LOGITS_ALL) {
            if ((st = be->ops->rmsnorm(be, e->x, e->m.final_norm, rows, H, (float)c->rms_norm_eps, e->xn))) break;
            if (e->dtype == DPB_ENGINE_BF16 && (st = be->ops->round_bf16(be, e->xn, rows * H))) break;
            if ((st = lm_head(e, e->xn, rows, logits + out_row * V, NULL))) break;
            out_row += rows;
        } else if (mode == DPB_LOGITS_LAST) {
            int64_t nl = 0;
            int first = -1;
            for (int p = 0; p < np; p++) {
                if (parts[p].off + parts[p].n != segs[parts[p].seg].n) continue;
                if (first < 0) first = parts[p].seg;
                if ((st = be->ops->copy(be, e->hid + nl * H, e->x + (parts[p].row + parts[p].n - 1) * H,
                                        (size_t)H * sizeof(float))))
                    break;
                nl++;
            }
            if (st) break;
            if (nl) {
                if ((st = final_norm(e, e->hid, nl))) break;
                if ((st = lm_head(e, e->hid, nl, ids ? NULL : logits + (int64_t)first * V, ids ? ids + first : NULL))) break;
            }
        }
    }
    free(parts);
    return st;
}

dpb_status dpb_engine_forward(dpb_engine *e, const dpb_engine_seg *segs, int nseg, dpb_logits_mode mode, float *logits)
{
    return forward_impl(e, segs, nseg, mode, logits, NULL);
}

dpb_status dpb_engine_forward_argmax(dpb_engine *e, const dpb_engine_seg *segs, int nseg, int32_t *ids)
{
    if (!ids) return dpb_error_set(DPB_E_ARG, "forward: no ids buffer");
    if (device_argmax(e)) return forward_impl(e, segs, nseg, DPB_LOGITS_LAST, NULL, ids);
    /* host backends: the logits, then the sampler's greedy rule on each row */
    const int64_t V = e->m.cfg.vocab_size;
    float *lg = malloc((size_t)(nseg > 0 ? nseg : 1) * (size_t)V * sizeof *lg);
    if (!lg) return dpb_error_set(DPB_E_NOMEM, "forward: out of memory");
    dpb_status st = forward_impl(e, segs, nseg, DPB_LOGITS_LAST, lg, NULL);
    dpb_token_sampler sm;
    dpb_sampling g = dpb_sampling_greedy();
    if (!st && !(st = dpb_token_sampler_init(&sm, &g, V))) {
        for (int i = 0; i < nseg && !st; i++) st = dpb_token_sampler_sample(&sm, lg + (int64_t)i * V, &ids[i]);
        dpb_token_sampler_free(&sm);
    }
    free(lg);
    return st;
}

void dpb_gen_result_free(dpb_gen_result *r)
{
    free(r->ids);
    free(r->t_ns);
    r->ids = NULL;
    r->t_ns = NULL;
}

static bool is_stop(const dpb_gen_request *q, int32_t id)
{
    if (q->ignore_eos) return false;
    for (int i = 0; i < q->n_stop; i++)
        if (q->stop_ids[i] == id) return true;
    return false;
}

dpb_status dpb_engine_generate(dpb_engine *e, const dpb_gen_request *reqs, int n, dpb_gen_result *res, dpb_token_cb cb,
                               void *user)
{
    if (n < 1 || n > e->max_seqs)
        return dpb_error_set(DPB_E_ARG, "generate: %d requests for %d sequence slots", n, e->max_seqs);
    const int64_t V = e->m.cfg.vocab_size;
    dpb_status st = DPB_OK;
    for (int i = 0; i < n; i++) memset(&res[i], 0, sizeof res[i]);
    for (int i = 0; i < n; i++) {
        const dpb_gen_request *q = &reqs[i];
        if (q->n_prompt < 1 || !q->prompt) return dpb_error_set(DPB_E_ARG, "request %d: the prompt is empty", i);
        if (q->n_prompt > e->max_ctx)
            return dpb_error_set(DPB_E_RANGE, "request %d: the prompt has %lld tokens but the context is %lld tokens", i,
                                 (long long)q->n_prompt, (long long)e->max_ctx);
        if (q->max_new < 0) return dpb_error_set(DPB_E_ARG, "request %d: max_new %lld is negative", i, (long long)q->max_new);
        if ((st = dpb_sampling_check(&q->sampling))) return dpb_error_prefix(st, "request %d", i);
    }
    dpb_token_sampler *sm = calloc((size_t)n, sizeof *sm);
    /* every request greedy and the backend takes argmaxes itself: only ids come back */
    bool greedy = device_argmax(e);
    for (int i = 0; i < n; i++) greedy &= reqs[i].sampling.greedy;
    float *logits = greedy ? NULL : malloc((size_t)(n * V) * sizeof *logits);
    dpb_engine_seg *segs = calloc((size_t)n, sizeof *segs);
    int *live = calloc((size_t)n, sizeof *live);
    int32_t *last = calloc((size_t)n, sizeof *last);
    int32_t *gids = calloc((size_t)n, sizeof *gids);
    if (!sm || (!greedy && !logits) || !segs || !live || !last || !gids) {
        st = dpb_error_set(DPB_E_NOMEM, "generate: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        int64_t cap = reqs[i].max_new > 0 ? reqs[i].max_new : 1;
        res[i].ids = malloc((size_t)cap * sizeof *res[i].ids);
        res[i].t_ns = malloc((size_t)cap * sizeof *res[i].t_ns);
        if (!res[i].ids || !res[i].t_ns) { st = dpb_error_set(DPB_E_NOMEM, "generate: out of memory"); goto done; }
        if ((st = dpb_token_sampler_init(&sm[i], &reqs[i].sampling, V))) goto done;
        dpb_engine_seq_reset(e, i);
        segs[i] = (dpb_engine_seg){i, reqs[i].prompt, reqs[i].n_prompt};
    }
    uint64_t t0 = dpb_now_ns();
    for (int i = 0; i < n; i++) res[i].t_start_ns = t0;
    if ((st = greedy ? dpb_engine_forward_argmax(e, segs, n, gids) : dpb_engine_forward(e, segs, n, DPB_LOGITS_LAST, logits)))
        goto done;
    uint64_t tp = dpb_now_ns();
    int nlive = 0;
    for (int i = 0; i < n; i++) {
        res[i].t_prefill_done_ns = tp;
        live[i] = reqs[i].max_new > 0;
        nlive += live[i];
        if (!live[i]) res[i].stop = DPB_STOP_LENGTH;
    }
    /* logits row j belongs to the j-th live sequence of the last step */
    for (;;) {
        int j = 0;
        for (int i = 0; i < n; i++) {
            if (!live[i]) continue;
            int32_t id;
            if (greedy) id = gids[j];
            else if ((st = dpb_token_sampler_sample(&sm[i], logits + (int64_t)j * V, &id))) goto done;
            j++;
            uint64_t t = dpb_now_ns();
            res[i].ids[res[i].n] = id;
            res[i].t_ns[res[i].n] = t;
            res[i].n++;
            last[i] = id;
            bool keep = cb ? cb(user, i, id, t) : true;
            if (is_stop(&reqs[i], id)) { res[i].stop = DPB_STOP_EOS; live[i] = 0; }
            else if (res[i].n >= reqs[i].max_new || !keep) { res[i].stop = DPB_STOP_LENGTH; live[i] = 0; }
            else if (e->seq_len[i] >= e->max_ctx) { res[i].stop = DPB_STOP_CONTEXT; live[i] = 0; }
        }
        int ns = 0;
        for (int i = 0; i < n; i++)
            if (live[i]) segs[ns++] = (dpb_engine_seg){i, &last[i], 1};
        if (!ns) break;
        if ((st = greedy ? dpb_engine_forward_argmax(e, segs, ns, gids)
                         : dpb_engine_forward(e, segs, ns, DPB_LOGITS_LAST, logits)))
            goto done;
    }
    (void)nlive;
done:
    if (sm)
        for (int i = 0; i < n; i++) dpb_token_sampler_free(&sm[i]);
    free(sm);
    free(logits);
    free(segs);
    free(live);
    free(last);
    free(gids);
    if (st)
        for (int i = 0; i < n; i++) dpb_gen_result_free(&res[i]);
    return st;
}
