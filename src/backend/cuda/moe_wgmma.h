/* Grouped MXFP4 expert GEMMs on Hopper's warpgroup MMA (wgmma, sm_90a only).
 * Used by dpb_cuda_moe_grouped (decode_kernels.cu) for prefill-sized groups;
 * docs/CUDA.md, "Grouped MXFP4 experts" and "Session 5: MoE prefill".
 * C++ only (included by the CUDA sources). */
#ifndef DPB_BACKEND_CUDA_MOE_WGMMA_H
#define DPB_BACKEND_CUDA_MOE_WGMMA_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* token tile of the sort when the wgmma kernel runs (a block takes up to this
 * many of one expert's sorted rows, 32 more when grp_sort merged an expert's
 * last remainder of <= 32 rows into its last full tile; 128 weight rows per
 * block, 256 or 192 in cfg 2-4) */
#define DPB_CUDA_GRPWG_TILE 128
#define DPB_CUDA_GRPWG_TILE3 192 /* the token tile of cfg 3 */

/* One of the two GEMMs of the grouped op (same meaning as decode_kernels.cu's
 * GrpArgs).  src: f16 pairs [rows, K/2] in the wgmma pair order (grp_prep
 * with the wgmma layout: u32 4q + t of each 32-element block holds elements
 * 8t + q and 8t + q + 4). */
typedef struct dpb_cuda_grpwg_args {
    const uint8_t *const *tab; /* expert e's blocks / scales at tab[e], tab[E + e], or NULL */
    const uint8_t *blocks, *scales; /* contiguous [E, R, K/32, 16] / [E, R, K/32] when tab == NULL */
    const uint16_t *bias;      /* bf16 [E, R] */
    const uint32_t *src;       /* f16 pairs [*, K/2] */
    const int32_t *sig;        /* per src row: the row was scaled by 2^sig; NULL: every row by 2^sig_fixed */
    int sig_fixed;
    const int32_t *perm;       /* gate_up: sorted row -> pair (src row = pair / k); down: NULL */
    const int32_t *ntiles, *off;
    const int32_t *tile;       /* [2 i]: expert | rows << 16, [2 i + 1]: first sorted row */
    float *out;                /* gate_up: act [P, R/2] (SwiGLU); down: dn [P, R] */
    uint16_t *out16;           /* gate_up only, instead of out: act as f16 times 2^osig in the pair order of src */
    int osig;
    int out_bf16;              /* down with rnd only: dn stored as bf16 bits (uint16_t [P, R] at out) */
    int merged;                /* the sort merged remainders (tiles of up to 160 rows): launch their kernel too */
    int cfg;                   /* wgmma width = the tile's rows rounded up to: 0: 32, 64 or 128; 1: a multiple of 16; 5: of 8
                                * (128 weight rows per block, 4 stages); 2: 256 rows per block, 6 stages, a multiple of 32;
                                * 4: the same, a multiple of 16; 3: 192 rows per block, 5 stages, token tiles of up to 192
                                * rows (DPB_CUDA_GRPWG_TILE3, grp_sort's balanced split), a multiple of 32 */
    int R, K, E, k, rnd;
    float alpha, limit;
} dpb_cuda_grpwg_args;

/* 1 when the current device is compute capability 9.0 and this build holds the
 * sm_90a kernels (not the stubs of the compute_80 PTX); 0 otherwise. */
int dpb_cuda_grpwg_available(void);

/* Launches one GEMM on stream: grid (R / 128 row tiles, max_tiles token
 * tiles); swiglu: gate_up with the clamped SwiGLU epilogue, else down + bias;
 * deep: a ring of 5 stages loaded 3 ahead, the scales read through L1 (else 4
 * stages, 2 ahead, the tile's scales in shared memory).
 * K <= 4096, K and R multiples of 32. */
dpb_status dpb_cuda_grpwg_gemm(const dpb_cuda_grpwg_args *a, int max_tiles, int swiglu, int deep, cudaStream_t stream);

#endif
