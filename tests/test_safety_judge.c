/* The chat client and the LLM judge against an in-process fake
 * OpenAI-compatible server: request fields, the fixed judge prompt, reply
 * parsing, HTTP errors, and a whole `deploybench safety --endpoint ...
 * --judge-endpoint ...` run whose summary reports rule-judge agreement. */
#include "t.h"
#include <cjson/cJSON.h>
#include "cli/cli.h"
#include "core/file.h"
#include "core/json.h"
#include "safety/client.h"
#include "serve/http.h"

static int g_mode; /* 0 normal, 1 HTTP 500, 2 malformed JSON */
static int g_bad_request;

static void reply_text(const dpb_http_request *req, const char *content, const char *reasoning)
{
    cJSON *o = cJSON_CreateObject(), *ch = cJSON_AddArrayToObject(o, "choices"), *c0 = cJSON_CreateObject();
    cJSON *m = cJSON_AddObjectToObject(c0, "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "content", content);
    if (reasoning) cJSON_AddStringToObject(m, "reasoning_content", reasoning);
    cJSON_AddItemToArray(ch, c0);
    char *s = cJSON_PrintUnformatted(o);
    dpb_http_reply(req->conn, 200, "application/json", s, strlen(s));
    cJSON_free(s);
    cJSON_Delete(o);
}

static void handler(void *ctx, const dpb_http_request *req)
{
    (void)ctx;
    if (g_mode == 1) { dpb_http_reply(req->conn, 500, "text/plain", "boom", 4); return; }
    if (g_mode == 2) { dpb_http_reply(req->conn, 200, "application/json", "{\"choices\":", 11); return; }
    cJSON *b = cJSON_Parse(req->body);
    const cJSON *msgs = cJSON_GetObjectItem(b, "messages");
    const cJSON *temp = cJSON_GetObjectItem(b, "temperature"), *stream = cJSON_GetObjectItem(b, "stream");
    if (strcmp(req->path, "/v1/chat/completions") || !cJSON_IsArray(msgs) || !cJSON_IsNumber(temp) || temp->valuedouble != 0 ||
        !cJSON_IsFalse(stream) || !cJSON_IsNumber(cJSON_GetObjectItem(b, "max_tokens"))) {
        g_bad_request++;
        dpb_http_reply(req->conn, 400, "text/plain", "bad", 3);
        cJSON_Delete(b);
        return;
    }
    const cJSON *first = cJSON_GetArrayItem(msgs, 0), *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
    const char *role = cJSON_GetObjectItem(first, "role")->valuestring;
    const char *user = cJSON_GetObjectItem(last, "content")->valuestring;
    if (!strcmp(role, "system")) { /* the judge */
        if (strcmp(cJSON_GetObjectItem(first, "content")->valuestring, dpb_judge_system_prompt) != 0) g_bad_request++;
        const char *r = strstr(user, "[RESPONSE]\n");
        reply_text(req, r && strstr(r, "can't") ? "REFUSAL\nThe assistant declined." : "**COMPLIANCE**", NULL);
    } else {
        /* the model: refuses prompts whose id-independent text has an even length */
        reply_text(req, strlen(user) % 2 == 0 ? "I'm sorry, but I can't help with that." : "Sure! Here you go: a short answer.",
                   "thinking about it");
    }
    cJSON_Delete(b);
}

static dpb_http_server *start(char *url, size_t n)
{
    dpb_http_limits lim;
    dpb_http_limits_default(&lim);
    dpb_http_server *s = NULL;
    if (dpb_http_server_start("127.0.0.1", 0, &lim, handler, NULL, &s) != DPB_OK) return NULL;
    snprintf(url, n, "http://127.0.0.1:%u", dpb_http_server_port(s));
    return s;
}

static void test_client(void)
{
    char url[64];
    dpb_http_server *s = start(url, sizeof url);
    T_CHECK(s != NULL);
    if (!s) return;
    char *c = NULL, *r = NULL;
    dpb_chat_client_req q = {url, "m", "KEY", NULL, "ab", 8, 0, 10};
    T_CHECK(dpb_chat_client_complete(&q, &c, &r) == DPB_OK);
    T_CHECK(c && strcmp(c, "I'm sorry, but I can't help with that.") == 0 && r && strcmp(r, "thinking about it") == 0);
    free(c); free(r);
    char *jm = NULL, *jr = NULL;
    T_CHECK(dpb_judge_build("req", "Sure, here it is.", &jm) == DPB_OK);
    dpb_chat_client_req jq = {url, "judge", NULL, dpb_judge_system_prompt, jm, 16, 0, 10};
    T_CHECK(dpb_chat_client_complete(&jq, &jr, NULL) == DPB_OK);
    dpb_refusal_verdict v;
    T_CHECK(jr && dpb_judge_parse(jr, &v) == DPB_OK && v == DPB_REFUSAL_COMPLY);
    free(jm); free(jr);
    g_mode = 1;
    T_CHECK(dpb_chat_client_complete(&q, &c, &r) == DPB_E_IO && strstr(dpb_error_message(), "HTTP 500: boom"));
    g_mode = 2;
    T_CHECK(dpb_chat_client_complete(&q, &c, &r) == DPB_E_FORMAT && strstr(dpb_error_message(), "/v1/chat/completions"));
    g_mode = 0;
    T_CHECK(g_bad_request == 0);
    dpb_http_server_stop(s);
}

static void test_cli_with_judge(void)
{
    char url[64];
    dpb_http_server *s = start(url, sizeof url);
    T_CHECK(s != NULL);
    if (!s) return;
    const char *dir = t_tmpdir();
    char out[300];
    snprintf(out, sizeof out, "%s/run", dir);
    char *argv[] = {"safety", "--endpoint", url, "--model", "fake", "--limit", "6", "--judge-endpoint", url,
                    "--judge-model", "judge", "--out", out, NULL};
    int rc = dpb_cmd_safety(13, argv);
    T_CHECKF(rc == 0, "exit %d: %s", rc, dpb_error_message());
    char p[400];
    snprintf(p, sizeof p, "%s/summary.json", out);
    cJSON *sum = NULL;
    T_CHECK(dpb_json_load(p, 1 << 24, &sum) == DPB_OK);
    const cJSON *ag = cJSON_GetObjectItem(sum, "rule_judge_agreement");
    T_CHECK(cJSON_GetObjectItem(ag, "n") && cJSON_GetObjectItem(ag, "n")->valuedouble == 6);
    T_CHECK(cJSON_GetObjectItem(ag, "agreement") && cJSON_GetObjectItem(ag, "agreement")->valuedouble == 1.0);
    cJSON_Delete(sum);
    snprintf(p, sizeof p, "%s/responses.jsonl", out);
    char *t = NULL;
    size_t n = 0;
    T_CHECK(dpb_file_read(p, 1 << 24, &t, &n) == DPB_OK);
    T_CHECK(t && strstr(t, "\"reasoning\":\"thinking about it\"") && strstr(t, "\"judge\":\"refuse\"") &&
            strstr(t, "\"judge\":\"comply\""));
    free(t);
    snprintf(p, sizeof p, "%s/report.md", out);
    T_CHECK(dpb_file_read(p, 1 << 24, &t, &n) == DPB_OK);
    T_CHECK(t && strstr(t, "agreement 100.0 %") && !strstr(t, "meaningless"));
    free(t);
    T_CHECK(g_bad_request == 0);
    dpb_http_server_stop(s);
    const char *files[] = {"manifest.json", "responses.jsonl", "summary.json", "summary.csv", "governance.json", "report.md"};
    for (size_t i = 0; i < 6; i++) { snprintf(p, sizeof p, "%s/%s", out, files[i]); T_CHECK(remove(p) == 0); }
    rmdir(out);
    rmdir(dir);
}

int main(void)
{
    T_RUN(test_client);
    T_RUN(test_cli_with_judge);
    return t_done();
}
