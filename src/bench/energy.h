/* deploybench energy: energy per request, split into prefill and decode with
 * sampler marks, by NVML's total-energy counter and by the integral of polled
 * power (both, with their relative difference), against an idle baseline
 * measured first.  No figure that cannot be measured is ever 0: it is
 * "unavailable: <reason>".
 *
 * One run: mark "run_start", generate (the first token's callback marks
 * "prefill_end"), mark "run_end".  Phases: prefill = [run_start, prefill_end],
 * decode = [prefill_end, run_end], total = [run_start, run_end]. */
#ifndef DPB_BENCH_ENERGY_H
#define DPB_BENCH_ENERGY_H

#include <cjson/cJSON.h>
#include "bench/latency.h"
#include "core/status.h"
#include "engine/engine.h"
#include "telemetry/sampler.h"

typedef struct dpb_energy_opts {
    int64_t context, gen_tokens;
    int run;                     /* run number, recorded */
    dpb_sampler *sampler;        /* running; NULL: energy unavailable (reason below) */
    const char *gpu_reason;      /* why there is no GPU energy ("NVML unavailable: ...") */
    bool have_gpu;
    unsigned gpu;                /* NVML index */
    bool have_rapl;
    const char *rapl_reason;
    bool idle_ok;                /* idle baseline of that GPU measured */
    double idle_w;
} dpb_energy_opts;

/* One run on slot 0; *row gets its figures (columns: dpb_energy_csv_columns). */
dpb_status dpb_energy_run(dpb_engine *e, dpb_study_prompts *p, const dpb_energy_opts *o, cJSON **row);

/* Per context: the mean of each numeric column over runs (plus the std of
 * J per 1k tokens and tok/s); a column unavailable in any run stays unavailable. */
cJSON *dpb_energy_summarize(const cJSON *runs, int64_t context);

extern const char *const dpb_energy_csv_columns[];
extern const char *const dpb_energy_summary_columns[];

#endif
