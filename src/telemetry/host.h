/* Host facts for manifests (CPU, memory, kernel, GPUs) and this process's
 * host memory (RSS and peak RSS from /proc/self/status). */
#ifndef DPB_TELEMETRY_HOST_H
#define DPB_TELEMETRY_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core/status.h"
#include "telemetry/nvml.h"

#define DPB_HOST_MAX_GPUS 16

typedef struct dpb_host_gpu {
    char name[96];
    char uuid[96];
    uint64_t mem_total_bytes;   /* 0 when unknown */
    double power_limit_w;       /* 0 when unknown */
} dpb_host_gpu;

typedef struct dpb_host_facts {
    char hostname[256];
    char cpu_model[256];        /* "" when /proc/cpuinfo has no model name */
    int cpu_threads;            /* online logical CPUs */
    uint64_t mem_total_bytes;   /* MemTotal; 0 when unreadable */
    char kernel[512];           /* uname: sysname release version machine */
    /* GPUs: from NVML when given, else from the CUDA probe. */
    char gpu_source[8];         /* "nvml", "cuda" or "" (none) */
    char gpu_unavailable[512];  /* why there are no GPU facts, when gpu_source is "" */
    int gpu_count;              /* devices seen (entries in gpu[] are the first DPB_HOST_MAX_GPUS) */
    dpb_host_gpu gpu[DPB_HOST_MAX_GPUS];
    char driver_version[96];    /* "" when unknown */
    int cuda_driver_version;    /* e.g. 13000; 0 when unknown */
    int cuda_runtime_version;   /* from the CUDA probe; 0 when unknown */
} dpb_host_facts;

/* Fills out; never fails (facts that cannot be read are empty/0, and the JSON
 * form says "unavailable").  nvml may be NULL. */
void dpb_host_facts_collect(const dpb_nvml *nvml, dpb_host_facts *out);
/* The facts as a JSON object (unknown values as "unavailable: ..." strings). */
cJSON *dpb_host_facts_json(const dpb_host_facts *h);

/* This process's resident set size and its peak (VmRSS, VmHWM), in bytes. */
dpb_status dpb_host_memory(uint64_t *rss_bytes, uint64_t *peak_rss_bytes);

/* Reads a small text file (sysfs, procfs: their sizes read as 0 or 4096) into
 * buf (NUL-terminated, at most cap-1 bytes; longer files are cut).  The error
 * names the path and the errno text. */
dpb_status dpb_read_text(const char *path, char *buf, size_t cap);

#endif
