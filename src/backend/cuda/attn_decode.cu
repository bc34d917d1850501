/* Decode attention (flash-decoding): see attn_decode.h. */
#include "backend/cuda/attn_decode.h"
#include "backend/cuda/pdl.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

namespace {

constexpr int kNT = 256;             /* threads per block */
constexpr int kTK = 64;              /* keys per tile */
constexpr int kMaxSplit = 128;       /* splits per (row, kv head) */
constexpr int kMaxCnt = 1 << 16;     /* (row, kv head) pairs with a merge counter */
constexpr float kLog2e = 1.4426950408889634f;
constexpr int kMergeAhead = 17;  /* merge: partial outputs in flight per thread (33 splits: two rounds) */

/* the merge's sum over splits x0 .. nact - 1 of one thread's (head, 4 dims), B partial outputs in flight, in
 * split order */
template <int B>
__device__ __forceinline__ float4 merge_from(const float *ph, const float *wh, int x0, int nact, int PS, float4 O)
{
    for (; x0 < nact; x0 += B) {
        float4 v[B];
#pragma unroll
        for (int u = 0; u < B; u++)
            v[u] = x0 + u < nact ? __ldcg(reinterpret_cast<const float4 *>(ph + (x0 + u) * PS)) : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int u = 0; u < B; u++) {
            const float w = x0 + u < nact ? wh[x0 + u] : 0.f;
            O.x = fmaf(w, v[u].x, O.x);
            O.y = fmaf(w, v[u].y, O.y);
            O.z = fmaf(w, v[u].z, O.z);
            O.w = fmaf(w, v[u].w, O.w);
        }
    }
    return O;
}

/* Merge counters: the splits of a (row, kv head) count their arrivals here; the last one merges and sets the
 * counter back to 0, so every launch (graph replays too) finds zeros.  Launches on one stream run in order. */
__device__ unsigned int g_cnt[kMaxCnt];

bool g_enabled = true;
int g_pdl = 0; /* DPB_CUDA_PDL mode (dpb_attn_decode_pdl) */
int g_merge_ahead = 1; /* 0: DPB_CUDA_ATTN_MERGE=old (session 5's merge loads), set with the PDL mode */

struct dec_p {
    int batch, G;
    int64_t n, heads, kvh, slots, window, pos0;
    const float *q;
    const unsigned char *kn, *vn, *kc, *vc;
    void *const *ktab, *const *vtab;
    const int32_t *seq;
    const int64_t *pos, *posd;
    const uint16_t *sinks;
    float sl2; /* scale * log2(e) */
    float *out, *part;
    int nsplit;
    int rnd; /* outputs rounded to bf16 (the engine's bf16 mode) */
    int ahead; /* merge: 1 the first partials loaded with (m, l), MergeAhead in flight; 0 session 5's 8 at a time */
};

/* Rounds to bf16 precision (nearest even; NaN stays NaN), as the backend's k_round. */
__device__ __forceinline__ float dec_rbf(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return __uint_as_float(((u >> 16) | 0x40u) << 16);
    u += 0x7fffu + ((u >> 16) & 1u);
    return __uint_as_float(u & 0xffff0000u);
}

__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void cp16(uint32_t dst, const void *src, bool valid)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }


__device__ __forceinline__ float2 fp8x2(uint32_t two)
{
    __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(two & 0xffffu), __NV_E4M3);
    return __half22float2(__half2(h));
}

/* Element conversions: EPV elements per 16 bytes; cvt16 converts 16 bytes, cvt4 4 elements at p (shared). */
template <typename KT> struct kvt;
template <> struct kvt<uint16_t> {
    static constexpr int EPV = 8;
    static __device__ __forceinline__ void cvt16(const uint4 &u, float *f)
    {
        const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            f[2 * i] = __uint_as_float(w[i] << 16);
            f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        }
    }
    static __device__ __forceinline__ void cvt4(const unsigned char *p, float *f)
    {
        const uint2 u = *reinterpret_cast<const uint2 *>(p);
        f[0] = __uint_as_float(u.x << 16);
        f[1] = __uint_as_float(u.x & 0xffff0000u);
        f[2] = __uint_as_float(u.y << 16);
        f[3] = __uint_as_float(u.y & 0xffff0000u);
    }
};
template <> struct kvt<float> {
    static constexpr int EPV = 4;
    static __device__ __forceinline__ void cvt16(const uint4 &u, float *f)
    {
        f[0] = __uint_as_float(u.x);
        f[1] = __uint_as_float(u.y);
        f[2] = __uint_as_float(u.z);
        f[3] = __uint_as_float(u.w);
    }
    static __device__ __forceinline__ void cvt4(const unsigned char *p, float *f)
    {
        const float4 v = *reinterpret_cast<const float4 *>(p);
        f[0] = v.x;
        f[1] = v.y;
        f[2] = v.z;
        f[3] = v.w;
    }
};
template <> struct kvt<uint8_t> {
    static constexpr int EPV = 16;
    static __device__ __forceinline__ void cvt16(const uint4 &u, float *f)
    {
        const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 a = fp8x2(w[i]), b = fp8x2(w[i] >> 16);
            f[4 * i] = a.x;
            f[4 * i + 1] = a.y;
            f[4 * i + 2] = b.x;
            f[4 * i + 3] = b.y;
        }
    }
    static __device__ __forceinline__ void cvt4(const unsigned char *p, float *f)
    {
        const uint32_t u = *reinterpret_cast<const uint32_t *>(p);
        const float2 a = fp8x2(u), b = fp8x2(u >> 16);
        f[0] = a.x;
        f[1] = a.y;
        f[2] = b.x;
        f[3] = b.y;
    }
};

/* Shared-memory layout of one launch configuration (bytes unless said). */
template <typename KT, int HD> struct dlay {
    static constexpr int ES = (int)sizeof(KT);
    static constexpr int RB = HD * ES;      /* bytes of one head's key row */
    static constexpr int RS = RB + 16;      /* its stride in shared memory (the 8 rows a warp reads: other banks) */
    static constexpr int CH = RB / 16;      /* 16-byte pieces per row */
    static constexpr int TILE = kTK * RS;   /* one K or V tile */
    static constexpr int DP = HD / 4;       /* scores: dims per thread (4 threads per key) */
    static constexpr int QS = DP + 4;       /* q in shared memory: floats per (head, quarter), padded */
    static constexpr int DC = HD / 4;       /* P V: threads per key group (4 dims each) */
    static constexpr int KG = kNT / DC;     /* key groups */
    static_assert(RB % 16 == 0 && (DP * ES) % 16 == 0 && kNT % DC == 0 && kTK % KG == 0, "shape");
};

template <typename KT, int HD>
__host__ __device__ constexpr size_t area_bytes(int G, int nsplit)
{
    using L = dlay<KT, HD>;
    size_t a = (size_t)4 * L::TILE, r = (size_t)L::KG * G * HD * 4, c = (size_t)G * nsplit * 4 + 64 * 4;
    if (r > a) a = r;
    if (c > a) a = c;
    return (a + 15) / 16 * 16;
}
template <typename KT, int HD> size_t smem_bytes(int G, int nsplit)
{
    using L = dlay<KT, HD>;
    const int GP = (G + 3) / 4 * 4;
    return area_bytes<KT, HD>(G, nsplit) + (size_t)G * 4 * L::QS * 4 + (size_t)kTK * GP * 4 + 16 * 4 * 4;
}

/* Block (row r = blockIdx.x / kvh, kv head g = blockIdx.x % kvh, split s = blockIdx.y); MG >= G. */
template <typename KT, int HD, int MG>
__global__ void __launch_bounds__(kNT, 2) k_attn_decode(const dec_p P)
{
    pdl_wait();
    pdl_trigger();
    using L = dlay<KT, HD>;
    using C = kvt<KT>;
    extern __shared__ __align__(16) unsigned char sm[];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int G = P.G, GP = (G + 3) / 4 * 4;
    const int kvh32 = (int)P.kvh;
    const int64_t r = (int)blockIdx.x / kvh32, g = (int)blockIdx.x % kvh32;
    const int s = blockIdx.y, ns = P.nsplit;
    const int64_t rowb = P.kvh * L::RB; /* bytes of one cache row */

    /* q of the group into registers first (its latency overlaps the position's) */
    static_assert(16 * HD / 4 <= 2 * kNT, "q: two float4 per thread");
    float4 qreg[2];
    {
        const float *qg = P.q + (r * P.heads + g * G) * HD;
#pragma unroll
        for (int u = 0; u < 2; u++) {
            const int i = tid + u * kNT;
            if (i < G * HD / 4) {
                const int h = i / (HD / 4), d = (i % (HD / 4)) * 4;
                qreg[u] = *reinterpret_cast<const float4 *>(qg + (int64_t)h * HD + d);
            }
        }
    }
    /* the row's position, keys, caches */
    int64_t p, first_new;
    const unsigned char *kn, *vn, *kc, *vc;
    if (P.batch) {
        p = P.pos[r];
        first_new = p;
        kn = P.kn + r * rowb;
        vn = P.vn + r * rowb;
        const int32_t sq = P.seq[r];
        kc = static_cast<const unsigned char *>(P.ktab[sq]);
        vc = static_cast<const unsigned char *>(P.vtab[sq]);
    } else {
        first_new = P.posd ? P.posd[0] : P.pos0;
        p = first_new + r;
        kn = P.kn;
        vn = P.vn;
        kc = P.kc;
        vc = P.vc;
    }
    const int64_t lo = P.window > 0 && p - P.window + 1 > 0 ? p - P.window + 1 : 0, nk = p - lo + 1;
    /* splits of whole tiles; a row of at most two tiles takes one split (no merge: the chain of partial
     * writes, counter and merge costs more than the second tile) */
    int64_t per = (nk + ns - 1) / ns;
    per = (per + kTK - 1) / kTK * kTK;
    if (nk <= 2 * kTK) per = 2 * kTK;
    const int nact = (int)((nk + per - 1) / per);
    if (s >= nact) return;
    if (P.batch && s == 0) {
        /* the row's own key and value into its slot (no block of this launch reads that slot) */
        unsigned char *dk = const_cast<unsigned char *>(kc) + (p % P.slots) * rowb + g * L::RB;
        unsigned char *dv = const_cast<unsigned char *>(vc) + (p % P.slots) * rowb + g * L::RB;
        for (int i = tid; i < L::RB; i += kNT) {
            dk[i] = kn[g * L::RB + i];
            dv[i] = vn[g * L::RB + i];
        }
    }
    const int64_t js = lo + (int64_t)s * per, je = js + per < p + 1 ? js + per : p + 1;
    const int ntile = (int)((je - js + kTK - 1) / kTK);

    unsigned char *const area = sm;
    float *const sq = reinterpret_cast<float *>(sm + area_bytes<KT, HD>(G, ns)); /* [G][4][QS] */
    float *const sp = sq + G * 4 * L::QS;                                         /* [kTK][GP] scores, then P */
    float *const sc = sp + kTK * GP;                                             /* [16] corrections */
    float *const smm = sc + 16, *const sml = smm + 16;                           /* [16] max, sum */

    const bool al = ((((uintptr_t)kn | (uintptr_t)vn | (uintptr_t)kc | (uintptr_t)vc) & 15) == 0);
    auto load = [&](int st, int t) {
        unsigned char *sk = area + st * 2 * L::TILE, *sv = sk + L::TILE;
        const int64_t j0 = js + (int64_t)t * kTK;
        const int64_t s0 = j0 % P.slots; /* the slots of j0 + rr follow, with at most one wrap when slots >= kTK */
        for (int i = tid; i < kTK * L::CH; i += kNT) {
            const int rr = i / L::CH, cc = i % L::CH;
            const int64_t j = j0 + rr;
            const bool ok = j < je;
            const unsigned char *ks = kn, *vs = vn;
            if (ok) {
                int64_t off;
                if (j >= first_new) {
                    off = (j - first_new) * rowb;
                } else {
                    int64_t sl = s0 + rr;
                    if (P.slots >= kTK) sl = sl >= P.slots ? sl - P.slots : sl;
                    else sl = j % P.slots;
                    off = sl * rowb;
                    ks = kc;
                    vs = vc;
                }
                ks += off + g * L::RB + cc * 16;
                vs += off + g * L::RB + cc * 16;
            }
            if (al) {
                cp16(smem_u32(sk + rr * L::RS + cc * 16), ks, ok);
                cp16(smem_u32(sv + rr * L::RS + cc * 16), vs, ok);
            } else {
#pragma unroll 4
                for (int b = 0; b < 16; b++) {
                    sk[rr * L::RS + cc * 16 + b] = ok ? ks[b] : 0;
                    sv[rr * L::RS + cc * 16 + b] = ok ? vs[b] : 0;
                }
            }
        }
        cp_commit();
    };
    load(0, 0);
    if (ntile > 1) load(1, 1);

    /* q of the group, fp32, as [head][quarter][QS] */
#pragma unroll
    for (int u = 0; u < 2; u++) {
        const int i = tid + u * kNT;
        if (i < G * HD / 4) {
            const int h = i / (HD / 4), d = (i % (HD / 4)) * 4;
            *reinterpret_cast<float4 *>(sq + (h * 4 + d / L::DP) * L::QS + d % L::DP) = qreg[u];
        }
    }
    float hm[2] = {-INFINITY, -INFINITY}, hl[2] = {0.f, 0.f}; /* heads warp, warp + 8 (lane-uniform) */
    float o[MG][4];
#pragma unroll
    for (int h = 0; h < MG; h++)
#pragma unroll
        for (int e = 0; e < 4; e++) o[h][e] = 0.f;
    const int kk = tid / 4, part = tid % 4;
    const int kg = tid / L::DC, d0 = (tid % L::DC) * 4;

    for (int t = 0; t < ntile; t++) {
        if (t + 1 < ntile) cp_wait<1>();
        else cp_wait<0>();
        __syncthreads();
        const unsigned char *sk = area + (t & 1) * 2 * L::TILE, *sv = sk + L::TILE;
        const int64_t j0 = js + (int64_t)t * kTK;
        /* scores: thread (key kk, quarter part) for every head */
        {
            float acc[MG];
#pragma unroll
            for (int h = 0; h < MG; h++) acc[h] = 0.f;
            const unsigned char *kr = sk + kk * L::RS + part * L::DP * L::ES;
#pragma unroll
            for (int c = 0; c < L::DP / C::EPV; c++) {
                float kf[C::EPV];
                C::cvt16(*reinterpret_cast<const uint4 *>(kr + c * 16), kf);
#pragma unroll
                for (int h = 0; h < MG; h++) {
                    if (h < G) {
                        const float *qh = sq + (h * 4 + part) * L::QS + c * C::EPV;
#pragma unroll
                        for (int e4 = 0; e4 < C::EPV / 4; e4++) {
                            const float4 q4 = *reinterpret_cast<const float4 *>(qh + 4 * e4);
                            acc[h] = fmaf(q4.x, kf[4 * e4], acc[h]);
                            acc[h] = fmaf(q4.y, kf[4 * e4 + 1], acc[h]);
                            acc[h] = fmaf(q4.z, kf[4 * e4 + 2], acc[h]);
                            acc[h] = fmaf(q4.w, kf[4 * e4 + 3], acc[h]);
                        }
                    }
                }
            }
            const bool valid = j0 + kk < je;
#pragma unroll
            for (int h = 0; h < MG; h++) {
                float v = acc[h];
                v += __shfl_xor_sync(0xffffffffu, v, 1);
                v += __shfl_xor_sync(0xffffffffu, v, 2);
                if (h < G && (h & 3) == part) sp[kk * GP + h] = valid ? v * P.sl2 : -INFINITY;
            }
        }
        __syncthreads();
        /* online softmax: warp w runs heads w and w + 8 */
#pragma unroll
        for (int a = 0; a < 2; a++) {
            const int h = warp + 8 * a;
            if (h < G) {
                const float v0 = sp[lane * GP + h], v1 = sp[(lane + 32) * GP + h];
                float tm = fmaxf(v0, v1);
#pragma unroll
                for (int off = 16; off > 0; off >>= 1) tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, off));
                const float mn = fmaxf(hm[a], tm);
                const float corr = hm[a] == -INFINITY ? 0.f : exp2f(hm[a] - mn);
                const float p0 = v0 == -INFINITY ? 0.f : exp2f(v0 - mn), p1 = v1 == -INFINITY ? 0.f : exp2f(v1 - mn);
                sp[lane * GP + h] = p0;
                sp[(lane + 32) * GP + h] = p1;
                float ls = p0 + p1;
#pragma unroll
                for (int off = 16; off > 0; off >>= 1) ls += __shfl_xor_sync(0xffffffffu, ls, off);
                hl[a] = hl[a] * corr + ls;
                hm[a] = mn;
                if (lane == 0) sc[h] = corr;
            }
        }
        __syncthreads();
        /* P V: thread (key group kg, dims d0..d0+3) for every head */
#pragma unroll
        for (int h = 0; h < MG; h++) {
            if (h < G) {
                const float cf = sc[h];
#pragma unroll
                for (int e = 0; e < 4; e++) o[h][e] *= cf;
            }
        }
#pragma unroll 2
        for (int k2 = kg; k2 < kTK; k2 += L::KG) {
            float vf[4];
            C::cvt4(sv + k2 * L::RS + d0 * L::ES, vf);
            const float *pr = sp + k2 * GP;
#pragma unroll
            for (int h4 = 0; h4 < MG / 4; h4++) {
                if (4 * h4 < G) {
                    const float4 p4 = *reinterpret_cast<const float4 *>(pr + 4 * h4);
                    const float pv[4] = {p4.x, p4.y, p4.z, p4.w};
#pragma unroll
                    for (int u = 0; u < 4; u++)
#pragma unroll
                        for (int e = 0; e < 4; e++) o[4 * h4 + u][e] = fmaf(pv[u], vf[e], o[4 * h4 + u][e]);
                }
            }
        }
        __syncthreads(); /* this stage and P are consumed */
        if (t + 2 < ntile) load(t & 1, t + 2);
    }
    /* merge the key groups (the tile area is free: every copy has landed) */
    if (lane == 0) {
#pragma unroll
        for (int a = 0; a < 2; a++) {
            const int h = warp + 8 * a;
            if (h < G) {
                smm[h] = hm[a];
                sml[h] = hl[a];
            }
        }
    }
    float *red = reinterpret_cast<float *>(area);
#pragma unroll
    for (int h = 0; h < MG; h++)
        if (h < G) *reinterpret_cast<float4 *>(red + (kg * G + h) * HD + d0) = make_float4(o[h][0], o[h][1], o[h][2], o[h][3]);
    __syncthreads();
    const int64_t hbase = r * P.heads + g * G;
    if (nact == 1) {
        for (int i = tid; i < G * HD; i += kNT) {
            const int h = i / HD, d = i % HD;
            float O = 0.f;
            for (int k2 = 0; k2 < L::KG; k2++) O += red[(k2 * G + h) * HD + d];
            const float m = smm[h], l = sml[h];
            float M = m, den = l, f = 1.f;
            if (P.sinks) {
                const float sk2 = __uint_as_float((uint32_t)P.sinks[g * G + h] << 16) * kLog2e;
                M = fmaxf(m, sk2);
                f = exp2f(m - M);
                den = l * f + exp2f(sk2 - M);
            }
            const float o = O * f / den;
            P.out[(hbase + h) * HD + d] = P.rnd ? dec_rbf(o) : o;
        }
        return;
    }
    constexpr int PS = HD + 4; /* floats per partial: O[HD], m, l, 2 unused (16-byte rows) */
    for (int i = tid; i < G * HD / 4; i += kNT) {
        const int h = i / (HD / 4), d = (i % (HD / 4)) * 4;
        float4 O = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int k2 = 0; k2 < L::KG; k2++) {
            const float4 v = *reinterpret_cast<const float4 *>(red + (k2 * G + h) * HD + d);
            O.x += v.x;
            O.y += v.y;
            O.z += v.z;
            O.w += v.w;
        }
        *reinterpret_cast<float4 *>(P.part + ((hbase + h) * ns + s) * PS + d) = O;
    }
    if (tid < G) {
        P.part[((hbase + tid) * ns + s) * PS + HD] = smm[tid];
        P.part[((hbase + tid) * ns + s) * PS + HD + 1] = sml[tid];
    }
    __threadfence();
    __syncthreads();
    __shared__ unsigned int last;
    if (tid == 0) {
        const unsigned int prev = atomicAdd(&g_cnt[blockIdx.x], 1u);
        last = prev == (unsigned int)(nact - 1);
        if (last) g_cnt[blockIdx.x] = 0;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    /* the last split merges: weights 2^(m_s - M) per (head, split) into the area, then the outputs.  The first
     * kMergeAhead partial outputs of each thread's (head, 4 dims) are loaded before the weights (their loads and
     * the (m, l) loads in flight together: one L2 round trip instead of two), the rest kMergeAhead at a time; the
     * sums run in split order as before (the same bits). */
    float *wts = reinterpret_cast<float *>(area);
    float *sL = wts + G * ns;
    constexpr int MA = MG > 8 ? 8 : kMergeAhead; /* (registers) */
    const int i0 = tid, h0 = i0 / (HD / 4), d00 = (i0 % (HD / 4)) * 4;
    const bool own0 = P.ahead && i0 < G * HD / 4;
    float4 pre[MA];
    {
        const float *ph = P.part + (hbase + (own0 ? h0 : 0)) * ns * PS + d00;
#pragma unroll
        for (int u = 0; u < MA; u++)
            pre[u] = own0 && u < nact ? __ldcg(reinterpret_cast<const float4 *>(ph + u * PS)) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int a = 0; a < 2; a++) {
        const int h = warp + 8 * a;
        if (h < G) {
            const float *ph = P.part + (hbase + h) * ns * PS;
            float M = -INFINITY;
            const float sk2 = P.sinks ? __uint_as_float((uint32_t)P.sinks[g * G + h] << 16) * kLog2e : -INFINITY;
            float ml[4][2];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int x = lane + 32 * u;
                ml[u][0] = x < nact ? __ldcg(ph + x * PS + HD) : -INFINITY;
                ml[u][1] = x < nact ? __ldcg(ph + x * PS + HD + 1) : 0.f;
                M = fmaxf(M, ml[u][0]);
            }
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, off));
            M = fmaxf(M, sk2);
            float Ls = 0.f;
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int x = lane + 32 * u;
                if (x < nact) {
                    const float w = exp2f(ml[u][0] - M);
                    wts[h * ns + x] = w;
                    Ls += w * ml[u][1];
                }
            }
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) Ls += __shfl_xor_sync(0xffffffffu, Ls, off);
            if (lane == 0) sL[h] = Ls + (P.sinks ? exp2f(sk2 - M) : 0.f);
        }
    }
    __syncthreads();
    for (int i = tid; i < G * HD / 4; i += kNT) {
        const int h = i / (HD / 4), d = (i % (HD / 4)) * 4;
        const float *ph = P.part + (hbase + h) * ns * PS + d;
        const float *wh = wts + h * ns;
        float4 O = make_float4(0.f, 0.f, 0.f, 0.f);
        if (i == i0 && own0) {
            /* the prefetched first splits, in order, then the rest */
#pragma unroll
            for (int u = 0; u < MA; u++) {
                const float w = u < nact ? wh[u] : 0.f;
                O.x = fmaf(w, pre[u].x, O.x);
                O.y = fmaf(w, pre[u].y, O.y);
                O.z = fmaf(w, pre[u].z, O.z);
                O.w = fmaf(w, pre[u].w, O.w);
            }
            O = merge_from<MA>(ph, wh, MA, nact, PS, O);
        } else if (P.ahead) {
            O = merge_from<MA>(ph, wh, 0, nact, PS, O);
        } else {
            O = merge_from<8>(ph, wh, 0, nact, PS, O);
        }
        const float inv = 1.0f / sL[h];
        float4 o = make_float4(O.x * inv, O.y * inv, O.z * inv, O.w * inv);
        if (P.rnd) o = make_float4(dec_rbf(o.x), dec_rbf(o.y), dec_rbf(o.z), dec_rbf(o.w));
        *reinterpret_cast<float4 *>(P.out + (hbase + h) * HD + d) = o;
    }
}

int nsplit_of(const dpb_attn_decode_args *a)
{
    const int64_t base = a->n * a->kv_heads, sms = a->sms > 0 ? a->sms : 132;
    int64_t want = (2 * sms + base - 1) / base, maxs = (a->cap + kTK - 1) / kTK;
    int64_t ns = want < maxs ? want : maxs;
    if (ns < 1) ns = 1;
    if (ns > kMaxSplit) ns = kMaxSplit;
    return (int)ns;
}

template <typename KT, int HD, int MG> dpb_status launch3(const dec_p &P, int64_t n, int64_t kvh, cudaStream_t st)
{
    const size_t shm = smem_bytes<KT, HD>(P.G, P.nsplit);
    static bool attr = false; /* set once, for the largest configuration (benign race: the same value) */
    if (!attr) {
        const size_t most = smem_bytes<KT, HD>(MG, kMaxSplit);
        cudaError_t e = cudaFuncSetAttribute(k_attn_decode<KT, HD, MG>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)most);
        if (e != cudaSuccess)
            return dpb_error_set(DPB_E_INTERNAL, "cuda attention (decode): %zu bytes of shared memory: %s", most,
                                 cudaGetErrorString(e));
        attr = true;
    }
    cudaError_t e = pdl_launch(g_pdl, k_attn_decode<KT, HD, MG>, dim3((unsigned)(n * kvh), (unsigned)P.nsplit), dim3(kNT),
                               shm, st, P);
    if (e != cudaSuccess) return dpb_error_set(DPB_E_INTERNAL, "cuda attention (decode): %s", cudaGetErrorString(e));
    return DPB_OK;
}

template <typename KT, int HD> dpb_status launch2(const dec_p &P, int64_t n, int64_t kvh, cudaStream_t st)
{
    if (P.G <= 8) return launch3<KT, HD, 8>(P, n, kvh, st);
    return launch3<KT, HD, 16>(P, n, kvh, st);
}

template <typename KT> dpb_status launch1(const dec_p &P, int64_t hd, int64_t n, int64_t kvh, cudaStream_t st)
{
    if (hd == 64) return launch2<KT, 64>(P, n, kvh, st);
    return launch2<KT, 128>(P, n, kvh, st);
}

} // namespace

extern "C" void dpb_attn_decode_set_enabled(bool on) { g_enabled = on; }
extern "C" cudaError_t dpb_attn_decode_pdl(int mode)
{
    g_pdl = mode;
    const char *mg = getenv("DPB_CUDA_ATTN_MERGE");
    g_merge_ahead = mg && !strcmp(mg, "old") ? 0 : 1;
    return pdl_set_mode(mode);
}
extern "C" bool dpb_attn_decode_enabled(void) { return g_enabled; }

extern "C" bool dpb_attn_decode_supports(const dpb_attn_decode_args *a)
{
    if (a->head_dim != 64 && a->head_dim != 128) return false;
    if (a->kv_heads < 1 || a->heads < 1 || a->heads % a->kv_heads || a->heads / a->kv_heads > 16) return false;
    if (a->n < 1 || a->n * a->kv_heads > kMaxCnt || a->slots < 1 || a->cap < 1 || a->window < 0) return false;
    if (((uintptr_t)a->q & 15) != 0 || ((uintptr_t)a->out & 15) != 0) return false;
    return true;
}

extern "C" size_t dpb_attn_decode_scratch(const dpb_attn_decode_args *a)
{
    const int ns = nsplit_of(a);
    if (ns <= 1) return 0;
    return (size_t)(a->n * a->heads) * (size_t)ns * (size_t)(a->head_dim + 4) * 4;
}

extern "C" dpb_status dpb_attn_decode_launch(const dpb_attn_decode_args *a, void *scratch, cudaStream_t st)
{
    if (!dpb_attn_decode_supports(a))
        return dpb_error_set(DPB_E_UNSUPPORTED,
                             "cuda attention (decode): n %lld, heads %lld / kv %lld, head_dim %lld: needs head_dim 64 or "
                             "128, at most 16 heads per kv head, n * kv_heads <= %d",
                             (long long)a->n, (long long)a->heads, (long long)a->kv_heads, (long long)a->head_dim, kMaxCnt);
    dec_p P;
    P.batch = a->batch ? 1 : 0;
    P.G = (int)(a->heads / a->kv_heads);
    P.n = a->n;
    P.heads = a->heads;
    P.kvh = a->kv_heads;
    P.slots = a->slots;
    P.window = a->window;
    P.pos0 = a->pos0;
    P.q = a->q;
    P.kn = static_cast<const unsigned char *>(a->k_new);
    P.vn = static_cast<const unsigned char *>(a->v_new);
    P.kc = static_cast<const unsigned char *>(a->k_cache);
    P.vc = static_cast<const unsigned char *>(a->v_cache);
    P.ktab = a->k_tab;
    P.vtab = a->v_tab;
    P.seq = a->seq;
    P.pos = a->pos;
    P.posd = a->pos_dev;
    P.sinks = a->sinks;
    P.sl2 = a->scale * kLog2e;
    P.out = a->out;
    P.part = static_cast<float *>(scratch);
    P.nsplit = nsplit_of(a);
    P.rnd = a->round_out ? 1 : 0;
    P.ahead = g_merge_ahead;
    if (P.nsplit > 1 && !scratch)
        return dpb_error_set(DPB_E_ARG, "cuda attention (decode): %d splits need scratch", P.nsplit);
    switch (a->kv_dtype) {
    case DPB_KV_F32: return launch1<float>(P, a->head_dim, a->n, a->kv_heads, st);
    case DPB_KV_FP8: return launch1<uint8_t>(P, a->head_dim, a->n, a->kv_heads, st);
    default: return launch1<uint16_t>(P, a->head_dim, a->n, a->kv_heads, st);
    }
}
