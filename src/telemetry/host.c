#include "telemetry/host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "backend/cuda/cuda_probe.h"

dpb_status dpb_read_text(const char *path, char *buf, size_t cap)
{
    if (cap == 0) return dpb_error_set(DPB_E_ARG, "%s: no room to read into", path);
    buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dpb_error_set(DPB_E_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            buf[0] = 0;
            return dpb_error_set(DPB_E_IO, "%s: cannot read: %s", path, strerror(e));
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;
    return DPB_OK;
}

/* The value after "key:" on a line of a /proc file, trimmed; false when absent. */
static bool proc_field(const char *text, const char *key, char *val, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *line = text; line && *line; ) {
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        if (ll > kl && strncmp(line, key, kl) == 0 && (line[kl] == ':' || line[kl] == ' ' || line[kl] == '\t')) {
            const char *v = memchr(line, ':', ll);
            if (v) {
                v++;
                while (*v == ' ' || *v == '\t') v++;
                size_t n = (size_t)(line + ll - v);
                while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r')) n--;
                if (n >= cap) n = cap - 1;
                memcpy(val, v, n);
                val[n] = 0;
                return true;
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return false;
}

/* "12345 kB" -> bytes. */
static bool kb_value(const char *v, uint64_t *bytes)
{
    char *end;
    errno = 0;
    unsigned long long kb = strtoull(v, &end, 10);
    if (errno || end == v || kb > UINT64_MAX / 1024) return false;
    *bytes = kb * 1024;
    return true;
}

dpb_status dpb_host_memory(uint64_t *rss_bytes, uint64_t *peak_rss_bytes)
{
    char buf[8192], v[64];
    dpb_status st = dpb_read_text("/proc/self/status", buf, sizeof buf);
    if (st) return dpb_error_prefix(DPB_E_UNAVAILABLE, "host memory unavailable");
    if (!proc_field(buf, "VmRSS", v, sizeof v) || !kb_value(v, rss_bytes))
        return dpb_error_set(DPB_E_UNAVAILABLE, "host memory unavailable: /proc/self/status has no VmRSS");
    if (!proc_field(buf, "VmHWM", v, sizeof v) || !kb_value(v, peak_rss_bytes))
        return dpb_error_set(DPB_E_UNAVAILABLE, "host memory unavailable: /proc/self/status has no VmHWM");
    return DPB_OK;
}

void dpb_host_facts_collect(const dpb_nvml *nvml, dpb_host_facts *h)
{
    memset(h, 0, sizeof *h);
    if (gethostname(h->hostname, sizeof h->hostname - 1) != 0) h->hostname[0] = 0;
    char *cpuinfo = malloc(1 << 16);
    if (cpuinfo) {
        /* The first processor's block is enough: read the start of the file. */
        if (dpb_read_text("/proc/cpuinfo", cpuinfo, 1 << 16) == DPB_OK) {
            if (!proc_field(cpuinfo, "model name", h->cpu_model, sizeof h->cpu_model))
                proc_field(cpuinfo, "Model", h->cpu_model, sizeof h->cpu_model); /* some ARM kernels */
        }
        free(cpuinfo);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    h->cpu_threads = n > 0 ? (int)n : 0;
    char mem[4096], v[64];
    if (dpb_read_text("/proc/meminfo", mem, sizeof mem) == DPB_OK && proc_field(mem, "MemTotal", v, sizeof v))
        kb_value(v, &h->mem_total_bytes);
    struct utsname u;
    if (uname(&u) == 0) snprintf(h->kernel, sizeof h->kernel, "%s %s %s %s", u.sysname, u.release, u.version, u.machine);

    dpb_cuda_info ci;
    dpb_status cst = dpb_cuda_probe(&ci);
    if (cst == DPB_OK) h->cuda_runtime_version = ci.runtime_version;
    char cuda_reason[256];
    snprintf(cuda_reason, sizeof cuda_reason, "%s", cst == DPB_OK ? "" : dpb_error_message());
    if (nvml && dpb_nvml_device_count(nvml) > 0) {
        snprintf(h->gpu_source, sizeof h->gpu_source, "nvml");
        h->gpu_count = (int)dpb_nvml_device_count(nvml);
        for (int i = 0; i < h->gpu_count && i < DPB_HOST_MAX_GPUS; i++) {
            dpb_gpu_info gi;
            if (dpb_nvml_device_info(nvml, (unsigned)i, &gi) != DPB_OK) continue;
            snprintf(h->gpu[i].name, sizeof h->gpu[i].name, "%s", gi.name);
            snprintf(h->gpu[i].uuid, sizeof h->gpu[i].uuid, "%s", gi.uuid);
            h->gpu[i].mem_total_bytes = gi.mem_total_ok ? gi.mem_total_bytes : 0;
            h->gpu[i].power_limit_w = gi.power_limit_ok ? gi.power_limit_w : 0;
        }
        const char *dv = dpb_nvml_driver_version(nvml, NULL);
        if (dv) snprintf(h->driver_version, sizeof h->driver_version, "%s", dv);
        h->cuda_driver_version = dpb_nvml_cuda_driver_version(nvml, NULL);
    } else if (cst == DPB_OK && ci.device_count > 0) {
        snprintf(h->gpu_source, sizeof h->gpu_source, "cuda");
        h->gpu_count = ci.device_count;
        snprintf(h->gpu[0].name, sizeof h->gpu[0].name, "%s", ci.name);
        h->gpu[0].mem_total_bytes = ci.total_mem_bytes;
        h->cuda_driver_version = ci.driver_version;
    } else {
        snprintf(h->gpu_unavailable, sizeof h->gpu_unavailable, "no NVML%s%s", cuda_reason[0] ? "; " : "",
                 cuda_reason);
    }
    dpb_error_clear();
}

static void add_str_or(cJSON *o, const char *key, const char *val, const char *why)
{
    if (val && *val) cJSON_AddStringToObject(o, key, val);
    else {
        char buf[600];
        snprintf(buf, sizeof buf, "unavailable: %s", why);
        cJSON_AddStringToObject(o, key, buf);
    }
}

cJSON *dpb_host_facts_json(const dpb_host_facts *h)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    add_str_or(o, "hostname", h->hostname, "gethostname failed");
    add_str_or(o, "cpu_model", h->cpu_model, "no model name in /proc/cpuinfo");
    if (h->cpu_threads > 0) cJSON_AddNumberToObject(o, "cpu_threads", h->cpu_threads);
    else cJSON_AddStringToObject(o, "cpu_threads", "unavailable: sysconf failed");
    if (h->mem_total_bytes) cJSON_AddNumberToObject(o, "mem_total_bytes", (double)h->mem_total_bytes);
    else cJSON_AddStringToObject(o, "mem_total_bytes", "unavailable: no MemTotal in /proc/meminfo");
    add_str_or(o, "kernel", h->kernel, "uname failed");
    if (!h->gpu_source[0]) {
        char buf[600];
        snprintf(buf, sizeof buf, "unavailable: %s", h->gpu_unavailable);
        cJSON_AddStringToObject(o, "gpus", buf);
        cJSON_AddStringToObject(o, "gpu_driver_version", buf);
        cJSON_AddStringToObject(o, "cuda_driver_version", buf);
    } else {
        cJSON_AddStringToObject(o, "gpu_source", h->gpu_source);
        cJSON_AddNumberToObject(o, "gpu_count", h->gpu_count);
        cJSON *a = cJSON_AddArrayToObject(o, "gpus");
        for (int i = 0; i < h->gpu_count && i < DPB_HOST_MAX_GPUS; i++) {
            cJSON *g = cJSON_CreateObject();
            cJSON_AddNumberToObject(g, "index", i);
            add_str_or(g, "name", h->gpu[i].name, "not reported");
            if (h->gpu[i].uuid[0]) cJSON_AddStringToObject(g, "uuid", h->gpu[i].uuid);
            if (h->gpu[i].mem_total_bytes) cJSON_AddNumberToObject(g, "mem_total_bytes", (double)h->gpu[i].mem_total_bytes);
            if (h->gpu[i].power_limit_w > 0) cJSON_AddNumberToObject(g, "power_limit_w", h->gpu[i].power_limit_w);
            cJSON_AddItemToArray(a, g);
        }
        add_str_or(o, "gpu_driver_version", h->driver_version, "not reported");
        if (h->cuda_driver_version > 0) {
            char v[32];
            snprintf(v, sizeof v, "%d.%d", h->cuda_driver_version / 1000, (h->cuda_driver_version % 1000) / 10);
            cJSON_AddStringToObject(o, "cuda_driver_version", v);
        } else cJSON_AddStringToObject(o, "cuda_driver_version", "unavailable: not reported");
    }
    if (h->cuda_runtime_version > 0) {
        char v[32];
        snprintf(v, sizeof v, "%d.%d", h->cuda_runtime_version / 1000, (h->cuda_runtime_version % 1000) / 10);
        cJSON_AddStringToObject(o, "cuda_runtime_version", v);
    }
    return o;
}
