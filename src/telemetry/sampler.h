/* A sampler thread that polls NVML (all GPUs or a chosen list) and RAPL at a
 * fixed rate and keeps the samples in memory, with marks so a benchmark can
 * bracket phases (prefill, decode) and ask for their energy.
 *
 *   dpb_telemetry t;  dpb_telemetry_open(&t);          // NVML + RAPL, or reasons
 *   dpb_sampler *s;   dpb_sampler_create(t.nvml, t.rapl, &opts, &s);
 *   dpb_sampler_start(s);
 *   uint64_t a, b;  dpb_sampler_mark(s, "decode_start", &a);  ...  dpb_sampler_mark(s, "decode_end", &b);
 *   dpb_sampler_stop(s);
 *   dpb_energy e;  dpb_sampler_gpu_energy(s, 0, a, b, &e);   // counter and integral, both
 *   dpb_sampler_write_csv(s, "telemetry.csv");
 *   dpb_sampler_free(s);  dpb_telemetry_close(&t);
 *
 * Ticks are scheduled on absolute CLOCK_MONOTONIC times (no drift); a tick
 * that is late by more than a whole period is skipped and counted, never
 * made up in a burst.  Each mark takes a power+energy reading of every GPU
 * and a RAPL reading at once, so phase boundaries do not wait for a tick.
 *
 * Energy of [t0, t1] is computed two ways:
 *   counter:  the total-energy counter (mJ) interpolated linearly at t0 and
 *             t1, difference;
 *   integral: polled power, piecewise linear between samples, integrated
 *             over [t0, t1] (trapezoidal rule).  The instantaneous power
 *             (power_instant_w) is used when the GPU reports it, else the
 *             power_w reading; integral_source says which.
 * Either is "unavailable" with a reason when its samples are missing or do
 * not cover [t0, t1] (a boundary may lie at most one period outside the
 * samples; the nearest segment is then extended).  NVML's power reading is
 * itself an average over a recent window (about 1 s on recent boards), so
 * the integral lags the counter; over phases of many periods they agree. */
#ifndef DPB_TELEMETRY_SAMPLER_H
#define DPB_TELEMETRY_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core/status.h"
#include "telemetry/nvml.h"
#include "telemetry/rapl.h"

#define DPB_SAMPLER_DEFAULT_HZ 10.0
#define DPB_SAMPLER_MAX_HZ 100.0
#define DPB_SAMPLER_MIN_HZ 0.1

/* NVML and RAPL, or the reasons they are unavailable. */
typedef struct dpb_telemetry {
    dpb_nvml *nvml;            /* NULL when unavailable */
    char nvml_reason[512];     /* "NVML unavailable: ..." */
    dpb_rapl *rapl;            /* NULL when unavailable */
    char rapl_reason[512];     /* "RAPL unavailable: ..." */
} dpb_telemetry;

/* Opens both; never fails (an unavailable source has NULL and a reason). */
void dpb_telemetry_open(dpb_telemetry *t);
void dpb_telemetry_close(dpb_telemetry *t);

typedef struct dpb_sampler_opts {
    double hz;                 /* 0: 10; else [0.1, 100] */
    const unsigned *gpus;      /* NVML indices; NULL: all devices */
    size_t n_gpus;
    uint32_t metrics;          /* bits 1u << dpb_gpu_metric; 0: all */
    size_t max_samples;        /* GPU samples kept; 0: 4,000,000 (about 320 MB); then recording stops */
} dpb_sampler_opts;

typedef struct dpb_sampler dpb_sampler;

/* nvml and rapl are borrowed (either may be NULL) and must outlive the
 * sampler.  DPB_E_ARG for a rate out of range or a GPU index NVML lacks. */
dpb_status dpb_sampler_create(dpb_nvml *nvml, dpb_rapl *rapl, const dpb_sampler_opts *opts, dpb_sampler **out);
void dpb_sampler_free(dpb_sampler *s);   /* stops the thread first if running */

/* Starts the polling thread (its first sample is taken at once). */
dpb_status dpb_sampler_start(dpb_sampler *s);
/* Stops and joins it, after one last sample.  Harmless when not running. */
dpb_status dpb_sampler_stop(dpb_sampler *s);
/* Records a labelled time (label cut to 63 bytes) and takes a boundary
 * reading.  *t_ns (may be NULL) gets the mark's CLOCK_MONOTONIC time. */
dpb_status dpb_sampler_mark(dpb_sampler *s, const char *label, uint64_t *t_ns);
/* The time of the last mark with this label; DPB_E_ARG when there is none. */
dpb_status dpb_sampler_mark_time(const dpb_sampler *s, const char *label, uint64_t *t_ns);

double dpb_sampler_hz(const dpb_sampler *s);
size_t dpb_sampler_gpu_count(const dpb_sampler *s);
unsigned dpb_sampler_gpu_index(const dpb_sampler *s, size_t i);   /* NVML index of the i-th sampled GPU */
/* Polls taken on schedule (not counting marks or the last reading at stop),
 * ticks skipped because a reading ran late, and whether max_samples was reached. */
size_t dpb_sampler_tick_count(const dpb_sampler *s);
size_t dpb_sampler_missed_ticks(const dpb_sampler *s);
bool dpb_sampler_truncated(const dpb_sampler *s);

/* Copies of the samples of one GPU (NVML index), in time order; free(*out). */
dpb_status dpb_sampler_gpu_samples(dpb_sampler *s, unsigned gpu, dpb_gpu_sample **out, size_t *n);

/* The latest polled sample (not a mark reading) of one GPU; DPB_E_UNAVAILABLE
 * when there is none yet.  Cheap: for live displays. */
dpb_status dpb_sampler_last_sample(dpb_sampler *s, unsigned gpu, dpb_gpu_sample *out);

/* Per-metric availability of one GPU: true when at least one sample read it;
 * else *reason (may be NULL) gets the NVML error of its last failure. */
bool dpb_sampler_metric_ok(const dpb_sampler *s, unsigned gpu, dpb_gpu_metric m, const char **reason);

/* Energy of an interval, by both methods.  Each *_ok false means that figure
 * is unavailable (the reason says why); an unavailable figure is never 0. */
typedef struct dpb_energy {
    double seconds;            /* t1 - t0 */
    bool counter_ok;
    double counter_j;
    char counter_reason[256];
    bool integral_ok;
    double integral_j;
    char integral_reason[256];
    char integral_source[24];  /* "power_instant_w" or "power_w" (a CSV column name) */
    bool rel_diff_ok;
    double rel_diff;           /* (integral - counter) / counter */
    bool avg_w_ok;
    double avg_w;              /* counter_j / seconds, else integral_j / seconds */
    size_t n_samples;          /* power samples inside [t0, t1] */
} dpb_energy;

/* GPU energy (NVML index gpu) over [t0_ns, t1_ns].  DPB_E_ARG for an unknown
 * GPU or t1 <= t0; otherwise DPB_OK with the availability inside *out. */
dpb_status dpb_sampler_gpu_energy(dpb_sampler *s, unsigned gpu, uint64_t t0_ns, uint64_t t1_ns, dpb_energy *out);
/* CPU energy of a RAPL kind (all sockets summed) over [t0, t1]: counter_* is
 * the counter difference (wraps handled); integral_* is unavailable. */
dpb_status dpb_sampler_rapl_energy(dpb_sampler *s, dpb_rapl_kind kind, uint64_t t0_ns, uint64_t t1_ns,
                                   dpb_energy *out);

/* Idle baseline: samples for `seconds` (starting the thread if it is not
 * running, stopping it again after) between marks "idle_start"/"idle_end",
 * and reports each GPU's energy and average W and the CPU package's.
 * DPB_E_INTERRUPTED when Ctrl-C arrives meanwhile (dpb_interrupted). */
typedef struct dpb_idle_baseline {
    double seconds;
    size_t n_gpus;
    unsigned gpu[DPB_MAX_GPUS];
    dpb_energy gpu_energy[DPB_MAX_GPUS];
    dpb_energy cpu_package;    /* counter_ok false when RAPL is unavailable */
} dpb_idle_baseline;
dpb_status dpb_sampler_idle_baseline(dpb_sampler *s, double seconds, dpb_idle_baseline *out);

/* An energy record as JSON: {"seconds", "energy_counter_j" | "...: unavailable: why",
 * "energy_integral_j", "integral_power_source", "energy_rel_diff", "avg_w", "samples"}. */
cJSON *dpb_energy_json(const dpb_energy *e);

/* Writes every GPU sample as CSV: t_ns,t_s,gpu,mark,power_w,energy_j,...
 * (t_s from the first sample; unavailable cells empty, never 0). */
dpb_status dpb_sampler_write_csv(dpb_sampler *s, const char *path);
/* RAPL samples: t_ns,t_s,domain,kind,energy_j (cumulative from the first
 * reading, wraps corrected),power_w (from the previous reading).  Errors
 * when RAPL is absent. */
dpb_status dpb_sampler_write_rapl_csv(dpb_sampler *s, const char *path);
/* Marks: t_ns,t_s,label. */
dpb_status dpb_sampler_write_marks_csv(dpb_sampler *s, const char *path);

#endif
