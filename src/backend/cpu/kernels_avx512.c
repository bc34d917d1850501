/* AVX-512 kernel set (AVX512F + BW), chosen at run time when the CPU has it.
 * Same structure and ordering rules as the AVX2 set in kernels.c: one
 * accumulation chain per output (two for MXFP4: even and odd blocks), fixed
 * horizontal sums, independent of the number of rows and of the slice.
 * Shapes whose inner size is not a multiple of 16 use the AVX2 kernels. */
#include <math.h>
#include <string.h>
#include "backend/cpu/cpu_internal.h"
#include "format/dtype.h"

/* GCC builds the SIMD sets (#pragma GCC target); clang builds (fuzzing) keep the scalar kernels. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(DPB_NO_SIMD)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")

#define AI static inline __attribute__((always_inline))

static const float k_fp4x2_f[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
static float k_half_scale5[256];

AI __m512 z_ld_w(const void *base, int64_t idx, int bf)
{
    if (bf) {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)base + idx));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_loadu_ps((const float *)base + idx);
}

AI float z_hsum(__m512 v)
{
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI void z_dense_mk(const void *W, int bf, int64_t in, const float *x, int64_t out, float *y, int64_t o, int R, int T)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < in; i += 16) {
        __m512 xv[4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) xv[t] = _mm512_loadu_ps(x + t * in + i);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 wv = z_ld_w(W, (o + r) * in + i, bf);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * out + o + r] = z_hsum(acc[r][t]);
}

#define Z_DENSE_CASE(R_, T_) \
    case (R_) * 8 + (T_): z_dense_mk(W, bf, in, xt, out, y + t * out, o, R_, T_); break;

static void z_dense_rows(const dpb_weight *w, const float *x, int64_t n, float *y, int64_t o0, int64_t o1)
{
    int64_t in = w->in, out = w->out;
    if (in % 16) { dpb_cpu_kernels_avx2()->bf16_rows(w, x, n, y, o0, o1); return; }
    const void *W = w->data;
    int bf = w->fmt == DPB_W_BF16;
    int rmax = n == 1 ? 4 : 2;
    for (int64_t o = o0; o < o1;) {
        int R = o1 - o >= rmax ? rmax : (o1 - o >= 2 ? 2 : 1);
        for (int64_t t = 0; t < n;) {
            int T = n - t >= 4 ? 4 : (int)(n - t);
            const float *xt = x + t * in;
            switch (R * 8 + T) {
                Z_DENSE_CASE(4, 1) Z_DENSE_CASE(4, 2) Z_DENSE_CASE(4, 3) Z_DENSE_CASE(4, 4)
                Z_DENSE_CASE(2, 1) Z_DENSE_CASE(2, 2) Z_DENSE_CASE(2, 3) Z_DENSE_CASE(2, 4)
                Z_DENSE_CASE(1, 1) Z_DENSE_CASE(1, 2) Z_DENSE_CASE(1, 3) Z_DENSE_CASE(1, 4)
            default: break;
            }
            t += T;
        }
        o += R;
    }
}

#define Z_COLS_W 512
static void z_dense_cols(const dpb_weight *w, const float *x, int64_t n, float *y, int64_t o0, int64_t o1)
{
    int64_t in = w->in, out = w->out;
    if (out % 16 || o0 % 16 || o1 % 16) { dpb_cpu_kernels_avx2()->bf16t_cols(w, x, n, y, o0, o1); return; }
    const void *W = w->data;
    int bf = w->fmt == DPB_W_BF16;
    for (int64_t c0 = o0; c0 < o1; c0 += Z_COLS_W) {
        int64_t c1 = c0 + Z_COLS_W < o1 ? c0 + Z_COLS_W : o1;
        for (int64_t t0 = 0; t0 < n; t0 += 4) {
            int T = n - t0 >= 4 ? 4 : (int)(n - t0);
            for (int t = 0; t < T; t++) memset(y + (t0 + t) * out + c0, 0, (size_t)(c1 - c0) * sizeof(float));
            int64_t i = 0;
            for (; i + 4 <= in; i += 4) {
                __m512 xv[4][4];
                for (int t = 0; t < T; t++)
                    for (int k = 0; k < 4; k++) xv[t][k] = _mm512_set1_ps(x[(t0 + t) * in + i + k]);
                for (int64_t o = c0; o < c1; o += 16) {
                    __m512 w0 = z_ld_w(W, i * out + o, bf), w1 = z_ld_w(W, (i + 1) * out + o, bf);
                    __m512 w2 = z_ld_w(W, (i + 2) * out + o, bf), w3 = z_ld_w(W, (i + 3) * out + o, bf);
                    for (int t = 0; t < T; t++) {
                        float *yp = y + (t0 + t) * out + o;
                        __m512 a = _mm512_fmadd_ps(xv[t][0], w0, _mm512_loadu_ps(yp));
                        a = _mm512_fmadd_ps(xv[t][1], w1, a);
                        a = _mm512_fmadd_ps(xv[t][2], w2, a);
                        _mm512_storeu_ps(yp, _mm512_fmadd_ps(xv[t][3], w3, a));
                    }
                }
            }
            for (; i < in; i++) {
                __m512 xv[4];
                for (int t = 0; t < T; t++) xv[t] = _mm512_set1_ps(x[(t0 + t) * in + i]);
                for (int64_t o = c0; o < c1; o += 16) {
                    __m512 wv = z_ld_w(W, i * out + o, bf);
                    for (int t = 0; t < T; t++) {
                        float *yp = y + (t0 + t) * out + o;
                        _mm512_storeu_ps(yp, _mm512_fmadd_ps(xv[t], wv, _mm512_loadu_ps(yp)));
                    }
                }
            }
        }
    }
}

/* MXFP4: the 16 bytes of a block widened to 16 lanes; the low nibbles index
 * a 16-entry float table directly (sign included), then the high nibbles. */
AI void z_mx_mk(const uint8_t *blk, const uint8_t *scl, int64_t nb, const float *xp, int64_t in, float *y,
                int64_t out, int T)
{
    const __m512 lut = _mm512_loadu_ps(k_fp4x2_f);
    __m512 acc[2][4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[0][t] = acc[1][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + b * 16)));
        __m512 flo = _mm512_permutexvar_ps(v, lut);
        __m512 fhi = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut);
        __m512 sc = _mm512_set1_ps(k_half_scale5[scl[b]]);
        int par = (int)(b & 1);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const float *xb = xp + t * in + b * 32;
            __m512 bd = _mm512_mul_ps(flo, _mm512_loadu_ps(xb));
            bd = _mm512_fmadd_ps(fhi, _mm512_loadu_ps(xb + 16), bd);
            if (par) acc[1][t] = _mm512_fmadd_ps(bd, sc, acc[1][t]);
            else acc[0][t] = _mm512_fmadd_ps(bd, sc, acc[0][t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) y[t * out] = z_hsum(_mm512_add_ps(acc[0][t], acc[1][t]));
}

static void z_mxfp4_rows(const dpb_weight *w, const float *xp, int64_t n, float *y, int64_t o0, int64_t o1)
{
    int64_t in = w->in, nb = in / 32, out = w->out;
    const uint8_t *blk = w->data;
    for (int64_t o = o0; o < o1; o++) {
        for (int64_t t = 0; t < n;) {
            int T = n - t >= 4 ? 4 : (int)(n - t);
            const uint8_t *b = blk + o * nb * 16, *s = w->scales + o * nb;
            const float *xt = xp + t * in;
            float *yt = y + t * out + o;
            switch (T) {
            case 1: z_mx_mk(b, s, nb, xt, in, yt, out, 1); break;
            case 2: z_mx_mk(b, s, nb, xt, in, yt, out, 2); break;
            case 3: z_mx_mk(b, s, nb, xt, in, yt, out, 3); break;
            default: z_mx_mk(b, s, nb, xt, in, yt, out, 4); break;
            }
            t += T;
        }
    }
}

static float z_dot_kv(const float *q, const void *k, dpb_kv_dtype dt, int64_t d)
{
    if (d % 16 || dt == DPB_KV_FP8) return dpb_cpu_kernels_avx2()->dot_kv(q, k, dt, d); /* fp8: the byte table */
    __m512 acc = _mm512_setzero_ps();
    int bf = dt == DPB_KV_BF16;
    for (int64_t i = 0; i < d; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), z_ld_w(k, i, bf), acc);
    return z_hsum(acc);
}

static void z_axpy_kv(float *out, float w, const void *v, dpb_kv_dtype dt, int64_t d)
{
    if (d % 16 || dt == DPB_KV_FP8) { dpb_cpu_kernels_avx2()->axpy_kv(out, w, v, dt, d); return; }
    __m512 wv = _mm512_set1_ps(w);
    int bf = dt == DPB_KV_BF16;
    for (int64_t i = 0; i < d; i += 16)
        _mm512_storeu_ps(out + i, _mm512_fmadd_ps(wv, z_ld_w(v, i, bf), _mm512_loadu_ps(out + i)));
}

#pragma GCC pop_options

static const dpb_cpu_kernels k_avx512 = {"avx512", z_dense_rows, z_dense_cols, z_mxfp4_rows, z_dot_kv, z_axpy_kv};

const dpb_cpu_kernels *dpb_cpu_kernels_avx512(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !dpb_cpu_kernels_avx2())
        return NULL;
    if (k_half_scale5[128] == 0)
        for (int s = 0; s < 256; s++) k_half_scale5[s] = s == 255 ? NAN : ldexpf(1.0f, s - 128);
    return &k_avx512;
}
#else
const dpb_cpu_kernels *dpb_cpu_kernels_avx512(void) { return NULL; }
#endif
