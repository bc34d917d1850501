/* Load generator pieces without a network: SSE parsing, the JSONL writer,
 * gamma arrivals. */
#include "t.h"
#include <fcntl.h>
#include <sys/stat.h>
#include "core/jsonl.h"
#include "load/load.h"
#include "load/sse.h"
#include "serve/openai.h"

typedef struct { char ev[16][64]; int n; } evs;
static int collect(void *ctx, const char *d, size_t len)
{
    evs *e = ctx;
    if (e->n < 16) snprintf(e->ev[e->n++], 64, "%.*s", (int)len, d);
    return 0;
}

static void test_sse_splits_anywhere(void)
{
    const char *s = "data: {\"a\":1}\n\n: comment\nevent: x\ndata: one\ndata: two\n\r\ndata:[DONE]\r\n\r\n";
    size_t len = strlen(s);
    /* every split point gives the same events */
    for (size_t cut = 0; cut <= len; cut++) {
        dpb_sse p;
        dpb_sse_init(&p, 0);
        evs e = {.n = 0};
        T_CHECK(dpb_sse_feed(&p, s, cut, collect, &e) == DPB_OK);
        T_CHECK(dpb_sse_feed(&p, s + cut, len - cut, collect, &e) == DPB_OK);
        T_CHECKF(e.n == 3, "cut %zu: %d events", cut, e.n);
        if (e.n == 3) {
            T_CHECK(strcmp(e.ev[0], "{\"a\":1}") == 0);
            T_CHECK(strcmp(e.ev[1], "one\ntwo") == 0);
            T_CHECK(strcmp(e.ev[2], "[DONE]") == 0);
        }
        T_CHECK(!dpb_sse_pending(&p));
        dpb_sse_free(&p);
    }
    /* byte by byte, CR-only line ends */
    const char *cr = "data: x\r\rdata: y\r\r";
    dpb_sse p;
    dpb_sse_init(&p, 0);
    evs e = {.n = 0};
    for (size_t i = 0; cr[i]; i++) T_CHECK(dpb_sse_feed(&p, cr + i, 1, collect, &e) == DPB_OK);
    T_CHECK(e.n == 2 && !strcmp(e.ev[0], "x") && !strcmp(e.ev[1], "y"));
    dpb_sse_free(&p);
}

static void test_sse_pending_and_oversize(void)
{
    dpb_sse p;
    dpb_sse_init(&p, 64);
    evs e = {.n = 0};
    T_CHECK(dpb_sse_feed(&p, "data: partial", 13, collect, &e) == DPB_OK);
    T_CHECK(dpb_sse_pending(&p) && e.n == 0);
    char big[200];
    memset(big, 'a', sizeof big);
    dpb_sse_reset(&p);
    T_CHECK(dpb_sse_feed(&p, big, sizeof big, collect, &e) == DPB_E_FORMAT);
    T_CHECK(strstr(dpb_error_message(), "larger than 64 bytes") != NULL);
    dpb_sse_free(&p);
}

static void test_jsonl_lines_and_repair(void)
{
    const char *d = t_tmpdir();
    T_CHECK(d != NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/r.jsonl", d);
    dpb_jsonlog *w;
    T_CHECK(dpb_jsonlog_open(path, false, &w) == DPB_OK);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "i", 1);
    cJSON_AddStringToObject(o, "s", "line\nbreak");
    T_CHECK(dpb_jsonlog_write(w, o) == DPB_OK);
    T_CHECK(dpb_jsonlog_write_raw(w, "{\"i\":2}", 7) == DPB_OK);
    T_CHECK(dpb_jsonlog_write_raw(w, "{\n}", 3) == DPB_E_ARG);
    T_CHECK(dpb_jsonlog_lines(w) == 2);
    T_CHECK(dpb_jsonlog_close(w) == DPB_OK);
    cJSON_Delete(o);
    /* a torn tail, as kill -9 during a write could leave */
    int fd = open(path, O_WRONLY | O_APPEND);
    T_CHECK(fd >= 0 && write(fd, "{\"i\":3,\"x", 9) == 9);
    close(fd);
    uint64_t lines, cut;
    T_CHECK(dpb_jsonlog_repair(path, &lines, &cut) == DPB_OK);
    T_CHECK(lines == 2 && cut == 9);
    struct stat st;
    T_CHECK(stat(path, &st) == 0);
    char *text = malloc((size_t)st.st_size + 1);
    FILE *f = fopen(path, "r");
    T_CHECK(f && fread(text, 1, (size_t)st.st_size, f) == (size_t)st.st_size);
    text[st.st_size] = 0;
    fclose(f);
    T_CHECK(strcmp(text, "{\"i\":1,\"s\":\"line\\nbreak\"}\n{\"i\":2}\n") == 0);
    free(text);
    T_CHECK(dpb_jsonlog_repair(path, &lines, &cut) == DPB_OK && lines == 2 && cut == 0);
    snprintf(path, sizeof path, "%s/missing.jsonl", d);
    T_CHECK(dpb_jsonlog_repair(path, &lines, NULL) == DPB_OK && lines == 0);
    T_CHECK(dpb_jsonlog_open("/nonexistent-dir/x.jsonl", false, &w) == DPB_E_IO);
    T_CHECK(strstr(dpb_error_message(), "/nonexistent-dir/x.jsonl") != NULL);
}

static void test_arrivals_gamma(void)
{
    uint64_t *a;
    enum { N = 20000 };
    /* Poisson at 100/s: mean gap 10 ms, coefficient of variation 1 */
    T_CHECK(dpb_load_arrivals(100, 1.0, N, 7, &a) == DPB_OK);
    double sum = 0, sq = 0;
    int mono = 1;
    for (int i = 1; i < N; i++) {
        double g = (double)(a[i] - a[i - 1]) / 1e6;
        if (a[i] < a[i - 1]) mono = 0;
        sum += g;
        sq += g * g;
    }
    double mean = sum / (N - 1), cv = sqrt(sq / (N - 1) - mean * mean) / mean;
    T_CHECK(mono && a[0] == 0);
    T_CHECKF(fabs(mean - 10.0) < 0.3, "mean gap %g ms", mean);
    T_CHECKF(fabs(cv - 1.0) < 0.05, "cv %g", cv);
    free(a);
    /* burstiness 4: same mean, cv = 1/sqrt(4) */
    T_CHECK(dpb_load_arrivals(100, 4.0, N, 7, &a) == DPB_OK);
    sum = sq = 0;
    for (int i = 1; i < N; i++) {
        double g = (double)(a[i] - a[i - 1]) / 1e6;
        sum += g;
        sq += g * g;
    }
    mean = sum / (N - 1);
    cv = sqrt(sq / (N - 1) - mean * mean) / mean;
    T_CHECKF(fabs(mean - 10.0) < 0.3 && fabs(cv - 0.5) < 0.05, "mean %g cv %g", mean, cv);
    free(a);
    T_CHECK(dpb_load_arrivals(INFINITY, 1.0, 10, 1, &a) == DPB_OK && a[9] == 0);
    free(a);
    T_CHECK(dpb_load_arrivals(0, 1.0, 10, 1, &a) == DPB_E_ARG);
}

static void test_openai_request_parser(void)
{
    dpb_openai_parsed p;
    const char *ok = "{\"model\":\"m\",\"prompt\":[5,6,7],\"max_tokens\":4,\"stream\":true,"
                     "\"stream_options\":{\"include_usage\":true,\"continuous_usage_stats\":true},\"ignore_eos\":true}";
    T_CHECK(dpb_openai_parse(DPB_API_COMPLETIONS, ok, strlen(ok), "m", 100, &p) == DPB_OK);
    T_CHECK(p.g.n_prompt_ids == 3 && p.g.prompt_ids[2] == 7 && p.g.max_tokens == 4 && p.g.stream && p.g.ignore_eos);
    T_CHECK(p.include_usage && p.continuous);
    dpb_openai_parsed_free(&p);
    static const struct { int api; const char *body; unsigned status; const char *param; const char *msg; } bad[] = {
        {0, "{\"prompt\":\"x\",\"model\":\"other\"}", 404, "model", "does not exist"},
        {0, "{\"prompt\":\"x\",\"max_tokens\":101}", 400, "max_tokens", "max_tokens"},
        {0, "{\"prompt\":\"x\",\"max_tokens\":\"5\"}", 400, "max_tokens", "max_tokens"},
        {0, "{\"prompt\":[1,\"a\"]}", 400, "prompt", "prompt[]"},
        {0, "{\"prompt\":{}}", 400, "prompt", "expected a string"},
        {0, "{\"prompt\":\"x\",\"stream_options\":{\"include_usage\":true}}", 400, "stream_options", "stream=True"},
        {0, "{\"prompt\":\"x\",\"stream\":\"yes\"}", 400, NULL, "booleans"},
        {0, "{\"prompt\":\"x\",\"top_p\":0}", 400, "top_p", "top_p"},
        {1, "{\"messages\":[{\"role\":1,\"content\":\"x\"}]}", 400, "messages", "string role"},
        {1, "[1,2]", 400, NULL, "JSON object"},
        {1, "{\"messages\":", 400, NULL, "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dpb_status st = dpb_openai_parse(bad[i].api ? DPB_API_CHAT : DPB_API_COMPLETIONS, bad[i].body, strlen(bad[i].body),
                                         "m", 100, &p);
        T_CHECKF(st != DPB_OK && p.status == bad[i].status && strstr(p.message, bad[i].msg) &&
                     ((!bad[i].param && !p.param) || (bad[i].param && p.param && !strcmp(p.param, bad[i].param))),
                 "case %zu: status %u param %s message %s", i, p.status, p.param ? p.param : "null", p.message);
        T_CHECK(p.root == NULL && p.ids == NULL);
    }
}

int main(void)
{
    T_RUN(test_sse_splits_anywhere);
    T_RUN(test_sse_pending_and_oversize);
    T_RUN(test_jsonl_lines_and_repair);
    T_RUN(test_arrivals_gamma);
    T_RUN(test_openai_request_parser);
    return t_done();
}
