/* Chat templates against ../shared/data/tokenizers/vectors/chat_templates.public.jsonl
 * (byte for byte and token for token) and exact-length prompts. */
#include "core/file.h"
#include "core/json.h"
#include "t.h"
#include "tokenizer/tokenizer.h"

static dpb_tokenizer *g_oss, *g_qwen, *g_yi;

static dpb_tokenizer *load(const char *rel)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/data/tokenizers/%s", t_shared(), rel);
    dpb_tokenizer *t = NULL;
    if (dpb_tokenizer_load(p, &t)) fprintf(stderr, "  load %s: %s\n", p, dpb_error_message());
    return t;
}

static void test_render_no_shared(void)
{
    /* Built-in rendering, independent of ../shared. */
    dpb_chat_options o;
    dpb_chat_options_default(&o);
    o.enable_thinking = false;
    dpb_chat_message m[] = {{"system", "S"}, {"user", "U"}};
    char *s;
    T_CHECK(dpb_chat_render(DPB_CHAT_QWEN3, &o, m, 2, &s, NULL) == DPB_OK);
    T_CHECK(strcmp(s, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n") == 0);
    free(s);
    o.date = "2026-01-02";
    o.reasoning = "high";
    T_CHECK(dpb_chat_render(DPB_CHAT_HARMONY, &o, m, 2, &s, NULL) == DPB_OK);
    T_CHECK(strstr(s, "Current date: 2026-01-02\n\nReasoning: high\n\n") != NULL);
    T_CHECK(strstr(s, "<|start|>developer<|message|># Instructions\n\nS\n\n<|end|><|start|>user<|message|>U<|end|><|start|>assistant") != NULL);
    free(s);
    o.reasoning = "extreme";
    T_CHECK(dpb_chat_render(DPB_CHAT_HARMONY, &o, m, 2, &s, NULL) == DPB_E_ARG);
    T_CHECK(strstr(dpb_error_message(), "extreme") != NULL);
    T_CHECK(dpb_chat_render(DPB_CHAT_NONE, NULL, m + 1, 1, &s, NULL) == DPB_OK);
    T_CHECK(strcmp(s, "U") == 0);
    free(s);
    /* Qwen3 reasoning in a final assistant turn */
    dpb_chat_message a[] = {{"user", "q"}, {"assistant", "<think>\nr\n</think>\n\nans"}};
    o.add_generation_prompt = false;
    T_CHECK(dpb_chat_render(DPB_CHAT_QWEN3, &o, a, 2, &s, NULL) == DPB_OK);
    T_CHECK(strcmp(s, "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\nans<|im_end|>\n") == 0);
    free(s);
    dpb_chat_template tp;
    T_CHECK(dpb_chat_template_parse("gpt-oss", &tp) == DPB_OK && tp == DPB_CHAT_HARMONY);
    T_CHECK(dpb_chat_template_parse("yi-chat", &tp) == DPB_OK && tp == DPB_CHAT_CHATML);
    T_CHECK(dpb_chat_template_parse("jinja", &tp) == DPB_E_ARG);
}

static void test_reference_renders(void)
{
    if (!t_shared()) T_SKIP("../shared is absent");
    T_CHECK(g_oss && g_qwen && g_yi);
    if (!g_oss || !g_qwen || !g_yi) return;
    char p[1024];
    snprintf(p, sizeof p, "%s/data/tokenizers/vectors/chat_templates.public.jsonl", t_shared());
    char *text;
    size_t len;
    T_CHECK(dpb_file_read(p, 16u << 20, &text, &len) == DPB_OK);
    int n = 0, bad_text = 0, bad_ids = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *o;
        if (dpb_json_parse(line, strlen(line), "vector", &o) == DPB_OK) {
            const char *tn = cJSON_GetObjectItem(o, "template")->valuestring;
            const cJSON *kw = cJSON_GetObjectItem(o, "kwargs");
            dpb_chat_template tpl;
            T_CHECK(dpb_chat_template_parse(tn, &tpl) == DPB_OK);
            dpb_chat_options opt;
            dpb_chat_options_default(&opt);
            opt.date = "2026-11-26";
            const cJSON *re = cJSON_GetObjectItem(kw, "reasoning_effort");
            if (re) opt.reasoning = re->valuestring;
            const cJSON *et = cJSON_GetObjectItem(kw, "enable_thinking");
            if (et) opt.enable_thinking = cJSON_IsTrue(et);
            opt.add_generation_prompt = cJSON_IsTrue(cJSON_GetObjectItem(kw, "add_generation_prompt"));
            dpb_chat_message msgs[16];
            size_t nm = 0;
            const cJSON *e;
            cJSON_ArrayForEach(e, cJSON_GetObjectItem(o, "messages"))
            {
                msgs[nm].role = cJSON_GetObjectItem(e, "role")->valuestring;
                msgs[nm].content = cJSON_GetObjectItem(e, "content")->valuestring;
                nm++;
            }
            char *r;
            size_t rl;
            T_CHECK(dpb_chat_render(tpl, &opt, msgs, nm, &r, &rl) == DPB_OK);
            const char *want = cJSON_GetObjectItem(o, "text")->valuestring;
            if (strcmp(r, want) != 0) {
                bad_text++;
                fprintf(stderr, "  line %d (%s): render differs:\n    got  %s\n    want %s\n", n + 1, tn, r, want);
            }
            dpb_tokenizer *t = tpl == DPB_CHAT_HARMONY ? g_oss : tpl == DPB_CHAT_QWEN3 ? g_qwen : g_yi;
            dpb_tokens tk = {0};
            T_CHECK(dpb_tokenizer_encode(t, r, rl, DPB_TOK_ALLOW_SPECIAL, &tk) == DPB_OK);
            const cJSON *ids = cJSON_GetObjectItem(o, "ids");
            int ok = (size_t)cJSON_GetArraySize(ids) == tk.n;
            for (size_t i = 0; ok && i < tk.n; i++) ok = cJSON_GetArrayItem(ids, (int)i)->valueint == tk.ids[i];
            if (!ok) {
                bad_ids++;
                fprintf(stderr, "  line %d (%s): ids differ (%zu vs %d)\n", n + 1, tn, tk.n, cJSON_GetArraySize(ids));
            }
            dpb_tokens_free(&tk);
            free(r);
            cJSON_Delete(o);
            n++;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    T_CHECKF(n >= 24 && bad_text == 0 && bad_ids == 0, "%d renders: %d texts and %d id lists differ", n, bad_text,
             bad_ids);
    fprintf(stderr, "  chat templates: %d/%d renders exact (text and ids)\n", n - bad_text, n);
}

/* max_overhead: the template's own tokens must not exceed it (so N=16 must be met
 * for ChatML/Qwen3; Harmony's mandatory system message is ~67 tokens, below which
 * the error must name the minimum). */
static void exact_for(dpb_tokenizer *t, dpb_chat_template tpl, const char *name, size_t max_overhead)
{
    static const size_t ns[] = {16, 128, 1000, 2048, 8192, 32768};
    dpb_exact_prompt_options o = {.tpl = tpl, .seed = 42};
    dpb_chat_options_default(&o.chat);
    o.chat.date = "2026-11-26";
    size_t overhead;
    T_CHECK(dpb_tokenizer_template_overhead(t, &o, &overhead) == DPB_OK);
    T_CHECKF(overhead <= max_overhead, "%s: template overhead %zu tokens, expected at most %zu", name, overhead,
             max_overhead);
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        char *msg = NULL;
        dpb_tokens ids = {0};
        dpb_status st = dpb_tokenizer_exact_prompt(t, &o, ns[i], &msg, &ids);
        if (ns[i] < overhead) {
            char want[64];
            snprintf(want, sizeof want, "minimum is %zu tokens", overhead);
            T_CHECKF(st == DPB_E_RANGE && strstr(dpb_error_message(), want), "%s N=%zu: %s", name, ns[i],
                     dpb_error_message());
            fprintf(stderr, "  %s: N=%zu below overhead %zu: %s\n", name, ns[i], overhead, dpb_error_message());
        } else {
            T_CHECKF(st == DPB_OK && ids.n == ns[i], "%s N=%zu: got %zu (%s)", name, ns[i], ids.n,
                     st ? dpb_error_message() : "");
            /* independent recount of the rendered prompt */
            if (st == DPB_OK) {
                dpb_chat_message m = {"user", msg};
                char *r;
                size_t rl, c;
                T_CHECK(dpb_chat_render(tpl, &o.chat, &m, 1, &r, &rl) == DPB_OK);
                T_CHECK(dpb_tokenizer_count(t, r, rl, DPB_TOK_ALLOW_SPECIAL, &c) == DPB_OK && c == ns[i]);
                free(r);
            }
        }
        /* deterministic per seed */
        if (st == DPB_OK && ns[i] == 1000) {
            char *again;
            T_CHECK(dpb_tokenizer_exact_prompt(t, &o, ns[i], &again, NULL) == DPB_OK && strcmp(again, msg) == 0);
            free(again);
            o.seed = 7;
            T_CHECK(dpb_tokenizer_exact_prompt(t, &o, ns[i], &again, NULL) == DPB_OK && strcmp(again, msg) != 0);
            free(again);
            o.seed = 42;
        }
        free(msg);
        dpb_tokens_free(&ids);
    }
}

static void test_exact_harmony(void)
{
    if (!g_oss) T_SKIP("gpt-oss tokenizer not available (../shared absent)");
    exact_for(g_oss, DPB_CHAT_HARMONY, "gpt-oss/harmony", 80);
}
static void test_exact_qwen3(void)
{
    if (!g_qwen) T_SKIP("qwen3 tokenizer not available (../shared absent)");
    exact_for(g_qwen, DPB_CHAT_QWEN3, "qwen3/chatml", 16);
}
static void test_exact_yi(void)
{
    if (!g_yi) T_SKIP("yi tokenizer not available (../shared absent)");
    exact_for(g_yi, DPB_CHAT_CHATML, "yi/chatml", 16);
    exact_for(g_yi, DPB_CHAT_NONE, "yi/none", 16);
}
static void test_exact_user_text(void)
{
    if (!g_qwen) T_SKIP("qwen3 tokenizer not available (../shared absent)");
    const char *src = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.";
    dpb_exact_prompt_options o = {.tpl = DPB_CHAT_QWEN3, .seed = 3, .source_text = src, .source_len = strlen(src)};
    dpb_chat_options_default(&o.chat);
    char *msg;
    dpb_tokens ids = {0};
    T_CHECK(dpb_tokenizer_exact_prompt(g_qwen, &o, 300, &msg, &ids) == DPB_OK && ids.n == 300);
    T_CHECK(strstr(msg, "clips") != NULL);
    free(msg);
    dpb_tokens_free(&ids);
}

int main(void)
{
    if (t_shared()) {
        g_oss = load("gpt-oss-harmony/tokenizer.json.gz");
        g_qwen = load("qwen3/tokenizer.json.gz");
        g_yi = load("yi-1.5/tokenizer.json");
    }
    T_RUN(test_render_no_shared);
    T_RUN(test_reference_renders);
    T_RUN(test_exact_harmony);
    T_RUN(test_exact_qwen3);
    T_RUN(test_exact_yi);
    T_RUN(test_exact_user_text);
    dpb_tokenizer_free(g_oss);
    dpb_tokenizer_free(g_qwen);
    dpb_tokenizer_free(g_yi);
    return t_done();
}
