/* Backend operations: the fast cpu kernels against the plain reference, and
 * the reference against hand-computed values. */
#include <math.h>
#include <stdint.h>
#include "t.h"
#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "format/config.h"
#include "format/dtype.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float frand(void) { return (float)(rnd() % 20001) / 10000.0f - 1.0f; }

static dpb_backend *ref, *cpu;

static double max_rel(const float *a, const float *b, size_t n)
{
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > mr) mr = fabs(b[i]);
    }
    return mr > 0 ? md / mr : md;
}

typedef struct mat {
    dpb_weight w;
    void *data;
    uint8_t *scales;
} mat;

static void mat_make(mat *m, dpb_wfmt fmt, int64_t out, int64_t in, bool transposed)
{
    memset(m, 0, sizeof *m);
    m->w.fmt = fmt;
    m->w.out = out;
    m->w.in = in;
    m->w.transposed = transposed;
    size_t n = (size_t)(out * in);
    if (fmt == DPB_W_F32) {
        float *d = malloc(n * 4);
        for (size_t i = 0; i < n; i++) d[i] = frand();
        m->data = d;
    } else if (fmt == DPB_W_BF16) {
        uint16_t *d = malloc(n * 2);
        for (size_t i = 0; i < n; i++) d[i] = dpb_f32_to_bf16(frand());
        m->data = d;
    } else {
        uint8_t *d = malloc(n / 2);
        for (size_t i = 0; i < n / 2; i++) d[i] = (uint8_t)rnd();
        m->scales = malloc(n / 32);
        for (size_t i = 0; i < n / 32; i++) m->scales[i] = (uint8_t)(120 + rnd() % 10);
        m->data = d;
    }
    m->w.data = m->data;
    m->w.scales = m->scales;
}
static void mat_free(mat *m) { free(m->data); free(m->scales); }

static void check_linear(dpb_wfmt fmt, int64_t out, int64_t in, bool tr, bool with_bias)
{
    mat m;
    mat_make(&m, fmt, out, in, tr);
    uint16_t *bias = NULL;
    if (with_bias) {
        bias = malloc((size_t)out * 2);
        for (int64_t i = 0; i < out; i++) bias[i] = dpb_f32_to_bf16(frand());
    }
    const int64_t N = 7;
    float *x = malloc((size_t)(N * in) * 4), *yr = malloc((size_t)(N * out) * 4), *yc = malloc((size_t)(N * out) * 4),
          *y1 = malloc((size_t)out * 4);
    for (int64_t i = 0; i < N * in; i++) x[i] = frand();
    T_CHECK(ref->ops->linear(ref, &m.w, bias, x, N, yr) == DPB_OK);
    T_CHECK(cpu->ops->linear(cpu, &m.w, bias, x, N, yc) == DPB_OK);
    double e = max_rel(yc, yr, (size_t)(N * out));
    T_CHECKF(e < 1e-5, "fmt %d %lldx%lld tr %d: rel err %g", fmt, (long long)out, (long long)in, tr, e);
    /* Batch invariance: each row alone gives bitwise the same output. */
    int same = 1;
    for (int64_t t = 0; t < N; t++) {
        cpu->ops->linear(cpu, &m.w, bias, x + t * in, 1, y1);
        if (memcmp(y1, yc + t * out, (size_t)out * 4) != 0) same = 0;
    }
    T_CHECKF(same, "fmt %d %lldx%lld tr %d: one row differs from the batched result", fmt, (long long)out,
             (long long)in, tr);
    free(x); free(yr); free(yc); free(y1); free(bias);
    mat_free(&m);
}

static void test_linear_bf16(void)
{
    check_linear(DPB_W_BF16, 37, 64, false, true);
    check_linear(DPB_W_BF16, 128, 96, false, false);
    check_linear(DPB_W_BF16, 5, 13, false, false); /* odd input size: scalar path */
}
static void test_linear_f32(void) { check_linear(DPB_W_F32, 33, 40, false, true); }
static void test_linear_bf16_transposed(void)
{
    check_linear(DPB_W_BF16, 256, 48, true, true);
    check_linear(DPB_W_BF16, 72, 32, true, false);
    check_linear(DPB_W_BF16, 12, 8, true, false); /* out not a multiple of 8 */
}
static void test_linear_mxfp4(void)
{
    check_linear(DPB_W_MXFP4, 45, 64, false, true);
    check_linear(DPB_W_MXFP4, 256, 128, false, false);
}

/* A hand-built MXFP4 row: element 2j in the low nibble, 2j+1 in the high. */
static void test_mxfp4_layout(void)
{
    uint8_t blocks[16] = {0}, scales[1] = {128}; /* scale 2^1 */
    blocks[0] = 0x2 | (0x9 << 4);  /* e0 = 1.0, e1 = -0.5 */
    blocks[15] = 0x7 | (0xF << 4); /* e30 = 6, e31 = -6 */
    dpb_weight w = {DPB_W_MXFP4, 1, 32, false, blocks, scales};
    T_CHECK(dpb_weight_get(&w, 0, 0) == 2.0f);
    T_CHECK(dpb_weight_get(&w, 0, 1) == -1.0f);
    T_CHECK(dpb_weight_get(&w, 0, 30) == 12.0f);
    T_CHECK(dpb_weight_get(&w, 0, 31) == -12.0f);
    float x[32] = {0}, y;
    x[0] = 1; x[1] = 10; x[30] = 100; x[31] = 1000;
    T_CHECK(cpu->ops->linear(cpu, &w, NULL, x, 1, &y) == DPB_OK);
    T_CHECKF(y == 2.0f - 10.0f + 1200.0f - 12000.0f, "got %g", y);
    T_CHECK(dpb_e8m0_to_f32(127) == 1.0f && dpb_e8m0_to_f32(130) == 8.0f && isnan(dpb_e8m0_to_f32(255)));
}

static void test_rmsnorm(void)
{
    float x[8] = {1, 2, 3, 4, -1, -2, -3, -4}, y[8];
    uint16_t w[4] = {dpb_f32_to_bf16(1), dpb_f32_to_bf16(2), dpb_f32_to_bf16(0.5f), dpb_f32_to_bf16(1)};
    T_CHECK(cpu->ops->rmsnorm(cpu, x, w, 2, 4, 1e-5f, y) == DPB_OK);
    float r = 1.0f / sqrtf(30.0f / 4 + 1e-5f);
    T_CHECK(fabsf(y[0] - 1 * r) < 1e-6f && fabsf(y[1] - 4 * r) < 1e-6f && fabsf(y[2] - 1.5f * r) < 1e-6f);
    T_CHECK(fabsf(y[7] + 4 * r) < 1e-6f);
}

static void test_rope_default(void)
{
    dpb_rope r = {0};
    r.type = DPB_ROPE_DEFAULT;
    r.theta = 10000;
    dpb_rope_table rt;
    T_CHECK(dpb_rope_table_init(&r, 8, 4096, &rt) == DPB_OK);
    T_CHECK(fabsf(rt.inv_freq[0] - 1.0f) < 1e-7f && fabsf(rt.inv_freq[1] - 0.1f) < 1e-7f);
    T_CHECK(rt.attention_scaling == 1.0f);
    float x[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    int64_t pos = 3;
    cpu->ops->rope(cpu, x, 1, 1, &pos, &rt);
    /* rotate-half: x[0] -> cos(3), x[4] -> sin(3) */
    T_CHECK(fabsf(x[0] - cosf(3)) < 1e-6f && fabsf(x[4] - sinf(3)) < 1e-6f);
}

/* YaRN as transformers computes it for gpt-oss (factor 32, beta 32/1, original 4096, truncate false). */
static void test_rope_yarn(void)
{
    dpb_rope r = {0};
    r.type = DPB_ROPE_YARN;
    r.theta = 150000;
    r.factor = 32;
    r.beta_fast = 32;
    r.beta_slow = 1;
    r.original_max_position = 4096;
    r.truncate = false;
    dpb_rope_table rt;
    T_CHECK(dpb_rope_table_init(&r, 64, 131072, &rt) == DPB_OK);
    T_CHECK(fabsf(rt.attention_scaling - (float)(0.1 * log(32.0) + 1)) < 1e-6f);
    /* Independent recomputation in double. */
    double lo = 64 * log(4096 / (32 * 2 * M_PI)) / (2 * log(150000.0));
    double hi = 64 * log(4096 / (1 * 2 * M_PI)) / (2 * log(150000.0));
    for (int i = 0; i < 32; i++) {
        double pf = pow(150000.0, 2.0 * i / 64);
        double ramp = (i - lo) / (hi - lo);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        double ex = 1 - ramp;
        double want = 1 / (32 * pf) * (1 - ex) + 1 / pf * ex;
        T_CHECKF(fabs(rt.inv_freq[i] - want) <= 1e-6 * want, "i %d: %g vs %g", i, rt.inv_freq[i], want);
    }
    /* lowest frequencies are interpolated by the factor, highest extrapolated */
    T_CHECK(fabs(rt.inv_freq[31] - 1 / (32 * pow(150000.0, 62.0 / 64))) < 1e-9);
    T_CHECK(rt.inv_freq[0] == 1.0f);
}

static void test_router(void)
{
    float l[2 * 5] = {0.1f, 3.0f, -1.0f, 2.0f, 2.5f, 5, 4, 3, 2, 1};
    int32_t idx[4];
    float w[4];
    T_CHECK(cpu->ops->router_topk(cpu, l, 2, 5, 2, idx, w) == DPB_OK);
    T_CHECK(idx[0] == 1 && idx[1] == 4 && idx[2] == 0 && idx[3] == 1);
    float e = expf(-0.5f);
    T_CHECK(fabsf(w[0] - 1 / (1 + e)) < 1e-6f && fabsf(w[1] - e / (1 + e)) < 1e-6f);
    T_CHECK(fabsf(w[2] + w[3] - 1) < 1e-6f);
}

/* dpb_backend_router on backends without a fused router: linear, round_bf16 (when asked), router_topk. */
static void test_router_fallback(void)
{
    const int64_t E = 6, K = 16, n = 2, k = 2;
    uint16_t w[6 * 16], bias[6];
    float x[2 * 16], lg[2 * 6], lg2[2 * 6], wts[4], wts2[4];
    int32_t idx[4], idx2[4];
    for (int i = 0; i < E * K; i++) w[i] = dpb_f32_to_bf16(frand());
    for (int i = 0; i < E; i++) bias[i] = dpb_f32_to_bf16(frand());
    for (int i = 0; i < n * K; i++) x[i] = frand();
    memcpy(w + 4 * K, w + 1 * K, K * 2); /* rows 1 and 4 tie: 1 first */
    bias[4] = bias[1] = dpb_f32_to_bf16(40.0f);
    dpb_weight W = {DPB_W_BF16, E, K, false, w, NULL};
    for (int round = 0; round < 2; round++) {
        T_CHECK(cpu->ops->router == NULL);
        T_CHECK(dpb_backend_router(cpu, &W, bias, x, n, k, round, lg, idx, wts) == DPB_OK);
        T_CHECK(cpu->ops->linear(cpu, &W, bias, x, n, lg2) == DPB_OK);
        if (round) T_CHECK(cpu->ops->round_bf16(cpu, lg2, n * E) == DPB_OK);
        T_CHECK(cpu->ops->router_topk(cpu, lg2, n, E, k, idx2, wts2) == DPB_OK);
        T_CHECK(memcmp(lg, lg2, sizeof lg) == 0 && memcmp(idx, idx2, sizeof idx) == 0 && memcmp(wts, wts2, sizeof wts) == 0);
        T_CHECK(idx[0] == 1 && idx[1] == 4 && idx[2] == 1 && idx[3] == 4);
    }
    /* a bad k is reported by router_topk */
    T_CHECK(dpb_backend_router(cpu, &W, bias, x, n, 7, true, lg, idx, wts) != DPB_OK);
}

static void test_swiglu_clamped(void)
{
    /* g = min(g, 7), u = clamp(u, -7, 7), y = g * sigmoid(1.702 g) * (u + 1) */
    float y = dpb_swiglu_clamped(10, -10, 7, 1.702f);
    float want = 7.0f / (1 + expf(-1.702f * 7)) * (-6.0f);
    T_CHECK(fabsf(y - want) < 1e-5f);
    y = dpb_swiglu_clamped(-2, 0.5f, 7, 1.702f);
    want = -2.0f / (1 + expf(1.702f * 2)) * 1.5f;
    T_CHECK(fabsf(y - want) < 1e-6f);
}

static float kv_at(const void *base, dpb_kv_dtype dt, int64_t i)
{
    if (dt == DPB_KV_F32) return ((const float *)base)[i];
    if (dt == DPB_KV_FP8) return dpb_fp8e4m3_to_f32(((const uint8_t *)base)[i]);
    return dpb_bf16_to_f32(((const uint16_t *)base)[i]);
}

static void check_attention(dpb_kv_dtype dt, int64_t window, bool sinks)
{
    const int64_t H = 4, KH = 2, D = 16, P = 13, N = 6, SL = window > 0 ? window : P + N;
    size_t es = dpb_kv_dtype_size(dt);
    int64_t row = KH * D;
    float *q = malloc((size_t)(N * H * D) * 4), *o1 = malloc((size_t)(N * H * D) * 4),
          *o2 = malloc((size_t)(N * H * D) * 4), *o3 = malloc((size_t)(N * H * D) * 4);
    float *kf = malloc((size_t)((P + N) * row) * 4), *vf = malloc((size_t)((P + N) * row) * 4);
    for (int64_t i = 0; i < N * H * D; i++) q[i] = frand();
    for (int64_t i = 0; i < (P + N) * row; i++) { kf[i] = frand(); vf[i] = frand(); }
    void *kall = malloc((size_t)((P + N) * row) * es), *vall = malloc((size_t)((P + N) * row) * es);
    dpb_ref_to_kv(ref, kf, (P + N) * row, dt, kall);
    dpb_ref_to_kv(ref, vf, (P + N) * row, dt, vall);
    void *kc = calloc((size_t)(SL * row), es), *vc = calloc((size_t)(SL * row), es);
    /* cache holds positions 0..P-1 (ring for sliding) */
    cpu->ops->kv_write(cpu, kc, vc, SL, row, dt, kall, vall, P, 0);
    uint16_t sk[4];
    for (int i = 0; i < 4; i++) sk[i] = dpb_f32_to_bf16(frand() * 3);
    dpb_attn_args a = {N, P, H, KH, D, q, (char *)kall + (size_t)(P * row) * es, (char *)vall + (size_t)(P * row) * es,
                       kc, vc, SL, window, dt, sinks ? sk : NULL, 0.25f, o1, NULL, false};
    T_CHECK(ref->ops->attention(ref, &a) == DPB_OK);
    a.out = o2;
    T_CHECK(cpu->ops->attention(cpu, &a) == DPB_OK);
    double e = max_rel(o2, o1, (size_t)(N * H * D));
    T_CHECKF(e < 1e-5, "window %lld sinks %d: %g", (long long)window, sinks, e);
    /* round_out: the same outputs rounded to bf16, bit for bit, on both backends */
    {
        float *o4 = malloc((size_t)(N * H * D) * 4);
        dpb_attn_args r = a;
        r.round_out = true;
        for (int be = 0; be < 2; be++) {
            dpb_backend *b = be ? cpu : ref;
            const float *plain = be ? o2 : o1;
            r.out = o4;
            T_CHECK(b->ops->attention(b, &r) == DPB_OK);
            int ok = 1;
            for (int64_t i = 0; i < N * H * D; i++) {
                float w = dpb_bf16_to_f32(dpb_f32_to_bf16(plain[i]));
                if (memcmp(&w, &o4[i], 4) != 0) ok = 0;
            }
            T_CHECKF(ok, "%s attention round_out differs from attention + rounding (window %lld)", b->ops->name,
                     (long long)window);
        }
        free(o4);
    }
    /* Token by token through the cache equals the chunk, bitwise. */
    int same = 1;
    for (int64_t t = 0; t < N; t++) {
        dpb_attn_args b = a;
        b.n = 1;
        b.pos0 = P + t;
        b.q = q + t * H * D;
        b.k_new = (char *)kall + (size_t)((P + t) * row) * es;
        b.v_new = (char *)vall + (size_t)((P + t) * row) * es;
        b.out = o3 + t * H * D;
        cpu->ops->attention(cpu, &b);
        cpu->ops->kv_write(cpu, kc, vc, SL, row, dt, b.k_new, b.v_new, 1, P + t);
    }
    same = memcmp(o3, o2, (size_t)(N * H * D) * 4) == 0;
    T_CHECKF(same, "window %lld: decode through the cache differs from the chunk", (long long)window);
    /* Naive check of one output: last row, head 3, full softmax by hand. */
    {
        int64_t t = N - 1, h = 3, kh = h / 2, p = P + t, lo = window > 0 ? p - window + 1 : 0;
        if (lo < 0) lo = 0;
        double sc[64], mx = sinks ? dpb_bf16_to_f32(sk[h]) : -1e30, den = 0;
        for (int64_t j = lo; j <= p; j++) {
            double s = 0;
            for (int64_t d = 0; d < D; d++) {
                float kv = kv_at(kall, dt, j * row + kh * D + d);
                s += (double)q[(t * H + h) * D + d] * kv;
            }
            sc[j - lo] = s * 0.25;
            if (sc[j - lo] > mx) mx = sc[j - lo];
        }
        if (sinks) den += exp(dpb_bf16_to_f32(sk[h]) - mx);
        for (int64_t j = lo; j <= p; j++) den += exp(sc[j - lo] - mx);
        double o0 = 0;
        for (int64_t j = lo; j <= p; j++) {
            float vv = kv_at(vall, dt, j * row + kh * D);
            o0 += exp(sc[j - lo] - mx) / den * vv;
        }
        T_CHECKF(fabs(o0 - o1[(t * H + h) * D]) < 1e-5, "hand %g vs ref %g", o0, o1[(t * H + h) * D]);
    }
    free(q); free(o1); free(o2); free(o3); free(kf); free(vf); free(kall); free(vall); free(kc); free(vc);
}

static void test_attention_full(void)
{
    check_attention(DPB_KV_F32, 0, false);
    check_attention(DPB_KV_BF16, 0, false);
    check_attention(DPB_KV_FP8, 0, false);
}
static void test_attention_sinks_window(void)
{
    check_attention(DPB_KV_F32, 4, true);
    check_attention(DPB_KV_BF16, 4, true);
    check_attention(DPB_KV_FP8, 4, true);
    check_attention(DPB_KV_F32, 8, false);
}

/* FP8 E4M3 conversions: fixed points, rounding to nearest even, saturation, and every code back and forth. */
static void test_fp8(void)
{
    static const struct { float f; uint8_t b; } v[] = {
        {0.0f, 0x00},       {-0.0f, 0x80},      {1.0f, 0x38},        {-2.0f, 0xc0},          {448.0f, 0x7e},
        {460.0f, 0x7e},     {1e9f, 0x7e},       {-INFINITY, 0xfe},   {0x1p-9f, 0x01},        {0x1p-10f, 0x00},
        {0x3p-10f, 0x02},   {0x1p-6f, 0x08},    {0x0.fp-6f, 0x08},   {1.0625f, 0x38},        {1.1875f, 0x3a},
        {0.1f, 0x1d},       {-3.3f, 0xc5},      {240.0f, 0x77},      {NAN, 0x7f}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        T_CHECKF(dpb_f32_to_fp8e4m3(v[i].f) == v[i].b, "%a -> 0x%02x, want 0x%02x", (double)v[i].f,
                 dpb_f32_to_fp8e4m3(v[i].f), v[i].b);
    int bad = 0;
    for (int b = 0; b < 256; b++) {
        float f = dpb_fp8e4m3_to_f32((uint8_t)b);
        if ((b & 0x7f) == 0x7f) bad += !isnan(f);
        else bad += dpb_f32_to_fp8e4m3(f) != b;
    }
    T_CHECKF(bad == 0, "%d codes do not survive the round trip", bad);
    T_CHECK(dpb_fp8e4m3_to_f32(0x7e) == 448.0f && dpb_fp8e4m3_to_f32(0x01) == 0x1p-9f && dpb_fp8e4m3_to_f32(0xb9) == -1.125f);
    float src[5] = {0.3f, -7.0f, 1000.0f, 0x1p-12f, 2.75f};
    uint8_t dst[5];
    T_CHECK(ref->ops->to_kv(ref, src, 5, DPB_KV_FP8, dst) == DPB_OK);
    for (int i = 0; i < 5; i++) T_CHECK(dst[i] == dpb_f32_to_fp8e4m3(src[i]));
}

static void test_moe(void)
{
    const int64_t H = 64, I = 32, E = 4, K = 2, N = 5;
    for (int fmt = 0; fmt < 2; fmt++) {
        mat gu[4], dn[4];
        dpb_weight wg[4], wd[4];
        for (int e = 0; e < E; e++) {
            if (fmt == 0) {
                mat_make(&gu[e], DPB_W_BF16, 2 * I, H, true);
                mat_make(&dn[e], DPB_W_BF16, H, I, true);
            } else {
                mat_make(&gu[e], DPB_W_MXFP4, 2 * I, H, false);
                mat_make(&dn[e], DPB_W_MXFP4, H, I, false);
            }
            wg[e] = gu[e].w;
            wd[e] = dn[e].w;
        }
        uint16_t gb[4 * 64], db[4 * 64];
        for (int i = 0; i < E * 2 * I; i++) gb[i] = dpb_f32_to_bf16(frand());
        for (int i = 0; i < E * H; i++) db[i] = dpb_f32_to_bf16(frand());
        float x[5 * 64], lg[5 * 4], w[10], o1[5 * 64], o2[5 * 64], o3[64];
        int32_t idx[10];
        for (int i = 0; i < N * H; i++) x[i] = frand() * 4;
        for (int i = 0; i < N * E; i++) lg[i] = frand();
        cpu->ops->router_topk(cpu, lg, N, E, K, idx, w);
        dpb_moe_args a = {N, H, I, K, x, wg, gb, wd, db, idx, w, 7.0f, 1.702f, false, o1};
        T_CHECK(ref->ops->moe(ref, &a) == DPB_OK);
        a.out = o2;
        T_CHECK(cpu->ops->moe(cpu, &a) == DPB_OK);
        double e = max_rel(o2, o1, (size_t)(N * H));
        T_CHECKF(e < 1e-5, "fmt %d: %g", fmt, e);
        int same = 1;
        for (int t = 0; t < N; t++) {
            dpb_moe_args b = a;
            b.n = 1;
            b.x = x + t * H;
            b.idx = idx + t * K;
            b.wts = w + t * K;
            b.out = o3;
            cpu->ops->moe(cpu, &b);
            same &= memcmp(o3, o2 + t * H, sizeof o3) == 0;
        }
        T_CHECKF(same, "fmt %d: one row alone differs from the batch", fmt);
        for (int e2 = 0; e2 < E; e2++) { mat_free(&gu[e2]); mat_free(&dn[e2]); }
    }
}

static void test_kv_ring(void)
{
    float k[6 * 2], v[6 * 2], kc[3 * 2] = {0}, vc[3 * 2] = {0};
    for (int i = 0; i < 12; i++) { k[i] = (float)i; v[i] = (float)(100 + i); }
    /* 6 positions into 3 slots from position 2: slots hold positions 5, 6, 7 -> rows 3, 4, 5 */
    cpu->ops->kv_write(cpu, kc, vc, 3, 2, DPB_KV_F32, k, v, 6, 2);
    T_CHECK(kc[(5 % 3) * 2] == 6 && kc[(6 % 3) * 2] == 8 && kc[(7 % 3) * 2] == 10);
    T_CHECK(vc[(7 % 3) * 2 + 1] == 111);
}

static void test_bandwidth(void)
{
    double g;
    T_CHECK(dpb_cpu_copy_bandwidth(1 << 20, 2, &g) == DPB_OK);
    T_CHECK(g > 0);
    T_CHECK(dpb_cpu_copy_bandwidth(10, 1, &g) == DPB_E_ARG);
}

static void test_kernel_sets(void)
{
    /* Every compiled kernel set agrees with scalar on a bf16 and an MXFP4 matvec. */
    const dpb_cpu_kernels *sets[3] = {dpb_cpu_kernels_scalar(), dpb_cpu_kernels_avx2(), dpb_cpu_kernels_avx512()};
    mat m1, m2;
    mat_make(&m1, DPB_W_BF16, 16, 64, false);
    mat_make(&m2, DPB_W_MXFP4, 16, 64, false);
    float x[64], xp[64], y0[16], y[16], z0[16], z[16];
    for (int i = 0; i < 64; i++) x[i] = frand();
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < 16; j++) { xp[b * 32 + j] = x[b * 32 + 2 * j]; xp[b * 32 + 16 + j] = x[b * 32 + 2 * j + 1]; }
    sets[0]->bf16_rows(&m1.w, x, 1, y0, 0, 16);
    sets[0]->mxfp4_rows(&m2.w, xp, 1, z0, 0, 16);
    for (int s = 1; s < 3; s++) {
        if (!sets[s]) continue;
        sets[s]->bf16_rows(&m1.w, x, 1, y, 0, 16);
        sets[s]->mxfp4_rows(&m2.w, xp, 1, z, 0, 16);
        T_CHECKF(max_rel(y, y0, 16) < 1e-5 && max_rel(z, z0, 16) < 1e-5, "kernel set %s", sets[s]->name);
    }
    mat_free(&m1); mat_free(&m2);
}

/* dpb_backend_linear_multi: without the op, and with an op that answers DPB_E_UNSUPPORTED, it gives each
 * matrix's linear (+ round) exactly; another error from the op comes back as it is. */
static dpb_status multi_unsupported(dpb_backend *b, int nw, const dpb_weight *const *w, const uint16_t *const *bias,
                                    const float *x, int64_t n, bool round, float *const *y)
{
    (void)b; (void)nw; (void)w; (void)bias; (void)x; (void)n; (void)round; (void)y;
    return dpb_error_set(DPB_E_UNSUPPORTED, "test: not fused");
}
static dpb_status multi_broken(dpb_backend *b, int nw, const dpb_weight *const *w, const uint16_t *const *bias,
                               const float *x, int64_t n, bool round, float *const *y)
{
    (void)b; (void)nw; (void)w; (void)bias; (void)x; (void)n; (void)round; (void)y;
    return dpb_error_set(DPB_E_INTERNAL, "test: broken");
}
static void test_linear_multi_fallback(void)
{
    mat a, c;
    mat_make(&a, DPB_W_BF16, 24, 32, false);
    mat_make(&c, DPB_W_BF16, 40, 32, false);
    uint16_t bias[40];
    for (int i = 0; i < 40; i++) bias[i] = dpb_f32_to_bf16(frand());
    const int64_t N = 3;
    float x[3 * 32], ya[3 * 24], yc[3 * 40], ra[3 * 24], rc[3 * 40];
    for (int i = 0; i < 3 * 32; i++) x[i] = frand();
    T_CHECK(cpu->ops->linear(cpu, &a.w, NULL, x, N, ra) == DPB_OK && cpu->ops->round_bf16(cpu, ra, N * 24) == DPB_OK);
    T_CHECK(cpu->ops->linear(cpu, &c.w, bias, x, N, rc) == DPB_OK && cpu->ops->round_bf16(cpu, rc, N * 40) == DPB_OK);
    const dpb_weight *w[2] = {&a.w, &c.w};
    const uint16_t *b[2] = {NULL, bias};
    float *y[2] = {ya, yc};
    dpb_backend_ops ops = *cpu->ops;
    dpb_backend fake = *cpu;
    fake.ops = &ops;
    for (int k = 0; k < 2; k++) {
        ops.linear_multi = k == 0 ? NULL : multi_unsupported;
        memset(ya, 0xff, sizeof ya);
        memset(yc, 0xff, sizeof yc);
        T_CHECK(dpb_backend_linear_multi(&fake, 2, w, b, x, N, true, y) == DPB_OK);
        T_CHECKF(memcmp(ya, ra, sizeof ra) == 0 && memcmp(yc, rc, sizeof rc) == 0, "case %d: outputs differ", k);
    }
    ops.linear_multi = multi_broken;
    T_CHECK(dpb_backend_linear_multi(&fake, 2, w, b, x, N, true, y) == DPB_E_INTERNAL);
    T_CHECK(strstr(dpb_error_message(), "test: broken") != NULL);
    T_CHECK(dpb_backend_linear_multi(&fake, 4, w, b, x, N, true, y) == DPB_E_ARG);
    mat_free(&a);
    mat_free(&c);
}

int main(void)
{
    if (dpb_backend_open("ref", 1, &ref) || dpb_backend_open("cpu", 2, &cpu)) {
        fprintf(stderr, "cannot open backends: %s\n", dpb_error_message());
        return 1;
    }
    fprintf(stderr, "cpu kernels: %s\n", cpu->simd);
    T_RUN(test_linear_bf16);
    T_RUN(test_linear_multi_fallback);
    T_RUN(test_linear_f32);
    T_RUN(test_linear_bf16_transposed);
    T_RUN(test_linear_mxfp4);
    T_RUN(test_mxfp4_layout);
    T_RUN(test_rmsnorm);
    T_RUN(test_rope_default);
    T_RUN(test_rope_yarn);
    T_RUN(test_router);
    T_RUN(test_router_fallback);
    T_RUN(test_swiglu_clamped);
    T_RUN(test_fp8);
    T_RUN(test_attention_full);
    T_RUN(test_attention_sinks_window);
    T_RUN(test_moe);
    T_RUN(test_kv_ring);
    T_RUN(test_bandwidth);
    T_RUN(test_kernel_sets);
    dpb_backend_close(ref);
    dpb_backend_close(cpu);
    return t_done();
}
