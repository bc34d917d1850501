#include "telemetry/sampler.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/signal.h"
#include "core/timeutil.h"

#define DEFAULT_MAX_SAMPLES 4000000u

typedef struct rapl_sample {
    uint64_t t_ns;
    double cum_j;      /* energy since the domain's first reading, wraps corrected */
    uint8_t domain;
} rapl_sample;

typedef struct mark {
    uint64_t t_ns;
    char label[64];
} mark;

struct dpb_sampler {
    dpb_nvml *nvml;
    dpb_rapl *rapl;
    double hz;
    uint64_t period_ns;
    uint32_t metrics;
    size_t max_samples;
    size_t n_gpus;
    unsigned gpu[DPB_MAX_GPUS];

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    bool running, stop_req;
    uint64_t t_origin_ns;          /* first start (or creation): t_s = 0 in the CSVs */

    dpb_gpu_sample *smp;           /* all GPUs, in time order */
    size_t n_smp, cap_smp;
    bool truncated;
    size_t ok_count[DPB_MAX_GPUS][DPB_GPU_METRIC_COUNT];
    int last_err[DPB_MAX_GPUS][DPB_GPU_METRIC_COUNT];

    rapl_sample *rs;
    size_t n_rs, cap_rs;
    bool rapl_have_last[DPB_RAPL_MAX_DOMAINS];
    uint64_t rapl_last_raw[DPB_RAPL_MAX_DOMAINS];
    double rapl_cum[DPB_RAPL_MAX_DOMAINS];
    char rapl_err[DPB_RAPL_MAX_DOMAINS][200];

    mark *marks;
    size_t n_marks, cap_marks;
    size_t ticks, missed;
};

/* ---- telemetry sources ------------------------------------------------ */

void dpb_telemetry_open(dpb_telemetry *t)
{
    memset(t, 0, sizeof *t);
    if (dpb_nvml_open(&t->nvml) != DPB_OK) snprintf(t->nvml_reason, sizeof t->nvml_reason, "%s", dpb_error_message());
    if (dpb_rapl_open(&t->rapl) != DPB_OK) snprintf(t->rapl_reason, sizeof t->rapl_reason, "%s", dpb_error_message());
    dpb_error_clear();
}

void dpb_telemetry_close(dpb_telemetry *t)
{
    dpb_nvml_close(t->nvml);
    dpb_rapl_close(t->rapl);
    memset(t, 0, sizeof *t);
}

/* ---- creation --------------------------------------------------------- */

static int slot_of(const dpb_sampler *s, unsigned gpu)
{
    for (size_t i = 0; i < s->n_gpus; i++)
        if (s->gpu[i] == gpu) return (int)i;
    return -1;
}

dpb_status dpb_sampler_create(dpb_nvml *nvml, dpb_rapl *rapl, const dpb_sampler_opts *o, dpb_sampler **out)
{
    *out = NULL;
    dpb_sampler_opts def = {0};
    if (!o) o = &def;
    double hz = o->hz == 0 ? DPB_SAMPLER_DEFAULT_HZ : o->hz;
    if (!(hz >= DPB_SAMPLER_MIN_HZ && hz <= DPB_SAMPLER_MAX_HZ))
        return dpb_error_set(DPB_E_ARG, "sampler: rate %g Hz is outside [%g, %g]", hz, DPB_SAMPLER_MIN_HZ,
                             DPB_SAMPLER_MAX_HZ);
    if (o->metrics & ~DPB_GPU_ALL_METRICS) return dpb_error_set(DPB_E_ARG, "sampler: unknown metric bits");
    dpb_sampler *s = calloc(1, sizeof *s);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "sampler: out of memory");
    s->nvml = nvml;
    s->rapl = rapl;
    s->hz = hz;
    s->period_ns = (uint64_t)llround(1e9 / hz);
    s->metrics = o->metrics ? o->metrics : DPB_GPU_ALL_METRICS;
    s->max_samples = o->max_samples ? o->max_samples : DEFAULT_MAX_SAMPLES;
    unsigned have = dpb_nvml_device_count(nvml);
    if (o->gpus && o->n_gpus) {
        if (!nvml)
            return free(s), dpb_error_set(DPB_E_ARG, "sampler: GPUs were chosen but NVML is unavailable");
        if (o->n_gpus > DPB_MAX_GPUS) return free(s), dpb_error_set(DPB_E_ARG, "sampler: more than %d GPUs", DPB_MAX_GPUS);
        for (size_t i = 0; i < o->n_gpus; i++) {
            if (o->gpus[i] >= have)
                return free(s), dpb_error_set(DPB_E_ARG, "sampler: GPU %u does not exist (NVML sees %u: 0..%u)",
                                              o->gpus[i], have, have ? have - 1 : 0);
            if (slot_of(s, o->gpus[i]) >= 0)
                return free(s), dpb_error_set(DPB_E_ARG, "sampler: GPU %u listed twice", o->gpus[i]);
            s->gpu[s->n_gpus++] = o->gpus[i];
        }
    } else {
        for (unsigned i = 0; i < have; i++) s->gpu[s->n_gpus++] = i;
    }
    for (size_t g = 0; g < DPB_MAX_GPUS; g++)
        for (int m = 0; m < DPB_GPU_METRIC_COUNT; m++) s->last_err[g][m] = DPB_NVML_ERR_NOT_READ;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->t_origin_ns = dpb_now_ns();
    *out = s;
    return DPB_OK;
}

void dpb_sampler_free(dpb_sampler *s)
{
    if (!s) return;
    dpb_sampler_stop(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->smp);
    free(s->rs);
    free(s->marks);
    free(s);
}

/* ---- recording -------------------------------------------------------- */

/* Appends in time order (readings from a mark and the thread may interleave).  Under mu. */
static void insert_sample(dpb_sampler *s, const dpb_gpu_sample *x)
{
    if (s->n_smp >= s->max_samples) {
        s->truncated = true;
        return;
    }
    if (s->n_smp == s->cap_smp) {
        size_t cap = s->cap_smp ? s->cap_smp * 2 : 1024;
        if (cap > s->max_samples) cap = s->max_samples;
        dpb_gpu_sample *p = realloc(s->smp, cap * sizeof *p);
        if (!p) {
            s->truncated = true;
            return;
        }
        s->smp = p;
        s->cap_smp = cap;
    }
    size_t i = s->n_smp++;
    while (i > 0 && s->smp[i - 1].t_ns > x->t_ns) {
        s->smp[i] = s->smp[i - 1];
        i--;
    }
    s->smp[i] = *x;
}

static void read_gpus(dpb_sampler *s, uint32_t mask, uint16_t flags)
{
    for (size_t g = 0; g < s->n_gpus; g++) {
        dpb_gpu_sample x;
        int err[DPB_GPU_METRIC_COUNT];
        if (dpb_nvml_read(s->nvml, s->gpu[g], mask, &x, err) != DPB_OK) continue;
        x.flags = flags;
        pthread_mutex_lock(&s->mu);
        insert_sample(s, &x);
        for (int m = 0; m < DPB_GPU_METRIC_COUNT; m++) {
            if (err[m] == 0) s->ok_count[g][m]++;
            else if (err[m] != DPB_NVML_ERR_NOT_READ) s->last_err[g][m] = err[m];
        }
        pthread_mutex_unlock(&s->mu);
    }
}

/* Under mu, so the readings of each domain are consecutive in time. */
static void read_rapl_locked(dpb_sampler *s)
{
    if (!s->rapl) return;
    for (int d = 0; d < s->rapl->n; d++) {
        uint64_t uj;
        uint64_t t = dpb_now_ns();
        if (dpb_rapl_read(s->rapl, d, &uj) != DPB_OK) {
            snprintf(s->rapl_err[d], sizeof s->rapl_err[d], "%s", dpb_error_message());
            continue;
        }
        if (s->rapl_have_last[d])
            s->rapl_cum[d] += dpb_rapl_delta_uj(s->rapl_last_raw[d], uj, s->rapl->d[d].max_range_uj) * 1e-6;
        s->rapl_have_last[d] = true;
        s->rapl_last_raw[d] = uj;
        if (s->n_rs >= s->max_samples) {
            s->truncated = true;
            continue;
        }
        if (s->n_rs == s->cap_rs) {
            size_t cap = s->cap_rs ? s->cap_rs * 2 : 256;
            rapl_sample *p = realloc(s->rs, cap * sizeof *p);
            if (!p) {
                s->truncated = true;
                continue;
            }
            s->rs = p;
            s->cap_rs = cap;
        }
        s->rs[s->n_rs++] = (rapl_sample){.t_ns = t, .cum_j = s->rapl_cum[d], .domain = (uint8_t)d};
    }
}

static void take_tick(dpb_sampler *s, bool scheduled)
{
    read_gpus(s, s->metrics, 0);
    pthread_mutex_lock(&s->mu);
    read_rapl_locked(s);
    if (scheduled) s->ticks++;
    pthread_mutex_unlock(&s->mu);
}

static void to_timespec(uint64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

static void *thread_main(void *arg)
{
    dpb_sampler *s = arg;
    uint64_t next = dpb_now_ns();
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop_req && dpb_now_ns() < next) {
            struct timespec ts;
            to_timespec(next, &ts);
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
        bool stop = s->stop_req;
        pthread_mutex_unlock(&s->mu);
        take_tick(s, !stop); /* on stop: one last sample, off the schedule */
        if (stop) break;
        next += s->period_ns;
        uint64_t now = dpb_now_ns();
        if (now > next + s->period_ns) {
            /* Late by more than a period (slow readings, descheduled): skip, do not burst. */
            uint64_t k = (now - next) / s->period_ns;
            next += k * s->period_ns;
            pthread_mutex_lock(&s->mu);
            s->missed += (size_t)k;
            pthread_mutex_unlock(&s->mu);
        }
    }
    return NULL;
}

dpb_status dpb_sampler_start(dpb_sampler *s)
{
    if (s->running) return dpb_error_set(DPB_E_ARG, "sampler: already running");
    if (s->n_smp == 0 && s->n_rs == 0) s->t_origin_ns = dpb_now_ns();
    s->stop_req = false;
    int e = pthread_create(&s->th, NULL, thread_main, s);
    if (e) return dpb_error_set(DPB_E_INTERNAL, "sampler: cannot start thread: %s", strerror(e));
    s->running = true;
    return DPB_OK;
}

dpb_status dpb_sampler_stop(dpb_sampler *s)
{
    if (!s->running) return DPB_OK;
    pthread_mutex_lock(&s->mu);
    s->stop_req = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    s->running = false;
    return DPB_OK;
}

dpb_status dpb_sampler_mark(dpb_sampler *s, const char *label, uint64_t *t_ns)
{
    uint64_t t = dpb_now_ns();
    read_gpus(s, s->metrics & DPB_GPU_POWER_ENERGY, DPB_SAMPLE_MARK);
    pthread_mutex_lock(&s->mu);
    read_rapl_locked(s);
    dpb_status st = DPB_OK;
    if (s->n_marks == s->cap_marks) {
        size_t cap = s->cap_marks ? s->cap_marks * 2 : 64;
        mark *p = realloc(s->marks, cap * sizeof *p);
        if (!p) st = dpb_error_set(DPB_E_NOMEM, "sampler: out of memory for mark '%s'", label ? label : "");
        else {
            s->marks = p;
            s->cap_marks = cap;
        }
    }
    if (st == DPB_OK) {
        mark *m = &s->marks[s->n_marks++];
        m->t_ns = t;
        snprintf(m->label, sizeof m->label, "%s", label ? label : "");
    }
    pthread_mutex_unlock(&s->mu);
    if (t_ns) *t_ns = t;
    return st;
}

dpb_status dpb_sampler_mark_time(const dpb_sampler *s, const char *label, uint64_t *t_ns)
{
    dpb_sampler *w = (dpb_sampler *)s;
    pthread_mutex_lock(&w->mu);
    bool found = false;
    for (size_t i = s->n_marks; i-- > 0;) {
        if (strncmp(s->marks[i].label, label, sizeof s->marks[i].label - 1) == 0) {
            *t_ns = s->marks[i].t_ns;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return found ? DPB_OK : dpb_error_set(DPB_E_ARG, "sampler: no mark '%s'", label);
}

double dpb_sampler_hz(const dpb_sampler *s) { return s->hz; }
size_t dpb_sampler_gpu_count(const dpb_sampler *s) { return s->n_gpus; }
unsigned dpb_sampler_gpu_index(const dpb_sampler *s, size_t i) { return i < s->n_gpus ? s->gpu[i] : 0; }

#define LOCKED_READ(type, expr)                                                                             \
    do {                                                                                                    \
        dpb_sampler *w_ = (dpb_sampler *)s;                                                                 \
        pthread_mutex_lock(&w_->mu);                                                                        \
        type v_ = (expr);                                                                                   \
        pthread_mutex_unlock(&w_->mu);                                                                      \
        return v_;                                                                                          \
    } while (0)

size_t dpb_sampler_tick_count(const dpb_sampler *s) { LOCKED_READ(size_t, s->ticks); }
size_t dpb_sampler_missed_ticks(const dpb_sampler *s) { LOCKED_READ(size_t, s->missed); }
bool dpb_sampler_truncated(const dpb_sampler *s) { LOCKED_READ(bool, s->truncated); }

dpb_status dpb_sampler_gpu_samples(dpb_sampler *s, unsigned gpu, dpb_gpu_sample **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (slot_of(s, gpu) < 0) return dpb_error_set(DPB_E_ARG, "sampler: GPU %u is not sampled", gpu);
    pthread_mutex_lock(&s->mu);
    size_t k = 0;
    for (size_t i = 0; i < s->n_smp; i++) k += s->smp[i].gpu == gpu;
    dpb_gpu_sample *p = malloc((k ? k : 1) * sizeof *p);
    if (p) {
        size_t j = 0;
        for (size_t i = 0; i < s->n_smp; i++)
            if (s->smp[i].gpu == gpu) p[j++] = s->smp[i];
    }
    pthread_mutex_unlock(&s->mu);
    if (!p) return dpb_error_set(DPB_E_NOMEM, "sampler: out of memory copying %zu samples", k);
    *out = p;
    *n = k;
    return DPB_OK;
}

dpb_status dpb_sampler_last_sample(dpb_sampler *s, unsigned gpu, dpb_gpu_sample *out)
{
    if (slot_of(s, gpu) < 0) return dpb_error_set(DPB_E_ARG, "sampler: GPU %u is not sampled", gpu);
    pthread_mutex_lock(&s->mu);
    bool found = false;
    for (size_t i = s->n_smp; i-- > 0;) {
        if (s->smp[i].gpu == gpu && !(s->smp[i].flags & DPB_SAMPLE_MARK)) {
            *out = s->smp[i];
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return found ? DPB_OK : dpb_error_set(DPB_E_UNAVAILABLE, "sampler: no sample of GPU %u yet", gpu);
}

bool dpb_sampler_metric_ok(const dpb_sampler *s, unsigned gpu, dpb_gpu_metric m, const char **reason)
{
    int g = slot_of(s, gpu);
    if (reason) *reason = "GPU not sampled";
    if (g < 0 || (unsigned)m >= DPB_GPU_METRIC_COUNT) return false;
    dpb_sampler *w = (dpb_sampler *)s;
    pthread_mutex_lock(&w->mu);
    size_t ok = s->ok_count[g][m];
    int e = s->last_err[g][m];
    pthread_mutex_unlock(&w->mu);
    if (ok) return true;
    if (reason) *reason = e == DPB_NVML_ERR_NOT_READ ? "no sample taken yet" : dpb_nvml_error_string(s->nvml, e);
    return false;
}

/* ---- energy ----------------------------------------------------------- */

/* The value at x of the polyline through (t[i], v[i]) (t ascending).  A point
 * at most tol outside [t0, tn-1] is extended: linearly from the end segment
 * (extend_linear, for counters) or with the end value (for power). */
static bool polyline_at(const double *t, const double *v, size_t n, double x, double tol, bool extend_linear,
                        double *out)
{
    if (n == 0) return false;
    if (x < t[0] - tol || x > t[n - 1] + tol) return false;
    if (n == 1) {
        *out = v[0];
        return true;
    }
    size_t i;
    if (x <= t[0]) {
        if (!extend_linear) return *out = v[0], true;
        i = 0;
    } else if (x >= t[n - 1]) {
        if (!extend_linear) return *out = v[n - 1], true;
        i = n - 2;
    } else {
        size_t lo = 0, hi = n - 1; /* t[lo] <= x < t[hi] */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (t[mid] <= x) lo = mid;
            else hi = mid;
        }
        i = lo;
    }
    double dt = t[i + 1] - t[i];
    *out = dt > 0 ? v[i] + (v[i + 1] - v[i]) * (x - t[i]) / dt : v[i + 1];
    return true;
}

/* Integral over [a, b] of the power polyline (ends extended as constants). */
static bool polyline_integral(const double *t, const double *v, size_t n, double a, double b, double tol,
                              double *out, size_t *inside)
{
    double fa, fb;
    if (!polyline_at(t, v, n, a, tol, false, &fa) || !polyline_at(t, v, n, b, tol, false, &fb)) return false;
    double sum = 0, pt = a, pv = fa;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] <= a || t[i] >= b) continue;
        sum += 0.5 * (pv + v[i]) * (t[i] - pt);
        pt = t[i];
        pv = v[i];
        k++;
    }
    sum += 0.5 * (pv + fb) * (b - pt);
    *out = sum;
    *inside = k;
    return true;
}

static void finish_energy(dpb_energy *e)
{
    if (e->counter_ok && e->integral_ok && e->counter_j > 0) {
        e->rel_diff_ok = true;
        e->rel_diff = (e->integral_j - e->counter_j) / e->counter_j;
    }
    if (e->seconds > 0 && (e->counter_ok || e->integral_ok)) {
        e->avg_w_ok = true;
        e->avg_w = (e->counter_ok ? e->counter_j : e->integral_j) / e->seconds;
    }
}

static void cover_reason(char *buf, size_t cap, const char *what, size_t n, const double *t, double a, double b)
{
    if (n == 0) snprintf(buf, cap, "no %s samples", what);
    else
        snprintf(buf, cap, "%s samples cover %.3f..%.3f s, not the interval %.3f..%.3f s", what, t[0] * 1e-9,
                 t[n - 1] * 1e-9, a * 1e-9, b * 1e-9);
}

dpb_status dpb_sampler_gpu_energy(dpb_sampler *s, unsigned gpu, uint64_t t0, uint64_t t1, dpb_energy *e)
{
    memset(e, 0, sizeof *e);
    int g = slot_of(s, gpu);
    if (g < 0) return dpb_error_set(DPB_E_ARG, "sampler: GPU %u is not sampled", gpu);
    if (t1 <= t0) return dpb_error_set(DPB_E_ARG, "sampler: empty interval (end %llu <= start %llu ns)",
                                      (unsigned long long)t1, (unsigned long long)t0);
    e->seconds = (double)(t1 - t0) * 1e-9;
    dpb_gpu_sample *x;
    size_t n;
    dpb_status st = dpb_sampler_gpu_samples(s, gpu, &x, &n);
    if (st) return st;
    double *pt = malloc((n ? n : 1) * sizeof *pt), *pv = malloc((n ? n : 1) * sizeof *pv);
    double *et = malloc((n ? n : 1) * sizeof *et), *ev = malloc((n ? n : 1) * sizeof *ev);
    if (!pt || !pv || !et || !ev) {
        free(pt), free(pv), free(et), free(ev), free(x);
        return dpb_error_set(DPB_E_NOMEM, "sampler: out of memory");
    }
    size_t np = 0, ne = 0;
    /* Instantaneous power when this GPU reports it: NVML's power_w is a 1 s
     * average on Ampere and newer (except GA100), which smears phase edges. */
    bool instant = (s->metrics & (1u << DPB_GPU_POWER_INSTANT)) &&
                   dpb_sampler_metric_ok(s, gpu, DPB_GPU_POWER_INSTANT, NULL);
    dpb_gpu_metric pm = instant ? DPB_GPU_POWER_INSTANT : DPB_GPU_POWER;
    snprintf(e->integral_source, sizeof e->integral_source, "%s", dpb_gpu_metric_column(pm));
    for (size_t i = 0; i < n; i++) {
        if (x[i].valid & (1u << pm)) {
            pt[np] = (double)x[i].t_ns;
            pv[np++] = (instant ? x[i].power_instant_mw : x[i].power_mw) * 1e-3;
        }
        if (x[i].valid & (1u << DPB_GPU_ENERGY)) {
            et[ne] = (double)x[i].t_ns;
            ev[ne++] = (double)x[i].energy_mj * 1e-3;
        }
    }
    double tol = (double)s->period_ns, a = (double)t0, b = (double)t1;
    const char *why;
    double ea, eb;
    if (!(s->metrics & (1u << DPB_GPU_ENERGY)))
        snprintf(e->counter_reason, sizeof e->counter_reason, "energy counter not sampled");
    else if (ne == 0 && !dpb_sampler_metric_ok(s, gpu, DPB_GPU_ENERGY, &why))
        snprintf(e->counter_reason, sizeof e->counter_reason, "energy counter: %s", why);
    else if (polyline_at(et, ev, ne, a, tol, true, &ea) && polyline_at(et, ev, ne, b, tol, true, &eb)) {
        if (eb >= ea) {
            e->counter_ok = true;
            e->counter_j = eb - ea;
        } else snprintf(e->counter_reason, sizeof e->counter_reason, "energy counter went backwards (driver reload?)");
    } else cover_reason(e->counter_reason, sizeof e->counter_reason, "energy counter", ne, et, a, b);

    if (!(s->metrics & (1u << pm)))
        snprintf(e->integral_reason, sizeof e->integral_reason, "power not sampled");
    else if (np == 0 && !dpb_sampler_metric_ok(s, gpu, pm, &why))
        snprintf(e->integral_reason, sizeof e->integral_reason, "power: %s", why);
    else if (polyline_integral(pt, pv, np, a, b, tol, &e->integral_j, &e->n_samples)) {
        e->integral_ok = true;
        e->integral_j *= 1e-9; /* W x ns */
    }
    else cover_reason(e->integral_reason, sizeof e->integral_reason, "power", np, pt, a, b);
    /* Boundary readings count as samples inside the interval too. */
    free(pt), free(pv), free(et), free(ev), free(x);
    finish_energy(e);
    return DPB_OK;
}

dpb_status dpb_sampler_rapl_energy(dpb_sampler *s, dpb_rapl_kind kind, uint64_t t0, uint64_t t1, dpb_energy *e)
{
    memset(e, 0, sizeof *e);
    if (t1 <= t0) return dpb_error_set(DPB_E_ARG, "sampler: empty interval (end %llu <= start %llu ns)",
                                      (unsigned long long)t1, (unsigned long long)t0);
    e->seconds = (double)(t1 - t0) * 1e-9;
    snprintf(e->integral_reason, sizeof e->integral_reason, "RAPL gives energy counters only");
    if (!s->rapl) {
        snprintf(e->counter_reason, sizeof e->counter_reason, "RAPL unavailable (the sampler was given no RAPL source)");
        return DPB_OK;
    }
    pthread_mutex_lock(&s->mu);
    size_t n = s->n_rs;
    double *t = malloc((n ? n : 1) * sizeof *t), *v = malloc((n ? n : 1) * sizeof *v);
    if (!t || !v) {
        pthread_mutex_unlock(&s->mu);
        free(t), free(v);
        return dpb_error_set(DPB_E_NOMEM, "sampler: out of memory");
    }
    double total = 0;
    int domains = 0;
    bool ok = true;
    for (int d = 0; d < s->rapl->n && ok; d++) {
        if (s->rapl->d[d].kind != kind) continue;
        domains++;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (s->rs[i].domain == d) {
                t[k] = (double)s->rs[i].t_ns;
                v[k++] = s->rs[i].cum_j;
            }
        double ea, eb;
        if (polyline_at(t, v, k, (double)t0, (double)s->period_ns, true, &ea) &&
            polyline_at(t, v, k, (double)t1, (double)s->period_ns, true, &eb)) {
            total += eb - ea;
            e->n_samples += k;
        } else {
            ok = false;
            if (s->rapl_err[d][0] && k == 0)
                snprintf(e->counter_reason, sizeof e->counter_reason, "%s", s->rapl_err[d]);
            else cover_reason(e->counter_reason, sizeof e->counter_reason, s->rapl->d[d].name, k, t, (double)t0,
                              (double)t1);
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(t), free(v);
    if (domains == 0) snprintf(e->counter_reason, sizeof e->counter_reason, "no RAPL %s domain", dpb_rapl_kind_name(kind));
    else if (ok) {
        e->counter_ok = true;
        e->counter_j = total;
    }
    finish_energy(e);
    return DPB_OK;
}

dpb_status dpb_sampler_idle_baseline(dpb_sampler *s, double seconds, dpb_idle_baseline *out)
{
    memset(out, 0, sizeof *out);
    if (!(seconds > 0 && seconds <= 3600))
        return dpb_error_set(DPB_E_ARG, "idle baseline: %g s is outside (0, 3600]", seconds);
    bool started = false;
    if (!s->running) {
        dpb_status st = dpb_sampler_start(s);
        if (st) return st;
        started = true;
    }
    uint64_t a, b;
    dpb_sampler_mark(s, "idle_start", &a);
    uint64_t end = a + (uint64_t)(seconds * 1e9);
    while (dpb_now_ns() < end && !dpb_interrupted()) {
        uint64_t left = end - dpb_now_ns();
        usleep((useconds_t)((left > 50000000u ? 50000000u : left) / 1000u + 1));
    }
    dpb_sampler_mark(s, "idle_end", &b);
    if (started) dpb_sampler_stop(s);
    if (dpb_interrupted()) return dpb_error_set(DPB_E_INTERRUPTED, "idle baseline: interrupted");
    out->seconds = (double)(b - a) * 1e-9;
    out->n_gpus = s->n_gpus;
    for (size_t g = 0; g < s->n_gpus; g++) {
        out->gpu[g] = s->gpu[g];
        dpb_status st = dpb_sampler_gpu_energy(s, s->gpu[g], a, b, &out->gpu_energy[g]);
        if (st) return st;
    }
    return dpb_sampler_rapl_energy(s, DPB_RAPL_PACKAGE, a, b, &out->cpu_package);
}

cJSON *dpb_energy_json(const dpb_energy *e)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    char buf[300];
    cJSON_AddNumberToObject(o, "seconds", e->seconds);
    if (e->counter_ok) cJSON_AddNumberToObject(o, "energy_counter_j", e->counter_j);
    else {
        snprintf(buf, sizeof buf, "unavailable: %s", e->counter_reason);
        cJSON_AddStringToObject(o, "energy_counter_j", buf);
    }
    if (e->integral_ok) {
        cJSON_AddNumberToObject(o, "energy_integral_j", e->integral_j);
        cJSON_AddStringToObject(o, "integral_power_source", e->integral_source);
    }
    else {
        snprintf(buf, sizeof buf, "unavailable: %s", e->integral_reason);
        cJSON_AddStringToObject(o, "energy_integral_j", buf);
    }
    if (e->rel_diff_ok) cJSON_AddNumberToObject(o, "energy_rel_diff", e->rel_diff);
    else cJSON_AddStringToObject(o, "energy_rel_diff", "unavailable: needs both energy figures");
    if (e->avg_w_ok) cJSON_AddNumberToObject(o, "avg_w", e->avg_w);
    else cJSON_AddStringToObject(o, "avg_w", "unavailable: no energy figure");
    cJSON_AddNumberToObject(o, "samples", (double)e->n_samples);
    return o;
}

/* ---- CSV -------------------------------------------------------------- */

typedef struct csv_out {
    FILE *f;
    char *tmp;
    const char *path;
} csv_out;

static dpb_status csv_open(csv_out *c, const char *path)
{
    c->path = path;
    size_t len = strlen(path) + 32;
    c->tmp = malloc(len);
    if (!c->tmp) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
    snprintf(c->tmp, len, "%s.tmp%ld", path, (long)getpid());
    c->f = fopen(c->tmp, "w");
    if (!c->f) {
        dpb_status st = dpb_error_set(DPB_E_IO, "%s: cannot create: %s", c->tmp, strerror(errno));
        free(c->tmp);
        return st;
    }
    return DPB_OK;
}

static dpb_status csv_close(csv_out *c)
{
    int bad = ferror(c->f) | (fflush(c->f) != 0) | (fsync(fileno(c->f)) != 0);
    bad |= fclose(c->f) != 0;
    dpb_status st = DPB_OK;
    if (bad || rename(c->tmp, c->path) != 0) {
        st = dpb_error_set(DPB_E_IO, "%s: cannot write: %s", c->path, strerror(errno));
        unlink(c->tmp);
    }
    free(c->tmp);
    return st;
}

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

dpb_status dpb_sampler_write_csv(dpb_sampler *s, const char *path)
{
    csv_out c;
    dpb_status st = csv_open(&c, path);
    if (st) return st;
    fprintf(c.f, "t_ns,t_s,gpu,mark");
    for (int m = 0; m < DPB_GPU_METRIC_COUNT; m++) fprintf(c.f, ",%s", dpb_gpu_metric_column((dpb_gpu_metric)m));
    fputc('\n', c.f);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_smp; i++) {
        const dpb_gpu_sample *x = &s->smp[i];
        double ts = ((double)x->t_ns - (double)s->t_origin_ns) * 1e-9;
        fprintf(c.f, "%llu,%.6f,%u,%u", (unsigned long long)x->t_ns, ts, x->gpu, (x->flags & DPB_SAMPLE_MARK) ? 1u : 0u);
#define CELL(metric, ...)                                                                                   \
    do {                                                                                                    \
        if (x->valid & (1u << (metric))) fprintf(c.f, __VA_ARGS__);                                         \
        else fputc(',', c.f);                                                                               \
    } while (0)
        CELL(DPB_GPU_POWER, ",%.3f", x->power_mw * 1e-3);
        CELL(DPB_GPU_POWER_INSTANT, ",%.3f", x->power_instant_mw * 1e-3);
        CELL(DPB_GPU_ENERGY, ",%.3f", (double)x->energy_mj * 1e-3);
        CELL(DPB_GPU_SM_CLOCK, ",%u", x->sm_clock_mhz);
        CELL(DPB_GPU_MEM_CLOCK, ",%u", x->mem_clock_mhz);
        CELL(DPB_GPU_TEMP, ",%u", x->temp_c);
        CELL(DPB_GPU_UTIL, ",%u", x->gpu_util_pct);
        CELL(DPB_GPU_MEM_UTIL, ",%u", x->mem_util_pct);
        CELL(DPB_GPU_MEM_USED, ",%llu", (unsigned long long)x->mem_used_bytes);
        CELL(DPB_GPU_PROC_MEM, ",%llu", (unsigned long long)x->proc_mem_bytes);
        CELL(DPB_GPU_THROTTLE, ",%llu", (unsigned long long)x->throttle_reasons);
#undef CELL
        fputc('\n', c.f);
    }
    pthread_mutex_unlock(&s->mu);
    return csv_close(&c);
}

dpb_status dpb_sampler_write_rapl_csv(dpb_sampler *s, const char *path)
{
    if (!s->rapl) return dpb_error_set(DPB_E_UNAVAILABLE, "%s: RAPL is unavailable, nothing to write", path);
    csv_out c;
    dpb_status st = csv_open(&c, path);
    if (st) return st;
    fprintf(c.f, "t_ns,t_s,domain,kind,energy_j,power_w\n");
    pthread_mutex_lock(&s->mu);
    uint64_t prev_t[DPB_RAPL_MAX_DOMAINS] = {0};
    double prev_j[DPB_RAPL_MAX_DOMAINS] = {0};
    bool have[DPB_RAPL_MAX_DOMAINS] = {0};
    for (size_t i = 0; i < s->n_rs; i++) {
        const rapl_sample *r = &s->rs[i];
        const dpb_rapl_domain *d = &s->rapl->d[r->domain];
        fprintf(c.f, "%llu,%.6f,", (unsigned long long)r->t_ns, ((double)r->t_ns - (double)s->t_origin_ns) * 1e-9);
        csv_field(c.f, d->name);
        fprintf(c.f, ",%s,%.6f,", dpb_rapl_kind_name(d->kind), r->cum_j);
        if (have[r->domain] && r->t_ns > prev_t[r->domain])
            fprintf(c.f, "%.3f", (r->cum_j - prev_j[r->domain]) / ((double)(r->t_ns - prev_t[r->domain]) * 1e-9));
        fputc('\n', c.f);
        have[r->domain] = true;
        prev_t[r->domain] = r->t_ns;
        prev_j[r->domain] = r->cum_j;
    }
    pthread_mutex_unlock(&s->mu);
    return csv_close(&c);
}

dpb_status dpb_sampler_write_marks_csv(dpb_sampler *s, const char *path)
{
    csv_out c;
    dpb_status st = csv_open(&c, path);
    if (st) return st;
    fprintf(c.f, "t_ns,t_s,label\n");
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_marks; i++) {
        fprintf(c.f, "%llu,%.6f,", (unsigned long long)s->marks[i].t_ns,
                ((double)s->marks[i].t_ns - (double)s->t_origin_ns) * 1e-9);
        csv_field(c.f, s->marks[i].label);
        fputc('\n', c.f);
    }
    pthread_mutex_unlock(&s->mu);
    return csv_close(&c);
}
