#include "bench/energy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/checked.h"
#include "core/timeutil.h"

#define PHASE_COLS(p)                                                                              \
    p "_s", p "_energy_counter_j", p "_energy_integral_j", p "_energy_rel_diff", p "_avg_w"

const char *const dpb_energy_csv_columns[] = {
    "context", "gen_tokens", "run", "backend", "gpu", "generated_tokens", PHASE_COLS("prefill"),
    PHASE_COLS("decode"), PHASE_COLS("total"), "integral_power_source", "idle_avg_w", "total_energy_above_idle_j",
    "j_per_1k_tokens", "wh_per_1k_tokens", "tokens_per_j", "decode_j_per_token", "tok_s_decode", "tok_s_e2e",
    "seed_j_per_1k_tokens_avg_w_x_time_no_idle", "cpu_package_energy_j", NULL};

const char *const dpb_energy_summary_columns[] = {
    "context", "gen_tokens", "runs", "backend", "gpu", PHASE_COLS("prefill"), PHASE_COLS("decode"),
    PHASE_COLS("total"), "idle_avg_w", "total_energy_above_idle_j", "j_per_1k_tokens", "j_per_1k_tokens_std",
    "wh_per_1k_tokens", "tokens_per_j", "decode_j_per_token", "tok_s_decode", "tok_s_decode_std", "tok_s_e2e",
    "seed_j_per_1k_tokens_avg_w_x_time_no_idle", "cpu_package_energy_j", "block_s", "block_energy_counter_j",
    "block_energy_integral_j", "block_energy_rel_diff", NULL};

typedef struct mark_ctx {
    dpb_sampler *s;
    bool marked;
    uint64_t t;
} mark_ctx;

static bool on_token(void *user, int req, int32_t id, uint64_t t_ns)
{
    (void)req;
    (void)id;
    mark_ctx *m = user;
    if (!m->marked) {
        m->marked = true;
        m->t = t_ns;
        if (m->s) dpb_sampler_mark(m->s, "prefill_end", NULL);
    }
    return true;
}

static void add_unavail(cJSON *o, const char *k, const char *why)
{
    char buf[600];
    snprintf(buf, sizeof buf, "unavailable: %s", why);
    cJSON_AddStringToObject(o, k, buf);
}

static void add_phase(cJSON *o, const char *phase, double seconds, const dpb_energy *en, const char *why)
{
    char k[64];
    snprintf(k, sizeof k, "%s_s", phase);
    cJSON_AddNumberToObject(o, k, seconds);
    snprintf(k, sizeof k, "%s_energy_counter_j", phase);
    if (en && en->counter_ok) cJSON_AddNumberToObject(o, k, en->counter_j);
    else add_unavail(o, k, en ? en->counter_reason : why);
    snprintf(k, sizeof k, "%s_energy_integral_j", phase);
    if (en && en->integral_ok) cJSON_AddNumberToObject(o, k, en->integral_j);
    else add_unavail(o, k, en ? en->integral_reason : why);
    snprintf(k, sizeof k, "%s_energy_rel_diff", phase);
    if (en && en->rel_diff_ok) cJSON_AddNumberToObject(o, k, en->rel_diff);
    else add_unavail(o, k, en ? "needs both energy figures" : why);
    snprintf(k, sizeof k, "%s_avg_w", phase);
    if (en && en->avg_w_ok) cJSON_AddNumberToObject(o, k, en->avg_w);
    else add_unavail(o, k, en ? "no energy figure" : why);
}

/* The best energy figure of a phase: the counter, else the integral. */
static bool best_j(const dpb_energy *en, double *j)
{
    if (en->counter_ok) *j = en->counter_j;
    else if (en->integral_ok) *j = en->integral_j;
    else return false;
    return true;
}

dpb_status dpb_energy_run(dpb_engine *e, dpb_study_prompts *p, const dpb_energy_opts *o, cJSON **row)
{
    if (o->context < 1 || o->gen_tokens < 2)
        return dpb_error_set(DPB_E_ARG, "energy: context %lld and --gen-tokens %lld (at least 2)", (long long)o->context,
                             (long long)o->gen_tokens);
    size_t nb;
    if (!dpb_mul_size((size_t)o->context, sizeof(int32_t), &nb)) return dpb_error_set(DPB_E_RANGE, "--contexts: too large");
    int32_t *ids = malloc(nb);
    if (!ids) return dpb_error_set(DPB_E_NOMEM, "--contexts %lld: out of memory", (long long)o->context);
    dpb_status st = dpb_study_prompt_make(p, o->context, (uint64_t)o->run, ids);
    if (st) {
        free(ids);
        return st;
    }
    dpb_gen_request rq = {0};
    rq.prompt = ids;
    rq.n_prompt = o->context;
    rq.max_new = o->gen_tokens;
    rq.sampling = dpb_sampling_greedy();
    rq.ignore_eos = true;
    mark_ctx mc = {.s = o->sampler};
    uint64_t t0 = dpb_now_ns(), t2;
    if (o->sampler) dpb_sampler_mark(o->sampler, "run_start", &t0);
    dpb_gen_result res = {0};
    st = dpb_engine_generate(e, &rq, 1, &res, on_token, &mc);
    t2 = dpb_now_ns();
    if (o->sampler) dpb_sampler_mark(o->sampler, "run_end", &t2);
    free(ids);
    if (st) return st;
    if (res.n < 2 || !mc.marked) {
        dpb_gen_result_free(&res);
        return dpb_error_set(DPB_E_INTERNAL, "energy run %d: %lld tokens generated", o->run, (long long)res.n);
    }
    uint64_t t1 = mc.t;
    if (t1 <= t0) t1 = t0 + 1;
    if (t2 <= t1) t2 = t1 + 1;
    double gen = (double)res.n;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "context", (double)o->context);
    cJSON_AddNumberToObject(r, "gen_tokens", (double)o->gen_tokens);
    cJSON_AddNumberToObject(r, "run", o->run);
    cJSON_AddStringToObject(r, "backend", dpb_engine_backend(e)->ops->name);
    if (o->have_gpu) cJSON_AddNumberToObject(r, "gpu", o->gpu);
    else add_unavail(r, "gpu", o->gpu_reason);
    cJSON_AddNumberToObject(r, "generated_tokens", gen);

    dpb_energy ep, ed, et;
    bool ok = o->have_gpu && o->sampler && dpb_sampler_gpu_energy(o->sampler, o->gpu, t0, t1, &ep) == DPB_OK &&
              dpb_sampler_gpu_energy(o->sampler, o->gpu, t1, t2, &ed) == DPB_OK &&
              dpb_sampler_gpu_energy(o->sampler, o->gpu, t0, t2, &et) == DPB_OK;
    const char *why = o->have_gpu ? (o->sampler ? dpb_error_message() : "no sampler") : o->gpu_reason;
    double ts = (double)(t2 - t0) * 1e-9, dec_s = (double)(res.t_ns[res.n - 1] - res.t_ns[0]) * 1e-9;
    add_phase(r, "prefill", (double)(t1 - t0) * 1e-9, ok ? &ep : NULL, why);
    add_phase(r, "decode", (double)(t2 - t1) * 1e-9, ok ? &ed : NULL, why);
    add_phase(r, "total", ts, ok ? &et : NULL, why);
    if (ok && et.integral_ok) cJSON_AddStringToObject(r, "integral_power_source", et.integral_source);
    else add_unavail(r, "integral_power_source", ok ? et.integral_reason : why);
    if (o->idle_ok) cJSON_AddNumberToObject(r, "idle_avg_w", o->idle_w);
    else add_unavail(r, "idle_avg_w", ok ? "idle baseline not measured" : why);
    double jt, jd;
    bool jt_ok = ok && best_j(&et, &jt), jd_ok = ok && best_j(&ed, &jd);
    if (jt_ok && o->idle_ok) cJSON_AddNumberToObject(r, "total_energy_above_idle_j", jt - o->idle_w * ts);
    else add_unavail(r, "total_energy_above_idle_j", jt_ok ? "idle baseline not measured" : why);
    if (jt_ok && jt > 0) {
        cJSON_AddNumberToObject(r, "j_per_1k_tokens", jt / gen * 1000.0);
        cJSON_AddNumberToObject(r, "wh_per_1k_tokens", jt / 3600.0 / gen * 1000.0);
        cJSON_AddNumberToObject(r, "tokens_per_j", gen / jt);
    } else {
        const char *w = jt_ok ? "energy read as 0" : why;
        add_unavail(r, "j_per_1k_tokens", w);
        add_unavail(r, "wh_per_1k_tokens", w);
        add_unavail(r, "tokens_per_j", w);
    }
    if (jd_ok) cJSON_AddNumberToObject(r, "decode_j_per_token", jd / (gen - 1));
    else add_unavail(r, "decode_j_per_token", why);
    cJSON_AddNumberToObject(r, "tok_s_decode", dec_s > 0 ? (gen - 1) / dec_s : 0);
    cJSON_AddNumberToObject(r, "tok_s_e2e", gen / ts);
    /* The seed: average board power over the run x its time, no idle baseline. */
    if (ok && et.integral_ok) cJSON_AddNumberToObject(r, "seed_j_per_1k_tokens_avg_w_x_time_no_idle", et.integral_j / gen * 1000.0);
    else add_unavail(r, "seed_j_per_1k_tokens_avg_w_x_time_no_idle", ok ? et.integral_reason : why);
    dpb_energy cp;
    if (o->have_rapl && o->sampler && dpb_sampler_rapl_energy(o->sampler, DPB_RAPL_PACKAGE, t0, t2, &cp) == DPB_OK &&
        cp.counter_ok)
        cJSON_AddNumberToObject(r, "cpu_package_energy_j", cp.counter_j);
    else add_unavail(r, "cpu_package_energy_j", o->have_rapl ? "RAPL reading failed" : o->rapl_reason);
    dpb_gen_result_free(&res);
    *row = r;
    return DPB_OK;
}

cJSON *dpb_energy_summarize(const cJSON *runs, int64_t context)
{
    cJSON *s = cJSON_CreateObject();
    int n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, runs) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "context");
        if (cJSON_IsNumber(c) && (int64_t)c->valuedouble == context) n++;
    }
    for (size_t i = 0; dpb_energy_summary_columns[i]; i++) {
        const char *k = dpb_energy_summary_columns[i];
        if (strcmp(k, "runs") == 0) {
            cJSON_AddNumberToObject(s, k, n);
            continue;
        }
        size_t kl = strlen(k);
        bool is_std = kl > 4 && strcmp(k + kl - 4, "_std") == 0;
        char base[64];
        snprintf(base, sizeof base, "%.*s", (int)(is_std ? kl - 4 : kl), k);
        double sum = 0, sq = 0;
        int cnt = 0;
        const cJSON *first = NULL;
        bool all_num = true;
        cJSON_ArrayForEach(r, runs) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "context");
            if (!cJSON_IsNumber(c) || (int64_t)c->valuedouble != context) continue;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, base);
            if (!first) first = v;
            if (cJSON_IsNumber(v)) {
                sum += v->valuedouble;
                sq += v->valuedouble * v->valuedouble;
                cnt++;
            } else all_num = false;
        }
        if (cnt > 0 && all_num) {
            double mean = sum / cnt, var = sq / cnt - mean * mean;
            cJSON_AddNumberToObject(s, k, is_std ? sqrt(var > 0 ? var : 0) : mean);
        } else if (first && cJSON_IsString(first)) cJSON_AddStringToObject(s, k, first->valuestring);
        else cJSON_AddStringToObject(s, k, "unavailable: no runs");
    }
    return s;
}
