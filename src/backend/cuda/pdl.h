/* Programmatic dependent launch for the decode-step kernels (session 6, docs/CUDA.md "Session 6: decode").
 *
 * DPB_CUDA_PDL (read when the backend opens): "off": plain launches.  "wait" (the default): the kernels are launched
 * with cudaLaunchAttributeProgrammaticStreamSerialization, so each may be scheduled before its predecessor in the
 * stream has finished, and every block of them executes griddepcontrol.wait before its first global read or write
 * (no explicit trigger: a predecessor's blocks trigger as they exit).  "early": the same, and each such kernel also
 * executes griddepcontrol.launch_dependents right after its wait, so that its successor's blocks are scheduled
 * while it runs.  griddepcontrol.wait returns at once in a kernel launched without the attribute, and it waits for
 * the whole predecessor grid (complete, memory visible), so the chain stays ordered: a kernel cannot finish before
 * its own wait returned.
 *
 * Included by the .cu files whose kernels take part; each keeps its own copy of the trigger flag (constant
 * memory, 0 until set), set by pdl_set_mode() of that file when the backend opens.  The kernels: embed (bf16),
 * rmsnorm / add + rmsnorm (k_norm4), the bf16 GEMV, qk_prep (k_qk_prep), qkv_prep_kv, flash-decoding attention,
 * the fused router, argmax, and the MoE expert kernels A and B (v3, decode_kernels.cu); the grouped prefill
 * kernels are launched as before. */
#ifndef DPB_CUDA_PDL_H
#define DPB_CUDA_PDL_H

#include <cuda_runtime.h>
#include <utility>

namespace {

__constant__ int pdl_mode_c; /* 0 off (the kernels skip both instructions), 1 wait, 2 wait and trigger early */

__device__ __forceinline__ void pdl_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (pdl_mode_c) asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (pdl_mode_c == 2) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* mode 0 off, 1 wait, 2 early: sets this file's flag (call outside any stream capture) */
inline cudaError_t pdl_set_mode(int mode)
{
    return cudaMemcpyToSymbol(pdl_mode_c, &mode, sizeof mode);
}

/* kernel<<<g, blk, sh, st>>>(args...), with the programmatic-serialization attribute when mode != 0 */
template <typename... KArgs, typename... Args>
inline cudaError_t pdl_launch(int mode, void (*kernel)(KArgs...), dim3 g, dim3 blk, size_t sh, cudaStream_t st,
                              Args &&...args)
{
    if (!mode) {
        kernel<<<g, blk, sh, st>>>(std::forward<Args>(args)...);
        return cudaGetLastError();
    }
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = g;
    cfg.blockDim = blk;
    cfg.dynamicSmemBytes = sh;
    cfg.stream = st;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

} // namespace

#endif
