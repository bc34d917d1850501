/* SIMD kernels of the cpu backend, with run-time dispatch.
 *
 * Every output element is one accumulation chain in a fixed order over the
 * input (8 or 16 lanes, then a fixed horizontal sum), independent of how many
 * rows (tokens) or which slice of outputs a call computes.  That is what makes
 * one prefill bitwise equal to token-by-token decode, and batched sequences
 * equal to sequences run alone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "backend/cpu/cpu_internal.h"
#include "format/dtype.h"

/* FP4 E2M1 values times 2 (all integers), and 2^(s-128) so that
 * lut2[n] * half_scale[s] == FP4[n] * 2^(s-127). */
static const int8_t k_fp4x2[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
static float k_half_scale[256];
static float k_fp8[256]; /* FP8 E4M3 byte -> value (KV cache) */
static void init_tables(void)
{
    static int done;
    if (done) return;
    for (int s = 0; s < 256; s++) k_half_scale[s] = s == 255 ? NAN : ldexpf(1.0f, s - 128);
    for (int b = 0; b < 256; b++) k_fp8[b] = dpb_fp8e4m3_to_f32((uint8_t)b);
    done = 1;
}

/* ------------------------------------------------------------------ scalar */
static void sc_dense_rows(const dpb_weight *w, const float *x, int64_t n, float *y, int64_t o0, int64_t o1)
{
    int64_t in = w->in, out = w->out;
    for (int64_t o = o0; o < o1; o++)
        for (int64_t t = 0; t < n; t++) {
            const float *xr = x + t * in;
            float s = 0;
            if (w->fmt == DPB_W_F32) {
                const float *wr = (const float *)w->data + o * in;
                for (int64_t i = 0; i < in; i++) s += wr[i] * xr[i];
            } else {
                const uint16_t *wr = (const uint16_t *)w->data + o * in;
                for (int64_t i = 0; i < in; i++) s += dpb_bf16_to_f32(wr[i]) * xr[i];
            }
            y[t * out + o] = s;
        }
}

static void sc_dense_cols(const dpb_weight *w, const float *x, int64_t n, float *y, int64_t o0, int64_t o1)
{
    int64_t in = w->in, out = w->out;
    for (int64_t t = 0; t < n; t++) {
        float *yr = y + t * out;
        for (int64_t o = o0; o < o1; o++) yr[o] = 0;
        for (int64_t i = 0; i < in; i++) {
            float xv = x[t * in + i];
            if (w->fmt == DPB_W_F32) {
                const float *wr = (const float *)w->data + i * out;
                for (int64_t o = o0; o < o1; o++) yr[o] += xv * wr[o];
            } else {
                const uint16_t *wr = (const uint16_t *)w->data + i * out;
                for (int64_t o = o0; o < o1; o++) yr[o] += xv * dpb_bf16_to_f32(wr[o]);
            }
        }
    }
}

static void sc_mxfp4_rows(const dpb_weight *w, const float *xp, int64_t n, float *y, int64_t o0, int64_t o1)
{
    int64_t in = w->in, nb = in / 32;
    const uint8_t *blk = w->data;
    for (int64_t o = o0; o < o1; o++)
        for (int64_t t = 0; t < n; t++) {
            float acc = 0;
            const float *xr = xp + t * in;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *q = blk + (o * nb + b) * 16;
                const float *xb = xr + b * 32;
                float bd = 0;
                for (int j = 0; j < 16; j++)
                    bd += (float)k_fp4x2[q[j] & 15] * xb[j] + (float)k_fp4x2[q[j] >> 4] * xb[16 + j];
                acc += bd * k_half_scale[w->scales[o * nb + b]];
            }
            y[t * w->out + o] = acc;
        }
}

static float sc_dot_kv(const float *q, const void *k, dpb_kv_dtype dt, int64_t d)
{
    float s = 0;
    if (dt == DPB_KV_F32)
        for (int64_t i = 0; i < d; i++) s += q[i] * ((const float *)k)[i];
    else if (dt == DPB_KV_FP8)
        for (int64_t i = 0; i < d; i++) s += q[i] * k_fp8[((const uint8_t *)k)[i]];
    else
        for (int64_t i = 0; i < d; i++) s += q[i] * dpb_bf16_to_f32(((const uint16_t *)k)[i]);
    return s;
}

static void sc_axpy_kv(float *out, float w, const void *v, dpb_kv_dtype dt, int64_t d)
{
    if (dt == DPB_KV_F32)
        for (int64_t i = 0; i < d; i++) out[i] += w * ((const float *)v)[i];
    else if (dt == DPB_KV_FP8)
        for (int64_t i = 0; i < d; i++) out[i] += w * k_fp8[((const uint8_t *)v)[i]];
    else
        for (int64_t i = 0; i < d; i++) out[i] += w * dpb_bf16_to_f32(((const uint16_t *)v)[i]);
}

static const dpb_cpu_kernels k_scalar = {"scalar", sc_dense_rows, sc_dense_cols, sc_mxfp4_rows, sc_dot_kv,
                                         sc_axpy_kv};
const dpb_cpu_kernels *dpb_cpu_kernels_scalar(void)
{
    init_tables();
    return &k_scalar;
}

/* GCC builds the SIMD sets (#pragma GCC target); clang builds (fuzzing) keep the scalar kernels. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(DPB_NO_SIMD)
#include <cpuid.h>
#include <immintrin.h>

/* -------------------------------------------------------------------- AVX2 */
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

#define AI static inline __attribute__((always_inline))

AI __m256 a2_ld_bf16(const uint16_t *p)
{
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
AI __m256 a2_ld_w(const void *base, int64_t idx, int bf)
{
    return bf ? a2_ld_bf16((const uint16_t *)base + idx) : _mm256_loadu_ps((const float *)base + idx);
}
/* 8 FP8 E4M3 KV elements through the byte table */
AI __m256 a2_ld_fp8(const uint8_t *p)
{
    __m128i b = _mm_loadl_epi64((const __m128i *)p);
    return _mm256_i32gather_ps(k_fp8, _mm256_cvtepu8_epi32(b), 4);
}
AI __m256 a2_ld_kv(const void *base, int64_t idx, dpb_kv_dtype dt)
{
    return dt == DPB_KV_FP8 ? a2_ld_fp8((const uint8_t *)base + idx) : a2_ld_w(base, idx, dt == DPB_KV_BF16);
}
AI float a2_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* R rows x T tokens of a row-major matrix. */
AI void a2_dense_mk(const void *W, int bf, int64_t in, const float *x, int64_t out, float *y, int64_t o, int R,
                    int T)
{
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < in; i += 8) {
        __m256 xv[4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) xv[t] = _mm256_loadu_ps(x + t * in + i);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 wv = a2_ld_w(W, (o + r) * in + i, bf);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * out + o + r] = a2_hsum(acc[r][t]);
}

#define A2_DENSE_CASE(R_, T_) \
    case (R_) * 8 + (T_): a2_dense_mk(W, bf, in, xt, out, y + t * out, o, R_, T_); break;

static void a2_dense_rows(const dpb_weight *w, const float *x, int64_t n, float *y, int64_t o0, int64_t o1)
{
    int64_t in = w->in, out = w->out;
    if (in % 8) { sc_dense_rows(w, x, n, y, o0, o1); return; }
    const void *W = w->data;
    int bf = w->fmt == DPB_W_BF16;
    int rmax = n == 1 ? 4 : 2;
    for (int64_t o = o0; o < o1;) {
        int R = o1 - o >= rmax ? rmax : (o1 - o >= 2 ? 2 : 1);
        for (int64_t t = 0; t < n;) {
            int T = n - t >= 4 ? 4 : (int)(n - t);
            const float *xt = x + t * in;
            switch (R * 8 + T) {
                A2_DENSE_CASE(4, 1) A2_DENSE_CASE(4, 2) A2_DENSE_CASE(4, 3) A2_DENSE_CASE(4, 4)
                A2_DENSE_CASE(2, 1) A2_DENSE_CASE(2, 2) A2_DENSE_CASE(2, 3) A2_DENSE_CASE(2, 4)
                A2_DENSE_CASE(1, 1) A2_DENSE_CASE(1, 2) A2_DENSE_CASE(1, 3) A2_DENSE_CASE(1, 4)
            default: break;
            }
            t += T;
        }
        o += R;
    }
}

/* Transposed W [in, out]: y rows are the accumulators (in L1), updated by
 * streaming W row by row over the slice [o0, o1): one chain per output over
 * i in order, whatever the slice or the number of tokens. */
#define A2_COLS_W 512
static void a2_dense_cols(const dpb_weight *w, const float *x, int64_t n, float *y, int64_t o0, int64_t o1)
{
    int64_t in = w->in, out = w->out;
    if (out % 8 || o0 % 8 || o1 % 8) { sc_dense_cols(w, x, n, y, o0, o1); return; }
    const void *W = w->data;
    int bf = w->fmt == DPB_W_BF16;
    for (int64_t c0 = o0; c0 < o1; c0 += A2_COLS_W) {
        int64_t c1 = c0 + A2_COLS_W < o1 ? c0 + A2_COLS_W : o1;
        for (int64_t t0 = 0; t0 < n; t0 += 4) {
            int T = n - t0 >= 4 ? 4 : (int)(n - t0);
            for (int t = 0; t < T; t++) memset(y + (t0 + t) * out + c0, 0, (size_t)(c1 - c0) * sizeof(float));
            int64_t i = 0;
            /* four input rows per pass: the same chain order, a quarter of the y traffic */
            for (; i + 4 <= in; i += 4) {
                __m256 xv[4][4];
                for (int t = 0; t < T; t++)
                    for (int k = 0; k < 4; k++) xv[t][k] = _mm256_broadcast_ss(x + (t0 + t) * in + i + k);
                for (int64_t o = c0; o < c1; o += 8) {
                    __m256 w0 = a2_ld_w(W, i * out + o, bf), w1 = a2_ld_w(W, (i + 1) * out + o, bf);
                    __m256 w2 = a2_ld_w(W, (i + 2) * out + o, bf), w3 = a2_ld_w(W, (i + 3) * out + o, bf);
                    for (int t = 0; t < T; t++) {
                        float *yp = y + (t0 + t) * out + o;
                        __m256 a = _mm256_fmadd_ps(xv[t][0], w0, _mm256_loadu_ps(yp));
                        a = _mm256_fmadd_ps(xv[t][1], w1, a);
                        a = _mm256_fmadd_ps(xv[t][2], w2, a);
                        _mm256_storeu_ps(yp, _mm256_fmadd_ps(xv[t][3], w3, a));
                    }
                }
            }
            for (; i < in; i++) {
                __m256 xv[4];
                for (int t = 0; t < T; t++) xv[t] = _mm256_broadcast_ss(x + (t0 + t) * in + i);
                for (int64_t o = c0; o < c1; o += 8) {
                    __m256 wv = a2_ld_w(W, i * out + o, bf);
                    for (int t = 0; t < T; t++) {
                        float *yp = y + (t0 + t) * out + o;
                        _mm256_storeu_ps(yp, _mm256_fmadd_ps(xv[t], wv, _mm256_loadu_ps(yp)));
                    }
                }
            }
        }
    }
}

/* MXFP4: one row x T tokens; a block is dequantized once for all T.
 * One 256-bit shuffle maps the 32 nibbles (low nibbles in the low lane,
 * high nibbles in the high lane) to FP4 x 2 as int8; a store and four
 * sign-extending loads widen them (the shuffle port is the bottleneck, so
 * widening from memory beats register shuffles). */
/* FP4 x 2 as the high byte of an fp16 (the low byte is always zero). */
static const uint8_t k_fp4x2_h[16] = {0x00, 0x3C, 0x40, 0x42, 0x44, 0x46, 0x48, 0x4A,
                                      0x80, 0xBC, 0xC0, 0xC2, 0xC4, 0xC6, 0xC8, 0xCA};
AI void a2_mx_mk(const uint8_t *blk, const uint8_t *scl, int64_t nb, const float *xp, int64_t in, float *y,
                 int64_t out, int T)
{
    const __m128i lut = _mm_loadu_si128((const __m128i *)k_fp4x2_h);
    const __m128i m4 = _mm_set1_epi8(15), z = _mm_setzero_si128();
    /* two chains per output (even and odd blocks), summed at the end: the
     * same for every T, so results do not depend on batching */
    __m256 acc[2][4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[0][t] = acc[1][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m128i q = _mm_loadu_si128((const __m128i *)(blk + b * 16));
        __m128i lo = _mm_shuffle_epi8(lut, _mm_and_si128(q, m4));
        __m128i hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(q, 4), m4));
        __m256 f0 = _mm256_cvtph_ps(_mm_unpacklo_epi8(z, lo));
        __m256 f1 = _mm256_cvtph_ps(_mm_unpackhi_epi8(z, lo));
        __m256 f2 = _mm256_cvtph_ps(_mm_unpacklo_epi8(z, hi));
        __m256 f3 = _mm256_cvtph_ps(_mm_unpackhi_epi8(z, hi));
        __m256 sc = _mm256_set1_ps(k_half_scale[scl[b]]);
        int par = (int)(b & 1);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const float *xb = xp + t * in + b * 32;
            __m256 bd = _mm256_mul_ps(f0, _mm256_loadu_ps(xb));
            bd = _mm256_fmadd_ps(f1, _mm256_loadu_ps(xb + 8), bd);
            bd = _mm256_fmadd_ps(f2, _mm256_loadu_ps(xb + 16), bd);
            bd = _mm256_fmadd_ps(f3, _mm256_loadu_ps(xb + 24), bd);
            if (par) acc[1][t] = _mm256_fmadd_ps(bd, sc, acc[1][t]);
            else acc[0][t] = _mm256_fmadd_ps(bd, sc, acc[0][t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) y[t * out] = a2_hsum(_mm256_add_ps(acc[0][t], acc[1][t]));
}

static void a2_mxfp4_rows(const dpb_weight *w, const float *xp, int64_t n, float *y, int64_t o0, int64_t o1)
{
    int64_t in = w->in, nb = in / 32, out = w->out;
    const uint8_t *blk = w->data;
    for (int64_t o = o0; o < o1; o++) {
        if (o + 1 < o1) _mm_prefetch((const char *)(blk + (o + 1) * nb * 16), _MM_HINT_T0);
        for (int64_t t = 0; t < n;) {
            int T = n - t >= 4 ? 4 : (int)(n - t);
            const uint8_t *b = blk + o * nb * 16, *s = w->scales + o * nb;
            const float *xt = xp + t * in;
            float *yt = y + t * out + o;
            switch (T) {
            case 1: a2_mx_mk(b, s, nb, xt, in, yt, out, 1); break;
            case 2: a2_mx_mk(b, s, nb, xt, in, yt, out, 2); break;
            case 3: a2_mx_mk(b, s, nb, xt, in, yt, out, 3); break;
            default: a2_mx_mk(b, s, nb, xt, in, yt, out, 4); break;
            }
            t += T;
        }
    }
}

static float a2_dot_kv(const float *q, const void *k, dpb_kv_dtype dt, int64_t d)
{
    if (d % 8) return sc_dot_kv(q, k, dt, d);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < d; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), a2_ld_kv(k, i, dt), acc);
    return a2_hsum(acc);
}

static void a2_axpy_kv(float *out, float w, const void *v, dpb_kv_dtype dt, int64_t d)
{
    if (d % 8) { sc_axpy_kv(out, w, v, dt, d); return; }
    __m256 wv = _mm256_set1_ps(w);
    for (int64_t i = 0; i < d; i += 8)
        _mm256_storeu_ps(out + i, _mm256_fmadd_ps(wv, a2_ld_kv(v, i, dt), _mm256_loadu_ps(out + i)));
}

#pragma GCC pop_options

static const dpb_cpu_kernels k_avx2 = {"avx2", a2_dense_rows, a2_dense_cols, a2_mxfp4_rows, a2_dot_kv, a2_axpy_kv};
const dpb_cpu_kernels *dpb_cpu_kernels_avx2(void)
{
    init_tables();
    __builtin_cpu_init();
    /* F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know "f16c". */
    unsigned a, b, c, d;
    bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !f16c) return NULL;
    return &k_avx2;
}
#else
const dpb_cpu_kernels *dpb_cpu_kernels_avx2(void) { return NULL; }
#endif

const dpb_cpu_kernels *dpb_cpu_kernels_best(void)
{
    const char *force = getenv("DPB_CPU_SIMD");
    const dpb_cpu_kernels *k512 = dpb_cpu_kernels_avx512(), *k2 = dpb_cpu_kernels_avx2();
    if (force && strcmp(force, "scalar") == 0) return dpb_cpu_kernels_scalar();
    if (force && strcmp(force, "avx2") == 0 && k2) return k2;
    if (k512) return k512;
    if (k2) return k2;
    return dpb_cpu_kernels_scalar();
}
