/* Safety pieces: harmony / think splitting, the judge prompt and reply parser,
 * the governance table (folder + metadata JSON), and the summaries. */
#include "t.h"
#include <cjson/cJSON.h>
#include "core/file.h"
#include "safety/channels.h"
#include "safety/client.h"
#include "safety/governance.h"
#include "safety/report.h"

static void test_split_harmony(void)
{
    const char *t = "<|channel|>analysis<|message|>The user asks X. Policy says refuse.<|end|><|start|>assistant"
                    "<|channel|>final<|message|>I can't help with that.<|return|>";
    dpb_safety_split s;
    T_CHECK(dpb_safety_split_response(DPB_CHAT_HARMONY, t, strlen(t), &s) == DPB_OK);
    T_CHECK(strcmp(s.final, "I can't help with that.") == 0);
    T_CHECK(strcmp(s.reasoning, "The user asks X. Policy says refuse.") == 0);
    T_CHECK(s.has_reasoning && !s.final_missing);
    dpb_safety_split_free(&s);
    /* truncated in the analysis channel: no final */
    const char *u = "<|channel|>analysis<|message|>thinking about it";
    T_CHECK(dpb_safety_split_response(DPB_CHAT_HARMONY, u, strlen(u), &s) == DPB_OK);
    T_CHECK(s.final[0] == 0 && s.final_missing && s.has_reasoning);
    dpb_safety_split_free(&s);
    /* no markers at all: the text is the answer; stray markers removed, a lone '<' kept */
    const char *v = "plain a<b answer<|end|>";
    T_CHECK(dpb_safety_split_response(DPB_CHAT_HARMONY, v, strlen(v), &s) == DPB_OK);
    T_CHECK(strcmp(s.final, "plain a<b answer") == 0 && !s.final_missing && !s.has_reasoning);
    dpb_safety_split_free(&s);
    /* final with commentary constrain suffix in the channel name */
    const char *w = "<|channel|>final <|constrain|>json<|message|>{}<|call|>";
    T_CHECK(dpb_safety_split_response(DPB_CHAT_HARMONY, w, strlen(w), &s) == DPB_OK);
    T_CHECK(strcmp(s.final, "{}") == 0);
    dpb_safety_split_free(&s);
}

static void test_split_qwen(void)
{
    const char *t = "<think>\nconsidering\n</think>\n\nHere is the answer.<|im_end|>";
    dpb_safety_split s;
    T_CHECK(dpb_safety_split_response(DPB_CHAT_QWEN3, t, strlen(t), &s) == DPB_OK);
    T_CHECK(strcmp(s.final, "\n\nHere is the answer.") == 0 && strcmp(s.reasoning, "\nconsidering\n") == 0);
    dpb_safety_split_free(&s);
    const char *u = "<think>never finished";
    T_CHECK(dpb_safety_split_response(DPB_CHAT_QWEN3, u, strlen(u), &s) == DPB_OK);
    T_CHECK(s.final[0] == 0 && s.has_reasoning);
    dpb_safety_split_free(&s);
    T_CHECK(dpb_safety_split_response(DPB_CHAT_CHATML, u, strlen(u), &s) == DPB_OK);
    T_CHECK(strcmp(s.final, u) == 0 && !s.has_reasoning);
    dpb_safety_split_free(&s);
}

static void test_judge(void)
{
    char *m = NULL;
    T_CHECK(dpb_judge_build("REQ-TEXT %s", "RESP-TEXT", &m) == DPB_OK);
    T_CHECK(m && strstr(m, "[REQUEST]\nREQ-TEXT %s\n[END REQUEST]") && strstr(m, "[RESPONSE]\nRESP-TEXT\n[END RESPONSE]"));
    free(m);
    dpb_refusal_verdict v;
    T_CHECK(dpb_judge_parse("REFUSAL", &v) == DPB_OK && v == DPB_REFUSAL_REFUSE);
    T_CHECK(dpb_judge_parse("**Partial**\nbecause", &v) == DPB_OK && v == DPB_REFUSAL_PARTIAL);
    T_CHECK(dpb_judge_parse(" compliance.", &v) == DPB_OK && v == DPB_REFUSAL_COMPLY);
    T_CHECK(dpb_judge_parse("REFUSALS", &v) == DPB_E_FORMAT);
    T_CHECK(dpb_judge_parse(" the of and", &v) == DPB_E_FORMAT && strstr(dpb_error_message(), "the of and"));
    /* an endpoint nobody listens on: an error naming the URL */
    char *c = NULL, *r = NULL;
    dpb_chat_client_req q = {"http://127.0.0.1:1/", "m", NULL, NULL, "hi", 4, 0, 5};
    T_CHECK(dpb_chat_client_complete(&q, &c, &r) == DPB_E_IO);
    T_CHECK(strstr(dpb_error_message(), "http://127.0.0.1:1/v1/chat/completions") != NULL);
    T_CHECK(c == NULL && r == NULL);
}

static void put(const char *dir, const char *name, const char *text)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static void test_governance(void)
{
    const char *dir = t_tmpdir();
    T_CHECK(dir != NULL);
    if (!dir) return;
    put(dir, "README.md",
        "---\nlicense: other\nlicense_link: LICENSE\ntags:\n- chat\n---\n# Model X\n"
        "Use is subject to the Acme usage policy at https://example.org/policy.\n## Safety evaluation\ntext\n"
        "## Limitations and bias\nmore\n## Usage\n");
    put(dir, "LICENSE", "\n  Acme Community License  \nterms");
    put(dir, "config.json", "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\"}");
    dpb_governance g;
    T_CHECK(dpb_governance_read(dir, NULL, &g) == DPB_OK);
    T_CHECK(g.f[DPB_GOV_LICENSE].value && strcmp(g.f[DPB_GOV_LICENSE].value, "other (LICENSE); LICENSE: Acme Community License") == 0);
    T_CHECK(g.f[DPB_GOV_USAGE_POLICY].value && strstr(g.f[DPB_GOV_USAGE_POLICY].value, "Acme usage policy"));
    T_CHECK(g.f[DPB_GOV_SAFETY_FEATURES].value &&
            strcmp(g.f[DPB_GOV_SAFETY_FEATURES].value, "Safety evaluation; Limitations and bias") == 0);
    T_CHECK(g.f[DPB_GOV_MODEL_CARD].value && strstr(g.f[DPB_GOV_MODEL_CARD].value, "README.md"));
    T_CHECK(g.f[DPB_GOV_ARCH].value && strcmp(g.f[DPB_GOV_ARCH].value, "LlamaForCausalLM / llama") == 0);
    for (int i = 0; i < DPB_GOV_N; i++) T_CHECK(!g.f[i].verified);
    dpb_governance_free(&g);
    put(dir, "meta.json", "{\"usage_policy\": \"https://example.org/aup\", \"verified\": [\"usage_policy\", \"license\"]}");
    char mp[600];
    snprintf(mp, sizeof mp, "%s/meta.json", dir);
    T_CHECK(dpb_governance_read(dir, mp, &g) == DPB_OK);
    T_CHECK(strcmp(g.f[DPB_GOV_USAGE_POLICY].value, "https://example.org/aup") == 0);
    T_CHECK(strcmp(g.f[DPB_GOV_USAGE_POLICY].source, "metadata JSON") == 0 && g.f[DPB_GOV_USAGE_POLICY].verified);
    T_CHECK(g.f[DPB_GOV_LICENSE].verified && !g.f[DPB_GOV_MODEL_CARD].verified);
    cJSON *j = dpb_governance_json(&g);
    T_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "license"), "verified")));
    cJSON_Delete(j);
    dpb_governance_free(&g);
    put(dir, "meta.json", "{\"verified\": [\"colour\"]}");
    T_CHECK(dpb_governance_read(NULL, mp, &g) == DPB_E_FORMAT && strstr(dpb_error_message(), "colour"));
    snprintf(mp, sizeof mp, "%s/absent.json", dir);
    T_CHECK(dpb_governance_read(NULL, mp, &g) == DPB_E_IO && strstr(dpb_error_message(), "absent.json"));
    /* nothing known: every field null and unverified */
    T_CHECK(dpb_governance_read(NULL, NULL, &g) == DPB_OK && !g.f[0].value);
    dpb_governance_free(&g);
    const char *names[] = {"README.md", "LICENSE", "config.json", "meta.json"};
    for (size_t i = 0; i < 4; i++) { char p[600]; snprintf(p, sizeof p, "%s/%s", dir, names[i]); remove(p); }
    rmdir(dir);
}

static void test_summary(void)
{
    dpb_safety_prompt ph = {"s", "harm", "h1", "harmful", "p", DPB_EXPECT_REFUSE, NULL, -1, -1};
    dpb_safety_prompt pb = {"s", "benign", "b1", "benign", "p", DPB_EXPECT_ANSWER, NULL, -1, -1};
    dpb_safety_record r[10];
    memset(r, 0, sizeof r);
    /* 6 harmful: 3 refuse, 1 partial, 2 comply; 4 benign: 1 refuse, 3 comply; judge on all */
    dpb_refusal_verdict v[10] = {1, 1, 1, 2, 0, 0, 1, 0, 0, 0};
    int jv[10] = {1, 1, 0, 2, 0, 0, 1, 0, 0, 1};
    for (int i = 0; i < 10; i++) {
        r[i].p = i < 6 ? &ph : &pb;
        r[i].rule = v[i];
        r[i].judge = jv[i];
        r[i].reasoning_rule = -1;
    }
    r[0].reasoning_present = true;
    r[0].reasoning_rule = DPB_REFUSAL_COMPLY;
    cJSON *s = NULL;
    char *csv = NULL;
    T_CHECK(dpb_safety_summarize(r, 10, &s, &csv) == DPB_OK);
    if (!s) return;
    cJSON *g = cJSON_GetObjectItem(s, "groups");
    T_CHECK(cJSON_GetArraySize(g) == 4); /* s/ALL refuse, s/harm, s/ALL answer, s/benign */
    cJSON *h = cJSON_GetArrayItem(g, 0);
    T_CHECK(!strcmp(cJSON_GetObjectItem(h, "category")->valuestring, "ALL") &&
            !strcmp(cJSON_GetObjectItem(h, "expected")->valuestring, "refuse"));
    cJSON *ref = cJSON_GetObjectItem(h, "refusal");
    T_CHECK(fabs(cJSON_GetObjectItem(ref, "rate")->valuedouble - 0.5) < 1e-12);
    T_CHECK(fabs(cJSON_GetObjectItem(ref, "ci95_lo")->valuedouble - 0.1876) < 1e-3); /* Wilson 3/6 */
    T_CHECK(fabs(cJSON_GetObjectItem(cJSON_GetObjectItem(h, "harmful_compliance"), "rate")->valuedouble - 0.5) < 1e-12);
    T_CHECK(cJSON_GetObjectItem(h, "reasoning_non_refusal")->valuedouble == 1);
    cJSON *b = cJSON_GetArrayItem(g, 2);
    T_CHECK(fabs(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "over_refusal"), "rate")->valuedouble - 0.25) < 1e-12);
    /* agreement: rule refused {0,1,2,6}, judge refused {0,1,6,9}: agree on 8 of 10 */
    cJSON *ag = cJSON_GetObjectItem(s, "rule_judge_agreement");
    T_CHECK(fabs(cJSON_GetObjectItem(ag, "agreement")->valuedouble - 0.8) < 1e-12);
    T_CHECK(csv && strncmp(csv, "set,category,expected,n,refuse,partial,comply,empty,refusal_rate", 64) == 0);
    T_CHECK(csv && strstr(csv, "\ns,ALL,refuse,6,3,1,2,0,0.5000,0.1876,0.8124,"));
    dpb_governance gov = {0};
    dpb_safety_report_info info = {"synth:x", "in-process", true, NULL, "greedy"};
    char *md = NULL;
    T_CHECK(dpb_safety_report_markdown(&info, &gov, s, &md) == DPB_OK);
    T_CHECK(md && strstr(md, "meaningless") && strstr(md, "| license | not found |") && strstr(md, "**unverified**"));
    T_CHECK(md && strstr(md, "| s | ALL | refuse | 6 | 50.0 % [18.8, 81.2] |"));
    free(md);
    free(csv);
    cJSON_Delete(s);
}

int main(void)
{
    T_RUN(test_split_harmony);
    T_RUN(test_split_qwen);
    T_RUN(test_judge);
    T_RUN(test_governance);
    T_RUN(test_summary);
    return t_done();
}
