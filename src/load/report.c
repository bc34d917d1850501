/* The per-level summary: vLLM's benchmark keys first, then ours. */
#include <math.h>
#include <stdio.h>
#include "load/load.h"

static const double k_pcts[] = {50, 90, 95, 99, 99.9};

static void pct_name(char *b, size_t n, const char *prefix, double p, const char *metric)
{
    if (p == floor(p)) snprintf(b, n, "%s%d_%s_ms", prefix, (int)p, metric);
    else snprintf(b, n, "%s%g_%s_ms", prefix, p, metric);
}

/* mean_X_ms, median_X_ms, std_X_ms, pNN_X_ms (vLLM's names) for a histogram in ns;
 * null where no value was recorded (never 0). */
static void add_stats(cJSON *o, const char *metric, const dpb_hist *h)
{
    char k[96];
    double v;
    snprintf(k, sizeof k, "mean_%s_ms", metric);
    if (dpb_hist_mean(h, &v) == DPB_OK) cJSON_AddNumberToObject(o, k, v / 1e6);
    else cJSON_AddNullToObject(o, k);
    snprintf(k, sizeof k, "median_%s_ms", metric);
    if (dpb_hist_percentile(h, 50, &v) == DPB_OK) cJSON_AddNumberToObject(o, k, v / 1e6);
    else cJSON_AddNullToObject(o, k);
    snprintf(k, sizeof k, "std_%s_ms", metric);
    if (dpb_hist_stddev(h, &v) == DPB_OK) cJSON_AddNumberToObject(o, k, v / 1e6);
    else cJSON_AddNullToObject(o, k);
    for (size_t i = 0; i < sizeof k_pcts / sizeof k_pcts[0]; i++) {
        pct_name(k, sizeof k, "p", k_pcts[i], metric);
        if (dpb_hist_percentile(h, k_pcts[i], &v) == DPB_OK) cJSON_AddNumberToObject(o, k, v / 1e6);
        else cJSON_AddNullToObject(o, k);
    }
    uint64_t u;
    snprintf(k, sizeof k, "min_%s_ms", metric);
    if (dpb_hist_min(h, &u) == DPB_OK) cJSON_AddNumberToObject(o, k, (double)u / 1e6);
    else cJSON_AddNullToObject(o, k);
    snprintf(k, sizeof k, "max_%s_ms", metric);
    if (dpb_hist_max(h, &u) == DPB_OK) cJSON_AddNumberToObject(o, k, (double)u / 1e6);
    else cJSON_AddNullToObject(o, k);
    snprintf(k, sizeof k, "count_%s", metric);
    cJSON_AddNumberToObject(o, k, (double)dpb_hist_count(h));
}

static cJSON *summary(const dpb_load_config *c, const dpb_load_result *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    double d = r->duration_s > 0 ? r->duration_s : NAN;
    /* vLLM benchmark keys (units: duration s, throughputs per s, latencies ms) */
    cJSON_AddNumberToObject(o, "duration", r->duration_s);
    cJSON_AddNumberToObject(o, "completed", (double)r->completed);
    cJSON_AddNumberToObject(o, "failed", (double)r->failed);
    cJSON_AddNumberToObject(o, "total_input_tokens", (double)r->input_tokens);
    cJSON_AddNumberToObject(o, "total_output_tokens", (double)r->output_tokens);
    if (isfinite(d)) {
        cJSON_AddNumberToObject(o, "request_throughput", (double)r->completed / d);
        if (c->slo_ttft_ms > 0 || c->slo_tpot_ms > 0 || c->slo_e2el_ms > 0)
            cJSON_AddNumberToObject(o, "request_goodput", (double)r->good / d);
        else cJSON_AddNullToObject(o, "request_goodput");
        cJSON_AddNumberToObject(o, "output_throughput", (double)r->output_tokens / d);
        cJSON_AddNumberToObject(o, "total_token_throughput", (double)(r->input_tokens + r->output_tokens) / d);
    } else {
        cJSON_AddNullToObject(o, "request_throughput");
        cJSON_AddNullToObject(o, "request_goodput");
        cJSON_AddNullToObject(o, "output_throughput");
        cJSON_AddNullToObject(o, "total_token_throughput");
    }
    if (c->mode == DPB_LOAD_CLOSED) {
        cJSON_AddNumberToObject(o, "max_concurrency", (double)c->concurrency);
        cJSON_AddStringToObject(o, "request_rate", "inf");
    } else {
        if (c->max_concurrency) cJSON_AddNumberToObject(o, "max_concurrency", (double)c->max_concurrency);
        else cJSON_AddNullToObject(o, "max_concurrency");
        if (isfinite(c->rate)) cJSON_AddNumberToObject(o, "request_rate", c->rate);
        else cJSON_AddStringToObject(o, "request_rate", "inf");
    }
    cJSON_AddNumberToObject(o, "burstiness", c->burstiness);
    add_stats(o, "ttft", r->ttft);
    add_stats(o, "tpot", r->tpot);
    add_stats(o, "itl", r->itl_chunk);
    add_stats(o, "e2el", r->e2el);
    /* ours */
    cJSON_AddStringToObject(o, "load_model", c->mode == DPB_LOAD_CLOSED ? "closed" : "open");
    cJSON_AddNumberToObject(o, "duration_s", r->duration_s);
    cJSON_AddNumberToObject(o, "issued", (double)r->issued);
    cJSON_AddNumberToObject(o, "interrupted", (double)r->interrupted);
    if (isfinite(d)) {
        cJSON_AddNumberToObject(o, "request_throughput_req_per_s", (double)r->completed / d);
        cJSON_AddNumberToObject(o, "output_throughput_tok_per_s", (double)r->output_tokens / d);
        cJSON_AddNumberToObject(o, "total_token_throughput_tok_per_s", (double)(r->input_tokens + r->output_tokens) / d);
    }
    add_stats(o, "ttft_from_schedule", r->ttft_sched);
    add_stats(o, "e2el_from_schedule", r->e2el_sched);
    add_stats(o, "itl_per_token", r->itl_token);
    add_stats(o, "send_lag", r->send_lag);
    add_stats(o, "dispatch_lag", r->dispatch_lag);
    cJSON_AddStringToObject(o, "percentile_method", DPB_HIST_PERCENTILE_METHOD);
    cJSON *tok = cJSON_AddObjectToObject(o, "token_counts");
    cJSON_AddStringToObject(tok, "output_tokens_source", r->any_server_usage ? (r->server_counted == r->completed ? "server_usage" : "mixed") : r->client_count_method);
    cJSON_AddStringToObject(tok, "client_count_method", r->client_count_method);
    cJSON_AddNumberToObject(tok, "requests_with_server_usage", (double)r->server_counted);
    cJSON_AddNumberToObject(tok, "requests_with_client_count", (double)r->client_counted);
    cJSON_AddNumberToObject(tok, "requests_count_mismatch", (double)r->mismatched);
    if (r->server_counted) cJSON_AddNumberToObject(tok, "mismatch_rate", (double)r->mismatched / (double)r->server_counted);
    else cJSON_AddNullToObject(tok, "mismatch_rate");
    cJSON *f = cJSON_AddObjectToObject(o, "failures");
    for (int i = 0; i < DPB_FAIL_N; i++) cJSON_AddNumberToObject(f, dpb_load_fail_name((dpb_load_fail)i), (double)r->fails[i]);
    if (r->first_error[0]) cJSON_AddStringToObject(o, "first_error", r->first_error);
    else cJSON_AddNullToObject(o, "first_error");
    if (r->aborted) cJSON_AddStringToObject(o, "aborted", r->abort_reason);
    cJSON *g = cJSON_AddObjectToObject(o, "goodput_limits_ms");
    if (c->slo_ttft_ms > 0) cJSON_AddNumberToObject(g, "ttft", c->slo_ttft_ms);
    if (c->slo_tpot_ms > 0) cJSON_AddNumberToObject(g, "tpot", c->slo_tpot_ms);
    if (c->slo_e2el_ms > 0) cJSON_AddNumberToObject(g, "e2el", c->slo_e2el_ms);
    cJSON_AddNumberToObject(o, "good_requests", (double)r->good);
    /* self-measurement */
    cJSON *cl = cJSON_AddObjectToObject(o, "client");
    cJSON_AddNumberToObject(cl, "cpu_s", r->cpu_s);
    cJSON_AddNumberToObject(cl, "wall_s", r->wall_s);
    double util = r->wall_s > 0 ? r->cpu_s / r->wall_s : 0;
    cJSON_AddNumberToObject(cl, "cpu_utilization_of_one_core", util);
    cJSON_AddNumberToObject(cl, "sse_events", (double)r->sse_events);
    cJSON_AddNumberToObject(cl, "sse_events_per_s", r->wall_s > 0 ? (double)r->sse_events / r->wall_s : 0);
    cJSON_AddNumberToObject(cl, "bytes_received", (double)r->bytes_received);
    cJSON_AddNumberToObject(cl, "peak_in_flight", (double)r->peak_inflight);
    cJSON_AddNumberToObject(cl, "cpu_us_per_sse_event", r->sse_events ? r->cpu_s * 1e6 / (double)r->sse_events : 0);
    cJSON *reasons = cJSON_AddArrayToObject(cl, "client_bound_reasons");
    double p99lag;
    if (util >= 0.9) {
        char b[160];
        snprintf(b, sizeof b, "the client used %.0f%% of a core: its own speed may bound the run", util * 100);
        cJSON_AddItemToArray(reasons, cJSON_CreateString(b));
    }
    if (dpb_hist_percentile(r->dispatch_lag, 99, &p99lag) == DPB_OK && p99lag > 1e6) {
        char b[160];
        snprintf(b, sizeof b, "p99 dispatch lag %.2f ms > 1 ms: requests left later than scheduled", p99lag / 1e6);
        cJSON_AddItemToArray(reasons, cJSON_CreateString(b));
    }
    cJSON_AddBoolToObject(cl, "client_bound", cJSON_GetArraySize(reasons) > 0);
    return o;
}

dpb_status dpb_load_summary(const dpb_load_config *c, const dpb_load_result *r, cJSON **out)
{
    *out = summary(c, r);
    if (!*out) return dpb_error_set(DPB_E_NOMEM, "load: out of memory building the summary");
    return DPB_OK;
}
