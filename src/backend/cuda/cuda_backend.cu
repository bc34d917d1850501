/* The CUDA backend: every operation of backend.h on one device and one
 * stream.  Decode-sized products use the kernels of decode_kernels.cu
 * (bf16 GEMV, fused MXFP4 experts); larger ones cuBLAS (bf16 operands,
 * fp32 accumulation and output).  No operation synchronizes the host
 * except download, sync, and the first use of a new expert table or a
 * workspace that must grow.  Design: docs/CUDA.md, "Backend". */
#include "backend/cuda/cuda_backend.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <map>
#include <new>
#include <tuple>
#include <utility>
#include <unordered_map>
#include <vector>

#include "backend/cuda/attn_decode.h"
#include "backend/cuda/attn_prefill.h"
#include "backend/cuda/pdl.h"
#include "backend/cuda/decode_kernels.h"

namespace {

constexpr int kWarp = 32;

/* Prefill paths (DPB_CUDA_PREFILL): auto picks by size; new forces the
 * dequantize + cuBLAS experts for every n > 8 and the tiled attention for
 * every n > 1 (the checks use it); old keeps the first kernels (kernels A/B
 * 8 rows at a time, attention one block per (row, head)). */
enum { kPrefillAuto = 0, kPrefillNew = 1, kPrefillOld = 2 };
constexpr int64_t kMoeDequantMinRows = 32; /* auto: MXFP4 experts through dequantize + cuBLAS from this many rows */
constexpr int64_t kMoeGuRows = 1024;       /* rows per gate_up GEMM of one expert (bounds its fp32 scratch) */
constexpr int64_t kMoeGroupedMinRows = 16; /* auto: grouped MXFP4 experts from this many rows (lab: 9..15 tie or lose) */
constexpr int64_t kAttnTiledMinRows = 16;  /* auto: tiled prefill attention from this many rows */

struct moe_table {
    std::vector<const void *> host; /* gate_up blocks, scales, down blocks, scales: 4 x E */
    const uint8_t **dev = nullptr;  /* the same on the device */
};

/* DPB_CUDA_PF2 words turning off session 4's prefill passes (A/B): noqk (the warp-per-head qk_prep), nocopy
 * (bf16 side copies of add_rmsnorm and round_bf16), nomlp (swiglu_down's bf16-only SwiGLU) */
constexpr int kPf2NoQk = 1, kPf2NoCopy = 2, kPf2NoMlp = 4;
/* DPB_CUDA_PFD=noattnround turns off session 5's dense-prefill change (A/B): the prefill attention (attn_prefill.cu)
 * rounds its output and writes the bf16 side copy itself, instead of a round_bf16 pass over the output */
constexpr int kPfdNoAttnRound = 1;
/* DPB_CUDA_DPF words turning off session 6's dense-prefill changes (A/B): nomlp (the swiglu_mlp operation: gate/up
 * GEMMs writing bf16, SwiGLU over bf16 rows), nobias (bias through the cuBLASLt epilogue instead of k_bias_round),
 * noqkv (the qkv_prep operation: q/k/v GEMMs writing bf16 rows that qk_prep reads), oldsum (k_qk_prep_w's per-head
 * norm sum through session 4's gather of each warp's values instead of the butterfly on the lanes' own slots),
 * noattnf32 (attention_linear: the prefill attention writes its fp32 output too, as attention does) */
constexpr int kDpfNoMlp = 1, kDpfNoBias = 2, kDpfNoQkv = 4, kDpfOldSum = 8, kDpfNoAttnF32 = 16;
/* lt_plan flags: D (the output) in bf16; bias epilogue (fp32 bias vector added to each output row) */
constexpr int kLtBf16Out = 1, kLtBias = 2;
/* round_bf16 leaves a bf16 side copy from this many elements (add_rmsnorm: from 5 rows; decode rounds run in
 * graphs, where there is none: the copy costs 2 bytes per element written where no GEMM takes it) */
constexpr int64_t kSideCopyMin = 4096;

struct cuda_impl {
    int device = 0;
    int sms = 132; /* multiprocessors (sizes work splits) */
    int pf2 = 0; /* kPf2* bits from DPB_CUDA_PF2 (noqk, nocopy, nomlp): turn off session 4's prefill passes */
    int pfd = 0; /* kPfd* bits from DPB_CUDA_PFD (noattnround): turn off session 5's prefill change */
    int dpf = 0; /* kDpf* bits from DPB_CUDA_DPF (nomlp, nobias, noqkv, oldsum, noattnf32): session 6's prefill A/B */
    int lmulti = 0; /* linear_multi: 0 one launch, 1 one launch per matrix, 2 linear + round_bf16 (DPB_CUDA_LINEAR_MULTI) */
    int unfused = 0; /* DPB_CUDA_UNFUSED: 1 router, 2 qk_prep_kv, 4 qkv_prep_kv (bits) answer DPB_E_UNSUPPORTED */
    int pdl = 0;     /* DPB_CUDA_PDL: 0 off, 1 wait, 2 early (pdl.h) */
    bool gemv_mid_other = false; /* DPB_CUDA_GEMV_MID names a variant other than warp/row (qkv_prep_kv then declines) */
    int prefill = 0; /* kPrefillAuto / New / Old, from DPB_CUDA_PREFILL (docs/CUDA.md) */
    int moe_variant = 0; /* rows_per_warp of kernels A/B: 0, or DPB_CUDA_MOE_LUT (DPB_CUDA_MOE_LUT=1) */
    int moe_grouped = 0; /* grouped MXFP4 experts for n > 8: 0 auto, 1 always, -1 never (DPB_CUDA_MOE_GROUPED) */
    int moe_tile = 0; /* their variant: 0 auto, token tile 32, 64, 128 [| DPB_CUDA_MOE_GROUPED_W32] (DPB_CUDA_MOE_TILE) */
    cudaStream_t st = nullptr;
    cublasHandle_t blas = nullptr;
    std::map<uintptr_t, size_t> allocs; /* every device allocation: start -> bytes */
    std::map<uintptr_t, bool> is_mapped;
    uint64_t mapped = 0, allocated = 0, workspace = 0, peak = 0;
    unsigned long long *amax_part = nullptr; /* argmax: partial keys [kArgmaxSlots] */
    unsigned int *amax_cnt = nullptr;       /* argmax: per-row block counters [kArgmaxMaxRows], zero between launches */
    float *zeros = nullptr; /* zero residual for kernel B */
    size_t zeros_n = 0;
    void *ws = nullptr; /* scratch of one operation */
    size_t ws_bytes = 0;
    std::unordered_map<const void *, std::pair<float *, size_t>> bias32; /* bf16 bias (device) -> fp32 copy */
    std::unordered_map<const void *, moe_table> moe_tabs;
    /* Ranges known to hold bf16-exact floats (round_bf16 ran on them and no
     * operation wrote there since): linear feeds them to cuBLAS as one bf16
     * operand instead of a hi + lo pair. */
    struct range { uintptr_t a, b; };
    std::vector<range> rounded;
    /* Graphs: bumped whenever a buffer a captured graph may use is freed or moved. */
    uint64_t epoch = 0;
    uint16_t *fill_table = nullptr; /* device copy of the synth normal table */
    const uint16_t *fill_table_host = nullptr;
    /* Prefill GEMMs (docs/CUDA.md, "Prefill GEMMs"): cuBLASLt with an algorithm chosen per shape by timing
     * the heuristic's candidates once (gemm_mode 0), the heuristic's first (1, the default), or cublasGemmEx
     * (2), from DPB_CUDA_GEMM=tune|lt|ex. */
    int gemm_mode = 1;
    cublasLtHandle_t lt = nullptr;
    void *lt_ws = nullptr; /* cuBLASLt workspace (kLtWorkspace bytes, allocated at the first use) */
    std::map<std::tuple<int, int, int, int, int, int, int, int>, struct lt_plan *> lt_plans; /* last: kLt* flags */
    /* bf16 side copy of the last prefill-sized swiglu_bf16, add_rmsnorm (bf16 mode) or round_bf16 output: the
     * next linear reading exactly that buffer takes it instead of converting the fp32 rows again; any write to
     * the range (dirty), the next side copy or that linear drops it. */
    uint16_t *shadow = nullptr;
    size_t shadow_cap = 0;  /* elements */
    uintptr_t shadow_of = 0; /* the fp32 buffer it mirrors (0: none) */
    uintptr_t nof32_of = 0;  /* an attention output kept as that bf16 copy only (attention_linear): fp32 rows stale */
    bool attn_bf16_only = false; /* set by attention_linear around its attention call */
    size_t shadow_bytes = 0; /* its fp32 bytes */
};

/* One GEMM shape on cuBLASLt: descriptors and the chosen algorithm. */
struct lt_plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo;
    bool ok = false;
};
constexpr size_t kLtWorkspace = (size_t)64 << 20;
void lt_plan_free(lt_plan *p);

struct cuda_graph {
    cudaGraphExec_t exec;
    uint64_t epoch;
};

cuda_impl *impl_of(const dpb_backend *b) { return static_cast<cuda_impl *>(b->impl); }

dpb_status cerr(cudaError_t e, const char *what)
{
    if (e == cudaSuccess) return DPB_OK;
    return dpb_error_set(e == cudaErrorMemoryAllocation ? DPB_E_NOMEM : DPB_E_INTERNAL, "cuda %s: %s", what,
                         cudaGetErrorString(e));
}
dpb_status launched(const char *what) { return cerr(cudaGetLastError(), what); }

dpb_status berr(cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS) return DPB_OK;
    return dpb_error_set(DPB_E_INTERNAL, "cublas %s: status %d", what, (int)s);
}

void note_peak(cuda_impl *ci)
{
    uint64_t t = ci->mapped + ci->allocated + ci->workspace;
    if (t > ci->peak) ci->peak = t;
}

void dirty(cuda_impl *ci, const void *p, size_t bytes)
{
    uintptr_t a = (uintptr_t)p, b = a + bytes;
    if (ci->shadow_of && ci->shadow_of < b && a < ci->shadow_of + ci->shadow_bytes) ci->shadow_of = 0;
    if (ci->nof32_of && ci->nof32_of < b && a < ci->nof32_of + 4) ci->nof32_of = 0;
    for (size_t i = 0; i < ci->rounded.size();)
        if (ci->rounded[i].a < b && a < ci->rounded[i].b) {
            ci->rounded[i] = ci->rounded.back();
            ci->rounded.pop_back();
        } else i++;
}
bool is_rounded(const cuda_impl *ci, const void *p, size_t bytes)
{
    uintptr_t a = (uintptr_t)p, b = a + bytes;
    for (const auto &r : ci->rounded)
        if (r.a <= a && b <= r.b) return true;
    return false;
}

/* The fp32 bias copies made from bytes in [p, p + bytes) are stale: a
 * free, upload or copy touched them. */
void forget_bias(cuda_impl *ci, const void *p, size_t bytes)
{
    uintptr_t a = (uintptr_t)p, b = a + bytes;
    for (auto it = ci->bias32.begin(); it != ci->bias32.end();) {
        uintptr_t k = (uintptr_t)it->first;
        if (k >= a && k < b) {
            cudaFree(it->second.first); /* synchronizes: not on the step path */
            ci->epoch++;
            ci->workspace -= it->second.second;
            it = ci->bias32.erase(it);
        } else ++it;
    }
}

/* Scratch for one operation (stream order makes reuse across operations safe). */
dpb_status ws_get(cuda_impl *ci, size_t bytes, void **out)
{
    if (bytes > ci->ws_bytes) {
        size_t want = bytes + bytes / 4 + (1 << 20);
        cudaError_t e = cudaStreamSynchronize(ci->st);
        if (e != cudaSuccess) return cerr(e, "workspace");
        if (ci->ws) cudaFree(ci->ws);
        ci->epoch++;
        ci->workspace -= ci->ws_bytes;
        ci->ws = nullptr;
        ci->ws_bytes = 0;
        if ((e = cudaMalloc(&ci->ws, want)) != cudaSuccess)
            return dpb_error_set(DPB_E_NOMEM, "cuda workspace: cannot allocate %zu bytes: %s", want, cudaGetErrorString(e));
        ci->ws_bytes = want;
        ci->workspace += want;
        note_peak(ci);
    }
    *out = ci->ws;
    return DPB_OK;
}

/* The flash-decoding kernel (attn_decode.cu) with its scratch from the workspace; it rounds its own output. */
dpb_status attn_decode_run(cuda_impl *ci, const dpb_attn_decode_args *d, bool *rounded)
{
    const size_t sb = dpb_attn_decode_scratch(d);
    void *ws = nullptr;
    if (sb) {
        dpb_status s = ws_get(ci, sb, &ws);
        if (s) return s;
    }
    *rounded = true;
    return dpb_attn_decode_launch(d, ws, ci->st);
}
size_t al256(size_t x) { return (x + 255) & ~(size_t)255; }

/* The allocation holding p, and the bytes from p to its end; 0 when unknown. */
size_t bytes_after(const cuda_impl *ci, const void *p)
{
    uintptr_t a = (uintptr_t)p;
    auto it = ci->allocs.upper_bound(a);
    if (it == ci->allocs.begin()) return 0;
    --it;
    if (a >= it->first + it->second) return 0;
    return it->first + it->second - a;
}

/* ------------------------------------------------------------ kernels -- */

__device__ __forceinline__ float bf(uint16_t u) { return __uint_as_float((uint32_t)u << 16); }
__device__ __forceinline__ uint16_t to_bf(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
__device__ __forceinline__ float rbf(float f) { return bf(to_bf(f)); }
__device__ __forceinline__ float wsum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__constant__ float c_fp4[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
__device__ __forceinline__ float e8m0(uint8_t s) { return s == 255 ? __int_as_float(0x7fc00000) : ldexpf(1.0f, (int)s - 127); }

__global__ void k_embed_bf16(const uint16_t *__restrict__ tab, const int32_t *__restrict__ ids, int64_t dim,
                             float *__restrict__ out)
{
    pdl_wait();
    pdl_trigger();
    const int64_t t = blockIdx.x;
    const uint16_t *row = tab + (int64_t)ids[t] * dim;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) out[t * dim + i] = bf(row[i]);
}
__global__ void k_embed_f32(const float *__restrict__ tab, const int32_t *__restrict__ ids, int64_t dim,
                            float *__restrict__ out)
{
    const int64_t t = blockIdx.x;
    const float *row = tab + (int64_t)ids[t] * dim;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) out[t * dim + i] = row[i];
}

/* x (fp32) -> hi = bf16(x) and, when lo != NULL, lo = bf16(x - hi); 4 elements per thread (16-byte loads,
 * 8-byte stores) where the pointers allow. */
__global__ void k_split_bf16(const float *__restrict__ x, int64_t n, uint16_t *__restrict__ hi, uint16_t *__restrict__ lo)
{
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    const int64_t n4 = ((uintptr_t)x & 15) || ((uintptr_t)hi & 7) || ((uintptr_t)lo & 7) ? 0 : n / 4;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += step) {
        const float4 v = reinterpret_cast<const float4 *>(x)[i];
        const uint16_t h0 = to_bf(v.x), h1 = to_bf(v.y), h2 = to_bf(v.z), h3 = to_bf(v.w);
        reinterpret_cast<uint2 *>(hi)[i] = make_uint2((uint32_t)h0 | (uint32_t)h1 << 16, (uint32_t)h2 | (uint32_t)h3 << 16);
        if (lo) {
            const uint16_t l0 = to_bf(v.x - bf(h0)), l1 = to_bf(v.y - bf(h1)), l2 = to_bf(v.z - bf(h2)), l3 = to_bf(v.w - bf(h3));
            reinterpret_cast<uint2 *>(lo)[i] = make_uint2((uint32_t)l0 | (uint32_t)l1 << 16, (uint32_t)l2 | (uint32_t)l3 << 16);
        }
    }
    for (int64_t i = 4 * n4 + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += step) {
        float v = x[i];
        uint16_t h = to_bf(v);
        hi[i] = h;
        if (lo) lo[i] = to_bf(v - bf(h));
    }
}

__global__ void k_bias_f32(const uint16_t *__restrict__ b, int64_t n, float *__restrict__ out)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = bf(b[i]);
}

/* MXFP4 linear: one warp per output row, up to 8 tokens per block row. */
__global__ void __launch_bounds__(128) k_linear_mxfp4(const uint8_t *__restrict__ blk, const uint8_t *__restrict__ sc,
                                                      const uint16_t *__restrict__ bias, const float *__restrict__ x,
                                                      int64_t n, int64_t out, int64_t in, float *__restrict__ y)
{
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int64_t o = (int64_t)blockIdx.x * 4 + warp;
    const int64_t t0 = (int64_t)blockIdx.y * 8;
    if (o >= out) return;
    const int64_t nb = in / 32;
    float acc[8];
#pragma unroll
    for (int m = 0; m < 8; m++) acc[m] = 0.f;
    for (int64_t c = lane; c < nb; c += kWarp) {
        const uint8_t *bp = blk + (o * nb + c) * 16;
        float s = e8m0(sc[o * nb + c]);
        float w[32];
#pragma unroll
        for (int j = 0; j < 16; j++) {
            uint8_t by = bp[j];
            w[2 * j] = c_fp4[by & 15] * s;
            w[2 * j + 1] = c_fp4[by >> 4] * s;
        }
#pragma unroll
        for (int m = 0; m < 8; m++) {
            if (t0 + m >= n) break;
            const float *xr = x + (t0 + m) * in + c * 32;
            float a = 0.f;
#pragma unroll
            for (int j = 0; j < 32; j++) a = fmaf(w[j], xr[j], a);
            acc[m] += a;
        }
    }
#pragma unroll
    for (int m = 0; m < 8; m++) acc[m] = wsum(acc[m]);
    if (lane == 0)
        for (int m = 0; m < 8 && t0 + m < n; m++) y[(t0 + m) * out + o] = acc[m] + (bias ? bf(bias[o]) : 0.f);
}

/* The sum of v over the block (every thread gets it); red: 32 floats of shared memory. */
__device__ __forceinline__ float block_sum(float v, float *red)
{
    v = wsum(v);
    if (threadIdx.x % kWarp == 0) red[threadIdx.x / kWarp] = v;
    __syncthreads();
    if (threadIdx.x < kWarp) {
        float u = threadIdx.x < blockDim.x / kWarp ? red[threadIdx.x] : 0.f;
        u = wsum(u);
        if (threadIdx.x == 0) red[0] = u;
    }
    __syncthreads();
    return red[0];
}

__global__ void k_rmsnorm(const float *x, const uint16_t *__restrict__ w, int64_t dim, float eps, float *y)
{
    __shared__ float red[32];
    const int64_t t = blockIdx.x;
    const float *xr = x + t * dim;
    float *yr = y + t * dim;
    float ss = 0.f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss = fmaf(xr[i], xr[i], ss);
    const float r = 1.0f / sqrtf(block_sum(ss, red) / (float)dim + eps);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = bf(w[i]) * (xr[i] * r);
}

/* Vectorized add + RMSNorm (and plain RMSNorm), one block per row, for
 * dim % 4 == 0 and 16-byte aligned rows (w 8-byte aligned): each thread
 * loads up to kNorm4Per float4 of x (and r) and the matching 4 weights at
 * once, keeps them in registers, one block reduction of the squares, then
 * writes.  ADD: x += [round](r), [round] x stored back (w == NULL: the add
 * only); else y = rmsnorm(x) * w without rounding (x read only; y may equal
 * x: every element is read and written by the same thread). */
constexpr int kNorm4Per = 4;
constexpr int kNorm4MaxDim = 1024 * 4 * kNorm4Per;
template <bool ADD>
__global__ void __launch_bounds__(1024) k_norm4(float *x, const float *r, const uint16_t *__restrict__ w, int dim,
                                                float eps, int rnd, float *y, uint16_t *__restrict__ ysh = nullptr)
{
    pdl_wait();
    pdl_trigger();
    __shared__ float red[32];
    const int64_t t = blockIdx.x;
    const int d4 = dim / 4;
    float4 *x4 = reinterpret_cast<float4 *>(x + t * dim);
    const float4 *r4 = ADD ? reinterpret_cast<const float4 *>(r + t * dim) : nullptr;
    const uint2 *w4 = reinterpret_cast<const uint2 *>(w);
    float4 v[kNorm4Per];
    uint2 wv[kNorm4Per];
#pragma unroll
    for (int u = 0; u < kNorm4Per; u++) {
        const int i = (int)threadIdx.x + u * (int)blockDim.x;
        v[u] = make_float4(0.f, 0.f, 0.f, 0.f);
        wv[u] = make_uint2(0u, 0u);
        if (i < d4) {
            v[u] = x4[i];
            if (w) wv[u] = __ldg(w4 + i);
            if (ADD) {
                float4 a = r4[i];
                if (rnd) { a.x = rbf(a.x); a.y = rbf(a.y); a.z = rbf(a.z); a.w = rbf(a.w); }
                v[u].x += a.x; v[u].y += a.y; v[u].z += a.z; v[u].w += a.w;
                if (rnd) { v[u].x = rbf(v[u].x); v[u].y = rbf(v[u].y); v[u].z = rbf(v[u].z); v[u].w = rbf(v[u].w); }
            }
        }
    }
    float ss = 0.f;
#pragma unroll
    for (int u = 0; u < kNorm4Per; u++) {
        const int i = (int)threadIdx.x + u * (int)blockDim.x;
        if (ADD && i < d4) x4[i] = v[u];
        ss = fmaf(v[u].x, v[u].x, ss);
        ss = fmaf(v[u].y, v[u].y, ss);
        ss = fmaf(v[u].z, v[u].z, ss);
        ss = fmaf(v[u].w, v[u].w, ss);
    }
    if (!w) return;
    const float sc = 1.0f / sqrtf(block_sum(ss, red) / (float)dim + eps);
    float4 *y4 = reinterpret_cast<float4 *>(y + t * dim);
#pragma unroll
    for (int u = 0; u < kNorm4Per; u++) {
        const int i = (int)threadIdx.x + u * (int)blockDim.x;
        if (i < d4) {
            float4 o;
            o.x = bf((uint16_t)(wv[u].x & 0xffffu)) * (v[u].x * sc);
            o.y = bf((uint16_t)(wv[u].x >> 16)) * (v[u].y * sc);
            o.z = bf((uint16_t)(wv[u].y & 0xffffu)) * (v[u].z * sc);
            o.w = bf((uint16_t)(wv[u].y >> 16)) * (v[u].w * sc);
            if (rnd) { o.x = rbf(o.x); o.y = rbf(o.y); o.z = rbf(o.z); o.w = rbf(o.w); }
            y4[i] = o;
            if (ysh) /* y's bf16 bits (rnd: y is bf16-exact), the next GEMM's operand */
                reinterpret_cast<uint2 *>(ysh + t * dim)[i] =
                    make_uint2((uint32_t)to_bf(o.x) | (uint32_t)to_bf(o.y) << 16, (uint32_t)to_bf(o.z) | (uint32_t)to_bf(o.w) << 16);
        }
    }
}
/* threads for k_norm4: kNorm4Per float4 each, whole warps */
int norm4_threads(int64_t dim)
{
    int64_t th = (dim / 4 + kNorm4Per - 1) / kNorm4Per;
    th = (th + kWarp - 1) / kWarp * kWarp;
    return th < kWarp ? kWarp : (int)th;
}
bool norm4_ok(int64_t dim, const void *a, const void *b, const void *c, const void *w)
{
    return dim % 4 == 0 && dim <= kNorm4MaxDim && !(((uintptr_t)a | (uintptr_t)b | (uintptr_t)c) & 15u) &&
           !((uintptr_t)w & 7u);
}

struct rope_args {
    int64_t head_dim;
    float scaling;
    float inv_freq[DPB_ROPE_MAX_HALF];
};

/* Block t: row t; thread i: frequency i over every head. */
__global__ void k_rope(float *x, int64_t heads, const int64_t *__restrict__ pos, const rope_args ra)
{
    const int64_t t = blockIdx.x, hd = ra.head_dim, half = hd / 2;
    for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
        float ang = (float)pos[t] * ra.inv_freq[i];
        float c = (float)cos((double)ang) * ra.scaling;
        float s = (float)sin((double)ang) * ra.scaling;
        for (int64_t h = 0; h < heads; h++) {
            float *v = x + (t * heads + h) * hd;
            float a = v[i], b = v[i + half];
            v[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
            v[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
        }
    }
}

/* ---- attention: block (row t, head h, split s); 4 warps take keys in turn,
 * lanes split head_dim (<= 256), online softmax; partials merged in shared
 * memory, then either the output (one split, sink folded in) or the split's
 * (O, M, L) for k_attn_combine. */
constexpr int kAttnW = 4;
constexpr int kMaxDpl = 8; /* head_dim / 32 */

struct attn_p {
    int64_t n, pos0, heads, kv_heads, hd, slots, window;
    const float *q;
    const void *k_new, *v_new, *kc, *vc;
    const uint16_t *sinks;
    float scale;
    float *out;
    float *part;
    int nsplit;
    const int64_t *posd; /* device copy of pos0 (graphs), or null */
};

template <typename KT> __device__ __forceinline__ float kvf(KT v);
template <> __device__ __forceinline__ float kvf<uint16_t>(uint16_t v) { return bf(v); }
template <> __device__ __forceinline__ float kvf<float>(float v) { return v; }
template <> __device__ __forceinline__ float kvf<uint8_t>(uint8_t v)
{
    return __half2float(__half(__nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)v, __NV_E4M3)));
}
/* f32 -> FP8 E4M3 bytes equal to dpb_f32_to_fp8e4m3 (format/dtype.h): cvt.rn.satfinite (round to nearest even,
 * +-448 for larger magnitudes and infinities), NaN -> 0x7f with the sign. */
__device__ __forceinline__ uint8_t to_fp8(float f)
{
    if (f != f) return (uint8_t)(0x7fu | ((__float_as_uint(f) >> 24) & 0x80u));
    return (uint8_t)__nv_cvt_float_to_fp8(f, __NV_SATFINITE, __NV_E4M3);
}

template <typename KT>
__device__ __forceinline__ const KT *kv_row(const attn_p &P, int64_t pos0, bool val, int64_t p)
{
    const int64_t row = P.kv_heads * P.hd;
    if (p >= pos0) return static_cast<const KT *>(val ? P.v_new : P.k_new) + (p - pos0) * row;
    return static_cast<const KT *>(val ? P.vc : P.kc) + (p % P.slots) * row;
}

template <typename KT>
__global__ void __launch_bounds__(kAttnW * kWarp) k_attn(const attn_p P)
{
    __shared__ float sm_m[kAttnW], sm_l[kAttnW];
    extern __shared__ float sm_o[]; /* [kAttnW][hd] */
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int64_t t = blockIdx.x / P.heads, h = blockIdx.x % P.heads;
    const int s = blockIdx.y;
    const int64_t hd = P.hd, kh = h / (P.heads / P.kv_heads);
    const int64_t pos0 = P.posd ? P.posd[0] : P.pos0;
    const int64_t p = pos0 + t;
    const int64_t lo = P.window > 0 && p - P.window + 1 > 0 ? p - P.window + 1 : 0;
    int64_t nk = p - lo + 1, chunk = (nk + P.nsplit - 1) / P.nsplit;
    if (P.posd && chunk < 64) chunk = 64; /* splits sized for the capacity: short contexts leave some empty */
    const int64_t js = lo + s * chunk, je = js + chunk < p + 1 ? js + chunk : p + 1;
    const float *q = P.q + (t * P.heads + h) * hd;
    float qv[kMaxDpl], o[kMaxDpl];
#pragma unroll
    for (int i = 0; i < kMaxDpl; i++) {
        int64_t d = lane + 32 * i;
        qv[i] = d < hd ? q[d] : 0.f;
        o[i] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    for (int64_t j = js + warp; j < je; j += kAttnW) {
        const KT *kr = kv_row<KT>(P, pos0, false, j) + kh * hd;
        float dot = 0.f;
#pragma unroll
        for (int i = 0; i < kMaxDpl; i++) {
            int64_t d = lane + 32 * i;
            if (d < hd) dot = fmaf(qv[i], kvf<KT>(kr[d]), dot);
        }
        float sc = wsum(dot) * P.scale;
        float mn = fmaxf(m, sc);
        float corr = expf(m - mn), pe = expf(sc - mn);
        l = l * corr + pe;
        const KT *vr = kv_row<KT>(P, pos0, true, j) + kh * hd;
#pragma unroll
        for (int i = 0; i < kMaxDpl; i++) {
            int64_t d = lane + 32 * i;
            if (d < hd) o[i] = fmaf(pe, kvf<KT>(vr[d]), o[i] * corr);
        }
        m = mn;
    }
    if (lane == 0) { sm_m[warp] = m; sm_l[warp] = l; }
#pragma unroll
    for (int i = 0; i < kMaxDpl; i++) {
        int64_t d = lane + 32 * i;
        if (d < hd) sm_o[warp * hd + d] = o[i];
    }
    __syncthreads();
    float M = -INFINITY;
    for (int w = 0; w < kAttnW; w++) M = fmaxf(M, sm_m[w]);
    float L = 0.f;
    if (M > -INFINITY)
        for (int w = 0; w < kAttnW; w++)
            if (sm_m[w] > -INFINITY) L += sm_l[w] * expf(sm_m[w] - M);
    if (P.nsplit == 1) {
        float M2 = M, sink = 0.f;
        if (P.sinks) { sink = bf(P.sinks[h]); M2 = fmaxf(M, sink); }
        float f = expf(M - M2);
        float den = L * f + (P.sinks ? expf(sink - M2) : 0.f);
        for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
            float O = 0.f;
            for (int w = 0; w < kAttnW; w++)
                if (sm_m[w] > -INFINITY) O += sm_o[w * hd + d] * expf(sm_m[w] - M);
            P.out[(t * P.heads + h) * hd + d] = O * f / den;
        }
    } else {
        float *po = P.part + ((t * P.heads + h) * P.nsplit + s) * (hd + 2);
        for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
            float O = 0.f;
            if (M > -INFINITY)
                for (int w = 0; w < kAttnW; w++)
                    if (sm_m[w] > -INFINITY) O += sm_o[w * hd + d] * expf(sm_m[w] - M);
            po[d] = O;
        }
        if (threadIdx.x == 0) { po[hd] = M; po[hd + 1] = L; }
    }
}

__global__ void k_attn_combine(const attn_p P)
{
    const int64_t th = blockIdx.x, h = th % P.heads, hd = P.hd;
    const float *base = P.part + th * P.nsplit * (hd + 2);
    float M = P.sinks ? bf(P.sinks[h]) : -INFINITY;
    for (int s = 0; s < P.nsplit; s++) M = fmaxf(M, base[s * (hd + 2) + hd]);
    float L = P.sinks ? expf(bf(P.sinks[h]) - M) : 0.f;
    for (int s = 0; s < P.nsplit; s++) {
        float ms = base[s * (hd + 2) + hd];
        if (ms > -INFINITY) L += base[s * (hd + 2) + hd + 1] * expf(ms - M);
    }
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float O = 0.f;
        for (int s = 0; s < P.nsplit; s++) {
            float ms = base[s * (hd + 2) + hd];
            if (ms > -INFINITY) O += base[s * (hd + 2) + d] * expf(ms - M);
        }
        P.out[th * hd + d] = O / L;
    }
}

/* ---- prefill attention, tiled: block (32 query rows, head h), 128
 * threads, 4 per query row.  Keys and values go through shared memory in
 * tiles of 64 positions (fp32, rows padded to 68 floats so the four key rows
 * a warp reads at once sit in different banks); each of a row's 4 threads
 * takes every 4th key of the tile with its own online softmax, and the 4
 * are merged by shuffles at the end.  head_dim <= 64 (zero-padded). */
constexpr int kTq = 32, kTk = 64, kTsub = 4, kThd = 64, kTstride = kThd + 4;

template <typename KT>
__global__ void __launch_bounds__(kTq * kTsub) k_attn_tiled(const attn_p P)
{
    __shared__ __align__(16) float sk[kTk * kTstride];
    __shared__ __align__(16) float sv[kTk * kTstride];
    const int tid = threadIdx.x, ql = tid / kTsub, sub = tid % kTsub;
    const int64_t h = blockIdx.y, kh = h / (P.heads / P.kv_heads), hd = P.hd;
    const int64_t t0 = (int64_t)blockIdx.x * kTq;
    const int64_t t = t0 + ql;
    const bool live = t < P.n;
    const int64_t tend = t0 + kTq < P.n ? t0 + kTq : P.n; /* rows t0 .. tend-1 */
    const int64_t pfirst = P.pos0 + t0, plast = P.pos0 + tend - 1;
    const int64_t p = live ? P.pos0 + t : plast;
    const int64_t lo = P.window > 0 && p - P.window + 1 > 0 ? p - P.window + 1 : 0;
    const int64_t jbeg = P.window > 0 && pfirst - P.window + 1 > 0 ? pfirst - P.window + 1 : 0;
    float q[kThd], o[kThd];
    const float *qr = P.q + (t * P.heads + h) * hd;
#pragma unroll
    for (int d = 0; d < kThd; d++) {
        q[d] = live && d < hd ? qr[d] : 0.f;
        o[d] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    for (int64_t j0 = jbeg; j0 <= plast; j0 += kTk) {
        __syncthreads(); /* the previous tile is consumed */
        /* 16 threads per key row, 4 dims each; rows past plast and dims past hd are 0 */
        for (int r = tid / 16; r < kTk; r += (kTq * kTsub) / 16) {
            const int64_t j = j0 + r;
            const int d0 = (tid % 16) * 4;
            float kv4[4] = {0.f, 0.f, 0.f, 0.f}, vv4[4] = {0.f, 0.f, 0.f, 0.f};
            if (j <= plast) {
                const KT *kr = kv_row<KT>(P, P.pos0, false, j) + kh * hd, *vr = kv_row<KT>(P, P.pos0, true, j) + kh * hd;
#pragma unroll
                for (int i = 0; i < 4; i++)
                    if (d0 + i < hd) {
                        kv4[i] = kvf<KT>(kr[d0 + i]);
                        vv4[i] = kvf<KT>(vr[d0 + i]);
                    }
            }
            *reinterpret_cast<float4 *>(sk + r * kTstride + d0) = make_float4(kv4[0], kv4[1], kv4[2], kv4[3]);
            *reinterpret_cast<float4 *>(sv + r * kTstride + d0) = make_float4(vv4[0], vv4[1], vv4[2], vv4[3]);
        }
        __syncthreads();
        float sc[kTk / kTsub];
        float tmax = -INFINITY;
#pragma unroll
        for (int i = 0; i < kTk / kTsub; i++) {
            const int r = sub + kTsub * i;
            const int64_t j = j0 + r;
            const float4 *kr = reinterpret_cast<const float4 *>(sk + r * kTstride);
            float dot = 0.f;
#pragma unroll
            for (int d4 = 0; d4 < kThd / 4; d4++) {
                const float4 k4 = kr[d4];
                dot = fmaf(q[4 * d4], k4.x, dot);
                dot = fmaf(q[4 * d4 + 1], k4.y, dot);
                dot = fmaf(q[4 * d4 + 2], k4.z, dot);
                dot = fmaf(q[4 * d4 + 3], k4.w, dot);
            }
            const bool ok = live && j >= lo && j <= p;
            sc[i] = ok ? dot * P.scale : -INFINITY;
            tmax = fmaxf(tmax, sc[i]);
        }
        if (tmax == -INFINITY) continue; /* no key of this tile for this thread */
        const float mn = fmaxf(m, tmax);
        const float corr = m == -INFINITY ? 0.f : expf(m - mn);
        l *= corr;
#pragma unroll
        for (int d = 0; d < kThd; d++) o[d] *= corr;
#pragma unroll
        for (int i = 0; i < kTk / kTsub; i++) {
            if (sc[i] == -INFINITY) continue;
            const float pe = expf(sc[i] - mn);
            l += pe;
            const float4 *vr = reinterpret_cast<const float4 *>(sv + (sub + kTsub * i) * kTstride);
#pragma unroll
            for (int d4 = 0; d4 < kThd / 4; d4++) {
                const float4 v4 = vr[d4];
                o[4 * d4] = fmaf(pe, v4.x, o[4 * d4]);
                o[4 * d4 + 1] = fmaf(pe, v4.y, o[4 * d4 + 1]);
                o[4 * d4 + 2] = fmaf(pe, v4.z, o[4 * d4 + 2]);
                o[4 * d4 + 3] = fmaf(pe, v4.w, o[4 * d4 + 3]);
            }
        }
        m = mn;
    }
    /* merge the 4 threads of a row (adjacent lanes) */
    float M = m;
    M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, 1));
    M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, 2));
    const float f = m == -INFINITY ? 0.f : expf(m - M);
    float L = l * f;
    L += __shfl_xor_sync(0xffffffffu, L, 1);
    L += __shfl_xor_sync(0xffffffffu, L, 2);
#pragma unroll
    for (int d = 0; d < kThd; d++) {
        float v = o[d] * f;
        v += __shfl_xor_sync(0xffffffffu, v, 1);
        v += __shfl_xor_sync(0xffffffffu, v, 2);
        o[d] = v;
    }
    if (!live) return;
    float g = 1.0f / L;
    if (P.sinks) {
        const float sink = bf(P.sinks[h]), M2 = fmaxf(M, sink), e = expf(M - M2);
        g = e / (L * e + expf(sink - M2));
    }
    float *out = P.out + (t * P.heads + h) * hd;
#pragma unroll
    for (int d = 0; d < kThd; d++)
        if (d / (kThd / kTsub) == sub && d < hd) out[d] = o[d] * g;
}

/* ---- prefill attention for head_dim in (64, 128]: the same tiling (block =
 * 32 query rows x head h, 4 threads per row), but the 4 threads of a row split
 * head_dim instead of the keys: each holds HD/4 dims of q and o, a key's score
 * is their partial dots summed by two shuffles, and all 4 run the same online
 * softmax.  Keys and values go through shared memory TK at a time, each row
 * stored as 4 segments of HD/4 + 4 floats so the 4 threads' float4 reads fall
 * in different banks. */
template <typename KT, int HD, int TK>
__global__ void __launch_bounds__(kTq * 4) k_attn_tiled_dsplit(const attn_p P)
{
    constexpr int DPL = HD / 4, SEG = DPL + 4, ROW = 4 * SEG;
    __shared__ __align__(16) float sk[TK * ROW];
    __shared__ __align__(16) float sv[TK * ROW];
    const int tid = threadIdx.x, ql = tid / 4, sub = tid % 4;
    const int64_t h = blockIdx.y, kh = h / (P.heads / P.kv_heads), hd = P.hd;
    const int64_t t0 = (int64_t)blockIdx.x * kTq;
    const int64_t t = t0 + ql;
    const bool live = t < P.n;
    const int64_t tend = t0 + kTq < P.n ? t0 + kTq : P.n;
    const int64_t pfirst = P.pos0 + t0, plast = P.pos0 + tend - 1;
    const int64_t p = live ? P.pos0 + t : plast;
    const int64_t lo = P.window > 0 && p - P.window + 1 > 0 ? p - P.window + 1 : 0;
    const int64_t jbeg = P.window > 0 && pfirst - P.window + 1 > 0 ? pfirst - P.window + 1 : 0;
    float q[DPL], o[DPL];
    const float *qr = P.q + (t * P.heads + h) * hd;
#pragma unroll
    for (int d = 0; d < DPL; d++) {
        const int64_t dd = sub * DPL + d;
        q[d] = live && dd < hd ? qr[dd] : 0.f;
        o[d] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    for (int64_t j0 = jbeg; j0 <= plast; j0 += TK) {
        __syncthreads();
        for (int idx = tid; idx < TK * HD; idx += kTq * 4) {
            const int r = idx / HD, dd = idx % HD;
            const int64_t j = j0 + r;
            float kx = 0.f, vx = 0.f;
            if (j <= plast && dd < hd) {
                kx = kvf<KT>(kv_row<KT>(P, P.pos0, false, j)[kh * hd + dd]);
                vx = kvf<KT>(kv_row<KT>(P, P.pos0, true, j)[kh * hd + dd]);
            }
            const int sidx = r * ROW + (dd / DPL) * SEG + dd % DPL;
            sk[sidx] = kx;
            sv[sidx] = vx;
        }
        __syncthreads();
        for (int r = 0; r < TK; r++) {
            const int64_t j = j0 + r;
            const float4 *kr = reinterpret_cast<const float4 *>(sk + r * ROW + sub * SEG);
            float dot = 0.f;
#pragma unroll
            for (int d4 = 0; d4 < DPL / 4; d4++) {
                const float4 k4 = kr[d4];
                dot = fmaf(q[4 * d4], k4.x, dot);
                dot = fmaf(q[4 * d4 + 1], k4.y, dot);
                dot = fmaf(q[4 * d4 + 2], k4.z, dot);
                dot = fmaf(q[4 * d4 + 3], k4.w, dot);
            }
            dot += __shfl_xor_sync(0xffffffffu, dot, 1);
            dot += __shfl_xor_sync(0xffffffffu, dot, 2);
            if (!(live && j >= lo && j <= p)) continue;
            const float sc = dot * P.scale, mn = fmaxf(m, sc);
            const float corr = m == -INFINITY ? 0.f : expf(m - mn), pe = expf(sc - mn);
            l = l * corr + pe;
            const float4 *vr = reinterpret_cast<const float4 *>(sv + r * ROW + sub * SEG);
#pragma unroll
            for (int d4 = 0; d4 < DPL / 4; d4++) {
                const float4 v4 = vr[d4];
                o[4 * d4] = fmaf(pe, v4.x, o[4 * d4] * corr);
                o[4 * d4 + 1] = fmaf(pe, v4.y, o[4 * d4 + 1] * corr);
                o[4 * d4 + 2] = fmaf(pe, v4.z, o[4 * d4 + 2] * corr);
                o[4 * d4 + 3] = fmaf(pe, v4.w, o[4 * d4 + 3] * corr);
            }
            m = mn;
        }
    }
    if (!live) return;
    float g = l > 0.f ? 1.0f / l : 0.f;
    if (P.sinks) {
        const float sink = bf(P.sinks[h]), M2 = fmaxf(m, sink), e = m == -INFINITY ? 0.f : expf(m - M2);
        g = e / (l * e + expf(sink - M2));
    }
    float *out = P.out + (t * P.heads + h) * hd;
#pragma unroll
    for (int d = 0; d < DPL; d++) {
        const int64_t dd = sub * DPL + d;
        if (dd < hd) out[dd] = o[d] * g;
    }
}

__global__ void k_to_fp8(const float *__restrict__ src, int64_t n, uint8_t *__restrict__ dst)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = to_fp8(src[i]);
}

__global__ void k_to_bf16(const float *__restrict__ src, int64_t n, uint16_t *__restrict__ dst)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = to_bf(src[i]);
}

/* Order-preserving 32-bit key of a non-NaN float (-0 and +0 equal). */
__device__ __forceinline__ uint32_t ord_key(float v)
{
    const uint32_t u = __float_as_uint(v == 0.f ? 0.f : v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ unsigned long long wmax_u64(unsigned long long v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}

/* Router top-k: one warp per row (kRouterWarps rows per block), the row's E
 * logits (E <= 1024) in shared memory, element e with lane e % 32.  Each of
 * the k rounds is one warp reduction of a 64-bit key (value order, then the
 * lower index): the reference's scan (first unused element, replaced by a
 * strictly larger one) picks the largest non-NaN unused value, lowest index
 * first, unless the first unused element is NaN, which it then keeps; so
 * does this.  Softmax over the k as the reference: max = first pick, the
 * denominator summed in pick order. */
constexpr int kRouterWarps = 4;
constexpr int kRouterMaxE = 1024;
/* One row's top-k by one warp: l the row's E logits (read once; ld_cg: through L2 only, for logits other blocks
 * of the same launch wrote), s the warp's kRouterMaxE floats of shared memory. */
template <bool CG>
__device__ __forceinline__ void router_topk_warp(const float *l, int E, int k, float *s, int32_t *__restrict__ idx,
                                                 float *__restrict__ wts)
{
    const int lane = threadIdx.x % kWarp;
    const int per = (E + kWarp - 1) / kWarp;
    uint32_t used = 0; /* bit i: element lane + 32 i taken (or absent) */
    for (int i = 0; i < per; i++) {
        const int e = lane + kWarp * i;
        if (e < E) s[e] = CG ? __ldcg(l + e) : l[e];
        else used |= 1u << i;
    }
    __syncwarp();
    int my_id[2] = {0, 0};
    float my_v[2] = {0.f, 0.f};
    for (int j = 0; j < k; j++) {
        unsigned long long best = 0;
        int first = INT_MAX;
        for (int i = 0; i < per; i++) {
            if (used >> i & 1u) continue;
            const int e = lane + kWarp * i;
            first = min(first, e);
            const float v = s[e];
            if (v == v) {
                const unsigned long long key = (unsigned long long)ord_key(v) << 32 | (uint32_t)(0xffffffffu - (uint32_t)e);
                best = key > best ? key : best;
            }
        }
        best = wmax_u64(best);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) first = min(first, __shfl_xor_sync(0xffffffffu, first, o));
        const float fv = s[first];
        const int sel = fv != fv ? first : (int)(0xffffffffu - (uint32_t)(best & 0xffffffffu));
        const float sv = s[sel];
        if ((sel & (kWarp - 1)) == lane) used |= 1u << (sel / kWarp);
        if ((j & (kWarp - 1)) == lane) {
            if (j < kWarp) { my_id[0] = sel; my_v[0] = sv; }
            else { my_id[1] = sel; my_v[1] = sv; }
        }
    }
    const float mx = __shfl_sync(0xffffffffu, my_v[0], 0);
    float ex[2] = {expf(my_v[0] - mx), expf(my_v[1] - mx)};
    float den = 0.f;
    for (int j = 0; j < k; j++) den += __shfl_sync(0xffffffffu, j < kWarp ? ex[0] : ex[1], j & (kWarp - 1));
    for (int h = 0; h < 2; h++) {
        const int j = lane + kWarp * h;
        if (j < k) {
            idx[j] = (int32_t)my_id[h];
            wts[j] = ex[h] / den;
        }
    }
}

__global__ void __launch_bounds__(kRouterWarps * kWarp)
k_router_topk(const float *__restrict__ lg, int64_t n, int E, int k, int32_t *__restrict__ idx,
              float *__restrict__ wts)
{
    __shared__ float sl[kRouterWarps][kRouterMaxE];
    const int warp = threadIdx.x / kWarp;
    const int64_t t = (int64_t)blockIdx.x * kRouterWarps + warp;
    if (t >= n) return; /* whole warps leave: no block barrier below */
    router_topk_warp<false>(lg + t * E, E, k, sl[warp], idx + t * k, wts + t * k);
}

/* The router in one launch (op_router): block r computes logit r of every row exactly as the GEMV's splitK8
 * variant does for a matrix of < 256 rows (dpb_cuda_gemv_bf16: warp s sums 16-byte chunks s*32 + lane, s*32 +
 * lane + 256, ... in order, a butterfly warp sum, the 8 warps' sums added in warp order, then the bias), rounds
 * it to bf16 when asked (as k_round), and the last block to finish (a counter in device memory, set back to 0 by
 * that block) runs router_topk_warp on each row: bit for bit linear + round_bf16 + router_topk. */
constexpr int kRouterFusedWarps = 8;
constexpr int kRouterFusedMaxRows = 4;
__device__ unsigned int g_router_cnt;
__device__ __forceinline__ uint4 ld_nc16(const void *p)
{
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
    return r;
}
__device__ __forceinline__ float dot8_bf16_f32(uint4 w, const float *x, float acc)
{
    acc = fmaf(__uint_as_float(w.x << 16), x[0], acc);
    acc = fmaf(__uint_as_float(w.x & 0xffff0000u), x[1], acc);
    acc = fmaf(__uint_as_float(w.y << 16), x[2], acc);
    acc = fmaf(__uint_as_float(w.y & 0xffff0000u), x[3], acc);
    acc = fmaf(__uint_as_float(w.z << 16), x[4], acc);
    acc = fmaf(__uint_as_float(w.z & 0xffff0000u), x[5], acc);
    acc = fmaf(__uint_as_float(w.w << 16), x[6], acc);
    acc = fmaf(__uint_as_float(w.w & 0xffff0000u), x[7], acc);
    return acc;
}
template <int M>
__global__ void __launch_bounds__(kRouterFusedWarps * kWarp)
k_router_fused(const uint16_t *__restrict__ W, const uint16_t *__restrict__ bias, const float *__restrict__ x, int K,
               int E, int k, int rnd, float *lg, int32_t *__restrict__ idx, float *__restrict__ wts)
{
    pdl_wait();
    pdl_trigger();
    __shared__ float red[kRouterFusedWarps][M];
    __shared__ float sl[M][kRouterMaxE];
    __shared__ bool last;
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, row = (int)blockIdx.x;
    const uint4 *wrow = reinterpret_cast<const uint4 *>(W + (size_t)row * K);
    const int nchunk = K / 8;
    float acc[M];
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = 0.f;
#pragma unroll 4
    for (int c = warp * kWarp + lane; c < nchunk; c += kWarp * kRouterFusedWarps) {
        const uint4 w = ld_nc16(wrow + c);
#pragma unroll
        for (int m = 0; m < M; m++) {
            const float4 *p = reinterpret_cast<const float4 *>(x + (size_t)m * K + (size_t)c * 8);
            const float4 a = __ldg(p), b = __ldg(p + 1);
            const float xv[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
            acc[m] = dot8_bf16_f32(w, xv, acc[m]);
        }
    }
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = wsum(acc[m]);
    if (lane == 0)
#pragma unroll
        for (int m = 0; m < M; m++) red[warp][m] = acc[m];
    __syncthreads();
    if (threadIdx.x < M) {
        const int m = threadIdx.x;
        float v = 0.f;
#pragma unroll
        for (int ss = 0; ss < kRouterFusedWarps; ss++) v += red[ss][m];
        v += bias ? bf(bias[row]) : 0.f;
        lg[(size_t)m * E + row] = rnd ? rbf(v) : v;
        __threadfence();
    }
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&g_router_cnt, 1u) == (unsigned)(gridDim.x - 1);
    __syncthreads();
    if (!last) return;
    __threadfence();
    if (warp < M) router_topk_warp<true>(lg + (size_t)warp * E, E, k, sl[warp], idx + (size_t)warp * k, wts + (size_t)warp * k);
    if (threadIdx.x == 0) g_router_cnt = 0;
}

__global__ void k_swiglu(const float *gate, const float *__restrict__ up, int64_t n, float *out)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}
__global__ void k_add(float *y, const float *x, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}
/* out = bf16(silu(bf16(g)) * bf16(u)), 4 elements per thread where the pointers allow; sh gets the same values
 * as bf16 bits (the next GEMM's operand); either may be null */
__global__ void k_swiglu_bf16(const float *gate, const float *up, int64_t n, float *out, uint16_t *__restrict__ sh)
{
    const int64_t n4 = ((uintptr_t)gate | (uintptr_t)up | (uintptr_t)out | ((uintptr_t)sh & 7)) & 15 ? 0 : n / 4;
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += step) {
        const float4 g4 = reinterpret_cast<const float4 *>(gate)[i], u4 = reinterpret_cast<const float4 *>(up)[i];
        float g[4] = {rbf(g4.x), rbf(g4.y), rbf(g4.z), rbf(g4.w)}, u[4] = {rbf(u4.x), rbf(u4.y), rbf(u4.z), rbf(u4.w)};
        uint16_t h[4];
#pragma unroll
        for (int j = 0; j < 4; j++) h[j] = to_bf(g[j] / (1.0f + expf(-g[j])) * u[j]);
        if (out) reinterpret_cast<float4 *>(out)[i] = make_float4(bf(h[0]), bf(h[1]), bf(h[2]), bf(h[3]));
        if (sh)
            reinterpret_cast<uint2 *>(sh)[i] = make_uint2((uint32_t)h[0] | (uint32_t)h[1] << 16, (uint32_t)h[2] | (uint32_t)h[3] << 16);
    }
    for (int64_t i = 4 * n4 + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += step) {
        const float g = rbf(gate[i]);
        const uint16_t h = to_bf(g / (1.0f + expf(-g)) * rbf(up[i]));
        if (out) out[i] = bf(h);
        if (sh) sh[i] = h;
    }
}

__global__ void k_round(float *x, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] = rbf(x[i]);
}
/* x = bf16(x) and sh = its bf16 bits, 4 elements per thread (x 16-byte and sh 8-byte aligned) */
__global__ void k_round_sh(float *__restrict__ x, int64_t n, uint16_t *__restrict__ sh)
{
    const int64_t step = (int64_t)gridDim.x * blockDim.x, n4 = n / 4;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += step) {
        const float4 v = reinterpret_cast<const float4 *>(x)[i];
        const uint16_t h0 = to_bf(v.x), h1 = to_bf(v.y), h2 = to_bf(v.z), h3 = to_bf(v.w);
        reinterpret_cast<float4 *>(x)[i] = make_float4(bf(h0), bf(h1), bf(h2), bf(h3));
        reinterpret_cast<uint2 *>(sh)[i] = make_uint2((uint32_t)h0 | (uint32_t)h1 << 16, (uint32_t)h2 | (uint32_t)h3 << 16);
    }
    for (int64_t i = 4 * n4 + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += step) {
        const uint16_t h = to_bf(x[i]);
        x[i] = bf(h);
        sh[i] = h;
    }
}

/* ---- generic experts (bf16 in either layout, or MXFP4 when the fused
 * kernels do not apply): row p = t * k + j of the routed pairs.
 * y[p, o] = sum_i W_e[o, i] x[src(p), i] + bias_e[o], optionally rounded. */
struct expert_p {
    const void *const *data;     /* [E] */
    const uint8_t *const *scales; /* [E] (MXFP4) */
    int fmt, transposed;
    int64_t out, in, k;
    const uint16_t *bias; /* [E, out] */
    const int32_t *idx;   /* [n * k] */
    const float *x;
    int x_per_pair;       /* x row p (else row p / k) */
    float *y;             /* [n * k, out] */
    int rnd;
};

__global__ void __launch_bounds__(128) k_expert_linear(const expert_p P)
{
    const int64_t p = blockIdx.y;
    const int e = P.idx[p];
    const float *x = P.x + (P.x_per_pair ? p : p / P.k) * P.in;
    float *y = P.y + p * P.out;
    const uint16_t *bias = P.bias + (int64_t)e * P.out;
    if (P.fmt == DPB_W_BF16 && P.transposed) {
        /* [in, out]: one thread per output, coalesced over o */
        const uint16_t *W = static_cast<const uint16_t *>(P.data[e]);
        int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
        if (o >= P.out) return;
        float a = 0.f;
        for (int64_t i = 0; i < P.in; i++) a = fmaf(bf(W[i * P.out + o]), x[i], a);
        a += bf(bias[o]);
        y[o] = P.rnd ? rbf(a) : a;
        return;
    }
    /* [out, in]: one warp per output row, 4 rows per block... */
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    for (int64_t o = (int64_t)blockIdx.x * 4 + warp; o < P.out && o < (int64_t)blockIdx.x * 4 + 4; o += 4) {
        float a = 0.f;
        if (P.fmt == DPB_W_BF16) {
            const uint16_t *W = static_cast<const uint16_t *>(P.data[e]) + o * P.in;
            for (int64_t i = lane; i < P.in; i += kWarp) a = fmaf(bf(W[i]), x[i], a);
        } else if (P.fmt == DPB_W_F32) {
            const float *W = static_cast<const float *>(P.data[e]) + o * P.in;
            for (int64_t i = lane; i < P.in; i += kWarp) a = fmaf(W[i], x[i], a);
        } else {
            const uint8_t *B = static_cast<const uint8_t *>(P.data[e]);
            const uint8_t *S = P.scales[e];
            const int64_t nb = P.in / 32;
            for (int64_t i = lane; i < P.in; i += kWarp) {
                int64_t b = i / 32, j = i % 32;
                uint8_t by = B[(o * nb + b) * 16 + j / 2];
                a = fmaf(c_fp4[(j & 1) ? by >> 4 : by & 15] * e8m0(S[o * nb + b]), x[i], a);
            }
        }
        a = wsum(a);
        if (lane == 0) {
            a += bf(bias[o]);
            y[o] = P.rnd ? rbf(a) : a;
        }
    }
}

/* act[p, i] = clamped SwiGLU of the interleaved gu[p, 2i], gu[p, 2i+1] (already rounded when rnd). */
__global__ void k_swiglu_clamped(const float *__restrict__ gu, int64_t rows, int64_t I, float limit, float alpha, int rnd,
                                 float *__restrict__ act)
{
    int64_t n = rows * I;
    for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < n; q += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = q / I, i = q % I;
        float g = gu[r * 2 * I + 2 * i], u = gu[r * 2 * I + 2 * i + 1];
        if (g > limit) g = limit;
        if (u > limit) u = limit;
        if (u < -limit) u = -limit;
        float glu = g / (1.0f + expf(-alpha * g));
        float v = glu * (u + 1.0f);
        act[q] = rnd ? rbf(v) : v;
    }
}

/* out[t, h] = sum_j dn[t*k + j, h] * w[t*k + j], in the reference's order. */
__global__ void k_moe_combine(const float *__restrict__ dn, const float *__restrict__ w, int64_t n, int64_t H, int64_t k,
                              float *__restrict__ out)
{
    int64_t tot = n * H;
    for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < tot; q += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = q / H, h = q % H;
        float o = 0.f;
        for (int64_t j = 0; j < k; j++) o += dn[(t * k + j) * H + h] * w[t * k + j];
        out[q] = o;
    }
}

/* ---- prefill MoE: a counting sort of the routed pairs by expert (one
 * block; pairs with an expert id outside [0, E) are left out). */
__global__ void __launch_bounds__(1024) k_moe_group(const int32_t *__restrict__ idx, int64_t pairs, int E,
                                                   int32_t *__restrict__ off, int32_t *__restrict__ perm)
{
    __shared__ int cnt[1024], cur[1024];
    for (int e = threadIdx.x; e < E; e += blockDim.x) cnt[e] = 0;
    __syncthreads();
    for (int64_t p = threadIdx.x; p < pairs; p += blockDim.x) {
        int e = idx[p];
        if (e >= 0 && e < E) atomicAdd(&cnt[e], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int sum = 0;
        for (int e = 0; e < E; e++) {
            off[e] = sum;
            cur[e] = sum;
            sum += cnt[e];
        }
        off[E] = sum;
    }
    __syncthreads();
    for (int64_t p = threadIdx.x; p < pairs; p += blockDim.x) {
        int e = idx[p];
        if (e >= 0 && e < E) perm[atomicAdd(&cur[e], 1)] = (int32_t)p;
    }
}

/* ---- MXFP4 experts for prefill (n rows, many routed pairs): the pairs
 * sorted by expert (k_moe_group), then per used expert its weights
 * dequantized to bf16 into scratch and two cuBLAS GEMMs on the tensor cores
 * (bf16 operands, fp32 accumulation).  Activations that are not bf16-exact
 * go in as hi + lo bf16 pairs (a second GEMM with beta = 1), as in gemm(). */

/* Both matrices of one expert to bf16: thread i takes 8 weights (4 code
 * bytes) of the concatenation [gate_up (gn8 groups of 8), down (dn8)].  The
 * value is FP4 * 2^(s - 127), exact in bf16. */
__global__ void k_dequant_mxfp4x2(const uint8_t *__restrict__ gb, const uint8_t *__restrict__ gs, int64_t gn8,
                                  uint4 *__restrict__ gw, const uint8_t *__restrict__ db, const uint8_t *__restrict__ ds,
                                  int64_t dn8, uint4 *__restrict__ dw)
{
    __shared__ float lut[16]; /* divergent lookups: shared memory, not the constant cache */
    if (threadIdx.x < 16) lut[threadIdx.x] = c_fp4[threadIdx.x];
    __syncthreads();
    const int64_t tot = gn8 + dn8;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < tot; i += (int64_t)gridDim.x * blockDim.x) {
        const bool g = i < gn8;
        const int64_t k = g ? i : i - gn8;
        const uint8_t *B = (g ? gb : db) + k * 4;
        const float s = e8m0((g ? gs : ds)[k >> 2]);
        uint32_t w[4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint8_t by = B[j];
            const uint32_t lo = __float_as_uint(lut[by & 15] * s) >> 16, hi = __float_as_uint(lut[by >> 4] * s) >> 16;
            w[j] = lo | hi << 16;
        }
        (g ? gw : dw)[k] = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

/* Sorted row r (< rows) takes pair perm[r]: hi/lo[r] = x row (pair / k) as
 * bf16 (lo = NULL: one part only); inv[pair] = r. */
__global__ void k_pf_gather(const float *__restrict__ x, const int32_t *__restrict__ perm, int64_t rows, int64_t H,
                            int64_t k, uint16_t *__restrict__ hi, uint16_t *__restrict__ lo, int32_t *__restrict__ inv)
{
    const int64_t tot = rows * H;
    for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < tot; q += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = q / H, i = q % H;
        const int32_t p = perm[r];
        if (i == 0) inv[p] = (int32_t)r;
        const float v = x[(p / k) * H + i];
        const uint16_t h = to_bf(v);
        hi[q] = h;
        if (lo) lo[q] = to_bf(v - bf(h));
    }
}

/* One expert's c rows: act = clamped SwiGLU of (gu + bias), interleaved
 * gate/up columns; rnd rounds gate, up and act as ref_moe does. */
__global__ void k_pf_swiglu(const float *__restrict__ gu, const uint16_t *__restrict__ bias, int64_t c, int64_t I,
                            float limit, float alpha, int rnd, uint16_t *__restrict__ hi, uint16_t *__restrict__ lo)
{
    const int64_t tot = c * I;
    for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < tot; q += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = q / I, i = q % I;
        float g = gu[r * 2 * I + 2 * i] + bf(bias[2 * i]), u = gu[r * 2 * I + 2 * i + 1] + bf(bias[2 * i + 1]);
        if (rnd) { g = rbf(g); u = rbf(u); }
        if (g > limit) g = limit;
        if (u > limit) u = limit;
        if (u < -limit) u = -limit;
        const float glu = g / (1.0f + expf(-alpha * g));
        const float v = glu * (u + 1.0f);
        const uint16_t h = to_bf(v);
        hi[q] = h;
        if (lo) lo[q] = to_bf(v - bf(h));
    }
}

/* out[t, h] = sum_j w[t, j] * (dn[inv[t k + j], h] + down_bias[e, h]) in
 * the reference's order (rounded per expert when rnd); a pair whose expert
 * id was out of range (inv < 0) gives NaN. */
__global__ void k_pf_combine(const float *__restrict__ dn, const int32_t *__restrict__ inv, const int32_t *__restrict__ idx,
                             const float *__restrict__ w, const uint16_t *__restrict__ dbias, int64_t n, int64_t H, int64_t k,
                             int rnd, float *__restrict__ out)
{
    const int64_t tot = n * H;
    for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < tot; q += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = q / H, h = q % H;
        float o = 0.f;
        for (int64_t j = 0; j < k; j++) {
            const int64_t p = t * k + j;
            const int32_t r = inv[p];
            if (r < 0) {
                o = __int_as_float(0x7fc00000);
                continue;
            }
            float v = dn[(int64_t)r * H + h] + bf(dbias[(int64_t)idx[p] * H + h]);
            if (rnd) v = rbf(v);
            o += v * w[p];
        }
        out[q] = o;
    }
}

unsigned grid_for(int64_t n, int threads)
{
    int64_t g = (n + threads - 1) / threads;
    if (g < 1) g = 1;
    if (g > 65535 * 8) g = 65535 * 8;
    return (unsigned)g;
}

/* ------------------------------------------------------------ the ops -- */

dpb_status op_alloc(dpb_backend *b, size_t bytes, void **out)
{
    cuda_impl *ci = impl_of(b);
    *out = nullptr;
    if (bytes == 0) bytes = 256;
    cudaError_t e = cudaMalloc(out, bytes);
    if (e != cudaSuccess) {
        size_t fr = 0, tot = 0;
        cudaGetLastError();
        cudaMemGetInfo(&fr, &tot);
        *out = nullptr;
        return dpb_error_set(DPB_E_NOMEM, "cuda alloc: %zu bytes requested, %zu free of %zu (%s)", bytes, fr, tot,
                             cudaGetErrorString(e));
    }
    ci->allocs[(uintptr_t)*out] = bytes;
    ci->allocated += bytes;
    note_peak(ci);
    return DPB_OK;
}

void op_free(dpb_backend *b, void *p)
{
    cuda_impl *ci = impl_of(b);
    if (!p) return;
    auto it = ci->allocs.find((uintptr_t)p);
    if (it != ci->allocs.end()) {
        dirty(ci, p, it->second);
        forget_bias(ci, p, it->second);
        bool mapped = ci->is_mapped.count((uintptr_t)p) != 0;
        if (mapped) {
            ci->mapped -= it->second;
            ci->is_mapped.erase((uintptr_t)p);
        } else ci->allocated -= it->second;
        ci->allocs.erase(it);
    }
    ci->epoch++;
    cudaFree(p); /* synchronizes: freeing is not on the step path */
}

dpb_status op_upload(dpb_backend *b, void *dst, const void *src, size_t bytes)
{
    cuda_impl *ci = impl_of(b);
    if (!bytes) return DPB_OK;
    dirty(ci, dst, bytes);
    if (!ci->bias32.empty()) forget_bias(ci, dst, bytes);
    return cerr(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ci->st), "upload");
}
dpb_status op_download(dpb_backend *b, void *dst, const void *src, size_t bytes)
{
    cuda_impl *ci = impl_of(b);
    if (!bytes) return DPB_OK;
    dpb_status s = cerr(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ci->st), "download");
    if (s) return s;
    return cerr(cudaStreamSynchronize(ci->st), "download (a kernel before it failed)");
}
dpb_status op_copy(dpb_backend *b, void *dst, const void *src, size_t bytes)
{
    cuda_impl *ci = impl_of(b);
    if (!bytes) return DPB_OK;
    dirty(ci, dst, bytes);
    if (!ci->bias32.empty()) forget_bias(ci, dst, bytes);
    return cerr(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ci->st), "copy");
}
dpb_status op_sync(dpb_backend *b) { return cerr(cudaStreamSynchronize(impl_of(b)->st), "sync"); }

dpb_status op_map_host(dpb_backend *b, const void *host, size_t bytes, const void **out)
{
    cuda_impl *ci = impl_of(b);
    void *d = nullptr;
    *out = nullptr;
    /* Already device memory of ours (weights generated on the device): used
     * in place, and counted as weights from now on. */
    auto it = ci->allocs.upper_bound((uintptr_t)host);
    if (it != ci->allocs.begin()) {
        --it;
        if ((uintptr_t)host >= it->first && (uintptr_t)host + bytes <= it->first + it->second) {
            if (!ci->is_mapped.count(it->first)) {
                ci->is_mapped[it->first] = true;
                ci->allocated -= it->second;
                ci->mapped += it->second;
            }
            *out = host;
            return DPB_OK;
        }
    }
    dpb_status s = op_alloc(b, bytes, &d);
    if (s) return s;
    ci->allocated -= bytes ? bytes : 256;
    ci->mapped += bytes ? bytes : 256;
    ci->is_mapped[(uintptr_t)d] = true;
    if (bytes) {
        cudaError_t e = cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice);
        if (e != cudaSuccess) {
            op_free(b, d);
            return cerr(e, "map_host copy");
        }
    }
    *out = d;
    return DPB_OK;
}

void op_destroy(dpb_backend *b)
{
    cuda_impl *ci = impl_of(b);
    if (!ci) return;
    cudaStreamSynchronize(ci->st);
    for (auto &kv : ci->bias32) cudaFree(kv.second.first);
    for (auto &kv : ci->moe_tabs) cudaFree(kv.second.dev);
    if (ci->fill_table) cudaFree(ci->fill_table);
    if (ci->ws) cudaFree(ci->ws);
    if (ci->zeros) cudaFree(ci->zeros);
    if (ci->amax_part) cudaFree(ci->amax_part);
    /* buffers the caller did not free, and mapped weights */
    for (auto &kv : ci->allocs) cudaFree((void *)kv.first);
    for (auto &kv : ci->lt_plans) lt_plan_free(kv.second);
    if (ci->lt_ws) cudaFree(ci->lt_ws);
    if (ci->shadow) cudaFree(ci->shadow);
    if (ci->lt) cublasLtDestroy(ci->lt);
    if (ci->blas) cublasDestroy(ci->blas);
    if (ci->st) cudaStreamDestroy(ci->st);
    ci->~cuda_impl();
    /* dpb_backend_close frees the memory of impl itself */
}

dpb_status op_embed(dpb_backend *b, const dpb_weight *table, const int32_t *ids, int64_t n, float *out)
{
    cuda_impl *ci = impl_of(b);
    if (n <= 0) return DPB_OK;
    if (table->transposed || (table->fmt != DPB_W_BF16 && table->fmt != DPB_W_F32))
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda embed: only row-major bf16/f32 tables");
    dirty(ci, out, (size_t)(n * table->in) * 4);
    if (table->fmt == DPB_W_BF16)
        return cerr(pdl_launch(ci->pdl, k_embed_bf16, dim3((unsigned)n), dim3(256), 0, ci->st,
                               static_cast<const uint16_t *>(table->data), ids, table->in, out), "embed");
    else k_embed_f32<<<(unsigned)n, 256, 0, ci->st>>>(static_cast<const float *>(table->data), ids, table->in, out);
    return launched("embed");
}

/* fp32 copy of a bf16 bias vector, made once per vector. */
dpb_status bias_f32(cuda_impl *ci, const uint16_t *bias, int64_t n, const float **out)
{
    *out = nullptr;
    if (!bias) return DPB_OK;
    auto it = ci->bias32.find(bias);
    if (it != ci->bias32.end()) {
        *out = it->second.first;
        return DPB_OK;
    }
    float *d = nullptr;
    cudaError_t e = cudaMalloc(&d, (size_t)n * 4);
    if (e != cudaSuccess) return dpb_error_set(DPB_E_NOMEM, "cuda linear: fp32 bias of %lld: %s", (long long)n, cudaGetErrorString(e));
    ci->workspace += (size_t)n * 4;
    note_peak(ci);
    k_bias_f32<<<grid_for(n, 256), 256, 0, ci->st>>>(bias, n, d);
    ci->bias32[bias] = std::make_pair(d, (size_t)n * 4);
    *out = d;
    return launched("bias");
}

bool al16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

bool capturing(cuda_impl *ci)
{
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    return cudaStreamIsCapturing(ci->st, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone;
}

void lt_plan_free(lt_plan *p)
{
    if (!p) return;
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    delete p;
}

/* The cuBLASLt plan of C[m, nn] (fp32, ld m) = op(A)[m, k] (bf16, ld lda) x B[k, nn] (bf16, ld k) + beta C; null
 * when cuBLASLt offers nothing (the caller then uses cublasGemmEx).  A new shape with beta = 0 in mode "tune",
 * outside a graph capture, runs each of the heuristic's candidates (up to 8) four times on these operands
 * (writing C) and keeps the fastest: the host waits then, once per shape.  beta != 0 reuses the algorithm of
 * the same shape with beta = 0 (running it would add to C). */
lt_plan *lt_plan_get(cuda_impl *ci, cublasOperation_t opA, int lda, int m, int nn, int k, bool beta1, const void *A,
                     const uint16_t *B, void *C, int flags, const void *bias)
{
    /* the pointers' alignments (up to 256 bytes) are part of the shape: the heuristic excludes what they rule out */
    auto align = [](const void *q) {
        uint32_t al = 256;
        while (al > 1 && ((uintptr_t)q & (al - 1))) al >>= 1;
        return al;
    };
    const uint32_t alA = align(A), alB = align(B), alC = align(C);
    const int alk = (int)(alA | alB << 9 | alC << 18);
    const auto key = std::make_tuple(m, nn, k, (int)opA, lda, beta1 ? 1 : 0, alk, flags);
    const cudaDataType_t dt = flags & kLtBf16Out ? CUDA_R_16BF : CUDA_R_32F;
    auto it = ci->lt_plans.find(key);
    if (it != ci->lt_plans.end()) return it->second->ok ? it->second : nullptr;
    const bool cap = capturing(ci);
    if (cap && !ci->lt_ws) return nullptr; /* no allocation inside a capture */
    if (!ci->lt) {
        if (cublasLtCreate(&ci->lt) != CUBLAS_STATUS_SUCCESS) {
            ci->lt = nullptr;
            ci->gemm_mode = 2;
            return nullptr;
        }
    }
    if (!ci->lt_ws) {
        if (cudaMalloc(&ci->lt_ws, kLtWorkspace) != cudaSuccess) {
            cudaGetLastError();
            ci->lt_ws = nullptr;
            ci->gemm_mode = 2;
            return nullptr;
        }
        ci->workspace += kLtWorkspace;
        note_peak(ci);
    }
    lt_plan *p = new (std::nothrow) lt_plan();
    if (!p) return nullptr;
    ci->lt_plans[key] = p;
    const cublasOperation_t opB = CUBLAS_OP_N;
    const uint64_t wsb = kLtWorkspace;
    cublasLtMatmulPreference_t pref = nullptr;
    cublasLtMatmulHeuristicResult_t res[8];
    int got = 0;
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bdt = flags & kLtBf16Out ? CUDA_R_16BF : CUDA_R_32F; /* bf16 output: the bf16 bias itself */
    if (cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB) != CUBLAS_STATUS_SUCCESS ||
        ((flags & kLtBias) &&
         (cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi) != CUBLAS_STATUS_SUCCESS ||
          cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bdt, sizeof bdt) !=
              CUBLAS_STATUS_SUCCESS)) ||
        cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, opA == CUBLAS_OP_T ? k : m, opA == CUBLAS_OP_T ? m : k, lda) !=
            CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, k, nn, k) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&p->c, dt, m, nn, m) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb) !=
            CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &alA, sizeof alA) !=
            CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &alB, sizeof alB) !=
            CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alC, sizeof alC) !=
            CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alC, sizeof alC) !=
            CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulAlgoGetHeuristic(ci->lt, p->op, p->a, p->b, p->c, p->c, pref, 8, res, &got) != CUBLAS_STATUS_SUCCESS ||
        got < 1) {
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
        return nullptr; /* p stays in the map with ok = false */
    }
    cublasLtMatmulPreferenceDestroy(pref);
    if ((flags & kLtBias) &&
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias) != CUBLAS_STATUS_SUCCESS)
        return nullptr;
    p->algo = res[0].algo;
    p->ok = true;
    if (beta1) {
        auto z = ci->lt_plans.find(std::make_tuple(m, nn, k, (int)opA, lda, 0, alk, flags));
        if (z != ci->lt_plans.end() && z->second->ok) p->algo = z->second->algo;
        return p;
    }
    if (ci->gemm_mode != 0 || cap || got < 2) return p;
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
        if (e0) cudaEventDestroy(e0);
        cudaGetLastError();
        return p;
    }
    const float one = 1.0f, zero = 0.0f;
    float best = INFINITY;
    for (int i = 0; i < got; i++) {
        if (cublasLtMatmul(ci->lt, p->op, &one, A, p->a, B, p->b, &zero, C, p->c, C, p->c, &res[i].algo, ci->lt_ws,
                           kLtWorkspace, ci->st) != CUBLAS_STATUS_SUCCESS)
            continue;
        cudaEventRecord(e0, ci->st);
        bool bad = false;
        for (int r = 0; r < 3 && !bad; r++)
            bad = cublasLtMatmul(ci->lt, p->op, &one, A, p->a, B, p->b, &zero, C, p->c, C, p->c, &res[i].algo, ci->lt_ws,
                                 kLtWorkspace, ci->st) != CUBLAS_STATUS_SUCCESS;
        cudaEventRecord(e1, ci->st);
        float ms = 0.f;
        if (bad || cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) {
            cudaGetLastError();
            continue;
        }
        if (ms < best) {
            best = ms;
            p->algo = res[i].algo;
        }
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return p;
}

/* y[nn rows, w->out] = X[nn, w->in] (bf16) W^T + beta y, W bf16 in either layout; y fp32, or bf16 with kLtBf16Out in
 * flags; with kLtBias also + bias32 ([w->out], fp32 for an fp32 y, bf16 for a bf16 y: added in fp32 before the
 * rounding) in the GEMM's epilogue, where *bias_done says whether it was (false: cuBLASLt offered no such plan, the
 * caller adds the bias).  bias_done may be null without kLtBias. */
dpb_status gemm_bf16x(cuda_impl *ci, const dpb_weight *w, const uint16_t *X, int nn, float beta, void *y, int flags,
                      const void *bias32, bool *bias_done)
{
    const int m = (int)w->out, k = (int)w->in;
    const float one = 1.0f;
    cublasOperation_t opA = w->transposed ? CUBLAS_OP_N : CUBLAS_OP_T;
    int lda = w->transposed ? m : k;
    if (bias_done) *bias_done = false;
    if (ci->gemm_mode != 2) {
        lt_plan *p = lt_plan_get(ci, opA, lda, m, nn, k, beta != 0.0f, w->data, X, y, flags, bias32);
        if (p && (flags & kLtBias) &&
            cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias32, sizeof bias32) !=
                CUBLAS_STATUS_SUCCESS)
            p = nullptr;
        if (p && cublasLtMatmul(ci->lt, p->op, &one, w->data, p->a, X, p->b, &beta, y, p->c, y, p->c, &p->algo, ci->lt_ws,
                                kLtWorkspace, ci->st) == CUBLAS_STATUS_SUCCESS) {
            if (bias_done) *bias_done = (flags & kLtBias) != 0;
            return DPB_OK;
        }
    }
    return berr(cublasGemmEx(ci->blas, opA, CUBLAS_OP_N, m, nn, k, &one, w->data, CUDA_R_16BF, lda, X, CUDA_R_16BF, k,
                             &beta, y, flags & kLtBf16Out ? CUDA_R_16BF : CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT),
                beta != 0.0f ? "gemm bf16 (remainder)" : "gemm bf16");
}
dpb_status gemm_bf16(cuda_impl *ci, const dpb_weight *w, const uint16_t *X, int nn, float beta, float *y)
{
    return gemm_bf16x(ci, w, X, nn, beta, y, 0, nullptr, nullptr);
}

/* x [el] (fp32) as bf16 operands: *hi = bf16(x) and, unless x is known to be bf16-exact, *lo = bf16(x - hi)
 * (else null): the bf16 copy a swiglu_bf16 left of exactly this buffer (taken once), or one conversion into
 * the workspace. */
dpb_status x_bf16(cuda_impl *ci, const float *x, int64_t el, uint16_t **hi, uint16_t **lo)
{
    const size_t bytes = (size_t)el * 4;
    const bool exact = is_rounded(ci, x, bytes);
    const bool stale = ci->nof32_of && ci->nof32_of == (uintptr_t)x;
    ci->nof32_of = 0;
    if (exact && ci->shadow_of == (uintptr_t)x && ci->shadow_bytes == bytes && !capturing(ci)) {
        ci->shadow_of = 0;
        *hi = ci->shadow;
        *lo = nullptr;
        return DPB_OK;
    }
    if (stale) /* the attention kept its rows as the bf16 copy only, which this call cannot take as it stands */
        return dpb_error_set(DPB_E_INTERNAL, "cuda linear: an attention output kept as bf16 only (attention_linear) is "
                                             "read other than by its linear on exactly its rows");
    void *ws;
    dpb_status s = ws_get(ci, al256((size_t)el * 2) * 2, &ws);
    if (s) return s;
    *hi = static_cast<uint16_t *>(ws);
    *lo = exact ? nullptr : *hi + al256((size_t)el * 2) / 2;
    k_split_bf16<<<grid_for((el + 3) / 4, 256), 256, 0, ci->st>>>(x, el, *hi, *lo);
    return launched("linear split");
}

/* Whether a GEMM of n rows with this bias adds it in cuBLASLt's epilogue (prefill sizes, bf16-exact x: one product;
 * outside graph captures, where the fp32 copy of the bias may have to be made). */
bool bias_epilogue(cuda_impl *ci, const uint16_t *bias, int64_t n)
{
    return bias && n > 8 && ci->gemm_mode != 2 && !(ci->dpf & kDpfNoBias) && !capturing(ci);
}

/* One GEMM of bf16-exact operand hi (no remainder) with the bias added in the epilogue where bias_epilogue allows;
 * *bias_done says whether it was. */
dpb_status gemm_hi_bias(cuda_impl *ci, const dpb_weight *w, const uint16_t *hi, int64_t n, const uint16_t *bias,
                        float *y, bool *bias_done)
{
    *bias_done = false;
    const float *b32 = nullptr;
    if (bias_epilogue(ci, bias, n)) {
        dpb_status s = bias_f32(ci, bias, w->out, &b32);
        if (s) return s;
    }
    if (!b32) return gemm_bf16(ci, w, hi, (int)n, 0.0f, y);
    return gemm_bf16x(ci, w, hi, (int)n, 0.0f, y, kLtBias, b32, bias_done);
}

dpb_status gemm(cuda_impl *ci, const dpb_weight *w, const float *x, int64_t n, float *y, const uint16_t *bias = nullptr,
                bool *bias_done = nullptr)
{
    if (bias_done) *bias_done = false;
    const int m = (int)w->out, k = (int)w->in, nn = (int)n;
    const float one = 1.0f, zero = 0.0f;
    if (w->fmt == DPB_W_F32) {
        cublasOperation_t opA = w->transposed ? CUBLAS_OP_N : CUBLAS_OP_T;
        int lda = w->transposed ? m : k;
        return berr(cublasGemmEx(ci->blas, opA, CUBLAS_OP_N, m, nn, k, &one, w->data, CUDA_R_32F, lda, x, CUDA_R_32F, k,
                                 &zero, y, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                    "sgemm");
    }
    /* bf16 weights: x as bf16; a second product with the remainder
     * x - bf16(x) unless x is known to be bf16-exact. */
    uint16_t *hi, *lo;
    dpb_status s = x_bf16(ci, x, n * k, &hi, &lo);
    if (s) return s;
    if (!lo && bias_done) return gemm_hi_bias(ci, w, hi, n, bias, y, bias_done);
    if ((s = gemm_bf16(ci, w, hi, nn, 0.0f, y))) return s;
    if (lo) s = gemm_bf16(ci, w, lo, nn, 1.0f, y);
    return s;
}

/* y[rows, cols] += bias (bf16, may be null), then rounded to bf16 when rnd; 4 columns per thread when aligned. */
__global__ void k_bias_round(float *__restrict__ y, const uint16_t *__restrict__ bias, int64_t rows, int64_t cols, int rnd)
{
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    if (cols % 4 == 0 && ((uintptr_t)y & 15) == 0) {
        const int64_t c4 = cols / 4, n4 = rows * c4;
        for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += step) {
            float4 v = reinterpret_cast<float4 *>(y)[i];
            if (bias) {
                const int64_t c = (i % c4) * 4;
                v.x += bf(bias[c]); v.y += bf(bias[c + 1]); v.z += bf(bias[c + 2]); v.w += bf(bias[c + 3]);
            }
            if (rnd) { v.x = rbf(v.x); v.y = rbf(v.y); v.z = rbf(v.z); v.w = rbf(v.w); }
            reinterpret_cast<float4 *>(y)[i] = v;
        }
        return;
    }
    const int64_t n = rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += step) {
        float v = y[i];
        if (bias) v += bf(bias[i % cols]);
        y[i] = rnd ? rbf(v) : v;
    }
}

dpb_status op_linear(dpb_backend *b, const dpb_weight *w, const uint16_t *bias, const float *x, int64_t n, float *y)
{
    cuda_impl *ci = impl_of(b);
    if (n <= 0) return DPB_OK;
    if (w->out < 1 || w->in < 1 || w->out > INT32_MAX || w->in > INT32_MAX || n > INT32_MAX)
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda linear: shape [%lld, %lld] x %lld rows", (long long)w->out,
                             (long long)w->in, (long long)n);
    dirty(ci, y, (size_t)(n * w->out) * 4);
    dpb_status s;
    if (w->fmt == DPB_W_MXFP4) {
        if (w->in % 32)
            return dpb_error_set(DPB_E_UNSUPPORTED, "linear: MXFP4 input size %lld is not a multiple of 32", (long long)w->in);
        dim3 g((unsigned)((w->out + 3) / 4), (unsigned)((n + 7) / 8));
        k_linear_mxfp4<<<g, 128, 0, ci->st>>>(static_cast<const uint8_t *>(w->data), w->scales, bias, x, n, w->out, w->in, y);
        return launched("linear mxfp4");
    }
    if (w->fmt == DPB_W_BF16 && !w->transposed && n <= 4 && w->in % 8 == 0 && al16(w->data) && al16(x)) {
        if (ci->nof32_of && ci->nof32_of == (uintptr_t)x)
            return dpb_error_set(DPB_E_INTERNAL, "cuda linear: an attention output kept as bf16 only (attention_linear) "
                                                 "is read by a GEMV");
        const float *b32;
        if ((s = bias_f32(ci, bias, w->out, &b32))) return s;
        return dpb_cuda_gemv_bf16(static_cast<const uint16_t *>(w->data), b32, x, 0, y, (int)n, (int)w->out, (int)w->in,
                                  DPB_GEMV_AUTO, ci->st);
    }
    bool bdone = false;
    if ((s = gemm(ci, w, x, n, y, bias, &bdone))) return s;
    if (bias && !bdone) {
        k_bias_round<<<grid_for((n * w->out + 3) / 4, 256), 256, 0, ci->st>>>(y, bias, n, w->out, 0);
        return launched("linear bias");
    }
    return DPB_OK;
}

dpb_status op_round_bf16(dpb_backend *b, float *x, int64_t n);

/* linear_multi for many rows: one bf16 conversion of x, then per matrix the GEMM(s), bias and rounding. */
dpb_status linear_multi_gemm(cuda_impl *ci, int nw, const dpb_weight *const *w, const uint16_t *const *bias,
                             const float *x, int64_t n, bool round, float *const *y)
{
    for (int i = 0; i < nw; i++) dirty(ci, y[i], (size_t)(n * w[i]->out) * 4);
    uint16_t *hi, *lo;
    dpb_status s = x_bf16(ci, x, n * w[0]->in, &hi, &lo);
    for (int i = 0; i < nw && !s; i++) {
        const uint16_t *bi = bias ? bias[i] : nullptr;
        if (!lo && !round && bi) {
            /* the bias in the GEMM's epilogue where cuBLASLt offers it */
            bool bdone = false;
            if ((s = gemm_hi_bias(ci, w[i], hi, n, bi, y[i], &bdone))) break;
            if (bdone) continue;
        } else if ((s = gemm_bf16(ci, w[i], hi, (int)n, 0.0f, y[i]))) break;
        if (lo && (s = gemm_bf16(ci, w[i], lo, (int)n, 1.0f, y[i]))) break;
        if (bi || round) {
            k_bias_round<<<grid_for((n * w[i]->out + 3) / 4, 256), 256, 0, ci->st>>>(y[i], bi, n, w[i]->out, round ? 1 : 0);
            s = launched("linear_multi bias");
        }
    }
    if (!s && round)
        for (int i = 0; i < nw; i++) {
            if (ci->rounded.size() >= 16) ci->rounded.erase(ci->rounded.begin());
            ci->rounded.push_back({(uintptr_t)y[i], (uintptr_t)y[i] + (size_t)(n * w[i]->out) * 4});
        }
    return s;
}

dpb_status op_linear_multi(dpb_backend *b, int nw, const dpb_weight *const *w, const uint16_t *const *bias,
                           const float *x, int64_t n, bool round, float *const *y)
{
    cuda_impl *ci = impl_of(b);
    if (nw < 1 || nw > DPB_CUDA_GEMV_MAX_SEGS)
        return dpb_error_set(DPB_E_ARG, "cuda linear: %d matrices in one call (1..%d)", nw, DPB_CUDA_GEMV_MAX_SEGS);
    if (n <= 0) return DPB_OK;
    bool one = ci->lmulti != 2 && n <= 4 && al16(x) && w[0]->in % 8 == 0 && w[0]->in <= INT32_MAX;
    for (int i = 0; i < nw && one; i++)
        one = w[i]->fmt == DPB_W_BF16 && !w[i]->transposed && w[i]->in == w[0]->in && w[i]->out >= 1 &&
              w[i]->out <= INT32_MAX / 4 && al16(w[i]->data);
    if (!one && n > 4 && ci->lmulti != 2 && n <= INT32_MAX && w[0]->in <= INT32_MAX) {
        /* prefill-sized: x converted to bf16 once for the nw GEMMs (the calls one by one convert it nw times) */
        bool gm = true;
        for (int i = 0; i < nw && gm; i++)
            gm = w[i]->fmt == DPB_W_BF16 && w[i]->in == w[0]->in && w[i]->out >= 1 && w[i]->out <= INT32_MAX;
        if (gm) return linear_multi_gemm(ci, nw, w, bias, x, n, round, y);
    }
    if (!one) /* dpb_backend_linear_multi then runs them one by one */
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda linear_multi: not one bf16 GEMV launch (n %lld)", (long long)n);
    const uint16_t *W[DPB_CUDA_GEMV_MAX_SEGS];
    const float *b32[DPB_CUDA_GEMV_MAX_SEGS];
    int N[DPB_CUDA_GEMV_MAX_SEGS];
    for (int i = 0; i < nw; i++) {
        dpb_status s = bias_f32(ci, bias ? bias[i] : nullptr, w[i]->out, &b32[i]);
        if (s) return s;
        W[i] = static_cast<const uint16_t *>(w[i]->data);
        N[i] = (int)w[i]->out;
        dirty(ci, y[i], (size_t)(n * w[i]->out) * 4);
    }
    dpb_status s = DPB_OK;
    if (ci->lmulti == 1)
        for (int i = 0; i < nw && !s; i++)
            s = dpb_cuda_gemv_bf16_multi(1, W + i, b32 + i, y + i, N + i, x, 0, (int)n, (int)w[0]->in, round ? 1 : 0,
                                         DPB_GEMV_AUTO, ci->st);
    else
        s = dpb_cuda_gemv_bf16_multi(nw, W, b32, y, N, x, 0, (int)n, (int)w[0]->in, round ? 1 : 0, DPB_GEMV_AUTO,
                                     ci->st);
    if (!s && round)
        for (int i = 0; i < nw; i++) {
            if (ci->rounded.size() >= 16) ci->rounded.erase(ci->rounded.begin());
            ci->rounded.push_back({(uintptr_t)y[i], (uintptr_t)y[i] + (size_t)(n * w[i]->out) * 4});
        }
    return s;
}

dpb_status op_rmsnorm(dpb_backend *b, const float *x, const uint16_t *w, int64_t n, int64_t dim, float eps, float *y)
{
    cuda_impl *ci = impl_of(b);
    if (n <= 0) return DPB_OK;
    dirty(ci, y, (size_t)(n * dim) * 4);
    if (n <= INT32_MAX && norm4_ok(dim, x, x, y, w)) {
        cudaError_t e = pdl_launch(ci->pdl, k_norm4<false>, dim3((unsigned)n), dim3(norm4_threads(dim)), 0, ci->st,
                                   const_cast<float *>(x), (const float *)nullptr, w, (int)dim, eps, 0, y,
                                   (uint16_t *)nullptr);
        if (e != cudaSuccess) return cerr(e, "rmsnorm");
    } else {
        int th = dim >= 1024 ? 1024 : (int)((dim + 31) / 32 * 32);
        k_rmsnorm<<<(unsigned)n, th, 0, ci->st>>>(x, w, dim, eps, y);
    }
    return launched("rmsnorm");
}

dpb_status op_rope(dpb_backend *b, float *x, int64_t n, int64_t heads, const int64_t *pos, const dpb_rope_table *rt)
{
    cuda_impl *ci = impl_of(b);
    if (n <= 0) return DPB_OK;
    if (rt->head_dim < 2 || rt->head_dim / 2 > DPB_ROPE_MAX_HALF)
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda rope: head_dim %lld", (long long)rt->head_dim);
    dirty(ci, x, (size_t)(n * heads * rt->head_dim) * 4);
    rope_args ra;
    ra.head_dim = rt->head_dim;
    ra.scaling = rt->attention_scaling;
    memcpy(ra.inv_freq, rt->inv_freq, sizeof ra.inv_freq);
    int64_t half = rt->head_dim / 2;
    int th = half >= 256 ? 256 : (int)((half + 31) / 32 * 32);
    k_rope<<<(unsigned)n, th, 0, ci->st>>>(x, heads, pos, ra);
    return launched("rope");
}

/* FP8 rows -> bf16 for the tensor-core prefill: positions j0 .. j0 + cnt - 1 of src (row j in slot j % ssrc)
 * into dst (slot j % sdst); rows of row elements.  Exact: every E4M3 value is a bf16 value. */
__global__ void k_fp8_rows_bf16(const uint8_t *__restrict__ src, int64_t ssrc, uint16_t *__restrict__ dst, int64_t sdst,
                                int64_t j0, int64_t cnt, int64_t row)
{
    const int64_t total = cnt * row;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t j = j0 + i / row, e = i % row;
        dst[(j % sdst) * row + e] = to_bf(kvf<uint8_t>(src[(j % ssrc) * row + e]));
    }
}

void shadow_set(cuda_impl *ci, const void *p, size_t bytes);
dpb_status shadow_get(cuda_impl *ci, size_t el, uint16_t **sh);

/* The tensor-core prefill with FP8 KV: the cache range the chunk reads (keys max(0, pos0 - window + 1) ..
 * pos0 - 1) and its new rows are converted to bf16 in scratch (a ring of exactly those keys), then the bf16
 * kernel runs on them.  Costs one read of those fp8 rows and a write + read of twice their bytes. */
dpb_status attention_prefill_fp8(cuda_impl *ci, const dpb_attn_args *a, bool rnd, uint16_t *sh, bool b16)
{
    const int64_t row = a->kv_heads * a->head_dim;
    int64_t lo = a->window > 0 && a->pos0 - a->window + 1 > 0 ? a->pos0 - a->window + 1 : 0;
    if (a->pos0 - lo > a->slots) lo = a->pos0 - a->slots;
    const int64_t cnt = a->pos0 - lo, sd = cnt > 0 ? cnt : 1;
    const size_t cb = al256((size_t)(sd * row) * 2), nb = al256((size_t)(a->n * row) * 2);
    void *ws;
    dpb_status s = ws_get(ci, 2 * cb + 2 * nb, &ws);
    if (s) return s;
    uint16_t *kc = static_cast<uint16_t *>(ws), *vc = kc + cb / 2, *kn = vc + cb / 2, *vn = kn + nb / 2;
    if (cnt > 0) {
        k_fp8_rows_bf16<<<grid_for(cnt * row, 256), 256, 0, ci->st>>>(static_cast<const uint8_t *>(a->k_cache), a->slots,
                                                                      kc, sd, lo, cnt, row);
        k_fp8_rows_bf16<<<grid_for(cnt * row, 256), 256, 0, ci->st>>>(static_cast<const uint8_t *>(a->v_cache), a->slots,
                                                                      vc, sd, lo, cnt, row);
    }
    k_fp8_rows_bf16<<<grid_for(a->n * row, 256), 256, 0, ci->st>>>(static_cast<const uint8_t *>(a->k_new), a->n, kn,
                                                                   a->n, 0, a->n, row);
    k_fp8_rows_bf16<<<grid_for(a->n * row, 256), 256, 0, ci->st>>>(static_cast<const uint8_t *>(a->v_new), a->n, vn,
                                                                   a->n, 0, a->n, row);
    if ((s = launched("attention (fp8 -> bf16)"))) return s;
    dpb_attn_args b = *a;
    b.kv_dtype = DPB_KV_BF16;
    b.k_cache = kc;
    b.v_cache = vc;
    b.slots = sd;
    b.k_new = kn;
    b.v_new = vn;
    return dpb_attn_prefill_launch_bf16(&b, DPB_ATTN_PREFILL_AUTO, rnd, sh, b16, ci->st);
}

/* The attention's output rounded to bf16 when the caller asks (round_out): the flash-decoding kernel rounds as it
 * writes (*rounded set), the other paths by k_round afterwards (attention_rounded). */
dpb_status attention_body(dpb_backend *b, const dpb_attn_args *a, bool *rounded)
{
    cuda_impl *ci = impl_of(b);
    if (a->n <= 0) return DPB_OK;
    if (a->head_dim < 1 || a->head_dim > 32 * kMaxDpl || a->kv_heads < 1 || a->heads % a->kv_heads || a->slots < 1)
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda attention: heads %lld / kv %lld, head_dim %lld (<= 256)",
                             (long long)a->heads, (long long)a->kv_heads, (long long)a->head_dim);
    if (a->kv_dtype != DPB_KV_BF16 && a->kv_dtype != DPB_KV_F32 && a->kv_dtype != DPB_KV_FP8)
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda attention: kv dtype %d", (int)a->kv_dtype);
    dirty(ci, a->out, (size_t)(a->n * a->heads * a->head_dim) * 4);
    attn_p P;
    P.n = a->n; P.pos0 = a->pos0; P.heads = a->heads; P.kv_heads = a->kv_heads; P.hd = a->head_dim;
    P.slots = a->slots; P.window = a->window; P.q = a->q; P.k_new = a->k_new; P.v_new = a->v_new;
    P.kc = a->k_cache; P.vc = a->v_cache; P.sinks = a->sinks; P.scale = a->scale; P.out = a->out; P.part = nullptr;
    P.nsplit = 1;
    P.posd = nullptr;
    /* prefill on the tensor cores (attn_prefill.cu): bf16 KV (fp8 through a bf16 copy), head_dim 64 / 128, q
     * bf16-exact (the bf16 engine rounds it; an fp32 q keeps the fp32 kernels below, whose error is ~1e-6) */
    if (a->n > 1 && ci->prefill != kPrefillOld &&
        is_rounded(ci, a->q, (size_t)(a->n * a->heads * a->head_dim) * 4)) {
        dpb_attn_args c = *a;
        c.kv_dtype = DPB_KV_BF16;
        if (dpb_attn_prefill_supports(&c) && (a->kv_dtype == DPB_KV_FP8 || a->kv_dtype == DPB_KV_BF16)) {
            /* round_out: the kernel rounds as it writes, and for prefill-sized outputs also writes the bf16 side
             * copy the o projection's GEMM takes (no round_bf16 pass over the output) */
            const bool rnd = a->round_out && !(ci->pfd & kPfdNoAttnRound);
            const int64_t el = a->n * a->heads * a->head_dim;
            uint16_t *sh = nullptr;
            dpb_status s;
            if (rnd && el >= kSideCopyMin && !(ci->pf2 & kPf2NoCopy) && (s = shadow_get(ci, (size_t)el, &sh))) return s;
            /* attention_linear (the bf16 engine's prefill: only the o projection reads out): the bf16 copy only */
            const bool b16 = ci->attn_bf16_only && rnd && sh && a->n > 8 && !(ci->dpf & kDpfNoAttnF32); /* n > 8: GEMM */
            s = a->kv_dtype == DPB_KV_FP8 ? attention_prefill_fp8(ci, a, rnd, sh, b16)
                                          : dpb_attn_prefill_launch_bf16(a, DPB_ATTN_PREFILL_AUTO, rnd, sh, b16, ci->st);
            if (!s && rnd) {
                *rounded = true;
                if (sh) shadow_set(ci, a->out, (size_t)el * 4);
                if (b16) ci->nof32_of = (uintptr_t)a->out;
            }
            return s;
        }
    }
    const bool tiled = a->n > 1 && a->n <= INT32_MAX / 2 && a->heads <= 65535 &&
                       (ci->prefill == kPrefillNew || (ci->prefill == kPrefillAuto && a->n >= kAttnTiledMinRows));
    if (tiled && a->head_dim <= kThd) {
        dim3 g((unsigned)((a->n + kTq - 1) / kTq), (unsigned)a->heads);
        if (a->kv_dtype == DPB_KV_F32) k_attn_tiled<float><<<g, kTq * kTsub, 0, ci->st>>>(P);
        else if (a->kv_dtype == DPB_KV_FP8) k_attn_tiled<uint8_t><<<g, kTq * kTsub, 0, ci->st>>>(P);
        else k_attn_tiled<uint16_t><<<g, kTq * kTsub, 0, ci->st>>>(P);
        return launched("attention (tiled)");
    }
    if (tiled && a->head_dim <= 128) {
        dim3 g((unsigned)((a->n + kTq - 1) / kTq), (unsigned)a->heads);
        if (a->kv_dtype == DPB_KV_F32) k_attn_tiled_dsplit<float, 128, 32><<<g, kTq * 4, 0, ci->st>>>(P);
        else if (a->kv_dtype == DPB_KV_FP8) k_attn_tiled_dsplit<uint8_t, 128, 32><<<g, kTq * 4, 0, ci->st>>>(P);
        else k_attn_tiled_dsplit<uint16_t, 128, 32><<<g, kTq * 4, 0, ci->st>>>(P);
        return launched("attention (tiled, head_dim split)");
    }
    /* decode and short chunks: flash-decoding (attn_decode.cu), one block per (row, kv head, split) */
    if (!tiled && dpb_attn_decode_enabled() && (a->n == 1 || ci->prefill != kPrefillOld)) {
        dpb_attn_decode_args d;
        memset(&d, 0, sizeof d);
        d.n = a->n; d.heads = a->heads; d.kv_heads = a->kv_heads; d.head_dim = a->head_dim; d.slots = a->slots;
        d.window = a->window; d.kv_dtype = a->kv_dtype; d.q = a->q; d.k_new = a->k_new; d.v_new = a->v_new;
        d.k_cache = a->k_cache; d.v_cache = a->v_cache; d.pos0 = a->pos0; d.pos_dev = a->pos_dev; d.sinks = a->sinks;
        d.scale = a->scale; d.out = a->out; d.sms = ci->sms; d.round_out = a->round_out;
        if (a->pos_dev) {
            /* the position is read on the device (a graph replays this launch at later steps): splits sized for
             * the most keys the layer can see */
            d.cap = a->window > 0 && a->window < a->slots ? a->window : a->slots;
        } else {
            const int64_t p = a->pos0 + a->n - 1;
            d.cap = a->window > 0 && a->window < p + 1 ? a->window : p + 1;
        }
        if (dpb_attn_decode_supports(&d)) return attn_decode_run(ci, &d, rounded);
    }
    if (a->n == 1 && a->pos_dev) {
        /* the position is read on the device (a graph replays this launch at later
         * steps): splits of >= 64 keys sized for the most keys the layer can see */
        int64_t cap = a->window > 0 && a->window < a->slots ? a->window : a->slots, ns = (cap + 63) / 64;
        P.nsplit = (int)(ns < 1 ? 1 : ns > 64 ? 64 : ns);
        P.posd = a->pos_dev;
    } else if (a->n == 1) {
        int64_t p = a->pos0, lo = a->window > 0 && p - a->window + 1 > 0 ? p - a->window + 1 : 0;
        int64_t nk = p - lo + 1, ns = (nk + 63) / 64;
        P.nsplit = (int)(ns < 1 ? 1 : ns > 64 ? 64 : ns);
    } else if (a->pos_dev) {
        P.posd = a->pos_dev;
    }
    if (P.nsplit > 1) {
        void *ws;
        dpb_status s = ws_get(ci, (size_t)(a->n * a->heads * P.nsplit * (a->head_dim + 2)) * 4, &ws);
        if (s) return s;
        P.part = static_cast<float *>(ws);
    }
    dim3 g((unsigned)(a->n * a->heads), (unsigned)P.nsplit);
    size_t shm = (size_t)kAttnW * (size_t)a->head_dim * 4;
    if (a->kv_dtype == DPB_KV_F32) k_attn<float><<<g, kAttnW * kWarp, shm, ci->st>>>(P);
    else if (a->kv_dtype == DPB_KV_FP8) k_attn<uint8_t><<<g, kAttnW * kWarp, shm, ci->st>>>(P);
    else k_attn<uint16_t><<<g, kAttnW * kWarp, shm, ci->st>>>(P);
    dpb_status s = launched("attention");
    if (s || P.nsplit == 1) return s;
    k_attn_combine<<<(unsigned)(a->n * a->heads), 64, 0, ci->st>>>(P);
    return launched("attention combine");
}

/* Block (row r, K or V): row first + r of the new rows into slot (pos0 + first + r) % slots. */
__global__ void k_kv_rows(uint4 *kc, uint4 *vc, int64_t slots, int64_t w, const uint4 *__restrict__ kn,
                          const uint4 *__restrict__ vn, int64_t pos0, int64_t first, const int64_t *__restrict__ posd)
{
    if (posd) pos0 = posd[0];
    const int64_t t = first + blockIdx.x;
    const int64_t slot = (pos0 + t) % slots;
    uint4 *dst = (blockIdx.y ? vc : kc) + slot * w;
    const uint4 *src = (blockIdx.y ? vn : kn) + t * w;
    for (int64_t i = threadIdx.x; i < w; i += blockDim.x) dst[i] = src[i];
}

dpb_status op_kv_write(dpb_backend *b, void *k_cache, void *v_cache, int64_t slots, int64_t row_elems, dpb_kv_dtype dt,
                       const void *k_new, const void *v_new, int64_t n, int64_t pos0)
{
    cuda_impl *ci = impl_of(b);
    if (n <= 0) return DPB_OK;
    size_t rb = (size_t)row_elems * dpb_kv_dtype_size(dt);
    dirty(ci, k_cache, (size_t)slots * rb);
    dirty(ci, v_cache, (size_t)slots * rb);
    int64_t t = n > slots ? n - slots : 0;
    if (n - t <= 16 && rb % 16 == 0 && al16(k_cache) && al16(v_cache) && al16(k_new) && al16(v_new)) {
        /* decode: one launch for K and V instead of up to four copies */
        int64_t w = (int64_t)(rb / 16);
        dim3 g((unsigned)(n - t), 2);
        k_kv_rows<<<g, w < 256 ? (unsigned)((w + 31) / 32 * 32) : 256u, 0, ci->st>>>(
            static_cast<uint4 *>(k_cache), static_cast<uint4 *>(v_cache), slots, w, static_cast<const uint4 *>(k_new),
            static_cast<const uint4 *>(v_new), pos0, t, nullptr);
        return launched("kv_write");
    }
    while (t < n) {
        int64_t s0 = (pos0 + t) % slots, run = n - t;
        if (run > slots - s0) run = slots - s0;
        for (int kv = 0; kv < 2; kv++) {
            char *dst = static_cast<char *>(kv ? v_cache : k_cache) + (size_t)s0 * rb;
            const char *src = static_cast<const char *>(kv ? v_new : k_new) + (size_t)t * rb;
            cudaError_t e = cudaMemcpyAsync(dst, src, (size_t)run * rb, cudaMemcpyDeviceToDevice, ci->st);
            if (e != cudaSuccess) return cerr(e, "kv_write");
        }
        t += run;
    }
    return DPB_OK;
}

/* kv_write with the position read on the device: n rows (n <= slots), one launch. */
__global__ void k_kv_rows_any(char *kc, char *vc, int64_t slots, int64_t rb, const char *__restrict__ kn,
                              const char *__restrict__ vn, int64_t first, const int64_t *__restrict__ posd)
{
    const int64_t t = first + blockIdx.x, slot = (posd[0] + t) % slots;
    char *dst = (blockIdx.y ? vc : kc) + slot * rb;
    const char *src = (blockIdx.y ? vn : kn) + t * rb;
    for (int64_t i = threadIdx.x; i < rb; i += blockDim.x) dst[i] = src[i];
}

dpb_status op_kv_write_at(dpb_backend *b, void *k_cache, void *v_cache, int64_t slots, int64_t row_elems,
                          dpb_kv_dtype dt, const void *k_new, const void *v_new, int64_t n, const int64_t *pos_dev)
{
    cuda_impl *ci = impl_of(b);
    if (n <= 0) return DPB_OK;
    if (n > INT32_MAX) return dpb_error_set(DPB_E_UNSUPPORTED, "cuda kv_write_at: %lld rows", (long long)n);
    size_t rb = (size_t)row_elems * dpb_kv_dtype_size(dt);
    dirty(ci, k_cache, (size_t)slots * rb);
    dirty(ci, v_cache, (size_t)slots * rb);
    const int64_t t0 = n > slots ? n - slots : 0; /* a ring keeps only the last slots rows */
    dim3 g((unsigned)(n - t0), 2);
    if (rb % 16 == 0 && al16(k_cache) && al16(v_cache) && al16(k_new) && al16(v_new)) {
        int64_t w = (int64_t)(rb / 16);
        k_kv_rows<<<g, w < 256 ? (unsigned)((w + 31) / 32 * 32) : 256u, 0, ci->st>>>(
            static_cast<uint4 *>(k_cache), static_cast<uint4 *>(v_cache), slots, w, static_cast<const uint4 *>(k_new),
            static_cast<const uint4 *>(v_new), 0, t0, pos_dev);
    } else
        k_kv_rows_any<<<g, 256, 0, ci->st>>>(static_cast<char *>(k_cache), static_cast<char *>(v_cache), slots,
                                             (int64_t)rb, static_cast<const char *>(k_new),
                                             static_cast<const char *>(v_new), t0, pos_dev);
    return launched("kv_write_at");
}

dpb_status op_to_kv(dpb_backend *b, const float *src, int64_t n, dpb_kv_dtype dt, void *dst)
{
    cuda_impl *ci = impl_of(b);
    if (n <= 0) return DPB_OK;
    dirty(ci, dst, (size_t)n * dpb_kv_dtype_size(dt));
    if (dt == DPB_KV_F32) {
        if (dst == src) return DPB_OK;
        return cerr(cudaMemcpyAsync(dst, src, (size_t)n * 4, cudaMemcpyDeviceToDevice, ci->st), "to_kv");
    }
    if (dt == DPB_KV_FP8) {
        k_to_fp8<<<grid_for(n, 256), 256, 0, ci->st>>>(src, n, static_cast<uint8_t *>(dst));
        return launched("to_kv");
    }
    k_to_bf16<<<grid_for(n, 256), 256, 0, ci->st>>>(src, n, static_cast<uint16_t *>(dst));
    return launched("to_kv");
}

dpb_status op_router_topk(dpb_backend *b, const float *logits, int64_t n, int64_t E, int64_t k, int32_t *idx, float *wts)
{
    cuda_impl *ci = impl_of(b);
    if (k > 2 * kWarp || k > E || k < 1 || E > kRouterMaxE)
        return dpb_error_set(DPB_E_RANGE, "router: top-k %lld of %lld experts", (long long)k, (long long)E);
    if (n <= 0) return DPB_OK;
    dirty(ci, idx, (size_t)(n * k) * 4);
    dirty(ci, wts, (size_t)(n * k) * 4);
    const int64_t blocks = (n + kRouterWarps - 1) / kRouterWarps;
    if (blocks > INT32_MAX) return dpb_error_set(DPB_E_RANGE, "router: %lld rows", (long long)n);
    k_router_topk<<<(unsigned)blocks, kRouterWarps * kWarp, 0, ci->st>>>(logits, n, (int)E, (int)k, idx, wts);
    return launched("router");
}

/* linear + [round_bf16] + router_topk in one launch where the linear would be one splitK8 GEMV launch (bf16 rows,
 * E < 256 experts, n <= 4 rows, 16-byte aligned); DPB_E_UNSUPPORTED otherwise (the caller makes the three calls). */
dpb_status op_router(dpb_backend *b, const dpb_weight *w, const uint16_t *bias, const float *x, int64_t n, int64_t k,
                     bool round, float *logits, int32_t *idx, float *wts)
{
    cuda_impl *ci = impl_of(b);
    const int64_t E = w->out;
    if ((ci->unfused & 1) || n < 1 || n > kRouterFusedMaxRows || w->fmt != DPB_W_BF16 || w->transposed || E < 1 || E >= 256 ||
        k < 1 || k > 2 * kWarp || k > E || w->in < 8 || w->in % 8 || w->in > INT32_MAX || !al16(w->data) || !al16(x))
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda router: not fused for [%lld, %lld] x %lld rows, top-%lld",
                             (long long)E, (long long)w->in, (long long)n, (long long)k);
    dirty(ci, logits, (size_t)(n * E) * 4);
    dirty(ci, idx, (size_t)(n * k) * 4);
    dirty(ci, wts, (size_t)(n * k) * 4);
    const uint16_t *W = static_cast<const uint16_t *>(w->data);
    const int K = (int)w->in, r = round ? 1 : 0;
    const unsigned g = (unsigned)E, t = kRouterFusedWarps * kWarp;
    cudaError_t e;
    switch (n) {
    case 1: e = pdl_launch(ci->pdl, k_router_fused<1>, dim3(g), dim3(t), 0, ci->st, W, bias, x, K, (int)E, (int)k, r, logits, idx, wts); break;
    case 2: e = pdl_launch(ci->pdl, k_router_fused<2>, dim3(g), dim3(t), 0, ci->st, W, bias, x, K, (int)E, (int)k, r, logits, idx, wts); break;
    case 3: e = pdl_launch(ci->pdl, k_router_fused<3>, dim3(g), dim3(t), 0, ci->st, W, bias, x, K, (int)E, (int)k, r, logits, idx, wts); break;
    default: e = pdl_launch(ci->pdl, k_router_fused<4>, dim3(g), dim3(t), 0, ci->st, W, bias, x, K, (int)E, (int)k, r, logits, idx, wts); break;
    }
    dpb_status s = cerr(e, "router (fused)");
    if (!s && round) {
        if (ci->rounded.size() >= 16) ci->rounded.erase(ci->rounded.begin());
        ci->rounded.push_back({(uintptr_t)logits, (uintptr_t)logits + (size_t)(n * E) * 4});
    }
    return s;
}

/* Device tables of each expert's pointers for this layer (cached; uploaded
 * again only when the pointers change). */
dpb_status moe_tables(cuda_impl *ci, const dpb_moe_args *a, int64_t E, const uint8_t ***dev)
{
    std::vector<const void *> h((size_t)(4 * E));
    for (int64_t e = 0; e < E; e++) {
        h[(size_t)e] = a->gate_up[e].data;
        h[(size_t)(E + e)] = a->gate_up[e].scales;
        h[(size_t)(2 * E + e)] = a->down[e].data;
        h[(size_t)(3 * E + e)] = a->down[e].scales;
    }
    moe_table &t = ci->moe_tabs[a->gate_up];
    if (t.dev && t.host == h) {
        *dev = t.dev;
        return DPB_OK;
    }
    cudaError_t e = cudaStreamSynchronize(ci->st); /* the old table may still be in use */
    if (e != cudaSuccess) return cerr(e, "moe table");
    ci->epoch++; /* a graph may hold the old table's contents in use */
    if (t.dev && t.host.size() != h.size()) {
        cudaFree(t.dev);
        ci->workspace -= t.host.size() * sizeof(void *);
        t.dev = nullptr;
    }
    if (!t.dev) {
        if ((e = cudaMalloc(&t.dev, h.size() * sizeof(void *))) != cudaSuccess) return cerr(e, "moe table");
        ci->workspace += h.size() * sizeof(void *);
        note_peak(ci);
    }
    if ((e = cudaMemcpy(t.dev, h.data(), h.size() * sizeof(void *), cudaMemcpyHostToDevice)) != cudaSuccess)
        return cerr(e, "moe table upload");
    t.host = h;
    *dev = t.dev;
    return DPB_OK;
}

/* MXFP4 experts for prefill: sort the pairs by expert, then per used
 * expert dequantize its weights to bf16 and run cuBLAS (docs/CUDA.md,
 * "Backend").  The host waits once per call, for the per-expert counts. */
dpb_status moe_prefill(cuda_impl *ci, const dpb_moe_args *a, int64_t E, int64_t pairs)
{
    const int64_t n = a->n, H = a->hidden, I = a->inter, K = a->top_k;
    const bool x_exact = is_rounded(ci, a->x, (size_t)(n * H) * 4), rnd = a->round_bf16;
    const int64_t gu_rows = pairs < kMoeGuRows ? pairs : kMoeGuRows; /* GEMM rows per gate_up pass */
    size_t sz[9] = {al256((size_t)(E + 1) * 4),                     /* off */
                    al256((size_t)pairs * 4),                       /* perm */
                    al256((size_t)pairs * 4),                       /* inv */
                    al256((size_t)(pairs * H) * 2),                 /* x hi */
                    x_exact ? 0 : al256((size_t)(pairs * H) * 2),   /* x lo */
                    al256((size_t)(2 * I * H) * 2 + (size_t)(H * I) * 2), /* bf16 weights of one expert */
                    al256((size_t)(gu_rows * 2 * I) * 4),           /* gate_up output */
                    al256((size_t)(pairs * I) * 2) * (rnd ? 1 : 2), /* act hi (+ lo) */
                    al256((size_t)(pairs * H) * 4)};                /* down output */
    size_t total = 0;
    for (size_t v : sz) total += v;
    void *ws;
    dpb_status s = ws_get(ci, total, &ws);
    if (s) return s;
    char *w8 = static_cast<char *>(ws);
    char *part[9];
    for (int i = 0; i < 9; i++) {
        part[i] = w8;
        w8 += sz[i];
    }
    int32_t *off = reinterpret_cast<int32_t *>(part[0]), *perm = reinterpret_cast<int32_t *>(part[1]),
            *inv = reinterpret_cast<int32_t *>(part[2]);
    uint16_t *xh = reinterpret_cast<uint16_t *>(part[3]), *xl = x_exact ? nullptr : reinterpret_cast<uint16_t *>(part[4]);
    uint16_t *wg = reinterpret_cast<uint16_t *>(part[5]), *wd = wg + 2 * I * H;
    float *GU = reinterpret_cast<float *>(part[6]);
    uint16_t *ah = reinterpret_cast<uint16_t *>(part[7]), *al = rnd ? nullptr : ah + al256((size_t)(pairs * I) * 2) / 2;
    float *DN = reinterpret_cast<float *>(part[8]);
    cudaError_t ce = cudaMemsetAsync(inv, 0xff, (size_t)pairs * 4, ci->st);
    if (ce != cudaSuccess) return cerr(ce, "moe prefill");
    k_moe_group<<<1, 1024, 0, ci->st>>>(a->idx, pairs, (int)E, off, perm);
    if ((s = launched("moe prefill sort"))) return s;
    std::vector<int32_t> hoff((size_t)(E + 1));
    if ((ce = cudaMemcpyAsync(hoff.data(), off, (size_t)(E + 1) * 4, cudaMemcpyDeviceToHost, ci->st)) != cudaSuccess ||
        (ce = cudaStreamSynchronize(ci->st)) != cudaSuccess)
        return cerr(ce, "moe prefill counts");
    const int64_t rows = hoff[(size_t)E];
    if (rows < 0 || rows > pairs) return dpb_error_set(DPB_E_INTERNAL, "cuda moe prefill: sorted %lld of %lld pairs", (long long)rows, (long long)pairs);
    if (rows > 0) {
        k_pf_gather<<<grid_for(rows * H, 256), 256, 0, ci->st>>>(a->x, perm, rows, H, K, xh, xl, inv);
        if ((s = launched("moe prefill gather"))) return s;
    }
    const float one = 1.0f, zero = 0.0f;
    const int64_t gn8 = 2 * I * H / 8, dn8 = H * I / 8;
    for (int64_t e = 0; e < E; e++) {
        const int64_t r0 = hoff[(size_t)e], c = hoff[(size_t)e + 1] - r0;
        if (c <= 0) continue;
        k_dequant_mxfp4x2<<<grid_for(gn8 + dn8, 256), 256, 0, ci->st>>>(
            static_cast<const uint8_t *>(a->gate_up[e].data), a->gate_up[e].scales, gn8, reinterpret_cast<uint4 *>(wg),
            static_cast<const uint8_t *>(a->down[e].data), a->down[e].scales, dn8, reinterpret_cast<uint4 *>(wd));
        if ((s = launched("moe prefill dequant"))) return s;
        for (int64_t g0 = 0; g0 < c; g0 += gu_rows) {
            const int64_t m = c - g0 < gu_rows ? c - g0 : gu_rows, r = r0 + g0;
            /* GU[m, 2I] = x rows . Wg^T  (column-major: C[2I, m] = Wg^T[2I, H] x X[H, m]) */
            if ((s = berr(cublasGemmEx(ci->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)(2 * I), (int)m, (int)H, &one, wg,
                                       CUDA_R_16BF, (int)H, xh + r * H, CUDA_R_16BF, (int)H, &zero, GU, CUDA_R_32F,
                                       (int)(2 * I), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                          "moe prefill gate_up")))
                return s;
            if (xl && (s = berr(cublasGemmEx(ci->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)(2 * I), (int)m, (int)H, &one, wg,
                                             CUDA_R_16BF, (int)H, xl + r * H, CUDA_R_16BF, (int)H, &one, GU, CUDA_R_32F,
                                             (int)(2 * I), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                                "moe prefill gate_up (remainder)")))
                return s;
            k_pf_swiglu<<<grid_for(m * I, 256), 256, 0, ci->st>>>(GU, a->gate_up_bias + e * 2 * I, m, I, a->limit,
                                                                  a->alpha, rnd, ah + r * I, al ? al + r * I : nullptr);
            if ((s = launched("moe prefill swiglu"))) return s;
        }
        /* DN[c, H] = act rows . Wd^T */
        if ((s = berr(cublasGemmEx(ci->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)H, (int)c, (int)I, &one, wd, CUDA_R_16BF,
                                   (int)I, ah + r0 * I, CUDA_R_16BF, (int)I, &zero, DN + r0 * H, CUDA_R_32F, (int)H,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                      "moe prefill down")))
            return s;
        if (al && (s = berr(cublasGemmEx(ci->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)H, (int)c, (int)I, &one, wd, CUDA_R_16BF,
                                         (int)I, al + r0 * I, CUDA_R_16BF, (int)I, &one, DN + r0 * H, CUDA_R_32F, (int)H,
                                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                            "moe prefill down (remainder)")))
            return s;
    }
    k_pf_combine<<<grid_for(n * H, 256), 256, 0, ci->st>>>(DN, inv, a->idx, a->wts, a->down_bias, n, H, K, rnd, a->out);
    return launched("moe prefill combine");
}

dpb_status op_moe(dpb_backend *b, const dpb_moe_args *a)
{
    cuda_impl *ci = impl_of(b);
    const int64_t n = a->n, H = a->hidden, I = a->inter, K = a->top_k;
    if (n <= 0) return DPB_OK;
    if (H < 1 || I < 1 || K < 1 || K > 64)
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda moe: hidden %lld, inter %lld, top_k %lld", (long long)H,
                             (long long)I, (long long)K);
    /* The number of experts: gate_up_bias is [E, 2I] in its own allocation
     * (as the engine maps it). */
    size_t after = bytes_after(ci, a->gate_up_bias);
    int64_t E = (int64_t)(after / (size_t)(2 * I * 2));
    if (E < K || E > 1024)
        return dpb_error_set(DPB_E_ARG, "cuda moe: gate_up_bias must be a [E, 2*inter] bf16 buffer of its own "
                                        "(found room for %lld experts, top_k %lld)", (long long)E, (long long)K);
    const dpb_weight *g0 = &a->gate_up[0], *d0 = &a->down[0];
    for (int64_t e = 0; e < E; e++) {
        const dpb_weight *g = &a->gate_up[e], *d = &a->down[e];
        if (g->fmt != g0->fmt || d->fmt != d0->fmt || g->transposed != g0->transposed || d->transposed != d0->transposed ||
            g->out != 2 * I || g->in != H || d->out != H || d->in != I)
            return dpb_error_set(DPB_E_ARG, "cuda moe: expert %lld differs in format or shape from expert 0", (long long)e);
    }
    dirty(ci, a->out, (size_t)(n * H) * 4);
    const uint8_t **tab;
    dpb_status s = moe_tables(ci, a, E, &tab);
    if (s) return s;
    const bool fused = g0->fmt == DPB_W_MXFP4 && d0->fmt == DPB_W_MXFP4 && H % 32 == 0 && I % 32 == 0 && K <= 8 &&
                       al16(a->x) && H <= INT32_MAX && I <= INT32_MAX;
    void *ws;
    /* grouped MXFP4 kernels (decode_kernels.cu): from kMoeGroupedMinRows rows
     * (every n > 8 with DPB_CUDA_MOE_GROUPED=on), unless a path is forced.  Their tensor-core operands are f16
     * activations, so in auto they serve the bf16 engine only (round_bf16); the f32 engine keeps fp32-level experts
     * as the CPU reference computes them: kernels A/B, 8 rows at a time (moe_prefill's bf16 hi + lo operands only
     * where DPB_CUDA_PREFILL=new forces it). */
    if (fused && n > 8 && n * K <= (1 << 20) && H <= 4096 && I <= 4096 && al16(a->out) &&
        (ci->moe_grouped > 0 ||
         (ci->moe_grouped == 0 && ci->prefill == kPrefillAuto && n >= kMoeGroupedMinRows && a->round_bf16))) {
        size_t need = 0;
        if ((s = dpb_cuda_moe_grouped_work_bytes((int)n, (int)K, (int)E, (int)H, (int)I, ci->moe_tile, &need))) return s;
        if ((s = ws_get(ci, need, &ws))) return s;
        return dpb_cuda_moe_grouped(tab, nullptr, nullptr, nullptr, nullptr, a->gate_up_bias, a->down_bias, a->x, a->idx,
                                    a->wts, a->out, (int)n, (int)K, (int)E, (int)H, (int)I, a->alpha, a->limit,
                                    a->round_bf16, ci->moe_tile, ws, need, ci->st);
    }
    if (fused && n > 8 && n * K <= INT32_MAX &&
        (ci->prefill == kPrefillNew || (ci->prefill == kPrefillAuto && n >= kMoeDequantMinRows && a->round_bf16)))
        return moe_prefill(ci, a, E, n * K);
    if (fused) {
        /* kernels A and B of decode_kernels.cu, 8 tokens at a time */
        if ((s = ws_get(ci, (size_t)(8 * K * I) * 4, &ws))) return s;
        float *act = static_cast<float *>(ws);
        if (ci->zeros_n < (size_t)(8 * H)) {
            /* kernel B adds a residual: give it zeros (allocated once) */
            cudaError_t e = cudaStreamSynchronize(ci->st);
            if (ci->zeros) {
                ci->epoch++;
                cudaFree(ci->zeros);
                ci->workspace -= ci->zeros_n * 4;
                ci->zeros = nullptr;
                ci->zeros_n = 0;
            }
            if (e == cudaSuccess) e = cudaMalloc(&ci->zeros, (size_t)(8 * H) * 4);
            if (e == cudaSuccess) e = cudaMemset(ci->zeros, 0, (size_t)(8 * H) * 4);
            if (e != cudaSuccess) return cerr(e, "moe zeros");
            ci->zeros_n = (size_t)(8 * H);
            ci->workspace += ci->zeros_n * 4;
            note_peak(ci);
        }
        for (int64_t t0 = 0; t0 < n; t0 += 8) {
            int M = (int)(n - t0 < 8 ? n - t0 : 8);
            float *o = a->out + t0 * H;
            if ((s = dpb_cuda_moe_gate_up_swiglu_ex(nullptr, nullptr, tab, tab + E, a->gate_up_bias, a->x + t0 * H,
                                                    a->idx + t0 * K, act, M, (int)K, (int)E, (int)H, (int)I, a->alpha,
                                                    a->limit, a->round_bf16, ci->moe_variant, ci->st)))
                return s;
            if ((s = dpb_cuda_moe_down_sum_ex(nullptr, nullptr, tab + 2 * E, tab + 3 * E, a->down_bias, act,
                                              a->idx + t0 * K, a->wts + t0 * K, ci->zeros, o, M, (int)K, (int)E, (int)H,
                                              (int)I, a->round_bf16, ci->moe_variant, ci->st)))
                return s;
        }
        return DPB_OK;
    }
    /* generic: per routed pair, in chunks of rows */
    const int64_t chunk = 64;
    size_t gu_b = al256((size_t)(chunk * K * 2 * I) * 4), act_b = al256((size_t)(chunk * K * I) * 4),
           dn_b = al256((size_t)(chunk * K * H) * 4);
    if ((s = ws_get(ci, gu_b + act_b + dn_b, &ws))) return s;
    float *GU = static_cast<float *>(ws), *ACT = reinterpret_cast<float *>(static_cast<char *>(ws) + gu_b),
          *DN = reinterpret_cast<float *>(static_cast<char *>(ws) + gu_b + act_b);
    for (int64_t t0 = 0; t0 < n; t0 += chunk) {
        int64_t m = n - t0 < chunk ? n - t0 : chunk, pairs = m * K;
        expert_p P;
        P.data = reinterpret_cast<const void *const *>(tab);
        P.scales = tab + E;
        P.fmt = g0->fmt;
        P.transposed = g0->transposed;
        P.out = 2 * I; P.in = H; P.k = K;
        P.bias = a->gate_up_bias;
        P.idx = a->idx + t0 * K;
        P.x = a->x + t0 * H;
        P.x_per_pair = 0;
        P.y = GU;
        P.rnd = a->round_bf16;
        unsigned gx = P.transposed && P.fmt == DPB_W_BF16 ? (unsigned)((P.out + 127) / 128) : (unsigned)((P.out + 3) / 4);
        k_expert_linear<<<dim3(gx, (unsigned)pairs), 128, 0, ci->st>>>(P);
        if ((s = launched("moe gate_up"))) return s;
        k_swiglu_clamped<<<grid_for(pairs * I, 256), 256, 0, ci->st>>>(GU, pairs, I, a->limit, a->alpha, a->round_bf16, ACT);
        if ((s = launched("moe swiglu"))) return s;
        P.data = reinterpret_cast<const void *const *>(tab + 2 * E);
        P.scales = tab + 3 * E;
        P.fmt = d0->fmt;
        P.transposed = d0->transposed;
        P.out = H; P.in = I;
        P.bias = a->down_bias;
        P.x = ACT;
        P.x_per_pair = 1;
        P.y = DN;
        gx = P.transposed && P.fmt == DPB_W_BF16 ? (unsigned)((P.out + 127) / 128) : (unsigned)((P.out + 3) / 4);
        k_expert_linear<<<dim3(gx, (unsigned)pairs), 128, 0, ci->st>>>(P);
        if ((s = launched("moe down"))) return s;
        k_moe_combine<<<grid_for(m * H, 256), 256, 0, ci->st>>>(DN, a->wts + t0 * K, m, H, K, a->out + t0 * H);
        if ((s = launched("moe combine"))) return s;
    }
    return DPB_OK;
}

dpb_status op_swiglu(dpb_backend *b, const float *gate, const float *up, int64_t n, int64_t I, float *out)
{
    cuda_impl *ci = impl_of(b);
    if (n * I <= 0) return DPB_OK;
    dirty(ci, out, (size_t)(n * I) * 4);
    k_swiglu<<<grid_for(n * I, 256), 256, 0, ci->st>>>(gate, up, n * I, out);
    return launched("swiglu");
}
/* The bf16 side-copy buffer for el elements, or null (none wanted: graph capture, where it may have to grow,
 * or DPB_CUDA_GEMM=ex; or no memory for it).  Its previous contents are dropped. */
/* The side copy now holds the bf16 bits of the fp32 range [p, p + bytes) (which is bf16-exact). */
void shadow_set(cuda_impl *ci, const void *p, size_t bytes)
{
    ci->shadow_of = (uintptr_t)p;
    ci->shadow_bytes = bytes;
}

dpb_status shadow_get(cuda_impl *ci, size_t el, uint16_t **sh)
{
    *sh = nullptr;
    ci->shadow_of = 0;
    if (ci->gemm_mode == 2 || capturing(ci)) return DPB_OK;
    if (el > ci->shadow_cap) {
        cudaError_t e = cudaStreamSynchronize(ci->st);
        if (e != cudaSuccess) return cerr(e, "bf16 side copy");
        if (ci->shadow) {
            cudaFree(ci->shadow);
            ci->epoch++;
            ci->workspace -= ci->shadow_cap * 2;
        }
        ci->shadow = nullptr;
        ci->shadow_cap = 0;
        if (cudaMalloc(&ci->shadow, el * 2) != cudaSuccess) {
            cudaGetLastError();
            ci->shadow = nullptr;
        } else {
            ci->shadow_cap = el;
            ci->workspace += el * 2;
            note_peak(ci);
        }
    }
    *sh = ci->shadow;
    return DPB_OK;
}

dpb_status op_swiglu_bf16(dpb_backend *b, float *gate, float *up, int64_t n, int64_t I, float *out)
{
    cuda_impl *ci = impl_of(b);
    if (n * I <= 0) return DPB_OK;
    dirty(ci, out, (size_t)(n * I) * 4);
    /* prefill (n > 4 rows: the next linear is a GEMM, not the GEMV): also a bf16 copy for that GEMM */
    uint16_t *sh = nullptr;
    if (n > 4) {
        dpb_status s0 = shadow_get(ci, (size_t)(n * I), &sh);
        if (s0) return s0;
    }
    k_swiglu_bf16<<<grid_for((n * I + 3) / 4, 256), 256, 0, ci->st>>>(gate, up, n * I, out, sh);
    dpb_status s = launched("swiglu (bf16)");
    if (!s) {
        if (ci->rounded.size() >= 16) ci->rounded.erase(ci->rounded.begin());
        ci->rounded.push_back({(uintptr_t)out, (uintptr_t)out + (size_t)(n * I) * 4});
        if (sh) shadow_set(ci, out, (size_t)(n * I) * 4);
    }
    return s;
}

/* swiglu_bf16 then linear(down, b_down) (backend.h): for many rows the SwiGLU pass writes only the bf16
 * operand of the down GEMM (gate and up are left unspecified, as the op allows), not the fp32 rows. */
dpb_status op_swiglu_down(dpb_backend *b, float *gate, float *up, int64_t n, int64_t I, const dpb_weight *down,
                          const uint16_t *b_down, float *out)
{
    cuda_impl *ci = impl_of(b);
    if (n <= 0) return DPB_OK;
    uint16_t *sh = nullptr;
    dpb_status s;
    if (n > 4 && !(ci->pf2 & kPf2NoMlp) && down->fmt == DPB_W_BF16 && down->in == I && down->out >= 1 &&
        down->out <= INT32_MAX && I <= INT32_MAX && n <= INT32_MAX) {
        if ((s = shadow_get(ci, (size_t)(n * I), &sh))) return s;
    }
    if (!sh) {
        if ((s = op_swiglu_bf16(b, gate, up, n, I, gate))) return s;
        return op_linear(b, down, b_down, gate, n, out);
    }
    dirty(ci, gate, (size_t)(n * I) * 4);
    dirty(ci, up, (size_t)(n * I) * 4);
    dirty(ci, out, (size_t)(n * down->out) * 4);
    k_swiglu_bf16<<<grid_for((n * I + 3) / 4, 256), 256, 0, ci->st>>>(gate, up, n * I, nullptr, sh);
    if ((s = launched("swiglu_down"))) return s;
    if ((s = gemm_bf16(ci, down, sh, (int)n, 0.0f, out))) return s;
    if (b_down) {
        k_bias_round<<<grid_for((n * down->out + 3) / 4, 256), 256, 0, ci->st>>>(out, b_down, n, down->out, 0);
        return launched("swiglu_down bias");
    }
    return DPB_OK;
}

/* o = bf16(silu(g) * u) over bf16 rows g, u (the gate/up GEMMs' bf16 outputs): the same expression as k_swiglu_bf16
 * on values already rounded; 8 elements per thread where the pointers allow.  o may equal g (in place). */
__global__ void k_swiglu_bb(const uint16_t *g, const uint16_t *__restrict__ u, int64_t n, uint16_t *o)
{
    const int64_t n8 = ((uintptr_t)g | (uintptr_t)u | (uintptr_t)o) & 15 ? 0 : n / 8;
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n8; i += step) {
        const uint4 g8 = reinterpret_cast<const uint4 *>(g)[i], u8 = reinterpret_cast<const uint4 *>(u)[i];
        const uint32_t gw[4] = {g8.x, g8.y, g8.z, g8.w}, uw[4] = {u8.x, u8.y, u8.z, u8.w};
        uint32_t ow[4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const float g0 = __uint_as_float(gw[j] << 16), g1 = __uint_as_float(gw[j] & 0xffff0000u);
            const float u0 = __uint_as_float(uw[j] << 16), u1 = __uint_as_float(uw[j] & 0xffff0000u);
            ow[j] = (uint32_t)to_bf(g0 / (1.0f + expf(-g0)) * u0) | (uint32_t)to_bf(g1 / (1.0f + expf(-g1)) * u1) << 16;
        }
        reinterpret_cast<uint4 *>(o)[i] = make_uint4(ow[0], ow[1], ow[2], ow[3]);
    }
    for (int64_t i = 8 * n8 + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += step) {
        const float gv = bf(g[i]);
        o[i] = to_bf(gv / (1.0f + expf(-gv)) * bf(u[i]));
    }
}

/* swiglu_mlp (backend.h): for prefill-sized n with bf16 weights and a bf16-exact x, the gate and up GEMMs write
 * bf16 rows (cuBLAS rounds the fp32 sums to nearest even: the rounds swiglu_bf16 would make) into tmp_a / tmp_b,
 * the SwiGLU pass reads them and writes its bf16 output over the gate rows, which the down GEMM takes. */
dpb_status op_swiglu_mlp(dpb_backend *b, const dpb_weight *gate, const uint16_t *b_gate, const dpb_weight *up,
                         const uint16_t *b_up, const float *x, int64_t n, float *tmp_a, float *tmp_b,
                         const dpb_weight *down, const uint16_t *b_down, float *out)
{
    cuda_impl *ci = impl_of(b);
    const int64_t I = gate->out, H = gate->in;
    if (n <= 8 || (ci->dpf & kDpfNoMlp) || ci->gemm_mode == 2 || b_gate || b_up || gate->fmt != DPB_W_BF16 ||
        up->fmt != DPB_W_BF16 || down->fmt != DPB_W_BF16 || up->out != I || up->in != H || down->in != I ||
        I > INT32_MAX || H > INT32_MAX || down->out < 1 || down->out > INT32_MAX || n > INT32_MAX || !al16(tmp_a) ||
        !al16(tmp_b) || !is_rounded(ci, x, (size_t)(n * H) * 4) || capturing(ci))
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda swiglu_mlp: not a prefill-sized bf16 MLP (n %lld)", (long long)n);
    dirty(ci, tmp_a, (size_t)(n * I) * 4);
    dirty(ci, tmp_b, (size_t)(n * I) * 4);
    dirty(ci, out, (size_t)(n * down->out) * 4);
    uint16_t *hi, *lo;
    dpb_status s = x_bf16(ci, x, n * H, &hi, &lo);
    if (s) return s;
    uint16_t *g16 = reinterpret_cast<uint16_t *>(tmp_a), *u16 = reinterpret_cast<uint16_t *>(tmp_b);
    if ((s = gemm_bf16x(ci, gate, hi, (int)n, 0.0f, g16, kLtBf16Out, nullptr, nullptr))) return s;
    if ((s = gemm_bf16x(ci, up, hi, (int)n, 0.0f, u16, kLtBf16Out, nullptr, nullptr))) return s;
    k_swiglu_bb<<<grid_for((n * I + 7) / 8, 256), 256, 0, ci->st>>>(g16, u16, n * I, g16);
    if ((s = launched("swiglu_mlp"))) return s;
    bool bdone = false;
    if ((s = gemm_hi_bias(ci, down, g16, n, b_down, out, &bdone))) return s;
    if (b_down && !bdone) {
        k_bias_round<<<grid_for((n * down->out + 3) / 4, 256), 256, 0, ci->st>>>(out, b_down, n, down->out, 0);
        return launched("swiglu_mlp bias");
    }
    return DPB_OK;
}

dpb_status op_add(dpb_backend *b, float *y, const float *x, int64_t n)
{
    cuda_impl *ci = impl_of(b);
    if (n <= 0) return DPB_OK;
    dirty(ci, y, (size_t)n * 4);
    k_add<<<grid_for(n, 256), 256, 0, ci->st>>>(y, x, n);
    return launched("add");
}
dpb_status op_round_bf16(dpb_backend *b, float *x, int64_t n)
{
    cuda_impl *ci = impl_of(b);
    if (n <= 0) return DPB_OK;
    /* prefill-sized (e.g. the attention output before o): also the bf16 copy the next GEMM takes */
    uint16_t *sh = nullptr;
    dpb_status s;
    dirty(ci, x, (size_t)n * 4);
    if (n >= kSideCopyMin && !(ci->pf2 & kPf2NoCopy) && !((uintptr_t)x & 15) && (s = shadow_get(ci, (size_t)n, &sh)))
        return s;
    if (sh) k_round_sh<<<grid_for((n + 3) / 4, 256), 256, 0, ci->st>>>(x, n, sh);
    else k_round<<<grid_for(n, 256), 256, 0, ci->st>>>(x, n);
    s = launched("round_bf16");
    if (!s) {
        if (ci->rounded.size() >= 16) ci->rounded.erase(ci->rounded.begin());
        ci->rounded.push_back({(uintptr_t)x, (uintptr_t)x + (size_t)n * 4});
        if (sh) shadow_set(ci, x, (size_t)n * 4);
    }
    return s;
}

/* ---- fused decode-sized steps ---- */

/* Block t: row t.  x += [round](r); [round] x; y = [round](rmsnorm(x) * w).  The
 * row lives in shared memory between the two passes (dim <= kFuseMaxDim). */
constexpr int kFuseMaxDim = 8192;
__global__ void __launch_bounds__(1024) k_add_rmsnorm(float *__restrict__ x, const float *__restrict__ r,
                                                      const uint16_t *__restrict__ w, int64_t dim, float eps, int rnd,
                                                      float *__restrict__ y)
{
    __shared__ float row[kFuseMaxDim];
    __shared__ float red[32];
    const int64_t t = blockIdx.x;
    float *xr = x + t * dim;
    const float *rr = r + t * dim;
    float ss = 0.f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        float a = rnd ? rbf(rr[i]) : rr[i];
        float v = xr[i] + a;
        if (rnd) v = rbf(v);
        xr[i] = v;
        row[i] = v;
        ss = fmaf(v, v, ss);
    }
    if (!w) return;
    const float s = 1.0f / sqrtf(block_sum(ss, red) / (float)dim + eps);
    float *yr = y + t * dim;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = bf(w[i]) * (row[i] * s);
        yr[i] = rnd ? rbf(v) : v;
    }
}

dpb_status op_add_rmsnorm(dpb_backend *b, float *x, float *r, const uint16_t *w, int64_t n, int64_t dim, float eps,
                          bool round, float *y)
{
    cuda_impl *ci = impl_of(b);
    if (n <= 0) return DPB_OK;
    if (dim < 1 || dim > kFuseMaxDim || n > INT32_MAX) {
        /* the unfused steps */
        dpb_status s;
        if (round && (s = op_round_bf16(b, r, n * dim))) return s;
        if ((s = op_add(b, x, r, n * dim))) return s;
        if (round && (s = op_round_bf16(b, x, n * dim))) return s;
        if (!w) return DPB_OK;
        if ((s = op_rmsnorm(b, x, w, n, dim, eps, y))) return s;
        return round ? op_round_bf16(b, y, n * dim) : DPB_OK;
    }
    dirty(ci, x, (size_t)(n * dim) * 4);
    if (w) dirty(ci, y, (size_t)(n * dim) * 4);
    uint16_t *sh = nullptr;
    if (norm4_ok(dim, x, r, w ? (const void *)y : (const void *)x, w)) {
        /* the bf16 engine's prefill: y also as bf16 bits, which the next GEMM (q/k/v, gate/up) takes */
        dpb_status s0;
        if (w && round && n > 4 && !(ci->pf2 & kPf2NoCopy) &&
            (s0 = shadow_get(ci, (size_t)(n * dim), &sh)))
            return s0;
        cudaError_t e = pdl_launch(ci->pdl, k_norm4<true>, dim3((unsigned)n), dim3(norm4_threads(dim)), 0, ci->st, x,
                                   (const float *)r, w, (int)dim, eps, round ? 1 : 0, y, sh);
        if (e != cudaSuccess) return cerr(e, "add_rmsnorm");
    } else {
        int th = dim >= 1024 ? 1024 : (int)((dim + 31) / 32 * 32);
        k_add_rmsnorm<<<(unsigned)n, th, 0, ci->st>>>(x, r, w, dim, eps, round ? 1 : 0, y);
    }
    dpb_status s = launched("add_rmsnorm");
    if (!s && round) {
        /* x and y now hold bf16-exact values (see linear) */
        if (ci->rounded.size() >= 14) ci->rounded.erase(ci->rounded.begin(), ci->rounded.begin() + 2);
        ci->rounded.push_back({(uintptr_t)x, (uintptr_t)x + (size_t)(n * dim) * 4});
        if (w) ci->rounded.push_back({(uintptr_t)y, (uintptr_t)y + (size_t)(n * dim) * 4});
        if (sh) shadow_set(ci, y, (size_t)(n * dim) * 4);
    }
    return s;
}

/* Block (row t, head j) over nh q heads, then nkv k heads, then nkv v heads:
 * the steps of dpb_backend_ops.qk_prep for one head vector. */
struct qkprep_p {
    float *q, *k;
    const float *v;
    int64_t nh, nkv, hd;
    const uint16_t *qn, *kn;
    float eps;
    const int64_t *pos;
    int rnd, kvt; /* kvt: the KV dtype (dpb_kv_dtype) */
    void *knew, *vnew;
    void *kc, *vc;  /* qk_prep_kv: the layer's cache, row t's k and v also go to slot pos[t] % slots; else null */
    int64_t slots;
    const uint16_t *qb = nullptr, *kb = nullptr, *vb = nullptr; /* qkv_prep (k_qk_prep_w<E, true>): q, k, v read as
                                                                 * bf16 from here (q still written) */
    int oldsum = 0; /* k_qk_prep_w: the per-head norm's sum through the session 4 gather (DPB_CUDA_DPF=oldsum, A/B) */
};

/* element e of row t's k or v (the head's offset included) in the KV dtype, into the new rows and the cache slot */
__device__ __forceinline__ void qk_store(const qkprep_p &P, void *nw, void *cache, int64_t t, int64_t off, int64_t e,
                                         int64_t slot, float v)
{
    const int64_t row = P.nkv * P.hd;
    if (P.kvt == DPB_KV_F32) {
        static_cast<float *>(nw)[off] = v;
        if (cache) static_cast<float *>(cache)[slot * row + e] = v;
    } else if (P.kvt == DPB_KV_FP8) {
        const uint8_t b = to_fp8(v);
        static_cast<uint8_t *>(nw)[off] = b;
        if (cache) static_cast<uint8_t *>(cache)[slot * row + e] = b;
    } else {
        const uint16_t b = to_bf(v);
        static_cast<uint16_t *>(nw)[off] = b;
        if (cache) static_cast<uint16_t *>(cache)[slot * row + e] = b;
    }
    (void)t;
}

__global__ void __launch_bounds__(128) k_qk_prep(const qkprep_p P, const rope_args ra)
{
    pdl_wait();
    pdl_trigger();
    __shared__ float vec[2 * DPB_ROPE_MAX_HALF];
    __shared__ float red[4];
    const int64_t t = blockIdx.x, j = blockIdx.y, hd = P.hd, half = hd / 2;
    const int kind = j < P.nh ? 0 : j < P.nh + P.nkv ? 1 : 2; /* q, k, v */
    const int64_t h = kind == 0 ? j : kind == 1 ? j - P.nh : j - P.nh - P.nkv;
    const int64_t nheads = kind == 0 ? P.nh : P.nkv;
    const int64_t off = (t * nheads + h) * hd;
    const int64_t slot = P.kc && kind != 0 ? P.pos[t] % P.slots : 0;
    if (kind == 2) {
        for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) qk_store(P, P.vnew, P.vc, t, off + i, h * hd + i, slot, P.v[off + i]);
        return;
    }
    float *src = kind == 0 ? P.q : P.k;
    for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) vec[i] = P.rnd ? rbf(src[off + i]) : src[off + i];
    __syncthreads();
    const uint16_t *nw = kind == 0 ? P.qn : P.kn;
    if (nw) {
        float ss = 0.f;
        for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) ss = fmaf(vec[i], vec[i], ss);
        ss = wsum(ss);
        if (threadIdx.x % kWarp == 0) red[threadIdx.x / kWarp] = ss;
        __syncthreads();
        float tot = 0.f;
        for (int w = 0; w < (int)(blockDim.x / kWarp); w++) tot += red[w];
        const float s = 1.0f / sqrtf(tot / (float)hd + P.eps);
        __syncthreads();
        for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) {
            float v = bf(nw[i]) * (vec[i] * s);
            vec[i] = P.rnd ? rbf(v) : v;
        }
        __syncthreads();
    }
    const float p = (float)P.pos[t];
    for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
        float ang = p * ra.inv_freq[i];
        float c = (float)cos((double)ang) * ra.scaling;
        float s = (float)sin((double)ang) * ra.scaling;
        float a = vec[i], b2 = vec[i + half];
        float o1 = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b2, s));
        float o2 = __fadd_rn(__fmul_rn(b2, c), __fmul_rn(a, s));
        if (kind == 0) {
            P.q[off + i] = P.rnd ? rbf(o1) : o1;
            P.q[off + i + half] = P.rnd ? rbf(o2) : o2;
        } else {
            qk_store(P, P.knew, P.kc, t, off + i, h * hd + i, slot, o1);
            qk_store(P, P.knew, P.kc, t, off + i + half, h * hd + i + half, slot, o2);
        }
    }
}

/* Many rows (prefill): block (row t, group of kQkHeads heads of the nh + 2 nkv), 8 warps, one head vector per
 * warp at a time, E = hd / 32 (1, 2 or 4) consecutive elements per lane (one access of 4E bytes).  The row's RoPE cos/sin
 * (the same expressions as k_qk_prep) are computed once per block into shared memory; the head norm is a warp
 * sum; RoPE's partner element (i +- hd/2) sits in lane ^ 16 at the same slot.  Same rounding steps as k_qk_prep;
 * v's conversion is byte-identical. */
constexpr int kQkHeads = 16, kQkWarps = 8;
template <int E> __device__ __forceinline__ void ld_e(const float *p, float *v)
{
    if constexpr (E == 4) { const float4 a = *reinterpret_cast<const float4 *>(p); v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; }
    else if constexpr (E == 2) { const float2 a = *reinterpret_cast<const float2 *>(p); v[0] = a.x; v[1] = a.y; }
    else v[0] = *p;
}
template <int E> __device__ __forceinline__ void st_e(float *p, const float *v)
{
    if constexpr (E == 4) *reinterpret_cast<float4 *>(p) = make_float4(v[0], v[1], v[2], v[3]);
    else if constexpr (E == 2) *reinterpret_cast<float2 *>(p) = make_float2(v[0], v[1]);
    else *p = v[0];
}
/* E values at element offset off of a KV-dtype buffer */
template <int E> __device__ __forceinline__ void st_kv(void *base, int kvt, int64_t off, const float *v)
{
    if (kvt == DPB_KV_F32) {
        st_e<E>(static_cast<float *>(base) + off, v);
    } else if (kvt == DPB_KV_FP8) {
        uint32_t u = 0;
#pragma unroll
        for (int j = 0; j < E; j++) u |= (uint32_t)to_fp8(v[j]) << (8 * j);
        if constexpr (E == 4) *reinterpret_cast<uint32_t *>(static_cast<uint8_t *>(base) + off) = u;
        else if constexpr (E == 2) *reinterpret_cast<uint16_t *>(static_cast<uint8_t *>(base) + off) = (uint16_t)u;
        else static_cast<uint8_t *>(base)[off] = (uint8_t)u;
    } else {
        uint32_t u[2] = {0u, 0u};
#pragma unroll
        for (int j = 0; j < E; j++) u[j / 2] |= (uint32_t)to_bf(v[j]) << (16 * (j % 2));
        if constexpr (E == 4) *reinterpret_cast<uint2 *>(static_cast<uint16_t *>(base) + off) = make_uint2(u[0], u[1]);
        else if constexpr (E == 2) *reinterpret_cast<uint32_t *>(static_cast<uint16_t *>(base) + off) = u[0];
        else static_cast<uint16_t *>(base)[off] = (uint16_t)u[0];
    }
}
/* E bf16 values at p as floats */
template <int E> __device__ __forceinline__ void ld_b(const uint16_t *p, float *v)
{
    if constexpr (E == 4) {
        const uint2 a = *reinterpret_cast<const uint2 *>(p);
        v[0] = __uint_as_float(a.x << 16); v[1] = __uint_as_float(a.x & 0xffff0000u);
        v[2] = __uint_as_float(a.y << 16); v[3] = __uint_as_float(a.y & 0xffff0000u);
    } else if constexpr (E == 2) {
        const uint32_t a = *reinterpret_cast<const uint32_t *>(p);
        v[0] = __uint_as_float(a << 16); v[1] = __uint_as_float(a & 0xffff0000u);
    } else v[0] = bf(*p);
}
template <int E, bool BF>
__global__ void __launch_bounds__(kQkWarps * 32) k_qk_prep_w(const qkprep_p P, const rope_args ra)
{
    constexpr int hd = 32 * E, half = 16 * E;
    __shared__ float cs[half], sn[half];
    const int64_t t = blockIdx.x;
    const float p = (float)P.pos[t];
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const float ang = p * ra.inv_freq[i];
        cs[i] = (float)cos((double)ang) * ra.scaling;
        sn[i] = (float)sin((double)ang) * ra.scaling;
    }
    __syncthreads();
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int64_t total = P.nh + 2 * P.nkv;
    const int64_t j1 = min((int64_t)(blockIdx.y + 1) * kQkHeads, total);
    for (int64_t j = (int64_t)blockIdx.y * kQkHeads + warp; j < j1; j += kQkWarps) {
        const int kind = j < P.nh ? 0 : j < P.nh + P.nkv ? 1 : 2; /* q, k, v */
        const int64_t h = kind == 0 ? j : kind == 1 ? j - P.nh : j - P.nh - P.nkv;
        const int64_t off = (t * (kind == 0 ? P.nh : P.nkv) + h) * hd + lane * E;
        float v[E];
        if (kind == 2) {
            if constexpr (BF) ld_b<E>(P.vb + off, v);
            else ld_e<E>(P.v + off, v);
            st_kv<E>(P.vnew, P.kvt, off, v);
            continue;
        }
        if constexpr (BF) ld_b<E>((kind == 0 ? P.qb : P.kb) + off, v);
        else ld_e<E>((kind == 0 ? P.q : P.k) + off, v);
        if (P.rnd)
#pragma unroll
            for (int e = 0; e < E; e++) v[e] = rbf(v[e]);
        const uint16_t *nw = kind == 0 ? P.qn : P.kn;
        if (nw) {
            /* the sum of squares in k_qk_prep's order, for the same bits: its warp w (of E) held elements
             * 32 w + l, one per lane (here lane (32 w + l) / E, slot l % E), summed by wsum, then the E warp
             * sums in turn */
            float sq[E], tot = 0.f;
#pragma unroll
            for (int e = 0; e < E; e++) sq[e] = __fmul_rn(v[e], v[e]);
            if (P.oldsum) {
#pragma unroll
                for (int w = 0; w < E; w++) {
                    float z = 0.f;
#pragma unroll
                    for (int e = 0; e < E; e++) {
                        const float u = __shfl_sync(0xffffffffu, sq[e], (32 / E) * w + lane / E);
                        if (lane % E == e) z = u;
                    }
                    tot += wsum(z);
                }
            } else {
            /* that warp's lane l = E (lane % (32 / E)) + e here, so its butterfly steps xor m >= E are steps xor m / E
             * between lanes of this lane group and steps m < E are between slots: the same sums, with fewer shuffles
             * than gathering each warp's values first; every slot then holds warp lane / (32 / E)'s sum */
#pragma unroll
            for (int m = 16; m >= E; m >>= 1)
#pragma unroll
                for (int e = 0; e < E; e++) sq[e] += __shfl_xor_sync(0xffffffffu, sq[e], m / E);
#pragma unroll
            for (int m = E / 2; m >= 1; m >>= 1) {
                float t[E];
#pragma unroll
                for (int e = 0; e < E; e++) t[e] = sq[e] + sq[e ^ m];
#pragma unroll
                for (int e = 0; e < E; e++) sq[e] = t[e];
            }
#pragma unroll
            for (int w = 0; w < E; w++) tot += __shfl_sync(0xffffffffu, sq[0], (32 / E) * w);
            }
            const float s = 1.0f / sqrtf(tot / (float)hd + P.eps);
#pragma unroll
            for (int e = 0; e < E; e++) {
                const float y = bf(__ldg(nw + lane * E + e)) * (v[e] * s);
                v[e] = P.rnd ? rbf(y) : y;
            }
        }
        float o[E];
        const bool lo = lane < 16;
#pragma unroll
        for (int e = 0; e < E; e++) {
            const float other = __shfl_xor_sync(0xffffffffu, v[e], 16);
            const int fi = (lane & 15) * E + e;
            const float c = cs[fi], s = sn[fi];
            const float a = lo ? v[e] : other, b2 = lo ? other : v[e];
            o[e] = lo ? __fsub_rn(__fmul_rn(a, c), __fmul_rn(b2, s)) : __fadd_rn(__fmul_rn(b2, c), __fmul_rn(a, s));
        }
        if (kind == 0) {
            if (P.rnd)
#pragma unroll
                for (int e = 0; e < E; e++) o[e] = rbf(o[e]);
            st_e<E>(P.q + off, o);
        } else {
            st_kv<E>(P.knew, P.kvt, off, o);
        }
    }
}

/* qk_prep, and with kc / vc (not null) the rows into the cache too (qk_prep_kv) */
dpb_status qk_prep_run(dpb_backend *b, float *q, float *k, const float *v, int64_t n, int64_t nh, int64_t nkv,
                       const uint16_t *q_norm, const uint16_t *k_norm, float eps, const int64_t *pos,
                       const dpb_rope_table *rt, bool round, dpb_kv_dtype dt, void *knew, void *vnew, void *kc, void *vc,
                       int64_t slots)
{
    cuda_impl *ci = impl_of(b);
    if (n <= 0) return DPB_OK;
    const int64_t hd = rt->head_dim;
    if (hd < 2 || hd % 2 || hd > 2 * DPB_ROPE_MAX_HALF || n > INT32_MAX || nh + 2 * nkv > 65535 || (!q_norm) != (!k_norm))
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda qk_prep: head_dim %lld, %lld + 2 x %lld heads", (long long)hd,
                             (long long)nh, (long long)nkv);
    dirty(ci, q, (size_t)(n * nh * hd) * 4);
    dirty(ci, knew, (size_t)(n * nkv * hd) * dpb_kv_dtype_size(dt));
    dirty(ci, vnew, (size_t)(n * nkv * hd) * dpb_kv_dtype_size(dt));
    if (kc) {
        dirty(ci, kc, (size_t)(slots * nkv * hd) * dpb_kv_dtype_size(dt));
        dirty(ci, vc, (size_t)(slots * nkv * hd) * dpb_kv_dtype_size(dt));
    }
    qkprep_p P{q, k, v, nh, nkv, hd, q_norm, k_norm, eps, pos, round ? 1 : 0, (int)dt, knew, vnew, kc, vc, slots};
    rope_args ra;
    ra.head_dim = hd;
    ra.scaling = rt->attention_scaling;
    memcpy(ra.inv_freq, rt->inv_freq, sizeof ra.inv_freq);
    /* rows of a prefill chunk (and batched decode): the warp-per-head kernel where head_dim and the pointers
     * allow; one row (decode) keeps the block-per-head kernel (DPB_CUDA_PF2=noqk: always that one) */
    const int E = (int)(hd / 32);
    const size_t es = dpb_kv_dtype_size(dt);
    const bool wk = n >= 2 && !kc && !(ci->pf2 & kPf2NoQk) && hd % 32 == 0 && (E == 1 || E == 2 || E == 4) &&
                    !((uintptr_t)q % (4 * E) || (uintptr_t)k % (4 * E) || (uintptr_t)v % (4 * E) ||
                      (uintptr_t)knew % (es * E) || (uintptr_t)vnew % (es * E));
    if (wk) {
        P.oldsum = (ci->dpf & kDpfOldSum) ? 1 : 0;
        dim3 g((unsigned)n, (unsigned)((nh + 2 * nkv + kQkHeads - 1) / kQkHeads));
        if (E == 4) k_qk_prep_w<4, false><<<g, kQkWarps * 32, 0, ci->st>>>(P, ra);
        else if (E == 2) k_qk_prep_w<2, false><<<g, kQkWarps * 32, 0, ci->st>>>(P, ra);
        else k_qk_prep_w<1, false><<<g, kQkWarps * 32, 0, ci->st>>>(P, ra);
    } else {
        const cudaError_t e = pdl_launch(ci->pdl, k_qk_prep, dim3((unsigned)n, (unsigned)(nh + 2 * nkv)), dim3(128), 0,
                                         ci->st, P, ra);
        if (e != cudaSuccess) return cerr(e, "qk_prep");
    }
    dpb_status s = launched("qk_prep");
    if (!s && round) {
        if (ci->rounded.size() >= 16) ci->rounded.erase(ci->rounded.begin());
        ci->rounded.push_back({(uintptr_t)q, (uintptr_t)q + (size_t)(n * nh * hd) * 4});
    }
    return s;
}

/* Whether gemm_bf16x would run cuBLASLt with these flags (the plan exists; made now if new). */
bool lt_ready(cuda_impl *ci, const dpb_weight *w, const uint16_t *X, int nn, void *y, int flags, const void *bias32)
{
    if (ci->gemm_mode == 2) return false;
    const int m = (int)w->out, k = (int)w->in;
    return lt_plan_get(ci, w->transposed ? CUBLAS_OP_N : CUBLAS_OP_T, w->transposed ? m : k, m, nn, k, false, w->data, X,
                       y, flags, bias32) != nullptr;
}

/* qkv_prep (backend.h): for prefill-sized n in the bf16 engine with a bf16 KV cache and a bf16-exact x, the q/k/v
 * GEMMs write bf16 rows (biases added in their epilogue, then rounded to nearest even: qk_prep's first rounds; v's
 * to_kv rounds the same way) into the workspace, and k_qk_prep_w reads them there. */
dpb_status op_qkv_prep(dpb_backend *b, const dpb_weight *const *w, const uint16_t *const *bias, const float *x, int64_t n,
                       float *q, float *k, float *v, int64_t nh, int64_t nkv, const uint16_t *q_norm,
                       const uint16_t *k_norm, float eps, const int64_t *pos, const dpb_rope_table *rt, bool round,
                       dpb_kv_dtype dt, void *knew, void *vnew)
{
    cuda_impl *ci = impl_of(b);
    const int64_t hd = rt->head_dim, H = w[0]->in, qd = nh * hd, kvd = nkv * hd;
    const int E = (int)(hd / 32);
    bool ok = n > 8 && round && dt == DPB_KV_BF16 && !(ci->dpf & kDpfNoQkv) && !(ci->pf2 & kPf2NoQk) &&
              ci->gemm_mode != 2 && hd % 32 == 0 && (E == 1 || E == 2 || E == 4) && (!q_norm) == (!k_norm) &&
              nh + 2 * nkv <= 65535 && n <= INT32_MAX && H <= INT32_MAX && w[0]->out == qd && w[1]->out == kvd &&
              w[2]->out == kvd && al16(q) && !((uintptr_t)knew % (2 * E)) && !((uintptr_t)vnew % (2 * E)) &&
              is_rounded(ci, x, (size_t)(n * H) * 4) && !capturing(ci);
    for (int i = 0; i < 3 && ok; i++)
        ok = w[i]->fmt == DPB_W_BF16 && w[i]->in == H && w[i]->out <= INT32_MAX && (!bias || !bias[i] || al16(bias[i]));
    if (!ok)
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda qkv_prep: not a prefill-sized bf16 q/k/v (n %lld)", (long long)n);
    /* workspace: x as bf16 (x_bf16's share, when there is no side copy), then q, k, v as bf16 */
    const size_t xs = al256((size_t)(n * H) * 2) * 2, qs = al256((size_t)(n * qd) * 2), ks = al256((size_t)(n * kvd) * 2);
    void *ws;
    dpb_status s = ws_get(ci, xs + qs + 2 * ks, &ws);
    if (s) return s;
    uint16_t *qb = reinterpret_cast<uint16_t *>(static_cast<char *>(ws) + xs), *kb = qb + qs / 2, *vb = kb + ks / 2;
    uint16_t *ob[3] = {qb, kb, vb};
    const uint16_t *bb[3] = {bias ? bias[0] : nullptr, bias ? bias[1] : nullptr, bias ? bias[2] : nullptr};
    /* every GEMM on cuBLASLt (bf16 output, bias epilogue) before anything is written; x's pointer stands in for its
     * bf16 copy (the alignment part of the plan's key: both are 256-byte aligned) */
    for (int i = 0; i < 3; i++)
        if (!lt_ready(ci, w[i], ci->shadow_of == (uintptr_t)x && ci->shadow ? ci->shadow : static_cast<uint16_t *>(ws),
                      (int)n, ob[i], kLtBf16Out | (bb[i] ? kLtBias : 0), bb[i]))
            return dpb_error_set(DPB_E_UNSUPPORTED, "cuda qkv_prep: no cuBLASLt plan for a bf16 output");
    uint16_t *hi, *lo;
    if ((s = x_bf16(ci, x, n * H, &hi, &lo))) return s;
    dirty(ci, q, (size_t)(n * qd) * 4);
    dirty(ci, k, (size_t)(n * kvd) * 4);
    dirty(ci, v, (size_t)(n * kvd) * 4);
    dirty(ci, knew, (size_t)(n * kvd) * 2);
    dirty(ci, vnew, (size_t)(n * kvd) * 2);
    for (int i = 0; i < 3; i++) {
        bool bd = false;
        if ((s = gemm_bf16x(ci, w[i], hi, (int)n, 0.0f, ob[i], kLtBf16Out | (bb[i] ? kLtBias : 0), bb[i], &bd))) return s;
        if (bb[i] && !bd) return dpb_error_set(DPB_E_INTERNAL, "cuda qkv_prep: the bias epilogue did not run");
    }
    qkprep_p P{q, k, v, nh, nkv, hd, q_norm, k_norm, eps, pos, 1, (int)dt, knew, vnew, nullptr, nullptr, 0, qb, kb, vb,
               (ci->dpf & kDpfOldSum) ? 1 : 0};
    rope_args ra;
    ra.head_dim = hd;
    ra.scaling = rt->attention_scaling;
    memcpy(ra.inv_freq, rt->inv_freq, sizeof ra.inv_freq);
    dim3 g((unsigned)n, (unsigned)((nh + 2 * nkv + kQkHeads - 1) / kQkHeads));
    if (E == 4) k_qk_prep_w<4, true><<<g, kQkWarps * 32, 0, ci->st>>>(P, ra);
    else if (E == 2) k_qk_prep_w<2, true><<<g, kQkWarps * 32, 0, ci->st>>>(P, ra);
    else k_qk_prep_w<1, true><<<g, kQkWarps * 32, 0, ci->st>>>(P, ra);
    if ((s = launched("qkv_prep"))) return s;
    if (ci->rounded.size() >= 16) ci->rounded.erase(ci->rounded.begin());
    ci->rounded.push_back({(uintptr_t)q, (uintptr_t)q + (size_t)(n * qd) * 4});
    return DPB_OK;
}

dpb_status op_qk_prep(dpb_backend *b, float *q, float *k, const float *v, int64_t n, int64_t nh, int64_t nkv,
                      const uint16_t *q_norm, const uint16_t *k_norm, float eps, const int64_t *pos,
                      const dpb_rope_table *rt, bool round, dpb_kv_dtype dt, void *knew, void *vnew)
{
    return qk_prep_run(b, q, k, v, n, nh, nkv, q_norm, k_norm, eps, pos, rt, round, dt, knew, vnew, nullptr, nullptr, 0);
}

/* qk_prep_kv: the k and v rows written into the cache slots by k_qk_prep itself (no kv_write_at launch) */
dpb_status op_qk_prep_kv(dpb_backend *b, float *q, float *k, const float *v, int64_t n, int64_t nh, int64_t nkv,
                         const uint16_t *q_norm, const uint16_t *k_norm, float eps, const int64_t *pos,
                         const dpb_rope_table *rt, bool round, dpb_kv_dtype dt, void *knew, void *vnew, void *k_cache,
                         void *v_cache, int64_t slots)
{
    if (impl_of(b)->unfused & 2)
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda qk_prep_kv: off (DPB_CUDA_UNFUSED)");
    if (n > 0 && (!k_cache || !v_cache || slots < n))
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda qk_prep_kv: %lld rows into %lld slots", (long long)n, (long long)slots);
    return qk_prep_run(b, q, k, v, n, nh, nkv, q_norm, k_norm, eps, pos, rt, round, dt, knew, vnew, k_cache, v_cache,
                       slots);
}

/* ------------------------------------------------- qkv_prep_kv (decode) --
 * The one-row q/k/v GEMV with qk_prep_kv as its epilogue (session 6).  Every output row is summed exactly as the
 * warp/row GEMV of dpb_cuda_gemv_bf16_multi sums it (one warp per row; lane l takes the 16-byte chunks l, l + 32,
 * ... in order, fmaf per element; butterfly warp sum; + bias), so the floats are those linear_multi writes; the
 * epilogue then applies k_qk_prep's expressions (rounding, RoPE, q rounding, KV conversion).  Only the rows map to
 * blocks differently: a q or k block of 8 warps takes 4 RoPE pairs of one head (rows i0..i0+3 in warps 0..3,
 * their partners i0+hd/2.. in warps 4..7), a v block 8 consecutive rows. */
struct qkvf_p {
    const uint16_t *Wq, *Wk, *Wv;
    const float *bq, *bk, *bv; /* fp32 bias copies, or null */
    const float *x;
    int K, hd, qblocks, kblocks;
    float *q;
    const int64_t *pos;
    int rnd, kvt;
    void *knew, *vnew, *kc, *vc;
    int64_t slots, kvrow; /* kvrow: nkv * hd */
};

/* one element of the row's k or v in the KV dtype, into the new row (element e) and the cache slot (qk_store) */
__device__ __forceinline__ void qkv_put(const qkvf_p &P, void *nw, void *cache, int64_t e, int64_t slot, float v)
{
    if (P.kvt == DPB_KV_F32) {
        static_cast<float *>(nw)[e] = v;
        static_cast<float *>(cache)[slot * P.kvrow + e] = v;
    } else if (P.kvt == DPB_KV_FP8) {
        const uint8_t b = to_fp8(v);
        static_cast<uint8_t *>(nw)[e] = b;
        static_cast<uint8_t *>(cache)[slot * P.kvrow + e] = b;
    } else {
        const uint16_t b = to_bf(v);
        static_cast<uint16_t *>(nw)[e] = b;
        static_cast<uint16_t *>(cache)[slot * P.kvrow + e] = b;
    }
}

__global__ void __launch_bounds__(256) k_qkv_prep(const qkvf_p P, const rope_args ra)
{
    pdl_wait();
    pdl_trigger();
    __shared__ float part[4];
    const int bx = (int)blockIdx.x, warp = (int)threadIdx.x / kWarp, lane = (int)threadIdx.x % kWarp;
    const int half = P.hd / 2;
    int kind, row, i = 0;
    if (bx < P.qblocks + P.kblocks) {
        kind = bx < P.qblocks ? 0 : 1;
        const int b = kind == 0 ? bx : bx - P.qblocks, bph = half / 4;
        i = (b % bph) * 4 + (warp & 3);
        row = (b / bph) * P.hd + i + (warp >= 4 ? half : 0);
    } else {
        kind = 2;
        row = (bx - P.qblocks - P.kblocks) * 8 + warp;
    }
    const uint16_t *__restrict__ W = kind == 0 ? P.Wq : kind == 1 ? P.Wk : P.Wv;
    const float *__restrict__ bias = kind == 0 ? P.bq : kind == 1 ? P.bk : P.bv;
    /* this pair's RoPE factors (k_qk_prep's expressions), before the weight loop so that their latency hides */
    float cs = 0.f, sn = 0.f;
    const int64_t pos = P.pos[0];
    if (kind != 2 && warp < 4 && lane == 0) {
        const float p = (float)pos;
        const float ang = p * ra.inv_freq[i];
        cs = (float)cos((double)ang) * ra.scaling;
        sn = (float)sin((double)ang) * ra.scaling;
    }
    const uint4 *wrow = reinterpret_cast<const uint4 *>(W + (size_t)row * P.K);
    const int nchunk = P.K / 8;
    float acc = 0.f;
#pragma unroll 4
    for (int c = lane; c < nchunk; c += kWarp) {
        const uint4 w = ld_nc16(wrow + c);
        const float4 *xp = reinterpret_cast<const float4 *>(P.x + (size_t)c * 8);
        const float4 a = __ldg(xp), b = __ldg(xp + 1);
        const float xv[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
        acc = dot8_bf16_f32(w, xv, acc); /* dot8_bf16 of decode_kernels.cu: the same eight fmaf in the same order */
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    const float bv = bias ? bias[row] : 0.f;
    float v = acc + bv;
    const int64_t slot = pos % P.slots;
    if (kind == 2) {
        if (lane == 0) qkv_put(P, P.vnew, P.vc, row, slot, v);
        return;
    }
    if (P.rnd) v = rbf(v);
    if (warp >= 4 && lane == 0) part[warp - 4] = v;
    __syncthreads();
    if (warp < 4 && lane == 0) {
        const float a = v, b2 = part[warp];
        const float o1 = __fsub_rn(__fmul_rn(a, cs), __fmul_rn(b2, sn));
        const float o2 = __fadd_rn(__fmul_rn(b2, cs), __fmul_rn(a, sn));
        if (kind == 0) {
            P.q[row] = P.rnd ? rbf(o1) : o1;
            P.q[row + half] = P.rnd ? rbf(o2) : o2;
        } else {
            qkv_put(P, P.knew, P.kc, row, slot, o1);
            qkv_put(P, P.knew, P.kc, row + half, slot, o2);
        }
    }
}

dpb_status op_qkv_prep_kv(dpb_backend *b, const dpb_weight *const *w, const uint16_t *const *bias, const float *x,
                          float *q, float *k, float *v, int64_t nh, int64_t nkv, const uint16_t *q_norm,
                          const uint16_t *k_norm, float eps, const int64_t *pos, const dpb_rope_table *rt, bool round,
                          dpb_kv_dtype dt, void *knew, void *vnew, void *k_cache, void *v_cache, int64_t slots)
{
    cuda_impl *ci = impl_of(b);
    (void)k; (void)v; (void)eps;
    const int64_t hd = rt->head_dim;
    /* what linear_multi would run as one warp/row GEMV launch, and qk_prep_kv without head norms */
    bool ok = !(ci->unfused & 4) && ci->lmulti == 0 && !ci->gemv_mid_other && !q_norm && !k_norm && k_cache &&
              v_cache && slots >= 1 && hd >= 8 && hd % 8 == 0 && hd / 2 <= DPB_ROPE_MAX_HALF && nh >= 1 && nkv >= 1 &&
              al16(x);
    for (int i = 0; i < 3 && ok; i++)
        ok = w[i]->fmt == DPB_W_BF16 && !w[i]->transposed && w[i]->in == w[0]->in && al16(w[i]->data) &&
             w[i]->out == (i == 0 ? nh : nkv) * hd;
    const int64_t K = ok ? w[0]->in : 0, total = ok ? (nh + 2 * nkv) * hd : 0;
    ok = ok && K >= 8 && K % 8 == 0 && K <= INT32_MAX && total >= 2048 && total < 65536;
    if (!ok) return dpb_error_set(DPB_E_UNSUPPORTED, "cuda qkv_prep_kv: not the one-launch decode shape");
    const float *b32[3];
    for (int i = 0; i < 3; i++) {
        dpb_status s = bias_f32(ci, bias ? bias[i] : nullptr, w[i]->out, &b32[i]);
        if (s) return s;
    }
    const size_t es = dpb_kv_dtype_size(dt);
    dirty(ci, q, (size_t)(nh * hd) * 4);
    dirty(ci, knew, (size_t)(nkv * hd) * es);
    dirty(ci, vnew, (size_t)(nkv * hd) * es);
    dirty(ci, k_cache, (size_t)(slots * nkv * hd) * es);
    dirty(ci, v_cache, (size_t)(slots * nkv * hd) * es);
    qkvf_p P;
    P.Wq = static_cast<const uint16_t *>(w[0]->data);
    P.Wk = static_cast<const uint16_t *>(w[1]->data);
    P.Wv = static_cast<const uint16_t *>(w[2]->data);
    P.bq = b32[0]; P.bk = b32[1]; P.bv = b32[2];
    P.x = x;
    P.K = (int)K;
    P.hd = (int)hd;
    P.qblocks = (int)(nh * hd / 8);
    P.kblocks = (int)(nkv * hd / 8);
    P.q = q;
    P.pos = pos;
    P.rnd = round ? 1 : 0;
    P.kvt = (int)dt;
    P.knew = knew; P.vnew = vnew; P.kc = k_cache; P.vc = v_cache;
    P.slots = slots;
    P.kvrow = nkv * hd;
    rope_args ra;
    ra.head_dim = hd;
    ra.scaling = rt->attention_scaling;
    memcpy(ra.inv_freq, rt->inv_freq, sizeof ra.inv_freq);
    dpb_status s = cerr(pdl_launch(ci->pdl, k_qkv_prep, dim3((unsigned)(total / 8)), dim3(256), 0, ci->st, P, ra),
                        "qkv_prep_kv");
    if (!s && round) {
        if (ci->rounded.size() >= 16) ci->rounded.erase(ci->rounded.begin());
        ci->rounded.push_back({(uintptr_t)q, (uintptr_t)q + (size_t)(nh * hd) * 4});
    }
    return s;
}

/* ---- graphs ---- */

/* ---- decode attention of n sequences at once (attention_batch): block = (row r, kv head g, split s),
 * 4 warps.  The block holds the G = heads/kv_heads query heads of its group in shared memory and takes its
 * keys 32 at a time: K and V tiles (fp32, K rows padded to HD+1 floats so the 32 lanes' reads of one column
 * fall in different banks) are read once for all G heads; warp w runs heads w, w+4, ..: lane j scores key j,
 * the warp updates the head's running max and sum, and each lane accumulates HD/32 output dims.  The row's
 * own key and value come from k_new/v_new (position pos[r]), and split 0 writes them into the cache slot,
 * which no block of this launch reads.  Output: out directly (one split; sink folded in) or the split's
 * (O, M, L) for k_attn_combine. */
constexpr int kAbTile = 32, kAbMaxG = 16;

struct attnb_p {
    int64_t n, heads, kv_heads, slots, window;
    const float *q;
    const void *k_new, *v_new;
    void *const *ktab, *const *vtab;
    const int32_t *seq;
    const int64_t *pos;
    const uint16_t *sinks;
    float scale;
    float *out, *part;
    int nsplit;
};

template <typename KT, int HD>
__global__ void __launch_bounds__(128) k_attn_batch(const attnb_p P)
{
    constexpr int DPL = HD / 32, KS = HD + 1;
    __shared__ float sq[kAbMaxG * HD];
    __shared__ float sk[kAbTile * KS];
    __shared__ float sv[kAbTile * HD];
    const int tid = threadIdx.x, warp = tid / kWarp, lane = tid % kWarp;
    const int64_t r = blockIdx.x / P.kv_heads, g = blockIdx.x % P.kv_heads;
    const int G = (int)(P.heads / P.kv_heads), s = blockIdx.y;
    const int64_t kvd = P.kv_heads * HD, p = P.pos[r];
    const int32_t sq_id = P.seq[r];
    KT *kc = static_cast<KT *>(P.ktab[sq_id]), *vc = static_cast<KT *>(P.vtab[sq_id]);
    const KT *kn = static_cast<const KT *>(P.k_new) + r * kvd + g * HD, *vn = static_cast<const KT *>(P.v_new) + r * kvd + g * HD;
    if (s == 0)
        for (int d = tid; d < HD; d += blockDim.x) {
            kc[(p % P.slots) * kvd + g * HD + d] = kn[d];
            vc[(p % P.slots) * kvd + g * HD + d] = vn[d];
        }
    const int64_t lo = P.window > 0 && p - P.window + 1 > 0 ? p - P.window + 1 : 0, nk = p - lo + 1;
    int64_t chunk = (nk + P.nsplit - 1) / P.nsplit;
    if (chunk < 64) chunk = 64;
    const int64_t js = lo + s * chunk, je = js + chunk < p + 1 ? js + chunk : p + 1;
    for (int i = tid; i < G * HD; i += blockDim.x) sq[i] = P.q[(r * P.heads + g * G) * HD + i];
    float o[kAbMaxG / 4][DPL], m[kAbMaxG / 4], l[kAbMaxG / 4];
#pragma unroll
    for (int a = 0; a < kAbMaxG / 4; a++) {
        m[a] = -INFINITY;
        l[a] = 0.f;
#pragma unroll
        for (int i = 0; i < DPL; i++) o[a][i] = 0.f;
    }
    for (int64_t j0 = js; j0 < je; j0 += kAbTile) {
        const int cnt = je - j0 < kAbTile ? (int)(je - j0) : kAbTile;
        __syncthreads(); /* sq written / the previous tile consumed */
        for (int i = tid; i < kAbTile * HD; i += blockDim.x) {
            const int jj = i / HD, d = i % HD;
            float kx = 0.f, vx = 0.f;
            if (jj < cnt) {
                const int64_t j = j0 + jj;
                if (j == p) {
                    kx = kvf<KT>(kn[d]);
                    vx = kvf<KT>(vn[d]);
                } else {
                    kx = kvf<KT>(kc[(j % P.slots) * kvd + g * HD + d]);
                    vx = kvf<KT>(vc[(j % P.slots) * kvd + g * HD + d]);
                }
            }
            sk[jj * KS + d] = kx;
            sv[jj * HD + d] = vx;
        }
        __syncthreads();
#pragma unroll
        for (int a = 0; a < kAbMaxG / 4; a++) {
            const int hh = warp + 4 * a;
            if (hh >= G) break;
            float sc = -INFINITY;
            if (lane < cnt) {
                float dot = 0.f;
                const float *qh = sq + hh * HD, *kr = sk + lane * KS;
#pragma unroll 16
                for (int d = 0; d < HD; d++) dot = fmaf(qh[d], kr[d], dot);
                sc = dot * P.scale;
            }
            float tm = sc;
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, off));
            const float mn = fmaxf(m[a], tm);
            const float corr = m[a] == -INFINITY ? 0.f : expf(m[a] - mn);
            const float pe = lane < cnt ? expf(sc - mn) : 0.f;
            l[a] = l[a] * corr + wsum(pe);
#pragma unroll
            for (int i = 0; i < DPL; i++) o[a][i] *= corr;
            for (int jj = 0; jj < cnt; jj++) {
                const float pj = __shfl_sync(0xffffffffu, pe, jj);
#pragma unroll
                for (int i = 0; i < DPL; i++) o[a][i] = fmaf(pj, sv[jj * HD + lane + 32 * i], o[a][i]);
            }
            m[a] = mn;
        }
    }
#pragma unroll
    for (int a = 0; a < kAbMaxG / 4; a++) {
        const int hh = warp + 4 * a;
        if (hh >= G) break;
        const int64_t h = g * G + hh;
        if (P.nsplit == 1) {
            float M2 = m[a], sink = 0.f;
            if (P.sinks) { sink = bf(P.sinks[h]); M2 = fmaxf(m[a], sink); }
            const float f = m[a] == -INFINITY ? 0.f : expf(m[a] - M2);
            const float den = l[a] * f + (P.sinks ? expf(sink - M2) : 0.f);
#pragma unroll
            for (int i = 0; i < DPL; i++) P.out[(r * P.heads + h) * HD + lane + 32 * i] = den > 0.f ? o[a][i] * f / den : 0.f;
        } else {
            float *po = P.part + ((r * P.heads + h) * P.nsplit + s) * (HD + 2);
#pragma unroll
            for (int i = 0; i < DPL; i++) po[lane + 32 * i] = o[a][i];
            if (lane == 0) { po[HD] = m[a]; po[HD + 1] = l[a]; }
        }
    }
}

dpb_status attention_batch_body(dpb_backend *b, const dpb_attn_batch_args *a, bool *rounded)
{
    cuda_impl *ci = impl_of(b);
    if (a->n <= 0) return DPB_OK;
    const int64_t hd = a->head_dim;
    if ((hd != 32 && hd != 64 && hd != 128) || a->kv_heads < 1 || a->heads % a->kv_heads || a->heads / a->kv_heads > kAbMaxG ||
        a->n * a->kv_heads > INT32_MAX || a->slots < 1 || a->max_pos < 0)
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda attention (batch): heads %lld / kv %lld, head_dim %lld",
                             (long long)a->heads, (long long)a->kv_heads, (long long)hd);
    if (!(a->slots > a->max_pos || (a->window > 0 && a->slots >= a->window)))
        return dpb_error_set(DPB_E_ARG, "cuda attention (batch): %lld slots hold neither position %lld nor window %lld",
                             (long long)a->slots, (long long)a->max_pos, (long long)a->window);
    if (a->kv_dtype != DPB_KV_BF16 && a->kv_dtype != DPB_KV_F32 && a->kv_dtype != DPB_KV_FP8)
        return dpb_error_set(DPB_E_UNSUPPORTED, "cuda attention (batch): kv dtype %d", (int)a->kv_dtype);
    dirty(ci, a->out, (size_t)(a->n * a->heads * hd) * 4);
    if (dpb_attn_decode_enabled()) {
        /* flash-decoding (attn_decode.cu): one block per (row, kv head, split), merge in the last split */
        dpb_attn_decode_args d;
        memset(&d, 0, sizeof d);
        d.batch = true;
        d.n = a->n; d.heads = a->heads; d.kv_heads = a->kv_heads; d.head_dim = hd; d.slots = a->slots;
        d.window = a->window; d.kv_dtype = a->kv_dtype; d.q = a->q; d.k_new = a->k_new; d.v_new = a->v_new;
        d.k_tab = a->k_tab; d.v_tab = a->v_tab; d.seq = a->seq; d.pos = a->pos; d.sinks = a->sinks;
        d.scale = a->scale; d.out = a->out; d.sms = ci->sms; d.round_out = a->round_out;
        d.cap = a->window > 0 && a->window < a->max_pos + 1 ? a->window : a->max_pos + 1;
        if (dpb_attn_decode_supports(&d)) return attn_decode_run(ci, &d, rounded);
    }
    attnb_p P;
    P.n = a->n; P.heads = a->heads; P.kv_heads = a->kv_heads; P.slots = a->slots; P.window = a->window;
    P.q = a->q; P.k_new = a->k_new; P.v_new = a->v_new; P.ktab = a->k_tab; P.vtab = a->v_tab; P.seq = a->seq;
    P.pos = a->pos; P.sinks = a->sinks; P.scale = a->scale; P.out = a->out; P.part = nullptr;
    /* splits: enough blocks to fill the device twice over, >= 64 keys each, sized for the most keys a row can see */
    int64_t cap = a->window > 0 && a->window < a->max_pos + 1 ? a->window : a->max_pos + 1;
    int64_t maxs = (cap + 63) / 64, base = a->n * a->kv_heads, want = (2 * ci->sms + base - 1) / base;
    int64_t ns = want < maxs ? want : maxs;
    P.nsplit = (int)(ns < 1 ? 1 : ns > 64 ? 64 : ns);
    if (P.nsplit > 1) {
        void *ws;
        dpb_status s = ws_get(ci, (size_t)(a->n * a->heads * P.nsplit * (hd + 2)) * 4, &ws);
        if (s) return s;
        P.part = static_cast<float *>(ws);
    }
    dim3 g((unsigned)(a->n * a->kv_heads), (unsigned)P.nsplit);
    if (a->kv_dtype == DPB_KV_F32) {
        if (hd == 32) k_attn_batch<float, 32><<<g, 128, 0, ci->st>>>(P);
        else if (hd == 64) k_attn_batch<float, 64><<<g, 128, 0, ci->st>>>(P);
        else k_attn_batch<float, 128><<<g, 128, 0, ci->st>>>(P);
    } else if (a->kv_dtype == DPB_KV_FP8) {
        if (hd == 32) k_attn_batch<uint8_t, 32><<<g, 128, 0, ci->st>>>(P);
        else if (hd == 64) k_attn_batch<uint8_t, 64><<<g, 128, 0, ci->st>>>(P);
        else k_attn_batch<uint8_t, 128><<<g, 128, 0, ci->st>>>(P);
    } else {
        if (hd == 32) k_attn_batch<uint16_t, 32><<<g, 128, 0, ci->st>>>(P);
        else if (hd == 64) k_attn_batch<uint16_t, 64><<<g, 128, 0, ci->st>>>(P);
        else k_attn_batch<uint16_t, 128><<<g, 128, 0, ci->st>>>(P);
    }
    dpb_status s = launched("attention (batch)");
    if (s || P.nsplit == 1) return s;
    attn_p C;
    memset(&C, 0, sizeof C);
    C.n = a->n; C.heads = a->heads; C.kv_heads = a->kv_heads; C.hd = hd; C.sinks = a->sinks; C.out = a->out;
    C.part = P.part; C.nsplit = P.nsplit;
    k_attn_combine<<<(unsigned)(a->n * a->heads), 64, 0, ci->st>>>(C);
    return launched("attention (batch) combine");
}

/* after an attention into out[n] that succeeded: round it when asked and the kernel did not, and note it rounded
 * (q: the attention's query, whose own range is never extended over out: a later write to out would drop it) */
dpb_status attention_rounded(cuda_impl *ci, dpb_backend *b, float *out, int64_t n, bool want, bool rounded, const void *q)
{
    if (!want || n <= 0) return DPB_OK;
    if (!rounded) {
        /* k_round (op_round_bf16 notes the range; the coalescing below then does not apply) */
        dpb_status s = op_round_bf16(b, out, n);
        if (s) return s;
        ci->rounded.pop_back();
    }
    /* the engine's chunks of several sequences write adjacent parts of one buffer: one range for them, so the
     * 16 remembered ranges (q's among them) are not pushed out one part at a time */
    const uintptr_t a0 = (uintptr_t)out, a1 = a0 + (size_t)n * 4;
    for (auto &r : ci->rounded)
        if (r.b == a0 && !(r.a <= (uintptr_t)q && (uintptr_t)q < r.b)) {
            r.b = a1;
            return DPB_OK;
        }
    if (ci->rounded.size() >= 16) ci->rounded.erase(ci->rounded.begin());
    ci->rounded.push_back({a0, a1});
    return DPB_OK;
}

dpb_status op_attention(dpb_backend *b, const dpb_attn_args *a)
{
    bool rounded = false;
    dpb_status s = attention_body(b, a, &rounded);
    if (s || a->n <= 0) return s;
    return attention_rounded(impl_of(b), b, a->out, a->n * a->heads * a->head_dim, a->round_out, rounded, a->q);
}

/* attention_linear (backend.h): the prefill attention writes only the bf16 copy of its rounded output (no fp32 rows),
 * which the linear's GEMM takes; elsewhere the two operations as they are. */
dpb_status op_attention_linear(dpb_backend *b, const dpb_attn_args *a, const dpb_weight *w, const uint16_t *bias, float *y)
{
    cuda_impl *ci = impl_of(b);
    ci->attn_bf16_only = true;
    dpb_status s = op_attention(b, a);
    ci->attn_bf16_only = false;
    if (s) {
        ci->nof32_of = 0;
        return s;
    }
    s = op_linear(b, w, bias, a->out, a->n, y);
    ci->nof32_of = 0;
    return s;
}

dpb_status op_attention_batch(dpb_backend *b, const dpb_attn_batch_args *a)
{
    bool rounded = false;
    dpb_status s = attention_batch_body(b, a, &rounded);
    if (s || a->n <= 0) return s;
    return attention_rounded(impl_of(b), b, a->out, a->n * a->heads * a->head_dim, a->round_out, rounded, a->q);
}

dpb_status op_graph_begin(dpb_backend *b)
{
    cuda_impl *ci = impl_of(b);
    cudaGetLastError();
    return cerr(cudaStreamBeginCapture(ci->st, cudaStreamCaptureModeThreadLocal), "graph capture");
}

dpb_status op_graph_end(dpb_backend *b, void **out)
{
    cuda_impl *ci = impl_of(b);
    *out = nullptr;
    cudaGraph_t g = nullptr;
    cudaError_t e = cudaStreamEndCapture(ci->st, &g);
    if (e != cudaSuccess || !g) {
        if (g) cudaGraphDestroy(g);
        cudaGetLastError(); /* a failed capture leaves no sticky error */
        return cerr(e != cudaSuccess ? e : cudaErrorStreamCaptureInvalidated, "graph capture");
    }
    if (ci->pdl && getenv("DPB_CUDA_PDL_REPORT")) {
        /* whether the capture kept the programmatic launches as programmatic edges (a measurement aid) */
        size_t ne = 0, np = 0;
        if (cudaGraphGetEdges(g, nullptr, nullptr, nullptr, &ne) == cudaSuccess && ne) {
            std::vector<cudaGraphNode_t> f(ne), t(ne);
            std::vector<cudaGraphEdgeData> ed(ne);
            if (cudaGraphGetEdges(g, f.data(), t.data(), ed.data(), &ne) == cudaSuccess)
                for (size_t i = 0; i < ne; i++) np += ed[i].type == cudaGraphDependencyTypeProgrammatic;
        }
        cudaGetLastError();
        fprintf(stderr, "cuda graph: %zu edges, %zu programmatic (DPB_CUDA_PDL=%s)\n", ne, np,
                ci->pdl == 2 ? "early" : "wait");
    }
    cudaGraphExec_t x = nullptr;
    e = cudaGraphInstantiate(&x, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return cerr(e, "graph instantiate");
    }
    cuda_graph *cg = new (std::nothrow) cuda_graph{x, ci->epoch};
    if (!cg) {
        cudaGraphExecDestroy(x);
        return dpb_error_set(DPB_E_NOMEM, "graph: out of memory");
    }
    *out = cg;
    return DPB_OK;
}

dpb_status op_graph_launch(dpb_backend *b, void *graph, bool *stale)
{
    cuda_impl *ci = impl_of(b);
    cuda_graph *cg = static_cast<cuda_graph *>(graph);
    *stale = cg->epoch != ci->epoch;
    if (*stale) return DPB_OK;
    return cerr(cudaGraphLaunch(cg->exec, ci->st), "graph launch");
}

void op_graph_free(dpb_backend *, void *graph)
{
    cuda_graph *cg = static_cast<cuda_graph *>(graph);
    if (!cg) return;
    cudaGraphExecDestroy(cg->exec);
    delete cg;
}

/* ---- greedy sampling on the device ----
 * Grid (P, rows): block b of row r scans a slice of the row and writes the
 * best 64-bit key of the slice, ord_key(value) << 32 | (0xffffffff - id)
 * (NaN skipped, 0 = nothing), to part[r * P + b]; the last block of the row
 * to finish (a per-row counter) takes the largest of the P keys, so the
 * largest value wins and, among equal values, the lowest id; it writes the
 * id (0 when the row is all NaN, as the host rule gives) and resets the
 * counter for the next launch.  part and cnt: cuda_impl's argmax buffers. */
constexpr int kArgmaxThreads = 256;
constexpr int kArgmaxMaxParts = 128;  /* blocks per row */
constexpr int kArgmaxMaxRows = 256;   /* rows per launch (counters) */
constexpr int kArgmaxSlots = 8192;    /* partial keys per launch */
__device__ __forceinline__ unsigned long long argmax_key(float x, int64_t v)
{
    return x == x ? (unsigned long long)ord_key(x) << 32 | (uint32_t)(0xffffffffu - (uint32_t)v) : 0ull;
}
__device__ __forceinline__ unsigned long long block_max_u64(unsigned long long v, unsigned long long *red)
{
    v = wmax_u64(v);
    const int w = threadIdx.x / kWarp, l = threadIdx.x % kWarp;
    if (l == 0) red[w] = v;
    __syncthreads();
    if (w == 0) {
        v = l < (int)(blockDim.x / kWarp) ? red[l] : 0ull;
        v = wmax_u64(v);
    }
    return v; /* valid in thread 0 */
}
__global__ void __launch_bounds__(kArgmaxThreads) k_argmax(const float *__restrict__ lg, int64_t V, int64_t chunk,
                                                           unsigned long long *part, unsigned int *cnt,
                                                           int32_t *__restrict__ ids)
{
    pdl_wait();
    pdl_trigger();
    __shared__ unsigned long long red[kArgmaxThreads / kWarp];
    __shared__ bool last;
    const int P = (int)gridDim.x, r = (int)blockIdx.y;
    const float *row = lg + (int64_t)r * V;
    const int64_t v0 = (int64_t)blockIdx.x * chunk, v1 = min(V, v0 + chunk);
    unsigned long long best = 0;
    /* 8 loads in flight per thread; coalesced across the block */
    for (int64_t base = v0; base < v1; base += 8 * kArgmaxThreads) {
        float x[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int64_t v = base + u * kArgmaxThreads + threadIdx.x;
            x[u] = v < v1 ? __ldg(row + v) : __int_as_float(0x7fc00000);
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const unsigned long long key = argmax_key(x[u], base + u * kArgmaxThreads + threadIdx.x);
            best = key > best ? key : best;
        }
    }
    best = block_max_u64(best, red);
    if (threadIdx.x == 0) {
        part[(size_t)r * P + blockIdx.x] = best;
        __threadfence();
        last = atomicAdd(&cnt[r], 1u) == (unsigned)(P - 1);
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    best = 0;
    for (int i = threadIdx.x; i < P; i += kArgmaxThreads) {
        const unsigned long long key = __ldcg(part + (size_t)r * P + i);
        best = key > best ? key : best;
    }
    __syncthreads(); /* red reused */
    best = block_max_u64(best, red);
    if (threadIdx.x == 0) {
        ids[r] = best == 0 ? 0 : (int32_t)(0xffffffffu - (uint32_t)(best & 0xffffffffu));
        cnt[r] = 0;
    }
}

dpb_status op_argmax(dpb_backend *b, const float *logits, int64_t n, int64_t V, int32_t *ids)
{
    cuda_impl *ci = impl_of(b);
    if (n <= 0) return DPB_OK;
    if (V < 1 || V > INT32_MAX || n > INT32_MAX)
        return dpb_error_set(DPB_E_ARG, "cuda argmax: %lld rows of %lld", (long long)n, (long long)V);
    if (!ci->amax_part) return dpb_error_set(DPB_E_INTERNAL, "cuda argmax: buffers missing");
    /* blocks per row: about two per multiprocessor over the launch, each
     * with at least 2048 values, at most kArgmaxMaxParts */
    const int64_t rows = n < kArgmaxMaxRows ? n : kArgmaxMaxRows;
    int64_t P = (2 * ci->sms + rows - 1) / rows;
    if (P > (V + 2047) / 2048) P = (V + 2047) / 2048;
    if (P > kArgmaxMaxParts) P = kArgmaxMaxParts;
    if (P > kArgmaxSlots / rows) P = kArgmaxSlots / rows;
    if (P < 1) P = 1;
    const int64_t chunk = (V + P - 1) / P;
    for (int64_t r0 = 0; r0 < n; r0 += rows) {
        const int64_t m = n - r0 < rows ? n - r0 : rows;
        dpb_status s = cerr(pdl_launch(ci->pdl, k_argmax, dim3((unsigned)P, (unsigned)m), dim3(kArgmaxThreads), 0, ci->st,
                                       (const float *)(logits + r0 * V), V, chunk, ci->amax_part, ci->amax_cnt, ids + r0),
                            "argmax");
        if (s) return s;
    }
    return DPB_OK;
}

/* ---- synthetic weights generated in place (dpb_fill_rule) ---- */

__device__ __forceinline__ uint64_t d_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

__global__ void k_fill(uint8_t *dst, uint64_t bytes, int kind, uint64_t key, uint64_t word, const uint16_t *__restrict__ tab)
{
    const uint64_t nw = (bytes + 7) / 8;
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < nw; i += (uint64_t)gridDim.x * blockDim.x) {
        uint64_t v = word;
        if (kind != DPB_FILL_CONST) {
            uint64_t h = d_mix64(key + i * 0x9e3779b97f4a7c15ull);
            v = kind == DPB_FILL_HASH ? h
                : (uint64_t)tab[h & 0xffff] | (uint64_t)tab[(h >> 16) & 0xffff] << 16 |
                      (uint64_t)tab[(h >> 32) & 0xffff] << 32 | (uint64_t)tab[h >> 48] << 48;
        }
        if (8 * i + 8 <= bytes && ((uintptr_t)dst & 7u) == 0) reinterpret_cast<uint64_t *>(dst)[i] = v;
        else
            for (uint64_t k = 0; k < 8 && 8 * i + k < bytes; k++) dst[8 * i + k] = (uint8_t)(v >> (8 * k));
    }
}

dpb_status op_fill(dpb_backend *b, void *dst, uint64_t bytes, const dpb_fill_rule *r)
{
    cuda_impl *ci = impl_of(b);
    if (!bytes) return DPB_OK;
    if (r->kind == DPB_FILL_NORMAL && !r->table) return dpb_error_set(DPB_E_ARG, "cuda fill: no table");
    if (r->kind == DPB_FILL_NORMAL && ci->fill_table_host != r->table) {
        cudaError_t e;
        if (!ci->fill_table) {
            if ((e = cudaMalloc(&ci->fill_table, 65536 * 2)) != cudaSuccess) return cerr(e, "fill table");
            ci->workspace += 65536 * 2;
            note_peak(ci);
        }
        if ((e = cudaMemcpy(ci->fill_table, r->table, 65536 * 2, cudaMemcpyHostToDevice)) != cudaSuccess)
            return cerr(e, "fill table upload");
        ci->fill_table_host = r->table;
    }
    dirty(ci, dst, (size_t)bytes);
    uint64_t nw = (bytes + 7) / 8, blocks = (nw + 255) / 256;
    if (blocks > 65536) blocks = 65536;
    k_fill<<<(unsigned)blocks, 256, 0, ci->st>>>(static_cast<uint8_t *>(dst), bytes, (int)r->kind, r->key, r->word,
                                                 ci->fill_table);
    return launched("fill");
}

const dpb_backend_ops k_cuda_ops = {
    "cuda", op_alloc, op_free, op_upload, op_download, op_copy, op_sync, op_map_host, op_destroy,
    op_embed, op_linear, op_rmsnorm, op_rope, op_attention, op_kv_write, op_to_kv, op_router_topk,
    op_moe, op_swiglu, op_add, op_round_bf16,
    op_kv_write_at, op_graph_begin, op_graph_end, op_graph_launch, op_graph_free, op_argmax, op_fill,
    op_add_rmsnorm, op_qk_prep, op_attention_batch, op_linear_multi, op_swiglu_bf16, op_router, op_qk_prep_kv,
    op_swiglu_down, op_qkv_prep_kv, op_swiglu_mlp, op_qkv_prep, op_attention_linear,
};

} // namespace

extern "C" dpb_status dpb_backend_cuda_open(int device, dpb_backend **out)
{
    *out = nullptr;
    const char *env = getenv("DPB_CUDA_DEVICE");
    if (env && *env) device = atoi(env);
    int prefill = kPrefillAuto;
    const char *pf = getenv("DPB_CUDA_PREFILL"), *grp = getenv("DPB_CUDA_MOE_GROUPED");
    if (pf && strcmp(pf, "new") == 0) prefill = kPrefillNew;
    else if (pf && strcmp(pf, "old") == 0) prefill = kPrefillOld;
    else if (pf && *pf && strcmp(pf, "auto") != 0)
        return dpb_error_set(DPB_E_ARG, "DPB_CUDA_PREFILL: '%s' is not auto, new or old", pf);
    int grouped = 0; /* DPB_CUDA_MOE_GROUPED=on: grouped MXFP4 experts for every n > 8; off: never */
    if (grp && strcmp(grp, "1") == 0) prefill = kPrefillNew; /* the earlier name of DPB_CUDA_PREFILL=new */
    else if (grp && strcmp(grp, "on") == 0) grouped = 1;
    else if (grp && strcmp(grp, "off") == 0) grouped = -1;
    else if (grp && *grp && strcmp(grp, "auto") != 0)
        return dpb_error_set(DPB_E_ARG, "DPB_CUDA_MOE_GROUPED: '%s' is not auto, on, off or 1", grp);
    /* DPB_CUDA_PDL: programmatic dependent launch of the decode-step kernels (pdl.h): wait (the default), early, off */
    const char *pdl = getenv("DPB_CUDA_PDL");
    int pdl_mode = 1;
    if (pdl && (!strcmp(pdl, "off") || !strcmp(pdl, "0"))) pdl_mode = 0;
    else if (pdl && !strcmp(pdl, "early")) pdl_mode = 2;
    else if (pdl && *pdl && strcmp(pdl, "wait") != 0 && strcmp(pdl, "auto") != 0)
        return dpb_error_set(DPB_E_ARG, "DPB_CUDA_PDL: '%s' is not wait, early or off", pdl);
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count < 1) {
        cudaGetLastError();
        return dpb_error_set(DPB_E_UNAVAILABLE, "backend 'cuda': no CUDA device (%s)",
                             e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    }
    if (device < 0 || device >= count)
        return dpb_error_set(DPB_E_ARG, "backend 'cuda': device %d is outside [0, %d)", device, count);
    if ((e = cudaSetDevice(device)) != cudaSuccess) return cerr(e, "set device");
    dpb_backend *b = static_cast<dpb_backend *>(calloc(1, sizeof *b));
    void *mem = calloc(1, sizeof(cuda_impl));
    if (!b || !mem) {
        free(b);
        free(mem);
        return dpb_error_set(DPB_E_NOMEM, "backend: out of memory");
    }
    cuda_impl *ci = new (mem) cuda_impl();
    ci->device = device;
    ci->prefill = prefill;
    const char *lm = getenv("DPB_CUDA_LINEAR_MULTI");
    ci->lmulti = lm && strcmp(lm, "split") == 0 ? 1 : lm && strcmp(lm, "off") == 0 ? 2 : 0;
    const char *uf = getenv("DPB_CUDA_UNFUSED");
    ci->unfused = uf && strcmp(uf, "router") == 0 ? 1 : uf && strcmp(uf, "qkkv") == 0 ? 2 : uf && strcmp(uf, "qkv") == 0 ? 4
                : uf && strcmp(uf, "all") == 0 ? 7 : 0;
    const char *gmid = getenv("DPB_CUDA_GEMV_MID");
    ci->gemv_mid_other = gmid && (!strcmp(gmid, "2rows") || !strcmp(gmid, "splitK4") || !strcmp(gmid, "splitK8"));
    ci->pdl = pdl_mode; /* DPB_CUDA_PDL, read above */
    if (pdl_set_mode(ci->pdl) != cudaSuccess || dpb_cuda_gemv_pdl(ci->pdl) != cudaSuccess ||
        dpb_attn_decode_pdl(ci->pdl) != cudaSuccess) {
        cudaGetLastError();
        ci->pdl = 0;
    }
    int sms = 0;
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) == cudaSuccess && sms > 0) ci->sms = sms;
    ci->moe_grouped = grouped;
    const char *mt = getenv("DPB_CUDA_MOE_TILE");
    if (mt && *mt) {
        /* "64": token tile 64; "64w": and 32 weight rows per warp */
        const bool w32 = mt[strlen(mt) - 1] == 'w';
        const size_t len = strlen(mt) - (w32 ? 1 : 0);
        ci->moe_tile = len == 2 && !strncmp(mt, "32", 2) ? 32 : len == 2 && !strncmp(mt, "64", 2) ? 64
                     : len == 3 && !strncmp(mt, "128", 3) ? 128 : -1;
        if (ci->moe_tile > 0 && w32) ci->moe_tile |= DPB_CUDA_MOE_GROUPED_W32;
        if (ci->moe_tile < 0) {
            ci->~cuda_impl();
            free(mem);
            free(b);
            return dpb_error_set(DPB_E_ARG, "DPB_CUDA_MOE_TILE: '%s' is not 32, 64 or 128 (optionally followed by w)", mt);
        }
    }
    /* DPB_CUDA_MOE_WGMMA: the grouped MoE's wgmma kernels (sm_90a, where present): auto (the default: whenever the
     * grouped path runs with no token tile forced), on, off (the mma.sync kernels), merge (wgmma with an expert's last
     * <= 32 rows merged into its last tile: slower, for measurements) */
    const char *mw = getenv("DPB_CUDA_MOE_WGMMA");
    if (mw && *mw && strcmp(mw, "auto") != 0) {
        if (strcmp(mw, "on") != 0 && strcmp(mw, "off") != 0 && strcmp(mw, "merge") != 0) {
            ci->~cuda_impl();
            free(mem);
            free(b);
            return dpb_error_set(DPB_E_ARG, "DPB_CUDA_MOE_WGMMA: '%s' is not auto, on, off or merge", mw);
        }
        ci->moe_tile |= strcmp(mw, "off") == 0 ? DPB_CUDA_MOE_GROUPED_MMA
                      : strcmp(mw, "on") == 0 ? DPB_CUDA_MOE_GROUPED_WG
                                              : DPB_CUDA_MOE_GROUPED_WG | DPB_CUDA_MOE_GROUPED_WGMERGE;
    }
    const char *gm = getenv("DPB_CUDA_GEMM");
    ci->gemm_mode = gm && strcmp(gm, "tune") == 0 ? 0 : gm && strcmp(gm, "ex") == 0 ? 2 : 1;
    if (gm && *gm && ci->gemm_mode == 1 && strcmp(gm, "lt") != 0) {
        ci->~cuda_impl();
        free(mem);
        free(b);
        return dpb_error_set(DPB_E_ARG, "DPB_CUDA_GEMM: '%s' is not tune, lt or ex", gm);
    }
    const char *lut = getenv("DPB_CUDA_MOE_LUT");
    ci->moe_variant = lut && strcmp(lut, "1") == 0 ? DPB_CUDA_MOE_LUT : 0;
    const char *pfd = getenv("DPB_CUDA_PFD");
    ci->pfd = pfd && strstr(pfd, "noattnround") ? kPfdNoAttnRound : 0;
    const char *dpf = getenv("DPB_CUDA_DPF");
    ci->dpf = (dpf && strstr(dpf, "nomlp") ? kDpfNoMlp : 0) | (dpf && strstr(dpf, "nobias") ? kDpfNoBias : 0) |
              (dpf && strstr(dpf, "noqkv") ? kDpfNoQkv : 0) | (dpf && strstr(dpf, "oldsum") ? kDpfOldSum : 0) |
              (dpf && strstr(dpf, "noattnf32") ? kDpfNoAttnF32 : 0);
    const char *pf2 = getenv("DPB_CUDA_PF2");
    ci->pf2 = pf2 ? (strstr(pf2, "noqk") ? kPf2NoQk : 0) | (strstr(pf2, "nocopy") ? kPf2NoCopy : 0) |
                        (strstr(pf2, "nomlp") ? kPf2NoMlp : 0)
                  : 0;
    b->ops = &k_cuda_ops;
    b->impl = ci;
    b->threads = 1;
    b->simd = "cuda";
    b->host_memory = false;
    dpb_status s = DPB_OK;
    if ((e = cudaStreamCreate(&ci->st)) != cudaSuccess) s = cerr(e, "stream");
    else if (cublasCreate(&ci->blas) != CUBLAS_STATUS_SUCCESS)
        s = dpb_error_set(DPB_E_UNAVAILABLE, "backend 'cuda': cuBLAS could not be initialized");
    else if (cublasSetStream(ci->blas, ci->st) != CUBLAS_STATUS_SUCCESS)
        s = dpb_error_set(DPB_E_INTERNAL, "backend 'cuda': cublasSetStream failed");
    if (!s) {
        /* argmax's partial keys and row counters (zero between launches) */
        const size_t ab = (size_t)kArgmaxSlots * 8 + (size_t)kArgmaxMaxRows * 4;
        if ((e = cudaMalloc(&ci->amax_part, ab)) != cudaSuccess || (e = cudaMemset(ci->amax_part, 0, ab)) != cudaSuccess)
            s = cerr(e, "argmax buffers");
        else {
            ci->amax_cnt = reinterpret_cast<unsigned int *>(ci->amax_part + kArgmaxSlots);
            ci->workspace += ab;
            note_peak(ci);
        }
    }
    if (s) {
        dpb_backend_close(b);
        return s;
    }
    *out = b;
    return DPB_OK;
}

extern "C" dpb_status dpb_cuda_backend_mem(const dpb_backend *b, dpb_cuda_mem *out)
{
    *out = dpb_cuda_mem{};
    if (!b || b->ops != &k_cuda_ops) return dpb_error_set(DPB_E_ARG, "cuda memory: not a cuda backend");
    const cuda_impl *ci = impl_of(b);
    out->mapped = ci->mapped;
    out->allocated = ci->allocated;
    out->workspace = ci->workspace;
    out->peak = ci->peak;
    return DPB_OK;
}

extern "C" dpb_status dpb_cuda_copy_bandwidth(const dpb_backend *b, size_t bytes, int reps, double *gbps)
{
    *gbps = 0;
    if (!b || b->ops != &k_cuda_ops) return dpb_error_set(DPB_E_ARG, "cuda bandwidth: not a cuda backend");
    if (bytes < 4096 || reps < 1) return dpb_error_set(DPB_E_ARG, "cuda bandwidth: need >= 4096 bytes and 1 rep");
    const cuda_impl *ci = impl_of(b);
    void *a = nullptr, *c = nullptr;
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    dpb_status s = DPB_OK;
    cudaError_t e;
    if ((e = cudaMalloc(&a, bytes)) != cudaSuccess || (e = cudaMalloc(&c, bytes)) != cudaSuccess) {
        s = cerr(e, "bandwidth buffers");
        goto done;
    }
    cudaMemsetAsync(a, 1, bytes, ci->st);
    cudaMemsetAsync(c, 0, bytes, ci->st);
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int r = 0; r < reps; r++) {
        cudaEventRecord(e0, ci->st);
        cudaMemcpyAsync(c, a, bytes, cudaMemcpyDeviceToDevice, ci->st);
        cudaEventRecord(e1, ci->st);
        if ((e = cudaEventSynchronize(e1)) != cudaSuccess) {
            s = cerr(e, "bandwidth");
            goto done;
        }
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        double g = ms > 0 ? 2.0 * (double)bytes / (ms * 1e6) : 0;
        if (g > *gbps) *gbps = g;
    }
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(c);
    return s;
}
