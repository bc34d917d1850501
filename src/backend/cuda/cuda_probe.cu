#include "backend/cuda/cuda_probe.h"

#include <cstdio>
#include <cstring>
#include <cuda_runtime.h>

extern "C" dpb_status dpb_cuda_probe(dpb_cuda_info *info)
{
    std::memset(info, 0, sizeof *info);
    info->compiled = true;
    cudaRuntimeGetVersion(&info->runtime_version);
    cudaDriverGetVersion(&info->driver_version);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return dpb_error_set(DPB_E_UNAVAILABLE, "CUDA: no usable device (%s)", cudaGetErrorString(e));
    }
    info->device_count = n;
    if (n == 0) return dpb_error_set(DPB_E_UNAVAILABLE, "CUDA: no device");
    cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, 0);
    if (e != cudaSuccess) return dpb_error_set(DPB_E_UNAVAILABLE, "CUDA: %s", cudaGetErrorString(e));
    std::snprintf(info->name, sizeof info->name, "%.*s", (int)sizeof p.name, p.name);
    info->total_mem_bytes = p.totalGlobalMem;
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    return DPB_OK;
}
