/* Grouped MXFP4 expert GEMMs on Hopper's warpgroup MMA (wgmma.mma_async,
 * sm_90a).  docs/CUDA.md, "Grouped MXFP4 experts" and "Session 5: MoE
 * prefill", "Session 6: MoE prefill".  Built for sm_90a and compute_80 PTX (Makefile): only the sm_90a
 * pass (__CUDA_ARCH_FEAT_SM90_ALL) compiles the kernel body; elsewhere the
 * kernels are empty stubs that dpb_cuda_grpwg_available() reports as absent,
 * and dpb_cuda_moe_grouped runs its mma.sync kernel instead.
 *
 * A block: 2 warpgroups (256 threads), 128 weight rows (64 per warpgroup) of
 * one expert and up to 128 of its sorted token rows (the sort's tile).  Per
 * step of 64 elements of K, cp.async brings the 128 rows' two MXFP4 blocks
 * (4 KB, as grp_gemm swizzles them) and the tile's token rows (N x 128 B of
 * f16, in the 128-byte swizzle that wgmma's descriptor reads) into a ring of
 * 4 stages, loaded 2 ahead (the stage before is still read by the wgmma group
 * in flight).  Each thread decodes its A fragments straight from the packed
 * codes (fp4_word_h2: lane (g, t) of warp w takes code word t of rows 16w + g
 * and + 8, exactly the m64nNk16 register fragment of A), multiplied in f16 by
 * 2^(s - smax_row - 1) (s: the block's E8M0 scale, smax_row: the row's largest
 * over K), and issues four wgmma m64nNk16 (A from registers, B = the token
 * rows from shared memory, fp32 accumulators); the row's 2^(smax - 126) and
 * the token's 2^-sigma come back in the epilogue.  Weights stay exact while a
 * row's scales lie within 2^22 of its largest (real checkpoints: ~2^10);
 * blocks more than 2^27 below it are dropped.  N (the wgmma width) follows the
 * tile's row count: rounded up to a multiple of 16 by default (cfg 1, session
 * 6: the cost of a block goes with N), to 32, 64 or 128 in cfg 0 (session 5);
 * other configurations (cfg, grp_wg_kernel) were measured and are kept for the
 * lab (docs/CUDA.md, "Session 6: MoE prefill").  gate_up can write act as f16 in the
 * order the down GEMM reads (out16, one power-of-two scale for all rows) and
 * down its output as bf16 bits when rounded to bf16 anyway (out_bf16).
 * Measured and kept off by default (docs/CUDA.md, "Session 5: MoE prefill"):
 * a ring of 5 stages with the scales read through L1 (deep), and an expert's
 * last <= 32 rows merged into its last tile (a kernel of its own, wgmma n160). */
#include "backend/cuda/moe_wgmma.h"

#include <cuda_fp16.h>
#include <atomic>
#include <math.h>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DPB_GRPWG_SM90A 1
#endif

namespace {

constexpr int kWgBM = 128;                 /* weight rows per block (cfg 2: 256, cfg 3: 192) */
constexpr int kWgBN = DPB_CUDA_GRPWG_TILE + 32; /* token rows per block of the merged tiles' kernel: a tile of 128 with a remainder of <= 32 merged */
constexpr int kWgBNMax = 192;              /* token rows per block (at most, cfg 3) */
static_assert(kWgBNMax >= kWgBN && kWgBNMax == DPB_CUDA_GRPWG_TILE3, "token rows per block");
constexpr int kWgStages = 4;     /* ring depth; DEEP: 5 (the scales then come from global memory through L1) */
constexpr int kWgStagesDeep = 5;
constexpr int kWgXB = DPB_CUDA_GRPWG_TILE * 128; /* activation bytes per stage (the merged tiles' kernel: kWgBN * 128) */
constexpr int kWgMaxNb = 128;      /* K <= 4096 */
/* the configurations (dpb_cuda_grpwg_args.cfg): rows per block, ring depth, token rows per block at most */
__host__ __device__ constexpr int wg_cfg_bm(int cfg) { return cfg == 2 || cfg == 4 ? 256 : cfg == 3 ? 192 : kWgBM; }
__host__ __device__ constexpr int wg_cfg_stages(int cfg) { return cfg == 2 || cfg == 4 ? 6 : cfg == 3 ? 5 : kWgStages; }
__host__ __device__ constexpr int wg_cfg_bn(int cfg) { return cfg == 3 ? 192 : DPB_CUDA_GRPWG_TILE; }

#ifdef DPB_GRPWG_SM90A
/* stages loaded ahead: ring depth - 2 (the stage before the current one is still read by the wgmma group in flight) */

/* ---- copies of decode_kernels.cu's helpers (that file's are file-local) ---- */
__device__ __forceinline__ float wg_bf16f(uint16_t u) { return __uint_as_float((uint32_t)u << 16); }
__device__ __forceinline__ float wg_round_bf16(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return __uint_as_float((u | 0x00400000u) & 0xffff0000u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return __uint_as_float(u & 0xffff0000u);
}
__device__ __forceinline__ float wg_swiglu(float gt, float up, float limit, float alpha, int rnd)
{
    if (rnd) { gt = wg_round_bf16(gt); up = wg_round_bf16(up); }
    gt = fminf(gt, limit);
    up = fminf(fmaxf(up, -limit), limit);
    const float av = gt / (1.f + expf(-alpha * gt)) * (up + 1.f);
    return rnd ? wg_round_bf16(av) : av;
}
__device__ __forceinline__ float wg_pow2f(int e) { return __uint_as_float((uint32_t)(e + 127) << 23); } /* e in [-126, 127] */
template <uint32_t M>
__device__ __forceinline__ uint32_t wg_bitsel(uint32_t a, uint32_t b)
{
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xb8;" : "=r"(d) : "r"(a), "n"(M), "r"(b));
    return d;
}
__device__ __forceinline__ uint32_t wg_mul(uint32_t x, uint32_t m)
{
    uint32_t d;
    asm("mul.lo.u32 %0, %1, %2;" : "=r"(d) : "r"(x), "r"(m));
    return d;
}
struct WgPow2 {
    uint32_t m1, m3, m8, m9;
};
/* the four half2 of one code word: h[j] = elements j (low) and j + 4 (high), as f16 value * 2^-14 */
__device__ __forceinline__ void wg_word_h2(uint32_t w, const WgPow2 &p2, uint32_t (&h)[4])
{
    constexpr uint32_t C = 0x8e008e00u;
    const uint32_t z = wg_bitsel<0x40404040u>(w, wg_mul(w, p2.m3));
    const uint32_t zo = wg_bitsel<0x0e0e0e0eu>(w, w >> 3);
    h[0] = wg_mul(z, p2.m9) & C;
    h[1] = wg_mul(zo, p2.m8) & C;
    h[2] = wg_mul(z, p2.m1) & C;
    h[3] = zo & C;
}
__device__ __forceinline__ void wg_cp16(uint32_t saddr, const void *gmem, bool valid)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(saddr), "l"(gmem), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void wg_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_cp_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }

/* ---- wgmma ---- */
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wg_arrive_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory"); }
__device__ __forceinline__ void wg_proxy_fence() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
template <int NR>
__device__ __forceinline__ void wg_pin(float (&d)[NR])
{
#pragma unroll
    for (int i = 0; i < NR; i++) asm volatile("" : "+f"(d[i])::"memory");
}
/* K-major operand in the 128-byte swizzle: rows of 128 bytes, 8-row groups
 * 1024 bytes apart (stride byte offset), leading byte offset unused */
__device__ __forceinline__ uint64_t wg_desc(uint32_t saddr)
{
    return (uint64_t)((saddr & 0x3ffffu) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

/* generated: one wrapper per wgmma width (A: 4 registers, B: descriptor, D: N/2 fp32) */
__device__ __forceinline__ void wg_mma_n8(float (&d)[4], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %9, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16 "
                 "{%0, %1, %2, %3}, "
                 "{%4,%5,%6,%7}, %8, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n16(float (&d)[8], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7}, "
                 "{%8,%9,%10,%11}, %12, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n24(float (&d)[12], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %17, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n24k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11}, "
                 "{%12,%13,%14,%15}, %16, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n32(float (&d)[16], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "
                 "{%16,%17,%18,%19}, %20, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n40(float (&d)[20], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %25, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n40k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19}, "
                 "{%20,%21,%22,%23}, %24, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n48(float (&d)[24], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %29, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n48k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23}, "
                 "{%24,%25,%26,%27}, %28, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n56(float (&d)[28], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %33, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n56k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27}, "
                 "{%28,%29,%30,%31}, %32, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n64(float (&d)[32], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                 "{%32,%33,%34,%35}, %36, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n72(float (&d)[36], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %41, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n72k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35}, "
                 "{%36,%37,%38,%39}, %40, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n80(float (&d)[40], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %45, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n80k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39}, "
                 "{%40,%41,%42,%43}, %44, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n88(float (&d)[44], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %49, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n88k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43}, "
                 "{%44,%45,%46,%47}, %48, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n96(float (&d)[48], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %53, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n96k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47}, "
                 "{%48,%49,%50,%51}, %52, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n104(float (&d)[52], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %57, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n104k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51}, "
                 "{%52,%53,%54,%55}, %56, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n112(float (&d)[56], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %61, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n112k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55}, "
                 "{%56,%57,%58,%59}, %60, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n120(float (&d)[60], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %65, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n120k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59}, "
                 "{%60,%61,%62,%63}, %64, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n128(float (&d)[64], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
                 "{%64,%65,%66,%67}, %68, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n160(float (&d)[80], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %85, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n160k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79}, "
                 "{%80,%81,%82,%83}, %84, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

__device__ __forceinline__ void wg_mma_n192(float (&d)[96], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %101, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n192k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}, "
                 "{%96,%97,%98,%99}, %100, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

template <int N>
__device__ __forceinline__ void wg_mma(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc)
{
    static_assert(N % 8 == 0 && N >= 8 && (N <= 128 || N == 160 || N == 192), "wgmma width without a wrapper");
    if constexpr (N == 192) wg_mma_n192(d, a, desc);
    else if constexpr (N == 160) wg_mma_n160(d, a, desc);
    else if constexpr (N == 128) wg_mma_n128(d, a, desc);
    else if constexpr (N == 120) wg_mma_n120(d, a, desc);
    else if constexpr (N == 112) wg_mma_n112(d, a, desc);
    else if constexpr (N == 104) wg_mma_n104(d, a, desc);
    else if constexpr (N == 96) wg_mma_n96(d, a, desc);
    else if constexpr (N == 88) wg_mma_n88(d, a, desc);
    else if constexpr (N == 80) wg_mma_n80(d, a, desc);
    else if constexpr (N == 72) wg_mma_n72(d, a, desc);
    else if constexpr (N == 64) wg_mma_n64(d, a, desc);
    else if constexpr (N == 56) wg_mma_n56(d, a, desc);
    else if constexpr (N == 48) wg_mma_n48(d, a, desc);
    else if constexpr (N == 40) wg_mma_n40(d, a, desc);
    else if constexpr (N == 32) wg_mma_n32(d, a, desc);
    else if constexpr (N == 24) wg_mma_n24(d, a, desc);
    else if constexpr (N == 16) wg_mma_n16(d, a, desc);
    else if constexpr (N == 8) wg_mma_n8(d, a, desc);
}

/* One block's GEMM with wgmma width N (the tile's rows <= N), BM weight rows (BM / 64 warpgroups, 2 BM threads),
 * a ring of S stages of XB activation bytes. */
template <bool SWIGLU, int N, bool DEEP, int XB, int BM, int S>
__device__ __forceinline__ void wg_body(const dpb_cuda_grpwg_args &a, uint32_t zero, uint8_t *sm, const int *srow,
                                        const float *sinv, int e, int row0, int cnt, int r0)
{
    const int nb = a.K / 32, K2 = a.K / 2;
    const int tid = threadIdx.x, wgi = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const uint8_t *eb = a.tab ? a.tab[e] : a.blocks + (size_t)e * a.R * nb * 16;
    const uint8_t *es = a.tab ? a.tab[a.E + e] : a.scales + (size_t)e * a.R * nb;
    constexpr int AHEAD = S - 2, T = 2 * BM, WB = BM * 32;
    static_assert(N * 128 <= XB && BM % 64 == 0, "wg_body: ring stage too small");
    uint8_t *sX = sm, *sW = sm + S * XB, *sS = sW + S * WB;
    const uint32_t sXa = (uint32_t)__cvta_generic_to_shared(sX), sWa = (uint32_t)__cvta_generic_to_shared(sW);
    /* the tile's scales, all of K, in the first cp.async group (bytes when unaligned); DEEP: read from global */
    const uint8_t *s0 = es + (size_t)r0 * nb;
    const int sbytes = min(BM, a.R - r0) * nb;
    if (DEEP) {
    } else if (((uintptr_t)s0 & 15u) == 0) {
        const uint32_t sSa = (uint32_t)__cvta_generic_to_shared(sS);
        for (int i = tid; i < (BM * nb + 15) / 16; i += T) {
            const int left = sbytes - 16 * i;
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(sSa + 16 * i), "l"(left > 0 ? s0 + 16 * i : s0),
                         "r"(left >= 16 ? 16 : (left > 0 ? left : 0)));
        }
    } else {
        for (int i = tid; i < BM * nb; i += T) sS[i] = i < sbytes ? __ldg(s0 + i) : (uint8_t)0;
    }
    const int nsteps = (nb + 1) / 2;
    auto load = [&](int step) {
        const int stage = step % S, kb0 = 2 * step;
        {
            const int row = tid >> 1, b = tid & 1; /* BM rows x 2 blocks: one 16-byte copy per thread */
            const bool ok = r0 + row < a.R && kb0 + b < nb;
            const uint8_t *gp = ok ? eb + ((size_t)(r0 + row) * nb + kb0 + b) * 16 : eb;
            wg_cp16(sWa + stage * WB + row * 32 + ((b ^ ((row >> 2) & 1)) * 16), gp, ok);
        }
#pragma unroll
        for (int u = 0; u < (N * 8 + T - 1) / T; u++) {
            const int i = tid + u * T, c = i >> 3, q = i & 7;
            if ((N * 8) % T != 0 && i >= N * 8) break;
            const bool ok = kb0 + (q >> 2) < nb;
            const uint32_t *gp = a.src + (size_t)srow[c] * K2 + (size_t)kb0 * 16 + q * 4;
            wg_cp16(sXa + stage * XB + c * 128 + ((q ^ (c & 7)) * 16), ok ? gp : a.src, ok);
        }
    };
#pragma unroll
    for (int s = 0; s < AHEAD; s++) {
        if (s < nsteps) load(s);
        wg_commit();
    }
    /* each row's largest scale (the 4 lanes of a row share the blocks) */
    const int ra = wgi * 64 + warp * 16 + g, rb = ra + 8;
    const bool va = r0 + ra < a.R, vb = r0 + rb < a.R;
    const uint8_t *gsa = s0 + (size_t)ra * nb, *gsb = s0 + (size_t)rb * nb; /* DEEP: the rows' scales in global memory */
    int ma = 0, mb = 0;
    if (DEEP) {
        for (int kb = t; kb < nb; kb += 4) {
            if (va) ma = max(ma, (int)__ldg(gsa + kb));
            if (vb) mb = max(mb, (int)__ldg(gsb + kb));
        }
    } else {
        wg_cp_wait<AHEAD - 1>(); /* group 0: the scales and stage 0 */
        __syncthreads();
        for (int kb = t; kb < nb; kb += 4) {
            ma = max(ma, (int)sS[ra * nb + kb]);
            mb = max(mb, (int)sS[rb * nb + kb]);
        }
    }
    ma = max(ma, __shfl_xor_sync(0xffffffffu, ma, 1));
    ma = max(ma, __shfl_xor_sync(0xffffffffu, ma, 2));
    mb = max(mb, __shfl_xor_sync(0xffffffffu, mb, 1));
    mb = max(mb, __shfl_xor_sync(0xffffffffu, mb, 2));
    float acc[N / 2];
#pragma unroll
    for (int i = 0; i < N / 2; i++) acc[i] = 0.f;
    const WgPow2 p2{2u + zero, 8u + zero, 256u + zero, 512u + zero};
    /* A fragments of one stage: [block][slice-pair regs]; two sets, the other one is read by the wgmma group in flight */
    uint32_t A0[2][8], A1[2][8];
    constexpr bool PB = N > 128 && BM == 128; /* the merged tiles: one wgmma group per 32-element block, 2 x 8 A registers (acc takes 80) */
    auto decode_block = [&](uint32_t (&Ab)[8], int step, int b, const int (&gsc)[4]) {
        const uint8_t *W = sW + (step % S) * WB;
        {
            const int kb = 2 * step + b;
            if (kb < nb) {
                const uint32_t wa = *reinterpret_cast<const uint32_t *>(W + ra * 32 + ((b ^ ((ra >> 2) & 1)) * 16) + t * 4);
                const uint32_t wb = *reinterpret_cast<const uint32_t *>(W + rb * 32 + ((b ^ ((rb >> 2) & 1)) * 16) + t * 4);
                const int sa = DEEP ? gsc[2 * b] : (int)sS[ra * nb + kb], sb = DEEP ? gsc[2 * b + 1] : (int)sS[rb * nb + kb];
                const int ja = sa - ma + 13, jb = sb - mb + 13;
                const uint32_t ea = ja < -14 ? 0u : (uint32_t)(ja + 15) << 10, ebx = jb < -14 ? 0u : (uint32_t)(jb + 15) << 10;
                const uint32_t mua = ea | (ea << 16), mub = ebx | (ebx << 16);
                uint32_t ha[4], hb[4];
                wg_word_h2(wa, p2, ha);
                wg_word_h2(wb, p2, hb);
#pragma unroll
                for (int q = 0; q < 4; q++) {
                    __half2 x = *reinterpret_cast<__half2 *>(&ha[q]);
                    __half2 r = __hmul2(x, *reinterpret_cast<const __half2 *>(&mua));
                    ha[q] = *reinterpret_cast<uint32_t *>(&r);
                    x = *reinterpret_cast<__half2 *>(&hb[q]);
                    r = __hmul2(x, *reinterpret_cast<const __half2 *>(&mub));
                    hb[q] = *reinterpret_cast<uint32_t *>(&r);
                }
                /* slice 2b: (ha0, hb0, ha1, hb1); slice 2b + 1: (ha2, hb2, ha3, hb3) */
                Ab[0] = ha[0]; Ab[1] = hb[0]; Ab[2] = ha[1]; Ab[3] = hb[1];
                Ab[4] = ha[2]; Ab[5] = hb[2]; Ab[6] = ha[3]; Ab[7] = hb[3];
            } else {
#pragma unroll
                for (int q = 0; q < 8; q++) Ab[q] = 0u;
            }
        }
    };
    auto decode = [&](uint32_t (&A)[2][8], int step, const int (&gsc)[4]) {
        decode_block(A[0], step, 0, gsc);
        decode_block(A[1], step, 1, gsc);
    };
    auto stepf = [&](uint32_t (&A)[2][8], int step) {
        int gsc[4] = {0, 0, 0, 0}; /* DEEP: this step's scales of rows ra, rb (blocks 2 step, 2 step + 1), asked before the wait */
        if (DEEP) {
#pragma unroll
            for (int b = 0; b < 2; b++)
                if (2 * step + b < nb) {
                    gsc[2 * b] = va ? (int)__ldg(gsa + 2 * step + b) : 0;
                    gsc[2 * b + 1] = vb ? (int)__ldg(gsb + 2 * step + b) : 0;
                }
        }
        wg_cp_wait<AHEAD - 1>();
        wg_proxy_fence();
        __syncthreads();
        if (step + AHEAD < nsteps) load(step + AHEAD);
        wg_commit();
        const uint32_t xs = sXa + (step % S) * XB;
        if constexpr (PB) {
            /* A0 only: its block b registers were read by the group of block b one step ago (done: wait<1> after
             * the group of block b ^ 1) */
#pragma unroll
            for (int b = 0; b < 2; b++) {
                decode_block(A0[b], step, b, gsc);
                wg_pin(acc);
                wg_fence();
#pragma unroll
                for (int s2 = 0; s2 < 2; s2++) {
                    const uint32_t af[4] = {A0[b][4 * s2], A0[b][4 * s2 + 1], A0[b][4 * s2 + 2], A0[b][4 * s2 + 3]};
                    wg_mma<N>(acc, af, wg_desc(xs + 32 * (2 * b + s2)));
                }
                wg_arrive_commit();
                wg_pin(acc);
                wg_wait<1>();
                wg_pin(acc);
            }
            (void)A;
        } else {
            decode(A, step, gsc);
            wg_pin(acc);
            wg_fence();
#pragma unroll
            for (int s = 0; s < 4; s++) {
                const uint32_t af[4] = {A[s >> 1][4 * (s & 1)], A[s >> 1][4 * (s & 1) + 1], A[s >> 1][4 * (s & 1) + 2],
                                        A[s >> 1][4 * (s & 1) + 3]};
                wg_mma<N>(acc, af, wg_desc(xs + 32 * s));
            }
            wg_arrive_commit();
            wg_pin(acc);
            wg_wait<1>();
            wg_pin(acc);
        }
    };
    int step = 0;
    for (; step + 1 < nsteps; step += 2) {
        stepf(A0, step);
        stepf(A1, step + 1);
    }
    if (step < nsteps) stepf(A0, step);
    wg_wait<0>();
    wg_pin(acc);
    wg_cp_wait<0>();
    /* row factors 2^(smax - 126) (E8M0 255 is NaN; 254 overflows) */
    auto rowf = [](int m) {
        return m >= 255 ? __int_as_float(0x7fc00000) : m >= 254 ? __int_as_float(0x7f800000) : wg_pow2f(m - 126);
    };
    const float fa = rowf(ma), fb = rowf(mb);
    const float oscale = wg_pow2f(a.osig);
    /* accumulators: acc[4j + 2h + i] is row ra + 8h, column 8j + 2t + i */
#pragma unroll
    for (int j = 0; j < N / 8; j++) {
        const int col = j * 8 + 2 * t;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int row = r0 + ra + 8 * h;
            const float rf = h ? fb : fa;
            const float v0 = acc[4 * j + 2 * h] * rf * sinv[col], v1 = acc[4 * j + 2 * h + 1] * rf * sinv[col + 1];
            if constexpr (SWIGLU) {
                /* gate row 2jj and up row 2jj + 1 sit in lanes g, g ^ 1: even g takes column 2t, odd g 2t + 1 */
                const bool odd = g & 1;
                const float other = __shfl_xor_sync(0xffffffffu, odd ? v0 : v1, 4);
                const int cc = odd ? col + 1 : col;
                const int grow = odd ? row - 1 : row;
                if (grow < a.R && cc < cnt) {
                    const int jj = grow / 2;
                    const uint16_t *bp = a.bias + (size_t)e * a.R + 2 * (size_t)jj;
                    const float av =
                        wg_swiglu((odd ? other : v0) + wg_bf16f(bp[0]), (odd ? v1 : other) + wg_bf16f(bp[1]), a.limit, a.alpha, a.rnd);
                    if (a.out16) {
                        /* f16 times 2^osig at element jj's place in the wgmma pair order (u32 4q + t of its block: 8t + q, + 4) */
                        const int m = jj & 31, wt = m >> 3, p = m & 7;
                        a.out16[(size_t)(row0 + cc) * (a.R / 2) + (jj & ~31) + 2 * (4 * (p & 3) + wt) + (p >> 2)] =
                            __half_as_ushort(__float2half_rn(av * oscale));
                    } else {
                        a.out[(size_t)(row0 + cc) * (a.R / 2) + jj] = av;
                    }
                }
            } else {
                if (row < a.R) {
                    const float bb = wg_bf16f(a.bias[(size_t)e * a.R + row]);
                    float y0 = v0 + bb, y1 = v1 + bb;
                    if (a.rnd) { y0 = wg_round_bf16(y0); y1 = wg_round_bf16(y1); }
                    if (a.out_bf16) { /* rounded to bf16 already: its bits, half the bytes */
                        uint16_t *o = reinterpret_cast<uint16_t *>(a.out);
                        if (col < cnt) o[(size_t)(row0 + col) * a.R + row] = (uint16_t)(__float_as_uint(y0) >> 16);
                        if (col + 1 < cnt) o[(size_t)(row0 + col + 1) * a.R + row] = (uint16_t)(__float_as_uint(y1) >> 16);
                    } else {
                        if (col < cnt) a.out[(size_t)(row0 + col) * a.R + row] = y0;
                        if (col + 1 < cnt) a.out[(size_t)(row0 + col + 1) * a.R + row] = y1;
                    }
                }
            }
        }
    }
}
#endif /* DPB_GRPWG_SM90A */

/* Grid: (R / BM row tiles, token-tile slots); slots past *ntiles return.
 * MERGED: the tiles of more than 128 rows only (one wgmma n160: 80 accumulators, so one block per multiprocessor
 * and no register cap of 128 that would serialize the wgmmas); else those of at most wg_cfg_bn(CFG) rows.
 * CFG (dpb_cuda_grpwg_args.cfg): 0: 128 weight rows, 4 stages, wgmma width 32, 64 or 128 (the tile's rows rounded up);
 * 1: the same with widths in steps of 16 (16..128); 2: 256 weight rows (4 warpgroups, one block per multiprocessor),
 * 6 stages, widths in steps of 32 up to 128; 3: 192 weight rows (3 warpgroups, one block per multiprocessor), 5 stages,
 * tiles of up to 192 token rows (grp_sort's balanced split), widths in steps of 32 up to 192; 4: 256 weight rows and
 * 6 stages (as 2) with widths in steps of 16; 5: as 0 with widths in steps of 8. */
template <bool SWIGLU, bool DEEP, bool MERGED, int CFG>
__global__ void __launch_bounds__(2 * wg_cfg_bm(CFG), (MERGED || wg_cfg_bm(CFG) > 128) ? 1 : 2)
    grp_wg_kernel(const dpb_cuda_grpwg_args a, uint32_t zero)
{
#ifdef DPB_GRPWG_SM90A
    constexpr int BM = wg_cfg_bm(CFG), T = 2 * BM, S = DEEP ? kWgStagesDeep : wg_cfg_stages(CFG);
    constexpr int XB = CFG == 3 ? 192 * 128 : kWgXB;
    __shared__ int srow[kWgBNMax]; /* static shared memory: dpb_cuda_grpwg_available tells the real kernel by it */
    __shared__ float sinv[kWgBNMax];
    extern __shared__ uint8_t wsm[];
    uint8_t *sm = wsm + ((1024u - ((uint32_t)__cvta_generic_to_shared(wsm) & 1023u)) & 1023u); /* the swizzle needs 1024-byte alignment */
    const int slot = blockIdx.y;
    if (slot >= *a.ntiles) return;
    const int e = a.tile[2 * slot] & 0xffff, row0 = a.tile[2 * slot + 1];
    const int cnt = min(MERGED ? kWgBN : wg_cfg_bn(CFG), a.tile[2 * slot] >> 16); /* the tile's rows (grp_sort: 1..128, up to 160 merged, up to 192 in cfg 3) */
    if (MERGED ? cnt <= DPB_CUDA_GRPWG_TILE : cnt > wg_cfg_bn(CFG)) return;
    const int r0 = blockIdx.x * BM;
    for (int i = threadIdx.x; i < kWgBNMax; i += T) {
        const int c = i < cnt ? i : 0; /* columns past the tile's rows repeat its first row (not stored) */
        const int sr = a.perm ? a.perm[row0 + c] / a.k : row0 + c;
        srow[i] = sr;
        sinv[i] = wg_pow2f(-(a.sig ? a.sig[sr] : a.sig_fixed));
    }
    __syncthreads();
    if constexpr (MERGED) {
        wg_body<SWIGLU, kWgBN, false, kWgBN * 128, kWgBM, kWgStages>(a, zero, sm, srow, sinv, e, row0, cnt, r0);
    } else if constexpr (CFG == 0) {
        if (cnt > 64) wg_body<SWIGLU, 128, DEEP, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0);
        else if (cnt > 32) wg_body<SWIGLU, 64, DEEP, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0);
        else wg_body<SWIGLU, 32, DEEP, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0);
    } else if constexpr (CFG == 5) {
        switch ((cnt + 7) >> 3) {
#define WG_CASE8(c) case c: wg_body<SWIGLU, 8 * c, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        WG_CASE8(1) WG_CASE8(2) WG_CASE8(3) WG_CASE8(4) WG_CASE8(5) WG_CASE8(6) WG_CASE8(7) WG_CASE8(8)
        WG_CASE8(9) WG_CASE8(10) WG_CASE8(11) WG_CASE8(12) WG_CASE8(13) WG_CASE8(14) WG_CASE8(15)
#undef WG_CASE8
        default: wg_body<SWIGLU, 128, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        }
    } else if constexpr (CFG == 1 || CFG == 4) {
        switch ((cnt + 15) >> 4) {
        case 1: wg_body<SWIGLU, 16, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        case 2: wg_body<SWIGLU, 32, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        case 3: wg_body<SWIGLU, 48, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        case 4: wg_body<SWIGLU, 64, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        case 5: wg_body<SWIGLU, 80, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        case 6: wg_body<SWIGLU, 96, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        case 7: wg_body<SWIGLU, 112, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        default: wg_body<SWIGLU, 128, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        }
    } else {
        switch ((cnt + 31) >> 5) {
        case 1: wg_body<SWIGLU, 32, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        case 2: wg_body<SWIGLU, 64, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        case 3: wg_body<SWIGLU, 96, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        case 4: wg_body<SWIGLU, 128, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        case 5: if constexpr (CFG == 3) wg_body<SWIGLU, 160, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        default: if constexpr (CFG == 3) wg_body<SWIGLU, 192, false, XB, BM, S>(a, zero, sm, srow, sinv, e, row0, cnt, r0); break;
        }
    }
#else
    (void)a;
    (void)zero;
#endif
}

/* dynamic shared memory: 1024 (alignment) + the ring (+ the tile's scales unless DEEP) */
constexpr size_t wg_smem(int cfg, bool deep, bool merged, int nb)
{
    return deep ? 1024 + (size_t)kWgStagesDeep * (kWgXB + kWgBM * 32)
                : 1024 + (size_t)(merged ? kWgStages : wg_cfg_stages(cfg)) *
                             ((size_t)(merged ? kWgBN : wg_cfg_bn(cfg)) * 128 + (size_t)(merged ? kWgBM : wg_cfg_bm(cfg)) * 32) +
                      ((size_t)(merged ? kWgBM : wg_cfg_bm(cfg)) * nb + 15) / 16 * 16;
}
static_assert(wg_smem(0, false, false, kWgMaxNb) <= 113 * 1024, "two blocks per multiprocessor");
static_assert(wg_smem(2, false, false, kWgMaxNb) <= 226 * 1024 && wg_smem(3, false, false, kWgMaxNb) <= 226 * 1024, "shared memory");

/* raises the kernel's dynamic shared memory limit once */
template <bool SWIGLU, bool DEEP, bool MERGED, int CFG>
cudaError_t wg_launch_one(const dpb_cuda_grpwg_args &a, int max_tiles, cudaStream_t stream)
{
    static std::atomic<int> raised{0};
    if (!raised.load(std::memory_order_relaxed)) {
        const cudaError_t ce = cudaFuncSetAttribute(grp_wg_kernel<SWIGLU, DEEP, MERGED, CFG>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    (int)wg_smem(CFG, DEEP, MERGED, kWgMaxNb));
        if (ce != cudaSuccess) return ce;
        raised.store(1, std::memory_order_relaxed);
    }
    constexpr int BM = MERGED ? kWgBM : wg_cfg_bm(CFG);
    const dim3 grid((unsigned)((a.R + BM - 1) / BM), (unsigned)max_tiles);
    grp_wg_kernel<SWIGLU, DEEP, MERGED, CFG><<<grid, 2 * BM, wg_smem(CFG, DEEP, MERGED, a.K / 32), stream>>>(a, 0u);
    return cudaGetLastError();
}

template <bool SWIGLU>
cudaError_t wg_launch(const dpb_cuda_grpwg_args &a, int max_tiles, int deep, cudaStream_t stream)
{
    if (a.cfg == 1) return wg_launch_one<SWIGLU, false, false, 1>(a, max_tiles, stream);
    if (a.cfg == 2) return wg_launch_one<SWIGLU, false, false, 2>(a, max_tiles, stream);
    if (a.cfg == 3) return wg_launch_one<SWIGLU, false, false, 3>(a, max_tiles, stream);
    if (a.cfg == 4) return wg_launch_one<SWIGLU, false, false, 4>(a, max_tiles, stream);
    if (a.cfg == 5) return wg_launch_one<SWIGLU, false, false, 5>(a, max_tiles, stream);
    if (a.merged) { /* the few merged tiles first (one block per multiprocessor), then the rest */
        const cudaError_t ce = wg_launch_one<SWIGLU, false, true, 0>(a, max_tiles, stream);
        if (ce != cudaSuccess) return ce;
    }
    return deep ? wg_launch_one<SWIGLU, true, false, 0>(a, max_tiles, stream) : wg_launch_one<SWIGLU, false, false, 0>(a, max_tiles, stream);
}

} // namespace

int dpb_cuda_grpwg_available(void)
{
    static std::atomic<int> cached[64];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0) {
        cudaGetLastError();
        return 0;
    }
    if (dev < 64) {
        const int c = cached[dev].load(std::memory_order_relaxed);
        if (c) return c > 0;
    }
    int major = 0, minor = 0, ok = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess && major == 9 && minor == 0) {
        cudaFuncAttributes fa;
        if (cudaFuncGetAttributes(&fa, grp_wg_kernel<true, false, false, 0>) == cudaSuccess) ok = fa.sharedSizeBytes > 0 && fa.binaryVersion == 90;
        else cudaGetLastError();
    } else {
        cudaGetLastError();
    }
    if (dev < 64) cached[dev].store(ok ? 1 : -1, std::memory_order_relaxed);
    return ok;
}

dpb_status dpb_cuda_grpwg_gemm(const dpb_cuda_grpwg_args *a, int max_tiles, int swiglu, int deep, cudaStream_t stream)
{
    if (!a || !a->src || (!a->sig && (a->sig_fixed < -126 || a->sig_fixed > 126)) || (a->out16 && !swiglu) ||
        (a->out16 && (a->osig < -126 || a->osig > 126)) || (a->out_bf16 && (swiglu || !a->rnd)) || !a->ntiles || !a->tile || !a->off || (!a->out && !a->out16) || !a->bias || (!a->tab && (!a->blocks || !a->scales)))
        return dpb_error_set(DPB_E_ARG, "cuda moe grouped wgmma: null argument");
    if (a->cfg < 0 || a->cfg > 5 || (a->cfg && (a->merged || deep)))
        return dpb_error_set(DPB_E_ARG, "cuda moe grouped wgmma: configuration %d (0..5; merged and deep with 0 only)", a->cfg);
    if (a->K < 32 || a->K % 32 || a->K > 32 * kWgMaxNb || a->R < 32 || a->R % 32 || max_tiles < 1 || max_tiles > 65535)
        return dpb_error_set(DPB_E_ARG, "cuda moe grouped wgmma: unsupported shape R=%d K=%d tiles=%d", a->R, a->K, max_tiles);
    const cudaError_t ce = swiglu ? wg_launch<true>(*a, max_tiles, deep, stream) : wg_launch<false>(*a, max_tiles, deep, stream);
    if (ce != cudaSuccess)
        return dpb_error_set(DPB_E_INTERNAL, "CUDA moe grouped wgmma %s: launch failed: %s", swiglu ? "gate_up" : "down",
                             cudaGetErrorString(ce));
    return DPB_OK;
}
