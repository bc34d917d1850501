/* NVML (the NVIDIA Management Library), loaded at run time with dlopen.
 *
 * deploybench has no link dependency on NVML: dpb_nvml_open() loads
 * libnvidia-ml.so.1 (or the file named by the environment variable
 * DPB_NVML_LIBRARY), and when that fails the caller gets DPB_E_UNAVAILABLE
 * with "NVML unavailable: <reason>" (library not found, nvmlInit failed with
 * its error string, no devices).  A reading that cannot be taken is never
 * reported as 0: every metric of a sample has a valid bit, and a failing
 * metric keeps the NVML error code that explains why.
 *
 * NVML is thread-safe; a dpb_nvml is read-only after dpb_nvml_open, so any
 * thread may call dpb_nvml_read on it. */
#ifndef DPB_TELEMETRY_NVML_H
#define DPB_TELEMETRY_NVML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/status.h"

#define DPB_NVML_DEFAULT_LIBRARY "libnvidia-ml.so.1"
#define DPB_MAX_GPUS 64

/* The metrics of one GPU sample, in CSV column order. */
typedef enum dpb_gpu_metric {
    DPB_GPU_POWER = 0,   /* board power, W (nvmlDeviceGetPowerUsage, mW; a 1 s average on Ampere and newer except GA100) */
    DPB_GPU_POWER_INSTANT, /* instantaneous board power, W (nvmlDeviceGetFieldValues NVML_FI_DEV_POWER_INSTANT) */
    DPB_GPU_ENERGY,      /* total-energy counter since driver load, J (nvmlDeviceGetTotalEnergyConsumption, mJ; Volta+) */
    DPB_GPU_SM_CLOCK,    /* MHz */
    DPB_GPU_MEM_CLOCK,   /* MHz */
    DPB_GPU_TEMP,        /* GPU die temperature, C */
    DPB_GPU_UTIL,        /* % of the last sample period a kernel ran */
    DPB_GPU_MEM_UTIL,    /* % of the last sample period device memory was read or written */
    DPB_GPU_MEM_USED,    /* device memory used by all processes, bytes */
    DPB_GPU_PROC_MEM,    /* device memory used by this process, bytes (nvmlDeviceGetComputeRunningProcesses_v3) */
    DPB_GPU_THROTTLE,    /* clocks-event (throttle) reasons bitmask, nvmlClocksEventReason* bits */
    DPB_GPU_METRIC_COUNT
} dpb_gpu_metric;

#define DPB_GPU_ALL_METRICS ((1u << DPB_GPU_METRIC_COUNT) - 1u)
#define DPB_GPU_POWER_ENERGY ((1u << DPB_GPU_POWER) | (1u << DPB_GPU_POWER_INSTANT) | (1u << DPB_GPU_ENERGY))

/* The CSV column name of a metric, with its unit ("power_w", "energy_j", ...). */
const char *dpb_gpu_metric_column(dpb_gpu_metric m);

/* Error codes besides NVML's own (nvmlReturn_t values are >= 0). */
#define DPB_NVML_ERR_NO_FUNCTION (-1)  /* the loaded NVML lacks the function */
#define DPB_NVML_ERR_NO_PROCESS (-2)   /* this process is not in the device's compute-process list */
#define DPB_NVML_ERR_NOT_READ (-3)     /* not asked for in this sample */

/* One reading of one GPU.  A metric's value means something only when its bit
 * (1u << metric) is set in valid. */
typedef struct dpb_gpu_sample {
    uint64_t t_ns;             /* CLOCK_MONOTONIC, midpoint of the reading */
    uint16_t gpu;              /* NVML device index */
    uint16_t flags;            /* DPB_SAMPLE_* */
    uint32_t valid;
    uint32_t power_mw, power_instant_mw, sm_clock_mhz, mem_clock_mhz, temp_c, gpu_util_pct, mem_util_pct;
    uint64_t energy_mj, mem_used_bytes, proc_mem_bytes, throttle_reasons;
} dpb_gpu_sample;

#define DPB_SAMPLE_MARK 1u     /* taken at a dpb_sampler_mark, not by the polling thread */

typedef struct dpb_nvml dpb_nvml;

typedef struct dpb_gpu_info {
    unsigned index;
    char name[96];               /* "" when unavailable */
    char uuid[96];
    bool power_limit_ok;
    double power_limit_w;
    bool mem_total_ok;
    uint64_t mem_total_bytes;
    int name_err, uuid_err, power_limit_err, mem_total_err; /* NVML codes when not ok */
} dpb_gpu_info;

/* Loads NVML, initialises it and finds the devices.  DPB_E_UNAVAILABLE with
 * "NVML unavailable: ..." when the library cannot be loaded, lacks a required
 * function, nvmlInit_v2 fails, or there is no device. */
dpb_status dpb_nvml_open(dpb_nvml **out);
void dpb_nvml_close(dpb_nvml *n);

/* The library file that was loaded (DPB_NVML_LIBRARY or the default). */
const char *dpb_nvml_library(const dpb_nvml *n);
unsigned dpb_nvml_device_count(const dpb_nvml *n);
/* Driver version ("580.95.05") or NULL when NVML cannot say (reason in *err). */
const char *dpb_nvml_driver_version(const dpb_nvml *n, int *err);
/* CUDA version the driver supports, as NVML reports it (e.g. 13000), or 0 with *err set. */
int dpb_nvml_cuda_driver_version(const dpb_nvml *n, int *err);

/* Static facts of device idx (each with its own ok flag). */
dpb_status dpb_nvml_device_info(const dpb_nvml *n, unsigned idx, dpb_gpu_info *out);

/* Reads the metrics in mask (bits 1u << dpb_gpu_metric) of device idx into
 * *s (t_ns, gpu, valid set; flags left 0).  A metric that fails has its valid
 * bit clear and, when err is not NULL, its code in err[metric] (0 for metrics
 * read, DPB_NVML_ERR_NOT_READ for metrics not asked for).  DPB_E_ARG only for
 * a bad index. */
dpb_status dpb_nvml_read(const dpb_nvml *n, unsigned idx, uint32_t mask, dpb_gpu_sample *s,
                         int err[DPB_GPU_METRIC_COUNT]);

/* Text for an error code of dpb_nvml_read / dpb_gpu_info: nvmlErrorString's
 * for NVML codes, ours for the DPB_NVML_ERR_* codes.  n may be NULL. */
const char *dpb_nvml_error_string(const dpb_nvml *n, int code);

/* The names of the clocks-event reason bits set in mask, comma-separated
 * ("sw_power_cap,hw_thermal_slowdown"); "none" for 0. */
void dpb_nvml_throttle_names(uint64_t mask, char *buf, size_t cap);

#endif
