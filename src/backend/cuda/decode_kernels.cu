/* Decode kernels: bf16 GEMV, gpt-oss MXFP4 experts, router top-k, decode
 * attention.  API and layouts: decode_kernels.h; design: docs/CUDA.md. */
#include "backend/cuda/decode_kernels.h"
#include "backend/cuda/moe_wgmma.h"
#include "backend/cuda/pdl.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <atomic>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

namespace {

constexpr int kWarp = 32;

/* Streaming 16-byte load: read-only path, not kept in L1 (weights are read
 * once per step). */
__device__ __forceinline__ uint4 ld_stream16(const void *p)
{
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
    return r;
}

__device__ __forceinline__ float bf16lo(uint32_t u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float bf16hi(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }
__device__ __forceinline__ float bf16f(uint16_t u) { return __uint_as_float((uint32_t)u << 16); }

/* Rounds to bf16 precision (nearest even; NaN stays NaN), bit-exact with
 * dpb_f32_to_bf16 of format/dtype.h. */
__device__ __forceinline__ float round_bf16_dev(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return __uint_as_float((u | 0x00400000u) & 0xffff0000u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return __uint_as_float(u & 0xffff0000u);
}

/* gpt-oss's clamped SwiGLU of one gate/up pair with their biases added: the bf16 engine rounds gate and up
 * (rnd) and the result; gate <= limit, -limit <= up <= limit, act = g * sigmoid(alpha g) * (u + 1). */
__device__ __forceinline__ float swiglu_clamped_dev(float gt, float up, float limit, float alpha, int rnd)
{
    if (rnd) { gt = round_bf16_dev(gt); up = round_bf16_dev(up); }
    gt = fminf(gt, limit);
    up = fminf(fmaxf(up, -limit), limit);
    const float av = gt / (1.f + expf(-alpha * gt)) * (up + 1.f);
    return rnd ? round_bf16_dev(av) : av;
}

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* 8 bf16 weights (one uint4) times 8 activations. */
__device__ __forceinline__ float dot8_bf16(uint4 w, const float *x, float acc)
{
    acc = fmaf(bf16lo(w.x), x[0], acc);
    acc = fmaf(bf16hi(w.x), x[1], acc);
    acc = fmaf(bf16lo(w.y), x[2], acc);
    acc = fmaf(bf16hi(w.y), x[3], acc);
    acc = fmaf(bf16lo(w.z), x[4], acc);
    acc = fmaf(bf16hi(w.z), x[5], acc);
    acc = fmaf(bf16lo(w.w), x[6], acc);
    acc = fmaf(bf16hi(w.w), x[7], acc);
    return acc;
}

template <bool XBF16>
__device__ __forceinline__ void load_x8(const void *x, size_t elem, float *out)
{
    if constexpr (XBF16) {
        uint4 v = __ldg(reinterpret_cast<const uint4 *>(static_cast<const uint16_t *>(x) + elem));
        out[0] = bf16lo(v.x); out[1] = bf16hi(v.x);
        out[2] = bf16lo(v.y); out[3] = bf16hi(v.y);
        out[4] = bf16lo(v.z); out[5] = bf16hi(v.z);
        out[6] = bf16lo(v.w); out[7] = bf16hi(v.w);
    } else {
        const float4 *p = reinterpret_cast<const float4 *>(static_cast<const float *>(x) + elem);
        float4 a = __ldg(p), b = __ldg(p + 1);
        out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w;
        out[4] = b.x; out[5] = b.y; out[6] = b.z; out[7] = b.w;
    }
}

/* ---------------------------------------------------------------- GEMV --
 * Block of 8 warps.  Warp w: row group w / KS, K slice w % KS.  Each row
 * group covers ROWS consecutive rows; a lane reads 16 bytes (8 weights) of
 * every row per step, so x is loaded once per ROWS rows. */
constexpr int kGemvWarps = 8;
std::atomic<int> g_gemv_pdl{0}; /* DPB_CUDA_PDL mode of the GEMV and MoE kernel A/B v3 launches (dpb_cuda_gemv_pdl) */

/* Up to 3 (DPB_CUDA_GEMV_MAX_SEGS) matrices that share x, in one launch: blocks
 * [first1, first2) take matrix 1, [first2, grid) matrix 2, the rest matrix 0.
 * Scalar members chosen by comparisons: an array indexed by the block would
 * make every thread copy the parameters to local memory (82 MB of local
 * traffic for one 25,600-row launch: Qwen3-32B decode lost 15 % to it). */
struct gemv_segs {
    const uint16_t *W0, *W1, *W2;
    const float *b0, *b1, *b2;
    float *y0, *y1, *y2;
    int N0, N1, N2;
    int first1, first2;
    int rnd; /* outputs rounded to bf16 (bias included) */
};

template <int M, int ROWS, int KS, bool XBF16>
__global__ void __launch_bounds__(kGemvWarps * kWarp)
gemv_bf16_kernel(const gemv_segs S, const void *__restrict__ x, int K)
{
    pdl_wait();
    pdl_trigger();
    constexpr int GROUPS = kGemvWarps / KS;
    const int bx = (int)blockIdx.x;
    const bool s1 = bx >= S.first1 && bx < S.first2, s2 = bx >= S.first2;
    const uint16_t *__restrict__ W = s2 ? S.W2 : s1 ? S.W1 : S.W0;
    const float *__restrict__ bias = s2 ? S.b2 : s1 ? S.b1 : S.b0;
    float *__restrict__ y = s2 ? S.y2 : s1 ? S.y1 : S.y0;
    const int N = s2 ? S.N2 : s1 ? S.N1 : S.N0, blk = bx - (s2 ? S.first2 : s1 ? S.first1 : 0);
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int g = warp / KS, s = warp % KS;
    const int row0 = (blk * GROUPS + g) * ROWS;
    const int nchunk = K / 8;

    const uint4 *wrow[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        int rr = min(row0 + r, N - 1);
        wrow[r] = reinterpret_cast<const uint4 *>(W + (size_t)rr * K);
    }
    float acc[M][ROWS];
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int r = 0; r < ROWS; r++) acc[m][r] = 0.f;

    /* more independent 16-byte loads in flight when a warp has few rows */
#pragma unroll(ROWS == 1 ? 4 : 2)
    for (int c = s * kWarp + lane; c < nchunk; c += kWarp * KS) {
        uint4 w[ROWS];
#pragma unroll
        for (int r = 0; r < ROWS; r++) w[r] = ld_stream16(wrow[r] + c);
#pragma unroll
        for (int m = 0; m < M; m++) {
            float xv[8];
            load_x8<XBF16>(x, (size_t)m * K + (size_t)c * 8, xv);
#pragma unroll
            for (int r = 0; r < ROWS; r++) acc[m][r] = dot8_bf16(w[r], xv, acc[m][r]);
        }
    }
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int r = 0; r < ROWS; r++) acc[m][r] = warp_sum(acc[m][r]);

    if (KS == 1) {
        if (lane == 0) {
#pragma unroll
            for (int r = 0; r < ROWS; r++) {
                int row = row0 + r;
                if (row >= N) break;
                float b = bias ? bias[row] : 0.f;
#pragma unroll
                for (int m = 0; m < M; m++) {
                    const float v = acc[m][r] + b;
                    y[(size_t)m * N + row] = S.rnd ? round_bf16_dev(v) : v;
                }
            }
        }
    } else {
        __shared__ float red[kGemvWarps][M * ROWS];
        if (lane == 0) {
#pragma unroll
            for (int m = 0; m < M; m++)
#pragma unroll
                for (int r = 0; r < ROWS; r++) red[warp][m * ROWS + r] = acc[m][r];
        }
        __syncthreads();
        for (int t = threadIdx.x; t < GROUPS * M * ROWS; t += blockDim.x) {
            int gg = t / (M * ROWS), idx = t % (M * ROWS);
            int m = idx / ROWS, r = idx % ROWS;
            int row = (blk * GROUPS + gg) * ROWS + r;
            if (row >= N) continue;
            float v = 0.f;
#pragma unroll
            for (int ss = 0; ss < KS; ss++) v += red[gg * KS + ss][idx];
            v += bias ? bias[row] : 0.f;
            y[(size_t)m * N + row] = S.rnd ? round_bf16_dev(v) : v;
        }
    }
}

template <int M, int ROWS, int KS>
cudaError_t gemv_launch3(gemv_segs S, int nseg, const void *x, int x_bf16, int K, cudaStream_t st)
{
    constexpr int rows_per_block = (kGemvWarps / KS) * ROWS;
    const int b0 = (S.N0 + rows_per_block - 1) / rows_per_block;
    const int b1 = nseg > 1 ? (S.N1 + rows_per_block - 1) / rows_per_block : 0;
    const int b2 = nseg > 2 ? (S.N2 + rows_per_block - 1) / rows_per_block : 0;
    S.first1 = b0;
    S.first2 = b0 + b1;
    const int grid = b0 + b1 + b2;
    const int pm = g_gemv_pdl.load(std::memory_order_relaxed);
    if (x_bf16)
        return pdl_launch(pm, gemv_bf16_kernel<M, ROWS, KS, true>, dim3((unsigned)grid), dim3(kGemvWarps * kWarp), 0, st,
                          S, x, K);
    return pdl_launch(pm, gemv_bf16_kernel<M, ROWS, KS, false>, dim3((unsigned)grid), dim3(kGemvWarps * kWarp), 0, st, S,
                      x, K);
}

template <int M>
cudaError_t gemv_launch2(dpb_cuda_gemv_variant v, const gemv_segs &S, int nseg, const void *x, int x_bf16, int K,
                         cudaStream_t st)
{
    switch (v) {
    case DPB_GEMV_WARP_ROW: return gemv_launch3<M, 1, 1>(S, nseg, x, x_bf16, K, st);
    case DPB_GEMV_WARP_2ROW: return gemv_launch3<M, 2, 1>(S, nseg, x, x_bf16, K, st);
    case DPB_GEMV_WARP_4ROW: return gemv_launch3<M, 4, 1>(S, nseg, x, x_bf16, K, st);
    case DPB_GEMV_SPLITK4: return gemv_launch3<M, 1, 4>(S, nseg, x, x_bf16, K, st);
    case DPB_GEMV_SPLITK8: return gemv_launch3<M, 1, 8>(S, nseg, x, x_bf16, K, st);
    default: return cudaErrorInvalidValue;
    }
}

/* ------------------------------------------------------------- MXFP4 --
 * An E2M1 code placed in the exponent/mantissa bits of a half gives the
 * exact value times 2^-14 (code 1 = 0.5 becomes the half subnormal 2^-15):
 * half bits = sign << 15 | (code & 7) << 9.  Two codes go into one half2 at
 * a time; the block scale 2^(s-127) and the 2^14 are applied once per
 * 32-element block with ldexpf.
 * Word i of a 16-byte block holds elements 8i..8i+7: byte b has element
 * 8i+2b (low nibble) and 8i+2b+1 (high nibble).  Pair t (0..3) below holds
 * element 8i+t in its low half and 8i+t+4 in its high half. */
template <int T>
__device__ __forceinline__ float2 fp4_pair(uint32_t w)
{
    constexpr int q = 4 * T;
    /* nibble at bit q (and q+16): magnitude to bits 9..11, sign to bit 15 */
    uint32_t mag;
    if constexpr (q <= 9) mag = (w << (9 - q)) & 0x0e000e00u;
    else mag = (w >> (q - 9)) & 0x0e000e00u;
    uint32_t sgn = (w << (12 - q)) & 0x80008000u;
    uint32_t h = mag | sgn;
    __half2 hh = *reinterpret_cast<__half2 *>(&h);
    return __half22float2(hh);
}

/* sum over the 32 elements of one block of code * x (times 2^-14) */
__device__ __forceinline__ float dot_fp4_block(uint4 w, const float *xv)
{
    const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
    float a0 = 0.f, a1 = 0.f;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 p0 = fp4_pair<0>(ws[i]), p1 = fp4_pair<1>(ws[i]);
        float2 p2 = fp4_pair<2>(ws[i]), p3 = fp4_pair<3>(ws[i]);
        const float *xi = xv + 8 * i;
        /* pair t: elements t and t+4 of this word; element order 0..7 is
         * 2b (low nibble of byte b) and 2b+1 (high nibble):
         * t=0: byte0 lo -> elem 0, byte2 lo -> elem 4
         * t=1: byte0 hi -> elem 1, byte2 hi -> elem 5
         * t=2: byte1 lo -> elem 2, byte3 lo -> elem 6
         * t=3: byte1 hi -> elem 3, byte3 hi -> elem 7 */
        a0 = fmaf(p0.x, xi[0], a0); a1 = fmaf(p0.y, xi[4], a1);
        a0 = fmaf(p1.x, xi[1], a0); a1 = fmaf(p1.y, xi[5], a1);
        a0 = fmaf(p2.x, xi[2], a0); a1 = fmaf(p2.y, xi[6], a1);
        a0 = fmaf(p3.x, xi[3], a0); a1 = fmaf(p3.y, xi[7], a1);
    }
    return a0 + a1;
}

/* The same sum with one shared-memory lookup per code byte: lut[b] holds
 * the half2 (low nibble, high nibble) of byte b in the encoding of fp4_pair
 * (value times 2^-14), so the caller's scaling is unchanged. */
__device__ __forceinline__ float dot_fp4_block_lut(uint4 w, const float *xv, const uint32_t *lut)
{
    const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
    float a0 = 0.f, a1 = 0.f;
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int b = 0; b < 4; b++) {
            uint32_t h = lut[(ws[i] >> (8 * b)) & 0xffu];
            float2 f = __half22float2(*reinterpret_cast<__half2 *>(&h));
            a0 = fmaf(f.x, xv[8 * i + 2 * b], a0);
            a1 = fmaf(f.y, xv[8 * i + 2 * b + 1], a1);
        }
    }
    return a0 + a1;
}

/* Fills the 256-entry byte table (every thread of the block takes part). */
__device__ __forceinline__ void fill_fp4_lut(uint32_t *lut)
{
    for (int b = threadIdx.x; b < 256; b += blockDim.x) {
        const uint32_t lo = (uint32_t)b & 15u, hi = (uint32_t)b >> 4;
        const uint32_t hl = ((lo & 8u) << 12) | ((lo & 7u) << 9), hh = ((hi & 8u) << 12) | ((hi & 7u) << 9);
        lut[b] = hl | hh << 16;
    }
    __syncthreads();
}

template <bool L>
__device__ __forceinline__ float dot_fp4(uint4 w, const float *xv, const uint32_t *lut)
{
    if constexpr (L) return dot_fp4_block_lut(w, xv, lut);
    else return dot_fp4_block(w, xv);
}

__device__ __forceinline__ void load_x32(const float *p, float *xv)
{
    const float4 *q = reinterpret_cast<const float4 *>(p);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        float4 v = __ldg(q + i);
        xv[4 * i] = v.x; xv[4 * i + 1] = v.y; xv[4 * i + 2] = v.z; xv[4 * i + 3] = v.w;
    }
}

constexpr int kMoeWarps = 4;

/* Kernel A.  blockIdx.y: (token, expert slot) pair p.  Each warp computes RP
 * consecutive outputs j, i.e. the 2*RP consecutive rows 2j (gate), 2j+1 (up). */
template <int RP, bool L>
__global__ void __launch_bounds__(kMoeWarps * kWarp)
moe_gate_up_kernel(const uint8_t *__restrict__ blocks, const uint8_t *__restrict__ scales,
                   const uint16_t *__restrict__ bias, const float *__restrict__ x,
                   const int32_t *__restrict__ ids, float *__restrict__ act, int k, int E, int H,
                   int I, float alpha, float limit, const uint8_t *const *__restrict__ btab,
                   const uint8_t *const *__restrict__ stab, int rnd)
{
    __shared__ uint32_t lut[L ? 256 : 1];
    if constexpr (L) fill_fp4_lut(lut);
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int p = blockIdx.y, token = p / k;
    const int j0 = (blockIdx.x * kMoeWarps + warp) * RP;
    if (j0 >= I) return;
    const int e = ids[p];
    if (e < 0 || e >= E) { /* bad id: make it visible, never read out of bounds */
        if (lane < RP && j0 + lane < I) act[(size_t)p * I + j0 + lane] = __int_as_float(0x7fc00000);
        return;
    }
    const int nb = H / 32;
    const size_t rows2 = (size_t)2 * I;
    const float *xr = x + (size_t)token * H;

    const uint8_t *wb[2 * RP];
    const uint8_t *sb[2 * RP];
    /* expert base: contiguous [E, ...] tensors, or per-expert pointer tables */
    const uint8_t *eb = btab ? btab[e] : blocks + (size_t)e * rows2 * nb * 16;
    const uint8_t *es = stab ? stab[e] : scales + (size_t)e * rows2 * nb;
#pragma unroll
    for (int r = 0; r < 2 * RP; r++) {
        size_t row = (size_t)min(2 * j0 + r, 2 * I - 1);
        wb[r] = eb + row * nb * 16;
        sb[r] = es + row * nb;
    }
    float acc[2 * RP];
#pragma unroll
    for (int r = 0; r < 2 * RP; r++) acc[r] = 0.f;

    for (int c = lane; c < nb; c += kWarp) {
        uint4 w[2 * RP];
        int sc[2 * RP];
#pragma unroll
        for (int r = 0; r < 2 * RP; r++) {
            w[r] = ld_stream16(wb[r] + (size_t)c * 16);
            sc[r] = __ldg(sb[r] + c);
        }
        float xv[32];
        load_x32(xr + (size_t)c * 32, xv);
#pragma unroll
        for (int r = 0; r < 2 * RP; r++) acc[r] += ldexpf(dot_fp4<L>(w[r], xv, lut), sc[r] - 127 + 14);
    }
#pragma unroll
    for (int r = 0; r < 2 * RP; r++) acc[r] = warp_sum(acc[r]);
    if (lane == 0) {
#pragma unroll
        for (int t = 0; t < RP; t++) {
            int j = j0 + t;
            if (j >= I) break;
            const uint16_t *b = bias + (size_t)e * rows2 + 2 * (size_t)j;
            act[(size_t)p * I + j] = swiglu_clamped_dev(acc[2 * t] + bf16f(b[0]), acc[2 * t + 1] + bf16f(b[1]), limit, alpha, rnd);
        }
    }
}

/* Kernel B.  blockIdx.y: token.  Each warp computes R consecutive outputs h,
 * looping over the token's k experts. */
template <int R, bool L>
__global__ void __launch_bounds__(kMoeWarps * kWarp)
moe_down_kernel(const uint8_t *__restrict__ blocks, const uint8_t *__restrict__ scales,
                const uint16_t *__restrict__ bias, const float *__restrict__ act,
                const int32_t *__restrict__ ids, const float *__restrict__ wts,
                const float *resid, float *out, int k, int E, int H, int I,
                const uint8_t *const *__restrict__ btab, const uint8_t *const *__restrict__ stab, int rnd)
{
    __shared__ uint32_t lut[L ? 256 : 1];
    if constexpr (L) fill_fp4_lut(lut);
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int m = blockIdx.y;
    const int h0 = (blockIdx.x * kMoeWarps + warp) * R;
    if (h0 >= H) return;
    const int nb = I / 32;
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0.f;
    float bsum[R];
#pragma unroll
    for (int r = 0; r < R; r++) bsum[r] = 0.f;
    bool bad = false;

    for (int ei = 0; ei < k; ei++) {
        const int p = m * k + ei;
        const int e = ids[p];
        if (e < 0 || e >= E) { bad = true; continue; }
        const float wt = wts[p];
        const float *ar = act + (size_t)p * I;
        const uint8_t *wb[R];
        const uint8_t *sb[R];
        const uint8_t *eb = btab ? btab[e] : blocks + (size_t)e * H * nb * 16;
        const uint8_t *es = stab ? stab[e] : scales + (size_t)e * H * nb;
        float pe[R]; /* this expert's partial dot products (rounding mode) */
#pragma unroll
        for (int r = 0; r < R; r++) {
            size_t row = (size_t)min(h0 + r, H - 1);
            wb[r] = eb + row * nb * 16;
            sb[r] = es + row * nb;
            if (!rnd) bsum[r] += wt * bf16f(bias[(size_t)e * H + row]);
            pe[r] = 0.f;
        }
        for (int c = lane; c < nb; c += kWarp) {
            uint4 w[R];
            int sc[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                w[r] = ld_stream16(wb[r] + (size_t)c * 16);
                sc[r] = __ldg(sb[r] + c);
            }
            float xv[32];
            load_x32(ar + (size_t)c * 32, xv);
#pragma unroll
            for (int r = 0; r < R; r++) {
                if (rnd) pe[r] += ldexpf(dot_fp4<L>(w[r], xv, lut), sc[r] - 127 + 14);
                else acc[r] += wt * ldexpf(dot_fp4<L>(w[r], xv, lut), sc[r] - 127 + 14);
            }
        }
        if (rnd) {
            /* the reference rounds each expert's output (with bias) to bf16
             * before weighting it; lane 0 keeps the total */
#pragma unroll
            for (int r = 0; r < R; r++) {
                float v = warp_sum(pe[r]) + bf16f(bias[(size_t)e * H + min(h0 + r, H - 1)]);
                if (lane == 0) bsum[r] += round_bf16_dev(v) * wt;
            }
        }
    }
    if (rnd) {
#pragma unroll
        for (int r = 0; r < R; r++) acc[r] = 0.f; /* everything is in bsum (lane 0) */
    }
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = warp_sum(acc[r]);
    if (lane == 0) {
#pragma unroll
        for (int r = 0; r < R; r++) {
            int h = h0 + r;
            if (h >= H) break;
            size_t o = (size_t)m * H + h;
            out[o] = bad ? __int_as_float(0x7fc00000) : resid[o] + acc[r] + bsum[r];
        }
    }
}

/* ------------------------------------------------- MXFP4, version 2 --
 * The same results as kernels A and B above, restructured for memory-level
 * parallelism (docs/CUDA.md, "MXFP4 experts, version 2"):
 * - every lane issues all of its 16-byte weight loads (R rows x CI chunks)
 *   and its scale bytes before it computes anything, so a warp has R*CI
 *   independent loads in flight instead of R;
 * - the E8M0 scale (times the 2^14 of the half encoding) is built directly
 *   as float bits, (s + 14) << 23, instead of ldexpf;
 * - the code -> half2 decode uses two shifted copies of the word and two
 *   masks (shifts the compiler can issue as IMAD on the FMA pipe);
 * - kernel B gives each warp of a block one expert of the token (the block
 *   has k warps) and R output rows, and sums the k experts' rows in shared
 *   memory in a fixed order: 4x more warps than one warp looping over the
 *   experts, with every load issued up front.
 * x (or act) is read through the read-only cache: each lane's 32-element
 * chunk is loaded once and used for all R rows. */
constexpr int kA2Warps = 4;
constexpr int kV2Chunks = 3; /* chunks of 32 elements per lane per pass: 96 per warp (H = 2880: 90) */
constexpr int kA2DefaultRows = 4; /* weight rows per warp of kernel A v2 (rows_per_warp 0) */
constexpr int kB2DefaultRows = 4; /* output rows per block of kernel B v2 */

/* The four half2 of one word (8 codes) in the encoding of fp4_pair: h[j]
 * holds element j (low half) and element j+4 (high half), as half bits
 * times 2^-14.  Instead of two shifts and two masks per pair, two merged
 * words carry each code's sign bit next to its magnitude at the distance
 * the half layout needs:
 *   z  = w with bits 6, 14, 22, 30 taken from w << 3 (signs of the even
 *        codes 0, 2, 4, 6 placed 3 bits above their magnitudes' top bit);
 *   z' = w with bits 1-3, 9-11, 17-19, 25-27 taken from w >> 3 (the
 *        magnitudes of the odd codes 1, 3, 5, 7 moved 3 bits down, 6 bits
 *        below their sign bit, which stays in place).
 * (Checked against the nibble definition on 200,000 random words with a
 * Python model during development; the lab checks it on the GPU.)
 * Then h0 = (z << 9) & C, h2 = (z << 1) & C, h1 = (z' << 8) & C and
 * h3 = z' & C with C = 0x8e008e00 (sign bit 15, magnitude bits 9-11 of
 * each half): 11 integer operations per 8 codes instead of 15. */
/* (a & ~M) | (b & M) in one LOP3 (the compiler splits it in two) */
template <uint32_t M>
__device__ __forceinline__ uint32_t bitsel_c(uint32_t a, uint32_t b)
{
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xb8;" : "=r"(d) : "r"(a), "n"(M), "r"(b));
    return d;
}
/* x * m with m = 2^S held in a register the compiler cannot see through:
 * it stays an IMAD (FMA pipe) instead of a shift or LEA (integer pipe),
 * which balances the two pipes of the decode. */
struct Pow2Regs {
    uint32_t m1, m3, m8, m9;
};
__device__ __forceinline__ uint32_t mul_reg(uint32_t x, uint32_t m)
{
    uint32_t d;
    asm("mul.lo.u32 %0, %1, %2;" : "=r"(d) : "r"(x), "r"(m));
    return d;
}
/* 2, 8, 256, 512 plus `zero`, a kernel argument that is always 0 but
 * unknown to the compiler, so it cannot fold the multiplies into shifts */
__device__ __forceinline__ Pow2Regs pow2_regs(uint32_t zero)
{
    return Pow2Regs{2u + zero, 8u + zero, 256u + zero, 512u + zero};
}

__device__ __forceinline__ void fp4_word_h2(uint32_t w, const Pow2Regs &p2, uint32_t (&h)[4])
{
    constexpr uint32_t C = 0x8e008e00u;
    const uint32_t z = bitsel_c<0x40404040u>(w, mul_reg(w, p2.m3));
    const uint32_t zo = bitsel_c<0x0e0e0e0eu>(w, w >> 3);
    h[0] = mul_reg(z, p2.m9) & C;
    h[1] = mul_reg(zo, p2.m8) & C;
    h[2] = mul_reg(z, p2.m1) & C;
    h[3] = zo & C;
}

/* 2^(s - 127 + 14) as float bits; s = 255 (E8M0 NaN) and overflow give inf */
__device__ __forceinline__ float e8m0_x2p14(uint32_t s)
{
    return __uint_as_float(min(s + 14u, 255u) << 23);
}

/* sum over one 32-element block of code * x (times 2^-14), x as 8 float4 */
__device__ __forceinline__ float dot_fp4_v2(uint4 w, const float4 *xq, const Pow2Regs &p2)
{
    const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
    float a0 = 0.f, a1 = 0.f;
#pragma unroll
    for (int q = 0; q < 4; q++) {
        const float4 xa = xq[2 * q], xb = xq[2 * q + 1];
        uint32_t h[4];
        fp4_word_h2(ws[q], p2, h);
        float2 p0 = __half22float2(*reinterpret_cast<__half2 *>(&h[0]));
        float2 p1 = __half22float2(*reinterpret_cast<__half2 *>(&h[1]));
        float2 p2 = __half22float2(*reinterpret_cast<__half2 *>(&h[2]));
        float2 p3 = __half22float2(*reinterpret_cast<__half2 *>(&h[3]));
        a0 = fmaf(p0.x, xa.x, a0); a1 = fmaf(p0.y, xb.x, a1);
        a0 = fmaf(p1.x, xa.y, a0); a1 = fmaf(p1.y, xb.y, a1);
        a0 = fmaf(p2.x, xa.z, a0); a1 = fmaf(p2.y, xb.z, a1);
        a0 = fmaf(p3.x, xa.w, a0); a1 = fmaf(p3.y, xb.w, a1);
    }
    return a0 + a1;
}

/* One warp: tot[r] += sum_c W[row r][chunk c] . x[chunk c] over the chunks
 * c = lane + 32 i (all passes), rows given by their byte bases (blocks and
 * scales).  Partial per lane; the caller reduces over the warp. */
template <int R>
__device__ __forceinline__ void rows_dot_v2(const uint8_t *const (&wb)[R], const uint8_t *const (&sb)[R],
                                            const float *__restrict__ xr, int nb, int lane, float (&tot)[R],
                                            uint32_t zero)
{
    const Pow2Regs p2 = pow2_regs(zero);
    for (int cb = 0; cb < nb; cb += kWarp * kV2Chunks) {
        uint4 w[R][kV2Chunks];
        uint32_t s[R][kV2Chunks];
#pragma unroll
        for (int i = 0; i < kV2Chunks; i++) {
            const int c = cb + lane + kWarp * i;
#pragma unroll
            for (int r = 0; r < R; r++) {
                if (c < nb) {
                    w[r][i] = ld_stream16(wb[r] + (size_t)c * 16);
                    s[r][i] = __ldg(sb[r] + c);
                } else {
                    w[r][i] = make_uint4(0u, 0u, 0u, 0u);
                    s[r][i] = 0u;
                }
            }
        }
#pragma unroll
        for (int i = 0; i < kV2Chunks; i++) {
            const int c = cb + lane + kWarp * i;
            if (c < nb) {
                const float4 *xq = reinterpret_cast<const float4 *>(xr + (size_t)c * 32);
                float4 xv[8];
#pragma unroll
                for (int t = 0; t < 8; t++) xv[t] = __ldg(xq + t);
#pragma unroll
                for (int r = 0; r < R; r++) tot[r] = fmaf(dot_fp4_v2(w[r][i], xv, p2), e8m0_x2p14(s[r][i]), tot[r]);
            }
        }
    }
}

/* Kernel A, version 2.  blockIdx.y: (token, expert slot) pair p; each warp
 * computes R consecutive weight rows (R/2 gate/up pairs). */
template <int R>
__global__ void __launch_bounds__(kA2Warps * kWarp)
moe_gate_up_v2_kernel(const uint8_t *__restrict__ blocks, const uint8_t *__restrict__ scales,
                      const uint16_t *__restrict__ bias, const float *__restrict__ x,
                      const int32_t *__restrict__ ids, float *__restrict__ act, int k, int E, int H, int I,
                      float alpha, float limit, const uint8_t *const *__restrict__ btab,
                      const uint8_t *const *__restrict__ stab, int rnd, uint32_t zero)
{
    constexpr int RP = R / 2;
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int p = blockIdx.y, token = p / k;
    const int j0 = (blockIdx.x * kA2Warps + warp) * RP;
    if (j0 >= I) return;
    const int e = ids[p];
    if (e < 0 || e >= E) {
        if (lane < RP && j0 + lane < I) act[(size_t)p * I + j0 + lane] = __int_as_float(0x7fc00000);
        return;
    }
    const int nb = H / 32;
    const size_t rows2 = (size_t)2 * I;
    const uint8_t *eb = btab ? btab[e] : blocks + (size_t)e * rows2 * nb * 16;
    const uint8_t *es = stab ? stab[e] : scales + (size_t)e * rows2 * nb;
    const uint8_t *wb[R];
    const uint8_t *sb[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const size_t row = (size_t)min(2 * j0 + r, 2 * I - 1);
        wb[r] = eb + row * nb * 16;
        sb[r] = es + row * nb;
    }
    float tot[R];
#pragma unroll
    for (int r = 0; r < R; r++) tot[r] = 0.f;
    rows_dot_v2<R>(wb, sb, x + (size_t)token * H, nb, lane, tot, zero);
#pragma unroll
    for (int r = 0; r < R; r++) tot[r] = warp_sum(tot[r]);
#pragma unroll
    for (int t = 0; t < RP; t++) {
        const int j = j0 + t;
        if (lane == t && j < I) {
            const uint16_t *b = bias + (size_t)e * rows2 + 2 * (size_t)j;
            act[(size_t)p * I + j] = swiglu_clamped_dev(tot[2 * t] + bf16f(b[0]), tot[2 * t + 1] + bf16f(b[1]), limit, alpha, rnd);
        }
    }
}

/* Kernel B, version 2.  blockIdx.y: token m; block of k warps, warp ei
 * computes expert slot ei's R consecutive output rows; the block sums the k
 * experts (in slot order) and adds the residual. */
constexpr int kB2MaxK = 8;

template <int R>
__global__ void __launch_bounds__(kB2MaxK * kWarp)
moe_down_v2_kernel(const uint8_t *__restrict__ blocks, const uint8_t *__restrict__ scales,
                   const uint16_t *__restrict__ bias, const float *__restrict__ act,
                   const int32_t *__restrict__ ids, const float *__restrict__ wts, const float *resid,
                   float *out, int k, int E, int H, int I, const uint8_t *const *__restrict__ btab,
                   const uint8_t *const *__restrict__ stab, int rnd, uint32_t zero)
{
    __shared__ float part[kB2MaxK][R];
    const int ei = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int m = blockIdx.y;
    const int h0 = blockIdx.x * R;
    const int p = m * k + ei;
    const int e = ids[p];
    const bool bad = e < 0 || e >= E;
    if (!bad) {
        const int nb = I / 32;
        const uint8_t *eb = btab ? btab[e] : blocks + (size_t)e * H * nb * 16;
        const uint8_t *es = stab ? stab[e] : scales + (size_t)e * H * nb;
        const uint8_t *wb[R];
        const uint8_t *sb[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            const size_t row = (size_t)min(h0 + r, H - 1);
            wb[r] = eb + row * nb * 16;
            sb[r] = es + row * nb;
        }
        float tot[R];
#pragma unroll
        for (int r = 0; r < R; r++) tot[r] = 0.f;
        rows_dot_v2<R>(wb, sb, act + (size_t)p * I, nb, lane, tot, zero);
#pragma unroll
        for (int r = 0; r < R; r++) tot[r] = warp_sum(tot[r]);
        if (lane == 0) {
            const float wt = wts[p];
#pragma unroll
            for (int r = 0; r < R; r++) {
                float v = tot[r] + bf16f(bias[(size_t)e * H + min(h0 + r, H - 1)]);
                if (rnd) v = round_bf16_dev(v);
                part[ei][r] = v * wt;
            }
        }
    } else if (lane == 0) {
#pragma unroll
        for (int r = 0; r < R; r++) part[ei][r] = __int_as_float(0x7fc00000);
    }
    __syncthreads();
    if (threadIdx.x < R) {
        const int h = h0 + threadIdx.x;
        if (h < H) {
            const size_t o = (size_t)m * H + h;
            float s = resid[o];
            for (int t = 0; t < k; t++) s += part[t][threadIdx.x];
            out[o] = s;
        }
    }
}

/* ------------------------------------ MXFP4 on the tensor cores, v3 --
 * Kernels A and B again, with the products on the tensor cores
 * (mma.sync m16n8k16, f16 inputs, fp32 accumulation).  In the CUDA-core
 * kernels every weight costs a decode share, a half -> float conversion and
 * an FMA; here only the decode is left on the CUDA cores (docs/CUDA.md).
 *
 * A warp computes 16 consecutive weight rows.  Lane (g, t) (g = lane / 4,
 * t = lane % 4) loads 16 bytes, one whole 32-element block, of rows g and
 * g+8: block b0+t of a step of 4 blocks.  In each of the step's 8 MMAs the
 * lane supplies 2 code pairs of its own block for each of its rows, so one
 * MMA mixes 4 blocks with 4 different scales.  The B operand keeps them
 * apart: column n of B holds the vector's values of block b0+n and zeros
 * elsewhere, so C[row][n] is the dot product of one row with one block, and
 * the block scales are applied in fp32 to the 4 columns of C afterwards.
 * In B's fragment layout only lanes g == t (0, 5, 10, 15) hold nonzero
 * values in columns 0-3; columns 4-7 (lanes g == t + 4: 16, 21, 26, 31)
 * carry a second part, and the other lanes read 64 zero bytes.  The vector
 * (x or act) is staged in shared memory as f16 pairs in the order of the A
 * fragments, scaled by a power of two 2^sigma that puts its largest
 * magnitude in [2^14, 2^15) (no f16 overflow), as hi = f16(v) in columns
 * 0-3 and lo = f16(v - hi) in columns 4-7: the products see v to about
 * 2^-22 relative (hi alone: 2^-11), at no extra MMA.  The result is
 * multiplied by 2^-sigma. */
constexpr int kV3MaxBlocks = 96; /* H (A) or I (B) up to 3072; larger shapes use version 2 */

__device__ __forceinline__ float pow2f(int e) /* e in [-126, 127] */
{
    return __uint_as_float((uint32_t)(e + 127) << 23);
}

/* sigma with amax * 2^sigma in [2^14, 2^15), clamped to [-100, 100] */
__device__ __forceinline__ int f16_shift(float amax)
{
    if (!(amax > 0.f)) return 0;
    const int e = (int)(__float_as_uint(amax) >> 23); /* amax > 0: no sign bit */
    return max(-100, min(100, 141 - e));
}

__device__ __forceinline__ void mma_f16_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                              uint32_t b0, uint32_t b1)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* Stages blocks [kb0, kb1) of v (fp32) in the pair order of stage_h2, as
 * f16 hi (and lo = v - hi with HILO), scaled by 2^sigma from the largest
 * magnitude in the range; returns sigma.  NTHR threads (a warp, or the
 * block with `red` holding NTHR/32 floats) each load their groups of 8
 * elements at once (two float4, up to MAXG groups), so the stage costs one
 * round trip to L2, not one per element.  The caller synchronizes after. */
template <int NTHR, int MAXG, bool HILO>
__device__ __forceinline__ int stage_vec(const float *__restrict__ v, int kb0, int kb1, uint32_t *xh, uint32_t *xl,
                                         int tid, float *red)
{
    const int g0 = kb0 * 4, ng = (kb1 - kb0) * 4; /* groups of 8 elements */
    float4 a[MAXG], b[MAXG];
    float am = 0.f;
#pragma unroll
    for (int u = 0; u < MAXG; u++) {
        const int gi = tid + u * NTHR;
        if (gi < ng) {
            const float4 *q = reinterpret_cast<const float4 *>(v + 8 * (size_t)(g0 + gi));
            a[u] = __ldg(q);
            b[u] = __ldg(q + 1);
        } else {
            a[u] = b[u] = make_float4(0.f, 0.f, 0.f, 0.f);
        }
        am = fmaxf(am, fmaxf(fmaxf(fmaxf(fabsf(a[u].x), fabsf(a[u].y)), fmaxf(fabsf(a[u].z), fabsf(a[u].w))),
                             fmaxf(fmaxf(fabsf(b[u].x), fabsf(b[u].y)), fmaxf(fabsf(b[u].z), fabsf(b[u].w)))));
    }
    am = warp_max(am);
    if constexpr (NTHR > kWarp) {
        if (tid % kWarp == 0) red[tid / kWarp] = am;
        __syncthreads();
        am = 0.f;
#pragma unroll
        for (int w = 0; w < NTHR / kWarp; w++) am = fmaxf(am, red[w]);
    }
    const int sigma = f16_shift(am);
    const float sc = pow2f(sigma);
    auto h2 = [](float p, float q) {
        const __half2 h = __floats2half2_rn(p, q);
        return *reinterpret_cast<const uint32_t *>(&h);
    };
    auto rest = [](float p, uint32_t hb, bool hi16) {
        const uint32_t bits = hi16 ? hb >> 16 : hb & 0xffffu;
        return p - __half2float(__ushort_as_half((unsigned short)bits));
    };
#pragma unroll
    for (int u = 0; u < MAXG; u++) {
        const int gi = tid + u * NTHR;
        if (gi < ng) {
            const float p0 = a[u].x * sc, p1 = a[u].y * sc, p2 = a[u].z * sc, p3 = a[u].w * sc;
            const float q0 = b[u].x * sc, q1 = b[u].y * sc, q2 = b[u].z * sc, q3 = b[u].w * sc;
            const uint4 hv = make_uint4(h2(p0, q0), h2(p1, q1), h2(p2, q2), h2(p3, q3));
            reinterpret_cast<uint4 *>(xh)[gi] = hv;
            if constexpr (HILO) {
                reinterpret_cast<uint4 *>(xl)[gi] =
                    make_uint4(h2(rest(p0, hv.x, false), rest(q0, hv.x, true)), h2(rest(p1, hv.y, false), rest(q1, hv.y, true)),
                               h2(rest(p2, hv.z, false), rest(q2, hv.z, true)), h2(rest(p3, hv.w, false), rest(q3, hv.w, true)));
            }
        }
    }
    for (int i = tid; i < 16; i += NTHR) {
        xh[ng * 4 + i] = 0u;
        if constexpr (HILO) xl[ng * 4 + i] = 0u;
    }
    return sigma;
}

/* One warp: the 16 rows whose blocks start at w0 (row stride nb*16 bytes)
 * and scales at s0 (stride nb), dotted with the staged vector over the
 * blocks [kb0, kb1).  start() loads the first batch (call it before
 * staging the vector); run() takes xh/xl (hi and lo parts, block kb0
 * first) and xz (16 zero pairs).  B columns 0-3 carry hi (lanes 0, 5, 10,
 * 15), columns 4-7 lo (lanes 16, 21, 26, 31).  Lane (g, t) returns partial
 * sums of rows g (lo) and g+8 (hi), with the vector's 2^sigma still in; the
 * caller sums the quad's 4 lanes.  Batches of NS steps (4 blocks each) are
 * loaded into two register sets in turn: the next batch is in flight while
 * this one is computed. */
template <int NS>
struct V3Batch {
    uint4 a[NS], b[NS];  /* block b0 + 4s + t of rows g and g+8 */
    uint32_t sc[NS][4];  /* scales of blocks b0+4s+2(t&1), +1 of rows g, g+8 */
};

template <int NS>
struct Tile3 {
    const uint8_t *pa, *pb, *psg, *psh; /* per-lane cursors, one batch per load */
    int kb0, kb1, lane;
    V3Batch<NS> X, Y;

    __device__ __forceinline__ void load(V3Batch<NS> &B, int b0)
    {
        const int t = lane & 3;
#pragma unroll
        for (int s = 0; s < NS; s++) {
            const int blk = b0 + 4 * s + t, c0 = b0 + 4 * s + 2 * (t & 1);
            if (blk < kb1) {
                B.a[s] = ld_stream16(pa + 64 * s);
                B.b[s] = ld_stream16(pb + 64 * s);
            } else {
                B.a[s] = make_uint4(0u, 0u, 0u, 0u);
                B.b[s] = make_uint4(0u, 0u, 0u, 0u);
            }
            const bool s0ok = c0 < kb1, s1ok = c0 + 1 < kb1;
            B.sc[s][0] = s0ok ? __ldg(psg + 4 * s) : 0u;
            B.sc[s][1] = s1ok ? __ldg(psg + 4 * s + 1) : 0u;
            B.sc[s][2] = s0ok ? __ldg(psh + 4 * s) : 0u;
            B.sc[s][3] = s1ok ? __ldg(psh + 4 * s + 1) : 0u;
        }
        pa += 64 * NS;
        pb += 64 * NS;
        psg += 4 * NS;
        psh += 4 * NS;
    }
    __device__ __forceinline__ void start(const uint8_t *w0, const uint8_t *s0, int nb, int kb0_, int kb1_, int lane_)
    {
        lane = lane_;
        kb0 = kb0_;
        kb1 = kb1_;
        const int g = lane >> 2, t = lane & 3;
        pa = w0 + ((size_t)g * nb + kb0 + t) * 16;
        pb = pa + (size_t)8 * nb * 16;
        psg = s0 + (size_t)g * nb + kb0 + 2 * (t & 1);
        psh = psg + (size_t)8 * nb;
        load(X, kb0);
    }
    __device__ __forceinline__ void compute(const V3Batch<NS> &B, int b0, const uint4 *xl4, const uint4 *xz,
                                            const Pow2Regs &p2, float &lo, float &hi)
    {
        const int t = lane & 3;
#pragma unroll
        for (int s = 0; s < NS; s++) {
            const int blk = b0 + 4 * s + t;
            const uint4 *xp = (xl4 && blk < kb1) ? xl4 + 4 * (b0 - kb0 + 4 * s) : xz;
            uint32_t xb[16];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const uint4 v = xp[u];
                xb[4 * u] = v.x; xb[4 * u + 1] = v.y; xb[4 * u + 2] = v.z; xb[4 * u + 3] = v.w;
            }
            const uint32_t wga[4] = {B.a[s].x, B.a[s].y, B.a[s].z, B.a[s].w};
            const uint32_t wha[4] = {B.b[s].x, B.b[s].y, B.b[s].z, B.b[s].w};
            float c[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
            for (int q = 0; q < 4; q++) {
                uint32_t hg[4], hh[4];
                fp4_word_h2(wga[q], p2, hg);
                fp4_word_h2(wha[q], p2, hh);
                /* pairs 4q+0, 4q+1 -> one MMA; pairs 4q+2, 4q+3 -> the next */
                mma_f16_16816(c, hg[0], hh[0], hg[1], hh[1], xb[4 * q], xb[4 * q + 1]);
                mma_f16_16816(c, hg[2], hh[2], hg[3], hh[3], xb[4 * q + 2], xb[4 * q + 3]);
            }
            lo = fmaf(c[0], e8m0_x2p14(B.sc[s][0]), lo);
            lo = fmaf(c[1], e8m0_x2p14(B.sc[s][1]), lo);
            hi = fmaf(c[2], e8m0_x2p14(B.sc[s][2]), hi);
            hi = fmaf(c[3], e8m0_x2p14(B.sc[s][3]), hi);
        }
    }
    __device__ __forceinline__ void run(const uint32_t *xh, const uint32_t *xlo, const uint32_t *xzero, float &lo,
                                        float &hi, uint32_t zero)
    {
        const int g = lane >> 2, t = lane & 3;
        const Pow2Regs p2 = pow2_regs(zero);
        const uint32_t *src = g == t ? xh : (g == t + 4 ? xlo : nullptr);
        const uint4 *xl4 = src ? reinterpret_cast<const uint4 *>(src) + 4 * t : nullptr; /* this lane's block of a step */
        const uint4 *xz = reinterpret_cast<const uint4 *>(xzero);
        int b0 = kb0;
        while (b0 < kb1) {
            load(Y, b0 + 4 * NS);
            compute(X, b0, xl4, xz, p2, lo, hi);
            b0 += 4 * NS;
            if (b0 >= kb1) break;
            load(X, b0 + 4 * NS);
            compute(Y, b0, xl4, xz, p2, lo, hi);
            b0 += 4 * NS;
        }
    }
};

/* Kernel A, version 3.  blockIdx.y: (token, expert slot) pair p.  A block of
 * 4 warps covers 4/KS tiles of 16 weight rows (8 gate/up pairs), KS warps
 * per tile splitting H; the partial sums meet in shared memory. */
constexpr int kA3Warps = 4;

template <int NS, int KS>
__global__ void __launch_bounds__(kA3Warps * kWarp)
moe_gate_up_v3_kernel(const uint8_t *__restrict__ blocks, const uint8_t *__restrict__ scales,
                      const uint16_t *__restrict__ bias, const float *__restrict__ x,
                      const int32_t *__restrict__ ids, float *__restrict__ act, int k, int E, int H, int I,
                      float alpha, float limit, const uint8_t *const *__restrict__ btab,
                      const uint8_t *const *__restrict__ stab, int rnd, uint32_t zero)
{
    pdl_wait();
    pdl_trigger();
    constexpr int TILES = kA3Warps / KS;
    __shared__ __align__(16) uint32_t xh[(kV3MaxBlocks + 1) * 16];
    __shared__ __align__(16) uint32_t xl[(kV3MaxBlocks + 1) * 16];
    __shared__ float red[kA3Warps];
    __shared__ float part[kA3Warps][16];
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int p = blockIdx.y, token = p / k;
    const int nb = H / 32;
    const int tl = warp / KS, ks = warp % KS;
    const int r0 = (blockIdx.x * TILES + tl) * 16; /* first weight row of the tile */
    const int e = ids[p];
    const bool bad = e < 0 || e >= E;
    const bool work = r0 < 2 * I && !bad;
    const int nbs = (nb + 4 * KS - 1) / (4 * KS) * 4;
    const int kb0 = min(nb, ks * nbs), kb1 = min(nb, kb0 + nbs);
    Tile3<NS> tile;
    if (work) {
        const size_t rows2 = (size_t)2 * I;
        const uint8_t *eb = btab ? btab[e] : blocks + (size_t)e * rows2 * nb * 16;
        const uint8_t *es = stab ? stab[e] : scales + (size_t)e * rows2 * nb;
        tile.start(eb + (size_t)r0 * nb * 16, es + (size_t)r0 * nb, nb, kb0, kb1, lane);
    }
    const int sigma = stage_vec<kA3Warps * kWarp, (4 * kV3MaxBlocks + kA3Warps * kWarp - 1) / (kA3Warps * kWarp), true>(
        x + (size_t)token * H, 0, nb, xh, xl, threadIdx.x, red);
    __syncthreads();
    if (work) {
        float lo = 0.f, hi = 0.f;
        tile.run(xh + kb0 * 16, xl + kb0 * 16, xh + nb * 16, lo, hi, zero);
        lo += __shfl_xor_sync(0xffffffffu, lo, 1);
        lo += __shfl_xor_sync(0xffffffffu, lo, 2);
        hi += __shfl_xor_sync(0xffffffffu, hi, 1);
        hi += __shfl_xor_sync(0xffffffffu, hi, 2);
        if ((lane & 3) == 0) {
            part[warp][lane >> 2] = lo;
            part[warp][(lane >> 2) + 8] = hi;
        }
    }
    __syncthreads();
    if (threadIdx.x < TILES * 8) {
        const int tt = threadIdx.x / 8, jj = threadIdx.x % 8;
        const int rr = (blockIdx.x * TILES + tt) * 16;
        const int j = rr / 2 + jj;
        if (rr < 2 * I) {
            if (bad) {
                act[(size_t)p * I + j] = __int_as_float(0x7fc00000);
            } else {
                float gt = 0.f, up = 0.f;
#pragma unroll
                for (int u = 0; u < KS; u++) {
                    gt += part[tt * KS + u][2 * jj];
                    up += part[tt * KS + u][2 * jj + 1];
                }
                const float inv = pow2f(-sigma);
                const uint16_t *b = bias + (size_t)e * 2 * I + 2 * (size_t)j;
                act[(size_t)p * I + j] = swiglu_clamped_dev(gt * inv + bf16f(b[0]), up * inv + bf16f(b[1]), limit, alpha, rnd);
            }
        }
    }
}

/* Kernel B, version 3.  blockIdx.y: token m; blockIdx.x: a tile of 16
 * output rows.  The block has k*KS warps: warp w takes expert slot w % k
 * and the K slice w / k; each warp stages its slice of its expert's act
 * vector (dynamic shared memory: 2 * (nbs + 1) * 64 bytes per warp).  The
 * block sums the slices and the k experts in a fixed order. */
constexpr int kB3MaxWarps = 16;

template <int NS, int KS>
__global__ void __launch_bounds__(kB3MaxWarps * kWarp)
moe_down_v3_kernel(const uint8_t *__restrict__ blocks, const uint8_t *__restrict__ scales,
                   const uint16_t *__restrict__ bias, const float *__restrict__ act,
                   const int32_t *__restrict__ ids, const float *__restrict__ wts, const float *resid,
                   float *out, int k, int E, int H, int I, const uint8_t *const *__restrict__ btab,
                   const uint8_t *const *__restrict__ stab, int rnd, uint32_t zero)
{
    pdl_wait();
    pdl_trigger();
    extern __shared__ __align__(16) uint32_t dsm[];
    __shared__ float part[kB3MaxWarps][16];
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int ei = warp % k, ks = warp / k;
    const int m = blockIdx.y, r0 = blockIdx.x * 16;
    const int p = m * k + ei;
    const int e = ids[p];
    const bool bad = e < 0 || e >= E;
    const int nb = I / 32;
    const int nbs = (nb + 4 * KS - 1) / (4 * KS) * 4;
    const int kb0 = min(nb, ks * nbs), kb1 = min(nb, kb0 + nbs);
    Tile3<NS> tile;
    if (!bad) {
        const uint8_t *eb = btab ? btab[e] : blocks + (size_t)e * H * nb * 16;
        const uint8_t *es = stab ? stab[e] : scales + (size_t)e * H * nb;
        tile.start(eb + (size_t)r0 * nb * 16, es + (size_t)r0 * nb, nb, kb0, kb1, lane);
    }
    uint32_t *xh = dsm + (size_t)warp * 2 * (nbs + 1) * 16;
    uint32_t *xl = xh + (nbs + 1) * 16;
    const int sigma =
        stage_vec<kWarp, (4 * kV3MaxBlocks / KS + kWarp - 1) / kWarp, true>(act + (size_t)p * I, kb0, kb1, xh, xl, lane, nullptr);
    __syncwarp();
    float lo = 0.f, hi = 0.f;
    if (!bad) tile.run(xh, xl, xh + (kb1 - kb0) * 16, lo, hi, zero);
    lo += __shfl_xor_sync(0xffffffffu, lo, 1);
    lo += __shfl_xor_sync(0xffffffffu, lo, 2);
    hi += __shfl_xor_sync(0xffffffffu, hi, 1);
    hi += __shfl_xor_sync(0xffffffffu, hi, 2);
    if ((lane & 3) == 0) {
        const float inv = pow2f(-sigma);
        part[warp][lane >> 2] = lo * inv;
        part[warp][(lane >> 2) + 8] = hi * inv;
    }
    __syncthreads();
    if (threadIdx.x < 16) {
        const int h = r0 + threadIdx.x;
        const size_t o = (size_t)m * H + h;
        float s = resid[o];
        bool anybad = false;
        for (int u = 0; u < k; u++) {
            const int eu = ids[m * k + u];
            if (eu < 0 || eu >= E) { anybad = true; continue; }
            float v = 0.f;
            for (int q = 0; q < KS; q++) v += part[q * k + u][threadIdx.x];
            v += bf16f(bias[(size_t)eu * H + h]);
            if (rnd) v = round_bf16_dev(v);
            s += v * wts[m * k + u];
        }
        out[o] = anybad ? __int_as_float(0x7fc00000) : s;
    }
}
constexpr int kB3DefaultSplits = 2; /* K slices per expert in kernel B v3 */
constexpr int kA3DefaultSplits = 1; /* K slices per tile in kernel A v3 */
constexpr int kV3DefaultSteps = 2;  /* steps of 4 blocks loaded at a time */
/* kernel A at M = 1 (batch-1 decode): 4 steps; lab, 2026-11-26, gpt-oss shape in a graph: 16.39 us
 * against 16.92 with 2 (docs/CUDA.md, "Session 4, helper small") */
constexpr int kA3DecodeSteps = 4;
constexpr int kMoeDefaultVersion = 3;
constexpr size_t kMaxDynSmem = 200 * 1024;

/* --------------------------------------------------- add + RMSNorm --
 * One block per row, up to kNormPer elements per thread kept in registers
 * between the sum of squares and the scaling. */
constexpr int kNormThreads = 1024;
constexpr int kNormPer = 8; /* dim <= 8192 */

__global__ void __launch_bounds__(kNormThreads)
add_rmsnorm_kernel(float *__restrict__ x, const float *r, const uint16_t *__restrict__ w, float *y, int dim,
                   float eps, int round_x, int round_y)
{
    __shared__ float red[kNormThreads / kWarp];
    const int row = blockIdx.x, tid = threadIdx.x, nthr = blockDim.x;
    float *xr = x + (size_t)row * dim;
    const float *rr = r ? r + (size_t)row * dim : nullptr;
    float *yr = y + (size_t)row * dim;
    float v[kNormPer];
    float ss = 0.f;
#pragma unroll
    for (int u = 0; u < kNormPer; u++) {
        const int i = tid + u * nthr;
        v[u] = 0.f;
        if (i < dim) {
            float a = xr[i];
            if (rr) a += rr[i];
            if (round_x) a = round_bf16_dev(a);
            xr[i] = a;
            v[u] = a;
            ss = fmaf(a, a, ss);
        }
    }
    ss = warp_sum(ss);
    if (tid % kWarp == 0) red[tid / kWarp] = ss;
    __syncthreads();
    if (tid < kWarp) {
        float t = tid < nthr / kWarp ? red[tid] : 0.f;
        t = warp_sum(t);
        if (tid == 0) red[0] = t;
    }
    __syncthreads();
    const float s = 1.0f / sqrtf(red[0] / (float)dim + eps);
#pragma unroll
    for (int u = 0; u < kNormPer; u++) {
        const int i = tid + u * nthr;
        if (i < dim) {
            const float o = bf16f(w[i]) * (v[u] * s);
            yr[i] = round_y ? round_bf16_dev(o) : o;
        }
    }
}

/* ------------------------------------------------------------ router --
 * One block of 32 warps per token; warp w computes logits w and w+32. */
__global__ void __launch_bounds__(1024)
router_topk_kernel(const uint16_t *__restrict__ Wr, const uint16_t *__restrict__ br,
                   const float *__restrict__ x, int32_t *__restrict__ ids, float *__restrict__ wts,
                   int E, int H, int k)
{
    __shared__ float logit[64];
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int m = blockIdx.x;
    const int nchunk = H / 8;
    for (int row = warp; row < E; row += 32) {
        const uint4 *w = reinterpret_cast<const uint4 *>(Wr + (size_t)row * H);
        float acc = 0.f;
#pragma unroll 4
        for (int c = lane; c < nchunk; c += kWarp) {
            float xv[8];
            load_x8<false>(x, (size_t)m * H + (size_t)c * 8, xv);
            acc = dot8_bf16(ld_stream16(w + c), xv, acc);
        }
        acc = warp_sum(acc);
        if (lane == 0) logit[row] = acc + bf16f(br[row]);
    }
    __syncthreads();
    if (warp != 0) return;
    float v0 = lane < E ? logit[lane] : -INFINITY;
    float v1 = lane + 32 < E ? logit[lane + 32] : -INFINITY;
    float selv = -INFINITY, top = -INFINITY;
    int seli = 0;
    for (int t = 0; t < k; t++) {
        /* best of this lane, then of the warp; ties -> lower index */
        float bv = v0;
        int bi = lane;
        if (v1 > bv) { bv = v1; bi = lane + 32; }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
        }
        if (t == 0) top = bv;
        if (lane == t) { selv = bv; seli = bi; }
        if (bi == lane) v0 = -INFINITY;
        if (bi == lane + 32) v1 = -INFINITY;
    }
    float ex = lane < k ? expf(selv - top) : 0.f;
    float sum = warp_sum(ex);
    if (lane < k) {
        ids[(size_t)m * k + lane] = seli;
        wts[(size_t)m * k + lane] = ex / sum;
    }
}

/* --------------------------------------------------------- attention --
 * Grid (Hkv, nsplit), 8 warps.  The block handles the query group of one KV
 * head over one slice of the context.  A warp walks 32-position tiles: lane =
 * position for the scores (full K row per lane, q from shared memory), then
 * lane = 2 output dims for P.V (coalesced V rows).  Online softmax per warp,
 * merged per block, partial (m, l, o) written to work; the combine kernel
 * merges the splits and folds in the sink. */
constexpr int kAttnWarps = 8;
constexpr int kD = 64;

template <int G>
__global__ void __launch_bounds__(kAttnWarps * kWarp)
attn_split_kernel(const float *__restrict__ q, const uint16_t *__restrict__ kc,
                  const uint16_t *__restrict__ vc, float *__restrict__ part, int cap,
                  int len, int start, int cs, float scale)
{
    __shared__ float4 qs[G][kD / 4];
    __shared__ float ml[2][kAttnWarps][G];
    __shared__ __align__(16) float big[kAttnWarps * kD * G]; /* P tiles while walking, then o per warp */
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int g = blockIdx.x, s = blockIdx.y, nsplit = gridDim.y;
    for (int t = threadIdx.x; t < G * kD; t += blockDim.x)
        reinterpret_cast<float *>(qs)[t] = q[(size_t)(g * G) * kD + t] * scale;
    __syncthreads();

    const int s0 = start + s * cs;
    const int s1 = min(s0 + cs, len);
    float m[G], l[G], o[G][2];
#pragma unroll
    for (int h = 0; h < G; h++) { m[h] = -INFINITY; l[h] = 0.f; o[h][0] = o[h][1] = 0.f; }
    float *pt = big + warp * 32 * G; /* [32][G] */
    const uint16_t *kb = kc + (size_t)g * cap * kD;
    const uint16_t *vb = vc + (size_t)g * cap * kD;

    for (int t0 = s0 + warp * 32; t0 < s1; t0 += kAttnWarps * 32) {
        const int pos = t0 + lane;
        const bool valid = pos < s1;
        float sc[G];
        {
            const uint4 *kr = reinterpret_cast<const uint4 *>(kb + (size_t)min(pos, s1 - 1) * kD);
            float kf[kD];
#pragma unroll
            for (int i = 0; i < kD / 8; i++) {
                uint4 v = __ldg(kr + i);
                kf[8 * i + 0] = bf16lo(v.x); kf[8 * i + 1] = bf16hi(v.x);
                kf[8 * i + 2] = bf16lo(v.y); kf[8 * i + 3] = bf16hi(v.y);
                kf[8 * i + 4] = bf16lo(v.z); kf[8 * i + 5] = bf16hi(v.z);
                kf[8 * i + 6] = bf16lo(v.w); kf[8 * i + 7] = bf16hi(v.w);
            }
#pragma unroll
            for (int h = 0; h < G; h++) {
                float a = 0.f;
#pragma unroll
                for (int i = 0; i < kD / 4; i++) {
                    float4 qq = qs[h][i];
                    a = fmaf(qq.x, kf[4 * i], a);
                    a = fmaf(qq.y, kf[4 * i + 1], a);
                    a = fmaf(qq.z, kf[4 * i + 2], a);
                    a = fmaf(qq.w, kf[4 * i + 3], a);
                }
                sc[h] = valid ? a : -INFINITY;
            }
        }
#pragma unroll
        for (int h = 0; h < G; h++) {
            float mn = fmaxf(m[h], warp_max(sc[h])); /* finite: lane 0 is valid */
            float corr = expf(m[h] - mn);
            float pv = expf(sc[h] - mn);
            l[h] = l[h] * corr + warp_sum(pv);
            o[h][0] *= corr;
            o[h][1] *= corr;
            m[h] = mn;
            pt[lane * G + h] = pv;
        }
        __syncwarp();
        const int nval = min(32, s1 - t0);
#pragma unroll 4
        for (int j = 0; j < 32; j++) {
            if (j >= nval) break;
            uint32_t vv = __ldg(reinterpret_cast<const uint32_t *>(vb + (size_t)(t0 + j) * kD) + lane);
            float v0 = bf16lo(vv), v1 = bf16hi(vv);
            if constexpr (G % 4 == 0) {
#pragma unroll
                for (int h = 0; h < G; h += 4) {
                    float4 p4 = *reinterpret_cast<const float4 *>(pt + j * G + h);
                    o[h][0] = fmaf(p4.x, v0, o[h][0]);     o[h][1] = fmaf(p4.x, v1, o[h][1]);
                    o[h + 1][0] = fmaf(p4.y, v0, o[h + 1][0]); o[h + 1][1] = fmaf(p4.y, v1, o[h + 1][1]);
                    o[h + 2][0] = fmaf(p4.z, v0, o[h + 2][0]); o[h + 2][1] = fmaf(p4.z, v1, o[h + 2][1]);
                    o[h + 3][0] = fmaf(p4.w, v0, o[h + 3][0]); o[h + 3][1] = fmaf(p4.w, v1, o[h + 3][1]);
                }
            } else {
#pragma unroll
                for (int h = 0; h < G; h++) {
                    float pj = pt[j * G + h];
                    o[h][0] = fmaf(pj, v0, o[h][0]);
                    o[h][1] = fmaf(pj, v1, o[h][1]);
                }
            }
        }
        __syncwarp();
    }
    __syncthreads(); /* every warp is done with its P tile: big becomes o */
#pragma unroll
    for (int h = 0; h < G; h++) {
        big[(warp * G + h) * kD + 2 * lane] = o[h][0];
        big[(warp * G + h) * kD + 2 * lane + 1] = o[h][1];
        if (lane == 0) { ml[0][warp][h] = m[h]; ml[1][warp][h] = l[h]; }
    }
    __syncthreads();
    float *po = part + ((size_t)g * nsplit + s) * G * (kD + 2);
    for (int t = threadIdx.x; t < G * kD; t += blockDim.x) {
        const int h = t / kD, d = t % kD;
        float M = -INFINITY;
        for (int w = 0; w < kAttnWarps; w++) M = fmaxf(M, ml[0][w][h]);
        float L = 0.f, O = 0.f;
        if (M > -INFINITY) {
            for (int w = 0; w < kAttnWarps; w++) {
                float mw = ml[0][w][h];
                if (!(mw > -INFINITY)) continue;
                float f = expf(mw - M);
                L += ml[1][w][h] * f;
                O += big[(w * G + h) * kD + d] * f;
            }
        }
        po[h * kD + d] = O;
        if (d == 0) { po[G * kD + 2 * h] = M; po[G * kD + 2 * h + 1] = L; }
    }
}

__global__ void attn_combine_kernel(const float *__restrict__ part, const float *__restrict__ sinks,
                                    float *__restrict__ out, int G, int nsplit)
{
    const int hq = blockIdx.x, d = threadIdx.x;
    const int g = hq / G, h = hq % G;
    float M = sinks ? sinks[hq] : -INFINITY;
    for (int s = 0; s < nsplit; s++) {
        const float *po = part + ((size_t)g * nsplit + s) * G * (kD + 2);
        M = fmaxf(M, po[G * kD + 2 * h]);
    }
    float L = sinks ? expf(sinks[hq] - M) : 0.f, O = 0.f;
    for (int s = 0; s < nsplit; s++) {
        const float *po = part + ((size_t)g * nsplit + s) * G * (kD + 2);
        float ms = po[G * kD + 2 * h];
        if (!(ms > -INFINITY)) continue;
        float f = expf(ms - M);
        L += po[G * kD + 2 * h + 1] * f;
        O += po[h * kD + d] * f;
    }
    out[(size_t)hq * kD + d] = O / L;
}

dpb_status launch_status(cudaError_t e, const char *what)
{
    if (e == cudaSuccess) return DPB_OK;
    return dpb_error_set(DPB_E_INTERNAL, "CUDA %s: launch failed: %s", what, cudaGetErrorString(e));
}

bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

} // namespace

/* ================================================================== API == */

extern "C" const char *dpb_cuda_gemv_variant_name(dpb_cuda_gemv_variant v)
{
    switch (v) {
    case DPB_GEMV_AUTO: return "auto";
    case DPB_GEMV_WARP_ROW: return "warp/row";
    case DPB_GEMV_WARP_2ROW: return "warp/2rows";
    case DPB_GEMV_WARP_4ROW: return "warp/4rows";
    case DPB_GEMV_SPLITK4: return "splitK4";
    case DPB_GEMV_SPLITK8: return "splitK8";
    default: return "?";
    }
}

/* The variant auto picks for 2048 <= rows < 65536: warp/row, or the one
 * DPB_CUDA_GEMV_MID names (2rows, splitK4, splitK8: lab comparisons of
 * the decode step, docs/CUDA.md); read once. */
static dpb_cuda_gemv_variant gemv_mid_variant(void)
{
    static std::atomic<int> v{-1};
    int r = v.load(std::memory_order_relaxed);
    if (r < 0) {
        const char *e = getenv("DPB_CUDA_GEMV_MID");
        r = DPB_GEMV_WARP_ROW;
        if (e && strcmp(e, "2rows") == 0) r = DPB_GEMV_WARP_2ROW;
        else if (e && strcmp(e, "splitK4") == 0) r = DPB_GEMV_SPLITK4;
        else if (e && strcmp(e, "splitK8") == 0) r = DPB_GEMV_SPLITK8;
        v.store(r, std::memory_order_relaxed);
    }
    return (dpb_cuda_gemv_variant)r;
}

extern "C" dpb_status dpb_cuda_gemv_bf16_multi(int nseg, const uint16_t *const *W, const float *const *bias,
                                               float *const *y, const int *N, const void *x, int x_bf16, int M, int K,
                                               int rnd, dpb_cuda_gemv_variant variant, cudaStream_t stream)
{
    if (nseg < 1 || nseg > DPB_CUDA_GEMV_MAX_SEGS || !W || !y || !N || !x)
        return dpb_error_set(DPB_E_ARG, "cuda gemv: %d matrices (1..%d)", nseg, DPB_CUDA_GEMV_MAX_SEGS);
    if (M < 1 || M > 8 || K < 8 || K % 8 != 0)
        return dpb_error_set(DPB_E_ARG, "cuda gemv: unsupported shape M=%d K=%d (1<=M<=8, K%%8==0)", M, K);
    if (!aligned16(x)) return dpb_error_set(DPB_E_ARG, "cuda gemv: W and x must be 16-byte aligned");
    gemv_segs S = {};
    S.rnd = rnd != 0;
    long long total = 0;
    const uint16_t **Ws[3] = {&S.W0, &S.W1, &S.W2};
    const float **Bs[3] = {&S.b0, &S.b1, &S.b2};
    float **Ys[3] = {&S.y0, &S.y1, &S.y2};
    int *Ns[3] = {&S.N0, &S.N1, &S.N2};
    for (int i = 0; i < nseg; i++) {
        if (!W[i] || !y[i] || N[i] < 1) return dpb_error_set(DPB_E_ARG, "cuda gemv: matrix %d: null pointer or N=%d", i, N[i]);
        if (!aligned16(W[i])) return dpb_error_set(DPB_E_ARG, "cuda gemv: W and x must be 16-byte aligned");
        *Ws[i] = W[i];
        *Bs[i] = bias ? bias[i] : nullptr;
        *Ys[i] = y[i];
        *Ns[i] = N[i];
        total += N[i];
    }
    if (total > INT32_MAX / 2) return dpb_error_set(DPB_E_ARG, "cuda gemv: %lld rows in all", total);
    if (variant == DPB_GEMV_AUTO) {
        /* Fewest rows per warp that still fill the GPU; split K when N alone
         * cannot (chosen from the dev/cuda lab, see docs/CUDA.md). */
        if (total >= 65536) variant = DPB_GEMV_WARP_4ROW;
        else if (total >= 2048) variant = gemv_mid_variant();
        else if (total >= 256) variant = DPB_GEMV_SPLITK4;
        else variant = DPB_GEMV_SPLITK8;
    }
    if (variant <= DPB_GEMV_AUTO || variant >= DPB_GEMV_NVARIANTS)
        return dpb_error_set(DPB_E_ARG, "cuda gemv: unknown variant %d", (int)variant);
    cudaError_t e;
    switch (M) {
    case 1: e = gemv_launch2<1>(variant, S, nseg, x, x_bf16, K, stream); break;
    case 2: e = gemv_launch2<2>(variant, S, nseg, x, x_bf16, K, stream); break;
    case 3: e = gemv_launch2<3>(variant, S, nseg, x, x_bf16, K, stream); break;
    case 4: e = gemv_launch2<4>(variant, S, nseg, x, x_bf16, K, stream); break;
    case 5: e = gemv_launch2<5>(variant, S, nseg, x, x_bf16, K, stream); break;
    case 6: e = gemv_launch2<6>(variant, S, nseg, x, x_bf16, K, stream); break;
    case 7: e = gemv_launch2<7>(variant, S, nseg, x, x_bf16, K, stream); break;
    default: e = gemv_launch2<8>(variant, S, nseg, x, x_bf16, K, stream); break;
    }
    return launch_status(e, "gemv");
}

extern "C" cudaError_t dpb_cuda_gemv_pdl(int mode)
{
    g_gemv_pdl.store(mode, std::memory_order_relaxed);
    return pdl_set_mode(mode);
}

extern "C" dpb_status dpb_cuda_gemv_bf16(const uint16_t *W, const float *bias, const void *x, int x_bf16,
                                         float *y, int M, int N, int K, dpb_cuda_gemv_variant variant,
                                         cudaStream_t stream)
{
    if (!W || !x || !y) return dpb_error_set(DPB_E_ARG, "cuda gemv: null pointer");
    if (N < 1) return dpb_error_set(DPB_E_ARG, "cuda gemv: unsupported shape M=%d N=%d K=%d (1<=M<=8, K%%8==0)", M, N, K);
    return dpb_cuda_gemv_bf16_multi(1, &W, &bias, &y, &N, x, x_bf16, M, K, 0, variant, stream);
}

/* which version of the expert kernels a rows_per_warp value selects */
static int moe_version(int v)
{
    if (v & (DPB_CUDA_MOE_LUT | DPB_CUDA_MOE_V1)) return 1;
    if (v & DPB_CUDA_MOE_V2) return 2;
    if (v & DPB_CUDA_MOE_V3) return 3;
    return kMoeDefaultVersion;
}

static dpb_status moe_check(const char *what, const void *blocks, const void *scales, const void *bias,
                            int M, int k, int E, int H, int I)
{
    if (!blocks || !scales || !bias) return dpb_error_set(DPB_E_ARG, "cuda %s: null pointer", what);
    if (M < 1 || M > 8 || k < 1 || k > 8 || E < 1 || H < 32 || I < 32 || H % 32 || I % 32)
        return dpb_error_set(DPB_E_ARG, "cuda %s: unsupported shape M=%d k=%d E=%d H=%d I=%d", what, M, k, E, H, I);
    if (!aligned16(blocks)) return dpb_error_set(DPB_E_ARG, "cuda %s: blocks must be 16-byte aligned", what);
    return DPB_OK;
}

extern "C" dpb_status dpb_cuda_moe_gate_up_swiglu(const uint8_t *gate_up_blocks, const uint8_t *gate_up_scales,
                                                  const uint16_t *gate_up_bias, const float *x,
                                                  const int32_t *ids, float *act, int M, int k, int E,
                                                  int H, int I, float alpha, float limit, int rows_per_warp,
                                                  cudaStream_t stream)
{
    return dpb_cuda_moe_gate_up_swiglu_ex(gate_up_blocks, gate_up_scales, NULL, NULL, gate_up_bias, x, ids, act, M, k,
                                          E, H, I, alpha, limit, 0, rows_per_warp, stream);
}

extern "C" dpb_status dpb_cuda_moe_gate_up_swiglu_ex(const uint8_t *gate_up_blocks, const uint8_t *gate_up_scales,
                                                     const uint8_t *const *btab, const uint8_t *const *stab,
                                                     const uint16_t *gate_up_bias, const float *x,
                                                     const int32_t *ids, float *act, int M, int k, int E,
                                                     int H, int I, float alpha, float limit, int rnd,
                                                     int rows_per_warp, cudaStream_t stream)
{
    if (btab && stab) gate_up_blocks = gate_up_scales = reinterpret_cast<const uint8_t *>(btab); /* non-null for the check */
    dpb_status st = moe_check("moe gate_up", gate_up_blocks, gate_up_scales, gate_up_bias, M, k, E, H, I);
    if (st) return st;
    if (!x || !ids || !act || !aligned16(x)) return dpb_error_set(DPB_E_ARG, "cuda moe gate_up: x/ids/act null or x unaligned");
    int ver = moe_version(rows_per_warp);
    const bool lut = (rows_per_warp & DPB_CUDA_MOE_LUT) != 0;
    rows_per_warp &= ~(DPB_CUDA_MOE_LUT | DPB_CUDA_MOE_V1 | DPB_CUDA_MOE_V2 | DPB_CUDA_MOE_V3);
    if (ver == 3 && H / 32 > kV3MaxBlocks) ver = 2, rows_per_warp = 0; /* x does not fit the staging buffer */
    if (ver == 3) {
        const int ks = (rows_per_warp & 15) == 0 ? kA3DefaultSplits : (rows_per_warp & 15);
        const int ns = (rows_per_warp >> 4) != 0 ? (rows_per_warp >> 4) : M == 1 ? kA3DecodeSteps : kV3DefaultSteps;
        const int tiles = 2 * I / 16, per = kA3Warps / (ks > 0 && ks <= 4 ? ks : 1);
        dim3 g3((unsigned)((tiles + per - 1) / per), (unsigned)(M * k));
        const int pm = g_gemv_pdl.load(std::memory_order_relaxed);
        cudaError_t ce = cudaSuccess;
#define DPB_MOE_A3(n, s)                                                                                               \
    ce = pdl_launch(pm, moe_gate_up_v3_kernel<n, s>, g3, dim3(kA3Warps * kWarp), 0, stream, gate_up_blocks,        \
                    gate_up_scales, gate_up_bias, x, ids, act, k, E, H, I, alpha, limit, btab, stab, rnd, 0u)
        if (ns == 2 && ks == 1) DPB_MOE_A3(2, 1);
        else if (ns == 2 && ks == 2) DPB_MOE_A3(2, 2);
        else if (ns == 2 && ks == 4) DPB_MOE_A3(2, 4);
        else if (ns == 4 && ks == 1) DPB_MOE_A3(4, 1);
        else if (ns == 4 && ks == 2) DPB_MOE_A3(4, 2);
        else if (ns == 4 && ks == 4) DPB_MOE_A3(4, 4);
        else return dpb_error_set(DPB_E_ARG, "cuda moe gate_up: v3 steps %d / K splits %d not in {2,4} / {1,2,4}", ns, ks);
#undef DPB_MOE_A3
        return launch_status(ce, "moe gate_up");
    }
    if (ver == 2) {
        const int R = rows_per_warp == 0 ? kA2DefaultRows : rows_per_warp;
        dim3 g2((unsigned)((I + kA2Warps * (R / 2) - 1) / (kA2Warps * (R / 2))), (unsigned)(M * k));
#define DPB_MOE_A2(r)                                                                                                  \
    moe_gate_up_v2_kernel<r><<<g2, kA2Warps * kWarp, 0, stream>>>(gate_up_blocks, gate_up_scales, gate_up_bias, x, ids, \
                                                                 act, k, E, H, I, alpha, limit, btab, stab, rnd, 0u)
        switch (R) {
        case 2: DPB_MOE_A2(2); break;
        case 4: DPB_MOE_A2(4); break;
        case 8: DPB_MOE_A2(8); break;
        default: return dpb_error_set(DPB_E_ARG, "cuda moe gate_up: rows_per_warp %d not in {0,2,4,8}", rows_per_warp);
        }
#undef DPB_MOE_A2
        return launch_status(cudaGetLastError(), "moe gate_up");
    }
    const int RP = rows_per_warp == 0 ? 4 : rows_per_warp / 2; /* gate/up pairs per warp */
    dim3 grid((unsigned)((I + kMoeWarps * RP - 1) / (kMoeWarps * RP)), (unsigned)(M * k));
#define DPB_MOE_A(rp, l)                                                                                              \
    moe_gate_up_kernel<rp, l><<<grid, kMoeWarps * kWarp, 0, stream>>>(gate_up_blocks, gate_up_scales, gate_up_bias, x, \
                                                                     ids, act, k, E, H, I, alpha, limit, btab, stab, rnd)
    switch (rows_per_warp) {
    case 2:
        if (lut) DPB_MOE_A(1, true);
        else DPB_MOE_A(1, false);
        break;
    case 4:
        if (lut) DPB_MOE_A(2, true);
        else DPB_MOE_A(2, false);
        break;
    case 0:
    case 8:
        if (lut) DPB_MOE_A(4, true);
        else DPB_MOE_A(4, false);
        break;
    default:
        return dpb_error_set(DPB_E_ARG, "cuda moe gate_up: rows_per_warp %d not in {0,2,4,8}", rows_per_warp);
    }
#undef DPB_MOE_A
    return launch_status(cudaGetLastError(), "moe gate_up");
}

extern "C" dpb_status dpb_cuda_moe_down_sum(const uint8_t *down_blocks, const uint8_t *down_scales,
                                            const uint16_t *down_bias, const float *act,
                                            const int32_t *ids, const float *wts, const float *resid,
                                            float *out, int M, int k, int E, int H, int I, int rows_per_warp,
                                            cudaStream_t stream)
{
    return dpb_cuda_moe_down_sum_ex(down_blocks, down_scales, NULL, NULL, down_bias, act, ids, wts, resid, out, M, k,
                                    E, H, I, 0, rows_per_warp, stream);
}

extern "C" dpb_status dpb_cuda_moe_down_sum_ex(const uint8_t *down_blocks, const uint8_t *down_scales,
                                               const uint8_t *const *btab, const uint8_t *const *stab,
                                               const uint16_t *down_bias, const float *act,
                                               const int32_t *ids, const float *wts, const float *resid,
                                               float *out, int M, int k, int E, int H, int I, int rnd,
                                               int rows_per_warp, cudaStream_t stream)
{
    if (btab && stab) down_blocks = down_scales = reinterpret_cast<const uint8_t *>(btab);
    dpb_status st = moe_check("moe down", down_blocks, down_scales, down_bias, M, k, E, H, I);
    if (st) return st;
    if (!act || !ids || !wts || !resid || !out || !aligned16(act))
        return dpb_error_set(DPB_E_ARG, "cuda moe down: act/ids/wts/resid/out null or act unaligned");
    int ver = moe_version(rows_per_warp);
    const bool lut = (rows_per_warp & DPB_CUDA_MOE_LUT) != 0;
    rows_per_warp &= ~(DPB_CUDA_MOE_LUT | DPB_CUDA_MOE_V1 | DPB_CUDA_MOE_V2 | DPB_CUDA_MOE_V3);
    if (ver == 3 && I / 32 > kV3MaxBlocks) ver = 2, rows_per_warp = 0; /* act does not fit the staging */
    if (ver == 3) {
        const int ks = (rows_per_warp & 15) == 0 ? kB3DefaultSplits : (rows_per_warp & 15);
        const int ns = (rows_per_warp >> 4) == 0 ? kV3DefaultSteps : (rows_per_warp >> 4);
        const int nb = I / 32;
        const int nbs = (nb + 4 * ks - 1) / (4 * ks) * 4;
        const size_t smem = (size_t)k * ks * 2 * (nbs + 1) * 16 * sizeof(uint32_t);
        if ((ks != 1 && ks != 2 && ks != 4) || (ns != 2 && ns != 4))
            return dpb_error_set(DPB_E_ARG, "cuda moe down: v3 steps %d / K splits %d not in {2,4} / {1,2,4}", ns, ks);
        if (k * ks <= kB3MaxWarps && smem <= kMaxDynSmem) {
            dim3 g3((unsigned)(H / 16), (unsigned)M);
            const int pm = g_gemv_pdl.load(std::memory_order_relaxed);
            cudaError_t ce = cudaSuccess, lce = cudaSuccess;
            /* shared memory above 48 KB needs the kernel's opt-in: set on the
             * first launch that needs it (one static per kernel), so a later
             * launch (inside a graph capture too) makes no runtime call */
#define DPB_MOE_B3(n, s)                                                                                               \
    do {                                                                                                               \
        static std::atomic<size_t> allowed{48 * 1024};                                                                 \
        if (smem > allowed.load(std::memory_order_relaxed)) {                                                          \
            ce = cudaFuncSetAttribute(moe_down_v3_kernel<n, s>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem); \
            if (ce == cudaSuccess) allowed.store(smem, std::memory_order_relaxed);                                     \
        }                                                                                                              \
        if (ce == cudaSuccess)                                                                                         \
            lce = pdl_launch(pm, moe_down_v3_kernel<n, s>, g3, dim3(k * ks * kWarp), smem, stream, down_blocks,        \
                            down_scales, down_bias, act, ids, wts, resid, out, k, E, H, I, btab, stab, rnd, 0u);        \
    } while (0)
            if (ns == 2 && ks == 1) DPB_MOE_B3(2, 1);
            else if (ns == 2 && ks == 2) DPB_MOE_B3(2, 2);
            else if (ns == 2 && ks == 4) DPB_MOE_B3(2, 4);
            else if (ns == 4 && ks == 1) DPB_MOE_B3(4, 1);
            else if (ns == 4 && ks == 2) DPB_MOE_B3(4, 2);
            else DPB_MOE_B3(4, 4);
#undef DPB_MOE_B3
            if (ce != cudaSuccess) return launch_status(ce, "moe down (shared memory size)");
            return launch_status(lce, "moe down");
        }
        ver = 2, rows_per_warp = 0; /* too many warps or too much staging for one block */
    }
    if (ver == 2) {
        const int R2 = rows_per_warp == 0 ? kB2DefaultRows : rows_per_warp;
        dim3 g2((unsigned)((H + R2 - 1) / R2), (unsigned)M);
#define DPB_MOE_B2(r)                                                                                                  \
    moe_down_v2_kernel<r><<<g2, k * kWarp, 0, stream>>>(down_blocks, down_scales, down_bias, act, ids, wts, resid, out, k, \
                                                       E, H, I, btab, stab, rnd, 0u)
        switch (R2) {
        case 1: DPB_MOE_B2(1); break;
        case 2: DPB_MOE_B2(2); break;
        case 4: DPB_MOE_B2(4); break;
        case 8: DPB_MOE_B2(8); break;
        default: return dpb_error_set(DPB_E_ARG, "cuda moe down: rows_per_warp %d not in {0,1,2,4,8}", rows_per_warp);
        }
#undef DPB_MOE_B2
        return launch_status(cudaGetLastError(), "moe down");
    }
    const int R = rows_per_warp == 0 ? 2 : rows_per_warp;
    dim3 grid((unsigned)((H + kMoeWarps * R - 1) / (kMoeWarps * R)), (unsigned)M);
#define DPB_MOE_B(r, l)                                                                                                \
    moe_down_kernel<r, l><<<grid, kMoeWarps * kWarp, 0, stream>>>(down_blocks, down_scales, down_bias, act, ids, wts, resid, \
                                                                 out, k, E, H, I, btab, stab, rnd)
    switch (R) {
    case 1:
        if (lut) DPB_MOE_B(1, true);
        else DPB_MOE_B(1, false);
        break;
    case 2:
        if (lut) DPB_MOE_B(2, true);
        else DPB_MOE_B(2, false);
        break;
    case 4:
        if (lut) DPB_MOE_B(4, true);
        else DPB_MOE_B(4, false);
        break;
    default:
        return dpb_error_set(DPB_E_ARG, "cuda moe down: rows_per_warp %d not in {0,1,2,4}", rows_per_warp);
    }
#undef DPB_MOE_B
    return launch_status(cudaGetLastError(), "moe down");
}

extern "C" dpb_status dpb_cuda_add_rmsnorm(float *x, const float *r, const uint16_t *w, float *y, int rows, int dim,
                                           float eps, int round_x, int round_y, cudaStream_t stream)
{
    if (!x || !w || !y) return dpb_error_set(DPB_E_ARG, "cuda add_rmsnorm: null x, w or y");
    if (rows < 1 || dim < 1 || dim > kNormThreads * kNormPer)
        return dpb_error_set(DPB_E_ARG, "cuda add_rmsnorm: unsupported shape rows=%d dim=%d (rows >= 1, 1 <= dim <= %d)", rows,
                             dim, kNormThreads * kNormPer);
    if (x == y || (r && x == r)) return dpb_error_set(DPB_E_ARG, "cuda add_rmsnorm: x must not be r or y");
    /* enough threads that kNormPer elements each cover dim, in whole warps */
    int nthr = (dim + kNormPer - 1) / kNormPer;
    nthr = (nthr + kWarp - 1) / kWarp * kWarp;
    if (nthr < 128) nthr = dim >= 128 ? 128 : (dim + kWarp - 1) / kWarp * kWarp;
    if (nthr > kNormThreads) nthr = kNormThreads;
    add_rmsnorm_kernel<<<(unsigned)rows, (unsigned)nthr, 0, stream>>>(x, r, w, y, dim, eps, round_x, round_y);
    return launch_status(cudaGetLastError(), "add_rmsnorm");
}

extern "C" dpb_status dpb_cuda_router_topk(const uint16_t *Wr, const uint16_t *br, const float *x,
                                           int32_t *ids, float *wts, int M, int E, int H, int k,
                                           cudaStream_t stream)
{
    if (!Wr || !br || !x || !ids || !wts) return dpb_error_set(DPB_E_ARG, "cuda router: null pointer");
    if (M < 1 || E < 1 || E > 64 || k < 1 || k > 8 || k > E || H < 8 || H % 8)
        return dpb_error_set(DPB_E_ARG, "cuda router: unsupported shape M=%d E=%d H=%d k=%d", M, E, H, k);
    if (!aligned16(Wr) || !aligned16(x)) return dpb_error_set(DPB_E_ARG, "cuda router: Wr and x must be 16-byte aligned");
    router_topk_kernel<<<(unsigned)M, 1024, 0, stream>>>(Wr, br, x, ids, wts, E, H, k);
    return launch_status(cudaGetLastError(), "router");
}

extern "C" dpb_status dpb_cuda_attn_decode_work_bytes(int Hq, int D, int nsplit, size_t *bytes)
{
    if (!bytes) return dpb_error_set(DPB_E_ARG, "cuda attention: null bytes");
    *bytes = 0;
    if (Hq < 1 || D < 1 || nsplit < 1 || nsplit > DPB_CUDA_ATTN_MAX_SPLITS)
        return dpb_error_set(DPB_E_ARG, "cuda attention: work size for Hq=%d D=%d nsplit=%d", Hq, D, nsplit);
    *bytes = (size_t)Hq * (size_t)nsplit * ((size_t)D + 2) * sizeof(float);
    return DPB_OK;
}

static int attn_auto_splits(int len, int window)
{
    int n = (window > 0 && len > window) ? window : len;
    int s = (n + 127) / 128;
    return s < 1 ? 1 : (s > DPB_CUDA_ATTN_MAX_SPLITS ? DPB_CUDA_ATTN_MAX_SPLITS : s);
}

extern "C" dpb_status dpb_cuda_attn_decode_auto_splits(int len, int window, int *nsplit)
{
    if (!nsplit) return dpb_error_set(DPB_E_ARG, "cuda attention: null nsplit");
    if (len < 1 || window < 0)
        return dpb_error_set(DPB_E_ARG, "cuda attention: split count for len=%d window=%d", len, window);
    *nsplit = attn_auto_splits(len, window);
    return DPB_OK;
}

extern "C" dpb_status dpb_cuda_attn_decode(const float *q, const uint16_t *kc, const uint16_t *vc,
                                           const float *sinks, float *out, int Hq, int Hkv, int D, int cap,
                                           int len, int window, float scale, int nsplit, void *work,
                                           cudaStream_t stream)
{
    if (!q || !kc || !vc || !out || !work) return dpb_error_set(DPB_E_ARG, "cuda attention: null pointer");
    if (D != kD || Hkv < 1 || Hq < Hkv || Hq % Hkv || len < 1 || len > cap || window < 0)
        return dpb_error_set(DPB_E_ARG, "cuda attention: unsupported shape Hq=%d Hkv=%d D=%d len=%d cap=%d window=%d",
                             Hq, Hkv, D, len, cap, window);
    if (!aligned16(kc) || !aligned16(vc)) return dpb_error_set(DPB_E_ARG, "cuda attention: KV cache must be 16-byte aligned");
    const int G = Hq / Hkv;
    if (nsplit == 0) nsplit = attn_auto_splits(len, window);
    if (nsplit < 1 || nsplit > DPB_CUDA_ATTN_MAX_SPLITS) return dpb_error_set(DPB_E_ARG, "cuda attention: nsplit %d not in 1..64", nsplit);
    const int start = (window > 0 && len > window) ? len - window : 0;
    const int n = len - start;
    int cs = (n + nsplit - 1) / nsplit;
    cs = (cs + 31) / 32 * 32;
    float *part = static_cast<float *>(work);
    dim3 grid((unsigned)Hkv, (unsigned)nsplit);
    const int threads = kAttnWarps * kWarp;
    switch (G) {
    case 1: attn_split_kernel<1><<<grid, threads, 0, stream>>>(q, kc, vc, part, cap, len, start, cs, scale); break;
    case 2: attn_split_kernel<2><<<grid, threads, 0, stream>>>(q, kc, vc, part, cap, len, start, cs, scale); break;
    case 4: attn_split_kernel<4><<<grid, threads, 0, stream>>>(q, kc, vc, part, cap, len, start, cs, scale); break;
    case 8: attn_split_kernel<8><<<grid, threads, 0, stream>>>(q, kc, vc, part, cap, len, start, cs, scale); break;
    case 16: attn_split_kernel<16><<<grid, threads, 0, stream>>>(q, kc, vc, part, cap, len, start, cs, scale); break;
    default: return dpb_error_set(DPB_E_UNSUPPORTED, "cuda attention: query group %d not in {1,2,4,8,16}", G);
    }
    dpb_status st = launch_status(cudaGetLastError(), "attention");
    if (st) return st;
    attn_combine_kernel<<<(unsigned)Hq, kD, 0, stream>>>(part, sinks, out, G, nsplit);
    return launch_status(cudaGetLastError(), "attention combine");
}

/* ============================================ grouped MXFP4 experts ==
 * For many tokens (batched decode, prefill): the (token, expert) pairs
 * sorted by expert on the device, then per expert and tile of 128 weight
 * rows one block that streams the MXFP4 tile once per tile of 32 or 64 of
 * the expert's tokens and multiplies on the tensor cores (mma.sync
 * m16n8k16, f16 operands, fp32 accumulation).  No host synchronization:
 * the grids are fixed by n, k and E (blocks without work return at once),
 * so the whole op can be captured in a CUDA graph.  docs/CUDA.md, "Grouped
 * MXFP4 experts".
 *
 *   1. grp_sort: counting sort of the pairs by expert -> perm (sorted row ->
 *      pair), inv (pair -> sorted row, -1 for an expert id out of range),
 *      the list of token tiles (expert, first sorted row), its length.
 *   2. grp_prep (x): each token row as f16, scaled by 2^sigma (its largest
 *      magnitude in [2^14, 2^15)), in the pair order of fp4_word_h2.
 *   3. grp_gemm<G1>: gate_up rows x the tile's token rows, + bias, clamped
 *      SwiGLU (rounded as kernel A rounds when rnd) -> act [sorted row, I].
 *   4. grp_prep (act): act rows to scaled f16 like x.
 *   5. grp_gemm<G2>: down rows x act rows, + bias (rounded to bf16 when rnd)
 *      -> dn [sorted row, H].
 *   6. grp_combine: out[t] = sum_j wts[t,j] * dn[inv[t k + j]] in slot order
 *      j = 0..k-1 (k_pf_combine's and kernel B's order).
 * Weights: lane (g, t) of a warp takes code word t (8 codes) of rows g and
 * g+8 of a 32-element block; fp4_word_h2 gives the A fragments of the
 * block's two k16 steps exactly (codes times 2^-14 in f16).  When every
 * E8M0 scale of the block's tile is in [104, 128] the codes are multiplied
 * by their scale in f16 (exact there) and the MMAs accumulate directly;
 * otherwise each block's two MMAs go to a fresh fragment added to the fp32
 * sum times the rows' scales.  Either way every weight is exact and the
 * only rounding is the activations' f16 (2^-12 relative) and fp32 sums.
 * Blocks of 256 rows (16 warps) are a variant (DPB_CUDA_MOE_GROUPED_BM256),
 * measured slower than 128. */
namespace {

/* A block: BM = 128 or 256 weight rows, one warp per 16 rows (2 BM threads). */
constexpr int kGrpDefaultBM = 128; /* 256 measured slower at every n (docs/CUDA.md) */
constexpr int kGrpMaxNb = 128;  /* K <= 4096: the tile's scales fit in shared memory */


struct GrpWork {
    size_t off, perm, inv, ntiles, tile, x16, xsig, act, a16, asig, total;
    int max_tiles;
};

/* byte offsets of the scratch parts (each 256-aligned) */
GrpWork grp_layout(int n, int k, int E, int H, int I, int bn)
{
    auto al = [](size_t v) { return (v + 255) / 256 * 256; };
    const size_t P = (size_t)n * k;
    GrpWork w;
    w.max_tiles = (int)((P + (size_t)bn - 1) / (size_t)bn + (size_t)E);
    size_t o = 0;
    w.off = o; o += al((size_t)(E + 1) * 4);
    w.perm = o; o += al(P * 4);
    w.inv = o; o += al(P * 4);
    w.ntiles = o; o += al(4);
    w.tile = o; o += al((size_t)w.max_tiles * 8);
    w.x16 = o; o += al((size_t)n * H * 2);
    w.xsig = o; o += al((size_t)n * 4);
    w.act = o; o += al(P * (size_t)(H > I ? H : I) * 4); /* act [P, I], then dn [P, H] */
    w.a16 = o; o += al(P * (size_t)I * 2);
    w.asig = o; o += al(P * 4);
    w.total = o;
    return w;
}

/* One block of 1024 threads.  tile[2i] = expert, tile[2i+1] = first sorted
 * row of token tile i; *ntiles = their number. */
__global__ void __launch_bounds__(1024) grp_sort_kernel(const int32_t *__restrict__ ids, int P, int E, int bn, int merge, int bal, int lpt,
                                                        int32_t *__restrict__ off, int32_t *__restrict__ perm,
                                                        int32_t *__restrict__ inv, int32_t *__restrict__ ntiles,
                                                        int32_t *__restrict__ tile)
{
    __shared__ int cnt[1024], cur[1024], fpre[1024], nfull;
    for (int e = threadIdx.x; e < E; e += blockDim.x) cnt[e] = 0;
    __syncthreads();
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
        const int e = ids[p];
        if (e >= 0 && e < E) atomicAdd(&cnt[e], 1);
    }
    __syncthreads();
    if (lpt && !merge && !bal) {
        /* the longest tiles first: every full tile (in expert order), then the experts' last partial tiles by
         * decreasing rows (ties: by expert), so that the grid's tail holds the shortest blocks */
        if (threadIdx.x == 0) {
            int sum = 0, nf = 0, np = 0;
            for (int e = 0; e < E; e++) {
                off[e] = sum;
                cur[e] = sum;
                fpre[e] = nf;
                nf += cnt[e] / bn;
                np += cnt[e] % bn != 0;
                sum += cnt[e];
            }
            off[E] = sum;
            nfull = nf;
            *ntiles = nf + np;
        }
        __syncthreads();
        for (int e = threadIdx.x; e < E; e += blockDim.x) {
            const int c = cnt[e], nfe = c / bn, rem = c % bn;
            for (int i = 0; i < nfe; i++) {
                tile[2 * (fpre[e] + i)] = e | (bn << 16);
                tile[2 * (fpre[e] + i) + 1] = off[e] + i * bn;
            }
            if (rem) {
                int rank = 0;
                for (int f = 0; f < E; f++) {
                    const int rf = cnt[f] % bn;
                    rank += rf > rem || (rf == rem && f < e);
                }
                tile[2 * (nfull + rank)] = e | (rem << 16);
                tile[2 * (nfull + rank) + 1] = off[e] + nfe * bn;
            }
        }
    } else if (threadIdx.x == 0) {
        int sum = 0, nt = 0;
        for (int e = 0; e < E; e++) {
            off[e] = sum;
            cur[e] = sum;
            for (int r = 0; r < cnt[e];) {
                /* merge: a last remainder of <= merge rows joins the tile before it */
                int len = min(bn, cnt[e] - r);
                if (merge && cnt[e] - r > bn && cnt[e] - r - bn <= merge) len = cnt[e] - r;
                if (bal) { /* balanced: the fewest tiles of <= bn rows, each but the last a multiple of 32 */
                    const int left = cnt[e] - r, nt_e = (left + bn - 1) / bn;
                    len = min(left, ((left + nt_e - 1) / nt_e + 31) / 32 * 32);
                }
                tile[2 * nt] = e | (len << 16);
                tile[2 * nt + 1] = sum + r;
                nt++;
                r += len;
            }
            sum += cnt[e];
        }
        off[E] = sum;
        *ntiles = nt;
    }
    __syncthreads();
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
        const int e = ids[p];
        if (e >= 0 && e < E) {
            const int r = atomicAdd(&cur[e], 1);
            perm[r] = p;
            inv[p] = r;
        } else {
            inv[p] = -1;
        }
    }
}

/* Row r of src (fp32 [rows, K]) -> dst (f16 pairs [rows, K/2], groups of 8
 * elements as (0,4) (1,5) (2,6) (3,7)) scaled by 2^sig[r].  One block of
 * 256 threads per row; rows at or after *count (when count) are skipped. */
constexpr int kGrpPrepThreads = 256;
template <bool WG> /* WG: the wgmma kernel's order, u32 4q + t of each 32-element block = elements (8t + q, 8t + q + 4) */
__global__ void __launch_bounds__(kGrpPrepThreads) grp_prep_kernel(const float *__restrict__ src, int K,
                                                                  const int32_t *__restrict__ count,
                                                                  uint32_t *__restrict__ dst, int32_t *__restrict__ sig)
{
    __shared__ float red[kGrpPrepThreads / kWarp];
    const int r = blockIdx.x;
    if (count && r >= *count) return;
    const float4 *s4 = reinterpret_cast<const float4 *>(src + (size_t)r * K);
    const int ng = K / 8;
    float am = 0.f;
    for (int gi = threadIdx.x; gi < ng; gi += kGrpPrepThreads) {
        const float4 a = s4[2 * gi], b = s4[2 * gi + 1];
        am = fmaxf(am, fmaxf(fmaxf(fmaxf(fabsf(a.x), fabsf(a.y)), fmaxf(fabsf(a.z), fabsf(a.w))),
                             fmaxf(fmaxf(fabsf(b.x), fabsf(b.y)), fmaxf(fabsf(b.z), fabsf(b.w)))));
    }
    am = warp_max(am);
    if (threadIdx.x % kWarp == 0) red[threadIdx.x / kWarp] = am;
    __syncthreads();
    am = 0.f;
#pragma unroll
    for (int w = 0; w < kGrpPrepThreads / kWarp; w++) am = fmaxf(am, red[w]);
    const int sigma = f16_shift(am);
    const float sc = pow2f(sigma);
    if (threadIdx.x == 0) sig[r] = sigma;
    auto h2 = [](float p, float q) {
        const __half2 h = __floats2half2_rn(p, q);
        return *reinterpret_cast<const uint32_t *>(&h);
    };
    uint4 *d4 = reinterpret_cast<uint4 *>(dst + (size_t)r * (K / 2));
    for (int gi = threadIdx.x; gi < ng; gi += kGrpPrepThreads) {
        const float4 a = s4[2 * gi], b = s4[2 * gi + 1];
        if constexpr (WG) {
            uint32_t *d = dst + (size_t)r * (K / 2) + (size_t)(gi >> 2) * 16 + (gi & 3);
            d[0] = h2(a.x * sc, b.x * sc);
            d[4] = h2(a.y * sc, b.y * sc);
            d[8] = h2(a.z * sc, b.z * sc);
            d[12] = h2(a.w * sc, b.w * sc);
        } else {
            d4[gi] = make_uint4(h2(a.x * sc, b.x * sc), h2(a.y * sc, b.y * sc), h2(a.z * sc, b.z * sc), h2(a.w * sc, b.w * sc));
        }
    }
}

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid)
{
    const uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N)); }

struct GrpArgs {
    /* weights: expert e's blocks / scales at tab[e], tab[E + e] (tab != NULL),
     * else at blocks + e * R * nb * 16, scales + e * R * nb */
    const uint8_t *const *tab;
    const uint8_t *blocks, *scales;
    const uint16_t *bias;     /* bf16 [E, R] */
    const uint32_t *src;      /* f16 pairs [*, K/2] */
    const int32_t *sig;       /* per src row */
    const int32_t *perm;      /* G1: sorted row -> pair (src row = pair / k); G2: NULL (src row = sorted row) */
    const int32_t *ntiles, *tile;
    const int32_t *off;       /* [E + 1] */
    float *out;               /* G1: act [P, R/2]; G2: dn [P, R] */
    int R, K, E, k, rnd;
    float alpha, limit;
};

/* The products of one 32-element block kb for this warp's MT x 16 rows (ra =
 * ra0 + 16 m + g and ra + 8, m < MT) and the BN tokens of the stage.  PRE: the
 * decoded codes are multiplied by their block scale in f16 (exact when every
 * scale of the tile is in [104, 128], checked per block) and the MMAs
 * accumulate straight into acc; else each block's two MMAs go to a fresh
 * fragment added to acc times the scales in fp32 (exact for any scale).  Each
 * activation fragment read from shared memory feeds the MT row tiles. */
template <int NT, int MT, bool PRE>
__device__ __forceinline__ void grp_block(float (&acc)[MT][NT][4], const uint8_t *W, const uint8_t *X, const uint8_t *sS,
                                          int nb, int kb, int b, int ra0, int g, int t, const Pow2Regs &p2)
{
    uint32_t ha[MT][4], hb[MT][4];
    float fa[MT], fb[MT];
#pragma unroll
    for (int m = 0; m < MT; m++) {
        const int ra = ra0 + 16 * m, rb = ra + 8;
        const uint32_t wa = *reinterpret_cast<const uint32_t *>(W + ra * 32 + ((b ^ ((ra >> 2) & 1)) * 16) + t * 4);
        const uint32_t wb = *reinterpret_cast<const uint32_t *>(W + rb * 32 + ((b ^ ((rb >> 2) & 1)) * 16) + t * 4);
        const uint32_t sa = sS[ra * nb + kb], sb = sS[rb * nb + kb];
        fp4_word_h2(wa, p2, ha[m]);
        fp4_word_h2(wb, p2, hb[m]);
        fa[m] = fb[m] = 0.f;
        if constexpr (PRE) {
            /* codes are value * 2^-14: times 2^(s - 113) (a normal f16 for s in [104, 128]) */
            const uint32_t ea = (sa - 113u + 15u) << 10, eb = (sb - 113u + 15u) << 10;
            const uint32_t ma = ea | (ea << 16), mb = eb | (eb << 16);
#pragma unroll
            for (int q = 0; q < 4; q++) {
                __half2 x = *reinterpret_cast<__half2 *>(&ha[m][q]), y = *reinterpret_cast<const __half2 *>(&ma);
                __half2 r = __hmul2(x, y);
                ha[m][q] = *reinterpret_cast<uint32_t *>(&r);
                x = *reinterpret_cast<__half2 *>(&hb[m][q]);
                y = *reinterpret_cast<const __half2 *>(&mb);
                r = __hmul2(x, y);
                hb[m][q] = *reinterpret_cast<uint32_t *>(&r);
            }
        } else {
            fa[m] = e8m0_x2p14(sa);
            fb[m] = e8m0_x2p14(sb);
        }
    }
#pragma unroll
    for (int j = 0; j < NT; j++) {
        const int c = j * 8 + g;
        const uint4 xv = *reinterpret_cast<const uint4 *>(X + c * 128 + (((b * 4 + t) ^ ((c & 1) << 2)) * 16));
#pragma unroll
        for (int m = 0; m < MT; m++) {
            if constexpr (PRE) {
                mma_f16_16816(acc[m][j], ha[m][0], hb[m][0], ha[m][1], hb[m][1], xv.x, xv.y);
                mma_f16_16816(acc[m][j], ha[m][2], hb[m][2], ha[m][3], hb[m][3], xv.z, xv.w);
            } else {
                float cc[4] = {0.f, 0.f, 0.f, 0.f};
                mma_f16_16816(cc, ha[m][0], hb[m][0], ha[m][1], hb[m][1], xv.x, xv.y);
                mma_f16_16816(cc, ha[m][2], hb[m][2], ha[m][3], hb[m][3], xv.z, xv.w);
                acc[m][j][0] = fmaf(cc[0], fa[m], acc[m][j][0]);
                acc[m][j][1] = fmaf(cc[1], fa[m], acc[m][j][1]);
                acc[m][j][2] = fmaf(cc[2], fb[m], acc[m][j][2]);
                acc[m][j][3] = fmaf(cc[3], fb[m], acc[m][j][3]);
            }
        }
    }
}

/* blocks per multiprocessor the registers are capped for */
constexpr int grp_min_blocks(int BN, int BM, int MT)
{
    return MT == 2 ? (BM == 128 ? (BN == 128 ? 2 : 3) : 1) : BM == 128 ? (BN == 32 ? 3 : BN == 64 ? 2 : 1) : 1;
}

/* G1 (SWIGLU): R = 2I interleaved gate/up rows -> act; else R = H -> dn.
 * Grid: (row tiles, max tiles); block: BM / (16 MT) warps, warp w on rows
 * 16 MT w .. 16 MT (w + 1) - 1 of the tile and all BN tokens (each weight is
 * decoded once per block). */
template <int BN, int STAGES, bool SWIGLU, int BM, int MT>
__global__ void __launch_bounds__(2 * BM / MT, grp_min_blocks(BN, BM, MT)) grp_gemm_kernel(const GrpArgs a, uint32_t zero)
{
    constexpr int NTHR = 2 * BM / MT;
    constexpr int NT = BN / 8;                   /* n-tiles of 8 tokens per warp */
    constexpr int WB = BM * 32;              /* weight bytes per stage (2 blocks per row) */
    constexpr int XB = BN * 128;                 /* activation bytes per stage (64 elements per row) */
    extern __shared__ __align__(16) uint8_t gsm[];
    uint8_t *sW = gsm, *sX = gsm + STAGES * WB, *sS = sX + STAGES * XB;
    __shared__ int srow[BN];
    __shared__ float sinv[BN];
    const int slot = blockIdx.y;
    if (slot >= *a.ntiles) return;
    const int e = a.tile[2 * slot] & 0xffff, row0 = a.tile[2 * slot + 1];
    const int cnt = min(BN, a.off[e + 1] - row0);
    const int r0 = blockIdx.x * BM;
    const int nb = a.K / 32, K2 = a.K / 2;
    const int tid = threadIdx.x, warp = tid / kWarp, lane = tid % kWarp, g = lane >> 2, t = lane & 3;
    const uint8_t *eb = a.tab ? a.tab[e] : a.blocks + (size_t)e * a.R * nb * 16;
    const uint8_t *es = a.tab ? a.tab[a.E + e] : a.scales + (size_t)e * a.R * nb;
    for (int i = tid; i < BN; i += NTHR) {
        const int c = i < cnt ? i : 0; /* columns past the tile's rows repeat its first row (not stored) */
        const int sr = a.perm ? a.perm[row0 + c] / a.k : row0 + c;
        srow[i] = sr;
        sinv[i] = pow2f(-a.sig[sr]);
    }
    /* the tile's scales, all of K: 16-byte copies in the first pipeline
     * group when aligned (they arrive with the first stage), else bytes */
    const uint8_t *s0 = es + (size_t)r0 * nb;
    const int sbytes = min(BM, a.R - r0) * nb; /* valid scale bytes of the tile */
    const bool s16 = ((uintptr_t)s0 & 15u) == 0;
    if (s16) {
        for (int i = tid; i < (BM * nb + 15) / 16; i += NTHR) {
            const int left = sbytes - 16 * i;
            const uint32_t sm = (uint32_t)__cvta_generic_to_shared(sS + 16 * i);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(sm), "l"(left > 0 ? s0 + 16 * i : s0),
                         "r"(left >= 16 ? 16 : (left > 0 ? left : 0)));
        }
    } else {
        for (int i = tid; i < BM * nb; i += NTHR) sS[i] = i < sbytes ? __ldg(s0 + i) : (uint8_t)0;
    }
    __syncthreads(); /* srow, sinv (and the byte-loaded scales) */
    const int nsteps = (nb + 1) / 2;
    auto load = [&](int step, int stage) {
        const int kb0 = 2 * step;
#pragma unroll
        for (int u = 0; u < MT; u++) {   /* weights: MT 16-byte blocks per thread */
            const int i = tid + u * NTHR, row = i >> 1, b = i & 1;
            const bool ok = r0 + row < a.R && kb0 + b < nb;
            const uint8_t *gp = ok ? eb + ((size_t)(r0 + row) * nb + kb0 + b) * 16 : eb;
            cp_async16(sW + stage * WB + row * 32 + ((b ^ ((row >> 2) & 1)) * 16), gp, ok);
        }
#pragma unroll
        for (int u = 0; u < (BN * 8 + NTHR - 1) / NTHR; u++) {
            const int i = tid + u * NTHR, c = i >> 3, q = i & 7;
            if (BN * 8 % NTHR != 0 && i >= BN * 8) break;
            const bool ok = kb0 + (q >> 2) < nb;
            const uint32_t *gp = a.src + (size_t)srow[c] * K2 + (size_t)kb0 * 16 + q * 4;
            cp_async16(sX + stage * XB + c * 128 + ((q ^ ((c & 1) << 2)) * 16), ok ? gp : a.src, ok);
        }
    };
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < nsteps) load(s, s);
        cp_async_commit();
    }
    /* the scales arrived with group 0: every one of the tile in [104, 128]? */
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    int inrange = 1;
    for (int i = tid; i < sbytes; i += NTHR) inrange &= sS[i] >= 104 && sS[i] <= 128;
    const bool pre = __syncthreads_and(inrange) != 0;
    float acc[MT][NT][4];
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int j = 0; j < NT; j++) acc[m][j][0] = acc[m][j][1] = acc[m][j][2] = acc[m][j][3] = 0.f;
    const Pow2Regs p2 = pow2_regs(zero);
    const int ra0 = warp * 16 * MT + g;
    for (int step = 0; step < nsteps; step++) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        {
            const int nx = step + STAGES - 1;
            if (nx < nsteps) load(nx, nx % STAGES);
            cp_async_commit();
        }
        const int stage = step % STAGES;
        const uint8_t *W = sW + stage * WB, *X = sX + stage * XB;
        if (pre) {
            grp_block<NT, MT, true>(acc, W, X, sS, nb, 2 * step, 0, ra0, g, t, p2);
            if (2 * step + 1 < nb) grp_block<NT, MT, true>(acc, W, X, sS, nb, 2 * step + 1, 1, ra0, g, t, p2);
        } else {
            grp_block<NT, MT, false>(acc, W, X, sS, nb, 2 * step, 0, ra0, g, t, p2);
            if (2 * step + 1 < nb) grp_block<NT, MT, false>(acc, W, X, sS, nb, 2 * step + 1, 1, ra0, g, t, p2);
        }
    }
    cp_async_wait<0>();
    /* epilogue: C[row][col] for rows ra (c0, c1) and ra + 8 (c2, c3), columns 2t, 2t+1 of each n-tile */
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
    for (int j = 0; j < NT; j++) {
        const int col = j * 8 + 2 * t;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int row = r0 + ra0 + 16 * m + 8 * h; /* weight row of this thread's half */
            const float v0 = acc[m][j][2 * h] * sinv[col], v1 = acc[m][j][2 * h + 1] * sinv[col + 1];
            if constexpr (SWIGLU) {
                /* rows 2jj (gate) and 2jj+1 (up) sit in lanes g, g^1: even g takes column 2t, odd g column 2t+1 */
                const bool odd = g & 1;
                const float other = __shfl_xor_sync(0xffffffffu, odd ? v0 : v1, 4);
                const int cc = odd ? col + 1 : col;
                const int grow = odd ? row - 1 : row; /* the gate row */
                if (grow < a.R && cc < cnt) {
                    const int jj = grow / 2;
                    const uint16_t *bp = a.bias + (size_t)e * a.R + 2 * (size_t)jj;
                    a.out[(size_t)(row0 + cc) * (a.R / 2) + jj] = swiglu_clamped_dev((odd ? other : v0) + bf16f(bp[0]), (odd ? v1 : other) + bf16f(bp[1]), a.limit, a.alpha, a.rnd);
                }
            } else {
                if (row < a.R) {
                    const float bb = bf16f(a.bias[(size_t)e * a.R + row]);
                    float y0 = v0 + bb, y1 = v1 + bb;
                    if (a.rnd) { y0 = round_bf16_dev(y0); y1 = round_bf16_dev(y1); }
                    if (col < cnt) a.out[(size_t)(row0 + col) * a.R + row] = y0;
                    if (col + 1 < cnt) a.out[(size_t)(row0 + col + 1) * a.R + row] = y1;
                }
            }
        }
    }
}

/* out[t][h] = sum_j wts[t k + j] * dn[inv[t k + j]][h], j = 0..k-1; NaN when
 * a slot's expert id was out of range.  4 elements per thread. */
template <bool BF16> /* dn as bf16 bits (the wgmma path with rnd: already rounded to bf16) */
__global__ void grp_combine_kernel(const float *__restrict__ dn, const int32_t *__restrict__ inv,
                                   const float *__restrict__ wts, int n, int H, int k, float *__restrict__ out)
{
    const int H4 = H / 4;
    const size_t tot = (size_t)n * H4;
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < tot; q += (size_t)gridDim.x * blockDim.x) {
        const int tk = (int)(q / H4), h4 = (int)(q % H4);
        float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int j = 0; j < k; j++) {
            const int p = tk * k + j, r = inv[p];
            if (r < 0) {
                const float nan = __int_as_float(0x7fc00000);
                o = make_float4(nan, nan, nan, nan);
                break;
            }
            const float w = wts[p];
            float4 v;
            if constexpr (BF16) {
                const uint2 u = reinterpret_cast<const uint2 *>(reinterpret_cast<const uint16_t *>(dn) + (size_t)r * H)[h4];
                v = make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                                __uint_as_float(u.y & 0xffff0000u));
            } else {
                v = reinterpret_cast<const float4 *>(dn + (size_t)r * H)[h4];
            }
            o.x += v.x * w; o.y += v.y * w; o.z += v.z * w; o.w += v.w * w;
        }
        reinterpret_cast<float4 *>(out + (size_t)tk * H)[h4] = o;
    }
}

template <int BN, int STAGES, bool SWIGLU, int BM, int MT>
cudaError_t grp_gemm_launch(const GrpArgs &a, int max_tiles, cudaStream_t stream)
{
    const size_t smem = (size_t)STAGES * (BM * 32 + BN * 128) + ((size_t)BM * (a.K / 32) + 15) / 16 * 16;
    static std::atomic<size_t> allowed{48 * 1024};
    if (smem > allowed.load(std::memory_order_relaxed)) {
        cudaError_t ce = cudaFuncSetAttribute(grp_gemm_kernel<BN, STAGES, SWIGLU, BM, MT>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (ce != cudaSuccess) return ce;
        allowed.store(smem, std::memory_order_relaxed);
    }
    dim3 grid((unsigned)((a.R + BM - 1) / BM), (unsigned)max_tiles);
    grp_gemm_kernel<BN, STAGES, SWIGLU, BM, MT><<<grid, 2 * BM / MT, smem, stream>>>(a, 0u);
    return cudaGetLastError();
}

template <bool SWIGLU>
cudaError_t grp_gemm_pick(const GrpArgs &a, int max_tiles, int bn, int bm, bool w32, cudaStream_t stream)
{
    if (bm == 256 && w32) /* 8 warps of 32 rows */
        return grp_gemm_launch<64, 4, SWIGLU, 256, 2>(a, max_tiles, stream);
    if (bm == 256)
        return bn == 64 ? grp_gemm_launch<64, 4, SWIGLU, 256, 1>(a, max_tiles, stream)
                        : grp_gemm_launch<32, 6, SWIGLU, 256, 1>(a, max_tiles, stream);
    if (w32) /* 32 weight rows per warp: 4 warps */
        return bn == 128 ? grp_gemm_launch<128, 3, SWIGLU, 128, 2>(a, max_tiles, stream)
             : bn == 64  ? grp_gemm_launch<64, 4, SWIGLU, 128, 2>(a, max_tiles, stream)
                         : grp_gemm_launch<32, 6, SWIGLU, 128, 2>(a, max_tiles, stream);
    if (bn == 128) return grp_gemm_launch<128, 3, SWIGLU, 128, 1>(a, max_tiles, stream);
    return bn == 64 ? grp_gemm_launch<64, 4, SWIGLU, 128, 1>(a, max_tiles, stream)
                    : grp_gemm_launch<32, 6, SWIGLU, 128, 1>(a, max_tiles, stream);
}

/* token tile for a variant (0 = auto: by the mean pairs per expert) */
int grp_bn(int variant, int n, int k, int E)
{
    variant &= 0xff;
    if (variant == 32 || variant == 64 || variant == 128) return variant;
    return (long long)n * k >= 48LL * E ? 64 : 32;
}
int grp_bm(int variant) { return (variant & DPB_CUDA_MOE_GROUPED_BM128) ? 128 : (variant & DPB_CUDA_MOE_GROUPED_BM256) ? 256 : kGrpDefaultBM; }
/* 32 weight rows per warp: when asked, and in auto with the token tile 64 (many pairs per expert: prefill;
 * lab at n = 2048: 1.84 against 2.10 ms, docs/CUDA.md "Prefill") */
bool grp_w32(int variant, int bn)
{
    if (variant & DPB_CUDA_MOE_GROUPED_W32) return grp_bm(variant) == 128 || bn == 64;
    if (grp_bm(variant) != 128) return false;
    return (variant & (0xff | DPB_CUDA_MOE_GROUPED_BM128 | DPB_CUDA_MOE_GROUPED_BM256)) == 0 && bn == 64;
}

/* the wgmma kernel (moe_wgmma.cu, sm_90a) instead of grp_gemm: when asked
 * (DPB_CUDA_MOE_GROUPED_WG), or in auto (no tile, block size or rows per warp
 * forced) from kGrpWgMinPairs pairs per expert on average; never with
 * DPB_CUDA_MOE_GROUPED_MMA or where the sm_90a kernels are absent */
constexpr int kGrpWgDeep = 0; /* the wgmma ring by default: 0 = 4 stages, 2 ahead; 1 = 5 stages, 3 ahead */
constexpr int kGrpWgMinPairs = 0; /* faster at every n measured, 16 to 2048 (docs/CUDA.md, "Session 5: MoE prefill") */
bool grp_use_wg(int variant, int n, int k, int E)
{
    if (variant & DPB_CUDA_MOE_GROUPED_MMA) return false;
    const bool want = (variant & DPB_CUDA_MOE_GROUPED_WG) ||
                      ((variant & (0xff | DPB_CUDA_MOE_GROUPED_BM128 | DPB_CUDA_MOE_GROUPED_BM256 | DPB_CUDA_MOE_GROUPED_W32)) == 0 &&
                       (long long)n * k >= (long long)kGrpWgMinPairs * E);
    return want && dpb_cuda_grpwg_available();
}

/* The wgmma path writes act as f16 straight from the gate_up epilogue, every
 * row scaled by the same 2^sigma, when the clamped SwiGLU bounds |act|: for
 * alpha > 0, |g sigmoid(alpha g)| <= max(limit, 1/alpha) and |u + 1| <= limit
 * + 1; sigma puts that bound (+1 %) in [2^14, 2^15).  f16 rounds every normal
 * value alike whatever its power-of-two scale, so act's f16 equals that of the
 * per-row scaling except below 2^-14 * 2^-sigma (then subnormal).  Returns
 * false (per-row scaling by grp_prep) otherwise. */
/* The wgmma kernels' configuration (dpb_cuda_grpwg_args.cfg) and tile order (grp_sort's lpt).  A variant naming a
 * configuration (DPB_CUDA_MOE_GROUPED_WGCOARSE: 0, _WGFINE: 1, _WGFINE8: 5, _WG256: 2, _WG256 | _WGFINE: 4,
 * _WG192: 3; _WGMERGE and _WGDEEP: 0) takes it, with the tiles by expert unless _WGLPT; otherwise
 * DPB_CUDA_MOE_WGCFG (auto, coarse, fine, fine8, bm256, bm256fine, bm192) and DPB_CUDA_MOE_WGORDER (auto, lpt,
 * expert), each by default kGrpWgCfg / kGrpWgLpt: widths in steps of 16, longest tiles first (docs/CUDA.md,
 * "Session 6: MoE prefill": lab at n = 2048 1,222 against 1,307 us, TTFT 39.9 against 42.4 ms). */
constexpr int kGrpWgCfg = 1;
constexpr int kGrpWgLpt = 1;
constexpr int kGrpWgCfgFlags = DPB_CUDA_MOE_GROUPED_WGCOARSE | DPB_CUDA_MOE_GROUPED_WGFINE | DPB_CUDA_MOE_GROUPED_WGFINE8 |
                               DPB_CUDA_MOE_GROUPED_WG256 | DPB_CUDA_MOE_GROUPED_WG192 | DPB_CUDA_MOE_GROUPED_WGMERGE |
                               DPB_CUDA_MOE_GROUPED_WGDEEP;
dpb_status grp_wg_cfg(int variant, int *cfg, int *lpt)
{
    if (variant & kGrpWgCfgFlags) {
        *cfg = (variant & (DPB_CUDA_MOE_GROUPED_WGCOARSE | DPB_CUDA_MOE_GROUPED_WGMERGE | DPB_CUDA_MOE_GROUPED_WGDEEP)) ? 0
             : (variant & DPB_CUDA_MOE_GROUPED_WG192)   ? 3
             : (variant & DPB_CUDA_MOE_GROUPED_WG256)   ? ((variant & DPB_CUDA_MOE_GROUPED_WGFINE) ? 4 : 2)
             : (variant & DPB_CUDA_MOE_GROUPED_WGFINE8) ? 5
                                                        : 1;
        *lpt = (variant & DPB_CUDA_MOE_GROUPED_WGLPT) ? 1 : 0;
        return DPB_OK;
    }
    /* the environment, read once: -2 not read yet, -1 invalid */
    static std::atomic<int> env_cfg{-2}, env_lpt{-2};
    int c = env_cfg.load(std::memory_order_relaxed), o = env_lpt.load(std::memory_order_relaxed);
    if (c == -2 || o == -2) {
        const char *ev = getenv("DPB_CUDA_MOE_WGCFG"), *eo = getenv("DPB_CUDA_MOE_WGORDER");
        c = !ev || !*ev || strcmp(ev, "auto") == 0 ? kGrpWgCfg
          : strcmp(ev, "coarse") == 0 ? 0 : strcmp(ev, "fine") == 0 ? 1 : strcmp(ev, "bm256") == 0 ? 2 : strcmp(ev, "bm192") == 0 ? 3
          : strcmp(ev, "bm256fine") == 0 ? 4 : strcmp(ev, "fine8") == 0 ? 5 : -1;
        o = !eo || !*eo || strcmp(eo, "auto") == 0 ? kGrpWgLpt : strcmp(eo, "lpt") == 0 ? 1 : strcmp(eo, "expert") == 0 ? 0 : -1;
        env_cfg.store(c, std::memory_order_relaxed);
        env_lpt.store(o, std::memory_order_relaxed);
    }
    if (c < 0) {
        const char *ev = getenv("DPB_CUDA_MOE_WGCFG");
        return dpb_error_set(DPB_E_ARG, "DPB_CUDA_MOE_WGCFG: '%s' is not auto, coarse, fine, fine8, bm256, bm256fine or bm192",
                             ev ? ev : "");
    }
    if (o < 0) {
        const char *eo = getenv("DPB_CUDA_MOE_WGORDER");
        return dpb_error_set(DPB_E_ARG, "DPB_CUDA_MOE_WGORDER: '%s' is not auto, lpt or expert", eo ? eo : "");
    }
    *cfg = c;
    *lpt = (variant & DPB_CUDA_MOE_GROUPED_WGLPT) ? 1 : o;
    return DPB_OK;
}

bool grp_act_fixed_sigma(float alpha, float limit, int *sigma)
{
    if (!(alpha > 0.f) || !(limit >= 0.f) || !(limit <= 1e4f) || !(alpha < 1e30f)) return false;
    const double bound = ((double)limit + 1.0 / alpha) * ((double)limit + 1.0) * 1.01;
    int e = 0;
    (void)frexp(bound, &e); /* bound = m 2^e, m in [0.5, 1) */
    const int sg = 15 - e;
    if (sg < -100 || sg > 100) return false;
    *sigma = sg;
    return true;
}

} // namespace

extern "C" dpb_status dpb_cuda_moe_grouped_work_bytes(int n, int k, int E, int H, int I, int variant, size_t *bytes)
{
    if (!bytes) return dpb_error_set(DPB_E_ARG, "cuda moe grouped: null bytes");
    *bytes = 0;
    if (n < 1 || k < 1 || k > 8 || E < k || E > 1024 || H < 32 || I < 32 || H % 32 || I % 32 ||
        H > 32 * kGrpMaxNb || I > 32 * kGrpMaxNb || (long long)n * k > (1LL << 28) ||
        ((variant & 0xff) != 0 && (variant & 0xff) != 32 && (variant & 0xff) != 64 && (variant & 0xff) != 128) ||
        (variant & ~(0xff | DPB_CUDA_MOE_GROUPED_BM128 | DPB_CUDA_MOE_GROUPED_BM256 | DPB_CUDA_MOE_GROUPED_W32 |
                     DPB_CUDA_MOE_GROUPED_WG | DPB_CUDA_MOE_GROUPED_MMA | DPB_CUDA_MOE_GROUPED_WGDEEP |
                     DPB_CUDA_MOE_GROUPED_WGF32 | DPB_CUDA_MOE_GROUPED_WGSHALLOW | DPB_CUDA_MOE_GROUPED_WGMERGE |
                     DPB_CUDA_MOE_GROUPED_WGFINE | DPB_CUDA_MOE_GROUPED_WG256 | DPB_CUDA_MOE_GROUPED_WG192 |
                     DPB_CUDA_MOE_GROUPED_WGFINE8 | DPB_CUDA_MOE_GROUPED_WGLPT | DPB_CUDA_MOE_GROUPED_WGCOARSE)) != 0)
        return dpb_error_set(DPB_E_ARG, "cuda moe grouped: unsupported shape n=%d k=%d E=%d H=%d I=%d variant %d "
                                        "(k <= 8 <= E... E <= 1024, H and I multiples of 32 up to %d, variant 0/32/64/128)",
                             n, k, E, H, I, variant, 32 * kGrpMaxNb);
    /* the wgmma path's token tile (128) is never smaller than grp_bn's: its layout is no larger */
    const GrpWork L = grp_layout(n, k, E, H, I, grp_bn(variant, n, k, E));
    if (L.max_tiles > 65535)
        return dpb_error_set(DPB_E_ARG, "cuda moe grouped: n=%d k=%d gives %d token tiles (at most 65535)", n, k, L.max_tiles);
    *bytes = L.total;
    return DPB_OK;
}

extern "C" dpb_status dpb_cuda_moe_grouped(const uint8_t *const *tab, const uint8_t *gate_up_blocks,
                                           const uint8_t *gate_up_scales, const uint8_t *down_blocks,
                                           const uint8_t *down_scales, const uint16_t *gate_up_bias,
                                           const uint16_t *down_bias, const float *x, const int32_t *ids,
                                           const float *wts, float *out, int n, int k, int E, int H, int I,
                                           float alpha, float limit, int rnd, int variant, void *work,
                                           size_t work_bytes, cudaStream_t stream)
{
    size_t need = 0;
    dpb_status st = dpb_cuda_moe_grouped_work_bytes(n, k, E, H, I, variant, &need);
    if (st) return st;
    if (!tab && (!gate_up_blocks || !gate_up_scales || !down_blocks || !down_scales))
        return dpb_error_set(DPB_E_ARG, "cuda moe grouped: no weight table and no contiguous weights");
    if (!gate_up_bias || !down_bias || !x || !ids || !wts || !out || !work)
        return dpb_error_set(DPB_E_ARG, "cuda moe grouped: null pointer");
    if (!aligned16(x) || !aligned16(out) || !aligned16(work) || (!tab && (!aligned16(gate_up_blocks) || !aligned16(down_blocks))))
        return dpb_error_set(DPB_E_ARG, "cuda moe grouped: x, out, work and the weight blocks must be 16-byte aligned");
    if (work_bytes < need)
        return dpb_error_set(DPB_E_ARG, "cuda moe grouped: work of %zu bytes, %zu needed", work_bytes, need);
    const bool wg = grp_use_wg(variant, n, k, E);
    int wgcfg = 0, wglpt = 0;
    if (wg && (st = grp_wg_cfg(variant, &wgcfg, &wglpt))) return st;
    const int bn = wg ? (wgcfg == 3 ? DPB_CUDA_GRPWG_TILE3 : DPB_CUDA_GRPWG_TILE) : grp_bn(variant, n, k, E), P = n * k;
    const GrpWork L = grp_layout(n, k, E, H, I, bn);
    char *w8 = static_cast<char *>(work);
    int32_t *off = reinterpret_cast<int32_t *>(w8 + L.off), *perm = reinterpret_cast<int32_t *>(w8 + L.perm);
    int32_t *inv = reinterpret_cast<int32_t *>(w8 + L.inv), *ntiles = reinterpret_cast<int32_t *>(w8 + L.ntiles);
    int32_t *tile = reinterpret_cast<int32_t *>(w8 + L.tile);
    uint32_t *x16 = reinterpret_cast<uint32_t *>(w8 + L.x16), *a16 = reinterpret_cast<uint32_t *>(w8 + L.a16);
    int32_t *xsig = reinterpret_cast<int32_t *>(w8 + L.xsig), *asig = reinterpret_cast<int32_t *>(w8 + L.asig);
    float *act = reinterpret_cast<float *>(w8 + L.act), *dn = act;
    const int merge = wg && (variant & DPB_CUDA_MOE_GROUPED_WGMERGE) ? 32 : 0; /* slower (docs/CUDA.md): not the default */
    grp_sort_kernel<<<1, 1024, 0, stream>>>(ids, P, E, bn, merge, wgcfg == 3, wglpt, off, perm, inv, ntiles, tile);
    if ((st = launch_status(cudaGetLastError(), "moe grouped sort"))) return st;
    if (wg) grp_prep_kernel<true><<<(unsigned)n, kGrpPrepThreads, 0, stream>>>(x, H, nullptr, x16, xsig);
    else grp_prep_kernel<false><<<(unsigned)n, kGrpPrepThreads, 0, stream>>>(x, H, nullptr, x16, xsig);
    if ((st = launch_status(cudaGetLastError(), "moe grouped x"))) return st;
    GrpArgs a{};
    a.tab = tab;
    a.blocks = gate_up_blocks;
    a.scales = gate_up_scales;
    a.bias = gate_up_bias;
    a.src = x16;
    a.sig = xsig;
    a.perm = perm;
    a.ntiles = ntiles;
    a.tile = tile;
    a.off = off;
    a.out = act;
    a.R = 2 * I;
    a.K = H;
    a.E = E;
    a.k = k;
    a.rnd = rnd;
    a.alpha = alpha;
    a.limit = limit;
    const int bm = grp_bm(variant);
    auto wg_args = [&]() {
        dpb_cuda_grpwg_args w{};
        w.tab = a.tab;
        w.blocks = a.blocks;
        w.scales = a.scales;
        w.bias = a.bias;
        w.src = a.src;
        w.sig = a.sig;
        w.perm = a.perm;
        w.ntiles = a.ntiles;
        w.tile = a.tile;
        w.off = a.off;
        w.out = a.out;
        w.R = a.R;
        w.K = a.K;
        w.E = a.E;
        w.k = a.k;
        w.rnd = a.rnd;
        w.alpha = a.alpha;
        w.limit = a.limit;
        w.merged = merge != 0;
        w.cfg = wgcfg;
        return w;
    };
    const int deep = (variant & DPB_CUDA_MOE_GROUPED_WGDEEP) ? 1 : (variant & DPB_CUDA_MOE_GROUPED_WGSHALLOW) ? 0 : kGrpWgDeep;
    int fsig = 0;
    const bool f16act = wg && !(variant & DPB_CUDA_MOE_GROUPED_WGF32) && grp_act_fixed_sigma(alpha, limit, &fsig);
    if (wg) {
        dpb_cuda_grpwg_args w = wg_args();
        if (f16act) {
            w.out = nullptr;
            w.out16 = reinterpret_cast<uint16_t *>(a16);
            w.osig = fsig;
        }
        if ((st = dpb_cuda_grpwg_gemm(&w, L.max_tiles, 1, deep, stream))) return st;
        if (!f16act) grp_prep_kernel<true><<<(unsigned)P, kGrpPrepThreads, 0, stream>>>(act, I, off + E, a16, asig);
    } else {
        cudaError_t ce = grp_gemm_pick<true>(a, L.max_tiles, bn, bm, grp_w32(variant, bn), stream);
        if ((st = launch_status(ce, "moe grouped gate_up"))) return st;
        grp_prep_kernel<false><<<(unsigned)P, kGrpPrepThreads, 0, stream>>>(act, I, off + E, a16, asig);
    }
    if ((st = launch_status(cudaGetLastError(), "moe grouped act"))) return st;
    a.tab = tab ? tab + 2 * E : nullptr;
    a.blocks = down_blocks;
    a.scales = down_scales;
    a.bias = down_bias;
    a.src = a16;
    a.sig = asig;
    a.perm = nullptr;
    a.out = dn;
    a.R = H;
    a.K = I;
    if (wg) {
        dpb_cuda_grpwg_args w = wg_args();
        if (f16act) {
            w.sig = nullptr;
            w.sig_fixed = fsig;
        }
        w.out_bf16 = rnd ? 1 : 0;
        if ((st = dpb_cuda_grpwg_gemm(&w, L.max_tiles, 0, deep, stream))) return st;
    } else {
        cudaError_t ce = grp_gemm_pick<false>(a, L.max_tiles, bn, bm, grp_w32(variant, bn), stream);
        if ((st = launch_status(ce, "moe grouped down"))) return st;
    }
    const size_t tot = (size_t)n * (H / 4);
    size_t blocks = (tot + 255) / 256;
    if (blocks > 65535u * 8u) blocks = 65535u * 8u;
    if (wg && rnd) grp_combine_kernel<true><<<(unsigned)blocks, 256, 0, stream>>>(dn, inv, wts, n, H, k, out);
    else grp_combine_kernel<false><<<(unsigned)blocks, 256, 0, stream>>>(dn, inv, wts, n, H, k, out);
    return launch_status(cudaGetLastError(), "moe grouped combine");
}
