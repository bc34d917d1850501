/* Without nvcc the CUDA backend is absent; this says so. */
#include "backend/cuda/cuda_probe.h"
#include <string.h>

#ifndef DPB_HAVE_CUDA
dpb_status dpb_cuda_probe(dpb_cuda_info *info)
{
    memset(info, 0, sizeof *info);
    return dpb_error_set(DPB_E_UNAVAILABLE, "CUDA backend not compiled in (built with CUDA=0 or without nvcc)");
}
#else
typedef int dpb_cuda_stub_unused;
#endif
