/* deploybench telemetry: what this machine can measure, and a recorder. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "bench/manifest.h"
#include "cli/cli.h"
#include "core/file.h"
#include "core/signal.h"
#include "core/timeutil.h"
#include "telemetry/host.h"
#include "telemetry/sampler.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deploybench telemetry [--hz N] [--duration S] [--gpus 0,1] [--out DIR] [--json]\n\n"
            "Shows what this machine can measure: NVML GPUs and which metrics each one reports (or why NVML\n"
            "is unavailable), RAPL CPU energy domains (or why not), host facts and this process's memory.\n"
            "With --duration it also records a trace, like nvidia-smi dmon: per GPU and sample the time,\n"
            "power, energy counter, SM/memory clocks, temperature, utilization, memory used, this process's\n"
            "memory and throttle reasons; and the RAPL package/dram counters. Ctrl-C stops the recording\n"
            "early and keeps what was recorded (exit status 130).\n\n"
            "  --hz N            samples per second, 0.1 to 100 (default 10); --power-poll-hz is the same\n"
            "  --duration S      record for S seconds (up to 86400)\n"
            "  --gpus LIST       NVML device indices to sample, comma-separated (default: all)\n"
            "  --out DIR         results folder, created; must be new or empty. Holds manifest.json,\n"
            "                    telemetry.csv (GPU samples), rapl.csv (when RAPL is readable), marks.csv and\n"
            "                    summary.json. Without --out the trace CSV goes to stdout after recording and\n"
            "                    the summary to stderr.\n"
            "  --json            print the report (and summary) as JSON instead of text\n\n"
            "Environment: DPB_NVML_LIBRARY (NVML library to load, default libnvidia-ml.so.1),\n"
            "DPB_POWERCAP_ROOT (default /sys/class/powercap). Cells of metrics a GPU cannot report are\n"
            "empty in the CSV, never 0. docs/TELEMETRY.md describes every column.\n");
}

static dpb_status parse_gpus(const char *s, unsigned *out, size_t *n)
{
    *n = 0;
    const char *p = s;
    if (!*p) return dpb_error_set(DPB_E_ARG, "--gpus: empty list");
    while (*p) {
        char buf[32];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof buf) return dpb_error_set(DPB_E_ARG, "--gpus: bad entry in '%s'", s);
        memcpy(buf, p, len);
        buf[len] = 0;
        long long v;
        dpb_status st = dpb_cli_parse_i64("--gpus", buf, 0, DPB_MAX_GPUS - 1, &v);
        if (st) return st;
        if (*n == DPB_MAX_GPUS) return dpb_error_set(DPB_E_ARG, "--gpus: more than %d entries", DPB_MAX_GPUS);
        out[(*n)++] = (unsigned)v;
        p += len;
        if (*p == ',') {
            p++;
            if (!*p) return dpb_error_set(DPB_E_ARG, "--gpus: trailing comma in '%s'", s);
        }
    }
    return DPB_OK;
}

/* ---- the availability report ------------------------------------------ */

static cJSON *nvml_report(const dpb_telemetry *t)
{
    cJSON *o = cJSON_CreateObject();
    if (!t->nvml) {
        cJSON_AddBoolToObject(o, "available", 0);
        cJSON_AddStringToObject(o, "reason", t->nvml_reason);
        return o;
    }
    cJSON_AddBoolToObject(o, "available", 1);
    cJSON_AddStringToObject(o, "library", dpb_nvml_library(t->nvml));
    int err;
    const char *dv = dpb_nvml_driver_version(t->nvml, &err);
    char buf[300];
    if (dv) cJSON_AddStringToObject(o, "driver_version", dv);
    else {
        snprintf(buf, sizeof buf, "unavailable: %s", dpb_nvml_error_string(t->nvml, err));
        cJSON_AddStringToObject(o, "driver_version", buf);
    }
    int cv = dpb_nvml_cuda_driver_version(t->nvml, &err);
    if (cv > 0) {
        snprintf(buf, sizeof buf, "%d.%d", cv / 1000, (cv % 1000) / 10);
        cJSON_AddStringToObject(o, "cuda_driver_version", buf);
    } else {
        snprintf(buf, sizeof buf, "unavailable: %s", dpb_nvml_error_string(t->nvml, err));
        cJSON_AddStringToObject(o, "cuda_driver_version", buf);
    }
    cJSON *devs = cJSON_AddArrayToObject(o, "devices");
    for (unsigned i = 0; i < dpb_nvml_device_count(t->nvml); i++) {
        dpb_gpu_info gi;
        dpb_nvml_device_info(t->nvml, i, &gi);
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "index", i);
        cJSON_AddStringToObject(d, "name", gi.name[0] ? gi.name : "unavailable");
        if (gi.uuid[0]) cJSON_AddStringToObject(d, "uuid", gi.uuid);
        if (gi.power_limit_ok) cJSON_AddNumberToObject(d, "power_limit_w", gi.power_limit_w);
        else {
            snprintf(buf, sizeof buf, "unavailable: %s", dpb_nvml_error_string(t->nvml, gi.power_limit_err));
            cJSON_AddStringToObject(d, "power_limit_w", buf);
        }
        if (gi.mem_total_ok) cJSON_AddNumberToObject(d, "mem_total_bytes", (double)gi.mem_total_bytes);
        dpb_gpu_sample s;
        int e[DPB_GPU_METRIC_COUNT];
        dpb_nvml_read(t->nvml, i, DPB_GPU_ALL_METRICS, &s, e);
        cJSON *m = cJSON_AddObjectToObject(d, "metrics");
        for (int k = 0; k < DPB_GPU_METRIC_COUNT; k++) {
            if (e[k] == 0) cJSON_AddStringToObject(m, dpb_gpu_metric_column((dpb_gpu_metric)k), "ok");
            else {
                snprintf(buf, sizeof buf, "unavailable: %s", dpb_nvml_error_string(t->nvml, e[k]));
                cJSON_AddStringToObject(m, dpb_gpu_metric_column((dpb_gpu_metric)k), buf);
            }
        }
        cJSON_AddItemToArray(devs, d);
    }
    return o;
}

static cJSON *rapl_report(const dpb_telemetry *t)
{
    cJSON *o = cJSON_CreateObject();
    if (!t->rapl) {
        cJSON_AddBoolToObject(o, "available", 0);
        cJSON_AddStringToObject(o, "reason", t->rapl_reason);
        return o;
    }
    cJSON_AddBoolToObject(o, "available", 1);
    cJSON_AddStringToObject(o, "root", t->rapl->root);
    cJSON *a = cJSON_AddArrayToObject(o, "domains");
    for (int i = 0; i < t->rapl->n; i++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "zone", t->rapl->d[i].zone);
        cJSON_AddStringToObject(d, "name", t->rapl->d[i].name);
        cJSON_AddStringToObject(d, "kind", dpb_rapl_kind_name(t->rapl->d[i].kind));
        cJSON_AddNumberToObject(d, "max_energy_range_uj", (double)t->rapl->d[i].max_range_uj);
        cJSON_AddItemToArray(a, d);
    }
    return o;
}

static cJSON *memory_report(void)
{
    cJSON *o = cJSON_CreateObject();
    uint64_t rss, peak;
    if (dpb_host_memory(&rss, &peak) == DPB_OK) {
        cJSON_AddNumberToObject(o, "rss_bytes", (double)rss);
        cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)peak);
    } else cJSON_AddStringToObject(o, "rss_bytes", dpb_error_message());
    return o;
}

/* ---- recording summary ------------------------------------------------ */

static cJSON *gpu_summary(dpb_sampler *s, unsigned gpu, uint64_t t0, uint64_t t1)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", gpu);
    dpb_gpu_sample *x;
    size_t n;
    if (dpb_sampler_gpu_samples(s, gpu, &x, &n) != DPB_OK) return o;
    size_t polled = 0;
    double pmin = INFINITY, pmax = -INFINITY;
    unsigned tmax = 0, smin = UINT32_MAX, smax = 0;
    bool have_t = false, have_s = false;
    uint64_t reasons = 0;
    bool have_r = false;
    /* How often the counter and the power reading actually change between polls
     * (NVML refreshes them on its own schedule). */
    size_t e_changes = 0, p_changes = 0, e_valid = 0, p_valid = 0;
    uint64_t last_e = 0, e_first_t = 0, e_last_t = 0;
    uint32_t last_p = 0;
    for (size_t i = 0; i < n; i++) {
        if (x[i].flags & DPB_SAMPLE_MARK) continue;
        polled++;
        if (x[i].valid & (1u << DPB_GPU_ENERGY)) {
            if (e_valid++ && x[i].energy_mj != last_e) {
                e_changes++;
                e_last_t = x[i].t_ns;
            }
            if (e_valid == 1) e_first_t = e_last_t = x[i].t_ns;
            last_e = x[i].energy_mj;
        }
        if (x[i].valid & (1u << DPB_GPU_POWER)) {
            if (p_valid++ && x[i].power_mw != last_p) p_changes++;
            last_p = x[i].power_mw;
        }
        if (x[i].valid & (1u << DPB_GPU_POWER)) {
            double w = x[i].power_mw * 1e-3;
            if (w < pmin) pmin = w;
            if (w > pmax) pmax = w;
        }
        if (x[i].valid & (1u << DPB_GPU_TEMP)) {
            have_t = true;
            if (x[i].temp_c > tmax) tmax = x[i].temp_c;
        }
        if (x[i].valid & (1u << DPB_GPU_SM_CLOCK)) {
            have_s = true;
            if (x[i].sm_clock_mhz < smin) smin = x[i].sm_clock_mhz;
            if (x[i].sm_clock_mhz > smax) smax = x[i].sm_clock_mhz;
        }
        if (x[i].valid & (1u << DPB_GPU_THROTTLE)) {
            have_r = true;
            reasons |= x[i].throttle_reasons;
        }
    }
    free(x);
    cJSON_AddNumberToObject(o, "samples", (double)polled);
    if (e_valid > 1) {
        cJSON_AddNumberToObject(o, "energy_counter_changes", (double)e_changes);
        if (e_changes)
            cJSON_AddNumberToObject(o, "energy_counter_update_ms", (double)(e_last_t - e_first_t) * 1e-6 / (double)e_changes);
    }
    if (p_valid > 1) cJSON_AddNumberToObject(o, "power_reading_changes", (double)p_changes);
    dpb_energy e;
    if (dpb_sampler_gpu_energy(s, gpu, t0, t1, &e) == DPB_OK) cJSON_AddItemToObject(o, "energy", dpb_energy_json(&e));
    const char *why;
    char buf[300];
#define OR_UNAVAILABLE(key, metric, cond, add)                                                              \
    do {                                                                                                    \
        if (cond) add;                                                                                      \
        else {                                                                                              \
            dpb_sampler_metric_ok(s, gpu, metric, &why);                                                    \
            snprintf(buf, sizeof buf, "unavailable: %s", why);                                              \
            cJSON_AddStringToObject(o, key, buf);                                                           \
        }                                                                                                   \
    } while (0)
    OR_UNAVAILABLE("power_min_w", DPB_GPU_POWER, pmin <= pmax, cJSON_AddNumberToObject(o, "power_min_w", pmin));
    OR_UNAVAILABLE("power_max_w", DPB_GPU_POWER, pmin <= pmax, cJSON_AddNumberToObject(o, "power_max_w", pmax));
    OR_UNAVAILABLE("temp_max_c", DPB_GPU_TEMP, have_t, cJSON_AddNumberToObject(o, "temp_max_c", tmax));
    OR_UNAVAILABLE("sm_clock_min_mhz", DPB_GPU_SM_CLOCK, have_s, cJSON_AddNumberToObject(o, "sm_clock_min_mhz", smin));
    OR_UNAVAILABLE("sm_clock_max_mhz", DPB_GPU_SM_CLOCK, have_s, cJSON_AddNumberToObject(o, "sm_clock_max_mhz", smax));
    if (have_r) dpb_nvml_throttle_names(reasons, buf, sizeof buf);
    OR_UNAVAILABLE("throttle_reasons_seen", DPB_GPU_THROTTLE, have_r, cJSON_AddStringToObject(o, "throttle_reasons_seen", buf));
#undef OR_UNAVAILABLE
    return o;
}

static cJSON *recording_summary(dpb_sampler *s, uint64_t t0, uint64_t t1, bool interrupted, const char *rapl_reason)
{
    cJSON *o = cJSON_CreateObject();
    double secs = (double)(t1 - t0) * 1e-9;
    size_t ticks = dpb_sampler_tick_count(s);
    cJSON_AddNumberToObject(o, "hz", dpb_sampler_hz(s));
    cJSON_AddNumberToObject(o, "duration_s", secs);
    cJSON_AddBoolToObject(o, "interrupted", interrupted);
    cJSON_AddNumberToObject(o, "ticks", (double)ticks);
    /* Intervals between polls per second (the first poll is at 0 s, the last at the stop). */
    cJSON_AddNumberToObject(o, "achieved_hz", secs > 0 && ticks > 1 ? (double)(ticks - 1) / secs : 0);
    cJSON_AddNumberToObject(o, "missed_ticks", (double)dpb_sampler_missed_ticks(s));
    cJSON_AddBoolToObject(o, "truncated", dpb_sampler_truncated(s));
    cJSON *g = cJSON_AddArrayToObject(o, "gpus");
    for (size_t i = 0; i < dpb_sampler_gpu_count(s); i++)
        cJSON_AddItemToArray(g, gpu_summary(s, dpb_sampler_gpu_index(s, i), t0, t1));
    cJSON *cpu = cJSON_AddObjectToObject(o, "cpu");
    dpb_energy e;
    if (rapl_reason) {
        cJSON_AddStringToObject(cpu, "package", rapl_reason);
        cJSON_AddStringToObject(cpu, "dram", rapl_reason);
    } else if (dpb_sampler_rapl_energy(s, DPB_RAPL_PACKAGE, t0, t1, &e) == DPB_OK)
        cJSON_AddItemToObject(cpu, "package", dpb_energy_json(&e));
    if (!rapl_reason && dpb_sampler_rapl_energy(s, DPB_RAPL_DRAM, t0, t1, &e) == DPB_OK)
        cJSON_AddItemToObject(cpu, "dram", dpb_energy_json(&e));
    return o;
}

/* ---- text output ------------------------------------------------------ */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A number with unit, or the "unavailable: ..." string that stands in its place. */
static void jval(char *buf, size_t cap, const cJSON *o, const char *k, const char *fmt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsNumber(v)) snprintf(buf, cap, fmt, v->valuedouble);
    else if (cJSON_IsString(v)) snprintf(buf, cap, "%s", v->valuestring);
    else snprintf(buf, cap, "unavailable");
}

static void print_report_text(FILE *f, const cJSON *rep)
{
    const cJSON *nv = cJSON_GetObjectItemCaseSensitive(rep, "nvml");
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(nv, "available"))) {
        fprintf(f, "GPU (NVML): %s\n", jstr(nv, "reason"));
    } else {
        const cJSON *devs = cJSON_GetObjectItemCaseSensitive(nv, "devices");
        fprintf(f, "GPU (NVML %s): driver %s, CUDA %s, %d device(s)\n", jstr(nv, "library"), jstr(nv, "driver_version"),
                jstr(nv, "cuda_driver_version"), cJSON_GetArraySize(devs));
        const cJSON *d;
        cJSON_ArrayForEach(d, devs) {
            char pl[300], mem[64];
            jval(pl, sizeof pl, d, "power_limit_w", "%.0f W");
            jval(mem, sizeof mem, d, "mem_total_bytes", "%.0f");
            const cJSON *mt = cJSON_GetObjectItemCaseSensitive(d, "mem_total_bytes");
            if (cJSON_IsNumber(mt)) snprintf(mem, sizeof mem, "%.0f MiB", mt->valuedouble / 1048576.0);
            fprintf(f, "  gpu %d: %s, %s, power limit %s, memory %s\n",
                    cJSON_GetObjectItemCaseSensitive(d, "index")->valueint, jstr(d, "name"),
                    jstr(d, "uuid") ? jstr(d, "uuid") : "no uuid", pl, mem);
            const cJSON *m, *ms = cJSON_GetObjectItemCaseSensitive(d, "metrics");
            fprintf(f, "    metrics:");
            cJSON_ArrayForEach(m, ms) if (strcmp(m->valuestring, "ok") == 0) fprintf(f, " %s", m->string);
            fputc('\n', f);
            cJSON_ArrayForEach(m, ms) if (strcmp(m->valuestring, "ok") != 0) fprintf(f, "    %s: %s\n", m->string, m->valuestring);
        }
    }
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive(rep, "rapl");
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ra, "available"))) fprintf(f, "CPU (RAPL): %s\n", jstr(ra, "reason"));
    else {
        fprintf(f, "CPU (RAPL under %s):", jstr(ra, "root"));
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(ra, "domains")) fprintf(f, " %s (%s)", jstr(d, "name"), jstr(d, "zone"));
        fputc('\n', f);
    }
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(rep, "host");
    char thr[64], mem[64];
    jval(thr, sizeof thr, h, "cpu_threads", "%.0f");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(h, "mem_total_bytes");
    if (cJSON_IsNumber(mt)) snprintf(mem, sizeof mem, "%.1f GiB", mt->valuedouble / 1073741824.0);
    else snprintf(mem, sizeof mem, "%s", cJSON_IsString(mt) ? mt->valuestring : "unavailable");
    fprintf(f, "host: %s; %s, %s threads, %s memory; %s\n", jstr(h, "hostname"), jstr(h, "cpu_model"), thr, mem,
            jstr(h, "kernel"));
    const cJSON *pm = cJSON_GetObjectItemCaseSensitive(rep, "process_memory");
    const cJSON *rss = cJSON_GetObjectItemCaseSensitive(pm, "rss_bytes"), *pk = cJSON_GetObjectItemCaseSensitive(pm, "peak_rss_bytes");
    if (cJSON_IsNumber(rss) && cJSON_IsNumber(pk))
        fprintf(f, "this process: RSS %.1f MiB, peak %.1f MiB\n", rss->valuedouble / 1048576.0, pk->valuedouble / 1048576.0);
    else fprintf(f, "this process: %s\n", cJSON_IsString(rss) ? rss->valuestring : "memory unavailable");
}

static void print_energy_text(FILE *f, const char *what, const cJSON *e)
{
    char c[300], in[300], rd[300], aw[300];
    jval(c, sizeof c, e, "energy_counter_j", "%.3f J");
    jval(in, sizeof in, e, "energy_integral_j", "%.3f J");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "energy_rel_diff");
    if (cJSON_IsNumber(r)) snprintf(rd, sizeof rd, "%+.2f %%", 100 * r->valuedouble);
    else snprintf(rd, sizeof rd, "%s", cJSON_IsString(r) ? r->valuestring : "unavailable");
    jval(aw, sizeof aw, e, "avg_w", "%.2f W");
    const char *src = jstr(e, "integral_power_source");
    fprintf(f, "  %s: energy by counter %s; by power integral %s%s%s; difference %s; average %s\n", what, c, in,
            src ? " of " : "", src ? src : "", rd, aw);
}

static void print_summary_text(FILE *f, const cJSON *sum)
{
    char buf[64];
    jval(buf, sizeof buf, sum, "achieved_hz", "%.2f");
    fprintf(f, "recorded %.2f s at %.4g Hz requested, %s Hz achieved (%.0f ticks, %.0f missed)%s%s\n",
            cJSON_GetObjectItemCaseSensitive(sum, "duration_s")->valuedouble,
            cJSON_GetObjectItemCaseSensitive(sum, "hz")->valuedouble, buf,
            cJSON_GetObjectItemCaseSensitive(sum, "ticks")->valuedouble,
            cJSON_GetObjectItemCaseSensitive(sum, "missed_ticks")->valuedouble,
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sum, "interrupted")) ? ", stopped by Ctrl-C" : "",
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sum, "truncated")) ? ", TRUNCATED at the sample limit" : "");
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(sum, "gpus")) {
        char name[32], a[300], b[300], c[300], d[300];
        snprintf(name, sizeof name, "gpu %d", cJSON_GetObjectItemCaseSensitive(g, "index")->valueint);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(g, "energy");
        if (e) print_energy_text(f, name, e);
        jval(a, sizeof a, g, "power_min_w", "%.1f");
        jval(b, sizeof b, g, "power_max_w", "%.1f W");
        jval(c, sizeof c, g, "temp_max_c", "%.0f C");
        jval(d, sizeof d, g, "sm_clock_max_mhz", "%.0f MHz");
        fprintf(f, "    power %s..%s, max temperature %s, max SM clock %s, throttle reasons seen: %s\n", a, b, c, d,
                jstr(g, "throttle_reasons_seen") ? jstr(g, "throttle_reasons_seen") : "unavailable");
        const cJSON *ec = cJSON_GetObjectItemCaseSensitive(g, "energy_counter_changes");
        const cJSON *eu = cJSON_GetObjectItemCaseSensitive(g, "energy_counter_update_ms");
        const cJSON *pc = cJSON_GetObjectItemCaseSensitive(g, "power_reading_changes");
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(g, "samples");
        if (cJSON_IsNumber(ec) && cJSON_IsNumber(pc) && cJSON_IsNumber(ns)) {
            fprintf(f, "    of %.0f polls, the energy counter changed %.0f times", ns->valuedouble, ec->valuedouble);
            if (cJSON_IsNumber(eu)) fprintf(f, " (every %.1f ms)", eu->valuedouble);
            fprintf(f, ", the power reading %.0f times\n", pc->valuedouble);
        }
    }
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(sum, "cpu");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(cpu, "package"), *dr = cJSON_GetObjectItemCaseSensitive(cpu, "dram");
    char c[300];
    if (cJSON_IsString(p)) fprintf(f, "  cpu (RAPL): %s\n", p->valuestring);
    else if (p) {
        jval(c, sizeof c, p, "energy_counter_j", "%.3f J");
        char aw[300];
        jval(aw, sizeof aw, p, "avg_w", "%.2f W");
        fprintf(f, "  cpu package (RAPL): %s, average %s\n", c, aw);
    }
    if (dr && !cJSON_IsString(dr)) {
        jval(c, sizeof c, dr, "energy_counter_j", "%.3f J");
        fprintf(f, "  dram (RAPL): %s\n", c);
    }
}

/* ---- the command ------------------------------------------------------ */

static dpb_status write_outputs(dpb_sampler *s, const dpb_telemetry *t, const char *dir, const cJSON *summary)
{
    char *path;
    dpb_status st = dpb_path_join(dir, "telemetry.csv", &path);
    if (st) return st;
    st = dpb_sampler_write_csv(s, path);
    free(path);
    if (st) return st;
    st = dpb_path_join(dir, "marks.csv", &path);
    if (st) return st;
    st = dpb_sampler_write_marks_csv(s, path);
    free(path);
    if (st) return st;
    if (t->rapl) {
        st = dpb_path_join(dir, "rapl.csv", &path);
        if (st) return st;
        st = dpb_sampler_write_rapl_csv(s, path);
        free(path);
        if (st) return st;
    }
    char *js = cJSON_Print(summary);
    if (!js) return dpb_error_set(DPB_E_NOMEM, "summary.json: out of memory");
    size_t n = strlen(js);
    char *t2 = realloc(js, n + 2);
    if (!t2) {
        cJSON_free(js);
        return dpb_error_set(DPB_E_NOMEM, "summary.json: out of memory");
    }
    t2[n] = '\n';
    t2[n + 1] = 0;
    st = dpb_file_write_text_in(dir, "summary.json", t2);
    free(t2);
    return st;
}

/* Copies the CSV written to a temporary file to stdout. */
static dpb_status csv_to_stdout(dpb_sampler *s)
{
    char tmpl[] = "/tmp/dpb-telemetry-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) return dpb_error_set(DPB_E_IO, "cannot create a temporary file for the trace");
    close(fd);
    dpb_status st = dpb_sampler_write_csv(s, tmpl);
    if (st == DPB_OK) {
        FILE *f = fopen(tmpl, "r");
        if (!f) st = dpb_error_set(DPB_E_IO, "%s: cannot reopen", tmpl);
        else {
            char buf[65536];
            size_t n;
            while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
            fclose(f);
            fflush(stdout);
        }
    }
    unlink(tmpl);
    return st;
}

static void live_line(dpb_sampler *s, uint64_t t0)
{
    if (!isatty(2)) return;
    fprintf(stderr, "\r  %.1f s", (double)(dpb_now_ns() - t0) * 1e-9);
    for (size_t i = 0; i < dpb_sampler_gpu_count(s) && i < 4; i++) {
        dpb_gpu_sample x;
        unsigned g = dpb_sampler_gpu_index(s, i);
        if (dpb_sampler_last_sample(s, g, &x) != DPB_OK) continue;
        if (x.valid & (1u << DPB_GPU_POWER)) fprintf(stderr, "  gpu%u %.1f W", g, x.power_mw * 1e-3);
        if (x.valid & (1u << DPB_GPU_TEMP)) fprintf(stderr, " %u C", x.temp_c);
    }
    fprintf(stderr, "   ");
    fflush(stderr);
}

int dpb_cmd_telemetry(int argc, char **argv)
{
    static const struct option opts[] = {
        {"hz", required_argument, 0, 'z'},     {"power-poll-hz", required_argument, 0, 'z'},
        {"duration", required_argument, 0, 'd'}, {"gpus", required_argument, 0, 'g'},
        {"out", required_argument, 0, 'o'},    {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    double hz = DPB_SAMPLER_DEFAULT_HZ, duration = 0;
    unsigned gpus[DPB_MAX_GPUS];
    size_t n_gpus = 0;
    const char *out = NULL;
    bool json = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        dpb_status st = DPB_OK;
        switch (c) {
        case 'z': st = dpb_cli_parse_double("--hz", optarg, DPB_SAMPLER_MIN_HZ, DPB_SAMPLER_MAX_HZ, &hz); break;
        case 'd': st = dpb_cli_parse_double("--duration", optarg, 0.001, 86400, &duration); break;
        case 'g': st = parse_gpus(optarg, gpus, &n_gpus); break;
        case 'o': out = optarg; break;
        case 'j': json = true; break;
        case 'h': usage(stdout); return 0;
        case ':': return dpb_cli_usage_error("telemetry", "%s needs a value", argv[optind - 1]);
        default: return dpb_cli_usage_error("telemetry", "unknown option '%s'", argv[optind - 1]);
        }
        if (st) return dpb_cli_usage_error("telemetry", "%s", dpb_error_message());
    }
    if (optind < argc) return dpb_cli_usage_error("telemetry", "unexpected argument '%s'", argv[optind]);
    if (out && duration == 0) return dpb_cli_usage_error("telemetry", "--out needs --duration (there is nothing to record)");

    dpb_telemetry t;
    dpb_telemetry_open(&t);
    dpb_manifest *man = NULL;
    dpb_sampler *s = NULL;
    cJSON *rep = cJSON_CreateObject();
    dpb_status st = DPB_OK;
    if (n_gpus && !t.nvml) {
        st = dpb_error_set(DPB_E_UNAVAILABLE, "--gpus: %s", t.nvml_reason);
        goto done;
    }
    if (out) {
        st = dpb_manifest_begin(out, argc, argv, false, t.nvml, &man);
        if (st) goto done;
    }
    cJSON_AddItemToObject(rep, "nvml", nvml_report(&t));
    cJSON_AddItemToObject(rep, "rapl", rapl_report(&t));
    dpb_host_facts hf;
    dpb_host_facts_collect(t.nvml, &hf);
    cJSON_AddItemToObject(rep, "host", dpb_host_facts_json(&hf));
    cJSON_AddItemToObject(rep, "process_memory", memory_report());

    if (duration > 0) {
        dpb_sampler_opts so = {.hz = hz, .gpus = n_gpus ? gpus : NULL, .n_gpus = n_gpus};
        st = dpb_sampler_create(t.nvml, t.rapl, &so, &s);
        if (st) {
            if (st == DPB_E_ARG) st = dpb_error_prefix(st, "--gpus");
            goto done;
        }
        if (man) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "hz", hz);
            cJSON_AddNumberToObject(p, "duration_s", duration);
            cJSON *g = cJSON_AddArrayToObject(p, "gpus");
            for (size_t i = 0; i < dpb_sampler_gpu_count(s); i++)
                cJSON_AddItemToArray(g, cJSON_CreateNumber(dpb_sampler_gpu_index(s, i)));
            dpb_manifest_add(man, "telemetry", p);
            dpb_manifest_write(man);
        }
        uint64_t t0, t1;
        st = dpb_sampler_start(s);
        if (st) goto done;
        dpb_sampler_mark(s, "start", &t0);
        uint64_t end = t0 + (uint64_t)(duration * 1e9), last_live = 0;
        while (!dpb_interrupted()) {
            uint64_t now = dpb_now_ns();
            if (now >= end) break;
            if (now - last_live > 250000000u) {
                live_line(s, t0);
                last_live = now;
            }
            uint64_t left = end - now;
            usleep((useconds_t)((left > 50000000u ? 50000000u : left) / 1000u + 1));
        }
        bool interrupted = dpb_interrupted();
        dpb_sampler_mark(s, interrupted ? "interrupted" : "end", &t1);
        dpb_sampler_stop(s);
        if (isatty(2)) fprintf(stderr, "\r%60s\r", "");
        cJSON *sum = recording_summary(s, t0, t1, interrupted, t.rapl ? NULL : t.rapl_reason);
        cJSON_AddItemToObject(rep, "recording", sum);
        if (out) {
            st = write_outputs(s, &t, out, rep);
            if (st) goto done;
        } else if (!json) {
            st = csv_to_stdout(s);
            if (st) goto done;
        }
        if (interrupted) st = dpb_error_set(DPB_E_INTERRUPTED, "telemetry: stopped by Ctrl-C after %.2f s; what was "
                                                             "recorded is kept", (double)(t1 - t0) * 1e-9);
    }
    if (json) {
        char *js = cJSON_Print(rep);
        if (js) printf("%s\n", js);
        cJSON_free(js);
    } else {
        FILE *f = (duration > 0 && !out) ? stderr : stdout;
        print_report_text(f, rep);
        const cJSON *sum = cJSON_GetObjectItemCaseSensitive(rep, "recording");
        if (sum) print_summary_text(f, sum);
        if (out) fprintf(f, "wrote %s/{manifest.json,telemetry.csv,marks.csv,%ssummary.json}\n", out, t.rapl ? "rapl.csv," : "");
    }
done:
    if (man) {
        dpb_manifest_end_with(man, st);
        dpb_manifest_free(man);
    }
    dpb_sampler_free(s);
    dpb_telemetry_close(&t);
    cJSON_Delete(rep);
    if (st == DPB_E_INTERRUPTED) {
        fprintf(stderr, "deploybench telemetry: %s\n", dpb_error_message());
        return dpb_status_exit_code(st);
    }
    return st ? dpb_cli_fail("telemetry", st) : 0;
}
