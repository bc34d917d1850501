/* The CUDA backend (backend.h's op table on one device and one stream).
 * Built when nvcc is found; otherwise cuda_backend_stub.c says so.
 * Design and limits: docs/CUDA.md, section "Backend". */
#ifndef DPB_CUDA_BACKEND_H
#define DPB_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "backend/backend.h" /* no C++ guards of its own */

/* Opens device `device` (0 = the first; DPB_CUDA_DEVICE overrides when set).
 * DPB_E_UNAVAILABLE when not compiled in or no device is usable. */
dpb_status dpb_backend_cuda_open(int device, dpb_backend **out);

/* Device bytes held by the backend: weights mapped with map_host, buffers
 * from alloc, and its own workspace (scratch, fp32 bias copies, expert
 * tables); peak of that sum since open. */
typedef struct dpb_cuda_mem {
    uint64_t mapped, allocated, workspace, peak;
} dpb_cuda_mem;
dpb_status dpb_cuda_backend_mem(const dpb_backend *b, dpb_cuda_mem *out);

/* Device-to-device cudaMemcpy bandwidth (read + write bytes / time), best of
 * reps, in GB/s, on the backend's device. */
dpb_status dpb_cuda_copy_bandwidth(const dpb_backend *b, size_t bytes, int reps, double *gbps);

#ifdef __cplusplus
}
#endif
#endif
