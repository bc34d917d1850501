/* Every operation of a device backend against the reference backend on
 * fresh random inputs, outputs poisoned with NaN beforehand.  Included by
 * dev/cuda/backend_check.c and tests/test_cuda_backend.c (one translation
 * unit each; everything here is static).
 *
 * The error of a result is max|got - ref| / max|ref| over the output (NaN
 * anywhere fails); bounds: 1e-2 where an operand is bf16 or MXFP4 and the
 * device may round differently, 1e-5 where everything is fp32, 0 where the
 * result must be bit-identical (embed, kv_write, to_kv, round, router ids). */
#ifndef DPB_BACKEND_OPS_CHECK_H
#define DPB_BACKEND_OPS_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend/backend.h"
#include "format/dtype.h"

typedef struct opc {
    dpb_backend *dev, *ref;
    uint64_t rng;
    int checks, fails;
    FILE *log;
} opc;

static uint64_t opc_next(opc *c)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return c->rng;
}
static float opc_f(opc *c) { return (float)((double)(opc_next(c) >> 11) / 9007199254740992.0 * 2.0 - 1.0); }
static uint16_t opc_bf(opc *c, float amp) { return dpb_f32_to_bf16(opc_f(c) * amp); }

static float *opc_fv(opc *c, size_t n, float amp)
{
    float *v = malloc(n * sizeof *v + 16);
    for (size_t i = 0; i < n; i++) v[i] = opc_f(c) * amp;
    return v;
}
static uint16_t *opc_bv(opc *c, size_t n, float amp)
{
    uint16_t *v = malloc(n * sizeof *v + 16);
    for (size_t i = 0; i < n; i++) v[i] = opc_bf(c, amp);
    return v;
}

/* Device copy of host bytes (NULL on failure, counted as a failed check). */
static void *opc_up(opc *c, const void *h, size_t bytes)
{
    void *d = NULL;
    if (c->dev->ops->alloc(c->dev, bytes, &d) || c->dev->ops->upload(c->dev, d, h, bytes)) {
        fprintf(c->log, "  device alloc/upload of %zu bytes: %s\n", bytes, dpb_error_message());
        c->fails++;
        return NULL;
    }
    return d;
}
/* A device buffer full of NaN (0xff bytes). */
static void *opc_nan(opc *c, size_t bytes)
{
    unsigned char *h = malloc(bytes);
    memset(h, 0xff, bytes);
    void *d = opc_up(c, h, bytes);
    free(h);
    return d;
}
static void opc_free(opc *c, void *d)
{
    if (d) c->dev->ops->free(c->dev, d);
}

/* count random values in [-amp, amp) as KV bytes of dt (*bytes) and the f32 values those bytes hold (*vals):
 * bf16 and f32 through the reference's to_kv, FP8 through the host conversion of format/dtype.h. */
static void opc_kv_rand(opc *c, size_t count, dpb_kv_dtype dt, float amp, void **bytes, float **vals)
{
    float *x = opc_fv(c, count, amp);
    *bytes = malloc(count * dpb_kv_dtype_size(dt) + 16);
    *vals = malloc(count * 4 + 16);
    if (dt == DPB_KV_FP8) {
        for (size_t i = 0; i < count; i++) {
            ((uint8_t *)*bytes)[i] = dpb_f32_to_fp8e4m3(x[i]);
            (*vals)[i] = dpb_fp8e4m3_to_f32(((uint8_t *)*bytes)[i]);
        }
    } else {
        c->ref->ops->to_kv(c->ref, x, (int64_t)count, dt, *bytes);
        for (size_t i = 0; i < count; i++)
            (*vals)[i] = dt == DPB_KV_F32 ? ((float *)*bytes)[i] : dpb_bf16_to_f32(((uint16_t *)*bytes)[i]);
    }
    free(x);
}

static int opc_st(opc *c, const char *name, dpb_status s)
{
    if (s) {
        fprintf(c->log, "FAIL %-44s %s\n", name, dpb_error_message());
        c->checks++;
        c->fails++;
        return 0;
    }
    return 1;
}

/* Compares n floats of device memory with the reference. */
static double opc_cmp(opc *c, const char *name, const float *dev, const float *ref, size_t n, double tol)
{
    float *h = malloc(n * sizeof *h + 16);
    double md = 0, mr = 0;
    int nan = 0;
    c->checks++;
    if (c->dev->ops->sync(c->dev) || c->dev->ops->download(c->dev, h, dev, n * sizeof *h)) {
        fprintf(c->log, "FAIL %-44s %s\n", name, dpb_error_message());
        c->fails++;
        free(h);
        return INFINITY;
    }
    for (size_t i = 0; i < n; i++) {
        if (isnan(h[i]) != isnan(ref[i])) nan++;
        if (isnan(ref[i])) continue;
        double d = fabs((double)h[i] - ref[i]);
        if (!(d <= md)) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    double rel = mr > 0 ? md / mr : md;
    int ok = !nan && rel <= tol;
    fprintf(c->log, "%s %-44s rel %.3g (bound %.0e)%s\n", ok ? "ok  " : "FAIL", name, rel, tol, nan ? " NaN!" : "");
    if (!ok) c->fails++;
    free(h);
    return nan ? INFINITY : rel;
}
/* Bit-identical comparison of device bytes. */
static void opc_same(opc *c, const char *name, const void *dev, const void *ref, size_t bytes)
{
    unsigned char *h = malloc(bytes + 16);
    c->checks++;
    int ok = !c->dev->ops->sync(c->dev) && !c->dev->ops->download(c->dev, h, dev, bytes) && memcmp(h, ref, bytes) == 0;
    size_t first = 0;
    while (ok == 0 && first < bytes && h[first] == ((const unsigned char *)ref)[first]) first++;
    fprintf(c->log, "%s %-44s %s\n", ok ? "ok  " : "FAIL", name, ok ? "bit-identical" : "differs");
    if (!ok) {
        fprintf(c->log, "     first differing byte %zu of %zu\n", first, bytes);
        c->fails++;
    }
    free(h);
}

/* The device's out (n floats) rounded to bf16 on the host: what an operation asked to round its output (round_out)
 * must give bit for bit.  NULL when the download fails (counted as a failed check). */
static float *opc_rounded_copy(opc *c, const char *name, const float *dev, size_t n)
{
    float *h = malloc(n * sizeof *h + 16);
    if (c->dev->ops->sync(c->dev) || c->dev->ops->download(c->dev, h, dev, n * sizeof *h)) {
        fprintf(c->log, "FAIL %-44s %s\n", name, dpb_error_message());
        c->checks++;
        c->fails++;
        free(h);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) h[i] = dpb_bf16_to_f32(dpb_f32_to_bf16(h[i]));
    return h;
}

static void opc_embed(opc *c)
{
    int64_t V = 300, D = 264, n = 5;
    uint16_t *tab = opc_bv(c, (size_t)(V * D), 1);
    int32_t ids[5] = {0, 299, 17, 17, 150};
    float *ref = malloc((size_t)(n * D) * 4);
    dpb_weight wr = {DPB_W_BF16, V, D, false, tab, NULL}, wd = wr;
    c->ref->ops->embed(c->ref, &wr, ids, n, ref);
    wd.data = opc_up(c, tab, (size_t)(V * D) * 2);
    int32_t *di = opc_up(c, ids, sizeof ids);
    float *out = opc_nan(c, (size_t)(n * D) * 4);
    if (wd.data && di && out && opc_st(c, "embed", c->dev->ops->embed(c->dev, &wd, di, n, out)))
        opc_same(c, "embed bf16 [300 x 264], 5 ids", out, ref, (size_t)(n * D) * 4);
    opc_free(c, (void *)wd.data); opc_free(c, di); opc_free(c, out);
    free(tab); free(ref);
}

/* Random MXFP4 blocks with scales around 2^0. */
static void opc_mxfp4(opc *c, int64_t rows, int64_t in, uint8_t **blk, uint8_t **sc)
{
    size_t nb = (size_t)(rows * in / 32);
    *blk = malloc(nb * 16 + 16);
    *sc = malloc(nb + 16);
    for (size_t i = 0; i < nb * 16; i++) (*blk)[i] = (uint8_t)opc_next(c);
    for (size_t i = 0; i < nb; i++) (*sc)[i] = (uint8_t)(120 + opc_next(c) % 9);
}

static void opc_linear_case(opc *c, dpb_wfmt fmt, bool tr, int64_t out, int64_t in, int64_t n, bool bias, bool round_x)
{
    char name[128];
    snprintf(name, sizeof name, "linear %s%s [%lld x %lld] n=%lld%s%s", fmt == DPB_W_F32 ? "f32" : fmt == DPB_W_BF16 ? "bf16" : "mxfp4",
             tr ? " transposed" : "", (long long)out, (long long)in, (long long)n, bias ? " +bias" : "",
             round_x ? " (x bf16-exact)" : "");
    size_t we = (size_t)(out * in);
    void *wh = NULL;
    uint8_t *sc = NULL;
    size_t wbytes = 0;
    if (fmt == DPB_W_F32) { wh = opc_fv(c, we, 0.05f); wbytes = we * 4; }
    else if (fmt == DPB_W_BF16) { wh = opc_bv(c, we, 0.05f); wbytes = we * 2; }
    else { opc_mxfp4(c, out, in, (uint8_t **)&wh, &sc); wbytes = we / 2; }
    uint16_t *bh = bias ? opc_bv(c, (size_t)out, 1) : NULL;
    float *x = opc_fv(c, (size_t)(n * in), 1);
    float *ref = malloc((size_t)(n * out) * 4);
    dpb_weight wr = {fmt, out, in, tr, wh, sc}, wd = wr;
    if (round_x) c->ref->ops->round_bf16(c->ref, x, n * in);
    c->ref->ops->linear(c->ref, &wr, bh, x, n, ref);
    wd.data = opc_up(c, wh, wbytes);
    wd.scales = sc ? opc_up(c, sc, we / 32) : NULL;
    uint16_t *bd = bh ? opc_up(c, bh, (size_t)out * 2) : NULL;
    float *xdev = opc_up(c, x, (size_t)(n * in) * 4);
    float *y = opc_nan(c, (size_t)(n * out) * 4);
    int ok = wd.data && xdev && y;
    if (ok && round_x) ok = opc_st(c, name, c->dev->ops->round_bf16(c->dev, xdev, n * in));
    if (ok && opc_st(c, name, c->dev->ops->linear(c->dev, &wd, bd, xdev, n, y)))
        opc_cmp(c, name, y, ref, (size_t)(n * out), fmt == DPB_W_F32 ? 1e-5 : 1e-2);
    opc_free(c, (void *)wd.data); opc_free(c, (void *)wd.scales); opc_free(c, bd); opc_free(c, xdev); opc_free(c, y);
    free(wh); free(sc); free(bh); free(x); free(ref);
}

static void opc_linear(opc *c, int big)
{
    if (big) {
        opc_linear_case(c, DPB_W_BF16, false, 4096, 2880, 1, true, false);
        opc_linear_case(c, DPB_W_BF16, false, 512, 2880, 3, true, false);
        opc_linear_case(c, DPB_W_BF16, false, 2880, 4096, 4, false, false);
        opc_linear_case(c, DPB_W_BF16, false, 1000, 2880, 7, true, false);
        opc_linear_case(c, DPB_W_BF16, false, 1000, 2880, 33, false, true);
    }
    opc_linear_case(c, DPB_W_BF16, false, 201, 64, 1, true, false);
    opc_linear_case(c, DPB_W_BF16, false, 300, 100, 5, true, false);
    opc_linear_case(c, DPB_W_BF16, false, 128, 100, 2, false, false);
    opc_linear_case(c, DPB_W_BF16, false, 96, 256, 48, true, false);
    opc_linear_case(c, DPB_W_BF16, false, 96, 256, 48, true, true);
    opc_linear_case(c, DPB_W_BF16, true, 576, 128, 1, true, false);
    opc_linear_case(c, DPB_W_BF16, true, 576, 128, 9, true, false);
    opc_linear_case(c, DPB_W_F32, false, 64, 96, 3, true, false);
    opc_linear_case(c, DPB_W_F32, true, 64, 96, 3, false, false);
    opc_linear_case(c, DPB_W_MXFP4, false, 256, 512, 1, true, false);
    opc_linear_case(c, DPB_W_MXFP4, false, 250, 512, 11, false, false);
}

/* linear_multi: nw bf16 matrices sharing x (rows out[i], in), biases on some, against the reference's
 * linear (+ round_bf16) per matrix.  x_exact: x rounded to bf16 on both sides first, on the device by round_bf16
 * (as the engine's prefill q/k/v see it: the CUDA backend then adds the bias in the GEMM's epilogue). */
static void opc_linear_multi_ex(opc *c, int nw, const int64_t *out, int64_t in, int64_t n, bool round, bool x_exact)
{
    char name[128];
    snprintf(name, sizeof name, "linear_multi %d x bf16 [%lld.. x %lld] n=%lld%s%s", nw, (long long)out[0], (long long)in,
             (long long)n, round ? " round" : "", x_exact ? " +bias, x bf16-exact" : "");
    if ((!x_exact && !c->dev->ops->linear_multi) || nw < 1 || nw > 3) return;
    float *x = opc_fv(c, (size_t)(n * in), 1);
    if (x_exact) c->ref->ops->round_bf16(c->ref, x, n * in);
    dpb_weight wr[3], wd[3];
    uint16_t *wh[3] = {0}, *bh[3] = {0}, *bd[3] = {0};
    float *ref[3] = {0}, *y[3] = {0};
    const dpb_weight *wdp[3];
    const uint16_t *bdp[3];
    int ok = 1;
    for (int i = 0; i < nw; i++) {
        size_t we = (size_t)(out[i] * in);
        wh[i] = opc_bv(c, we, 0.05f);
        bh[i] = i != 1 ? opc_bv(c, (size_t)out[i], 1) : NULL; /* the second without bias */
        ref[i] = malloc((size_t)(n * out[i]) * 4);
        wr[i] = (dpb_weight){DPB_W_BF16, out[i], in, false, wh[i], NULL};
        c->ref->ops->linear(c->ref, &wr[i], bh[i], x, n, ref[i]);
        if (round) c->ref->ops->round_bf16(c->ref, ref[i], n * out[i]);
        wd[i] = wr[i];
        wd[i].data = opc_up(c, wh[i], we * 2);
        bd[i] = bh[i] ? opc_up(c, bh[i], (size_t)out[i] * 2) : NULL;
        y[i] = opc_nan(c, (size_t)(n * out[i]) * 4);
        wdp[i] = &wd[i];
        bdp[i] = bd[i];
        ok = ok && wd[i].data && y[i];
    }
    float *xdev = opc_up(c, x, (size_t)(n * in) * 4);
    /* through the helper the engine calls: shapes the backend does not fuse go one by one */
    if (ok && xdev && (!x_exact || opc_st(c, name, c->dev->ops->round_bf16(c->dev, xdev, n * in))) &&
        opc_st(c, name, dpb_backend_linear_multi(c->dev, nw, wdp, bdp, xdev, n, round, y)))
        for (int i = 0; i < nw; i++) opc_cmp(c, name, y[i], ref[i], (size_t)(n * out[i]), 1e-2);
    for (int i = 0; i < nw; i++) {
        opc_free(c, (void *)wd[i].data); opc_free(c, bd[i]); opc_free(c, y[i]);
        free(wh[i]); free(bh[i]); free(ref[i]);
    }
    opc_free(c, xdev);
    free(x);
}

static void opc_linear_multi(opc *c, int nw, const int64_t *out, int64_t in, int64_t n, bool round)
{
    opc_linear_multi_ex(c, nw, out, in, n, round, false);
}

static void opc_rmsnorm(opc *c, int64_t n, int64_t dim, bool inplace)
{
    char name[96];
    snprintf(name, sizeof name, "rmsnorm %lld x %lld%s", (long long)n, (long long)dim, inplace ? " in place" : "");
    float *x = opc_fv(c, (size_t)(n * dim), 3), *ref = malloc((size_t)(n * dim) * 4);
    uint16_t *w = opc_bv(c, (size_t)dim, 2);
    c->ref->ops->rmsnorm(c->ref, x, w, n, dim, 1e-5f, ref);
    float *xd = opc_up(c, x, (size_t)(n * dim) * 4);
    uint16_t *wd = opc_up(c, w, (size_t)dim * 2);
    float *y = inplace ? xd : opc_nan(c, (size_t)(n * dim) * 4);
    if (xd && wd && y && opc_st(c, name, c->dev->ops->rmsnorm(c->dev, xd, wd, n, dim, 1e-5f, y)))
        opc_cmp(c, name, y, ref, (size_t)(n * dim), 1e-5);
    opc_free(c, xd); opc_free(c, wd);
    if (!inplace) opc_free(c, y);
    free(x); free(ref); free(w);
}

/* Fused add + rmsnorm against the reference's separate steps. */
static void opc_add_rmsnorm(opc *c, int64_t n, int64_t dim, bool rnd, bool norm)
{
    if (!c->dev->ops->add_rmsnorm) return;
    char name[96];
    snprintf(name, sizeof name, "add_rmsnorm %lld x %lld%s%s", (long long)n, (long long)dim, rnd ? " round" : "",
             norm ? "" : " (add only)");
    size_t cnt = (size_t)(n * dim);
    float *x = opc_fv(c, cnt, 3), *r = opc_fv(c, cnt, 3), *rx = malloc(cnt * 4), *rr = malloc(cnt * 4), *ry = malloc(cnt * 4);
    uint16_t *w = opc_bv(c, (size_t)dim, 2);
    memcpy(rx, x, cnt * 4);
    memcpy(rr, r, cnt * 4);
    const dpb_backend_ops *R = c->ref->ops;
    if (rnd) R->round_bf16(c->ref, rr, (int64_t)cnt);
    R->add(c->ref, rx, rr, (int64_t)cnt);
    if (rnd) R->round_bf16(c->ref, rx, (int64_t)cnt);
    R->rmsnorm(c->ref, rx, w, n, dim, 1e-5f, ry);
    if (rnd) R->round_bf16(c->ref, ry, (int64_t)cnt);
    float *xd = opc_up(c, x, cnt * 4), *rd = opc_up(c, r, cnt * 4), *yd = opc_nan(c, cnt * 4);
    uint16_t *wd = opc_up(c, w, (size_t)dim * 2);
    if (xd && rd && yd && wd &&
        opc_st(c, name, c->dev->ops->add_rmsnorm(c->dev, xd, rd, norm ? wd : NULL, n, dim, 1e-5f, rnd, yd))) {
        opc_cmp(c, name, xd, rx, cnt, 1e-6);
        if (norm) opc_cmp(c, name, yd, ry, cnt, rnd ? 1e-2 : 1e-5);
    }
    opc_free(c, xd); opc_free(c, rd); opc_free(c, yd); opc_free(c, wd);
    free(x); free(r); free(rx); free(rr); free(ry); free(w);
}

/* A RoPE table for head_dim hd: inv_freq[i] = theta^(-2i/hd), attention scaling as given. */
static dpb_rope_table opc_rope_table(int64_t hd, float theta, float scaling)
{
    dpb_rope_table rt;
    memset(&rt, 0, sizeof rt);
    rt.head_dim = hd;
    rt.attention_scaling = scaling;
    for (int64_t i = 0; i < hd / 2; i++) rt.inv_freq[i] = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
    return rt;
}

/* Host copy of bytes of device memory (NULL when the download fails, counted as a failed check). */
static void *opc_down(opc *c, const char *name, const void *dev, size_t bytes)
{
    void *h = malloc(bytes + 16);
    if (c->dev->ops->sync(c->dev) || c->dev->ops->download(c->dev, h, dev, bytes)) {
        fprintf(c->log, "FAIL %-44s %s\n", name, dpb_error_message());
        c->checks++;
        c->fails++;
        free(h);
        return NULL;
    }
    return h;
}

/* Device buffers a[i] and b[i] of bytes[i] each (0: skipped) bit for bit, one check per pair named "name what[i]". */
static void opc_same_dev(opc *c, const char *name, void *const *a, void *const *b, const size_t *bytes,
                         const char *const *what, int n)
{
    for (int i = 0; i < n; i++) {
        if (!bytes[i]) continue;
        char n2[200];
        snprintf(n2, sizeof n2, "%s %s", name, what[i]);
        void *h = opc_down(c, n2, a[i], bytes[i]);
        if (h) opc_same(c, n2, b[i], h, bytes[i]);
        free(h);
    }
}

/* Fused q/k preparation against the reference's separate steps. */

/* qk_prep_kv against the device's own qk_prep + kv_write_at on the same inputs and caches: q, the new rows and both
 * caches bit for bit (rows at positions p0.. of a ring of slots). */
static void opc_qk_prep_kv(opc *c, int64_t n, int64_t nh, int64_t nkv, int64_t hd, bool qnorm, bool rnd, dpb_kv_dtype dt,
                           int64_t slots, int64_t p0)
{
    const dpb_backend_ops *D = c->dev->ops;
    if (!D->qk_prep_kv || !D->qk_prep || !D->kv_write_at) return;
    char name[140];
    snprintf(name, sizeof name, "qk_prep_kv n=%lld %lld/%lld hd=%lld%s%s %s slots=%lld p0=%lld", (long long)n, (long long)nh,
             (long long)nkv, (long long)hd, qnorm ? " q_norm" : "", rnd ? " round" : "", dpb_kv_dtype_name(dt),
             (long long)slots, (long long)p0);
    const dpb_rope_table rt = opc_rope_table(hd, 150000.0f, 1.1f);
    int64_t pos[64];
    for (int64_t t = 0; t < n; t++) pos[t] = p0 + t;
    size_t qc = (size_t)(n * nh * hd), kc = (size_t)(n * nkv * hd), es = dpb_kv_dtype_size(dt);
    size_t cb = (size_t)(slots * nkv * hd) * es;
    float *q = opc_fv(c, qc, 2), *k = opc_fv(c, kc, 2), *v = opc_fv(c, kc, 2);
    uint16_t *qn = opc_bv(c, (size_t)hd, 2), *kn = opc_bv(c, (size_t)hd, 2);
    unsigned char *cache = malloc(cb);
    for (size_t i = 0; i < cb; i++) cache[i] = (unsigned char)opc_next(c);
    void *d[2][7] = {{0}}; /* q, k, v, knew, vnew, k cache, v cache */
    int64_t *pd = opc_up(c, pos, (size_t)n * 8);
    uint16_t *qnd = opc_up(c, qn, (size_t)hd * 2), *knw = opc_up(c, kn, (size_t)hd * 2);
    int ok = pd && qnd && knw;
    for (int w = 0; w < 2 && ok; w++) {
        d[w][0] = opc_up(c, q, qc * 4); d[w][1] = opc_up(c, k, kc * 4); d[w][2] = opc_up(c, v, kc * 4);
        d[w][3] = opc_nan(c, kc * es); d[w][4] = opc_nan(c, kc * es);
        d[w][5] = opc_up(c, cache, cb); d[w][6] = opc_up(c, cache, cb);
        for (int i = 0; i < 7; i++) ok = ok && d[w][i];
    }
    const uint16_t *qq = qnorm ? qnd : NULL, *kk = qnorm ? knw : NULL;
    if (ok && opc_st(c, name, D->qk_prep(c->dev, d[0][0], d[0][1], d[0][2], n, nh, nkv, qq, kk, 1e-6f, pd, &rt, rnd, dt,
                                         d[0][3], d[0][4])) &&
        opc_st(c, name, D->kv_write_at(c->dev, d[0][5], d[0][6], slots, nkv * hd, dt, d[0][3], d[0][4], n, pd)) &&
        opc_st(c, name, D->qk_prep_kv(c->dev, d[1][0], d[1][1], d[1][2], n, nh, nkv, qq, kk, 1e-6f, pd, &rt, rnd, dt,
                                      d[1][3], d[1][4], d[1][5], d[1][6], slots))) {
        const size_t bytes[7] = {qc * 4, 0, 0, kc * es, kc * es, cb, cb};
        const char *what[7] = {"q", "", "", "knew", "vnew", "k cache", "v cache"};
        opc_same_dev(c, name, d[0], d[1], bytes, what, 7);
    }
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < 7; i++) opc_free(c, d[w][i]);
    opc_free(c, pd); opc_free(c, qnd); opc_free(c, knw);
    free(q); free(k); free(v); free(qn); free(kn); free(cache);
}

static void opc_qk_prep(opc *c, int64_t n, int64_t nh, int64_t nkv, int64_t hd, bool qnorm, bool rnd, dpb_kv_dtype dt)
{
    if (!c->dev->ops->qk_prep) return;
    char name[120];
    snprintf(name, sizeof name, "qk_prep n=%lld %lld/%lld heads hd=%lld%s%s %s", (long long)n, (long long)nh, (long long)nkv,
             (long long)hd, qnorm ? " q_norm" : "", rnd ? " round" : "", dpb_kv_dtype_name(dt));
    const dpb_rope_table rt = opc_rope_table(hd, 150000.0f, 1.1f);
    int64_t pos[64];
    for (int64_t t = 0; t < n; t++) pos[t] = (int64_t)(opc_next(c) % 4096);
    size_t qc = (size_t)(n * nh * hd), kc = (size_t)(n * nkv * hd), es = dpb_kv_dtype_size(dt);
    float *q = opc_fv(c, qc, 2), *k = opc_fv(c, kc, 2), *v = opc_fv(c, kc, 2);
    float *rq = malloc(qc * 4), *rk = malloc(kc * 4);
    void *rkn = malloc(kc * es), *rvn = malloc(kc * es);
    uint16_t *qn = opc_bv(c, (size_t)hd, 2), *kn = opc_bv(c, (size_t)hd, 2);
    memcpy(rq, q, qc * 4);
    memcpy(rk, k, kc * 4);
    const dpb_backend_ops *R = c->ref->ops;
    if (rnd) { R->round_bf16(c->ref, rq, (int64_t)qc); R->round_bf16(c->ref, rk, (int64_t)kc); }
    if (qnorm) {
        R->rmsnorm(c->ref, rq, qn, n * nh, hd, 1e-6f, rq);
        R->rmsnorm(c->ref, rk, kn, n * nkv, hd, 1e-6f, rk);
        if (rnd) { R->round_bf16(c->ref, rq, (int64_t)qc); R->round_bf16(c->ref, rk, (int64_t)kc); }
    }
    R->rope(c->ref, rq, n, nh, pos, &rt);
    R->rope(c->ref, rk, n, nkv, pos, &rt);
    if (rnd) R->round_bf16(c->ref, rq, (int64_t)qc);
    if (dt == DPB_KV_FP8) {
        for (size_t i = 0; i < kc; i++) {
            ((uint8_t *)rkn)[i] = dpb_f32_to_fp8e4m3(rk[i]);
            ((uint8_t *)rvn)[i] = dpb_f32_to_fp8e4m3(v[i]);
        }
    } else {
        R->to_kv(c->ref, rk, (int64_t)kc, dt, rkn);
        R->to_kv(c->ref, v, (int64_t)kc, dt, rvn);
    }
    float *qd = opc_up(c, q, qc * 4), *kd = opc_up(c, k, kc * 4), *vd = opc_up(c, v, kc * 4);
    void *knd = opc_nan(c, kc * es), *vnd = opc_nan(c, kc * es);
    int64_t *pd = opc_up(c, pos, (size_t)n * 8);
    uint16_t *qnd = opc_up(c, qn, (size_t)hd * 2), *knw = opc_up(c, kn, (size_t)hd * 2);
    if (qd && kd && vd && knd && vnd && pd && qnd && knw &&
        opc_st(c, name, c->dev->ops->qk_prep(c->dev, qd, kd, vd, n, nh, nkv, qnorm ? qnd : NULL, qnorm ? knw : NULL, 1e-6f,
                                             pd, &rt, rnd, dt, knd, vnd))) {
        opc_cmp(c, name, qd, rq, qc, rnd ? 1e-2 : 1e-5);
        if (dt == DPB_KV_F32) {
            opc_cmp(c, name, knd, rk, kc, 1e-5);
            opc_same(c, name, vnd, rvn, kc * es);
        } else {
            const bool f8 = dt == DPB_KV_FP8;
            float *kf = malloc(kc * 4);
            for (size_t i = 0; i < kc; i++)
                kf[i] = f8 ? dpb_fp8e4m3_to_f32(((uint8_t *)rkn)[i]) : dpb_bf16_to_f32(((uint16_t *)rkn)[i]);
            float *kdev = malloc(kc * 4);
            uint16_t *kb = malloc(kc * 2);
            c->dev->ops->download(c->dev, kb, knd, kc * es);
            for (size_t i = 0; i < kc; i++) kdev[i] = f8 ? dpb_fp8e4m3_to_f32(((uint8_t *)kb)[i]) : dpb_bf16_to_f32(kb[i]);
            /* compare on the host: within one bf16 step (fp8: one E4M3 step, 1/16 of the value, or 2^-9) */
            double worst = 0, mx = 0;
            int off = 0;
            for (size_t i = 0; i < kc; i++) {
                double d = fabs(kdev[i] - kf[i]);
                worst = fmax(worst, d);
                mx = fmax(mx, fabs(kf[i]));
                if (f8 && d > fabs(kf[i]) / 8 + 1.0 / 256) off++;
            }
            c->checks++;
            int ok = f8 ? off == 0 : worst <= 1e-2 * (mx > 0 ? mx : 1);
            fprintf(c->log, "%s %-44s k max diff %.3g of %.3g\n", ok ? "ok  " : "FAIL", name, worst, mx);
            c->fails += !ok;
            opc_same(c, name, vnd, rvn, kc * es);
            free(kf); free(kdev); free(kb);
        }
    }
    opc_free(c, qd); opc_free(c, kd); opc_free(c, vd); opc_free(c, knd); opc_free(c, vnd); opc_free(c, pd);
    opc_free(c, qnd); opc_free(c, knw);
    free(q); free(k); free(v); free(rq); free(rk); free(rkn); free(rvn); free(qn); free(kn);
}

static void opc_rope(opc *c, int64_t n, int64_t heads, int64_t hd, float scaling)
{
    char name[96];
    snprintf(name, sizeof name, "rope n=%lld heads=%lld head_dim=%lld", (long long)n, (long long)heads, (long long)hd);
    const dpb_rope_table rt = opc_rope_table(hd, 150000.0f, scaling);
    int64_t pos[64];
    for (int64_t t = 0; t < n; t++) pos[t] = (int64_t)(opc_next(c) % 4096);
    size_t cnt = (size_t)(n * heads * hd);
    float *x = opc_fv(c, cnt, 2), *ref = malloc(cnt * 4);
    memcpy(ref, x, cnt * 4);
    c->ref->ops->rope(c->ref, ref, n, heads, pos, &rt);
    float *xd = opc_up(c, x, cnt * 4);
    int64_t *pd = opc_up(c, pos, (size_t)n * 8);
    if (xd && pd && opc_st(c, name, c->dev->ops->rope(c->dev, xd, n, heads, pd, &rt))) opc_cmp(c, name, xd, ref, cnt, 1e-5);
    opc_free(c, xd); opc_free(c, pd);
    free(x); free(ref);
}

/* After an attention with round_out into out (device, n rows of `in` values; want: its bits on the host): a
 * linear on out, which on CUDA takes the bf16 side copy the prefill attention wrote (from 4,096 values), must
 * give the same bits as that linear on an upload of want (converted anew), and match the reference. */
static void opc_attn_side_copy(opc *c, const char *name, const float *out, const float *want, int64_t n, int64_t in)
{
    char nm[220];
    snprintf(nm, sizeof nm, "%s round_out + linear", name);
    const int64_t O = 72;
    uint16_t *wb = opc_bv(c, (size_t)(O * in), 1);
    float *ref = malloc((size_t)(n * O) * 4 + 16);
    dpb_weight wr = {DPB_W_BF16, O, in, false, wb, NULL}, wd = wr;
    c->ref->ops->linear(c->ref, &wr, NULL, want, n, ref);
    wd.data = opc_up(c, wb, (size_t)(O * in) * 2);
    float *y1 = opc_nan(c, (size_t)(n * O) * 4), *y2 = opc_nan(c, (size_t)(n * O) * 4);
    float *xf = opc_up(c, want, (size_t)(n * in) * 4);
    if (wd.data && y1 && y2 && xf && opc_st(c, nm, c->dev->ops->linear(c->dev, &wd, NULL, out, n, y1)) &&
        opc_st(c, nm, c->dev->ops->linear(c->dev, &wd, NULL, xf, n, y2))) {
        opc_cmp(c, nm, y1, ref, (size_t)(n * O), 1e-2);
        snprintf(nm, sizeof nm, "%s round_out + linear = fresh", name);
        float *h = opc_down(c, nm, y2, (size_t)(n * O) * 4);
        if (h) opc_cmp(c, nm, y1, h, (size_t)(n * O), 0.0); /* equal values (a zero's sign may differ) */
        free(h);
    }
    opc_free(c, (void *)wd.data); opc_free(c, y1); opc_free(c, y2); opc_free(c, xf);
    free(wb); free(ref);
}

/* attention_linear on the args of a round_out attention (a->out is replaced) against the reference's linear on want
 * (the rounded output) and against the device's linear on an upload of want (equal values). */
static void opc_attention_linear(opc *c, const char *name, const dpb_attn_args *a, const float *want, int64_t n, int64_t in)
{
    if (!c->dev->ops->attention_linear) return;
    char nm[220];
    snprintf(nm, sizeof nm, "%s attention_linear", name);
    const int64_t O = 72;
    uint16_t *wb = opc_bv(c, (size_t)(O * in), 1), *bh = opc_bv(c, (size_t)O, 1);
    float *ref = malloc((size_t)(n * O) * 4 + 16);
    dpb_weight wr = {DPB_W_BF16, O, in, false, wb, NULL}, wd = wr;
    c->ref->ops->linear(c->ref, &wr, bh, want, n, ref);
    wd.data = opc_up(c, wb, (size_t)(O * in) * 2);
    uint16_t *bd = opc_up(c, bh, (size_t)O * 2);
    float *o3 = opc_nan(c, (size_t)(n * in) * 4), *y1 = opc_nan(c, (size_t)(n * O) * 4), *y2 = opc_nan(c, (size_t)(n * O) * 4);
    float *xf = opc_up(c, want, (size_t)(n * in) * 4);
    dpb_attn_args g = *a;
    g.out = o3;
    if (wd.data && bd && o3 && y1 && y2 && xf && opc_st(c, nm, c->dev->ops->attention_linear(c->dev, &g, &wd, bd, y1)) &&
        opc_st(c, nm, c->dev->ops->linear(c->dev, &wd, bd, xf, n, y2))) {
        opc_cmp(c, nm, y1, ref, (size_t)(n * O), 1e-2);
        snprintf(nm, sizeof nm, "%s attention_linear = fresh", name);
        float *h = opc_down(c, nm, y2, (size_t)(n * O) * 4);
        if (h) opc_cmp(c, nm, y1, h, (size_t)(n * O), 0.0);
        free(h);
    }
    opc_free(c, (void *)wd.data); opc_free(c, bd); opc_free(c, o3); opc_free(c, y1); opc_free(c, y2); opc_free(c, xf);
    free(wb); free(bh); free(ref);
}

/* rq: q rounded to bf16 first (the reference's copy by its round_bf16, the device's by the device op, so
 * the backend knows it is bf16-exact, as after the bf16 engine's qk_prep): the tensor-core prefill path. */
static void opc_attention_q(opc *c, int64_t n, int64_t pos0, int64_t heads, int64_t kvh, int64_t hd, int64_t slots,
                            int64_t window, dpb_kv_dtype dt, bool sinks, bool rq)
{
    char name[160];
    snprintf(name, sizeof name, "attention n=%lld pos0=%lld %lld/%lld hd=%lld slots=%lld W=%lld %s%s%s", (long long)n,
             (long long)pos0, (long long)heads, (long long)kvh, (long long)hd, (long long)slots, (long long)window,
             dpb_kv_dtype_name(dt), sinks ? " sinks" : "", rq ? " q-bf16" : "");
    size_t es = dpb_kv_dtype_size(dt), row = (size_t)(kvh * hd);
    size_t qn = (size_t)(n * heads * hd);
    float *q = opc_fv(c, qn, 1), *ref = malloc(qn * 4);
    void *kn, *vn, *kc, *vc;
    float *fkn, *fvn, *fkc, *fvc;
    opc_kv_rand(c, (size_t)slots * row, dt, 1, &kc, &fkc);
    opc_kv_rand(c, (size_t)slots * row, dt, 1, &vc, &fvc);
    opc_kv_rand(c, (size_t)n * row, dt, 1, &kn, &fkn);
    opc_kv_rand(c, (size_t)n * row, dt, 1, &vn, &fvn);
    uint16_t *sk = sinks ? opc_bv(c, (size_t)heads, 3) : NULL;
    if (rq) c->ref->ops->round_bf16(c->ref, q, (int64_t)qn);
    /* the reference on the values the KV bytes hold, in f32 (the same products for every dtype) */
    dpb_attn_args a = {n, pos0, heads, kvh, hd, q, fkn, fvn, fkc, fvc, slots, window, DPB_KV_F32, sk,
                       1.0f / sqrtf((float)hd), ref, NULL, false};
    c->ref->ops->attention(c->ref, &a);
    a.k_new = kn; a.v_new = vn; a.k_cache = kc; a.v_cache = vc; a.kv_dtype = dt;
    free(fkn); free(fvn); free(fkc); free(fvc);
    dpb_attn_args d = a;
    d.q = opc_up(c, q, qn * 4);
    if (rq && d.q && !opc_st(c, name, c->dev->ops->round_bf16(c->dev, (float *)d.q, (int64_t)qn))) {
        opc_free(c, (void *)d.q);
        d.q = NULL;
    }
    d.k_new = opc_up(c, kn, (size_t)n * row * es);
    d.v_new = opc_up(c, vn, (size_t)n * row * es);
    d.k_cache = opc_up(c, kc, (size_t)slots * row * es);
    d.v_cache = opc_up(c, vc, (size_t)slots * row * es);
    d.sinks = sk ? opc_up(c, sk, (size_t)heads * 2) : NULL;
    d.out = opc_nan(c, qn * 4);
    if (d.q && d.k_new && d.v_new && d.k_cache && d.v_cache && d.out && opc_st(c, name, c->dev->ops->attention(c->dev, &d))) {
        opc_cmp(c, name, d.out, ref, qn, dt == DPB_KV_F32 ? 1e-5 : 1e-2);
        /* round_out: the same output rounded to bf16, bit for bit (the bf16 engine's attention) */
        char name3[200];
        snprintf(name3, sizeof name3, "%s round_out", name);
        float *want = opc_rounded_copy(c, name3, d.out, qn), *o2 = opc_nan(c, qn * 4);
        dpb_attn_args r = d;
        r.out = o2;
        r.round_out = true;
        if (want && o2 && opc_st(c, name3, c->dev->ops->attention(c->dev, &r))) {
            opc_same(c, name3, o2, want, qn * 4);
            if (rq && n > 8) opc_attn_side_copy(c, name, o2, want, n, heads * hd);
            if (rq && n > 8) {
                /* attention_linear: the attention's rows may stay unwritten; its linear must take the bf16 copy */
                opc_attention_linear(c, name, &r, want, n, heads * hd);
            }
        }
        if (want && o2 && d.pos_dev == NULL && c->dev->ops->kv_write_at) {
            /* against the same launch shape unrounded: with the position on the device the kernel sizes its splits
             * for the capacity, so its f32 sums may differ from the host-position run's in the last bit, and a
             * value next to a bf16 rounding boundary may then round the other way */
            r.pos_dev = opc_up(c, &pos0, sizeof pos0);
            snprintf(name3, sizeof name3, "%s round_out pos_dev", name);
            r.round_out = false;
            r.out = opc_nan(c, qn * 4);
            float *want2 = NULL;
            if (r.pos_dev && r.out && opc_st(c, name3, c->dev->ops->attention(c->dev, &r)))
                want2 = opc_rounded_copy(c, name3, r.out, qn);
            opc_free(c, r.out);
            opc_free(c, o2);
            o2 = opc_nan(c, qn * 4);
            r.out = o2;
            r.round_out = true;
            if (want2 && o2 && opc_st(c, name3, c->dev->ops->attention(c->dev, &r))) opc_same(c, name3, o2, want2, qn * 4);
            free(want2);
            opc_free(c, (void *)r.pos_dev);
        }
        opc_free(c, o2);
        free(want);
    }
    if (c->dev->ops->kv_write_at) {
        /* the same with the position read from device memory (what captured decode graphs run) */
        char name2[200];
        snprintf(name2, sizeof name2, "%s pos_dev", name);
        d.pos_dev = opc_up(c, &pos0, sizeof pos0);
        opc_free(c, d.out);
        d.out = opc_nan(c, qn * 4);
        if (d.pos_dev && d.out && opc_st(c, name2, c->dev->ops->attention(c->dev, &d)))
            opc_cmp(c, name2, d.out, ref, qn, dt == DPB_KV_F32 ? 1e-5 : 1e-2);
        opc_free(c, (void *)d.pos_dev);
    }
    opc_free(c, (void *)d.q); opc_free(c, (void *)d.k_new); opc_free(c, (void *)d.v_new);
    opc_free(c, (void *)d.k_cache); opc_free(c, (void *)d.v_cache); opc_free(c, (void *)d.sinks); opc_free(c, d.out);
    free(q); free(ref); free(kn); free(vn); free(kc); free(vc); free(sk);
}

static void opc_attention(opc *c, int64_t n, int64_t pos0, int64_t heads, int64_t kvh, int64_t hd, int64_t slots,
                          int64_t window, dpb_kv_dtype dt, bool sinks)
{
    opc_attention_q(c, n, pos0, heads, kvh, hd, slots, window, dt, sinks, false);
}

static void opc_kv_write(opc *c, int64_t slots, int64_t row, int64_t n, int64_t pos0, dpb_kv_dtype dt)
{
    char name[96];
    snprintf(name, sizeof name, "kv_write slots=%lld n=%lld pos0=%lld %s", (long long)slots, (long long)n, (long long)pos0,
             dpb_kv_dtype_name(dt));
    size_t es = dpb_kv_dtype_size(dt), cb = (size_t)(slots * row) * es, nb = (size_t)(n * row) * es;
    unsigned char *kc = malloc(cb), *vc = malloc(cb), *kn = malloc(nb), *vn = malloc(nb);
    for (size_t i = 0; i < cb; i++) { kc[i] = (unsigned char)opc_next(c); vc[i] = (unsigned char)opc_next(c); }
    for (size_t i = 0; i < nb; i++) { kn[i] = (unsigned char)opc_next(c); vn[i] = (unsigned char)opc_next(c); }
    void *dkc = opc_up(c, kc, cb), *dvc = opc_up(c, vc, cb), *dkn = opc_up(c, kn, nb), *dvn = opc_up(c, vn, nb);
    c->ref->ops->kv_write(c->ref, kc, vc, slots, row, dt, kn, vn, n, pos0);
    if (dkc && dvc && dkn && dvn && opc_st(c, name, c->dev->ops->kv_write(c->dev, dkc, dvc, slots, row, dt, dkn, dvn, n, pos0))) {
        opc_same(c, name, dkc, kc, cb);
        opc_same(c, name, dvc, vc, cb);
    }
    opc_free(c, dkc); opc_free(c, dvc); opc_free(c, dkn); opc_free(c, dvn);
    if (c->dev->ops->kv_write_at) {
        /* kv_write_at from the same starting caches must give the same bytes */
        char name2[120];
        snprintf(name2, sizeof name2, "%s (kv_write_at)", name);
        unsigned char *kc0 = malloc(cb), *vc0 = malloc(cb);
        for (size_t i = 0; i < cb; i++) { kc0[i] = (unsigned char)opc_next(c); vc0[i] = (unsigned char)opc_next(c); }
        dkc = opc_up(c, kc0, cb); dvc = opc_up(c, vc0, cb); dkn = opc_up(c, kn, nb); dvn = opc_up(c, vn, nb);
        void *dpos = opc_up(c, &pos0, sizeof pos0);
        c->ref->ops->kv_write(c->ref, kc0, vc0, slots, row, dt, kn, vn, n, pos0);
        if (dkc && dvc && dkn && dvn && dpos &&
            opc_st(c, name2, c->dev->ops->kv_write_at(c->dev, dkc, dvc, slots, row, dt, dkn, dvn, n, dpos))) {
            opc_same(c, name2, dkc, kc0, cb);
            opc_same(c, name2, dvc, vc0, cb);
        }
        opc_free(c, dkc); opc_free(c, dvc); opc_free(c, dkn); opc_free(c, dvn); opc_free(c, dpos);
        free(kc0); free(vc0);
    }
    free(kc); free(vc); free(kn); free(vn);
}

/* Greedy argmax on the device against a host scan (ties, NaN, negative rows). */
static void opc_argmax(opc *c)
{
    if (!c->dev->ops->argmax) return;
    const int64_t n = 5, V = 201088;
    float *x = opc_fv(c, (size_t)(n * V), 10);
    x[0 * V + 7] = 50.f; x[0 * V + 9] = 50.f;           /* tie: 7 wins */
    x[1 * V + V - 1] = 60.f;                          /* the last id */
    for (int64_t v = 0; v < V; v++) x[2 * V + v] = -1.f; /* all equal: 0 */
    x[3 * V + 0] = NAN; x[3 * V + 100] = 70.f; x[3 * V + 101] = NAN; /* NaN never wins */
    int32_t want[5];
    for (int64_t r = 0; r < n; r++) {
        int64_t b = -1;
        for (int64_t v = 0; v < V; v++)
            if (x[r * V + v] == x[r * V + v] && (b < 0 || x[r * V + v] > x[r * V + b])) b = v;
        want[r] = (int32_t)b;
    }
    float *d = opc_up(c, x, (size_t)(n * V) * 4);
    int32_t *ids = opc_nan(c, (size_t)n * 4);
    if (d && ids && opc_st(c, "argmax", c->dev->ops->argmax(c->dev, d, n, V, ids)))
        opc_same(c, "argmax 5 x 201088 (ties, NaN, last id)", ids, want, sizeof want);
    opc_free(c, d); opc_free(c, ids);
    free(x);
}

static void opc_to_kv_round(opc *c)
{
    int64_t n = 1000;
    float *x = opc_fv(c, (size_t)n, 100);
    /* special values: ties, NaN, infinities, denormals, the largest float */
    uint32_t sp[] = {0x3f808000u, 0x3f818000u, 0x7fc00001u, 0xff800000u, 0x7f800000u, 0x00000001u, 0x7f7fffffu, 0x80000000u};
    memcpy(x, sp, sizeof sp);
    uint16_t *rb = malloc((size_t)n * 2);
    c->ref->ops->to_kv(c->ref, x, n, DPB_KV_BF16, rb);
    float *xd = opc_up(c, x, (size_t)n * 4);
    void *o = opc_nan(c, (size_t)n * 2);
    if (xd && o && opc_st(c, "to_kv bf16", c->dev->ops->to_kv(c->dev, xd, n, DPB_KV_BF16, o)))
        opc_same(c, "to_kv bf16 (1000 values, specials)", o, rb, (size_t)n * 2);
    opc_free(c, o);
    o = opc_nan(c, (size_t)n * 4);
    if (xd && o && opc_st(c, "to_kv f32", c->dev->ops->to_kv(c->dev, xd, n, DPB_KV_F32, o)))
        opc_same(c, "to_kv f32", o, x, (size_t)n * 4);
    opc_free(c, o);
    float *r = malloc((size_t)n * 4);
    memcpy(r, x, (size_t)n * 4);
    c->ref->ops->round_bf16(c->ref, r, n);
    if (xd && opc_st(c, "round_bf16", c->dev->ops->round_bf16(c->dev, xd, n)))
        opc_same(c, "round_bf16 (1000 values, specials)", xd, r, (size_t)n * 4);
    opc_free(c, xd);
    free(x); free(rb); free(r);
}

/* to_kv FP8: bytes equal to the host conversion (format/dtype.h) for random values over the whole range,
 * subnormals, ties, +-448, values beyond it, infinities and NaN. */
static void opc_to_kv_fp8(opc *c)
{
    const int64_t n = 20000;
    float *x = malloc((size_t)n * 4);
    int64_t i = 0;
    const float sp[] = {0.f, -0.f, 448.f, -448.f, 449.f, 463.99f, 464.f, -464.f, 480.f, 500.f, -1e6f, 3.4e38f, INFINITY,
                        -INFINITY, NAN, -NAN, 1.0f / 512, 1.5f / 512, 2.5f / 512, 0.5f / 512, 0.49f / 512, 7.5f / 512,
                        1.0f / 64, 1.0625f, 1.1875f, 1e-30f, -1e-45f, 0.015624f, 240.f, 248.f, 256.f, 272.f};
    for (size_t k = 0; k < sizeof sp / sizeof sp[0]; k++) x[i++] = sp[k];
    /* every code's value and the midpoints between neighbours (ties to even) */
    for (int b = 0; b < 256 && i + 2 < n; b++) {
        float v = dpb_fp8e4m3_to_f32((uint8_t)b), w = dpb_fp8e4m3_to_f32((uint8_t)(b + 1 < 256 ? b + 1 : b));
        x[i++] = v;
        if (v == v && w == w) x[i++] = (v + w) / 2;
    }
    while (i < n) {
        /* log-uniform magnitudes 2^-12 .. 2^10, random signs */
        double u = (double)(opc_next(c) >> 11) / 9007199254740992.0;
        float v = (float)pow(2.0, -12.0 + 22.0 * u);
        x[i++] = (opc_next(c) & 1) ? -v : v;
    }
    uint8_t *want = malloc((size_t)n);
    for (int64_t k = 0; k < n; k++) want[k] = dpb_f32_to_fp8e4m3(x[k]);
    float *xd = opc_up(c, x, (size_t)n * 4);
    void *o = opc_nan(c, (size_t)n);
    if (xd && o && opc_st(c, "to_kv fp8", c->dev->ops->to_kv(c->dev, xd, n, DPB_KV_FP8, o)))
        opc_same(c, "to_kv fp8 (20000 values, subnormals, +-448, beyond, NaN)", o, want, (size_t)n);
    opc_free(c, xd); opc_free(c, o);
    free(x); free(want);
}

static void opc_attention_batch(opc *c, int n, int S, int64_t heads, int64_t kvh, int64_t hd, int64_t slots,
                                int64_t window, int64_t max_pos, dpb_kv_dtype dt, bool sinks);

/* Every attention path with FP8 K/V against the reference on the same bytes' values. */
static void opc_run_fp8(opc *c, int big)
{
    opc_to_kv_fp8(c);
    opc_qk_prep(c, 1, 64, 8, 64, false, true, DPB_KV_FP8);
    opc_qk_prep(c, 3, 64, 8, 128, true, true, DPB_KV_FP8);
    opc_qk_prep(c, 2, 16, 4, 64, false, false, DPB_KV_FP8);
    opc_kv_write(c, 64, 512, 1, 63, DPB_KV_FP8);
    opc_kv_write(c, 8, 16, 11, 5, DPB_KV_FP8);
    opc_kv_write(c, 5, 3, 7, 2, DPB_KV_FP8); /* rows of 3 bytes: copies */
    /* decode, one sequence (host and device positions) */
    opc_attention(c, 1, 0, 64, 8, 64, 4096, 0, DPB_KV_FP8, true);
    opc_attention(c, 1, 2047, 64, 8, 64, 4096, 0, DPB_KV_FP8, true);     /* gpt-oss full */
    opc_attention(c, 1, 300, 64, 8, 64, 128, 128, DPB_KV_FP8, true);     /* gpt-oss sliding, ring */
    opc_attention(c, 1, 5000, 64, 8, 128, 8192, 0, DPB_KV_FP8, false);   /* Qwen3 */
    opc_attention(c, 1, 700, 56, 8, 128, 1024, 0, DPB_KV_FP8, false);    /* Yi: 7 heads per kv head */
    opc_attention(c, 1, 100, 8, 2, 32, 128, 0, DPB_KV_FP8, true);        /* head_dim 32: the older kernel */
    opc_attention(c, 5, 90, 32, 2, 128, 256, 0, DPB_KV_FP8, false);      /* short chunk, 16 heads per kv head */
    /* prefill chunks after a cached prefix: CUDA-core kernels (q fp32) and tensor cores (q bf16-exact) */
    opc_attention(c, 40, 100, 16, 4, 64, 256, 0, DPB_KV_FP8, true);
    opc_attention(c, 70, 200, 16, 4, 128, 512, 0, DPB_KV_FP8, false);
    opc_attention_q(c, 333, 1000, 64, 8, 64, 256, 128, DPB_KV_FP8, true, true); /* sliding, ring, sinks */
    opc_attention_q(c, 200, 77, 64, 8, 64, 512, 0, DPB_KV_FP8, true, true);
    opc_attention_q(c, 200, 77, 16, 2, 128, 512, 0, DPB_KV_FP8, false, true);
    opc_attention_q(c, 64, 0, 8, 1, 128, 64, 0, DPB_KV_FP8, false, true);        /* no prefix */
    /* decode of several sequences */
    opc_attention_batch(c, 5, 7, 64, 8, 64, 4096, 0, 4095, DPB_KV_FP8, true);
    opc_attention_batch(c, 3, 4, 64, 8, 64, 128, 128, 3000, DPB_KV_FP8, true);
    opc_attention_batch(c, 4, 5, 64, 8, 128, 2048, 0, 2047, DPB_KV_FP8, false);
    opc_attention_batch(c, 3, 4, 8, 2, 32, 96, 16, 95, DPB_KV_FP8, true);
    if (big) opc_attention_batch(c, 64, 64, 64, 8, 64, 2048, 0, 2047, DPB_KV_FP8, true);
}

static void opc_router_x(opc *c, int64_t n, int64_t E, int64_t k, bool special)
{
    char name[96];
    snprintf(name, sizeof name, "router_topk n=%lld E=%lld k=%lld%s", (long long)n, (long long)E, (long long)k,
             special ? " (ties, -0/+0, NaN, -inf)" : "");
    float *l = opc_fv(c, (size_t)(n * E), 4), *w = malloc((size_t)(n * k) * 4);
    if (special) {
        /* row r: ties among the largest, a signed-zero tie, NaN (never picked
         * unless it is the first unused value: not made here), -inf rows */
        for (int64_t r = 0; r < n; r++) {
            float *lr = l + r * E;
            switch (r % 4) {
            case 0: lr[E - 1] = 9.f; lr[E / 2] = 9.f; lr[1] = 9.f; break;
            case 1: for (int64_t e = 0; e < E; e++) lr[e] = (e % 3) ? 0.f : -0.f; break;
            case 2: lr[E / 3] = NAN; lr[E - 2] = NAN; lr[E / 4] = 20.f; break;
            default: for (int64_t e = 0; e < E; e++) lr[e] = e % 5 ? -INFINITY : 1.f; break;
            }
        }
    }
    int32_t *ix = malloc((size_t)(n * k) * 4);
    c->ref->ops->router_topk(c->ref, l, n, E, k, ix, w);
    float *ld = opc_up(c, l, (size_t)(n * E) * 4), *wd = opc_nan(c, (size_t)(n * k) * 4);
    int32_t *id = opc_nan(c, (size_t)(n * k) * 4);
    if (ld && wd && id && opc_st(c, name, c->dev->ops->router_topk(c->dev, ld, n, E, k, id, wd))) {
        opc_same(c, name, id, ix, (size_t)(n * k) * 4);
        opc_cmp(c, name, wd, w, (size_t)(n * k), 1e-5);
    }
    opc_free(c, ld); opc_free(c, wd); opc_free(c, id);
    free(l); free(w); free(ix);
}
static void opc_router(opc *c, int64_t n, int64_t E, int64_t k) { opc_router_x(c, n, E, k, false); }

/* The fused router (ops->router through dpb_backend_router) against the device's own linear, [round_bf16],
 * router_topk: ids and weights bit for bit.  ties: rows 0, E/2 and E-1 equal and large for every input row, row 1
 * row 0 but for its last weight (one bf16 step smaller, against an input of 30: a logit a few thousandths lower,
 * usually tied with them after the bf16 rounding); row 0 must come first, E/2 before E-1. */
static void opc_router_fused(opc *c, int64_t n, int64_t E, int64_t K, int64_t k, bool round, bool bias, bool ties)
{
    char name[128];
    snprintf(name, sizeof name, "router fused n=%lld E=%lld K=%lld k=%lld%s%s%s", (long long)n, (long long)E,
             (long long)K, (long long)k, round ? " round" : "", bias ? " bias" : "", ties ? " ties" : "");
    float *x = opc_fv(c, (size_t)(n * K), 1);
    uint16_t *w = opc_bv(c, (size_t)(E * K), 0.05f), *b = bias ? opc_bv(c, (size_t)E, 1) : NULL;
    if (ties && E >= 4) {
        for (int64_t i = 0; i < K; i++) {
            float sg = 0;
            for (int64_t m = 0; m < n; m++) sg += x[m * K + i];
            w[i] = dpb_f32_to_bf16(sg >= 0 ? 0.05f : -0.05f);
        }
        for (int64_t m = 0; m < n; m++) x[m * K + K - 1] = 30.f;
        w[K - 1] = dpb_f32_to_bf16(0.05f); /* adds 1.5 to the tied rows' logits */
        memcpy(w + (E / 2) * K, w, (size_t)K * 2);
        memcpy(w + (E - 1) * K, w, (size_t)K * 2);
        memcpy(w + K, w, (size_t)K * 2);
        w[K + K - 1] = (uint16_t)(w[K - 1] - 1); /* row 1 a little below the others */
        if (b) b[1] = b[E / 2] = b[E - 1] = b[0];
    }
    float *xd = opc_up(c, x, (size_t)(n * K) * 4);
    uint16_t *wd = opc_up(c, w, (size_t)(E * K) * 2), *bd = b ? opc_up(c, b, (size_t)E * 2) : NULL;
    float *l1 = opc_nan(c, (size_t)(n * E) * 4), *l2 = opc_nan(c, (size_t)(n * E) * 4);
    int32_t *i1 = opc_nan(c, (size_t)(n * k) * 4), *i2 = opc_nan(c, (size_t)(n * k) * 4);
    float *w1 = opc_nan(c, (size_t)(n * k) * 4), *w2 = opc_nan(c, (size_t)(n * k) * 4);
    dpb_weight W = {DPB_W_BF16, E, K, false, wd, NULL};
    if (xd && wd && (bd || !b) && l1 && l2 && i1 && i2 && w1 && w2 &&
        opc_st(c, name, c->dev->ops->linear(c->dev, &W, bd, xd, n, l1)) &&
        (!round || opc_st(c, name, c->dev->ops->round_bf16(c->dev, l1, n * E))) &&
        opc_st(c, name, c->dev->ops->router_topk(c->dev, l1, n, E, k, i1, w1)) &&
        opc_st(c, name, dpb_backend_router(c->dev, &W, bd, xd, n, k, round, l2, i2, w2))) {
        int32_t *hi = malloc((size_t)(n * k) * 4);
        float *hw = malloc((size_t)(n * k) * 4);
        if (!c->dev->ops->sync(c->dev) && !c->dev->ops->download(c->dev, hi, i1, (size_t)(n * k) * 4) &&
            !c->dev->ops->download(c->dev, hw, w1, (size_t)(n * k) * 4)) {
            char n2[160];
            snprintf(n2, sizeof n2, "%s ids", name);
            opc_same(c, n2, i2, hi, (size_t)(n * k) * 4);
            snprintf(n2, sizeof n2, "%s weights", name);
            opc_same(c, n2, w2, hw, (size_t)(n * k) * 4);
            if (ties && E >= 4) {
                /* the planted tie decides the first picks: rows 0, (1 when rounded,) E/2, E-1 in that order */
                c->checks++;
                int ok = hi[0] == 0, ia = -1, ib = -1;
                for (int64_t j = 0; j < k; j++) {
                    if (hi[j] == E / 2 && ia < 0) ia = (int)j;
                    if (hi[j] == E - 1 && ib < 0) ib = (int)j;
                }
                if (ok && k >= 4) ok = ia > 0 && ib > ia; /* the equal rows: the lower index first */
                fprintf(c->log, "%s %-44s first picks %d %d %d %d\n", ok ? "ok  " : "FAIL", name, hi[0],
                        k > 1 ? hi[1] : -1, k > 2 ? hi[2] : -1, k > 3 ? hi[3] : -1);
                if (!ok) c->fails++;
            }
        } else opc_st(c, name, DPB_E_IO);
        free(hi); free(hw);
    }
    opc_free(c, xd); opc_free(c, wd); opc_free(c, bd); opc_free(c, l1); opc_free(c, l2);
    opc_free(c, i1); opc_free(c, i2); opc_free(c, w1); opc_free(c, w2);
    free(x); free(w); free(b);
}

/* argmax of n random rows of V with planted ties (the lower id wins) and NaN */
static void opc_argmax_rows(opc *c, int64_t n, int64_t V)
{
    if (!c->dev->ops->argmax) return;
    char name[96];
    snprintf(name, sizeof name, "argmax %lld x %lld (planted ties, NaN)", (long long)n, (long long)V);
    float *x = opc_fv(c, (size_t)(n * V), 10);
    int32_t *want = malloc((size_t)n * 4);
    for (int64_t r = 0; r < n; r++) {
        float *xr = x + r * V;
        const int64_t a = (int64_t)(opc_next(c) % (uint64_t)V), b = (int64_t)(opc_next(c) % (uint64_t)V);
        if (r % 3 == 0) { xr[a] = 11.f; xr[b] = 11.f; }
        if (r % 3 == 1) { xr[a] = NAN; xr[b] = -0.f; }
        int64_t best = -1;
        for (int64_t v = 0; v < V; v++)
            if (xr[v] == xr[v] && (best < 0 || xr[v] > xr[best])) best = v;
        want[r] = (int32_t)best;
    }
    float *d = opc_up(c, x, (size_t)(n * V) * 4);
    int32_t *ids = opc_nan(c, (size_t)n * 4);
    if (d && ids && opc_st(c, name, c->dev->ops->argmax(c->dev, d, n, V, ids))) opc_same(c, name, ids, want, (size_t)n * 4);
    opc_free(c, d); opc_free(c, ids);
    free(x); free(want);
}

/* A prefill path forced by the environment (the grouped kernels' f16 activations, moe_prefill's bf16 hi + lo):
 * bf16-level operands even without rnd.  In auto the f32 engine's experts are fp32-level (<= 1e-5). */
static bool opc_moe_forced(void)
{
    const char *g = getenv("DPB_CUDA_MOE_GROUPED"), *p = getenv("DPB_CUDA_PREFILL");
    return (g && (strcmp(g, "on") == 0 || strcmp(g, "1") == 0)) || (p && strcmp(p, "new") == 0);
}

/* fmt: MXFP4, or BF16 with tr = transposed storage.  skew: uneven routing
 * (every token's first slot is expert 0, the others drawn from experts
 * 1..k+1 only, so most experts get no token). */
static void opc_moe_ex(opc *c, dpb_wfmt fmt, bool tr, int64_t E, int64_t H, int64_t I, int64_t k, int64_t n, bool rnd,
                       bool skew)
{
    char name[128];
    snprintf(name, sizeof name, "moe %s%s E=%lld H=%lld I=%lld k=%lld n=%lld%s%s", fmt == DPB_W_MXFP4 ? "mxfp4" : "bf16",
             tr ? " transposed" : "", (long long)E, (long long)H, (long long)I, (long long)k, (long long)n,
             rnd ? " round" : "", skew ? " skewed" : "");
    const int64_t pool = skew && k + 1 < E ? k + 1 : E - 1; /* skew: slots 1.. draw from experts 1..pool */
    size_t gue = (size_t)(E * 2 * I * H), dne = (size_t)(E * H * I);
    void *guw, *dnw;
    uint8_t *gus = NULL, *dns = NULL;
    size_t gub, dnb;
    if (fmt == DPB_W_MXFP4) {
        opc_mxfp4(c, E * 2 * I, H, (uint8_t **)&guw, &gus);
        opc_mxfp4(c, E * H, I, (uint8_t **)&dnw, &dns);
        gub = gue / 2;
        dnb = dne / 2;
    } else {
        guw = opc_bv(c, gue, 0.06f);
        dnw = opc_bv(c, dne, 0.06f);
        gub = gue * 2;
        dnb = dne * 2;
    }
    uint16_t *gbias = opc_bv(c, (size_t)(E * 2 * I), 0.5f), *dbias = opc_bv(c, (size_t)(E * H), 0.5f);
    float *x = opc_fv(c, (size_t)(n * H), fmt == DPB_W_MXFP4 ? 0.05f : 1.0f);
    int32_t *idx = malloc((size_t)(n * k) * 4);
    float *wts = malloc((size_t)(n * k) * 4), *ref = malloc((size_t)(n * H) * 4);
    for (int64_t t = 0; t < n; t++) {
        float s = 0;
        for (int64_t j = 0; j < k; j++) {
            int32_t e;
            bool dup;
            do {
                e = (int32_t)(opc_next(c) % (uint64_t)E);
                if (skew) e = j == 0 ? 0 : 1 + (int32_t)(opc_next(c) % (uint64_t)pool);
                dup = false;
                for (int64_t m = 0; m < j; m++) dup |= idx[t * k + m] == e;
            } while (dup);
            idx[t * k + j] = e;
            wts[t * k + j] = 0.1f + (opc_f(c) + 1.0f);
            s += wts[t * k + j];
        }
        for (int64_t j = 0; j < k; j++) wts[t * k + j] /= s;
    }
    dpb_weight *gr = calloc((size_t)E, sizeof *gr), *dr = calloc((size_t)E, sizeof *dr);
    dpb_weight *gd = calloc((size_t)E, sizeof *gd), *dd = calloc((size_t)E, sizeof *dd);
    /* device: every expert in its own allocation, as the engine maps them */
    int ok = 1;
    size_t ges = fmt == DPB_W_MXFP4 ? gub / (size_t)E : gub / (size_t)E, des = dnb / (size_t)E;
    for (int64_t e = 0; e < E; e++) {
        gr[e] = (dpb_weight){fmt, 2 * I, H, tr, (char *)guw + (size_t)e * ges, gus ? gus + (size_t)(e * 2 * I * H / 32) : NULL};
        dr[e] = (dpb_weight){fmt, H, I, tr, (char *)dnw + (size_t)e * des, dns ? dns + (size_t)(e * H * I / 32) : NULL};
        gd[e] = gr[e];
        dd[e] = dr[e];
        gd[e].data = opc_up(c, gr[e].data, ges);
        dd[e].data = opc_up(c, dr[e].data, des);
        if (gus) gd[e].scales = opc_up(c, gr[e].scales, (size_t)(2 * I * H / 32));
        if (dns) dd[e].scales = opc_up(c, dr[e].scales, (size_t)(H * I / 32));
        ok &= gd[e].data && dd[e].data && (!gus || gd[e].scales) && (!dns || dd[e].scales);
    }
    /* with rnd the engine feeds bf16-exact rows (and the device knows it: round_bf16 ran on them) */
    if (rnd) c->ref->ops->round_bf16(c->ref, x, n * H);
    dpb_moe_args a = {n, H, I, k, x, gr, gbias, dr, dbias, idx, wts, 7.0f, 1.702f, rnd, ref};
    c->ref->ops->moe(c->ref, &a);
    dpb_moe_args d = a;
    d.x = opc_up(c, x, (size_t)(n * H) * 4);
    if (rnd && d.x && !opc_st(c, name, c->dev->ops->round_bf16(c->dev, (float *)d.x, n * H))) ok = 0;
    d.gate_up = gd;
    d.down = dd;
    d.gate_up_bias = opc_up(c, gbias, (size_t)(E * 2 * I) * 2);
    d.down_bias = opc_up(c, dbias, (size_t)(E * H) * 2);
    d.idx = opc_up(c, idx, (size_t)(n * k) * 4);
    d.wts = opc_up(c, wts, (size_t)(n * k) * 4);
    d.out = opc_nan(c, (size_t)(n * H) * 4);
    if (ok && d.x && d.gate_up_bias && d.down_bias && d.idx && d.wts && d.out &&
        opc_st(c, name, c->dev->ops->moe(c->dev, &d)))
        opc_cmp(c, name, d.out, ref, (size_t)(n * H), rnd || opc_moe_forced() ? 1e-2 : 1e-5);
    for (int64_t e = 0; e < E; e++) {
        opc_free(c, (void *)gd[e].data); opc_free(c, (void *)dd[e].data);
        opc_free(c, (void *)gd[e].scales); opc_free(c, (void *)dd[e].scales);
    }
    opc_free(c, (void *)d.x); opc_free(c, (void *)d.gate_up_bias); opc_free(c, (void *)d.down_bias);
    opc_free(c, (void *)d.idx); opc_free(c, (void *)d.wts); opc_free(c, d.out);
    free(guw); free(dnw); free(gus); free(dns); free(gbias); free(dbias); free(x); free(idx); free(wts); free(ref);
    free(gr); free(dr); free(gd); free(dd);
}

static void opc_moe(opc *c, dpb_wfmt fmt, bool tr, int64_t E, int64_t H, int64_t I, int64_t k, int64_t n, bool rnd)
{
    opc_moe_ex(c, fmt, tr, E, H, I, k, n, rnd, false);
}

static void opc_elementwise(opc *c)
{
    int64_t n = 3, I = 1000;
    size_t cnt = (size_t)(n * I);
    float *g = opc_fv(c, cnt, 8), *u = opc_fv(c, cnt, 3), *ref = malloc(cnt * 4);
    c->ref->ops->swiglu(c->ref, g, u, n, I, ref);
    float *gd = opc_up(c, g, cnt * 4), *ud = opc_up(c, u, cnt * 4), *o = opc_nan(c, cnt * 4);
    if (gd && ud && o && opc_st(c, "swiglu", c->dev->ops->swiglu(c->dev, gd, ud, n, I, o)))
        opc_cmp(c, "swiglu 3 x 1000", o, ref, cnt, 1e-5);
    if (gd && ud && opc_st(c, "swiglu in place", c->dev->ops->swiglu(c->dev, gd, ud, n, I, gd)))
        opc_cmp(c, "swiglu 3 x 1000 in place", gd, ref, cnt, 1e-5);
    memcpy(ref, u, cnt * 4);
    c->ref->ops->add(c->ref, ref, g, (int64_t)cnt);
    opc_free(c, gd);
    gd = opc_up(c, g, cnt * 4);
    if (gd && ud && opc_st(c, "add", c->dev->ops->add(c->dev, ud, gd, (int64_t)cnt)))
        opc_same(c, "add 3000", ud, ref, cnt * 4);
    opc_free(c, gd); opc_free(c, ud); opc_free(c, o);
    free(g); free(u); free(ref);
}

/* The MoE checks with more than 8 rows (the prefill paths). */
static void opc_run_moe_prefill(opc *c)
{
    for (int r = 0; r < 2; r++) {
        opc_moe(c, DPB_W_MXFP4, false, 8, 512, 256, 4, 13, r);
        opc_moe(c, DPB_W_MXFP4, false, 32, 512, 256, 4, 100, r);
    }
    opc_moe(c, DPB_W_MXFP4, false, 8, 128, 128, 4, 48, true);
    opc_moe(c, DPB_W_MXFP4, false, 8, 128, 128, 2, 9, false);
}

/* The grouped MXFP4 experts (DPB_CUDA_MOE_GROUPED): their row counts
 * (token tiles of 32 and 64; 128 for the wgmma kernel), uneven routing (one expert in every token,
 * most experts without any), K with an odd number of blocks and partial
 * row tiles, gpt-oss's shape.  Shapes kept small where n is large: the
 * reference is slow. */
static void opc_run_moe_grouped(opc *c)
{
    for (int r = 0; r < 2; r++) {
        opc_moe(c, DPB_W_MXFP4, false, 32, 512, 256, 4, 9, r);
        opc_moe(c, DPB_W_MXFP4, false, 32, 512, 256, 4, 33, r);
        opc_moe(c, DPB_W_MXFP4, false, 32, 512, 256, 4, 64, r);
        opc_moe(c, DPB_W_MXFP4, false, 32, 256, 256, 4, 256, r);
        opc_moe(c, DPB_W_MXFP4, false, 32, 128, 128, 4, 2048, r);
        opc_moe_ex(c, DPB_W_MXFP4, false, 32, 256, 256, 4, 256, r, true);
        opc_moe_ex(c, DPB_W_MXFP4, false, 32, 128, 128, 4, 2048, r, true);
        opc_moe(c, DPB_W_MXFP4, false, 8, 128, 128, 4, 256, r);
        opc_moe(c, DPB_W_MXFP4, false, 8, 96, 160, 2, 21, r);
        /* >= 64 pairs per expert: the wgmma kernel (sm_90a) in auto; odd block count, partial row tiles,
         * token tiles of 128 with their last one narrow */
        opc_moe(c, DPB_W_MXFP4, false, 8, 96, 160, 2, 600, r);
    }
    opc_moe_ex(c, DPB_W_MXFP4, false, 32, 2880, 2880, 4, 9, true, true);
    opc_moe(c, DPB_W_MXFP4, false, 32, 2880, 2880, 4, 12, false);
}

/* Attention with many query rows (the prefill paths): gpt-oss's heads
 * (64 / 8, head_dim 64, sinks, full and sliding), other head_dims; then with
 * q bf16-exact (the tensor-core kernel for bf16 KV at head_dim 64 / 128). */
static void opc_run_attn_prefill(opc *c, int big)
{
    opc_attention(c, 64, 0, 64, 8, 64, 4096, 0, DPB_KV_BF16, true);
    opc_attention(c, 100, 300, 64, 8, 64, 128, 128, DPB_KV_BF16, true);
    opc_attention(c, 40, 10, 16, 4, 64, 64, 0, DPB_KV_F32, true);
    opc_attention(c, 37, 5, 6, 2, 40, 48, 0, DPB_KV_F32, false);
    opc_attention(c, 20, 3, 4, 4, 30, 32, 7, DPB_KV_BF16, true);
    if (big) opc_attention(c, 128, 1000, 64, 8, 64, 2048, 0, DPB_KV_BF16, true);
    /* head_dim in (64, 128]: the head-dim-split tiled kernel */
    opc_attention(c, 70, 200, 16, 4, 128, 512, 0, DPB_KV_BF16, false);
    opc_attention(c, 33, 0, 8, 8, 128, 64, 0, DPB_KV_F32, true);
    opc_attention(c, 40, 90, 8, 2, 96, 256, 32, DPB_KV_BF16, true);
    opc_attention(c, 17, 5, 4, 1, 80, 32, 0, DPB_KV_F32, false);
    if (big) opc_attention(c, 300, 1800, 64, 8, 128, 4096, 0, DPB_KV_BF16, false);
    /* q bf16-exact, bf16 KV, head_dim 64 / 128: the tensor-core kernel (attn_prefill.cu); n not a
     * multiple of its 64- or 128-row tiles, positions not multiples of its 64-key tiles */
    opc_attention_q(c, 333, 1000, 64, 8, 64, 256, 128, DPB_KV_BF16, true, true); /* gpt-oss sliding, ring */
    opc_attention_q(c, 200, 77, 64, 8, 64, 512, 0, DPB_KV_BF16, true, true);     /* gpt-oss full */
    opc_attention_q(c, 200, 77, 16, 2, 128, 512, 0, DPB_KV_BF16, false, true);   /* Qwen3 ratio 8 */
    opc_attention_q(c, 150, 0, 56, 8, 128, 256, 0, DPB_KV_BF16, false, true);    /* Yi: 56 / 8 = 7 */
    opc_attention_q(c, 65, 3, 14, 2, 128, 80, 0, DPB_KV_BF16, true, true);       /* ratio 7, sinks */
    opc_attention_q(c, 2, 40, 8, 1, 64, 64, 16, DPB_KV_BF16, false, true);       /* 2 rows, window < tile */
    opc_attention_q(c, 70, 0, 4, 4, 128, 128, 50, DPB_KV_BF16, true, true);      /* window inside the chunk */
    if (big) {
        opc_attention_q(c, 2048, 30000, 8, 1, 64, 4096, 128, DPB_KV_BF16, true, true); /* sliding, deep */
        opc_attention_q(c, 64, 30000, 2, 1, 128, 1000, 0, DPB_KV_BF16, false, true);  /* 30k keys, small ring */
        opc_attention_q(c, 2048, 0, 2, 1, 128, 2048, 0, DPB_KV_BF16, false, true);    /* full 2048 */
        opc_attention_q(c, 300, 1500, 7, 1, 128, 3000, 0, DPB_KV_BF16, true, true);   /* ratio 7, sinks, cache */
    }
}

/* big != 0: include the gpt-oss-sized shapes (slower reference). */
/* attention_batch: n rows of sequences seq[r] (S caches, in a shuffled order) at positions pos[r], against the
 * reference's row-by-row attention + kv_write: the outputs within the bound, the caches byte-identical. */
static void opc_attention_batch(opc *c, int n, int S, int64_t heads, int64_t kvh, int64_t hd, int64_t slots,
                                int64_t window, int64_t max_pos, dpb_kv_dtype dt, bool sinks)
{
    char name[128];
    snprintf(name, sizeof name, "attention_batch n=%d seqs=%d %lld/%lld hd=%lld slots=%lld W=%lld %s%s", n, S,
             (long long)heads, (long long)kvh, (long long)hd, (long long)slots, (long long)window,
             dpb_kv_dtype_name(dt), sinks ? " sinks" : "");
    if (!c->dev->ops->attention_batch) return;
    size_t es = dpb_kv_dtype_size(dt), row = (size_t)(kvh * hd), cb = (size_t)slots * row * es;
    size_t qn = (size_t)n * (size_t)(heads * hd);
    float *q = opc_fv(c, qn, 1), *ref = malloc(qn * 4);
    void *kn, *vn;
    float *fkn, *fvn;
    opc_kv_rand(c, (size_t)n * row, dt, 1, &kn, &fkn);
    opc_kv_rand(c, (size_t)n * row, dt, 1, &vn, &fvn);
    void **kc = calloc((size_t)S, sizeof *kc), **vc = calloc((size_t)S, sizeof *vc);
    void **dk = calloc((size_t)S, sizeof *dk), **dv = calloc((size_t)S, sizeof *dv);
    float **fkc = calloc((size_t)S, sizeof *fkc), **fvc = calloc((size_t)S, sizeof *fvc);
    for (int i = 0; i < S; i++) {
        opc_kv_rand(c, (size_t)slots * row, dt, 1, &kc[i], &fkc[i]);
        opc_kv_rand(c, (size_t)slots * row, dt, 1, &vc[i], &fvc[i]);
        dk[i] = opc_up(c, kc[i], cb);
        dv[i] = opc_up(c, vc[i], cb);
    }
    int32_t *seq = malloc((size_t)n * sizeof *seq);
    int64_t *pos = malloc((size_t)n * sizeof *pos);
    for (int r = 0; r < n; r++) seq[r] = (S - 1 - r * 3 % S + S) % S; /* distinct when gcd(3, S) == 1 */
    for (int r = 0; r < n; r++) pos[r] = r == 0 ? max_pos : r == 1 ? 0 : (int64_t)(opc_next(c) % (uint64_t)(max_pos + 1));
    uint16_t *sk = sinks ? opc_bv(c, (size_t)heads, 3) : NULL;
    /* the reference on the values the bytes hold, in f32; the expected caches: the new rows' bytes in their slots */
    dpb_attn_batch_args a = {n, heads, kvh, hd, q, fkn, fvn, (void *const *)fkc, (void *const *)fvc, seq, pos, slots,
                             window, max_pos, DPB_KV_F32, sk, 1.0f / sqrtf((float)hd), ref, false};
    c->ref->ops->attention_batch(c->ref, &a);
    for (int r = 0; r < n; r++) {
        memcpy((char *)kc[seq[r]] + (size_t)(pos[r] % slots) * row * es, (char *)kn + (size_t)r * row * es, row * es);
        memcpy((char *)vc[seq[r]] + (size_t)(pos[r] % slots) * row * es, (char *)vn + (size_t)r * row * es, row * es);
    }
    a.k_new = kn; a.v_new = vn; a.k_tab = kc; a.v_tab = vc; a.kv_dtype = dt;
    for (int i = 0; i < S; i++) { free(fkc[i]); free(fvc[i]); }
    free(fkc); free(fvc); free(fkn); free(fvn);
    dpb_attn_batch_args d = a;
    d.q = opc_up(c, q, qn * 4);
    d.k_new = opc_up(c, kn, (size_t)n * row * es);
    d.v_new = opc_up(c, vn, (size_t)n * row * es);
    d.k_tab = opc_up(c, dk, (size_t)S * sizeof *dk);
    d.v_tab = opc_up(c, dv, (size_t)S * sizeof *dv);
    d.seq = opc_up(c, seq, (size_t)n * sizeof *seq);
    d.pos = opc_up(c, pos, (size_t)n * sizeof *pos);
    d.sinks = sk ? opc_up(c, sk, (size_t)heads * 2) : NULL;
    d.out = opc_nan(c, qn * 4);
    if (d.q && d.k_new && d.v_new && d.k_tab && d.v_tab && d.seq && d.pos && d.out &&
        opc_st(c, name, c->dev->ops->attention_batch(c->dev, &d))) {
        opc_cmp(c, name, d.out, ref, qn, dt == DPB_KV_F32 ? 1e-5 : 1e-2);
        for (int i = 0; i < S; i++) {
            opc_same(c, name, dk[i], kc[i], cb);
            opc_same(c, name, dv[i], vc[i], cb);
        }
        /* round_out: the same output rounded to bf16, bit for bit (the caches hold the same rows again) */
        char name3[160];
        snprintf(name3, sizeof name3, "%s round_out", name);
        float *want = opc_rounded_copy(c, name3, d.out, qn), *o2 = opc_nan(c, qn * 4);
        dpb_attn_batch_args r = d;
        r.out = o2;
        r.round_out = true;
        if (want && o2 && opc_st(c, name3, c->dev->ops->attention_batch(c->dev, &r))) opc_same(c, name3, o2, want, qn * 4);
        opc_free(c, o2);
        free(want);
    }
    for (int i = 0; i < S; i++) {
        opc_free(c, dk[i]); opc_free(c, dv[i]);
        free(kc[i]); free(vc[i]);
    }
    opc_free(c, (void *)d.q); opc_free(c, (void *)d.k_new); opc_free(c, (void *)d.v_new); opc_free(c, (void *)d.k_tab);
    opc_free(c, (void *)d.v_tab); opc_free(c, (void *)d.seq); opc_free(c, (void *)d.pos); opc_free(c, (void *)d.sinks);
    opc_free(c, d.out);
    free(q); free(ref); free(kn); free(vn); free(kc); free(vc); free(dk); free(dv); free(seq); free(pos); free(sk);
}

/* swiglu_bf16 against the reference's round, round, swiglu, round. */
static void opc_swiglu_bf16(opc *c, int64_t n, int64_t I, int offset)
{
    char name[96];
    snprintf(name, sizeof name, "swiglu_bf16 %lld x %lld%s", (long long)n, (long long)I, offset ? " (unaligned)" : "");
    if (!c->dev->ops->swiglu_bf16) return;
    size_t cnt = (size_t)(n * I);
    float *g = opc_fv(c, cnt, 4), *u = opc_fv(c, cnt, 4), *ref = malloc(cnt * 4);
    memcpy(ref, g, cnt * 4);
    float *u2 = malloc(cnt * 4);
    memcpy(u2, u, cnt * 4);
    c->ref->ops->round_bf16(c->ref, ref, (int64_t)cnt);
    c->ref->ops->round_bf16(c->ref, u2, (int64_t)cnt);
    c->ref->ops->swiglu(c->ref, ref, u2, n, I, ref);
    c->ref->ops->round_bf16(c->ref, ref, (int64_t)cnt);
    float *gd = opc_up(c, g, (cnt + 1) * 4), *ud = opc_up(c, u, (cnt + 1) * 4);
    /* offset 1: the same data one float further, so the vector loads do not apply */
    if (gd && ud && offset) {
        opc_free(c, gd); opc_free(c, ud);
        float *g1 = malloc((cnt + 1) * 4), *u1 = malloc((cnt + 1) * 4);
        memcpy(g1 + 1, g, cnt * 4);
        memcpy(u1 + 1, u, cnt * 4);
        g1[0] = u1[0] = 0;
        gd = opc_up(c, g1, (cnt + 1) * 4);
        ud = opc_up(c, u1, (cnt + 1) * 4);
        free(g1); free(u1);
    }
    if (gd && ud) {
        float *gp = gd + (offset ? 1 : 0), *upp = ud + (offset ? 1 : 0);
        if (opc_st(c, name, c->dev->ops->swiglu_bf16(c->dev, gp, upp, n, I, gp))) opc_cmp(c, name, gp, ref, cnt, 1e-2);
    }
    opc_free(c, gd); opc_free(c, ud);
    free(g); free(u); free(u2); free(ref);
}

/* qkv_prep_kv (the one-row q/k/v GEMV with qk_prep_kv as its epilogue) against the device's own linear_multi +
 * qk_prep_kv on the same inputs and caches: q, the new rows and both caches bit for bit; q also against the
 * reference backend (linear x 3, qk_prep).  expect: the shape is one the fused operation takes (otherwise its
 * DPB_E_UNSUPPORTED is the expected answer, a note). */
static void opc_qkv_prep_kv(opc *c, int64_t nh, int64_t nkv, int64_t hd, int64_t K, bool bias, bool rnd, dpb_kv_dtype dt,
                            int64_t slots, int64_t p0, bool qnorm, bool expect)
{
    const dpb_backend_ops *D = c->dev->ops;
    if (!D->qkv_prep_kv || !D->qk_prep_kv || !D->linear_multi) return;
    char name[160];
    snprintf(name, sizeof name, "qkv_prep_kv %lld/%lld hd=%lld K=%lld%s%s%s %s slots=%lld p0=%lld", (long long)nh,
             (long long)nkv, (long long)hd, (long long)K, bias ? " bias" : "", qnorm ? " q_norm" : "", rnd ? " round" : "",
             dpb_kv_dtype_name(dt), (long long)slots, (long long)p0);
    const dpb_rope_table rt = opc_rope_table(hd, 150000.0f, 1.1f);
    const int64_t outs[3] = {nh * hd, nkv * hd, nkv * hd};
    const size_t qc = (size_t)(nh * hd), kc = (size_t)(nkv * hd), es = dpb_kv_dtype_size(dt);
    const size_t cb = (size_t)(slots * nkv * hd) * es;
    float *x = opc_fv(c, (size_t)K, 1);
    uint16_t *wh[3], *bh[3] = {0};
    dpb_weight wr[3], wd[3];
    const dpb_weight *wdp[3];
    uint16_t *bd[3] = {0};
    const uint16_t *bdp[3] = {0};
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        wh[i] = opc_bv(c, (size_t)(outs[i] * K), 0.05f);
        if (bias && i != 1) bh[i] = opc_bv(c, (size_t)outs[i], 1); /* k without bias, as linear_multi's check */
        wr[i] = (dpb_weight){DPB_W_BF16, outs[i], K, false, wh[i], NULL};
        wd[i] = wr[i];
        wd[i].data = opc_up(c, wh[i], (size_t)(outs[i] * K) * 2);
        bd[i] = bh[i] ? opc_up(c, bh[i], (size_t)outs[i] * 2) : NULL;
        wdp[i] = &wd[i];
        bdp[i] = bd[i];
        ok = ok && wd[i].data && (!bh[i] || bd[i]);
    }
    uint16_t *qn = opc_bv(c, (size_t)hd, 2), *kn = opc_bv(c, (size_t)hd, 2);
    unsigned char *cache = malloc(cb);
    for (size_t i = 0; i < cb; i++) cache[i] = (unsigned char)opc_next(c);
    float *xd = opc_up(c, x, (size_t)K * 4);
    int64_t *pd = opc_up(c, &p0, 8);
    uint16_t *qnd = opc_up(c, qn, (size_t)hd * 2), *knd = opc_up(c, kn, (size_t)hd * 2);
    ok = ok && xd && pd && qnd && knd;
    void *d[2][7] = {{0}}; /* q, k, v, knew, vnew, k cache, v cache */
    for (int w = 0; w < 2 && ok; w++) {
        d[w][0] = opc_nan(c, qc * 4); d[w][1] = opc_nan(c, kc * 4); d[w][2] = opc_nan(c, kc * 4);
        d[w][3] = opc_nan(c, kc * es); d[w][4] = opc_nan(c, kc * es);
        d[w][5] = opc_up(c, cache, cb); d[w][6] = opc_up(c, cache, cb);
        for (int i = 0; i < 7; i++) ok = ok && d[w][i];
    }
    const uint16_t *qq = qnorm ? qnd : NULL, *kk = qnorm ? knd : NULL;
    float *y0[3] = {d[0][0], d[0][1], d[0][2]};
    dpb_status fs = DPB_E_INTERNAL;
    if (ok && opc_st(c, name, dpb_backend_linear_multi(c->dev, 3, wdp, bdp, xd, 1, false, y0)) &&
        opc_st(c, name, D->qk_prep_kv(c->dev, d[0][0], d[0][1], d[0][2], 1, nh, nkv, qq, kk, 1e-6f, pd, &rt, rnd, dt,
                                      d[0][3], d[0][4], d[0][5], d[0][6], slots))) {
        fs = D->qkv_prep_kv(c->dev, wdp, bdp, xd, d[1][0], d[1][1], d[1][2], nh, nkv, qq, kk, 1e-6f, pd, &rt, rnd, dt,
                            d[1][3], d[1][4], d[1][5], d[1][6], slots);
        if (fs == DPB_E_UNSUPPORTED && !expect) {
            fprintf(c->log, "note %-44s not fused (expected): %s\n", name, dpb_error_message());
            dpb_error_clear();
        } else if (opc_st(c, name, fs)) {
            const size_t bytes[7] = {qc * 4, 0, 0, kc * es, kc * es, cb, cb};
            const char *what[7] = {"q", "", "", "knew", "vnew", "k cache", "v cache"};
            opc_same_dev(c, name, d[0], d[1], bytes, what, 7);
        }
    }
    if (fs == DPB_OK) {
        /* q against the reference backend's linear, [round], rope, [round] (the fused operation takes no head
         * norm; the reference has no qk_prep) */
        const dpb_backend_ops *R = c->ref->ops;
        float *rq = malloc(qc * 4 + 16);
        char n2[200];
        snprintf(n2, sizeof n2, "%s q vs ref", name);
        if (opc_st(c, n2, R->linear(c->ref, &wr[0], bh[0], x, 1, rq))) {
            if (rnd) R->round_bf16(c->ref, rq, (int64_t)qc);
            R->rope(c->ref, rq, 1, nh, &p0, &rt);
            if (rnd) R->round_bf16(c->ref, rq, (int64_t)qc);
            opc_cmp(c, n2, d[1][0], rq, qc, 1e-2);
        }
        free(rq);
    }
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < 7; i++) opc_free(c, d[w][i]);
    for (int i = 0; i < 3; i++) {
        opc_free(c, (void *)wd[i].data); opc_free(c, bd[i]);
        free(wh[i]); free(bh[i]);
    }
    opc_free(c, xd); opc_free(c, pd); opc_free(c, qnd); opc_free(c, knd);
    free(x); free(qn); free(kn); free(cache);
}

/* the fused q/k/v + qk_prep_kv cases */
static void opc_run_qkv(opc *c)
{
    opc_qkv_prep_kv(c, 64, 8, 64, 2880, true, true, DPB_KV_BF16, 4096, 2047, false, true);  /* gpt-oss full layer */
    opc_qkv_prep_kv(c, 64, 8, 64, 2880, true, true, DPB_KV_BF16, 128, 300, false, true);    /* sliding: ring */
    opc_qkv_prep_kv(c, 64, 8, 64, 2880, true, false, DPB_KV_F32, 256, 255, false, true);    /* f32 engine */
    opc_qkv_prep_kv(c, 64, 8, 64, 2880, true, true, DPB_KV_FP8, 128, 129, false, true);
    opc_qkv_prep_kv(c, 32, 8, 128, 4096, false, true, DPB_KV_BF16, 8192, 5000, false, true); /* llama-style */
    opc_qkv_prep_kv(c, 28, 4, 128, 3584, true, true, DPB_KV_BF16, 64, 0, false, true);      /* qwen2-style bias */
    opc_qkv_prep_kv(c, 24, 8, 80, 1024, false, true, DPB_KV_F32, 32, 31, false, true);       /* hd 80 */
    opc_qkv_prep_kv(c, 64, 8, 128, 5120, false, true, DPB_KV_BF16, 8192, 5000, true, false); /* Qwen3: head norms */
    opc_qkv_prep_kv(c, 16, 4, 64, 512, true, true, DPB_KV_BF16, 64, 3, false, false);        /* < 2048 rows */
}

/* DPB_OPC_ONLY=decode: the decode step's operations only (the kernels of session 6's decode changes and their
 * neighbours), for a short device call; backend_check's later passes still run after it. */
static void opc_run_decode(opc *c)
{
    opc_embed(c);
    opc_rmsnorm(c, 3, 2880, false);
    opc_rmsnorm(c, 1, 5120, false);
    opc_add_rmsnorm(c, 1, 2880, true, true);
    opc_add_rmsnorm(c, 1, 4096, true, true);
    opc_add_rmsnorm(c, 3, 36, true, true);
    {
        const int64_t qkv[3] = {4096, 512, 512}, odd[3] = {72, 8, 200};
        opc_linear_multi(c, 3, qkv, 2880, 1, false);
        opc_linear_multi(c, 3, odd, 96, 2, true);
    }
    opc_qk_prep(c, 1, 64, 8, 64, false, true, DPB_KV_BF16);
    opc_qk_prep(c, 4, 8, 2, 128, true, false, DPB_KV_F32);
    opc_qk_prep_kv(c, 1, 64, 8, 64, false, true, DPB_KV_BF16, 4096, 2047);
    opc_qk_prep_kv(c, 1, 64, 8, 128, true, true, DPB_KV_BF16, 8192, 5000);
    opc_qk_prep_kv(c, 3, 16, 4, 64, true, false, DPB_KV_BF16, 8, 6);
    opc_run_qkv(c);
    opc_attention(c, 1, 0, 64, 8, 64, 4096, 0, DPB_KV_BF16, true);
    opc_attention(c, 1, 2047, 64, 8, 64, 4096, 0, DPB_KV_BF16, true);
    opc_attention(c, 1, 300, 64, 8, 64, 128, 128, DPB_KV_BF16, true);
    opc_attention(c, 1, 5000, 8, 2, 128, 8192, 0, DPB_KV_F32, false);
    opc_attention(c, 1, 8191, 32, 2, 128, 8192, 0, DPB_KV_BF16, true);
    opc_attention(c, 1, 9000, 64, 8, 64, 4096, 128, DPB_KV_BF16, true);
    opc_attention(c, 1, 3000, 16, 1, 64, 4096, 0, DPB_KV_F32, true);
    opc_attention(c, 9, 1500, 64, 8, 128, 2048, 0, DPB_KV_BF16, false);
    opc_attention_batch(c, 5, 7, 64, 8, 64, 4096, 0, 4095, DPB_KV_BF16, true);
    opc_argmax(c);
    opc_argmax_rows(c, 3, 151936);
    opc_argmax_rows(c, 300, 1000);
    opc_router_fused(c, 1, 32, 2880, 4, true, true, false);
    opc_router_fused(c, 1, 32, 2880, 4, true, true, true);
    opc_router_fused(c, 3, 32, 2880, 4, true, true, true);
    opc_router_fused(c, 4, 128, 512, 8, true, false, true);
    for (int r = 0; r < 2; r++) {
        opc_moe(c, DPB_W_MXFP4, false, 8, 512, 256, 4, 1, r);
        opc_moe(c, DPB_W_MXFP4, false, 8, 512, 256, 4, 3, r);
    }
    opc_moe(c, DPB_W_MXFP4, false, 32, 2880, 2880, 4, 1, true);
    opc_moe(c, DPB_W_MXFP4, false, 32, 512, 256, 4, 9, true); /* session 4's PDL failure: n = 9, round */
}

/* swiglu_mlp (gate/up GEMMs, SwiGLU with bf16 rounds, down GEMM in one operation) against the reference's linear,
 * linear, round, round, swiglu, round, linear, on an x rounded to bf16 on the device (as add_rmsnorm leaves it in
 * bf16 mode).  want_ok: the shape is one the CUDA backend takes (else it must answer DPB_E_UNSUPPORTED with out
 * untouched); round_x false: x not bf16-exact, which it must refuse. */
static void opc_swiglu_mlp(opc *c, int64_t n, int64_t H, int64_t I, bool bias_down, bool round_x, bool want_ok)
{
    char name[128];
    snprintf(name, sizeof name, "swiglu_mlp n=%lld H=%lld I=%lld%s%s", (long long)n, (long long)H, (long long)I,
             bias_down ? " +down bias" : "", round_x ? "" : " (x not rounded)");
    if (!c->dev->ops->swiglu_mlp) return;
    const size_t nx = (size_t)(n * H), ni = (size_t)(n * I);
    float *x = opc_fv(c, nx, 1);
    uint16_t *wg = opc_bv(c, (size_t)(I * H), 0.05f), *wu = opc_bv(c, (size_t)(I * H), 0.05f);
    uint16_t *wdn = opc_bv(c, (size_t)(H * I), 0.05f), *bh = bias_down ? opc_bv(c, (size_t)H, 1) : NULL;
    float *g = malloc(ni * 4), *u = malloc(ni * 4), *ref = malloc(nx * 4);
    dpb_weight rg = {DPB_W_BF16, I, H, false, wg, NULL}, ru = {DPB_W_BF16, I, H, false, wu, NULL};
    dpb_weight rd = {DPB_W_BF16, H, I, false, wdn, NULL};
    if (round_x) c->ref->ops->round_bf16(c->ref, x, (int64_t)nx);
    c->ref->ops->linear(c->ref, &rg, NULL, x, n, g);
    c->ref->ops->linear(c->ref, &ru, NULL, x, n, u);
    c->ref->ops->round_bf16(c->ref, g, (int64_t)ni);
    c->ref->ops->round_bf16(c->ref, u, (int64_t)ni);
    c->ref->ops->swiglu(c->ref, g, u, n, I, g);
    c->ref->ops->round_bf16(c->ref, g, (int64_t)ni);
    c->ref->ops->linear(c->ref, &rd, bh, g, n, ref);
    dpb_weight dg = rg, du = ru, dd = rd;
    dg.data = opc_up(c, wg, (size_t)(I * H) * 2);
    du.data = opc_up(c, wu, (size_t)(I * H) * 2);
    dd.data = opc_up(c, wdn, (size_t)(H * I) * 2);
    uint16_t *bd = bh ? opc_up(c, bh, (size_t)H * 2) : NULL;
    float *xd = opc_up(c, x, nx * 4), *ta = opc_nan(c, ni * 4), *tb = opc_nan(c, ni * 4), *out = opc_nan(c, nx * 4);
    if (dg.data && du.data && dd.data && xd && ta && tb && out) {
        int ok = !round_x || opc_st(c, name, c->dev->ops->round_bf16(c->dev, xd, (int64_t)nx));
        if (ok) {
            dpb_status st = c->dev->ops->swiglu_mlp(c->dev, &dg, NULL, &du, NULL, xd, n, ta, tb, &dd, bd, out);
            if (want_ok) {
                if (opc_st(c, name, st)) opc_cmp(c, name, out, ref, nx, 1e-2);
            } else {
                c->checks++;
                float *h = malloc(nx * 4);
                int nan = !c->dev->ops->sync(c->dev) && !c->dev->ops->download(c->dev, h, out, nx * 4);
                for (size_t i = 0; nan && i < nx; i++) nan = isnan(h[i]);
                int good = st == DPB_E_UNSUPPORTED && nan;
                fprintf(c->log, "%s %-44s %s\n", good ? "ok  " : "FAIL", name,
                        good ? "refused, out untouched" : "not refused, or out written");
                if (!good) c->fails++;
                free(h);
                /* what the engine then does: the two calls */
                float *const y2[2] = {ta, tb};
                const dpb_weight *w2[2] = {&dg, &du};
                if (opc_st(c, name, dpb_backend_linear_multi(c->dev, 2, w2, NULL, xd, n, false, y2)) &&
                    opc_st(c, name, c->dev->ops->swiglu_down(c->dev, ta, tb, n, I, &dd, bd, out)))
                    opc_cmp(c, name, out, ref, nx, 1e-2);
            }
        }
    }
    opc_free(c, (void *)dg.data); opc_free(c, (void *)du.data); opc_free(c, (void *)dd.data); opc_free(c, bd);
    opc_free(c, xd); opc_free(c, ta); opc_free(c, tb); opc_free(c, out);
    free(x); free(wg); free(wu); free(wdn); free(bh); free(g); free(u); free(ref);
}

/* n floats of the reference against n bf16 values in device memory (relative to the largest reference value). */
static void opc_cmp_bf16(opc *c, const char *name, const void *dev, const float *ref, size_t n, double tol)
{
    uint16_t *h = opc_down(c, name, dev, n * 2);
    if (!h) return;
    double md = 0, mr = 0;
    int nan = 0;
    for (size_t i = 0; i < n; i++) {
        const float v = dpb_bf16_to_f32(h[i]);
        if (isnan(v) != isnan(ref[i])) nan++;
        if (isnan(ref[i])) continue;
        md = fmax(md, fabs((double)v - ref[i]));
        mr = fmax(mr, fabs(ref[i]));
    }
    const double rel = mr > 0 ? md / mr : md;
    const int ok = !nan && rel <= tol;
    c->checks++;
    fprintf(c->log, "%s %-44s rel %.3g (bound %.0e)%s\n", ok ? "ok  " : "FAIL", name, rel, tol, nan ? " NaN!" : "");
    if (!ok) c->fails++;
    free(h);
}

/* qkv_prep against the reference's linear x 3 (+ bias), round, [rmsnorm per head, round], rope, round, to_kv, on an x
 * rounded on the device.  want_ok false: a case the CUDA backend must refuse (DPB_E_UNSUPPORTED, q untouched). */
static void opc_qkv_prep(opc *c, int64_t n, int64_t H, int64_t nh, int64_t nkv, int64_t hd, bool qnorm, bool bias,
                         bool round_x, dpb_kv_dtype dt, bool want_ok)
{
    const dpb_backend_ops *D = c->dev->ops, *R = c->ref->ops;
    if (!D->qkv_prep) return;
    char name[140];
    snprintf(name, sizeof name, "qkv_prep n=%lld H=%lld %lld/%lld hd=%lld%s%s%s %s", (long long)n, (long long)H,
             (long long)nh, (long long)nkv, (long long)hd, qnorm ? " q_norm" : "", bias ? " +bias" : "",
             round_x ? "" : " (x not rounded)", dpb_kv_dtype_name(dt));
    const dpb_rope_table rt = opc_rope_table(hd, 150000.0f, 1.1f);
    int64_t *pos = malloc((size_t)n * 8);
    const int64_t p0 = (int64_t)(opc_next(c) % 4096);
    for (int64_t t = 0; t < n; t++) pos[t] = p0 + t;
    const int64_t od[3] = {nh * hd, nkv * hd, nkv * hd};
    const size_t qc = (size_t)(n * od[0]), kc = (size_t)(n * od[1]), es = dpb_kv_dtype_size(dt);
    float *x = opc_fv(c, (size_t)(n * H), 1);
    if (round_x) R->round_bf16(c->ref, x, n * H);
    uint16_t *wh[3], *bh[3] = {0}, *bd[3] = {0};
    float *ry[3];
    dpb_weight wd[3];
    const dpb_weight *wp[3];
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        wh[i] = opc_bv(c, (size_t)(od[i] * H), 0.05f);
        if (bias) bh[i] = opc_bv(c, (size_t)od[i], 1);
        ry[i] = malloc((size_t)(n * od[i]) * 4);
        dpb_weight wr = {DPB_W_BF16, od[i], H, false, wh[i], NULL};
        R->linear(c->ref, &wr, bh[i], x, n, ry[i]);
        wd[i] = wr;
        wd[i].data = opc_up(c, wh[i], (size_t)(od[i] * H) * 2);
        if (bias) bd[i] = opc_up(c, bh[i], (size_t)od[i] * 2);
        wp[i] = &wd[i];
        ok = ok && wd[i].data && (!bias || bd[i]);
    }
    uint16_t *qn = opc_bv(c, (size_t)hd, 2), *kn = opc_bv(c, (size_t)hd, 2);
    float *rq = ry[0], *rk = ry[1], *rv = ry[2];
    R->round_bf16(c->ref, rq, (int64_t)qc);
    R->round_bf16(c->ref, rk, (int64_t)kc);
    if (qnorm) {
        R->rmsnorm(c->ref, rq, qn, n * nh, hd, 1e-6f, rq);
        R->rmsnorm(c->ref, rk, kn, n * nkv, hd, 1e-6f, rk);
        R->round_bf16(c->ref, rq, (int64_t)qc);
        R->round_bf16(c->ref, rk, (int64_t)kc);
    }
    R->rope(c->ref, rq, n, nh, pos, &rt);
    R->rope(c->ref, rk, n, nkv, pos, &rt);
    R->round_bf16(c->ref, rq, (int64_t)qc);
    R->round_bf16(c->ref, rv, (int64_t)kc); /* what to_kv bf16 keeps */
    float *xd = opc_up(c, x, (size_t)(n * H) * 4);
    float *qd = opc_nan(c, qc * 4), *kd = opc_nan(c, kc * 4), *vd = opc_nan(c, kc * 4);
    void *knd = opc_nan(c, kc * es), *vnd = opc_nan(c, kc * es);
    int64_t *pd = opc_up(c, pos, (size_t)n * 8);
    uint16_t *qnd = opc_up(c, qn, (size_t)hd * 2), *knw = opc_up(c, kn, (size_t)hd * 2);
    ok = ok && xd && qd && kd && vd && knd && vnd && pd && qnd && knw;
    if (ok && round_x) ok = opc_st(c, name, D->round_bf16(c->dev, xd, n * H));
    if (ok) {
        const uint16_t *bp[3] = {bd[0], bd[1], bd[2]};
        dpb_status st = D->qkv_prep(c->dev, wp, bias ? bp : NULL, xd, n, qd, kd, vd, nh, nkv, qnorm ? qnd : NULL,
                                    qnorm ? knw : NULL, 1e-6f, pd, &rt, true, dt, knd, vnd);
        if (want_ok) {
            if (opc_st(c, name, st)) {
                char n2[200];
                opc_cmp(c, name, qd, rq, qc, 1e-2);
                snprintf(n2, sizeof n2, "%s knew", name);
                opc_cmp_bf16(c, n2, knd, rk, kc, 1e-2);
                snprintf(n2, sizeof n2, "%s vnew", name);
                opc_cmp_bf16(c, n2, vnd, rv, kc, 1e-2);
            }
        } else {
            c->checks++;
            float *h = opc_down(c, name, qd, qc * 4);
            int nan = h != NULL;
            for (size_t i = 0; nan && i < qc; i++) nan = isnan(h[i]);
            const int good = st == DPB_E_UNSUPPORTED && nan;
            fprintf(c->log, "%s %-44s %s\n", good ? "ok  " : "FAIL", name, good ? "refused, q untouched" : "not refused, or q written");
            if (!good) c->fails++;
            free(h);
        }
    }
    for (int i = 0; i < 3; i++) {
        opc_free(c, (void *)wd[i].data); opc_free(c, bd[i]);
        free(wh[i]); free(bh[i]); free(ry[i]);
    }
    opc_free(c, xd); opc_free(c, qd); opc_free(c, kd); opc_free(c, vd); opc_free(c, knd); opc_free(c, vnd);
    opc_free(c, pd); opc_free(c, qnd); opc_free(c, knw);
    free(pos); free(x); free(qn); free(kn);
}

/* qk_prep of n rows in one call (the warp-per-head kernel) against n one-row calls (the block-per-head kernel) on the
 * same inputs: q and the new k / v rows bit for bit (the per-head norm's sum of squares in the same order). */
static void opc_qk_prep_rows(opc *c, int64_t n, int64_t nh, int64_t nkv, int64_t hd, bool qnorm, bool rnd, dpb_kv_dtype dt)
{
    const dpb_backend_ops *D = c->dev->ops;
    if (!D->qk_prep || n > 64) return;
    char name[140];
    snprintf(name, sizeof name, "qk_prep n=%lld %lld/%lld hd=%lld%s%s %s = rows", (long long)n, (long long)nh, (long long)nkv,
             (long long)hd, qnorm ? " q_norm" : "", rnd ? " round" : "", dpb_kv_dtype_name(dt));
    const dpb_rope_table rt = opc_rope_table(hd, 1000000.0f, 1.0f);
    int64_t pos[64];
    for (int64_t t = 0; t < n; t++) pos[t] = 100 + 7 * t;
    const size_t qc = (size_t)(n * nh * hd), kc = (size_t)(n * nkv * hd), es = dpb_kv_dtype_size(dt);
    float *q = opc_fv(c, qc, 3), *k = opc_fv(c, kc, 3), *v = opc_fv(c, kc, 3);
    uint16_t *qn = opc_bv(c, (size_t)hd, 2), *kn = opc_bv(c, (size_t)hd, 2);
    void *d[2][5] = {{0}};
    int64_t *pd = opc_up(c, pos, (size_t)n * 8);
    uint16_t *qnd = opc_up(c, qn, (size_t)hd * 2), *knw = opc_up(c, kn, (size_t)hd * 2);
    int ok = pd && qnd && knw;
    for (int w = 0; w < 2 && ok; w++) {
        d[w][0] = opc_up(c, q, qc * 4); d[w][1] = opc_up(c, k, kc * 4); d[w][2] = opc_up(c, v, kc * 4);
        d[w][3] = opc_nan(c, kc * es); d[w][4] = opc_nan(c, kc * es);
        for (int i = 0; i < 5; i++) ok = ok && d[w][i];
    }
    const uint16_t *qq = qnorm ? qnd : NULL, *kk = qnorm ? knw : NULL;
    if (ok) ok = opc_st(c, name, D->qk_prep(c->dev, d[0][0], d[0][1], d[0][2], n, nh, nkv, qq, kk, 1e-6f, pd, &rt, rnd, dt,
                                            d[0][3], d[0][4]));
    for (int64_t t = 0; t < n && ok; t++)
        ok = opc_st(c, name, D->qk_prep(c->dev, (float *)d[1][0] + t * nh * hd, (float *)d[1][1] + t * nkv * hd,
                                        (float *)d[1][2] + t * nkv * hd, 1, nh, nkv, qq, kk, 1e-6f, pd + t, &rt, rnd, dt,
                                        (char *)d[1][3] + (size_t)(t * nkv * hd) * es,
                                        (char *)d[1][4] + (size_t)(t * nkv * hd) * es));
    if (ok) {
        const size_t bytes[5] = {qc * 4, 0, 0, kc * es, kc * es};
        const char *what[5] = {"q", "", "", "knew", "vnew"};
        opc_same_dev(c, name, d[1], d[0], bytes, what, 5);
    }
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < 5; i++) opc_free(c, d[w][i]);
    opc_free(c, pd); opc_free(c, qnd); opc_free(c, knw);
    free(q); free(k); free(v); free(qn); free(kn);
}

/* Session 6's prefill paths (swiglu_mlp, bias epilogues). */
static void opc_run_dpf(opc *c, int big)
{
    opc_swiglu_mlp(c, 64, 256, 512, false, true, true);
    opc_swiglu_mlp(c, 33, 96, 100, true, true, true);   /* bf16 rows of 200 bytes: cuBLASLt's alignment limits */
    opc_swiglu_mlp(c, 17, 64, 77, false, true, true);   /* odd I: the SwiGLU pass's scalar tail */
    opc_swiglu_mlp(c, 64, 256, 512, false, false, false); /* x not bf16-exact: refused */
    opc_swiglu_mlp(c, 8, 256, 512, false, true, false);   /* decode-sized: refused */
    if (big) opc_swiglu_mlp(c, 300, 1024, 2816, true, true, true);
    opc_linear_case(c, DPB_W_BF16, false, 1000, 512, 64, true, true);
    opc_linear_case(c, DPB_W_BF16, false, 100, 96, 9, true, true);
    opc_linear_case(c, DPB_W_BF16, true, 576, 128, 40, true, true);
    {
        const int64_t qkv[3] = {4096, 512, 512}, odd[3] = {72, 8, 200};
        opc_linear_multi_ex(c, 3, qkv, 2880, big ? 256 : 16, false, true);
        opc_linear_multi_ex(c, 3, odd, 96, 37, false, true);
    }
    opc_qkv_prep(c, 64, 256, 8, 2, 128, true, false, true, DPB_KV_BF16, true);   /* Qwen3-like */
    opc_qkv_prep(c, 40, 192, 8, 4, 64, false, true, true, DPB_KV_BF16, true);    /* gpt-oss-like: biases */
    opc_qkv_prep(c, 17, 96, 4, 2, 32, true, false, true, DPB_KV_BF16, true);     /* the tiny presets' head_dim */
    opc_qkv_prep(c, 33, 128, 4, 4, 128, false, false, true, DPB_KV_BF16, true);  /* Llama-like */
    opc_qkv_prep(c, 64, 256, 8, 2, 128, true, false, false, DPB_KV_BF16, false); /* x not bf16-exact: refused */
    opc_qkv_prep(c, 64, 256, 8, 2, 128, true, false, true, DPB_KV_FP8, false);   /* fp8 cache: refused */
    opc_qkv_prep(c, 8, 256, 8, 2, 128, true, false, true, DPB_KV_BF16, false);   /* decode-sized: refused */
    if (big) opc_qkv_prep(c, 128, 512, 16, 4, 128, true, true, true, DPB_KV_BF16, true);
    opc_qk_prep_rows(c, 16, 64, 8, 128, true, true, DPB_KV_BF16);  /* Qwen3: E = 4 */
    opc_qk_prep_rows(c, 9, 16, 4, 64, true, true, DPB_KV_BF16);    /* E = 2 */
    opc_qk_prep_rows(c, 5, 8, 2, 32, true, false, DPB_KV_F32);     /* E = 1 */
    opc_qk_prep_rows(c, 12, 56, 8, 128, false, true, DPB_KV_BF16); /* Yi: no norm */
}

static void opc_run_all(opc *c, int big)
{
    {
        const char *only = getenv("DPB_OPC_ONLY");
        if (only && strcmp(only, "decode") == 0) {
            opc_run_decode(c);
            return;
        }
    }
    opc_embed(c);
    opc_linear(c, big);
    opc_rmsnorm(c, 3, 2880, false);
    opc_rmsnorm(c, 3, 2880, true);
    opc_rmsnorm(c, 16, 64, true);
    opc_rope(c, 5, 8, 64, 1.3466f);
    opc_rope(c, 3, 40, 128, 1.0f);
    opc_rope(c, 7, 4, 32, 1.0f);
    opc_attention(c, 1, 0, 64, 8, 64, 4096, 0, DPB_KV_BF16, true);
    opc_attention(c, 1, 2047, 64, 8, 64, 4096, 0, DPB_KV_BF16, true);
    opc_attention(c, 1, 300, 64, 8, 64, 128, 128, DPB_KV_BF16, true);
    opc_attention(c, 1, 5000, 8, 2, 128, 8192, 0, DPB_KV_F32, false);
    opc_attention(c, 17, 40, 4, 2, 32, 8, 8, DPB_KV_BF16, true);
    opc_attention(c, 17, 40, 4, 2, 32, 8, 8, DPB_KV_F32, true);
    opc_attention(c, 33, 100, 16, 4, 64, 256, 0, DPB_KV_F32, false);
    opc_attention(c, 7, 0, 40, 8, 128, 64, 0, DPB_KV_BF16, false);
    opc_attention(c, 48, 0, 4, 2, 32, 80, 0, DPB_KV_F32, true);
    opc_kv_write(c, 8, 16, 11, 5, DPB_KV_BF16);
    opc_kv_write(c, 8, 16, 3, 6, DPB_KV_F32);
    opc_kv_write(c, 64, 512, 1, 63, DPB_KV_BF16);
    opc_kv_write(c, 64, 512, 40, 50, DPB_KV_BF16); /* more rows than one launch takes: copies */
    opc_kv_write(c, 5, 3, 7, 2, DPB_KV_BF16);      /* rows of 6 bytes: copies */
    opc_argmax(c);
    opc_argmax_rows(c, 3, 151936);
    opc_argmax_rows(c, 300, 1000); /* more rows than one launch takes */
    opc_argmax_rows(c, 2, 1);
    opc_argmax_rows(c, 4, 2047);
    opc_add_rmsnorm(c, 1, 2880, true, true);
    opc_add_rmsnorm(c, 5, 5120, false, true);
    opc_add_rmsnorm(c, 3, 7168, true, false);
    opc_add_rmsnorm(c, 2, 9000, true, true); /* wider than the fused kernel: the separate steps */
    opc_add_rmsnorm(c, 2, 2882, true, true); /* dim % 4 != 0: the scalar kernel */
    opc_add_rmsnorm(c, 1, 4096, true, true);
    opc_add_rmsnorm(c, 4, 8192, false, true);
    opc_add_rmsnorm(c, 3, 36, true, true);
    opc_rmsnorm(c, 1, 5120, false);
    opc_rmsnorm(c, 2, 2882, true);
    opc_rmsnorm(c, 64, 128, true);
    opc_qk_prep(c, 1, 64, 8, 64, false, true, DPB_KV_BF16);
    opc_qk_prep(c, 3, 64, 8, 128, true, true, DPB_KV_BF16);
    opc_qk_prep(c, 2, 16, 4, 64, false, false, DPB_KV_F32);
    opc_qk_prep(c, 4, 8, 2, 128, true, false, DPB_KV_F32);
    opc_qk_prep_kv(c, 1, 64, 8, 64, false, true, DPB_KV_BF16, 4096, 2047);  /* gpt-oss full layer */
    opc_qk_prep_kv(c, 1, 64, 8, 64, false, true, DPB_KV_BF16, 128, 300);    /* sliding layer: ring */
    opc_qk_prep_kv(c, 1, 64, 8, 128, true, true, DPB_KV_BF16, 8192, 5000);  /* Qwen3 */
    opc_qk_prep_kv(c, 1, 64, 8, 64, false, false, DPB_KV_F32, 256, 255);
    opc_qk_prep_kv(c, 1, 64, 8, 64, false, true, DPB_KV_FP8, 128, 129);
    opc_qk_prep_kv(c, 3, 16, 4, 64, true, false, DPB_KV_BF16, 8, 6);        /* rows across the ring's end */
    opc_run_qkv(c);
    opc_to_kv_round(c);
    opc_router(c, 7, 32, 4);
    opc_router(c, 300, 128, 8);
    opc_router(c, 5, 8, 4);
    opc_router_x(c, 8, 32, 4, true);
    opc_router_x(c, 8, 128, 8, true);
    opc_router_x(c, 9, 1024, 64, false);
    opc_router_x(c, 1, 40, 33, true);
    opc_router_fused(c, 1, 32, 2880, 4, true, true, false);  /* gpt-oss-20b, bf16 engine */
    opc_router_fused(c, 1, 32, 2880, 4, false, true, false); /* f32 engine */
    opc_router_fused(c, 1, 32, 2880, 4, true, true, true);
    opc_router_fused(c, 1, 32, 2880, 4, false, true, true);
    opc_router_fused(c, 3, 32, 2880, 4, true, true, true);
    opc_router_fused(c, 4, 128, 512, 8, true, false, true);
    opc_router_fused(c, 2, 8, 64, 4, false, true, false);
    opc_router_fused(c, 1, 40, 512, 33, true, true, true);
    opc_router_fused(c, 1, 255, 2880, 4, true, true, true);
    opc_router_fused(c, 1, 256, 256, 4, true, true, true); /* not fused: the three calls */
    opc_router_fused(c, 5, 32, 256, 4, true, true, false); /* not fused */
    for (int r = 0; r < 2; r++) {
        opc_moe(c, DPB_W_MXFP4, false, 8, 512, 256, 4, 1, r);
        opc_moe(c, DPB_W_MXFP4, false, 8, 512, 256, 4, 3, r);
        opc_moe(c, DPB_W_MXFP4, false, 8, 512, 256, 4, 13, r);
        opc_moe(c, DPB_W_BF16, true, 8, 128, 128, 4, 5, r);
        opc_moe(c, DPB_W_BF16, false, 8, 128, 64, 2, 3, r);
    }
    opc_moe(c, DPB_W_MXFP4, false, 8, 128, 128, 4, 48, true); /* the tiny fixture's shape, prefill */
    opc_moe(c, DPB_W_MXFP4, false, 8, 128, 128, 4, 48, false);
    if (big) {
        opc_moe(c, DPB_W_MXFP4, false, 32, 2880, 2880, 4, 1, true);
        opc_moe(c, DPB_W_MXFP4, false, 32, 1024, 512, 4, 64, true);
        opc_moe(c, DPB_W_MXFP4, false, 32, 1024, 512, 4, 64, false);
        opc_run_moe_grouped(c);
    }
    opc_run_attn_prefill(c, big);
    opc_elementwise(c);
    opc_attention_batch(c, 5, 7, 64, 8, 64, 4096, 0, 4095, DPB_KV_BF16, true);
    opc_attention_batch(c, 3, 4, 64, 8, 64, 128, 128, 3000, DPB_KV_BF16, true);
    opc_attention_batch(c, 16, 16, 64, 8, 128, 2048, 0, 2047, DPB_KV_F32, false);
    opc_attention_batch(c, 4, 5, 56, 8, 128, 1024, 0, 1023, DPB_KV_BF16, false);
    opc_attention_batch(c, 1, 2, 64, 8, 64, 64, 0, 63, DPB_KV_BF16, true);
    opc_attention_batch(c, 3, 4, 8, 2, 32, 96, 16, 95, DPB_KV_F32, true); /* the tiny presets' shape */
    {
        const int64_t qkv[3] = {4096, 512, 512}, gu[2] = {1000, 1000}, odd[3] = {72, 8, 200};
        opc_linear_multi(c, 3, qkv, 2880, 1, false);
        opc_linear_multi(c, 2, gu, 512, 4, true);
        opc_linear_multi(c, 3, odd, 96, 2, true);
        opc_linear_multi(c, 2, gu, 512, 9, true); /* more rows than the fused kernel takes: one by one */
        opc_linear_multi(c, 1, qkv, 2880, 3, false);
    }
    opc_swiglu_bf16(c, 3, 1000, 0);
    opc_swiglu_bf16(c, 5, 77, 1);
    opc_swiglu_bf16(c, 1, 25600, 0);
    opc_run_dpf(c, big);
    if (big) opc_attention_batch(c, 128, 128, 64, 8, 64, 2048, 0, 2047, DPB_KV_BF16, true);
    /* the flash-decoding kernel's shapes in bf16 and f32: 16 heads per kv head, split merges, short chunks */
    opc_attention(c, 1, 8191, 32, 2, 128, 8192, 0, DPB_KV_BF16, true);
    opc_attention(c, 1, 9000, 64, 8, 64, 4096, 128, DPB_KV_BF16, true);
    opc_attention(c, 1, 3000, 16, 1, 64, 4096, 0, DPB_KV_F32, true);
    opc_attention(c, 9, 1500, 64, 8, 128, 2048, 0, DPB_KV_BF16, false);
    opc_attention_batch(c, 2, 3, 32, 2, 128, 8192, 0, 8191, DPB_KV_BF16, true);
    opc_run_fp8(c, big);
}

#endif
