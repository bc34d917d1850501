/* Decode (batch 1..8) kernels of the CUDA backend: bf16 GEMV, the MXFP4
 * expert kernels of gpt-oss, the fused router and decode attention.
 *
 * Every function takes device pointers and a stream, checks its shape
 * arguments, enqueues the work and returns without synchronizing: a launch
 * error is reported (DPB_E_INTERNAL, with the CUDA message), an error inside
 * the kernel surfaces at the caller's next synchronization.  Nothing here
 * allocates; the functions are safe to capture in a CUDA graph.
 *
 * bf16 tensors are passed as uint16_t (raw bits) so that C callers need no
 * CUDA headers beyond cuda_runtime_api.h.  Accumulation is fp32 throughout.
 * Layouts, variants and measured numbers: docs/CUDA.md.
 */
#ifndef DPB_CUDA_DECODE_KERNELS_H
#define DPB_CUDA_DECODE_KERNELS_H

#include <stdint.h>
#include <cuda_runtime_api.h>
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- bf16 GEMV: y[m][n] = sum_k W[n][k] * x[m][k] (+ bias[n]) -------------
 * W row-major [N, K] bf16, 16-byte aligned, K % 8 == 0.  x [M, K] fp32 or
 * bf16 (x_bf16 != 0), 16-byte aligned rows.  bias fp32 [N] or NULL.
 * y fp32 [M, N].  1 <= M <= 8. */
typedef enum dpb_cuda_gemv_variant {
    DPB_GEMV_AUTO = 0,   /* picks by N (see docs/CUDA.md) */
    DPB_GEMV_WARP_ROW,   /* one warp per row */
    DPB_GEMV_WARP_2ROW,  /* two rows per warp, x loads shared by the rows */
    DPB_GEMV_WARP_4ROW,  /* four rows per warp */
    DPB_GEMV_SPLITK4,    /* one row per 4 warps, K split 4 ways, smem reduce */
    DPB_GEMV_SPLITK8,    /* one row per block of 8 warps, K split 8 ways */
    DPB_GEMV_NVARIANTS
} dpb_cuda_gemv_variant;

const char *dpb_cuda_gemv_variant_name(dpb_cuda_gemv_variant v);

dpb_status dpb_cuda_gemv_bf16(const uint16_t *W, const float *bias, const void *x, int x_bf16,
                              float *y, int M, int N, int K, dpb_cuda_gemv_variant variant,
                              cudaStream_t stream);

/* The same for nseg <= DPB_CUDA_GEMV_MAX_SEGS matrices W[i] [N[i], K] that share x, in one launch
 * (q, k and v projections; gate and up): y[i] [M, N[i]] = x W[i]^T (+ bias[i], bias may be NULL or hold
 * NULLs), rounded to bf16 when rnd.  AUTO picks the variant by the rows of all matrices together. */
#define DPB_CUDA_GEMV_MAX_SEGS 3
/* Programmatic dependent launch of the GEMV kernels (pdl.h): 0 off, 1 wait, 2 early (the backend sets it from
 * DPB_CUDA_PDL when it opens; process-wide). */
cudaError_t dpb_cuda_gemv_pdl(int mode);
dpb_status dpb_cuda_gemv_bf16_multi(int nseg, const uint16_t *const *W, const float *const *bias,
                                    float *const *y, const int *N, const void *x, int x_bf16, int M, int K,
                                    int rnd, dpb_cuda_gemv_variant variant, cudaStream_t stream);

/* ---- gpt-oss MXFP4 experts ----------------------------------------------
 * Layout exactly as in the published checkpoints (per layer):
 *   gate_up_blocks u8 [E, 2I, H/32, 16]   rows interleaved: 2j = gate j, 2j+1 = up j
 *   gate_up_scales u8 [E, 2I, H/32]        E8M0: 2^(s-127)
 *   gate_up_bias   bf16 [E, 2I]
 *   down_blocks    u8 [E, H, I/32, 16]
 *   down_scales    u8 [E, H, I/32]
 *   down_bias      bf16 [E, H]
 * In a 16-byte block, byte j holds element 2j (low nibble) and 2j+1 (high
 * nibble), each an FP4 E2M1 code {0,.5,1,1.5,2,3,4,6} with sign bit 0x8.
 * H % 32 == 0, I % 32 == 0; blocks 16-byte aligned.
 *
 * Token m (0 <= m < M <= 8) uses experts ids[m*k .. m*k+k-1] (0 <= id < E) with
 * routing weights wts[m*k ..]. */

/* OR-ed into rows_per_warp of kernels A and B: decode the FP4 codes with
 * one lookup per byte in a 256-entry shared table of half2 pairs instead
 * of bit operations (a lab variant; docs/CUDA.md). */
#define DPB_CUDA_MOE_LUT 256
/* OR-ed into rows_per_warp of kernels A and B: the first version of the
 * kernels (one warp loops over its rows' chunks, R loads in flight; kept
 * for before/after timings).  Without it (and without DPB_CUDA_MOE_LUT)
 * rows_per_warp selects version 2 (docs/CUDA.md). */
#define DPB_CUDA_MOE_V1 512
/* OR-ed into rows_per_warp: version 2 (CUDA cores, all loads of a warp
 * issued up front; rows_per_warp's low bits: rows per warp, A 2/4/8,
 * B 1/2/4/8) or version 3 (tensor cores; low 4 bits: K splits 1/2/4, bits
 * 4-7: steps of 4 blocks per load batch 2/4; 0 = defaults).  rows_per_warp
 * 0 selects the default version (docs/CUDA.md). */
#define DPB_CUDA_MOE_V2 1024
#define DPB_CUDA_MOE_V3 2048

/* Kernel A: act[m*k+e][j] = swiglu(gate_j + bg, up_j + bu) for the k experts,
 * with g = min(g, limit), u = clamp(u, -limit, limit),
 * act = g * sigmoid(alpha g) * (u + 1).  x fp32 [M, H]; act fp32 [M*k, I].
 * rows_per_warp: weight rows per warp, 2, 4 or 8 (1, 2 or 4 gate/up pairs);
 * 0 = the default (8). */
dpb_status dpb_cuda_moe_gate_up_swiglu(const uint8_t *gate_up_blocks, const uint8_t *gate_up_scales,
                                       const uint16_t *gate_up_bias, const float *x,
                                       const int32_t *ids, float *act, int M, int k, int E,
                                       int H, int I, float alpha, float limit, int rows_per_warp,
                                       cudaStream_t stream);

/* Kernel B: out[m][h] = resid[m][h] + sum_e wts[m*k+e] * (down_e[h] . act[m*k+e] + b_e[h]).
 * act fp32 [M*k, I]; resid, out fp32 [M, H] (out may equal resid).
 * rows_per_warp: output rows per warp, 1, 2 or 4; 0 = the default (2). */
dpb_status dpb_cuda_moe_down_sum(const uint8_t *down_blocks, const uint8_t *down_scales,
                                 const uint16_t *down_bias, const float *act,
                                 const int32_t *ids, const float *wts, const float *resid,
                                 float *out, int M, int k, int E, int H, int I, int rows_per_warp,
                                 cudaStream_t stream);

/* The same two kernels with per-expert weight pointers (device arrays
 * btab[E], stab[E] of each expert's blocks and scales: experts need not be
 * contiguous), and rnd != 0 to round as the bf16 engine does: gate and up
 * (with bias) and the activation to bf16 in A, each expert's output (with
 * bias) to bf16 before it is weighted in B.  With btab == stab == NULL they
 * read the contiguous tensors like the functions above. */
dpb_status dpb_cuda_moe_gate_up_swiglu_ex(const uint8_t *gate_up_blocks, const uint8_t *gate_up_scales,
                                          const uint8_t *const *btab, const uint8_t *const *stab,
                                          const uint16_t *gate_up_bias, const float *x,
                                          const int32_t *ids, float *act, int M, int k, int E,
                                          int H, int I, float alpha, float limit, int rnd,
                                          int rows_per_warp, cudaStream_t stream);
dpb_status dpb_cuda_moe_down_sum_ex(const uint8_t *down_blocks, const uint8_t *down_scales,
                                    const uint8_t *const *btab, const uint8_t *const *stab,
                                    const uint16_t *down_bias, const float *act,
                                    const int32_t *ids, const float *wts, const float *resid,
                                    float *out, int M, int k, int E, int H, int I, int rnd,
                                    int rows_per_warp, cudaStream_t stream);

/* ---- Grouped MXFP4 experts, for many tokens (batched decode, prefill) ----
 * The same result as kernels A and B summed over the k experts (no
 * residual: out = sum_j wts[t k + j] * expert_j(x[t])), for any n >= 1:
 * the n*k (token, expert) pairs sorted by expert on the device, then each
 * active expert's MXFP4 weights streamed once per tile of 32 or 64 of its
 * tokens through tensor-core tiles (f16 operands, fp32 sums; activations
 * rounded to f16 after scaling each row by a power of two: 2^-12 relative),
 * with bias + clamped SwiGLU fused into gate_up and bias fused into down.
 * rnd rounds as kernels A/B do (gate, up, act, each expert's output to
 * bf16).  No host synchronization and fixed grids: capturable in a graph.
 * Weights: tab (device array [4E]: gate_up blocks, gate_up scales, down
 * blocks, down scales of each expert, as for the _ex kernels' btab/stab), or
 * tab == NULL and the contiguous [E, ...] tensors.  x fp32 [n, H], out fp32
 * [n, H] (may equal x: x is read before out is written), ids/wts [n, k];
 * n * k / (token tile) + E <= 65535.  An id outside [0, E) makes
 * its token's row NaN.  1 <= k <= 8, k <= E <= 1024, H and I multiples of 32
 * up to 4096.  variant: token tile 32, 64 or 128 (128 rows per block only), 0 = auto (by n*k / E), OR-ed
 * with DPB_CUDA_MOE_GROUPED_BM128 or _BM256: weight rows per block (default
 * 128, the faster at every n measured; docs/CUDA.md).
 * work: device scratch of dpb_cuda_moe_grouped_work_bytes bytes, 16-byte
 * aligned (about n*k*(4 max(H, I) + 2 I) + 2 n H bytes: 153 MB for 2048
 * tokens of gpt-oss). */
#define DPB_CUDA_MOE_GROUPED_BM128 256
#define DPB_CUDA_MOE_GROUPED_BM256 512
#define DPB_CUDA_MOE_GROUPED_WG 2048  /* the wgmma kernels (sm_90a, moe_wgmma.cu) for both matrices, token tile 128, where the
                                       * device and the build have them (else grp_gemm); auto (no tile, block size or rows per
                                       * warp forced) takes them too */
#define DPB_CUDA_MOE_GROUPED_MMA 4096 /* never the wgmma kernels (the mma.sync grp_gemm of sessions 3-4) */
#define DPB_CUDA_MOE_GROUPED_WGDEEP 8192     /* wgmma: a ring of 5 stages loaded 3 ahead, scales through L1 */
#define DPB_CUDA_MOE_GROUPED_WGSHALLOW 32768 /* wgmma: 4 stages loaded 2 ahead, the tile's scales in shared memory */
#define DPB_CUDA_MOE_GROUPED_WGMERGE 65536 /* wgmma: an expert's last <= 32 rows merged into the tile before (160 rows, one
                                            * wgmma n160, a kernel of its own at one block per SM): measured slower, lab only */
/* The wgmma kernels' configuration (moe_wgmma.h, dpb_cuda_grpwg_args.cfg): a variant with one of these flags takes
 * it, with the token tiles in expert order unless _WGLPT; otherwise DPB_CUDA_MOE_WGCFG (auto | coarse | fine | fine8
 * | bm256 | bm256fine | bm192) and DPB_CUDA_MOE_WGORDER (auto | lpt | expert) pick them, by default fine + lpt
 * (docs/CUDA.md, "Session 6: MoE prefill"). */
#define DPB_CUDA_MOE_GROUPED_WGCOARSE 4194304 /* wgmma: widths 32, 64 or 128 (session 5's kernel; "coarse") */
#define DPB_CUDA_MOE_GROUPED_WGFINE 131072 /* wgmma: widths in steps of 16 (a tile of r rows runs wgmma n = r rounded up to 16) */
#define DPB_CUDA_MOE_GROUPED_WGFINE8 1048576 /* wgmma: widths in steps of 8 */
#define DPB_CUDA_MOE_GROUPED_WG256 262144  /* wgmma: 256 weight rows per block (4 warpgroups, one block per SM), 6 stages;
                                            * with _WGFINE widths in steps of 16, else of 32 */
#define DPB_CUDA_MOE_GROUPED_WG192 524288  /* wgmma: 192 weight rows per block (3 warpgroups, one block per SM), 5 stages,
                                            * token tiles of up to 192 rows split evenly (an expert's rows in the fewest tiles) */
#define DPB_CUDA_MOE_GROUPED_WGLPT 2097152 /* wgmma: the token tiles longest first (full tiles, then the partial ones by
                                            * decreasing rows) */
#define DPB_CUDA_MOE_GROUPED_WGF32 16384 /* wgmma: act through fp32 and grp_prep's per-row scaling (else f16 from the epilogue) */
#define DPB_CUDA_MOE_GROUPED_W32 1024 /* 32 weight rows per warp (4 warps a block of 128 rows, 8 of 256 with token tile 64): each activation
                                       * fragment feeds two row tiles (half the shared-memory reads per MMA) */
dpb_status dpb_cuda_moe_grouped_work_bytes(int n, int k, int E, int H, int I, int variant, size_t *bytes);
dpb_status dpb_cuda_moe_grouped(const uint8_t *const *tab, const uint8_t *gate_up_blocks,
                                const uint8_t *gate_up_scales, const uint8_t *down_blocks,
                                const uint8_t *down_scales, const uint16_t *gate_up_bias,
                                const uint16_t *down_bias, const float *x, const int32_t *ids,
                                const float *wts, float *out, int n, int k, int E, int H, int I,
                                float alpha, float limit, int rnd, int variant, void *work,
                                size_t work_bytes, cudaStream_t stream);

/* Fused residual add + RMSNorm, one launch (one block per row):
 *   x[m][i] += r[m][i]                      (r == NULL: no add)
 *   if round_x: x[m][i] = bf16(x[m][i])     (stored back)
 *   y[m][i] = w[i] * (x[m][i] * s_m),  s_m = 1 / sqrt(mean_i x[m][i]^2 + eps)
 *   if round_y: y[m][i] = bf16(y[m][i])
 * x, r, y fp32 [rows, dim]; w bf16 [dim].  1 <= rows, 1 <= dim <= 8192.
 * y may equal r (each element is read before it is written, by the same
 * thread); x must not overlap r or y.  The bf16 rounding is
 * round-to-nearest-even, bit-exact with dpb_f32_to_bf16. */
dpb_status dpb_cuda_add_rmsnorm(float *x, const float *r, const uint16_t *w, float *y, int rows, int dim, float eps,
                                int round_x, int round_y, cudaStream_t stream);

/* Fused router: logits = Wr x + br (Wr bf16 [E, H], br bf16 [E], x fp32 [M, H]),
 * the k largest (ties: lower index first), softmax over those k.
 * ids int32 [M, k] in descending logit order, wts fp32 [M, k].
 * E <= 64, k <= 8, H % 8 == 0. */
dpb_status dpb_cuda_router_topk(const uint16_t *Wr, const uint16_t *br, const float *x,
                                int32_t *ids, float *wts, int M, int E, int H, int k,
                                cudaStream_t stream);

/* ---- Decode attention (flash-decoding), one new token -------------------
 * q     fp32 [Hq, D]            (already rotated)
 * kc,vc bf16 [Hkv, cap, D]      the layer's cache: position p of kv head g at
 *                               ((g * cap) + p) * D; positions 0..len-1 valid
 * sinks fp32 [Hq] or NULL       one logit per head, in the softmax denominator only
 * out   fp32 [Hq, D]
 * window > 0: only the last `window` positions (p >= len - window) are read.
 * scale: logit multiplier (1/sqrt(D)).  D == 64, Hq % Hkv == 0, Hq/Hkv <= 16.
 * work: scratch of dpb_cuda_attn_decode_work_bytes(Hq, D, nsplit) bytes;
 * nsplit: number of context splits (0 = auto, at most 64). */
#define DPB_CUDA_ATTN_MAX_SPLITS 64
dpb_status dpb_cuda_attn_decode_work_bytes(int Hq, int D, int nsplit, size_t *bytes);
/* The split count nsplit = 0 stands for, for a context of len and a window. */
dpb_status dpb_cuda_attn_decode_auto_splits(int len, int window, int *nsplit);
dpb_status dpb_cuda_attn_decode(const float *q, const uint16_t *kc, const uint16_t *vc,
                                const float *sinks, float *out, int Hq, int Hkv, int D, int cap,
                                int len, int window, float scale, int nsplit, void *work,
                                cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
