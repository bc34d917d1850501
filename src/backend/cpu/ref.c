/* The reference backend: plain single-threaded C for every operation of
 * backend.h.  Slow and obvious; the tests hold the fast kernels to it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "format/config.h"
#include "format/dtype.h"

const float dpb_fp4_e2m1[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

float dpb_e8m0_to_f32(uint8_t s)
{
    if (s == 255) return NAN;
    return ldexpf(1.0f, (int)s - 127);
}

float dpb_weight_get(const dpb_weight *w, int64_t o, int64_t i)
{
    switch (w->fmt) {
    case DPB_W_F32: {
        const float *d = w->data;
        return w->transposed ? d[i * w->out + o] : d[o * w->in + i];
    }
    case DPB_W_BF16: {
        const uint16_t *d = w->data;
        return dpb_bf16_to_f32(w->transposed ? d[i * w->out + o] : d[o * w->in + i]);
    }
    case DPB_W_MXFP4: {
        const uint8_t *blk = w->data;
        int64_t nb = w->in / 32, b = i / 32, j = i % 32;
        uint8_t byte = blk[(o * nb + b) * 16 + j / 2];
        int nib = (j & 1) ? byte >> 4 : byte & 15;
        return dpb_fp4_e2m1[nib] * dpb_e8m0_to_f32(w->scales[o * nb + b]);
    }
    }
    return 0.0f;
}

/* ---- memory ---- */
dpb_status dpb_cpu_alloc(dpb_backend *b, size_t bytes, void **out)
{
    (void)b;
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes || posix_memalign(&p, 64, rounded) != 0)
        return dpb_error_set(DPB_E_NOMEM, "cpu backend: cannot allocate %zu bytes", bytes);
    *out = p;
    return DPB_OK;
}
void dpb_cpu_free(dpb_backend *b, void *p) { (void)b; free(p); }
dpb_status dpb_cpu_copy(dpb_backend *b, void *dst, const void *src, size_t bytes)
{
    (void)b;
    if (bytes) memmove(dst, src, bytes);
    return DPB_OK;
}
dpb_status dpb_cpu_sync(dpb_backend *b) { (void)b; return DPB_OK; }
dpb_status dpb_cpu_map_host(dpb_backend *b, const void *host, size_t bytes, const void **out)
{
    (void)b;
    (void)bytes;
    *out = host;
    return DPB_OK;
}

/* ---- reference ops ---- */
dpb_status dpb_ref_embed(dpb_backend *b, const dpb_weight *table, const int32_t *ids, int64_t n, float *out)
{
    (void)b;
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < table->in; i++) out[t * table->in + i] = dpb_weight_get(table, ids[t], i);
    return DPB_OK;
}

static dpb_status ref_linear(dpb_backend *b, const dpb_weight *w, const uint16_t *bias, const float *x, int64_t n,
                             float *y)
{
    (void)b;
    for (int64_t t = 0; t < n; t++)
        for (int64_t o = 0; o < w->out; o++) {
            double s = 0;
            for (int64_t i = 0; i < w->in; i++) s += (double)dpb_weight_get(w, o, i) * x[t * w->in + i];
            if (bias) s += dpb_bf16_to_f32(bias[o]);
            y[t * w->out + o] = (float)s;
        }
    return DPB_OK;
}

dpb_status dpb_ref_rmsnorm(dpb_backend *b, const float *x, const uint16_t *w, int64_t n, int64_t dim, float eps,
                           float *y)
{
    (void)b;
    for (int64_t t = 0; t < n; t++) {
        const float *xr = x + t * dim;
        float *yr = y + t * dim;
        float ss = 0;
        for (int64_t i = 0; i < dim; i++) ss += xr[i] * xr[i];
        float r = 1.0f / sqrtf(ss / (float)dim + eps);
        for (int64_t i = 0; i < dim; i++) yr[i] = dpb_bf16_to_f32(w[i]) * (xr[i] * r);
    }
    return DPB_OK;
}

dpb_status dpb_ref_rope(dpb_backend *b, float *x, int64_t n, int64_t heads, const int64_t *pos,
                        const dpb_rope_table *rt)
{
    (void)b;
    int64_t hd = rt->head_dim, half = hd / 2;
    float c[DPB_ROPE_MAX_HALF], s[DPB_ROPE_MAX_HALF];
    for (int64_t t = 0; t < n; t++) {
        for (int64_t i = 0; i < half; i++) {
            float ang = (float)pos[t] * rt->inv_freq[i];
            c[i] = (float)cos((double)ang) * rt->attention_scaling;
            s[i] = (float)sin((double)ang) * rt->attention_scaling;
        }
        for (int64_t h = 0; h < heads; h++) {
            float *v = x + (t * heads + h) * hd;
            for (int64_t i = 0; i < half; i++) {
                float a = v[i], bb = v[i + half];
                v[i] = a * c[i] - bb * s[i];
                v[i + half] = bb * c[i] + a * s[i];
            }
        }
    }
    return DPB_OK;
}

static inline float kv_get(const void *base, dpb_kv_dtype dt, int64_t idx)
{
    if (dt == DPB_KV_FP8) return dpb_fp8e4m3_to_f32(((const uint8_t *)base)[idx]);
    return dt == DPB_KV_F32 ? ((const float *)base)[idx] : dpb_bf16_to_f32(((const uint16_t *)base)[idx]);
}

/* Pointer to the key/value row of position p for row t's attention. */
const void *dpb_attn_row(const dpb_attn_args *a, bool value, int64_t p)
{
    size_t es = dpb_kv_dtype_size(a->kv_dtype);
    int64_t row = a->kv_heads * a->head_dim;
    if (p >= a->pos0) return (const char *)(value ? a->v_new : a->k_new) + (size_t)((p - a->pos0) * row) * es;
    return (const char *)(value ? a->v_cache : a->k_cache) + (size_t)((p % a->slots) * row) * es;
}

static dpb_status ref_attention(dpb_backend *b, const dpb_attn_args *a)
{
    (void)b;
    int64_t hd = a->head_dim, group = a->heads / a->kv_heads;
    int64_t maxk = a->pos0 + a->n;
    float *sc = malloc((size_t)maxk * sizeof *sc);
    if (!sc) return dpb_error_set(DPB_E_NOMEM, "attention: out of memory");
    for (int64_t t = 0; t < a->n; t++) {
        int64_t p = a->pos0 + t;
        int64_t lo = a->window > 0 && p - a->window + 1 > 0 ? p - a->window + 1 : 0;
        for (int64_t h = 0; h < a->heads; h++) {
            int64_t kh = h / group;
            const float *q = a->q + (t * a->heads + h) * hd;
            float mx = -INFINITY;
            for (int64_t j = lo; j <= p; j++) {
                const void *k = dpb_attn_row(a, false, j);
                float s = 0;
                for (int64_t d = 0; d < hd; d++) s += q[d] * kv_get(k, a->kv_dtype, kh * hd + d);
                s *= a->scale;
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
            float *o = a->out + (t * a->heads + h) * hd;
            for (int64_t d = 0; d < hd; d++) o[d] = 0;
            for (int64_t j = lo; j <= p; j++) {
                const void *v = dpb_attn_row(a, true, j);
                float w = sc[j] / den;
                for (int64_t d = 0; d < hd; d++) o[d] += w * kv_get(v, a->kv_dtype, kh * hd + d);
            }
            if (a->round_out)
                for (int64_t d = 0; d < hd; d++) o[d] = dpb_bf16_to_f32(dpb_f32_to_bf16(o[d]));
        }
    }
    free(sc);
    return DPB_OK;
}

dpb_status dpb_ref_kv_write(dpb_backend *b, void *k_cache, void *v_cache, int64_t slots, int64_t row_elems,
                            dpb_kv_dtype dt, const void *k_new, const void *v_new, int64_t n, int64_t pos0)
{
    (void)b;
    size_t rb = (size_t)row_elems * dpb_kv_dtype_size(dt);
    int64_t first = n > slots ? n - slots : 0;
    for (int64_t t = first; t < n; t++) {
        int64_t s = (pos0 + t) % slots;
        memcpy((char *)k_cache + (size_t)s * rb, (const char *)k_new + (size_t)t * rb, rb);
        memcpy((char *)v_cache + (size_t)s * rb, (const char *)v_new + (size_t)t * rb, rb);
    }
    return DPB_OK;
}

dpb_status dpb_ref_to_kv(dpb_backend *b, const float *src, int64_t n, dpb_kv_dtype dt, void *dst)
{
    (void)b;
    if (dt == DPB_KV_F32) {
        if (dst != src) memmove(dst, src, (size_t)n * 4);
    } else if (dt == DPB_KV_FP8) {
        uint8_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = dpb_f32_to_fp8e4m3(src[i]);
    } else {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = dpb_f32_to_bf16(src[i]);
    }
    return DPB_OK;
}

dpb_status dpb_ref_router_topk(dpb_backend *b, const float *logits, int64_t n, int64_t E, int64_t k, int32_t *idx,
                               float *wts)
{
    (void)b;
    if (k > 64 || k > E || k < 1) return dpb_error_set(DPB_E_RANGE, "router: top-k %lld of %lld experts", (long long)k, (long long)E);
    for (int64_t t = 0; t < n; t++) {
        const float *l = logits + t * E;
        int32_t *ix = idx + t * k;
        float *w = wts + t * k;
        for (int64_t j = 0; j < k; j++) {
            int64_t best = -1;
            for (int64_t e = 0; e < E; e++) {
                bool used = false;
                for (int64_t m = 0; m < j; m++) used |= ix[m] == e;
                if (used) continue;
                if (best < 0 || l[e] > l[best]) best = e;
            }
            ix[j] = (int32_t)best;
            w[j] = l[best];
        }
        float mx = w[0], den = 0;
        for (int64_t j = 0; j < k; j++) {
            w[j] = expf(w[j] - mx);
            den += w[j];
        }
        for (int64_t j = 0; j < k; j++) w[j] /= den;
    }
    return DPB_OK;
}

static inline float round_bf(float x) { return dpb_bf16_to_f32(dpb_f32_to_bf16(x)); }

float dpb_swiglu_clamped(float g, float u, float limit, float alpha)
{
    if (g > limit) g = limit;
    if (u > limit) u = limit;
    if (u < -limit) u = -limit;
    float glu = g / (1.0f + expf(-alpha * g));
    return glu * (u + 1.0f);
}

static dpb_status ref_moe(dpb_backend *b, const dpb_moe_args *a)
{
    int64_t H = a->hidden, I = a->inter;
    float *gu = malloc((size_t)(2 * I) * sizeof *gu), *act = malloc((size_t)I * sizeof *act),
          *dn = malloc((size_t)H * sizeof *dn);
    if (!gu || !act || !dn) {
        free(gu); free(act); free(dn);
        return dpb_error_set(DPB_E_NOMEM, "moe: out of memory");
    }
    for (int64_t t = 0; t < a->n; t++) {
        float *o = a->out + t * H;
        for (int64_t h = 0; h < H; h++) o[h] = 0;
        for (int64_t j = 0; j < a->top_k; j++) {
            int32_t e = a->idx[t * a->top_k + j];
            float w = a->wts[t * a->top_k + j];
            ref_linear(b, &a->gate_up[e], a->gate_up_bias + (size_t)e * (size_t)(2 * I), a->x + t * H, 1, gu);
            if (a->round_bf16)
                for (int64_t i = 0; i < 2 * I; i++) gu[i] = round_bf(gu[i]);
            for (int64_t i = 0; i < I; i++) {
                act[i] = dpb_swiglu_clamped(gu[2 * i], gu[2 * i + 1], a->limit, a->alpha);
                if (a->round_bf16) act[i] = round_bf(act[i]);
            }
            ref_linear(b, &a->down[e], a->down_bias + (size_t)e * (size_t)H, act, 1, dn);
            for (int64_t h = 0; h < H; h++) o[h] += (a->round_bf16 ? round_bf(dn[h]) : dn[h]) * w;
        }
    }
    free(gu); free(act); free(dn);
    return DPB_OK;
}

dpb_status dpb_ref_swiglu(dpb_backend *b, const float *gate, const float *up, int64_t n, int64_t I, float *out)
{
    (void)b;
    for (int64_t i = 0; i < n * I; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
    return DPB_OK;
}

dpb_status dpb_ref_add(dpb_backend *b, float *y, const float *x, int64_t n)
{
    (void)b;
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
    return DPB_OK;
}

dpb_status dpb_ref_round_bf16(dpb_backend *b, float *x, int64_t n)
{
    (void)b;
    for (int64_t i = 0; i < n; i++) x[i] = round_bf(x[i]);
    return DPB_OK;
}

dpb_status dpb_attention_batch_rows(dpb_backend *b, const dpb_attn_batch_args *a)
{
    if (a->n < 0 || a->heads < 1 || a->kv_heads < 1 || a->head_dim < 1 || a->slots < 1)
        return dpb_error_set(DPB_E_ARG, "attention (batch): bad shape");
    const int64_t qd = a->heads * a->head_dim, kvd = a->kv_heads * a->head_dim;
    const size_t es = dpb_kv_dtype_size(a->kv_dtype);
    for (int64_t r = 0; r < a->n; r++) {
        const int64_t p = a->pos[r];
        if (p < 0 || p > a->max_pos)
            return dpb_error_set(DPB_E_RANGE, "attention (batch): row %lld position %lld is outside [0, %lld]",
                                 (long long)r, (long long)p, (long long)a->max_pos);
        void *kc = a->k_tab[a->seq[r]], *vc = a->v_tab[a->seq[r]];
        const char *kn = (const char *)a->k_new + (size_t)(r * kvd) * es, *vn = (const char *)a->v_new + (size_t)(r * kvd) * es;
        dpb_attn_args one = {1, p, a->heads, a->kv_heads, a->head_dim, a->q + r * qd, kn, vn, kc, vc, a->slots,
                             a->window, a->kv_dtype, a->sinks, a->scale, a->out + r * qd, NULL, a->round_out};
        dpb_status st = b->ops->attention(b, &one);
        if (!st) st = b->ops->kv_write(b, kc, vc, a->slots, kvd, a->kv_dtype, kn, vn, 1, p);
        if (st) return st;
    }
    return DPB_OK;
}

dpb_status dpb_backend_linear_multi(dpb_backend *b, int nw, const dpb_weight *const *w, const uint16_t *const *bias,
                                    const float *x, int64_t n, bool round, float *const *y)
{
    if (nw < 1 || nw > 3) return dpb_error_set(DPB_E_ARG, "linear: %d matrices in one call (1..3)", nw);
    if (b->ops->linear_multi) {
        dpb_status st = b->ops->linear_multi(b, nw, w, bias, x, n, round, y);
        if (st != DPB_E_UNSUPPORTED) return st;
        dpb_error_clear();
    }
    for (int i = 0; i < nw; i++) {
        dpb_status st = b->ops->linear(b, w[i], bias ? bias[i] : NULL, x, n, y[i]);
        if (!st && round) st = b->ops->round_bf16(b, y[i], n * w[i]->out);
        if (st) return st;
    }
    return DPB_OK;
}

dpb_status dpb_backend_router(dpb_backend *b, const dpb_weight *w, const uint16_t *bias, const float *x, int64_t n,
                              int64_t k, bool round, float *logits, int32_t *idx, float *wts)
{
    if (b->ops->router) {
        dpb_status st = b->ops->router(b, w, bias, x, n, k, round, logits, idx, wts);
        if (st != DPB_E_UNSUPPORTED) return st;
        dpb_error_clear();
    }
    dpb_status st = b->ops->linear(b, w, bias, x, n, logits);
    if (!st && round) st = b->ops->round_bf16(b, logits, n * w->out);
    if (!st) st = b->ops->router_topk(b, logits, n, w->out, k, idx, wts);
    return st;
}

static const dpb_backend_ops k_ref_ops = {
    .name = "ref",
    .alloc = dpb_cpu_alloc,
    .free = dpb_cpu_free,
    .upload = dpb_cpu_copy,
    .download = dpb_cpu_copy,
    .copy = dpb_cpu_copy,
    .sync = dpb_cpu_sync,
    .map_host = dpb_cpu_map_host,
    .embed = dpb_ref_embed,
    .linear = ref_linear,
    .rmsnorm = dpb_ref_rmsnorm,
    .rope = dpb_ref_rope,
    .attention = ref_attention,
    .kv_write = dpb_ref_kv_write,
    .to_kv = dpb_ref_to_kv,
    .router_topk = dpb_ref_router_topk,
    .moe = ref_moe,
    .swiglu = dpb_ref_swiglu,
    .add = dpb_ref_add,
    .round_bf16 = dpb_ref_round_bf16,
    .attention_batch = dpb_attention_batch_rows,
};

const dpb_backend_ops *dpb_backend_ref_ops(void) { return &k_ref_ops; }

/* ---- RoPE tables, as transformers' modeling_rope_utils computes them ---- */
static double yarn_corr_dim(double rot, double dim, double base, double maxpos)
{
    return (dim * log(maxpos / (rot * 2.0 * M_PI))) / (2.0 * log(base));
}

dpb_status dpb_rope_table_init(const struct dpb_rope *r, int64_t head_dim, int64_t max_position, dpb_rope_table *out)
{
    memset(out, 0, sizeof *out);
    if (head_dim < 2 || head_dim % 2 || head_dim / 2 > DPB_ROPE_MAX_HALF)
        return dpb_error_set(DPB_E_UNSUPPORTED, "rope: head_dim %lld is not supported", (long long)head_dim);
    if (!(r->theta > 0)) return dpb_error_set(DPB_E_FORMAT, "rope: rope_theta must be positive");
    int64_t half = head_dim / 2;
    out->head_dim = head_dim;
    out->attention_scaling = 1.0f;
    /* base ** (arange(0, dim, 2).float() / dim), in fp32 like torch. */
    float pf[DPB_ROPE_MAX_HALF];
    for (int64_t i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        pf[i] = (float)pow(r->theta, (double)e);
        out->inv_freq[i] = 1.0f / pf[i];
    }
    switch (r->type) {
    case DPB_ROPE_DEFAULT:
        break;
    case DPB_ROPE_LINEAR:
        if (!(r->factor > 0)) return dpb_error_set(DPB_E_FORMAT, "rope: linear factor must be positive");
        for (int64_t i = 0; i < half; i++) out->inv_freq[i] /= (float)r->factor;
        break;
    case DPB_ROPE_LLAMA3: {
        double f = r->factor, lf = r->low_freq_factor, hf = r->high_freq_factor;
        double om = (double)r->original_max_position;
        if (!(f > 0) || !(lf > 0) || !(hf > lf) || !(om > 0))
            return dpb_error_set(DPB_E_FORMAT, "rope: llama3 parameters are inconsistent");
        double low_wl = om / lf, high_wl = om / hf;
        for (int64_t i = 0; i < half; i++) {
            double inv = out->inv_freq[i], wl = 2 * M_PI / inv;
            double v;
            if (wl > low_wl) v = inv / f;
            else if (wl < high_wl) v = inv;
            else {
                double sm = (om / wl - lf) / (hf - lf);
                v = (1 - sm) * inv / f + sm * inv;
            }
            out->inv_freq[i] = (float)v;
        }
        break;
    }
    case DPB_ROPE_YARN: {
        double factor = r->factor;
        double orig = (double)(r->original_max_position > 0 ? r->original_max_position : max_position);
        if (r->original_max_position > 0 && max_position > 0) factor = (double)max_position / orig;
        if (!(factor > 0)) return dpb_error_set(DPB_E_FORMAT, "rope: yarn factor must be positive");
        double att = r->attention_factor > 0 ? r->attention_factor : (factor <= 1 ? 1.0 : 0.1 * log(factor) + 1.0);
        double bf = r->beta_fast > 0 ? r->beta_fast : 32, bs = r->beta_slow > 0 ? r->beta_slow : 1;
        double lo = yarn_corr_dim(bf, (double)head_dim, r->theta, orig);
        double hi = yarn_corr_dim(bs, (double)head_dim, r->theta, orig);
        if (r->truncate) {
            lo = floor(lo);
            hi = ceil(hi);
        }
        if (lo < 0) lo = 0;
        if (hi > (double)(head_dim - 1)) hi = (double)(head_dim - 1);
        if (lo == hi) hi += 0.001;
        for (int64_t i = 0; i < half; i++) {
            float ramp = (float)(((double)(float)i - lo) / (hi - lo));
            if (ramp < 0) ramp = 0;
            if (ramp > 1) ramp = 1;
            float extra = 1.0f - ramp;
            float inv_ex = 1.0f / pf[i];
            float inv_in = 1.0f / ((float)factor * pf[i]);
            out->inv_freq[i] = inv_in * (1.0f - extra) + inv_ex * extra;
        }
        out->attention_scaling = (float)att;
        break;
    }
    }
    return DPB_OK;
}
