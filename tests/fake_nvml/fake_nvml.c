/* A fake NVML for tests, loaded through DPB_NVML_LIBRARY.  It exports the
 * functions deploybench looks up, with scripted values:
 *
 *   power of GPU g at t seconds after nvmlInit_v2:
 *       P(t) = 100 + 10 g + 50 (1 - cos(2 pi t / 2))  W     (between 100+10g and 200+10g W, period 2 s)
 *   energy counter: 1e6 (g + 1) mJ + the exact integral of P from 0 to t, in mJ
 *   nvmlDeviceGetPowerUsage: P(t); with FAKE_NVML_POWER_AVERAGE=1 the average of P over the last
 *   second instead, as on Ampere and newer boards.  NVML_FI_DEV_POWER_INSTANT (field 186): P(t).
 *   SM clock 1980 - 100 g MHz, memory clock 2619 MHz, temperature 40 + g C,
 *   utilization 75 % / 30 %, memory 80 GiB total, 10 GiB + g MiB used,
 *   throttle reasons 0x4 (sw power cap) for g = 0, else 0x1 (idle).
 *   This process is listed with 256 MiB on every GPU.
 *
 * Environment:
 *   FAKE_NVML_DEVICES=N      devices (default 2; 0 = none)
 *   FAKE_NVML_INIT_FAIL=1    nvmlInit_v2 fails with NVML_ERROR_DRIVER_NOT_LOADED
 *   FAKE_NVML_FAIL=a,b,...   these return NVML_ERROR_NOT_SUPPORTED: power, energy, clock, temperature,
 *                            utilization, memory, processes, reasons, name, uuid, power_limit, driver, cuda,
 *                            instant
 *   FAKE_NVML_OTHER_PROCS=N  N other processes listed before this one (tests the insufficient-size retry)
 *   FAKE_NVML_NO_SELF=1      this process is not listed
 *   FAKE_NVML_DELAY_US=N     every device query sleeps N microseconds
 *
 * Types follow the NVML API reference: nvmlReturn_t is an int enum, devices
 * are opaque pointers, structs as documented. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

typedef int nvmlReturn_t;
typedef struct fake_dev { int index; } *nvmlDevice_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

typedef struct {
    unsigned int fieldId, scopeId;
    long long timestamp, latencyUsec;
    int valueType;
    nvmlReturn_t nvmlReturn;
    union {
        double dVal;
        unsigned int uiVal;
        unsigned long ulVal;
        unsigned long long ullVal;
        long long sllVal;
        int siVal;
        unsigned short usVal;
    } value;
} nvmlFieldValue_t;

enum { OK = 0, E_UNINIT = 1, E_INVALID = 2, E_NOT_SUPPORTED = 3, E_INSUFFICIENT = 7, E_DRIVER = 9 };

#define MAX_DEV 8
static struct fake_dev g_dev[MAX_DEV];
static int g_init;
static double g_t0;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int n_devices(void)
{
    const char *e = getenv("FAKE_NVML_DEVICES");
    int n = e ? atoi(e) : 2;
    return n < 0 ? 0 : n > MAX_DEV ? MAX_DEV : n;
}

static int fails(const char *what)
{
    const char *e = getenv("FAKE_NVML_FAIL");
    if (!e) return 0;
    size_t n = strlen(what);
    for (const char *p = e; (p = strstr(p, what)) != NULL; p += n)
        if ((p == e || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}

static void delay(void)
{
    const char *e = getenv("FAKE_NVML_DELAY_US");
    if (e && atoi(e) > 0) usleep((useconds_t)atoi(e));
}

static int dev_index(nvmlDevice_t d)
{
    if (!g_init) return -E_UNINIT;
    if (!d) return -E_INVALID;
    int i = d->index;
    if (d != &g_dev[i] || i >= n_devices()) return -E_INVALID;
    delay();
    return i;
}

#define DEV(d)                                   \
    int gi = dev_index(d);                       \
    if (gi < 0) return -gi

static double power_w(int g, double t) { return 100 + 10 * g + 50 * (1 - cos(2 * M_PI * t / 2.0)); }
static double energy_mj(int g, double t)
{
    double base = 100 + 10 * g + 50;
    double j = base * t - 50 * (2.0 / (2 * M_PI)) * sin(2 * M_PI * t / 2.0);
    return 1e6 * (g + 1) + 1e3 * j;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t r)
{
    switch (r) {
    case OK: return "Success";
    case E_UNINIT: return "Uninitialized";
    case E_INVALID: return "Invalid Argument";
    case E_NOT_SUPPORTED: return "Not Supported";
    case E_INSUFFICIENT: return "Insufficient Size";
    case E_DRIVER: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}

EXPORT nvmlReturn_t nvmlInit_v2(void)
{
    const char *e = getenv("FAKE_NVML_INIT_FAIL");
    if (e && *e == '1') return E_DRIVER;
    if (g_init++ == 0) g_t0 = now_s();
    for (int i = 0; i < MAX_DEV; i++) g_dev[i].index = i;
    return OK;
}

EXPORT nvmlReturn_t nvmlShutdown(void)
{
    if (!g_init) return E_UNINIT;
    g_init--;
    return OK;
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *buf, unsigned int len)
{
    if (!g_init) return E_UNINIT;
    if (fails("driver")) return E_NOT_SUPPORTED;
    if (len < 16) return E_INSUFFICIENT;
    snprintf(buf, len, "999.12.34");
    return OK;
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v)
{
    if (!g_init) return E_UNINIT;
    if (fails("cuda")) return E_NOT_SUPPORTED;
    *v = 13000;
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n)
{
    if (!g_init) return E_UNINIT;
    *n = (unsigned int)n_devices();
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d)
{
    if (!g_init) return E_UNINIT;
    if (i >= (unsigned)n_devices()) return E_INVALID;
    *d = &g_dev[i];
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *buf, unsigned int len)
{
    DEV(d);
    if (fails("name")) return E_NOT_SUPPORTED;
    if (len < 32) return E_INSUFFICIENT;
    snprintf(buf, len, "Fake GPU %d", gi);
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *buf, unsigned int len)
{
    DEV(d);
    if (fails("uuid")) return E_NOT_SUPPORTED;
    if (len < 48) return E_INSUFFICIENT;
    snprintf(buf, len, "GPU-00000000-0000-0000-0000-00000000000%d", gi);
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw)
{
    DEV(d);
    if (fails("power")) return E_NOT_SUPPORTED;
    double t = now_s() - g_t0;
    const char *avg = getenv("FAKE_NVML_POWER_AVERAGE");
    if (avg && *avg == '1') {
        double a = t > 1 ? t - 1 : 0;
        *mw = t > a ? (unsigned int)lround((energy_mj(gi, t) - energy_mj(gi, a)) / (t - a)) : (unsigned int)lround(1000 * power_w(gi, t));
    } else *mw = (unsigned int)lround(1000 * power_w(gi, t));
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t d, int count, nvmlFieldValue_t *values)
{
    DEV(d);
    if (count < 0 || !values) return E_INVALID;
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *v = &values[i];
        if (v->fieldId != 186 || fails("instant")) {
            v->nvmlReturn = E_NOT_SUPPORTED;
            continue;
        }
        v->nvmlReturn = OK;
        v->valueType = 1; /* unsigned int, mW */
        v->value.uiVal = (unsigned int)lround(1000 * power_w(gi, now_s() - g_t0));
    }
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *mj)
{
    DEV(d);
    if (fails("energy")) return E_NOT_SUPPORTED;
    *mj = (unsigned long long)llround(energy_mj(gi, now_s() - g_t0));
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned int *mhz)
{
    DEV(d);
    if (fails("clock")) return E_NOT_SUPPORTED;
    if (type == 1) *mhz = (unsigned int)(1980 - 100 * gi);
    else if (type == 2) *mhz = 2619;
    else return E_INVALID;
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *c)
{
    DEV(d);
    if (fails("temperature")) return E_NOT_SUPPORTED;
    if (sensor != 0) return E_INVALID;
    *c = (unsigned int)(40 + gi);
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u)
{
    DEV(d);
    if (fails("utilization")) return E_NOT_SUPPORTED;
    u->gpu = 75;
    u->memory = 30;
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m)
{
    DEV(d);
    if (fails("memory")) return E_NOT_SUPPORTED;
    m->total = 80ull << 30;
    m->used = (10ull << 30) + ((unsigned long long)gi << 20);
    m->free = m->total - m->used;
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *r)
{
    DEV(d);
    if (fails("reasons")) return E_NOT_SUPPORTED;
    *r = gi == 0 ? 0x4 : 0x1;
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count,
                                                            nvmlProcessInfo_t *infos)
{
    DEV(d);
    if (fails("processes")) return E_NOT_SUPPORTED;
    const char *e = getenv("FAKE_NVML_OTHER_PROCS");
    unsigned others = e ? (unsigned)atoi(e) : 0;
    const char *ns = getenv("FAKE_NVML_NO_SELF");
    unsigned self = ns && *ns == '1' ? 0 : 1;
    unsigned total = others + self;
    if (*count < total) {
        *count = total;
        return E_INSUFFICIENT;
    }
    for (unsigned i = 0; i < others; i++)
        infos[i] = (nvmlProcessInfo_t){.pid = 999000 + i, .usedGpuMemory = 1ull << 30};
    if (self) infos[others] = (nvmlProcessInfo_t){.pid = (unsigned)getpid(), .usedGpuMemory = 256ull << 20};
    *count = total;
    return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t d, unsigned int *mw)
{
    DEV(d);
    if (fails("power_limit")) return E_NOT_SUPPORTED;
    *mw = 700000;
    return OK;
}
