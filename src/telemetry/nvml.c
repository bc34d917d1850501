/* NVML through dlopen/dlsym.  The few NVML types used are declared here from
 * the NVML API reference (opaque device handle, nvmlUtilization_t,
 * nvmlMemory_t, nvmlProcessInfo_t as taken by the _v3 process query). */
#include "telemetry/nvml.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/timeutil.h"

typedef int nvml_ret;                      /* nvmlReturn_t */
typedef struct nvml_device_st *nvml_dev;   /* nvmlDevice_t (opaque) */
typedef struct { unsigned int gpu, memory; } nvml_utilization;              /* nvmlUtilization_t */
typedef struct { unsigned long long total, free, used; } nvml_memory;      /* nvmlMemory_t */
typedef struct {                                                           /* nvmlFieldValue_t */
    unsigned int fieldId, scopeId;
    long long timestamp, latencyUsec;
    int valueType;                                                         /* nvmlValueType_t */
    nvml_ret nvmlReturn;
    union {                                                                /* nvmlValue_t */
        double dVal;
        unsigned int uiVal;
        unsigned long ulVal;
        unsigned long long ullVal;
        long long sllVal;
        int siVal;
        unsigned short usVal;
    } value;
} nvml_field_value;
typedef struct {                                                           /* nvmlProcessInfo_t (v2 layout) */
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvml_process_info;

enum {
    NVML_OK = 0,
    NVML_E_NOT_SUPPORTED = 3,
    NVML_E_INSUFFICIENT_SIZE = 7,
    NVML_CLOCK_SM = 1,
    NVML_CLOCK_MEM = 2,
    NVML_TEMPERATURE_GPU = 0,
    NVML_NAME_BUF = 96,    /* NVML_DEVICE_NAME_V2_BUFFER_SIZE */
    NVML_UUID_BUF = 96,    /* NVML_DEVICE_UUID_V2_BUFFER_SIZE */
    NVML_DRIVER_BUF = 80,  /* NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE */
    NVML_FI_DEV_POWER_INSTANT = 186,
};

struct dpb_nvml {
    void *lib;
    char library[512];
    unsigned count;
    nvml_dev dev[DPB_MAX_GPUS];
    char driver[NVML_DRIVER_BUF + 16];
    int driver_err;
    int cuda_version, cuda_err;
    nvml_ret (*init)(void);
    nvml_ret (*shutdown)(void);
    const char *(*error_string)(nvml_ret);
    nvml_ret (*sys_driver)(char *, unsigned int);
    nvml_ret (*sys_cuda)(int *);
    nvml_ret (*count_fn)(unsigned int *);
    nvml_ret (*handle)(unsigned int, nvml_dev *);
    nvml_ret (*name)(nvml_dev, char *, unsigned int);
    nvml_ret (*uuid)(nvml_dev, char *, unsigned int);
    nvml_ret (*power)(nvml_dev, unsigned int *);
    nvml_ret (*energy)(nvml_dev, unsigned long long *);
    nvml_ret (*clock)(nvml_dev, int, unsigned int *);
    nvml_ret (*temp)(nvml_dev, int, unsigned int *);
    nvml_ret (*util)(nvml_dev, nvml_utilization *);
    nvml_ret (*mem)(nvml_dev, nvml_memory *);
    nvml_ret (*reasons)(nvml_dev, unsigned long long *);
    nvml_ret (*procs)(nvml_dev, unsigned int *, nvml_process_info *);
    nvml_ret (*power_limit)(nvml_dev, unsigned int *);
    nvml_ret (*fields)(nvml_dev, int, nvml_field_value *);
};

static const char *const k_columns[DPB_GPU_METRIC_COUNT] = {
    "power_w", "power_instant_w", "energy_j", "sm_clock_mhz", "mem_clock_mhz", "temp_c",
    "gpu_util_pct", "mem_util_pct", "mem_used_bytes", "proc_mem_bytes", "throttle_reasons",
};

const char *dpb_gpu_metric_column(dpb_gpu_metric m)
{
    return (unsigned)m < DPB_GPU_METRIC_COUNT ? k_columns[m] : "?";
}

/* dlsym into a function pointer without the object/function pointer cast warning. */
static void sym(void *lib, const char *name, void *fnptr)
{
    void *p = dlsym(lib, name);
    memcpy(fnptr, &p, sizeof p);
}

const char *dpb_nvml_error_string(const dpb_nvml *n, int code)
{
    switch (code) {
    case DPB_NVML_ERR_NO_FUNCTION: return "function not present in this NVML library";
    case DPB_NVML_ERR_NO_PROCESS:
        return "this process is not in the device's compute-process list (no CUDA context on it, or a "
               "different PID namespace)";
    case DPB_NVML_ERR_NOT_READ: return "not read";
    default: break;
    }
    if (n && n->error_string) {
        const char *s = n->error_string(code);
        if (s) return s;
    }
    static __thread char buf[48];
    snprintf(buf, sizeof buf, "NVML error %d", code);
    return buf;
}

static dpb_status fail_open(dpb_nvml *n, const char *fmt, const char *a, const char *b)
{
    char msg[1024];
    snprintf(msg, sizeof msg, fmt, a, b);
    if (n) {
        if (n->lib) dlclose(n->lib);
        free(n);
    }
    return dpb_error_set(DPB_E_UNAVAILABLE, "NVML unavailable: %s", msg);
}

dpb_status dpb_nvml_open(dpb_nvml **out)
{
    *out = NULL;
    const char *path = getenv("DPB_NVML_LIBRARY");
    if (!path || !*path) path = DPB_NVML_DEFAULT_LIBRARY;
    dpb_nvml *n = calloc(1, sizeof *n);
    if (!n) return dpb_error_set(DPB_E_NOMEM, "NVML: out of memory");
    snprintf(n->library, sizeof n->library, "%s", path);
    dlerror();
    n->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!n->lib) {
        const char *e = dlerror();
        return fail_open(n, "library not found: cannot load %s (%s)", path, e ? e : "dlopen failed");
    }
    sym(n->lib, "nvmlInit_v2", &n->init);
    sym(n->lib, "nvmlShutdown", &n->shutdown);
    sym(n->lib, "nvmlErrorString", &n->error_string);
    sym(n->lib, "nvmlDeviceGetCount_v2", &n->count_fn);
    sym(n->lib, "nvmlDeviceGetHandleByIndex_v2", &n->handle);
    const char *missing = !n->init ? "nvmlInit_v2" : !n->shutdown ? "nvmlShutdown"
                        : !n->error_string ? "nvmlErrorString" : !n->count_fn ? "nvmlDeviceGetCount_v2"
                        : !n->handle ? "nvmlDeviceGetHandleByIndex_v2" : NULL;
    if (missing) return fail_open(n, "%s lacks %s (NVML too old?)", path, missing);
    sym(n->lib, "nvmlSystemGetDriverVersion", &n->sys_driver);
    sym(n->lib, "nvmlSystemGetCudaDriverVersion_v2", &n->sys_cuda);
    sym(n->lib, "nvmlDeviceGetName", &n->name);
    sym(n->lib, "nvmlDeviceGetUUID", &n->uuid);
    sym(n->lib, "nvmlDeviceGetPowerUsage", &n->power);
    sym(n->lib, "nvmlDeviceGetTotalEnergyConsumption", &n->energy);
    sym(n->lib, "nvmlDeviceGetClockInfo", &n->clock);
    sym(n->lib, "nvmlDeviceGetTemperature", &n->temp);
    sym(n->lib, "nvmlDeviceGetUtilizationRates", &n->util);
    sym(n->lib, "nvmlDeviceGetMemoryInfo", &n->mem);
    sym(n->lib, "nvmlDeviceGetCurrentClocksEventReasons", &n->reasons);
    if (!n->reasons) sym(n->lib, "nvmlDeviceGetCurrentClocksThrottleReasons", &n->reasons);
    sym(n->lib, "nvmlDeviceGetComputeRunningProcesses_v3", &n->procs);
    sym(n->lib, "nvmlDeviceGetPowerManagementLimit", &n->power_limit);
    sym(n->lib, "nvmlDeviceGetFieldValues", &n->fields);

    nvml_ret r = n->init();
    if (r != NVML_OK) {
        const char *e = n->error_string(r);
        char code[160];
        snprintf(code, sizeof code, "%s, code %d", e ? e : "unknown error", r);
        return fail_open(n, "nvmlInit_v2 failed in %s: %s", path, code);
    }
    unsigned int cnt = 0;
    r = n->count_fn(&cnt);
    if (r != NVML_OK || cnt == 0) {
        char why[160];
        if (r != NVML_OK) snprintf(why, sizeof why, "nvmlDeviceGetCount_v2 failed: %s", n->error_string(r));
        else snprintf(why, sizeof why, "no devices");
        n->shutdown();
        return fail_open(n, "%s (%s)", why, path);
    }
    if (cnt > DPB_MAX_GPUS) cnt = DPB_MAX_GPUS;
    for (unsigned i = 0; i < cnt; i++) {
        r = n->handle(i, &n->dev[i]);
        if (r != NVML_OK) {
            char why[200];
            snprintf(why, sizeof why, "nvmlDeviceGetHandleByIndex_v2(%u) failed: %s", i, n->error_string(r));
            n->shutdown();
            return fail_open(n, "%s (%s)", why, path);
        }
    }
    n->count = cnt;
    n->driver_err = DPB_NVML_ERR_NO_FUNCTION;
    if (n->sys_driver) {
        char buf[NVML_DRIVER_BUF] = {0};
        n->driver_err = n->sys_driver(buf, sizeof buf);
        if (n->driver_err == NVML_OK) {
            buf[sizeof buf - 1] = 0;
            snprintf(n->driver, sizeof n->driver, "%s", buf);
        }
    }
    n->cuda_err = DPB_NVML_ERR_NO_FUNCTION;
    if (n->sys_cuda) n->cuda_err = n->sys_cuda(&n->cuda_version);
    *out = n;
    return DPB_OK;
}

void dpb_nvml_close(dpb_nvml *n)
{
    if (!n) return;
    if (n->shutdown) n->shutdown();
    if (n->lib) dlclose(n->lib);
    free(n);
}

const char *dpb_nvml_library(const dpb_nvml *n) { return n->library; }
unsigned dpb_nvml_device_count(const dpb_nvml *n) { return n ? n->count : 0; }

const char *dpb_nvml_driver_version(const dpb_nvml *n, int *err)
{
    if (err) *err = n->driver_err;
    return n->driver_err == NVML_OK ? n->driver : NULL;
}

int dpb_nvml_cuda_driver_version(const dpb_nvml *n, int *err)
{
    if (err) *err = n->cuda_err;
    return n->cuda_err == NVML_OK ? n->cuda_version : 0;
}

dpb_status dpb_nvml_device_info(const dpb_nvml *n, unsigned idx, dpb_gpu_info *out)
{
    memset(out, 0, sizeof *out);
    if (!n || idx >= n->count)
        return dpb_error_set(DPB_E_ARG, "NVML: no GPU %u (%u device(s))", idx, n ? n->count : 0);
    nvml_dev d = n->dev[idx];
    out->index = idx;
    char buf[NVML_NAME_BUF > NVML_UUID_BUF ? NVML_NAME_BUF : NVML_UUID_BUF];
    out->name_err = DPB_NVML_ERR_NO_FUNCTION;
    if (n->name) {
        memset(buf, 0, sizeof buf);
        out->name_err = n->name(d, buf, NVML_NAME_BUF);
        buf[sizeof buf - 1] = 0;
        if (out->name_err == NVML_OK) snprintf(out->name, sizeof out->name, "%s", buf);
    }
    out->uuid_err = DPB_NVML_ERR_NO_FUNCTION;
    if (n->uuid) {
        memset(buf, 0, sizeof buf);
        out->uuid_err = n->uuid(d, buf, NVML_UUID_BUF);
        buf[sizeof buf - 1] = 0;
        if (out->uuid_err == NVML_OK) snprintf(out->uuid, sizeof out->uuid, "%s", buf);
    }
    out->power_limit_err = DPB_NVML_ERR_NO_FUNCTION;
    if (n->power_limit) {
        unsigned int mw = 0;
        out->power_limit_err = n->power_limit(d, &mw);
        if (out->power_limit_err == NVML_OK) {
            out->power_limit_ok = true;
            out->power_limit_w = mw / 1000.0;
        }
    }
    out->mem_total_err = DPB_NVML_ERR_NO_FUNCTION;
    if (n->mem) {
        nvml_memory m = {0};
        out->mem_total_err = n->mem(d, &m);
        if (out->mem_total_err == NVML_OK) {
            out->mem_total_ok = true;
            out->mem_total_bytes = m.total;
        }
    }
    return DPB_OK;
}

/* This process's used device memory from the compute-process list. */
static int read_proc_mem(const dpb_nvml *n, nvml_dev d, uint64_t *bytes)
{
    /* Room for twice the entries NVML is told about: should a future NVML
     * widen nvmlProcessInfo_t, it still writes inside the buffer. */
    nvml_process_info stack[64];
    nvml_process_info *info = stack;
    unsigned int cap = 32, cnt = cap;
    int r = n->procs(d, &cnt, info);
    if (r == NVML_E_INSUFFICIENT_SIZE && cnt > cap && cnt <= 65536) {
        /* The list grew past 32: ask again with room for what NVML said plus a margin. */
        cap = cnt + 16;
        info = calloc(2 * (size_t)cap, sizeof *info);
        if (!info) return NVML_E_INSUFFICIENT_SIZE;
        cnt = cap;
        r = n->procs(d, &cnt, info);
    }
    if (r == NVML_OK) {
        r = DPB_NVML_ERR_NO_PROCESS;
        unsigned int me = (unsigned int)getpid();
        for (unsigned i = 0; i < cnt && i < cap; i++) {
            if (info[i].pid == me) {
                *bytes = info[i].usedGpuMemory;
                r = NVML_OK;
                break;
            }
        }
    }
    if (info != stack) free(info);
    return r;
}

/* NVML_FI_DEV_POWER_INSTANT, in mW, whatever value type NVML chose. */
static int read_instant_power(const dpb_nvml *n, nvml_dev d, unsigned int *mw)
{
    nvml_field_value fv;
    memset(&fv, 0, sizeof fv);
    fv.fieldId = NVML_FI_DEV_POWER_INSTANT;
    int r = n->fields(d, 1, &fv);
    if (r != NVML_OK) return r;
    if (fv.nvmlReturn != NVML_OK) return fv.nvmlReturn;
    double v;
    switch (fv.valueType) {
    case 0: v = fv.value.dVal; break;
    case 1: v = fv.value.uiVal; break;
    case 2: v = (double)fv.value.ulVal; break;
    case 3: v = (double)fv.value.ullVal; break;
    case 4: v = (double)fv.value.sllVal; break;
    case 5: v = fv.value.siVal; break;
    case 6: v = fv.value.usVal; break;
    default: return NVML_E_NOT_SUPPORTED;
    }
    if (!(v >= 0 && v < 4e9)) return NVML_E_NOT_SUPPORTED;
    *mw = (unsigned int)(v + 0.5);
    return NVML_OK;
}

dpb_status dpb_nvml_read(const dpb_nvml *n, unsigned idx, uint32_t mask, dpb_gpu_sample *s,
                         int err[DPB_GPU_METRIC_COUNT])
{
    if (!n || idx >= n->count)
        return dpb_error_set(DPB_E_ARG, "NVML: no GPU %u (%u device(s))", idx, n ? n->count : 0);
    int e[DPB_GPU_METRIC_COUNT];
    for (int m = 0; m < DPB_GPU_METRIC_COUNT; m++) e[m] = DPB_NVML_ERR_NOT_READ;
    memset(s, 0, sizeof *s);
    s->gpu = (uint16_t)idx;
    nvml_dev d = n->dev[idx];
#define WANT(m) (mask & (1u << (m)))
    uint64_t t0 = dpb_now_ns();
    if (WANT(DPB_GPU_POWER)) {
        unsigned int mw = 0;
        e[DPB_GPU_POWER] = n->power ? n->power(d, &mw) : DPB_NVML_ERR_NO_FUNCTION;
        s->power_mw = mw;
    }
    if (WANT(DPB_GPU_POWER_INSTANT)) {
        unsigned int mw = 0;
        e[DPB_GPU_POWER_INSTANT] = n->fields ? read_instant_power(n, d, &mw) : DPB_NVML_ERR_NO_FUNCTION;
        s->power_instant_mw = mw;
    }
    if (WANT(DPB_GPU_ENERGY)) {
        unsigned long long mj = 0;
        e[DPB_GPU_ENERGY] = n->energy ? n->energy(d, &mj) : DPB_NVML_ERR_NO_FUNCTION;
        s->energy_mj = mj;
    }
    uint64_t t1 = dpb_now_ns();
    if (WANT(DPB_GPU_SM_CLOCK)) {
        unsigned int v = 0;
        e[DPB_GPU_SM_CLOCK] = n->clock ? n->clock(d, NVML_CLOCK_SM, &v) : DPB_NVML_ERR_NO_FUNCTION;
        s->sm_clock_mhz = v;
    }
    if (WANT(DPB_GPU_MEM_CLOCK)) {
        unsigned int v = 0;
        e[DPB_GPU_MEM_CLOCK] = n->clock ? n->clock(d, NVML_CLOCK_MEM, &v) : DPB_NVML_ERR_NO_FUNCTION;
        s->mem_clock_mhz = v;
    }
    if (WANT(DPB_GPU_TEMP)) {
        unsigned int v = 0;
        e[DPB_GPU_TEMP] = n->temp ? n->temp(d, NVML_TEMPERATURE_GPU, &v) : DPB_NVML_ERR_NO_FUNCTION;
        s->temp_c = v;
    }
    if (WANT(DPB_GPU_UTIL) || WANT(DPB_GPU_MEM_UTIL)) {
        nvml_utilization u = {0, 0};
        int r = n->util ? n->util(d, &u) : DPB_NVML_ERR_NO_FUNCTION;
        if (WANT(DPB_GPU_UTIL)) e[DPB_GPU_UTIL] = r;
        if (WANT(DPB_GPU_MEM_UTIL)) e[DPB_GPU_MEM_UTIL] = r;
        s->gpu_util_pct = u.gpu;
        s->mem_util_pct = u.memory;
    }
    if (WANT(DPB_GPU_MEM_USED)) {
        nvml_memory m = {0, 0, 0};
        e[DPB_GPU_MEM_USED] = n->mem ? n->mem(d, &m) : DPB_NVML_ERR_NO_FUNCTION;
        s->mem_used_bytes = m.used;
    }
    if (WANT(DPB_GPU_PROC_MEM)) {
        uint64_t b = 0;
        e[DPB_GPU_PROC_MEM] = n->procs ? read_proc_mem(n, d, &b) : DPB_NVML_ERR_NO_FUNCTION;
        s->proc_mem_bytes = b;
    }
    if (WANT(DPB_GPU_THROTTLE)) {
        unsigned long long v = 0;
        e[DPB_GPU_THROTTLE] = n->reasons ? n->reasons(d, &v) : DPB_NVML_ERR_NO_FUNCTION;
        s->throttle_reasons = v;
    }
#undef WANT
    /* The power and energy readings, which energy accounting uses, are the
     * first calls: the sample's time is their midpoint. */
    s->t_ns = t0 + (t1 - t0) / 2;
    uint32_t valid = 0;
    for (int m = 0; m < DPB_GPU_METRIC_COUNT; m++) {
        if (e[m] == NVML_OK) valid |= 1u << m;
        else {
            /* A metric that failed reads as nothing, never as 0. */
            switch (m) {
            case DPB_GPU_POWER: s->power_mw = 0; break;
            case DPB_GPU_ENERGY: s->energy_mj = 0; break;
            default: break;
            }
        }
    }
    s->valid = valid;
    if (err) memcpy(err, e, sizeof e);
    return DPB_OK;
}

void dpb_nvml_throttle_names(uint64_t mask, char *buf, size_t cap)
{
    static const struct { uint64_t bit; const char *name; } k[] = {
        {0x1, "gpu_idle"}, {0x2, "applications_clocks"}, {0x4, "sw_power_cap"}, {0x8, "hw_slowdown"},
        {0x10, "sync_boost"}, {0x20, "sw_thermal_slowdown"}, {0x40, "hw_thermal_slowdown"},
        {0x80, "hw_power_brake_slowdown"}, {0x100, "display_clocks"},
    };
    if (!cap) return;
    buf[0] = 0;
    if (mask == 0) {
        snprintf(buf, cap, "none");
        return;
    }
    size_t len = 0;
    uint64_t known = 0;
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        known |= k[i].bit;
        if (mask & k[i].bit) {
            int w = snprintf(buf + len, cap - len, "%s%s", len ? "," : "", k[i].name);
            if (w < 0 || (size_t)w >= cap - len) return;
            len += (size_t)w;
        }
    }
    if (mask & ~known)
        snprintf(buf + len, cap - len, "%sother_0x%llx", len ? "," : "", (unsigned long long)(mask & ~known));
}
