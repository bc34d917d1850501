/* Per-operation profile wrapper (prof.h). */
#include "backend/prof.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"

#define PROF_KEYS 1024
#define PROF_KEY_LEN 96

typedef struct prof_row {
    char key[PROF_KEY_LEN];
    uint64_t calls, total_ns, min_ns, max_ns;
} prof_row;

typedef struct prof_impl {
    dpb_backend *inner;
    dpb_backend_ops ops;
    char *path;
    prof_row *rows;
    int nrows;
    uint64_t dropped; /* calls whose key did not fit the table (folded into its last row) */
} prof_impl;

static prof_impl *pi_of(const dpb_backend *b) { return (prof_impl *)b->impl; }

static const char *fmt_name(dpb_wfmt f)
{
    return f == DPB_W_F32 ? "f32" : f == DPB_W_BF16 ? "bf16" : f == DPB_W_MXFP4 ? "mxfp4" : "?";
}

static void add_time(prof_impl *p, const char *key, uint64_t ns)
{
    prof_row *r = NULL;
    for (int i = 0; i < p->nrows && !r; i++)
        if (strcmp(p->rows[i].key, key) == 0) r = &p->rows[i];
    if (!r && p->nrows < PROF_KEYS) {
        r = &p->rows[p->nrows++];
        snprintf(r->key, sizeof r->key, "%s", key);
        r->min_ns = UINT64_MAX;
    }
    if (!r) {
        p->dropped++;
        r = &p->rows[PROF_KEYS - 1]; /* the last row absorbs the overflow */
    }
    r->calls++;
    r->total_ns += ns;
    if (ns < r->min_ns) r->min_ns = ns;
    if (ns > r->max_ns) r->max_ns = ns;
}

/* Runs after an operation: waits for the wrapped backend and books the time. */
static dpb_status done(dpb_backend *b, dpb_status st, uint64_t t0, const char *fmt, ...)
{
    prof_impl *p = pi_of(b);
    if (st) return st;
    dpb_status ss = p->inner->ops->sync(p->inner);
    uint64_t t1 = dpb_now_ns();
    if (ss) return ss;
    char key[PROF_KEY_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof key, fmt, ap);
    va_end(ap);
    add_time(p, key, t1 - t0);
    return DPB_OK;
}

#define IN(b) (pi_of(b)->inner)
#define CALL(b, op, ...) IN(b)->ops->op(IN(b), __VA_ARGS__)

static dpb_status w_alloc(dpb_backend *b, size_t bytes, void **out) { return CALL(b, alloc, bytes, out); }
static void w_free(dpb_backend *b, void *ptr) { IN(b)->ops->free(IN(b), ptr); }
static dpb_status w_upload(dpb_backend *b, void *dst, const void *src, size_t bytes)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, upload, dst, src, bytes), t0, "upload %s", bytes >= 1048576 ? ">=1MiB" : "<1MiB");
}
static dpb_status w_download(dpb_backend *b, void *dst, const void *src, size_t bytes)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, download, dst, src, bytes), t0, "download %s", bytes >= 1048576 ? ">=1MiB" : "<1MiB");
}
static dpb_status w_copy(dpb_backend *b, void *dst, const void *src, size_t bytes)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, copy, dst, src, bytes), t0, "copy");
}
static dpb_status w_sync(dpb_backend *b) { return IN(b)->ops->sync(IN(b)); }
static dpb_status w_map_host(dpb_backend *b, const void *host, size_t bytes, const void **out)
{
    return CALL(b, map_host, host, bytes, out);
}
static dpb_status w_embed(dpb_backend *b, const dpb_weight *t, const int32_t *ids, int64_t n, float *out)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, embed, t, ids, n, out), t0, "embed n=%lld", (long long)n);
}
static dpb_status w_linear(dpb_backend *b, const dpb_weight *w, const uint16_t *bias, const float *x, int64_t n,
                           float *y)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, linear, w, bias, x, n, y), t0, "linear %s [%lld x %lld] n=%lld", fmt_name(w->fmt),
                (long long)w->out, (long long)w->in, (long long)n);
}
static dpb_status w_rmsnorm(dpb_backend *b, const float *x, const uint16_t *w, int64_t n, int64_t dim, float eps, float *y)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, rmsnorm, x, w, n, dim, eps, y), t0, "rmsnorm dim=%lld n=%lld", (long long)dim, (long long)n);
}
static dpb_status w_rope(dpb_backend *b, float *x, int64_t n, int64_t heads, const int64_t *pos, const dpb_rope_table *rt)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, rope, x, n, heads, pos, rt), t0, "rope n=%lld", (long long)n);
}
static dpb_status w_attention(dpb_backend *b, const dpb_attn_args *a)
{
    uint64_t t0 = dpb_now_ns();
    /* the context in powers of two, so a growing decode gives a few rows */
    long long ctx = a->pos0 + a->n, c2 = 1;
    while (c2 < ctx && c2 < ((long long)1 << 40)) c2 <<= 1;
    return done(b, CALL(b, attention, a), t0, "attention hd=%lld n=%lld ctx<=%lld%s", (long long)a->head_dim,
                (long long)a->n, c2, a->window > 0 ? " window" : "");
}
static dpb_status w_kv_write(dpb_backend *b, void *kc, void *vc, int64_t slots, int64_t re, dpb_kv_dtype dt,
                             const void *kn, const void *vn, int64_t n, int64_t pos0)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, kv_write, kc, vc, slots, re, dt, kn, vn, n, pos0), t0, "kv_write n=%lld", (long long)n);
}
static dpb_status w_to_kv(dpb_backend *b, const float *src, int64_t n, dpb_kv_dtype dt, void *dst)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, to_kv, src, n, dt, dst), t0, "to_kv");
}
static dpb_status w_router_topk(dpb_backend *b, const float *lg, int64_t n, int64_t E, int64_t k, int32_t *idx, float *w)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, router_topk, lg, n, E, k, idx, w), t0, "router_topk n=%lld", (long long)n);
}
static dpb_status w_router(dpb_backend *b, const dpb_weight *w, const uint16_t *bias, const float *x, int64_t n,
                           int64_t k, bool round, float *lg, int32_t *idx, float *wts)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, router, w, bias, x, n, k, round, lg, idx, wts), t0, "router (fused) n=%lld", (long long)n);
}
static dpb_status w_moe(dpb_backend *b, const dpb_moe_args *a)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, moe, a), t0, "moe %s n=%lld", fmt_name(a->gate_up[0].fmt), (long long)a->n);
}
static dpb_status w_swiglu(dpb_backend *b, const float *g, const float *u, int64_t n, int64_t I, float *out)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, swiglu, g, u, n, I, out), t0, "swiglu n=%lld", (long long)n);
}
static dpb_status w_add(dpb_backend *b, float *y, const float *x, int64_t n)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, add, y, x, n), t0, "add");
}
static dpb_status w_round_bf16(dpb_backend *b, float *x, int64_t n)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, round_bf16, x, n), t0, "round_bf16");
}
static dpb_status w_kv_write_at(dpb_backend *b, void *kc, void *vc, int64_t slots, int64_t re, dpb_kv_dtype dt,
                                const void *kn, const void *vn, int64_t n, const int64_t *pos)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, kv_write_at, kc, vc, slots, re, dt, kn, vn, n, pos), t0, "kv_write_at n=%lld", (long long)n);
}
static dpb_status w_argmax(dpb_backend *b, const float *lg, int64_t n, int64_t V, int32_t *ids)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, argmax, lg, n, V, ids), t0, "argmax n=%lld", (long long)n);
}
static dpb_status w_fill(dpb_backend *b, void *dst, uint64_t bytes, const dpb_fill_rule *r)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, fill, dst, bytes, r), t0, "fill (synthetic weights)");
}
static dpb_status w_add_rmsnorm(dpb_backend *b, float *x, float *r, const uint16_t *w, int64_t n, int64_t dim, float eps,
                                bool round, float *y)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, add_rmsnorm, x, r, w, n, dim, eps, round, y), t0, "add_rmsnorm n=%lld", (long long)n);
}
static dpb_status w_qk_prep(dpb_backend *b, float *q, float *k, const float *v, int64_t n, int64_t nh, int64_t nkv,
                            const uint16_t *qn, const uint16_t *kn, float eps, const int64_t *pos,
                            const dpb_rope_table *rt, bool round, dpb_kv_dtype dt, void *knew, void *vnew)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, qk_prep, q, k, v, n, nh, nkv, qn, kn, eps, pos, rt, round, dt, knew, vnew), t0,
                "qk_prep n=%lld", (long long)n);
}

static dpb_status w_qk_prep_kv(dpb_backend *b, float *q, float *k, const float *v, int64_t n, int64_t nh, int64_t nkv,
                               const uint16_t *qn, const uint16_t *kn, float eps, const int64_t *pos,
                               const dpb_rope_table *rt, bool round, dpb_kv_dtype dt, void *knew, void *vnew, void *kc,
                               void *vc, int64_t slots)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, qk_prep_kv, q, k, v, n, nh, nkv, qn, kn, eps, pos, rt, round, dt, knew, vnew, kc, vc, slots),
                t0, "qk_prep_kv n=%lld", (long long)n);
}

static dpb_status w_qkv_prep_kv(dpb_backend *b, const dpb_weight *const *w, const uint16_t *const *bias, const float *x,
                                float *q, float *k, float *v, int64_t nh, int64_t nkv, const uint16_t *qn, const uint16_t *kn,
                                float eps, const int64_t *pos, const dpb_rope_table *rt, bool round, dpb_kv_dtype dt,
                                void *knew, void *vnew, void *kc, void *vc, int64_t slots)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, qkv_prep_kv, w, bias, x, q, k, v, nh, nkv, qn, kn, eps, pos, rt, round, dt, knew, vnew, kc, vc,
                        slots),
                t0, "qkv_prep_kv (fused) [%lld + 2 x %lld rows x %lld]", (long long)w[0]->out, (long long)w[1]->out,
                (long long)w[0]->in);
}

static dpb_status w_attention_batch(dpb_backend *b, const dpb_attn_batch_args *a)
{
    uint64_t t0 = dpb_now_ns();
    long long c2 = 1;
    while (c2 < a->max_pos + 1 && c2 < ((long long)1 << 40)) c2 <<= 1;
    return done(b, CALL(b, attention_batch, a), t0, "attention_batch hd=%lld n=%lld ctx<=%lld%s", (long long)a->head_dim,
                (long long)a->n, c2, a->window > 0 ? " window" : "");
}

static dpb_status w_linear_multi(dpb_backend *b, int nw, const dpb_weight *const *w, const uint16_t *const *bias,
                                 const float *x, int64_t n, bool round, float *const *y)
{
    uint64_t t0 = dpb_now_ns();
    long long rows = 0;
    for (int i = 0; i < nw && i < 8; i++) rows += w[i]->out;
    return done(b, CALL(b, linear_multi, nw, w, bias, x, n, round, y), t0, "linear_multi %d x %s [%lld rows x %lld] n=%lld",
                nw, nw > 0 ? fmt_name(w[0]->fmt) : "?", rows, nw > 0 ? (long long)w[0]->in : 0LL, (long long)n);
}

static dpb_status w_swiglu_bf16(dpb_backend *b, float *g, float *u, int64_t n, int64_t I, float *out)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, swiglu_bf16, g, u, n, I, out), t0, "swiglu_bf16 n=%lld", (long long)n);
}
static dpb_status w_swiglu_down(dpb_backend *b, float *g, float *u, int64_t n, int64_t I, const dpb_weight *down,
                                const uint16_t *bd, float *out)
{
    uint64_t t0 = dpb_now_ns();
    return done(b, CALL(b, swiglu_down, g, u, n, I, down, bd, out), t0, "swiglu_down n=%lld", (long long)n);
}

static int by_total(const void *a, const void *b)
{
    const prof_row *x = a, *y = b;
    return x->total_ns < y->total_ns ? 1 : x->total_ns > y->total_ns ? -1 : strcmp(x->key, y->key);
}

dpb_status dpb_backend_prof_write(const dpb_backend *b, FILE *f)
{
    if (!b || !b->ops || b->ops->sync != w_sync)
        return dpb_error_set(DPB_E_ARG, "op profile: not a profiling backend");
    const prof_impl *p = pi_of(b);
    prof_row *sorted = malloc((size_t)(p->nrows > 0 ? p->nrows : 1) * sizeof *sorted);
    if (!sorted) return dpb_error_set(DPB_E_NOMEM, "op profile: out of memory");
    memcpy(sorted, p->rows, (size_t)p->nrows * sizeof *sorted);
    qsort(sorted, (size_t)p->nrows, sizeof *sorted, by_total);
    uint64_t all = 0, calls = 0;
    for (int i = 0; i < p->nrows; i++) {
        all += sorted[i].total_ns;
        calls += sorted[i].calls;
    }
    fprintf(f, "\n## Operation profile (%s backend; each call timed to its synchronization)\n\n", p->inner->ops->name);
    fprintf(f, "%llu calls, %.3f ms in all%s\n\n", (unsigned long long)calls, (double)all / 1e6,
            p->dropped ? " (keys past the table's size are folded into its last row)" : "");
    fprintf(f, "| operation | calls | total ms | share | mean us | min us | max us |\n|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < p->nrows; i++) {
        const prof_row *r = &sorted[i];
        fprintf(f, "| %s | %llu | %.3f | %.1f %% | %.1f | %.1f | %.1f |\n", r->key, (unsigned long long)r->calls,
                (double)r->total_ns / 1e6, all ? 100.0 * (double)r->total_ns / (double)all : 0.0,
                (double)r->total_ns / 1e3 / (double)r->calls, (double)r->min_ns / 1e3, (double)r->max_ns / 1e3);
    }
    free(sorted);
    return ferror(f) ? dpb_error_set(DPB_E_IO, "op profile: write failed") : DPB_OK;
}

static void w_destroy(dpb_backend *b)
{
    prof_impl *p = pi_of(b);
    if (!p) return;
    if (p->path) {
        bool err = strcmp(p->path, "-") == 0;
        FILE *f = err ? stderr : fopen(p->path, "w");
        if (!f) fprintf(stderr, "deploybench: op profile: cannot write %s: %s\n", p->path, strerror(errno));
        else {
            if (dpb_backend_prof_write(b, f)) fprintf(stderr, "deploybench: %s\n", dpb_error_message());
            if (!err && fclose(f)) fprintf(stderr, "deploybench: op profile: cannot write %s\n", p->path);
        }
    }
    dpb_backend_close(p->inner);
    free(p->rows);
    free(p->path);
    /* b->impl (p) and b are freed by dpb_backend_close */
}

dpb_status dpb_backend_prof_wrap(dpb_backend *inner, const char *path, dpb_backend **out)
{
    *out = NULL;
    if (!inner) return dpb_error_set(DPB_E_ARG, "op profile: no backend to wrap");
    dpb_backend *b = calloc(1, sizeof *b);
    prof_impl *p = calloc(1, sizeof *p);
    prof_row *rows = calloc(PROF_KEYS, sizeof *rows);
    char *pc = path ? strdup(path) : NULL;
    if (!b || !p || !rows || (path && !pc)) {
        free(b); free(p); free(rows); free(pc);
        return dpb_error_set(DPB_E_NOMEM, "op profile: out of memory");
    }
    const dpb_backend_ops *io = inner->ops;
    dpb_backend_ops *o = &p->ops;
    o->name = io->name;
    o->alloc = w_alloc;
    o->free = w_free;
    o->upload = w_upload;
    o->download = w_download;
    o->copy = w_copy;
    o->sync = w_sync;
    o->map_host = w_map_host;
    o->destroy = w_destroy;
    o->embed = w_embed;
    o->linear = w_linear;
    o->rmsnorm = w_rmsnorm;
    o->rope = w_rope;
    o->attention = w_attention;
    o->kv_write = w_kv_write;
    o->to_kv = w_to_kv;
    o->router_topk = w_router_topk;
    o->moe = w_moe;
    o->swiglu = w_swiglu;
    o->add = w_add;
    o->round_bf16 = w_round_bf16;
    /* optional: offered when the wrapped backend has them; graphs never (each op is timed alone) */
    o->kv_write_at = io->kv_write_at ? w_kv_write_at : NULL;
    o->argmax = io->argmax ? w_argmax : NULL;
    o->fill = io->fill ? w_fill : NULL;
    o->add_rmsnorm = io->add_rmsnorm ? w_add_rmsnorm : NULL;
    o->qk_prep = io->qk_prep ? w_qk_prep : NULL;
    o->attention_batch = io->attention_batch ? w_attention_batch : NULL;
    o->linear_multi = io->linear_multi ? w_linear_multi : NULL;
    o->swiglu_bf16 = io->swiglu_bf16 ? w_swiglu_bf16 : NULL;
    o->swiglu_down = io->swiglu_down ? w_swiglu_down : NULL;
    o->router = io->router ? w_router : NULL;
    o->qk_prep_kv = io->qk_prep_kv ? w_qk_prep_kv : NULL;
    o->qkv_prep_kv = io->qkv_prep_kv ? w_qkv_prep_kv : NULL;
    p->inner = inner;
    p->rows = rows;
    p->path = pc;
    b->ops = o;
    b->impl = p;
    b->threads = inner->threads;
    b->simd = inner->simd;
    b->host_memory = inner->host_memory;
    *out = b;
    return DPB_OK;
}

dpb_backend *dpb_backend_prof_inner(dpb_backend *b)
{
    return b && b->ops && b->ops->sync == w_sync ? pi_of(b)->inner : b;
}
