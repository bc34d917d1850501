/* Prefill attention on the tensor cores (flash-attention-2 style) for the
 * CUDA backend: the semantics of dpb_attn_args (backend.h) exactly, for
 * bf16 KV, head_dim 64 or 128, and a query that is bf16-exact (the bf16
 * engine rounds q before attention; the caller must know it, e.g. through
 * the backend's record of round_bf16 ranges).
 *
 * One block per (query tile, head), the latest tiles first: q is converted
 * to bf16 once (fragments in registers, or a shared-memory tile); K and V
 * tiles of 64 or 128 positions go through shared memory by cp.async,
 * double buffered; S = q K^T and
 * O += P V by mma.sync m16n8k16 (bf16 operands, fp32 accumulation), with
 * ldmatrix (.trans for V); online softmax in fp32 (exp2, max per row);
 * P is rounded to bf16 for the P V product.  Tiles that no row of the block
 * sees (causal upper triangle, outside the window) are skipped, so sliding
 * layers cost O(n * window).  The sink joins the denominator at the end as
 * the other kernels fold it.  Design and measurements: docs/CUDA.md,
 * "Prefill attention on the tensor cores".
 *
 * Nothing here allocates or synchronizes; a launch error is reported
 * (DPB_E_INTERNAL), an error inside the kernel surfaces at the caller's
 * next synchronization. */
#ifndef DPB_CUDA_ATTN_PREFILL_H
#define DPB_CUDA_ATTN_PREFILL_H

#include <stdbool.h>
#include <cuda_runtime_api.h>
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "backend/backend.h" /* no C++ guards of its own */

/* Tile shapes: query rows per block x keys per tile (warps x rows per warp). */
typedef enum dpb_attn_prefill_variant {
    DPB_ATTN_PREFILL_AUTO = 0,     /* dpb_attn_prefill_pick's choice (docs/CUDA.md) */
    DPB_ATTN_PREFILL_Q64_K64,      /* 4 warps x 16 query rows, 64 keys per tile */
    DPB_ATTN_PREFILL_Q128_K64,     /* 8 warps x 16 rows, 64 keys */
    DPB_ATTN_PREFILL_Q64_K128,     /* 4 warps x 16 rows, 128 keys */
    DPB_ATTN_PREFILL_Q128_K128,    /* 8 warps x 16 rows, 128 keys */
    DPB_ATTN_PREFILL_Q128_K64_W4,  /* 4 warps x 32 rows, 64 keys (q through shared memory at head_dim 128) */
    DPB_ATTN_PREFILL_Q256_K64_W8,  /* 8 warps x 32 rows, 64 keys (likewise) */
    DPB_ATTN_PREFILL_NVARIANTS
} dpb_attn_prefill_variant;

const char *dpb_attn_prefill_variant_name(dpb_attn_prefill_variant v);

/* The variant DPB_ATTN_PREFILL_AUTO runs for a (by head_dim, window, depth and row count). */
dpb_attn_prefill_variant dpb_attn_prefill_pick(const dpb_attn_args *a);

/* True when the kernel takes this call: bf16 KV, head_dim 64 or 128,
 * 1 <= kv_heads, heads % kv_heads == 0, heads <= 65535, slots >= 1,
 * 0 <= pos0, pos0 + n < 2^30, window >= 0, q 16-byte and out 8-byte aligned,
 * k/v pointers 16-byte aligned.  (Whether q is bf16-exact is the caller's
 * business.) */
bool dpb_attn_prefill_supports(const dpb_attn_args *a);

/* Enqueues the attention of a on stream st.  DPB_E_UNSUPPORTED (with the
 * reason) when dpb_attn_prefill_supports(a) is false; n <= 0 does nothing. */
dpb_status dpb_attn_prefill_launch(const dpb_attn_args *a, dpb_attn_prefill_variant v, cudaStream_t st);

/* The same, with the output rounded to bf16 as it is written when round (round_bf16's rule: the same bits as
 * launch, then round_bf16 on out), and with out_bf16 (not null; needs round, 4-byte aligned, n * heads *
 * head_dim elements) also those bf16 bits, in out's layout. */
dpb_status dpb_attn_prefill_launch_out(const dpb_attn_args *a, dpb_attn_prefill_variant v, bool round,
                                       uint16_t *out_bf16, cudaStream_t st);
/* launch_out, and with bf16_only (round and out_bf16 given) those bf16 bits alone: out is not written. */
dpb_status dpb_attn_prefill_launch_bf16(const dpb_attn_args *a, dpb_attn_prefill_variant v, bool round,
                                        uint16_t *out_bf16, bool bf16_only, cudaStream_t st);

#ifdef __cplusplus
}
#endif
#endif
