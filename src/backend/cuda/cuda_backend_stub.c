/* Without nvcc (make CUDA=0, the ASan build) the CUDA backend is absent. */
#include "backend/cuda/cuda_backend.h"

#ifndef DPB_HAVE_CUDA
dpb_status dpb_backend_cuda_open(int device, dpb_backend **out)
{
    (void)device;
    *out = NULL;
    return dpb_error_set(DPB_E_UNAVAILABLE, "backend 'cuda': CUDA backend not compiled in (built with CUDA=0 or without nvcc)");
}
dpb_status dpb_cuda_backend_mem(const dpb_backend *b, dpb_cuda_mem *out)
{
    (void)b;
    *out = (dpb_cuda_mem){0};
    return dpb_error_set(DPB_E_UNAVAILABLE, "CUDA backend not compiled in");
}
dpb_status dpb_cuda_copy_bandwidth(const dpb_backend *b, size_t bytes, int reps, double *gbps)
{
    (void)b; (void)bytes; (void)reps;
    *gbps = 0;
    return dpb_error_set(DPB_E_UNAVAILABLE, "CUDA backend not compiled in");
}
#else
typedef int dpb_cuda_backend_stub_unused;
#endif
