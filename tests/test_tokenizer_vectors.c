/* Exact match against the reference vectors in ../shared/data/tokenizers
 * (tiktoken, HF tokenizers, sentencepiece, llama.cpp); skips without ../shared. */
#include <utf8proc.h>
#include "core/file.h"
#include "core/json.h"
#include "t.h"
#include "tokenizer/tokenizer.h"

static char g_path[1024];

static const char *sp(const char *rel)
{
    const char *s = t_shared();
    if (!s) return NULL;
    snprintf(g_path, sizeof g_path, "%s/data/tokenizers/%s", s, rel);
    return g_path;
}

static dpb_tokenizer *load(const char *rel)
{
    const char *p = sp(rel);
    if (!p) return NULL;
    dpb_tokenizer *t = NULL;
    dpb_status st = dpb_tokenizer_load(p, &t);
    if (st) fprintf(stderr, "  load %s: %s\n", p, dpb_error_message());
    return t;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "    %s:", label);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* Runs one .public.jsonl file; returns mismatches. */
static int run_jsonl(dpb_tokenizer *t, const char *rel, unsigned flags, int *n_lines, int *roundtrip_bad)
{
    char *text;
    size_t len;
    const char *p = sp(rel);
    if (dpb_file_read(p, 64u << 20, &text, &len)) {
        fprintf(stderr, "  %s\n", dpb_error_message());
        return 1;
    }
    int bad = 0, n = 0;
    *roundtrip_bad = 0;
    char *line = text;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *o = NULL;
        if (*line && dpb_json_parse(line, strlen(line), rel, &o) == DPB_OK) {
            const cJSON *tx = cJSON_GetObjectItem(o, "text"), *ids = cJSON_GetObjectItem(o, "ids");
            dpb_tokens tk = {0};
            size_t tl = strlen(tx->valuestring);
            dpb_status st = dpb_tokenizer_encode(t, tx->valuestring, tl, flags, &tk);
            int ok = st == DPB_OK && (size_t)cJSON_GetArraySize(ids) == tk.n;
            for (size_t i = 0; ok && i < tk.n; i++)
                if (cJSON_GetArrayItem(ids, (int)i)->valueint != tk.ids[i]) ok = 0;
            if (!ok) {
                if (bad < 5) {
                    fprintf(stderr, "  %s line %d mismatch: text '%.80s'%s\n", rel, n + 1, tx->valuestring,
                            st ? dpb_error_message() : "");
                    print_ids("got ", tk.ids, tk.n);
                    int32_t exp[64];
                    int ne = cJSON_GetArraySize(ids);
                    for (int i = 0; i < ne && i < 64; i++) exp[i] = cJSON_GetArrayItem(ids, i)->valueint;
                    print_ids("want", exp, (size_t)ne);
                }
                bad++;
            } else {
                /* streaming: one id at a time, every chunk complete UTF-8, same text in the end */
                dpb_tokenizer_stream ss;
                dpb_tokenizer_stream_init(&ss, t, false);
                char *acc = malloc(4 * tl + 64);
                size_t al = 0;
                int stream_ok = acc != NULL;
                for (size_t i = 0; stream_ok && i <= tk.n; i++) {
                    const char *chunk;
                    size_t pl;
                    dpb_status ps = i < tk.n ? dpb_tokenizer_stream_push(&ss, tk.ids[i], &chunk, &pl)
                                             : dpb_tokenizer_stream_finish(&ss, &chunk, &pl);
                    if (ps || !dpb_utf8_valid((const uint8_t *)chunk, pl, NULL) || al + pl > 4 * tl + 64) stream_ok = 0;
                    else {
                        memcpy(acc + al, chunk, pl);
                        al += pl;
                    }
                }
                dpb_tokenizer_stream_free(&ss);
                char *dec;
                size_t dl;
                if (dpb_tokenizer_decode(t, tk.ids, tk.n, false, &dec, &dl) == DPB_OK) {
                    if (!stream_ok || al != dl || memcmp(acc, dec, dl) != 0) {
                        fprintf(stderr, "  %s line %d: streaming decode differs\n", rel, n + 1);
                        (*roundtrip_bad)++;
                    }
                    if (dl != tl || memcmp(dec, tx->valuestring, tl) != 0) {
                        /* allowed only where NFC changed the input */
                        char *nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)tx->valuestring);
                        if (!nfc || strcmp(nfc, dec) != 0) {
                            if (*roundtrip_bad < 3)
                                fprintf(stderr, "  %s line %d: decode differs: '%.80s' -> '%.80s'\n", rel, n + 1,
                                        tx->valuestring, dec);
                            (*roundtrip_bad)++;
                        }
                        free(nfc);
                    }
                    free(dec);
                } else (*roundtrip_bad)++;
                free(acc);
            }
            dpb_tokens_free(&tk);
            cJSON_Delete(o);
            n++;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    *n_lines = n;
    return bad;
}

static void check_jsonl(const char *tok_rel, const char *vec_rel, unsigned flags, int roundtrip_allowed)
{
    if (!t_shared()) T_SKIP("../shared is absent");
    dpb_tokenizer *t = load(tok_rel);
    T_CHECK(t != NULL);
    if (!t) return;
    int n = 0, rt = 0;
    int bad = run_jsonl(t, vec_rel, flags, &n, &rt);
    T_CHECKF(bad == 0, "%s: %d of %d vectors differ", vec_rel, bad, n);
    T_CHECKF(n >= 100, "%s: only %d vectors", vec_rel, n);
    T_CHECKF(rt <= roundtrip_allowed, "%s: %d decodes do not round-trip", vec_rel, rt);
    fprintf(stderr, "  %s: %d/%d exact, %d decode differences\n", vec_rel, n - bad, n, rt);
    dpb_tokenizer_free(t);
}

static void test_o200k_harmony(void)
{
    check_jsonl("gpt-oss-harmony/tokenizer.json.gz", "vectors/o200k_harmony.public.jsonl", DPB_TOK_ALLOW_SPECIAL, 0);
}
static void test_o200k_tiktoken(void)
{
    if (!t_shared()) T_SKIP("../shared is absent");
    char tk[1024], spj[1024];
    snprintf(tk, sizeof tk, "%s/data/tokenizers/o200k_base/o200k_base.tiktoken", t_shared());
    snprintf(spj, sizeof spj, "%s/data/tokenizers/o200k_base/o200k_harmony_special_tokens.json", t_shared());
    dpb_tokenizer *t = NULL;
    dpb_status st = dpb_tokenizer_load_tiktoken(tk, spj, &t);
    T_CHECKF(st == DPB_OK, "%s", dpb_error_message());
    if (st) return;
    int n = 0, rt = 0;
    int bad = run_jsonl(t, "vectors/o200k_harmony.public.jsonl", DPB_TOK_ALLOW_SPECIAL, &n, &rt);
    T_CHECKF(bad == 0 && rt == 0, "tiktoken file: %d of %d differ, %d decode differences", bad, n, rt);
    T_CHECK(dpb_tokenizer_vocab_size(t) == 201088);
    dpb_tokenizer_free(t);
}
static void test_qwen3(void) { check_jsonl("qwen3/tokenizer.json.gz", "vectors/qwen3.public.jsonl", DPB_TOK_ALLOW_SPECIAL, 0); }
static void test_yi(void) { check_jsonl("yi-1.5/tokenizer.json", "vectors/yi.public.jsonl", DPB_TOK_ALLOW_SPECIAL, 0); }
static void test_llama2(void)
{
    /* sentencepiece drops one leading space on decode and (remove_extra_whitespaces) collapses runs */
    check_jsonl("llama2/tokenizer.model", "vectors/llama2-spm.public.jsonl", DPB_TOK_ALLOW_SPECIAL, 0);
}

static void check_llamacpp(const char *tok_rel, const char *name)
{
    if (!t_shared()) T_SKIP("../shared is absent");
    dpb_tokenizer *t = load(tok_rel);
    T_CHECK(t != NULL);
    if (!t) return;
    char ip[1024], op[1024];
    snprintf(ip, sizeof ip, "%s/data/tokenizers/llama.cpp-vocab/ggml-vocab-%s.gguf.inp", t_shared(), name);
    snprintf(op, sizeof op, "%s/data/tokenizers/llama.cpp-vocab/ggml-vocab-%s.gguf.out", t_shared(), name);
    char *in, *outs;
    size_t il, ol;
    T_CHECK(dpb_file_read(ip, 1 << 20, &in, &il) == DPB_OK);
    T_CHECK(dpb_file_read(op, 1 << 20, &outs, &ol) == DPB_OK);
    const char *sep = "\n__ggml_vocab_test__\n";
    char *p = in, *o = outs;
    int n = 0, bad = 0;
    for (;;) {
        char *e = strstr(p, sep);
        if (!e) break;
        *e = 0;
        char *ol_end = strchr(o, '\n');
        if (!ol_end) break;
        *ol_end = 0;
        int32_t want[512];
        size_t nw = 0;
        for (char *q = o; *q;) {
            while (*q == ' ') q++;
            if (!*q) break;
            want[nw++] = (int32_t)strtol(q, &q, 10);
        }
        dpb_tokens tk = {0};
        dpb_status st = dpb_tokenizer_encode(t, p, strlen(p), 0, &tk);
        int ok = st == DPB_OK && tk.n == nw && (nw == 0 || memcmp(tk.ids, want, nw * sizeof *want) == 0);
        if (!ok) {
            if (bad < 4) {
                fprintf(stderr, "  llama.cpp %s #%d '%.60s'\n", name, n, p);
                print_ids("got ", tk.ids, tk.n);
                print_ids("want", want, nw);
            }
            bad++;
        }
        dpb_tokens_free(&tk);
        n++;
        p = e + strlen(sep);
        o = ol_end + 1;
    }
    T_CHECKF(n >= 46 && bad == 0, "llama.cpp %s: %d of %d differ", name, bad, n);
    fprintf(stderr, "  llama.cpp %s: %d/%d exact\n", name, n - bad, n);
    free(in);
    free(outs);
    dpb_tokenizer_free(t);
}
static void test_llamacpp_gpt2(void) { check_llamacpp("gpt2/tokenizer.json", "gpt-2"); }
static void test_llamacpp_spm(void) { check_llamacpp("llama2/tokenizer.model", "llama-spm"); }
static void test_llamacpp_qwen2(void) { check_llamacpp("qwen3/tokenizer.json.gz", "qwen2"); }

int main(void)
{
    T_RUN(test_o200k_harmony);
    T_RUN(test_o200k_tiktoken);
    T_RUN(test_qwen3);
    T_RUN(test_yi);
    T_RUN(test_llama2);
    T_RUN(test_llamacpp_gpt2);
    T_RUN(test_llamacpp_spm);
    T_RUN(test_llamacpp_qwen2);
    return t_done();
}
