/* What the CUDA backend sees: compiled in or not, devices, driver. */
#ifndef DPB_CUDA_PROBE_H
#define DPB_CUDA_PROBE_H

#include <stdbool.h>
#include <stdint.h>
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dpb_cuda_info {
    bool compiled;          /* built with nvcc */
    int device_count;
    int driver_version, runtime_version; /* e.g. 13000 */
    char name[256];         /* device 0 */
    uint64_t total_mem_bytes;
    int cc_major, cc_minor;
} dpb_cuda_info;

/* Fills info.  DPB_E_UNAVAILABLE with the reason when no device can be used
 * (info->compiled still says whether the backend was built). */
dpb_status dpb_cuda_probe(dpb_cuda_info *info);

#ifdef __cplusplus
}
#endif
#endif
