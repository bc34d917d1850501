/* Telemetry against a fake NVML (build/tests/libfake_nvml.so, loaded through
 * DPB_NVML_LIBRARY) and a fake powercap tree (DPB_POWERCAP_ROOT). */
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "t.h"
#include "core/file.h"
#include "core/json.h"
#include "core/timeutil.h"
#include "telemetry/host.h"
#include "telemetry/nvml.h"
#include "telemetry/rapl.h"
#include "telemetry/sampler.h"

static char g_fake[1024], g_bin[1024];

static void find_paths(void)
{
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = 0;
    char *dir = dirname(exe); /* BUILD/tests */
    snprintf(g_fake, sizeof g_fake, "%s/libfake_nvml.so", dir);
    const char *b = getenv("DPB_BIN");
    if (b && *b) snprintf(g_bin, sizeof g_bin, "%s", b);
    else snprintf(g_bin, sizeof g_bin, "%s/../deploybench", dir);
}

static void fake_env(const char *fail, const char *devices)
{
    setenv("DPB_NVML_LIBRARY", g_fake, 1);
    unsetenv("FAKE_NVML_INIT_FAIL");
    unsetenv("FAKE_NVML_OTHER_PROCS");
    unsetenv("FAKE_NVML_NO_SELF");
    unsetenv("FAKE_NVML_DELAY_US");
    unsetenv("FAKE_NVML_POWER_AVERAGE");
    if (fail) setenv("FAKE_NVML_FAIL", fail, 1);
    else unsetenv("FAKE_NVML_FAIL");
    if (devices) setenv("FAKE_NVML_DEVICES", devices, 1);
    else unsetenv("FAKE_NVML_DEVICES");
}

#define NEED_FAKE()                                                                                         \
    do {                                                                                                    \
        if (access(g_fake, R_OK) != 0) T_SKIP("%s not built (make builds it with the tests)", g_fake);      \
    } while (0)

static void test_nvml_absent_names_library(void)
{
    setenv("DPB_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1);
    dpb_nvml *n = (dpb_nvml *)1;
    T_CHECK(dpb_nvml_open(&n) == DPB_E_UNAVAILABLE);
    T_CHECK(n == NULL);
    const char *m = dpb_error_message();
    T_CHECKF(strncmp(m, "NVML unavailable: library not found", 35) == 0 && strstr(m, "/nonexistent/libnvidia-ml.so.1"),
             "%s", m);
    dpb_telemetry t;
    dpb_telemetry_open(&t);
    T_CHECK(t.nvml == NULL && strstr(t.nvml_reason, "unavailable") && strstr(t.nvml_reason, "/nonexistent"));
    /* A sampler without NVML samples no GPU and cannot report GPU energy: an error, not 0 J. */
    dpb_sampler *s;
    T_CHECK(dpb_sampler_create(t.nvml, NULL, NULL, &s) == DPB_OK);
    T_CHECK(dpb_sampler_gpu_count(s) == 0);
    dpb_energy e;
    T_CHECK(dpb_sampler_gpu_energy(s, 0, 1, 2, &e) == DPB_E_ARG);
    T_CHECK(!e.counter_ok && !e.integral_ok && !e.avg_w_ok);
    dpb_sampler_free(s);
    unsigned g = 0;
    dpb_sampler_opts o = {.gpus = &g, .n_gpus = 1};
    T_CHECK(dpb_sampler_create(NULL, NULL, &o, &s) == DPB_E_ARG);
    T_CHECK(strstr(dpb_error_message(), "NVML is unavailable") != NULL);
    dpb_telemetry_close(&t);
}

static void test_nvml_init_fail_and_no_devices(void)
{
    NEED_FAKE();
    fake_env(NULL, NULL);
    setenv("FAKE_NVML_INIT_FAIL", "1", 1);
    dpb_nvml *n;
    T_CHECK(dpb_nvml_open(&n) == DPB_E_UNAVAILABLE);
    T_CHECKF(strstr(dpb_error_message(), "nvmlInit_v2 failed") && strstr(dpb_error_message(), "Driver Not Loaded"),
             "%s", dpb_error_message());
    fake_env(NULL, "0");
    T_CHECK(dpb_nvml_open(&n) == DPB_E_UNAVAILABLE);
    T_CHECKF(strstr(dpb_error_message(), "NVML unavailable: no devices"), "%s", dpb_error_message());
}

static void test_nvml_values(void)
{
    NEED_FAKE();
    fake_env(NULL, "2");
    setenv("FAKE_NVML_OTHER_PROCS", "40", 1); /* more than the first query's room: the retry path */
    dpb_nvml *n;
    T_CHECK(dpb_nvml_open(&n) == DPB_OK);
    if (!n) return;
    T_CHECK(dpb_nvml_device_count(n) == 2);
    T_CHECK(strcmp(dpb_nvml_library(n), g_fake) == 0);
    T_CHECK(strcmp(dpb_nvml_driver_version(n, NULL), "999.12.34") == 0);
    T_CHECK(dpb_nvml_cuda_driver_version(n, NULL) == 13000);
    dpb_gpu_info gi;
    T_CHECK(dpb_nvml_device_info(n, 1, &gi) == DPB_OK);
    T_CHECK(strcmp(gi.name, "Fake GPU 1") == 0 && strncmp(gi.uuid, "GPU-", 4) == 0);
    T_CHECK(gi.power_limit_ok && gi.power_limit_w == 700.0);
    T_CHECK(gi.mem_total_ok && gi.mem_total_bytes == 80ull << 30);
    T_CHECK(dpb_nvml_device_info(n, 2, &gi) == DPB_E_ARG);
    dpb_gpu_sample s;
    int err[DPB_GPU_METRIC_COUNT];
    T_CHECK(dpb_nvml_read(n, 0, DPB_GPU_ALL_METRICS, &s, err) == DPB_OK);
    T_CHECKF(s.valid == DPB_GPU_ALL_METRICS, "valid 0x%x", s.valid);
    for (int m = 0; m < DPB_GPU_METRIC_COUNT; m++) T_CHECK(err[m] == 0);
    T_CHECK(s.gpu == 0 && s.t_ns > 0);
    T_CHECK(s.power_mw >= 100000 && s.power_mw <= 200000);
    T_CHECK(s.power_instant_mw >= 100000 && s.power_instant_mw <= 200000);
    T_CHECK(s.energy_mj >= 1000000);
    T_CHECK(s.sm_clock_mhz == 1980 && s.mem_clock_mhz == 2619 && s.temp_c == 40);
    T_CHECK(s.gpu_util_pct == 75 && s.mem_util_pct == 30);
    T_CHECK(s.mem_used_bytes == 10ull << 30);
    T_CHECK(s.proc_mem_bytes == 256ull << 20);
    T_CHECK(s.throttle_reasons == 0x4);
    /* Only what is asked for is read. */
    T_CHECK(dpb_nvml_read(n, 1, DPB_GPU_POWER_ENERGY, &s, err) == DPB_OK);
    T_CHECK(s.valid == DPB_GPU_POWER_ENERGY && err[DPB_GPU_TEMP] == DPB_NVML_ERR_NOT_READ && s.gpu == 1);
    /* This process missing from the list is "unavailable", not 0 bytes. */
    setenv("FAKE_NVML_NO_SELF", "1", 1);
    T_CHECK(dpb_nvml_read(n, 0, 1u << DPB_GPU_PROC_MEM, &s, err) == DPB_OK);
    T_CHECK(!(s.valid & (1u << DPB_GPU_PROC_MEM)) && err[DPB_GPU_PROC_MEM] == DPB_NVML_ERR_NO_PROCESS);
    T_CHECK(strstr(dpb_nvml_error_string(n, err[DPB_GPU_PROC_MEM]), "not in the device's compute-process list"));
    dpb_nvml_close(n);
}

static void test_throttle_names(void)
{
    char b[128];
    dpb_nvml_throttle_names(0, b, sizeof b);
    T_CHECK(strcmp(b, "none") == 0);
    dpb_nvml_throttle_names(0x44, b, sizeof b);
    T_CHECKF(strcmp(b, "sw_power_cap,hw_thermal_slowdown") == 0, "%s", b);
    dpb_nvml_throttle_names(0x1001, b, sizeof b);
    T_CHECKF(strcmp(b, "gpu_idle,other_0x1000") == 0, "%s", b);
}

static void sleep_ms(int ms) { usleep((useconds_t)ms * 1000u); }

/* 50 Hz for 1 s gives about 50 polls, spaced 20 ms apart. */
static void test_sampler_rate(void)
{
    NEED_FAKE();
    fake_env(NULL, "2");
    dpb_nvml *n;
    T_CHECK(dpb_nvml_open(&n) == DPB_OK);
    if (!n) return;
    dpb_sampler *s;
    dpb_sampler_opts o = {.hz = 50};
    T_CHECK(dpb_sampler_create(n, NULL, &o, &s) == DPB_OK);
    T_CHECK(dpb_sampler_gpu_count(s) == 2 && dpb_sampler_hz(s) == 50);
    uint64_t t0 = dpb_now_ns();
    T_CHECK(dpb_sampler_start(s) == DPB_OK);
    T_CHECK(dpb_sampler_start(s) == DPB_E_ARG);
    sleep_ms(1000);
    T_CHECK(dpb_sampler_stop(s) == DPB_OK);
    double secs = (double)(dpb_now_ns() - t0) * 1e-9;
    size_t ticks = dpb_sampler_tick_count(s);
    double rate = (double)(ticks - 1) / secs;
    T_CHECKF(rate > 40 && rate < 55, "%zu ticks in %.3f s = %.1f Hz", ticks, secs, rate);
    dpb_gpu_sample *x;
    size_t k;
    T_CHECK(dpb_sampler_gpu_samples(s, 1, &x, &k) == DPB_OK);
    T_CHECK(k == ticks + 1); /* + the reading at stop */
    /* Median spacing within 10 % of 20 ms (ticks are scheduled on absolute times). */
    double gaps[512];
    size_t ng = 0;
    for (size_t i = 1; i < k && ng < 512; i++) gaps[ng++] = (double)(x[i].t_ns - x[i - 1].t_ns) * 1e-6;
    for (size_t i = 0; i < ng; i++)
        for (size_t j = i + 1; j < ng; j++)
            if (gaps[j] < gaps[i]) {
                double g = gaps[i];
                gaps[i] = gaps[j];
                gaps[j] = g;
            }
    T_CHECKF(ng > 10 && fabs(gaps[ng / 2] - 20.0) < 2.0, "median gap %.3f ms", ng ? gaps[ng / 2] : 0);
    for (size_t i = 0; i < k; i++) T_CHECK(x[i].gpu == 1 && x[i].valid == DPB_GPU_ALL_METRICS);
    free(x);
    T_CHECK(dpb_sampler_gpu_samples(s, 5, &x, &k) == DPB_E_ARG);
    dpb_gpu_sample last;
    T_CHECK(dpb_sampler_last_sample(s, 0, &last) == DPB_OK && last.gpu == 0 && last.flags == 0 &&
            last.valid == DPB_GPU_ALL_METRICS);
    dpb_sampler_free(s);
    dpb_nvml_close(n);
}

/* Slow readings: ticks are skipped and counted, not made up in a burst. */
static void test_sampler_skips_late_ticks(void)
{
    NEED_FAKE();
    fake_env(NULL, "1");
    setenv("FAKE_NVML_DELAY_US", "3000", 1); /* about 27 ms per poll of 9 queries */
    dpb_nvml *n;
    T_CHECK(dpb_nvml_open(&n) == DPB_OK);
    if (!n) return;
    dpb_sampler *s;
    dpb_sampler_opts o = {.hz = 100};
    T_CHECK(dpb_sampler_create(n, NULL, &o, &s) == DPB_OK);
    T_CHECK(dpb_sampler_start(s) == DPB_OK);
    sleep_ms(600);
    dpb_sampler_stop(s);
    size_t ticks = dpb_sampler_tick_count(s), missed = dpb_sampler_missed_ticks(s);
    T_CHECKF(missed > 0, "ticks %zu missed %zu", ticks, missed);
    T_CHECKF(ticks <= 0.6 / 0.027 + 3, "ticks %zu: more than the readings allow", ticks);
    dpb_sampler_free(s);
    dpb_nvml_close(n);
    unsetenv("FAKE_NVML_DELAY_US");
}

/* The fake's counter is the exact integral of its power: the two methods agree within 2 %. */
static void test_energy_counter_vs_integral(void)
{
    NEED_FAKE();
    fake_env(NULL, "2");
    dpb_nvml *n;
    T_CHECK(dpb_nvml_open(&n) == DPB_OK);
    if (!n) return;
    dpb_sampler *s;
    dpb_sampler_opts o = {.hz = 20};
    T_CHECK(dpb_sampler_create(n, NULL, &o, &s) == DPB_OK);
    T_CHECK(dpb_sampler_start(s) == DPB_OK);
    uint64_t a, b, c;
    sleep_ms(50);
    T_CHECK(dpb_sampler_mark(s, "prefill_start", &a) == DPB_OK);
    sleep_ms(700);
    T_CHECK(dpb_sampler_mark(s, "decode_start", &b) == DPB_OK);
    sleep_ms(800);
    T_CHECK(dpb_sampler_mark(s, "decode_end", &c) == DPB_OK);
    dpb_sampler_stop(s);
    uint64_t t;
    T_CHECK(dpb_sampler_mark_time(s, "decode_start", &t) == DPB_OK && t == b);
    T_CHECK(dpb_sampler_mark_time(s, "nope", &t) == DPB_E_ARG);
    for (unsigned g = 0; g < 2; g++) {
        dpb_energy whole, p1, p2;
        T_CHECK(dpb_sampler_gpu_energy(s, g, a, c, &whole) == DPB_OK);
        T_CHECK(whole.counter_ok && whole.integral_ok && whole.rel_diff_ok && whole.avg_w_ok);
        T_CHECKF(fabs(whole.rel_diff) < 0.02, "gpu %u: counter %.3f J, integral %.3f J", g, whole.counter_j,
                 whole.integral_j);
        /* Power is 100+10g .. 200+10g W. */
        T_CHECKF(whole.avg_w > 100 + 10 * g && whole.avg_w < 200 + 10 * g, "avg %.2f W", whole.avg_w);
        T_CHECK(fabs(whole.seconds - (double)(c - a) * 1e-9) < 1e-12);
        T_CHECK(whole.n_samples >= 25);
        /* Phases add up. */
        T_CHECK(dpb_sampler_gpu_energy(s, g, a, b, &p1) == DPB_OK && dpb_sampler_gpu_energy(s, g, b, c, &p2) == DPB_OK);
        T_CHECK(p1.counter_ok && p2.counter_ok && p1.integral_ok && p2.integral_ok);
        T_CHECKF(fabs(p1.counter_j + p2.counter_j - whole.counter_j) < 1e-6 * whole.counter_j, "%f + %f vs %f",
                 p1.counter_j, p2.counter_j, whole.counter_j);
        T_CHECK(fabs(p1.integral_j + p2.integral_j - whole.integral_j) < 1e-6 * whole.integral_j);
        T_CHECKF(fabs(p1.rel_diff) < 0.02 && fabs(p2.rel_diff) < 0.02, "%f %f", p1.rel_diff, p2.rel_diff);
    }
    /* An interval the samples do not cover is unavailable with a reason, not 0. */
    dpb_energy e;
    T_CHECK(dpb_sampler_gpu_energy(s, 0, a - 2000000000ull, a - 1000000000ull, &e) == DPB_OK);
    T_CHECK(!e.counter_ok && !e.integral_ok && !e.avg_w_ok && !e.rel_diff_ok);
    T_CHECKF(strstr(e.counter_reason, "cover") && strstr(e.integral_reason, "cover"), "%s / %s", e.counter_reason,
             e.integral_reason);
    T_CHECK(dpb_sampler_gpu_energy(s, 0, b, a, &e) == DPB_E_ARG);
    cJSON *j = dpb_energy_json(&e);
    T_CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "energy_counter_j")) &&
            strncmp(cJSON_GetObjectItem(j, "energy_counter_j")->valuestring, "unavailable: ", 13) == 0);
    cJSON_Delete(j);
    dpb_sampler_free(s);
    dpb_nvml_close(n);
}

/* On boards whose power_w is a 1 s average, the integral uses the instantaneous
 * field when there is one; without it, it falls back to power_w and says so. */
static void test_integral_prefers_instant_power(void)
{
    NEED_FAKE();
    for (int with_instant = 1; with_instant >= 0; with_instant--) {
        fake_env(with_instant ? NULL : "instant", "1");
        setenv("FAKE_NVML_POWER_AVERAGE", "1", 1);
        dpb_nvml *n;
        T_CHECK(dpb_nvml_open(&n) == DPB_OK);
        if (!n) continue;
        dpb_sampler *s;
        dpb_sampler_opts o = {.hz = 50};
        T_CHECK(dpb_sampler_create(n, NULL, &o, &s) == DPB_OK);
        T_CHECK(dpb_sampler_start(s) == DPB_OK);
        uint64_t a, b;
        dpb_sampler_mark(s, "a", &a);
        sleep_ms(600);
        dpb_sampler_mark(s, "b", &b);
        dpb_sampler_stop(s);
        dpb_energy e;
        T_CHECK(dpb_sampler_gpu_energy(s, 0, a, b, &e) == DPB_OK);
        T_CHECK(e.counter_ok && e.integral_ok);
        if (with_instant) {
            T_CHECKF(strcmp(e.integral_source, "power_instant_w") == 0, "%s", e.integral_source);
            T_CHECKF(fabs(e.rel_diff) < 0.02, "rel diff %.4f", e.rel_diff);
        } else {
            T_CHECKF(strcmp(e.integral_source, "power_w") == 0, "%s", e.integral_source);
            const char *why;
            T_CHECK(!dpb_sampler_metric_ok(s, 0, DPB_GPU_POWER_INSTANT, &why) && strcmp(why, "Not Supported") == 0);
        }
        cJSON *j = dpb_energy_json(&e);
        T_CHECK(strcmp(cJSON_GetObjectItem(j, "integral_power_source")->valuestring, e.integral_source) == 0);
        cJSON_Delete(j);
        dpb_sampler_free(s);
        dpb_nvml_close(n);
    }
    unsetenv("FAKE_NVML_POWER_AVERAGE");
}

/* A failing metric is unavailable with NVML's error, in the API and the CSV; never 0. */
static void test_failing_metric_unavailable(void)
{
    NEED_FAKE();
    fake_env("temperature,energy", "1");
    dpb_nvml *n;
    T_CHECK(dpb_nvml_open(&n) == DPB_OK);
    if (!n) return;
    dpb_sampler *s;
    dpb_sampler_opts o = {.hz = 20};
    T_CHECK(dpb_sampler_create(n, NULL, &o, &s) == DPB_OK);
    T_CHECK(dpb_sampler_start(s) == DPB_OK);
    uint64_t a, b;
    dpb_sampler_mark(s, "a", &a);
    sleep_ms(400);
    dpb_sampler_mark(s, "b", &b);
    dpb_sampler_stop(s);
    const char *why = NULL;
    T_CHECK(!dpb_sampler_metric_ok(s, 0, DPB_GPU_TEMP, &why));
    T_CHECKF(why && strcmp(why, "Not Supported") == 0, "%s", why ? why : "(null)");
    T_CHECK(dpb_sampler_metric_ok(s, 0, DPB_GPU_POWER, &why));
    dpb_energy e;
    T_CHECK(dpb_sampler_gpu_energy(s, 0, a, b, &e) == DPB_OK);
    T_CHECK(!e.counter_ok && e.counter_j == 0);
    T_CHECKF(strstr(e.counter_reason, "Not Supported"), "%s", e.counter_reason);
    T_CHECK(e.integral_ok && e.integral_j > 0 && !e.rel_diff_ok);
    T_CHECK(e.avg_w_ok && fabs(e.avg_w - e.integral_j / e.seconds) < 1e-9); /* from the integral */

    const char *tmp = t_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/telemetry.csv", tmp);
    T_CHECK(dpb_sampler_write_csv(s, path) == DPB_OK);
    char *text;
    size_t len;
    T_CHECK(dpb_file_read(path, 1 << 20, &text, &len) == DPB_OK);
    const char *hdr = "t_ns,t_s,gpu,mark,power_w,power_instant_w,energy_j,sm_clock_mhz,mem_clock_mhz,temp_c,gpu_util_pct,"
                      "mem_util_pct,mem_used_bytes,proc_mem_bytes,throttle_reasons\n";
    T_CHECK(strncmp(text, hdr, strlen(hdr)) == 0);
    /* Every polled row: energy_j and temp_c empty; power_w, power_instant_w and sm_clock_mhz present. */
    int rows = 0, bad = 0;
    for (char *line = strchr(text, '\n') + 1; line && *line; ) {
        char *eol = strchr(line, '\n');
        *eol = 0;
        char *f[16];
        int nf = 0;
        for (char *p = line; nf < 16; ) {
            f[nf++] = p;
            char *c = strchr(p, ',');
            if (!c) break;
            *c = 0;
            p = c + 1;
        }
        if (nf != 15) bad++;
        else if (strcmp(f[3], "0") == 0) {
            rows++;
            if (*f[6] || *f[9] || !*f[4] || !*f[5] || strcmp(f[7], "1980") != 0) bad++;
        }
        line = eol + 1;
    }
    T_CHECKF(rows >= 5 && bad == 0, "rows %d bad %d", rows, bad);
    free(text);
    dpb_sampler_free(s);
    dpb_nvml_close(n);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void make_zone(const char *root, const char *zone, const char *name, const char *energy, const char *max)
{
    char d[600];
    snprintf(d, sizeof d, "%s/%s", root, zone);
    mkdir(d, 0777);
    write_file(d, "name", name);
    if (energy) write_file(d, "energy_uj", energy);
    if (max) write_file(d, "max_energy_range_uj", max);
}

static void test_rapl_fake_tree(void)
{
    T_CHECK(dpb_rapl_delta_uj(100, 250, 1000) == 150);
    T_CHECK(dpb_rapl_delta_uj(900, 50, 1000) == 150);  /* wrapped once */
    T_CHECK(dpb_rapl_delta_uj(900, 50, 0) == 50);      /* no range known */

    const char *tmp = t_tmpdir();
    char root[512];
    snprintf(root, sizeof root, "%s/powercap", tmp);
    mkdir(root, 0777);
    setenv("DPB_POWERCAP_ROOT", root, 1);
    dpb_rapl *r;
    T_CHECK(dpb_rapl_open(&r) == DPB_E_UNAVAILABLE);
    T_CHECKF(strstr(dpb_error_message(), "RAPL unavailable: no package or dram domain"), "%s", dpb_error_message());

    make_zone(root, "intel-rapl:0", "package-0\n", "999000\n", "1000000\n");
    make_zone(root, "intel-rapl:0:0", "core\n", "5\n", "1000000\n");
    make_zone(root, "intel-rapl:0:1", "dram\n", "100\n", "1000000\n");
    make_zone(root, "intel-rapl:1", "package-1\n", "2000\n", "1000000\n");
    make_zone(root, "intel-rapl-mmio:0", "package-0\n", "1\n", "1000000\n");
    T_CHECK(dpb_rapl_open(&r) == DPB_OK);
    if (!r) return;
    T_CHECK(r->n == 3);
    T_CHECK(strcmp(r->d[0].zone, "intel-rapl:0") == 0 && strcmp(r->d[0].name, "package-0") == 0 &&
            r->d[0].kind == DPB_RAPL_PACKAGE && r->d[0].max_range_uj == 1000000);
    T_CHECK(strcmp(r->d[1].zone, "intel-rapl:0:1") == 0 && r->d[1].kind == DPB_RAPL_DRAM);
    T_CHECK(strcmp(r->d[2].name, "package-1") == 0);
    uint64_t uj;
    T_CHECK(dpb_rapl_read(r, 0, &uj) == DPB_OK && uj == 999000);

    /* Marks read RAPL at once: package-0 wraps from 999000 to 500 (1500 uJ), package-1 gains 3000 uJ. */
    dpb_sampler *s;
    /* 0.1 Hz: no background sample falls between the marks, so the counter's polyline runs from mark a's reading
     * straight to mark b's.  At 10 Hz a background sample could land a millisecond after the files change, and a
     * mark's linear extension along that steep segment turned a 0.1 ms descheduling into a percent (CI, loaded). */
    dpb_sampler_opts o = {.hz = 0.1};
    T_CHECK(dpb_sampler_create(NULL, r, &o, &s) == DPB_OK);
    uint64_t a, b;
    dpb_sampler_mark(s, "a", &a);
    char d0[600], d1[600], dd[600];
    snprintf(d0, sizeof d0, "%s/intel-rapl:0", root);
    snprintf(d1, sizeof d1, "%s/intel-rapl:1", root);
    snprintf(dd, sizeof dd, "%s/intel-rapl:0:1", root);
    write_file(d0, "energy_uj", "500\n");
    write_file(d1, "energy_uj", "5000\n");
    write_file(dd, "energy_uj", "400100\n");
    /* Long enough that a descheduled thread between a mark's clock reading
     * and its counter readings (ms on a loaded CI box) stays well under the
     * 1 % tolerance of the linear extension below. */
    sleep_ms(300);
    dpb_sampler_mark(s, "b", &b);
    dpb_energy e;
    T_CHECK(dpb_sampler_rapl_energy(s, DPB_RAPL_PACKAGE, a, b, &e) == DPB_OK);
    /* The mark's time precedes its readings by microseconds; the counter is extended linearly to it. */
    T_CHECKF(e.counter_ok && fabs(e.counter_j - 0.0045) < 0.0045 * 0.01, "%d %.9f %s", e.counter_ok, e.counter_j,
             e.counter_reason);
    T_CHECK(!e.integral_ok && e.avg_w_ok);
    T_CHECK(dpb_sampler_rapl_energy(s, DPB_RAPL_DRAM, a, b, &e) == DPB_OK);
    T_CHECK(e.counter_ok && fabs(e.counter_j - 0.4) < 0.4 * 0.01);
    char path[600];
    snprintf(path, sizeof path, "%s/rapl.csv", tmp);
    T_CHECK(dpb_sampler_write_rapl_csv(s, path) == DPB_OK);
    char *text;
    size_t len;
    T_CHECK(dpb_file_read(path, 1 << 20, &text, &len) == DPB_OK);
    T_CHECK(strncmp(text, "t_ns,t_s,domain,kind,energy_j,power_w\n", 38) == 0);
    T_CHECKF(strstr(text, ",package-0,package,0.001500,"), "%s", text);
    free(text);
    dpb_sampler_free(s);
    dpb_rapl_close(r);

    /* Unreadable counters: the reason names the file. */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/powercap2", tmp);
    mkdir(bad, 0777);
    make_zone(bad, "intel-rapl:0", "package-0\n", NULL, "1000000\n");
    char eu[800];
    snprintf(eu, sizeof eu, "%s/intel-rapl:0/energy_uj", bad);
    mkdir(eu, 0777); /* a folder where the counter should be: read fails for root too */
    setenv("DPB_POWERCAP_ROOT", bad, 1);
    T_CHECK(dpb_rapl_open(&r) == DPB_E_UNAVAILABLE);
    T_CHECKF(strstr(dpb_error_message(), "RAPL unavailable") && strstr(dpb_error_message(), "energy_uj"), "%s",
             dpb_error_message());
    setenv("DPB_POWERCAP_ROOT", "/nonexistent/powercap", 1);
    T_CHECK(dpb_rapl_open(&r) == DPB_E_UNAVAILABLE);
    T_CHECKF(strstr(dpb_error_message(), "/nonexistent/powercap does not exist"), "%s", dpb_error_message());
    unsetenv("DPB_POWERCAP_ROOT");
}

static void test_idle_baseline(void)
{
    NEED_FAKE();
    fake_env(NULL, "2");
    setenv("DPB_POWERCAP_ROOT", "/nonexistent/powercap", 1);
    dpb_telemetry t;
    dpb_telemetry_open(&t);
    T_CHECK(t.nvml != NULL && t.rapl == NULL && strstr(t.rapl_reason, "RAPL unavailable"));
    dpb_sampler *s;
    dpb_sampler_opts o = {.hz = 20};
    T_CHECK(dpb_sampler_create(t.nvml, t.rapl, &o, &s) == DPB_OK);
    dpb_idle_baseline ib;
    T_CHECK(dpb_sampler_idle_baseline(s, 0.5, &ib) == DPB_OK);
    T_CHECK(ib.n_gpus == 2 && ib.seconds >= 0.5 && ib.seconds < 2);
    for (size_t g = 0; g < 2; g++) {
        T_CHECK(ib.gpu[g] == g);
        T_CHECK(ib.gpu_energy[g].avg_w_ok && ib.gpu_energy[g].avg_w > 100 && ib.gpu_energy[g].avg_w < 210);
        T_CHECK(ib.gpu_energy[g].counter_ok && ib.gpu_energy[g].integral_ok);
    }
    T_CHECK(!ib.cpu_package.counter_ok && !ib.cpu_package.avg_w_ok);
    T_CHECK(dpb_sampler_idle_baseline(s, 0, &ib) == DPB_E_ARG);
    dpb_sampler_free(s);
    dpb_telemetry_close(&t);
    unsetenv("DPB_POWERCAP_ROOT");
}

static void test_host_facts(void)
{
    dpb_host_facts h;
    dpb_host_facts_collect(NULL, &h);
    T_CHECK(h.cpu_threads >= 1 && h.mem_total_bytes > (64ull << 20) && strncmp(h.kernel, "Linux ", 6) == 0);
    uint64_t rss, peak;
    T_CHECK(dpb_host_memory(&rss, &peak) == DPB_OK);
    T_CHECK(rss > 0 && peak >= rss);
    /* Touch 64 MiB: the peak follows. */
    size_t big = 64u << 20;
    char *p = malloc(big);
    if (p) {
        memset(p, 1, big);
        uint64_t rss2, peak2;
        T_CHECK(dpb_host_memory(&rss2, &peak2) == DPB_OK);
        T_CHECKF(peak2 >= peak + (48u << 20) || peak2 >= rss + (48u << 20), "peak %llu -> %llu",
                 (unsigned long long)peak, (unsigned long long)peak2);
        free(p);
    }
    NEED_FAKE();
    fake_env(NULL, "2");
    dpb_nvml *n;
    T_CHECK(dpb_nvml_open(&n) == DPB_OK);
    dpb_host_facts_collect(n, &h);
    T_CHECK(strcmp(h.gpu_source, "nvml") == 0 && h.gpu_count == 2 && strcmp(h.gpu[1].name, "Fake GPU 1") == 0);
    T_CHECK(strcmp(h.driver_version, "999.12.34") == 0 && h.cuda_driver_version == 13000);
    cJSON *j = dpb_host_facts_json(&h);
    T_CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "gpus")) == 2);
    T_CHECK(strcmp(cJSON_GetObjectItem(j, "cuda_driver_version")->valuestring, "13.0") == 0);
    cJSON_Delete(j);
    dpb_nvml_close(n);
}

/* ---- the command ------------------------------------------------------ */

static int run_cmd(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli_unavailable_json(void)
{
    if (access(g_bin, X_OK) != 0) T_SKIP("%s not built", g_bin);
    static char out[65536];
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "DPB_NVML_LIBRARY=/nonexistent DPB_POWERCAP_ROOT=/nonexistent '%s' telemetry --json", g_bin);
    T_CHECK(run_cmd(cmd, out, sizeof out) == 0);
    cJSON *j;
    T_CHECK(dpb_json_parse(out, strlen(out), "telemetry --json", &j) == DPB_OK);
    if (!j) return;
    const cJSON *nv = cJSON_GetObjectItem(j, "nvml");
    T_CHECK(cJSON_IsFalse(cJSON_GetObjectItem(nv, "available")));
    T_CHECK(strstr(cJSON_GetObjectItem(nv, "reason")->valuestring, "/nonexistent") != NULL);
    const cJSON *ra = cJSON_GetObjectItem(j, "rapl");
    T_CHECK(cJSON_IsFalse(cJSON_GetObjectItem(ra, "available")));
    T_CHECK(strstr(cJSON_GetObjectItem(ra, "reason")->valuestring, "RAPL unavailable") != NULL);
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "'%s' telemetry --hz 500 2>&1", g_bin);
    T_CHECK(run_cmd(cmd, out, sizeof out) == 2);
    T_CHECKF(strstr(out, "--hz") && strstr(out, "outside"), "%s", out);
    snprintf(cmd, sizeof cmd, "'%s' telemetry --gpus 0,,1 2>&1", g_bin);
    T_CHECK(run_cmd(cmd, out, sizeof out) == 2);
}

static void test_cli_record(void)
{
    if (access(g_bin, X_OK) != 0) T_SKIP("%s not built", g_bin);
    NEED_FAKE();
    const char *tmp = t_tmpdir();
    static char out[65536];
    char cmd[2000], dir[600];
    snprintf(dir, sizeof dir, "%s/rec", tmp);
    snprintf(cmd, sizeof cmd,
             "DPB_NVML_LIBRARY='%s' FAKE_NVML_DEVICES=2 DPB_POWERCAP_ROOT=/nonexistent '%s' telemetry --duration 1 "
             "--hz 20 --gpus 1 --out '%s' --json 2>/dev/null",
             g_fake, g_bin, dir);
    T_CHECK(run_cmd(cmd, out, sizeof out) == 0);
    char path[700];
    cJSON *sum = NULL, *man = NULL;
    snprintf(path, sizeof path, "%s/summary.json", dir);
    T_CHECK(dpb_json_load(path, 1 << 20, &sum) == DPB_OK);
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    T_CHECK(dpb_json_load(path, 1 << 20, &man) == DPB_OK);
    if (sum) {
        const cJSON *rec = cJSON_GetObjectItem(sum, "recording");
        T_CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(rec, "gpus")) == 1);
        const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(rec, "gpus"), 0);
        T_CHECK(cJSON_GetObjectItem(g, "index")->valueint == 1);
        const cJSON *e = cJSON_GetObjectItem(g, "energy");
        T_CHECK(cJSON_IsNumber(cJSON_GetObjectItem(e, "energy_counter_j")));
        T_CHECK(fabs(cJSON_GetObjectItem(e, "energy_rel_diff")->valuedouble) < 0.02);
        double hz = cJSON_GetObjectItem(rec, "achieved_hz")->valuedouble;
        T_CHECKF(hz > 16 && hz < 22, "%.2f Hz", hz);
        T_CHECK(strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "cpu"), "package")->valuestring, "RAPL unavailable"));
        cJSON_Delete(sum);
    }
    if (man) {
        T_CHECK(strcmp(cJSON_GetObjectItem(man, "status")->valuestring, "complete") == 0);
        T_CHECK(strcmp(cJSON_GetObjectItem(man, "command")->valuestring, "telemetry") == 0);
        cJSON_Delete(man);
    }
    snprintf(path, sizeof path, "%s/telemetry.csv", dir);
    T_CHECK(dpb_file_exists(path));
    snprintf(path, sizeof path, "%s/marks.csv", dir);
    T_CHECK(dpb_file_exists(path));
    /* The folder is no longer empty: a second run refuses it. */
    T_CHECK(run_cmd(cmd, out, sizeof out) == 2);
    /* Without --out: CSV on stdout. */
    snprintf(cmd, sizeof cmd, "DPB_NVML_LIBRARY='%s' FAKE_NVML_DEVICES=1 '%s' telemetry --duration 0.3 --hz 20 2>/dev/null",
             g_fake, g_bin);
    T_CHECK(run_cmd(cmd, out, sizeof out) == 0);
    T_CHECK(strncmp(out, "t_ns,t_s,gpu,mark,power_w,", 26) == 0);
}

/* Ctrl-C stops a recording cleanly: exit 130, files written, manifest "interrupted". */
static void test_cli_ctrl_c(void)
{
    if (access(g_bin, X_OK) != 0) T_SKIP("%s not built", g_bin);
    NEED_FAKE();
    const char *tmp = t_tmpdir();
    char dir[600];
    snprintf(dir, sizeof dir, "%s/int", tmp);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("DPB_NVML_LIBRARY", g_fake, 1);
        execl(g_bin, g_bin, "telemetry", "--duration", "60", "--hz", "20", "--out", dir, (char *)NULL);
        _exit(127);
    }
    /* The manifest appears once the signal handler is installed and recording is about to start. */
    char mpath[700];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dir);
    for (int i = 0; i < 200 && access(mpath, F_OK) != 0; i++) sleep_ms(50);
    sleep_ms(800);
    kill(pid, SIGINT);
    int status = 0;
    uint64_t t0 = dpb_now_ns();
    waitpid(pid, &status, 0);
    T_CHECK((dpb_now_ns() - t0) < 5000000000ull);
    T_CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d", status);
    char path[700];
    cJSON *man = NULL;
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    T_CHECK(dpb_json_load(path, 1 << 20, &man) == DPB_OK);
    if (man) {
        T_CHECK(strcmp(cJSON_GetObjectItem(man, "status")->valuestring, "interrupted") == 0);
        T_CHECK(cJSON_IsString(cJSON_GetObjectItem(man, "message")));
        cJSON_Delete(man);
    }
    snprintf(path, sizeof path, "%s/telemetry.csv", dir);
    char *text;
    size_t len;
    T_CHECK(dpb_file_read(path, 1 << 20, &text, &len) == DPB_OK);
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    T_CHECKF(lines > 10, "%d lines", lines); /* 2 GPUs x ~16 polls + header */
    free(text);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    cJSON *sum = NULL;
    T_CHECK(dpb_json_load(path, 1 << 20, &sum) == DPB_OK);
    if (sum) {
        T_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(sum, "recording"), "interrupted")));
        cJSON_Delete(sum);
    }
}

int main(void)
{
    find_paths();
    T_RUN(test_nvml_absent_names_library);
    T_RUN(test_nvml_init_fail_and_no_devices);
    T_RUN(test_nvml_values);
    T_RUN(test_throttle_names);
    T_RUN(test_sampler_rate);
    T_RUN(test_sampler_skips_late_ticks);
    T_RUN(test_energy_counter_vs_integral);
    T_RUN(test_integral_prefers_instant_power);
    T_RUN(test_failing_metric_unavailable);
    T_RUN(test_rapl_fake_tree);
    T_RUN(test_idle_baseline);
    T_RUN(test_host_facts);
    T_RUN(test_cli_unavailable_json);
    T_RUN(test_cli_record);
    T_RUN(test_cli_ctrl_c);
    return t_done();
}
