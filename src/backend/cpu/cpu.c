/* The fast cpu backend: OpenMP threads over output slices, SIMD kernels
 * chosen at run time (kernels.c), the reference code for the cheap ops. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "backend/cpu/cpu_internal.h"
#include "backend/cuda/cuda_backend.h"
#include "core/timeutil.h"
#include "format/dtype.h"

typedef struct cpu_impl {
    const dpb_cpu_kernels *k;
} cpu_impl;

static const dpb_cpu_kernels *kern(const dpb_backend *b)
{
    const cpu_impl *ci = b->impl;
    return ci ? ci->k : dpb_cpu_kernels_best();
}

static int nthreads(const dpb_backend *b) { return b->threads > 0 ? b->threads : 1; }

static dpb_status cpu_linear(dpb_backend *b, const dpb_weight *w, const uint16_t *bias, const float *x, int64_t n,
                             float *y)
{
    const dpb_cpu_kernels *k = kern(b);
    int nt = nthreads(b);
    if (n <= 0) return DPB_OK;
    if (w->fmt == DPB_W_MXFP4 && w->in % 32)
        return dpb_error_set(DPB_E_UNSUPPORTED, "linear: MXFP4 input size %lld is not a multiple of 32", (long long)w->in);
    float *xp = NULL;
    if (w->fmt == DPB_W_MXFP4) {
        size_t cnt = (size_t)(n * w->in);
        xp = malloc(cnt * sizeof *xp);
        if (!xp) return dpb_error_set(DPB_E_NOMEM, "linear: out of memory for %lld rows", (long long)n);
        for (size_t blk = 0; blk < cnt / 32; blk++) {
            const float *s = x + blk * 32;
            float *d = xp + blk * 32;
            for (int j = 0; j < 16; j++) {
                d[j] = s[2 * j];
                d[16 + j] = s[2 * j + 1];
            }
        }
    }
    int64_t out = w->out;
    int64_t gran = w->transposed ? 32 : 4;
    int64_t want = (int64_t)nt * 4;
    int64_t chunk = (out + want - 1) / want;
    chunk = (chunk + gran - 1) / gran * gran;
    if (chunk < gran) chunk = gran;
    int64_t nchunks = (out + chunk - 1) / chunk;
    /* Small products run on the calling thread: a parallel region costs a
     * barrier, which dominates below ~256K multiply-adds. */
    int par = nt > 1 && nchunks > 1 && out * w->in * n >= (256 << 10);
#pragma omp parallel for num_threads(nt) schedule(static) if (par)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t o0 = c * chunk, o1 = o0 + chunk < out ? o0 + chunk : out;
        if (w->fmt == DPB_W_MXFP4) k->mxfp4_rows(w, xp, n, y, o0, o1);
        else if (w->transposed) k->bf16t_cols(w, x, n, y, o0, o1);
        else k->bf16_rows(w, x, n, y, o0, o1);
        if (bias)
            for (int64_t t = 0; t < n; t++)
                for (int64_t o = o0; o < o1; o++) y[t * out + o] += dpb_bf16_to_f32(bias[o]);
    }
    free(xp);
    return DPB_OK;
}

static dpb_status cpu_attention(dpb_backend *b, const dpb_attn_args *a)
{
    const dpb_cpu_kernels *k = kern(b);
    int nt = nthreads(b);
    int64_t hd = a->head_dim, group = a->heads / a->kv_heads, total = a->n * a->heads;
    int64_t maxk = a->pos0 + a->n;
    size_t es = dpb_kv_dtype_size(a->kv_dtype);
    int failed = 0;
#pragma omp parallel num_threads(nt) if (nt > 1 && total > 1 && total * maxk * hd >= (32 << 10))
    {
        float *sc = malloc((size_t)maxk * sizeof *sc);
        if (!sc) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t th = 0; th < total; th++) {
            if (!sc) continue;
            int64_t t = th / a->heads, h = th % a->heads, kh = h / group;
            int64_t p = a->pos0 + t;
            int64_t lo = a->window > 0 && p - a->window + 1 > 0 ? p - a->window + 1 : 0;
            const float *q = a->q + (t * a->heads + h) * hd;
            float mx = -INFINITY;
            for (int64_t j = lo; j <= p; j++) {
                const char *kr = (const char *)dpb_attn_row(a, false, j) + (size_t)(kh * hd) * es;
                float s = k->dot_kv(q, kr, a->kv_dtype, hd) * a->scale;
                sc[j] = s;
                if (s > mx) mx = s;
            }
            float sink = a->sinks ? dpb_bf16_to_f32(a->sinks[h]) : -INFINITY;
            if (sink > mx) mx = sink;
            float den = a->sinks ? expf(sink - mx) : 0.0f;
            for (int64_t j = lo; j <= p; j++) {
                sc[j] = expf(sc[j] - mx);
                den += sc[j];
            }
            float inv = 1.0f / den;
            float *o = a->out + (t * a->heads + h) * hd;
            memset(o, 0, (size_t)hd * sizeof *o);
            for (int64_t j = lo; j <= p; j++) {
                const char *vr = (const char *)dpb_attn_row(a, true, j) + (size_t)(kh * hd) * es;
                k->axpy_kv(o, sc[j] * inv, vr, a->kv_dtype, hd);
            }
            if (a->round_out)
                for (int64_t d = 0; d < hd; d++) o[d] = dpb_bf16_to_f32(dpb_f32_to_bf16(o[d]));
        }
        free(sc);
    }
    if (failed) return dpb_error_set(DPB_E_NOMEM, "attention: out of memory for %lld keys", (long long)maxk);
    return DPB_OK;
}

static inline float round_bf(float x) { return dpb_bf16_to_f32(dpb_f32_to_bf16(x)); }

/* Rows grouped by expert: each expert's weights are read once per call. */
static dpb_status cpu_moe(dpb_backend *b, const dpb_moe_args *a)
{
    int64_t n = a->n, H = a->hidden, I = a->inter, K = a->top_k;
    int64_t E = 0;
    for (int64_t i = 0; i < n * K; i++)
        if (a->idx[i] + 1 > E) E = a->idx[i] + 1;
    dpb_status st = DPB_OK;
    int64_t *rows = malloc((size_t)(n * K) * sizeof *rows);
    float *rw = malloc((size_t)(n * K) * sizeof *rw);
    float *X = malloc((size_t)(n * H) * sizeof *X), *GU = malloc((size_t)(n * 2 * I) * sizeof *GU);
    float *ACT = malloc((size_t)(n * I) * sizeof *ACT), *DN = malloc((size_t)(n * H) * sizeof *DN);
    if (!rows || !rw || !X || !GU || !ACT || !DN) {
        st = dpb_error_set(DPB_E_NOMEM, "moe: out of memory for %lld rows", (long long)n);
        goto done;
    }
    memset(a->out, 0, (size_t)(n * H) * sizeof *a->out);
    for (int64_t e = 0; e < E; e++) {
        int64_t m = 0;
        for (int64_t t = 0; t < n; t++)
            for (int64_t j = 0; j < K; j++)
                if (a->idx[t * K + j] == e) {
                    rows[m] = t;
                    rw[m] = a->wts[t * K + j];
                    memcpy(X + m * H, a->x + t * H, (size_t)H * sizeof *X);
                    m++;
                }
        if (!m) continue;
        st = cpu_linear(b, &a->gate_up[e], a->gate_up_bias + (size_t)e * (size_t)(2 * I), X, m, GU);
        if (st) goto done;
        for (int64_t r = 0; r < m; r++)
            for (int64_t i = 0; i < I; i++) {
                float g = GU[r * 2 * I + 2 * i], u = GU[r * 2 * I + 2 * i + 1];
                if (a->round_bf16) { g = round_bf(g); u = round_bf(u); }
                float v = dpb_swiglu_clamped(g, u, a->limit, a->alpha);
                ACT[r * I + i] = a->round_bf16 ? round_bf(v) : v;
            }
        st = cpu_linear(b, &a->down[e], a->down_bias + (size_t)e * (size_t)H, ACT, m, DN);
        if (st) goto done;
        for (int64_t r = 0; r < m; r++) {
            float *o = a->out + rows[r] * H;
            const float *d = DN + r * H;
            for (int64_t h = 0; h < H; h++) o[h] += (a->round_bf16 ? round_bf(d[h]) : d[h]) * rw[r];
        }
    }
done:
    free(rows); free(rw); free(X); free(GU); free(ACT); free(DN);
    return st;
}

static dpb_status cpu_rope(dpb_backend *b, float *x, int64_t n, int64_t heads, const int64_t *pos,
                           const dpb_rope_table *rt)
{
    int nt = nthreads(b);
    int64_t hd = rt->head_dim;
    dpb_backend rb = *b;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && n > 1)
    for (int64_t t = 0; t < n; t++) dpb_ref_rope(&rb, x + t * heads * hd, 1, heads, pos + t, rt);
    return DPB_OK;
}

static dpb_status cpu_rmsnorm(dpb_backend *b, const float *x, const uint16_t *w, int64_t n, int64_t dim, float eps,
                              float *y)
{
    int nt = nthreads(b);
    dpb_backend rb = *b;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && n > 8)
    for (int64_t t = 0; t < n; t++) dpb_ref_rmsnorm(&rb, x + t * dim, w, 1, dim, eps, y + t * dim);
    return DPB_OK;
}

static const dpb_backend_ops k_cpu_ops = {
    .name = "cpu",
    .alloc = dpb_cpu_alloc,
    .free = dpb_cpu_free,
    .upload = dpb_cpu_copy,
    .download = dpb_cpu_copy,
    .copy = dpb_cpu_copy,
    .sync = dpb_cpu_sync,
    .map_host = dpb_cpu_map_host,
    .embed = dpb_ref_embed,
    .linear = cpu_linear,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .kv_write = dpb_ref_kv_write,
    .to_kv = dpb_ref_to_kv,
    .router_topk = dpb_ref_router_topk,
    .moe = cpu_moe,
    .swiglu = dpb_ref_swiglu,
    .add = dpb_ref_add,
    .round_bf16 = dpb_ref_round_bf16,
    .attention_batch = dpb_attention_batch_rows,
};

const dpb_backend_ops *dpb_backend_cpu_ops(void) { return &k_cpu_ops; }

dpb_status dpb_backend_open(const char *name, int threads, dpb_backend **out)
{
    *out = NULL;
    if (threads < 0) return dpb_error_set(DPB_E_ARG, "backend: thread count %d is negative", threads);
    const dpb_backend_ops *ops;
    bool staged = name && strcmp(name, "cpu-staged") == 0; /* tests: engine paths of device backends */
    if (!name || strcmp(name, "cpu") == 0 || staged) ops = &k_cpu_ops;
    else if (strcmp(name, "ref") == 0) ops = dpb_backend_ref_ops();
    else if (strcmp(name, "cuda") == 0) return dpb_backend_cuda_open(0, out);
    else return dpb_error_set(DPB_E_ARG, "unknown backend '%s' (cpu, ref)", name);
    dpb_backend *b = calloc(1, sizeof *b);
    cpu_impl *ci = calloc(1, sizeof *ci);
    if (!b || !ci) {
        free(b); free(ci);
        return dpb_error_set(DPB_E_NOMEM, "backend: out of memory");
    }
    ci->k = dpb_cpu_kernels_best();
    b->ops = ops;
    b->impl = ci;
    b->threads = ops == &k_cpu_ops ? (threads > 0 ? threads : omp_get_num_procs()) : 1;
    b->simd = ops == &k_cpu_ops ? ci->k->name : "scalar";
    b->host_memory = !staged;
    *out = b;
    return DPB_OK;
}

void dpb_backend_close(dpb_backend *b)
{
    if (!b) return;
    if (b->ops && b->ops->destroy) b->ops->destroy(b);
    free(b->impl);
    free(b);
}

dpb_status dpb_cpu_copy_bandwidth(size_t bytes, int reps, double *gbps)
{
    *gbps = 0;
    if (bytes < 4096 || reps < 1) return dpb_error_set(DPB_E_ARG, "copy bandwidth: need >= 4096 bytes and 1 rep");
    char *a = NULL, *c = NULL;
    if (posix_memalign((void **)&a, 64, bytes) || posix_memalign((void **)&c, 64, bytes)) {
        free(a);
        return dpb_error_set(DPB_E_NOMEM, "copy bandwidth: cannot allocate 2 x %zu bytes", bytes);
    }
    int nt = omp_get_num_procs();
    size_t chunk = (bytes / (size_t)nt + 63) & ~(size_t)63;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int i = 0; i < nt; i++) {
        size_t o = (size_t)i * chunk;
        if (o < bytes) {
            memset(a + o, 1, o + chunk < bytes ? chunk : bytes - o);
            memset(c + o, 0, o + chunk < bytes ? chunk : bytes - o);
        }
    }
    double best = 0;
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = dpb_now_ns();
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int i = 0; i < nt; i++) {
            size_t o = (size_t)i * chunk;
            if (o < bytes) memcpy(c + o, a + o, o + chunk < bytes ? chunk : bytes - o);
        }
        uint64_t dt = dpb_now_ns() - t0;
        double g = dt ? 2.0 * (double)bytes / (double)dt : 0;
        if (g > best) best = g;
    }
    free(a);
    free(c);
    *gbps = best;
    return DPB_OK;
}
