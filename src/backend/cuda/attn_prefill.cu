/* Prefill attention on the tensor cores: see attn_prefill.h. */
#include "backend/cuda/attn_prefill.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

namespace {

struct fa_p {
    const float *q;
    const uint16_t *kn, *vn, *kc, *vc; /* k_new, v_new, k_cache, v_cache */
    const uint16_t *sinks;
    float *out;
    uint16_t *obf; /* or null: the output's bf16 bits too (rnd set) */
    int rnd;       /* out rounded to bf16 as it is written (round_bf16's rule) */
    int nof32;     /* with obf: the bf16 bits only, out not written (dpb_attn_prefill_launch_bf16) */
    int64_t row;   /* elements per KV row: kv_heads * head_dim */
    int n, pos0, slots, window, heads, group, qtiles;
    float sl2;     /* scale * log2(e) */
};

__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 16 bytes global -> shared; !valid writes 16 zero bytes (src not read). */
__device__ __forceinline__ void cp16(uint32_t dst, const void *src, bool valid)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldsm4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, uint32_t a)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(a));
}
__device__ __forceinline__ void ldsm4t(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, uint32_t a)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(a));
}
/* c += a (16x16, row) * b (16x8, col); bf16 operands, fp32 accumulators */
__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}
__device__ __forceinline__ float ex2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ float bf16f(uint16_t u) { return __uint_as_float((uint32_t)u << 16); }
/* round to nearest even, NaN kept quiet: the backend's to_bf (round_bf16's rule) */
__device__ __forceinline__ uint16_t f2bf(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
/* two outputs at element e of out (and of obf): rounded to bf16 when P.rnd */
__device__ __forceinline__ void put2(const fa_p &P, int64_t e, float x, float y)
{
    if (P.rnd) {
        const uint16_t hx = f2bf(x), hy = f2bf(y);
        x = bf16f(hx);
        y = bf16f(hy);
        if (P.obf) *reinterpret_cast<uint32_t *>(P.obf + e) = (uint32_t)hx | (uint32_t)hy << 16;
        if (P.nof32) return;
    }
    *reinterpret_cast<float2 *>(P.out + e) = make_float2(x, y);
}

/* Block (query tile, head): NW warps, each MW x 16 query rows; BC keys per tile.  QS: q goes through
 * shared memory (ldmatrix per k-step) instead of living in registers as fragments.
 * Shared memory: [QS: BR rows of q] then 2 stages x (K, V) x BC rows of HD bf16; every row is padded by
 * 16 bytes so that ldmatrix's 8 row addresses fall in different banks. */
template <int HD, int NW, int BC, int MW, bool QS>
__global__ void __launch_bounds__(NW * 32) k_fa_prefill(const fa_p P)
{
    constexpr int BR = 16 * MW * NW, NT = 32 * NW, STR = HD + 8, CH = HD / 8;
    constexpr int TILE = BC * STR;           /* elements of one K or V tile */
    constexpr int QTILE = QS ? BR * STR : 0; /* elements of the q tile */
    static_assert((BC * CH) % NT == 0 && NT % CH == 0, "tile load must divide evenly");
    extern __shared__ __align__(16) uint16_t sm[];
    uint16_t *const sq = sm, *const skv = sm + QTILE;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, qd = lane % 4;
    const int qt = P.qtiles - 1 - (int)blockIdx.x; /* heaviest (latest) rows first */
    const int h = blockIdx.y, kh = h / P.group;
    const int t0 = qt * BR;
    const int tlast = (t0 + BR < P.n ? t0 + BR : P.n) - 1;
    const int P0 = P.pos0 + t0, P1 = P.pos0 + tlast; /* positions of the block's first / last live row */
    const int kmin = P.window > 0 && P0 - P.window + 1 > 0 ? P0 - P.window + 1 : 0;
    const int jstart = kmin / BC * BC, kend = P1 + 1; /* keys [kmin, kend) matter; tiles aligned to BC */
    const int ntiles = (kend - jstart + BC - 1) / BC;
    const int wr0 = t0 + warp * 16 * MW; /* first row of this warp; m-tile mi has rows wr0 + 16 mi + g (+8) */

    /* one tile of K and V (keys j0 .. j0+BC-1) into stage st.  Keys before kmin (outside every row's
     * window) and from kend on (after the last row) are zeros: only keys some row may see are read. */
    const int cc = tid % CH, rr = tid / CH;
    const int64_t coff = (int64_t)kh * HD + cc * 8;
    auto load = [&](int st, int j0) {
        uint16_t *sk = skv + st * 2 * TILE, *sv = sk + TILE;
        /* ring slot of key j0 (keys before pos0); the slots of j0 + r follow with one wrap when slots >= BC */
        const int s0 = j0 < P.pos0 ? j0 % P.slots : 0;
#pragma unroll
        for (int i = 0; i < BC * CH / NT; i++) {
            const int r = rr + i * (NT / CH);
            const int j = j0 + r;
            const bool ok = j >= kmin && j < kend;
            const uint16_t *ks = P.kn, *vs = P.vn;
            if (ok) {
                int64_t off;
                if (j >= P.pos0) {
                    off = (int64_t)(j - P.pos0) * P.row;
                } else {
                    int sl = s0 + r;
                    if (P.slots >= BC) sl = sl >= P.slots ? sl - P.slots : sl;
                    else sl = j % P.slots;
                    off = (int64_t)sl * P.row;
                    ks = P.kc;
                    vs = P.vc;
                }
                ks += off + coff;
                vs += off + coff;
            }
            cp16(smem_u32(sk + r * STR + cc * 8), ks, ok);
            cp16(smem_u32(sv + r * STR + cc * 8), vs, ok);
        }
    };

    load(0, jstart); /* the first tile is on its way while q is read */
    cp_commit();

    /* q: A-operand fragments in registers, or the bf16 tile in shared memory */
    uint32_t qf[QS ? 1 : MW][QS ? 1 : HD / 16][4];
    if constexpr (!QS) {
#pragma unroll
        for (int mi = 0; mi < MW; mi++) {
            const int ta = wr0 + mi * 16 + g, tb = ta + 8;
            const float *qa = P.q + ((int64_t)ta * P.heads + h) * HD, *qb = P.q + ((int64_t)tb * P.heads + h) * HD;
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                const int c = kk * 16 + qd * 2;
                float2 a0 = make_float2(0.f, 0.f), a1 = a0, a2 = a0, a3 = a0;
                if (ta < P.n) {
                    a0 = *reinterpret_cast<const float2 *>(qa + c);
                    a2 = *reinterpret_cast<const float2 *>(qa + c + 8);
                }
                if (tb < P.n) {
                    a1 = *reinterpret_cast<const float2 *>(qb + c);
                    a3 = *reinterpret_cast<const float2 *>(qb + c + 8);
                }
                qf[mi][kk][0] = pack_bf16(a0.x, a0.y);
                qf[mi][kk][1] = pack_bf16(a1.x, a1.y);
                qf[mi][kk][2] = pack_bf16(a2.x, a2.y);
                qf[mi][kk][3] = pack_bf16(a3.x, a3.y);
            }
        }
    } else {
        /* 4 floats per thread and step, QB loads in flight before their stores; rows past n are zeros */
        constexpr int QIT = BR * HD / 4 / NT, QB = QIT < 16 ? QIT : 16;
        static_assert((BR * HD / 4) % NT == 0 && QIT % QB == 0, "q tile load must divide evenly");
#pragma unroll
        for (int i0 = 0; i0 < QIT; i0 += QB) {
            float4 v[QB];
#pragma unroll
            for (int b = 0; b < QB; b++) {
                const int i = tid + (i0 + b) * NT, r = i / (HD / 4), c = (i % (HD / 4)) * 4;
                v[b] = make_float4(0.f, 0.f, 0.f, 0.f);
                if (t0 + r < P.n) v[b] = __ldg(reinterpret_cast<const float4 *>(P.q + ((int64_t)(t0 + r) * P.heads + h) * HD + c));
            }
#pragma unroll
            for (int b = 0; b < QB; b++) {
                const int i = tid + (i0 + b) * NT, r = i / (HD / 4), c = (i % (HD / 4)) * 4;
                uint2 u;
                u.x = pack_bf16(v[b].x, v[b].y);
                u.y = pack_bf16(v[b].z, v[b].w);
                *reinterpret_cast<uint2 *>(sq + r * STR + c) = u;
            }
        }
        (void)qf;
    }

    float o[MW][HD / 8][4];
    float m[MW][2], l[MW][2]; /* raw-score max and partial sums of rows g and g + 8 of each m-tile */
#pragma unroll
    for (int mi = 0; mi < MW; mi++) {
#pragma unroll
        for (int i = 0; i < HD / 8; i++) o[mi][i][0] = o[mi][i][1] = o[mi][i][2] = o[mi][i][3] = 0.f;
        m[mi][0] = m[mi][1] = -INFINITY;
        l[mi][0] = l[mi][1] = 0.f;
    }
    const int pw = P.pos0 + wr0 + g; /* position of row g of m-tile 0 */
    /* ldmatrix row addresses: K (non-trans, B of S), V (trans, B of P V), q (non-trans, A of S) */
    const int koff = ((lane / 16) * 8 + lane % 8) * STR + ((lane / 8) % 2) * 8;
    const int voff = (((lane / 8) % 2) * 8 + lane % 8) * STR + (lane / 16) * 8;
    const uint32_t qaddr = smem_u32(sq + (warp * 16 * MW + ((lane / 8) % 2) * 8 + lane % 8) * STR + (lane / 16) * 8);

    for (int it = 0; it < ntiles; it++) {
        const int j0 = jstart + it * BC;
        if (it + 1 < ntiles) load((it + 1) & 1, j0 + BC);
        cp_commit();
        cp_wait<1>();
        __syncthreads();
        const uint16_t *sk = skv + (it & 1) * 2 * TILE, *sv = sk + TILE;

        /* S = q K^T: MW x 16 rows x BC keys per warp */
        float s[MW][BC / 8][4];
#pragma unroll
        for (int mi = 0; mi < MW; mi++)
#pragma unroll
            for (int i = 0; i < BC / 8; i++) s[mi][i][0] = s[mi][i][1] = s[mi][i][2] = s[mi][i][3] = 0.f;
        const uint32_t kbase = smem_u32(sk + koff);
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t qs[MW][4];
            if constexpr (QS) {
#pragma unroll
                for (int mi = 0; mi < MW; mi++)
                    ldsm4(qs[mi][0], qs[mi][1], qs[mi][2], qs[mi][3], qaddr + (uint32_t)((mi * 16 * STR + kk * 16) * 2));
            }
#pragma unroll
            for (int np = 0; np < BC / 16; np++) {
                uint32_t b0, b1, b2, b3;
                ldsm4(b0, b1, b2, b3, kbase + (uint32_t)((np * 16 * STR + kk * 16) * 2));
#pragma unroll
                for (int mi = 0; mi < MW; mi++) {
                    const uint32_t *a = QS ? qs[mi] : qf[QS ? 0 : mi][QS ? 0 : kk];
                    mma16816(s[mi][2 * np], a, b0, b1);
                    mma16816(s[mi][2 * np + 1], a, b2, b3);
                }
            }
        }

        /* masks: only tiles crossing the diagonal or the window's edge */
        const bool causal_edge = j0 + BC - 1 > P0;
        const bool window_edge = P.window > 0 && j0 < P1 - P.window + 1;
        if (causal_edge || window_edge) {
#pragma unroll
            for (int mi = 0; mi < MW; mi++) {
                const int da = j0 + qd * 2 - (pw + mi * 16), db = da - 8; /* key - position, element (0, 0) */
#pragma unroll
                for (int nt = 0; nt < BC / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const int xa = da + nt * 8 + e, xb = db + nt * 8 + e;
                        if (xa > 0 || (P.window > 0 && xa <= -P.window)) s[mi][nt][e] = -INFINITY;
                        if (xb > 0 || (P.window > 0 && xb <= -P.window)) s[mi][nt][2 + e] = -INFINITY;
                    }
            }
        }

        /* online softmax (base 2, scores scaled inside the exponent); P packed to bf16 pairs in the
         * A-operand layout of P V at once (half the registers of the fp32 scores) */
        uint32_t pk[MW][BC / 16][4];
#pragma unroll
        for (int mi = 0; mi < MW; mi++) {
            float mx0 = m[mi][0], mx1 = m[mi][1];
#pragma unroll
            for (int nt = 0; nt < BC / 8; nt++) {
                mx0 = fmaxf(mx0, fmaxf(s[mi][nt][0], s[mi][nt][1]));
                mx1 = fmaxf(mx1, fmaxf(s[mi][nt][2], s[mi][nt][3]));
            }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            const float b0s = mx0 == -INFINITY ? 0.f : mx0 * P.sl2, b1s = mx1 == -INFINITY ? 0.f : mx1 * P.sl2;
            const float c0 = ex2(m[mi][0] * P.sl2 - b0s), c1 = ex2(m[mi][1] * P.sl2 - b1s);
            m[mi][0] = mx0;
            m[mi][1] = mx1;
            float l0 = l[mi][0] * c0, l1 = l[mi][1] * c1;
#pragma unroll
            for (int i = 0; i < HD / 8; i++) {
                o[mi][i][0] *= c0;
                o[mi][i][1] *= c0;
                o[mi][i][2] *= c1;
                o[mi][i][3] *= c1;
            }
#pragma unroll
            for (int nt = 0; nt < BC / 8; nt++) {
                s[mi][nt][0] = ex2(fmaf(s[mi][nt][0], P.sl2, -b0s));
                s[mi][nt][1] = ex2(fmaf(s[mi][nt][1], P.sl2, -b0s));
                s[mi][nt][2] = ex2(fmaf(s[mi][nt][2], P.sl2, -b1s));
                s[mi][nt][3] = ex2(fmaf(s[mi][nt][3], P.sl2, -b1s));
                l0 += s[mi][nt][0] + s[mi][nt][1];
                l1 += s[mi][nt][2] + s[mi][nt][3];
                pk[mi][nt / 2][(nt % 2) * 2] = pack_bf16(s[mi][nt][0], s[mi][nt][1]);
                pk[mi][nt / 2][(nt % 2) * 2 + 1] = pack_bf16(s[mi][nt][2], s[mi][nt][3]);
            }
            l[mi][0] = l0;
            l[mi][1] = l1;
        }

        /* O += P V (P rounded to bf16) */
        const uint32_t vbase = smem_u32(sv + voff);
#pragma unroll
        for (int kt = 0; kt < BC / 16; kt++) {
#pragma unroll
            for (int dp = 0; dp < HD / 16; dp++) {
                uint32_t b0, b1, b2, b3;
                ldsm4t(b0, b1, b2, b3, vbase + (uint32_t)((kt * 16 * STR + dp * 16) * 2));
#pragma unroll
                for (int mi = 0; mi < MW; mi++) {
                    mma16816(o[mi][2 * dp], pk[mi][kt], b0, b1);
                    mma16816(o[mi][2 * dp + 1], pk[mi][kt], b2, b3);
                }
            }
        }
        __syncthreads(); /* this stage is consumed before the next load overwrites it */
    }

    /* the row sums over the 4 lanes of a row, the sink, the output */
    const float skl = P.sinks ? bf16f(P.sinks[h]) * 1.4426950408889634f : 0.f; /* sink in log2 units */
#pragma unroll
    for (int mi = 0; mi < MW; mi++) {
        float gsc[2];
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            float lv = l[mi][hr];
            lv += __shfl_xor_sync(0xffffffffu, lv, 1);
            lv += __shfl_xor_sync(0xffffffffu, lv, 2);
            gsc[hr] = lv > 0.f ? 1.f / lv : 0.f;
            if (P.sinks) {
                const float e = m[mi][hr] * P.sl2, M = fmaxf(e, skl);
                const float f = m[mi][hr] == -INFINITY ? 0.f : ex2(e - M);
                gsc[hr] = f / (lv * f + ex2(skl - M));
            }
        }
        const int ta = wr0 + mi * 16 + g, tb = ta + 8;
        const int64_t ea = ((int64_t)ta * P.heads + h) * HD + qd * 2, eb = ((int64_t)tb * P.heads + h) * HD + qd * 2;
#pragma unroll
        for (int i = 0; i < HD / 8; i++) {
            if (ta < P.n) put2(P, ea + i * 8, o[mi][i][0] * gsc[0], o[mi][i][1] * gsc[0]);
            if (tb < P.n) put2(P, eb + i * 8, o[mi][i][2] * gsc[1], o[mi][i][3] * gsc[1]);
        }
    }
}

template <int HD, int NW, int BC, int MW>
dpb_status launch(const fa_p &P, cudaStream_t st)
{
    constexpr int BR = 16 * MW * NW;
    constexpr bool QS = HD == 128 && MW > 1; /* q fragments of 2 m-tiles at head_dim 128 would take 64 registers */
    constexpr size_t shm = ((QS ? (size_t)BR : 0) + (size_t)2 * 2 * BC) * (HD + 8) * 2;
    static bool attr_set = false; /* benign race: every caller sets the same value */
    if (!attr_set) {
        cudaError_t e = cudaFuncSetAttribute(k_fa_prefill<HD, NW, BC, MW, QS>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shm);
        if (e != cudaSuccess)
            return dpb_error_set(DPB_E_INTERNAL, "cuda attention (tensor cores): %zu bytes of shared memory: %s", shm,
                                 cudaGetErrorString(e));
        attr_set = true;
    }
    fa_p Q = P;
    Q.qtiles = (P.n + BR - 1) / BR;
    k_fa_prefill<HD, NW, BC, MW, QS><<<dim3((unsigned)Q.qtiles, (unsigned)P.heads), NW * 32, shm, st>>>(Q);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return dpb_error_set(DPB_E_INTERNAL, "cuda attention (tensor cores): %s", cudaGetErrorString(e));
    return DPB_OK;
}

template <int HD>
dpb_status launch_hd(const fa_p &P, dpb_attn_prefill_variant v, cudaStream_t st)
{
    switch (v) {
    case DPB_ATTN_PREFILL_Q64_K64: return launch<HD, 4, 64, 1>(P, st);
    case DPB_ATTN_PREFILL_Q128_K64: return launch<HD, 8, 64, 1>(P, st);
    case DPB_ATTN_PREFILL_Q64_K128: return launch<HD, 4, 128, 1>(P, st);
    case DPB_ATTN_PREFILL_Q128_K128: return launch<HD, 8, 128, 1>(P, st);
    case DPB_ATTN_PREFILL_Q128_K64_W4: return launch<HD, 4, 64, 2>(P, st);
    case DPB_ATTN_PREFILL_Q256_K64_W8: return launch<HD, 8, 64, 2>(P, st);
    default: return launch<HD, 4, 64, 1>(P, st);
    }
}

bool aligned(const void *p, uintptr_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* From the lab's timings on the H200 (docs/CUDA.md, "Prefill attention on the tensor cores"):
 * head_dim 64: 4 warps x 32 rows for full causal layers, 4 warps x 16 rows for sliding ones (fewer keys
 * outside the window per tile); head_dim 128: 8 warps x 16 rows x 128 keys, and 8 warps x 32 rows x 64
 * keys for deep chunks (>= 4096 keys per row on average) with enough blocks to fill two waves. */
dpb_attn_prefill_variant auto_variant(const dpb_attn_args *a)
{
    const bool full = a->window == 0 || a->window >= a->pos0 + a->n;
    if (a->head_dim == 64) return full ? DPB_ATTN_PREFILL_Q128_K64_W4 : DPB_ATTN_PREFILL_Q64_K64;
    if (full && a->pos0 + a->n / 2 >= 4096 && (a->n + 255) / 256 * a->heads >= 264) return DPB_ATTN_PREFILL_Q256_K64_W8;
    return DPB_ATTN_PREFILL_Q128_K128;
}

} // namespace

extern "C" const char *dpb_attn_prefill_variant_name(dpb_attn_prefill_variant v)
{
    switch (v) {
    case DPB_ATTN_PREFILL_AUTO: return "auto";
    case DPB_ATTN_PREFILL_Q64_K64: return "q64_k64";
    case DPB_ATTN_PREFILL_Q128_K64: return "q128_k64";
    case DPB_ATTN_PREFILL_Q64_K128: return "q64_k128";
    case DPB_ATTN_PREFILL_Q128_K128: return "q128_k128";
    case DPB_ATTN_PREFILL_Q128_K64_W4: return "q128_k64_w4";
    case DPB_ATTN_PREFILL_Q256_K64_W8: return "q256_k64_w8";
    default: return "?";
    }
}

extern "C" dpb_attn_prefill_variant dpb_attn_prefill_pick(const dpb_attn_args *a) { return auto_variant(a); }

extern "C" bool dpb_attn_prefill_supports(const dpb_attn_args *a)
{
    const int64_t lim = (int64_t)1 << 30;
    if (a->kv_dtype != DPB_KV_BF16 || (a->head_dim != 64 && a->head_dim != 128)) return false;
    if (a->kv_heads < 1 || a->heads < 1 || a->heads % a->kv_heads || a->heads > 65535 || a->slots < 1) return false;
    if (a->n < 0 || a->pos0 < 0 || a->window < 0 || a->n > lim || a->pos0 > lim - a->n || a->slots > lim) return false;
    if (!aligned(a->q, 16) || !aligned(a->out, 8) || !aligned(a->k_new, 16) || !aligned(a->v_new, 16)) return false;
    if (a->pos0 > 0 && (!aligned(a->k_cache, 16) || !aligned(a->v_cache, 16))) return false;
    return true;
}

extern "C" dpb_status dpb_attn_prefill_launch(const dpb_attn_args *a, dpb_attn_prefill_variant v, cudaStream_t st)
{
    return dpb_attn_prefill_launch_out(a, v, false, nullptr, st);
}

extern "C" dpb_status dpb_attn_prefill_launch_out(const dpb_attn_args *a, dpb_attn_prefill_variant v, bool round,
                                                  uint16_t *out_bf16, cudaStream_t st)
{
    return dpb_attn_prefill_launch_bf16(a, v, round, out_bf16, false, st);
}

extern "C" dpb_status dpb_attn_prefill_launch_bf16(const dpb_attn_args *a, dpb_attn_prefill_variant v, bool round,
                                                   uint16_t *out_bf16, bool bf16_only, cudaStream_t st)
{
    if (out_bf16 && (!round || !aligned(out_bf16, 4)))
        return dpb_error_set(DPB_E_ARG, "cuda attention (tensor cores): a bf16 copy of the output needs round and 4-byte alignment");
    if (!dpb_attn_prefill_supports(a))
        return dpb_error_set(DPB_E_UNSUPPORTED,
                             "cuda attention (tensor cores): n %lld, pos0 %lld, heads %lld / kv %lld, head_dim %lld, "
                             "slots %lld, window %lld, kv %s: needs bf16 KV, head_dim 64 or 128, heads %% kv_heads == 0, "
                             "pos0 + n < 2^30 and aligned buffers",
                             (long long)a->n, (long long)a->pos0, (long long)a->heads, (long long)a->kv_heads,
                             (long long)a->head_dim, (long long)a->slots, (long long)a->window,
                             a->kv_dtype == DPB_KV_BF16 ? "bf16" : "f32");
    if (a->n == 0) return DPB_OK;
    fa_p P;
    P.q = a->q;
    P.kn = static_cast<const uint16_t *>(a->k_new);
    P.vn = static_cast<const uint16_t *>(a->v_new);
    P.kc = static_cast<const uint16_t *>(a->k_cache);
    P.vc = static_cast<const uint16_t *>(a->v_cache);
    P.sinks = a->sinks;
    P.out = a->out;
    P.obf = out_bf16;
    P.rnd = round ? 1 : 0;
    P.nof32 = round && out_bf16 && bf16_only ? 1 : 0;
    P.row = a->kv_heads * a->head_dim;
    P.n = (int)a->n;
    P.pos0 = (int)a->pos0;
    P.slots = (int)a->slots;
    /* a window covering every position is no window */
    P.window = a->window >= a->pos0 + a->n ? 0 : (int)a->window;
    P.heads = (int)a->heads;
    P.group = (int)(a->heads / a->kv_heads);
    P.qtiles = 0;
    P.sl2 = a->scale * 1.4426950408889634f;
    if (v == DPB_ATTN_PREFILL_AUTO) v = auto_variant(a);
    if (a->head_dim == 64) return launch_hd<64>(P, v, st);
    return launch_hd<128>(P, v, st);
}
