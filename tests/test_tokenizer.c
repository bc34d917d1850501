/* Tokenizer unit tests on small synthetic tokenizers (no ../shared needed):
 * BPE merges, specials, decoding and streaming, bad tokenizer files, the
 * regex match limit, SentencePiece protobuf and tiktoken files, template detection. */
#include <cjson/cJSON.h>
#include <utf8proc.h>
#include "core/file.h"
#include "core/timeutil.h"
#include "t.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

/* UTF-8 of the byte-level symbol for byte b. */
static void bl_sym(int b, char *out)
{
    uint32_t map[256];
    tok_bytelevel_tables(map);
    uint32_t cp = map[b];
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

/* A byte-level BPE tokenizer.json: 256 bytes (ids 0..255) + merges; extra JSON via hooks. */
static char *make_bl_json(const char *const *merges, size_t nm, const char *pattern, bool add_special)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *ma = cJSON_AddArrayToObject(model, "merges");
    int id = 0;
    for (int b = 0; b < 256; b++) {
        char s[4];
        bl_sym(b, s);
        cJSON_AddNumberToObject(vocab, s, id++);
    }
    for (size_t i = 0; i < nm; i++) {
        /* merges[i] = "a b" in plain ASCII; convert spaces within tokens (none here) */
        char a[64], b[64], cat[128];
        sscanf(merges[i], "%63s %63s", a, b);
        snprintf(cat, sizeof cat, "%s%s", a, b);
        if (!cJSON_GetObjectItemCaseSensitive(vocab, cat)) cJSON_AddNumberToObject(vocab, cat, id++);
        cJSON_AddItemToArray(ma, cJSON_CreateString(merges[i]));
    }
    if (add_special) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", 1000);
        cJSON_AddStringToObject(e, "content", "<|endoftext|>");
        cJSON_AddBoolToObject(e, "special", 1);
        cJSON_AddItemToArray(added, e);
    }
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    if (pattern) {
        cJSON_AddStringToObject(pre, "type", "Sequence");
        cJSON *arr = cJSON_AddArrayToObject(pre, "pretokenizers");
        cJSON *sp = cJSON_CreateObject();
        cJSON_AddStringToObject(sp, "type", "Split");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(sp, "pattern"), "Regex", pattern);
        cJSON_AddStringToObject(sp, "behavior", "Isolated");
        cJSON_AddItemToArray(arr, sp);
        cJSON *bl = cJSON_CreateObject();
        cJSON_AddStringToObject(bl, "type", "ByteLevel");
        cJSON_AddBoolToObject(bl, "use_regex", 0);
        cJSON_AddItemToArray(arr, bl);
    } else {
        cJSON_AddStringToObject(pre, "type", "ByteLevel");
        cJSON_AddBoolToObject(pre, "add_prefix_space", 0);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static const char *const k_merges[] = {"h e", "l l", "he ll", "hell o", "\xC4\xA0 w", "\xC4\xA0w o"};

static dpb_tokenizer *tiny(void)
{
    char *j = make_bl_json(k_merges, 6, NULL, true);
    dpb_tokenizer *t = NULL;
    dpb_status st = dpb_tokenizer_load_json_text(j, strlen(j), "tiny.json", &t);
    if (st) fprintf(stderr, "  %s\n", dpb_error_message());
    free(j);
    return t;
}

static int32_t enc1(dpb_tokenizer *t, const char *s, unsigned flags, dpb_tokens *tk)
{
    tk->n = 0;
    return dpb_tokenizer_encode(t, s, strlen(s), flags, tk) == DPB_OK ? (int32_t)tk->n : -1;
}

static void test_bpe_merges(void)
{
    dpb_tokenizer *t = tiny();
    T_CHECK(t != NULL);
    if (!t) return;
    dpb_tokens tk = {0};
    int32_t hello = dpb_tokenizer_token_id(t, "hello");
    T_CHECK(hello >= 256);
    T_CHECK(enc1(t, "hello", 0, &tk) == 1 && tk.ids[0] == hello);
    /* " wo" is one token, "rld" three bytes; the GPT-2 regex splits " world" as one piece */
    T_CHECK(enc1(t, "hello world", 0, &tk) == 5);
    T_CHECK(tk.ids[1] == dpb_tokenizer_token_id(t, " wo") && tk.ids[2] == 'r');
    /* heap path: a long piece */
    char longw[400];
    for (int i = 0; i < 80; i++) memcpy(longw + 5 * i, "hello", 5);
    longw[399] = 0;
    T_CHECK(enc1(t, longw, 0, &tk) == 80); /* 79 x hello + "hell" */
    T_CHECK(tk.ids[0] == hello && tk.ids[79] == dpb_tokenizer_token_id(t, "hell"));
    char *d;
    size_t dl;
    T_CHECK(dpb_tokenizer_decode(t, tk.ids, tk.n, false, &d, &dl) == DPB_OK && strcmp(d, longw) == 0);
    free(d);
    dpb_tokens_free(&tk);
    dpb_tokenizer_free(t);
}

static void test_specials(void)
{
    dpb_tokenizer *t = tiny();
    if (!t) T_SKIP("tiny tokenizer failed");
    dpb_tokens tk = {0};
    /* as plain text: no id 1000 */
    int n = enc1(t, "a<|endoftext|>b", 0, &tk);
    T_CHECK(n > 3);
    for (int i = 0; i < n; i++) T_CHECK(tk.ids[i] != 1000);
    /* allowed: a, <|endoftext|>, b */
    T_CHECK(enc1(t, "a<|endoftext|>b", DPB_TOK_ALLOW_SPECIAL, &tk) == 3 && tk.ids[1] == 1000 && tk.ids[0] == 'a');
    char *d;
    T_CHECK(dpb_tokenizer_decode(t, tk.ids, tk.n, false, &d, NULL) == DPB_OK && strcmp(d, "a<|endoftext|>b") == 0);
    free(d);
    T_CHECK(dpb_tokenizer_decode(t, tk.ids, tk.n, true, &d, NULL) == DPB_OK && strcmp(d, "ab") == 0);
    free(d);
    T_CHECK(dpb_tokenizer_token_id(t, "<|endoftext|>") == 1000);
    dpb_tokens_free(&tk);
    dpb_tokenizer_free(t);
}

static void test_decode_errors_and_stream(void)
{
    dpb_tokenizer *t = tiny();
    if (!t) T_SKIP("tiny tokenizer failed");
    int32_t bad[] = {104, 5000};
    char *d = NULL;
    dpb_status st = dpb_tokenizer_decode(t, bad, 2, false, &d, NULL);
    T_CHECK(st == DPB_E_RANGE && d == NULL);
    T_CHECK(strstr(dpb_error_message(), "id #1") && strstr(dpb_error_message(), "5000"));
    int32_t neg = -3;
    T_CHECK(dpb_tokenizer_decode(t, &neg, 1, false, &d, NULL) == DPB_E_RANGE);
    /* streaming: é (C3 A9) arrives as two byte tokens */
    dpb_tokenizer_stream s;
    dpb_tokenizer_stream_init(&s, t, false);
    const char *p;
    size_t pl;
    T_CHECK(dpb_tokenizer_stream_push(&s, 0xC3, &p, &pl) == DPB_OK && pl == 0);
    T_CHECK(dpb_tokenizer_stream_push(&s, 0xA9, &p, &pl) == DPB_OK && pl == 2 && memcmp(p, "\xC3\xA9", 2) == 0);
    /* an incomplete sequence followed by ASCII: U+FFFD then the letter */
    T_CHECK(dpb_tokenizer_stream_push(&s, 0xE2, &p, &pl) == DPB_OK && pl == 0);
    T_CHECK(dpb_tokenizer_stream_push(&s, 'x', &p, &pl) == DPB_OK && pl == 4 && memcmp(p, "\xEF\xBF\xBDx", 4) == 0);
    /* a trailing incomplete sequence is flushed as U+FFFD */
    T_CHECK(dpb_tokenizer_stream_push(&s, 0xF0, &p, &pl) == DPB_OK && pl == 0);
    T_CHECK(dpb_tokenizer_stream_finish(&s, &p, &pl) == DPB_OK && pl == 3);
    dpb_tokenizer_stream_free(&s);
    dpb_tokenizer_free(t);
}

static void test_invalid_utf8_input(void)
{
    dpb_tokenizer *t = tiny();
    if (!t) T_SKIP("tiny tokenizer failed");
    dpb_tokens tk = {0};
    const char bad[] = "ok\xC3(";
    dpb_status st = dpb_tokenizer_encode(t, bad, 4, 0, &tk);
    T_CHECK(st == DPB_E_FORMAT && strstr(dpb_error_message(), "not valid UTF-8 at byte 2"));
    T_CHECK(tk.n == 0);
    /* a NUL byte is valid UTF-8 and encodes */
    T_CHECK(dpb_tokenizer_encode(t, "a\0b", 3, 0, &tk) == DPB_OK && tk.n == 3 && tk.ids[1] == 0);
    dpb_tokens_free(&tk);
    dpb_tokenizer_free(t);
}

static dpb_status load_str(const char *j, dpb_tokenizer **t)
{
    return dpb_tokenizer_load_json_text(j, strlen(j), "bad.json", t);
}

static void test_malformed_json(void)
{
    dpb_tokenizer *t = NULL;
    T_CHECK(load_str("{\"version\": \"1.0\"}", &t) == DPB_E_FORMAT && strstr(dpb_error_message(), "missing \"model\""));
    T_CHECK(load_str("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", &t) == DPB_E_UNSUPPORTED &&
            strstr(dpb_error_message(), "WordPiece") && strstr(dpb_error_message(), "only BPE"));
    T_CHECK(load_str("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]]}}", &t) == DPB_E_UNSUPPORTED &&
            strstr(dpb_error_message(), "Unigram"));
    T_CHECK(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}", &t) ==
                DPB_E_FORMAT &&
            strstr(dpb_error_message(), "duplicate token id 0"));
    T_CHECK(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a c\"]}}", &t) ==
                DPB_E_FORMAT &&
            strstr(dpb_error_message(), "merges[0]") && strstr(dpb_error_message(), "right token is not in the vocabulary"));
    T_CHECK(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}", &t) ==
                DPB_E_FORMAT &&
            strstr(dpb_error_message(), "merged token"));
    T_CHECK(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -4}, \"merges\": []}}", &t) == DPB_E_FORMAT);
    T_CHECK(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1.5}, \"merges\": []}}", &t) == DPB_E_FORMAT);
    T_CHECK(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", &t) == DPB_E_FORMAT &&
            strstr(dpb_error_message(), "merges is missing"));
    T_CHECK(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}", &t) == DPB_E_FORMAT);
    T_CHECK(load_str("not json", &t) == DPB_E_FORMAT);
    T_CHECK(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"\": 2}, \"merges\": [[\"a\", \"b\"]]}}", &t) ==
                DPB_E_FORMAT &&
            strstr(dpb_error_message(), "empty string"));
    /* an id far beyond the entry count would need a huge table: refused */
    T_CHECK(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 60000000}, \"merges\": []}}", &t) ==
                DPB_E_RANGE &&
            strstr(dpb_error_message(), "60000000 is too large"));
    T_CHECK(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": "
                     "{\"type\": \"NFKD\"}}",
                     &t) == DPB_E_UNSUPPORTED &&
            strstr(dpb_error_message(), "NFKD"));
    T_CHECK(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": "
                     "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, \"behavior\": \"Isolated\"}}",
                     &t) == DPB_E_FORMAT &&
            strstr(dpb_error_message(), "regex is invalid"));
    T_CHECK(load_str("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": "
                     "[{\"id\": 0, \"content\": \"<x>\"}]}",
                     &t) == DPB_E_FORMAT &&
            strstr(dpb_error_message(), "duplicate token id 0"));
    T_CHECK(t == NULL);
}

static void test_catastrophic_regex(void)
{
    char *j = make_bl_json(k_merges, 6, "(a+)+$", false);
    dpb_tokenizer *t = NULL;
    T_CHECK(dpb_tokenizer_load_json_text(j, strlen(j), "evil.json", &t) == DPB_OK);
    free(j);
    if (!t) return;
    dpb_tokenizer_set_match_limits(t, 1000000, 1000);
    size_t n = 20000;
    char *s = malloc(n + 2);
    memset(s, 'a', n);
    s[n] = 'b';
    s[n + 1] = 0;
    dpb_tokens tk = {0};
    uint64_t t0 = dpb_now_ns();
    dpb_status st = dpb_tokenizer_encode(t, s, n + 1, 0, &tk);
    double secs = (double)(dpb_now_ns() - t0) / 1e9;
    T_CHECKF(st == DPB_E_RANGE && strstr(dpb_error_message(), "regex"), "st=%d %s", st, dpb_error_message());
    T_CHECKF(secs < 10.0, "took %.1f s", secs);
    fprintf(stderr, "  catastrophic regex: error after %.3f s: %s\n", secs, dpb_error_message());
    free(s);
    dpb_tokens_free(&tk);
    dpb_tokenizer_free(t);
}

/* ---- SentencePiece protobuf, written by hand ---- */
typedef struct pbw {
    uint8_t b[8192];
    size_t n;
} pbw;
static void pb_varint(pbw *w, uint64_t v)
{
    while (v >= 0x80) {
        w->b[w->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    w->b[w->n++] = (uint8_t)v;
}
static void pb_bytes(pbw *w, int field, const void *p, size_t len)
{
    pb_varint(w, (uint64_t)field << 3 | 2);
    pb_varint(w, len);
    memcpy(w->b + w->n, p, len);
    w->n += len;
}
static void add_piece(pbw *w, const char *s, float score, int type)
{
    pbw m = {.n = 0};
    pb_bytes(&m, 1, s, strlen(s));
    pb_varint(&m, 2 << 3 | 5);
    memcpy(m.b + m.n, &score, 4);
    m.n += 4;
    pb_varint(&m, 3 << 3 | 0);
    pb_varint(&m, (uint64_t)type);
    pb_bytes(w, 1, m.b, m.n);
}
static size_t make_spm(uint8_t *out, int model_type)
{
    pbw w = {.n = 0};
    add_piece(&w, "<unk>", 0, 2);
    add_piece(&w, "<s>", 0, 3);
    add_piece(&w, "</s>", 0, 3);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        add_piece(&w, s, 0, 6);
    }
    add_piece(&w, "\xE2\x96\x81", -1, 1); /* 259 */
    add_piece(&w, "a", -2, 1);            /* 260 */
    add_piece(&w, "b", -3, 1);            /* 261 */
    add_piece(&w, "\xE2\x96\x81" "a", -4, 1); /* 262 */
    add_piece(&w, "ab", -5, 1);           /* 263 */
    add_piece(&w, "\xE2\x96\x81" "ab", -6, 1); /* 264 */
    pbw ts = {.n = 0};
    pb_varint(&ts, 3 << 3 | 0);
    pb_varint(&ts, (uint64_t)model_type);
    pb_varint(&ts, 35 << 3 | 0);
    pb_varint(&ts, 1);
    pb_bytes(&w, 2, ts.b, ts.n);
    pbw ns = {.n = 0};
    pb_bytes(&ns, 1, "identity", 8);
    pb_varint(&ns, 3 << 3 | 0);
    pb_varint(&ns, 1);
    pb_varint(&ns, 4 << 3 | 0);
    pb_varint(&ns, 0);
    pb_bytes(&w, 3, ns.b, ns.n);
    memcpy(out, w.b, w.n);
    return w.n;
}

static void test_spm_model(void)
{
    uint8_t buf[8192];
    size_t n = make_spm(buf, 2);
    dpb_tokenizer *t = NULL;
    T_CHECKF(dpb_tokenizer_load_spm_bytes(buf, n, "tiny.model", &t) == DPB_OK, "%s", dpb_error_message());
    if (!t) return;
    dpb_tokens tk = {0};
    /* "ab ab" -> ▁ab ▁ab (dummy prefix, score-greedy merges) */
    T_CHECK(enc1(t, "ab ab", 0, &tk) == 2 && tk.ids[0] == 264 && tk.ids[1] == 264);
    /* unknown character -> byte fallback */
    T_CHECK(enc1(t, "a\xC3\xA9", 0, &tk) == 3 && tk.ids[0] == 262 && tk.ids[1] == 3 + 0xC3 && tk.ids[2] == 3 + 0xA9);
    char *d;
    T_CHECK(dpb_tokenizer_decode(t, tk.ids, tk.n, false, &d, NULL) == DPB_OK && strcmp(d, "a\xC3\xA9") == 0);
    free(d);
    /* <s> in text is plain text (sentencepiece never matches control symbols) */
    T_CHECK(enc1(t, "<s>", DPB_TOK_ALLOW_SPECIAL, &tk) > 1);
    for (size_t i = 0; i < tk.n; i++) T_CHECK(tk.ids[i] != 1);
    /* control tokens decode to nothing */
    int32_t ids[] = {1, 264, 2};
    T_CHECK(dpb_tokenizer_decode(t, ids, 3, false, &d, NULL) == DPB_OK && strcmp(d, "ab") == 0);
    free(d);
    dpb_tokens_free(&tk);
    dpb_tokenizer_free(t);
    /* Unigram is refused by name; truncation is an error */
    n = make_spm(buf, 1);
    T_CHECK(dpb_tokenizer_load_spm_bytes(buf, n, "uni.model", &t) == DPB_E_UNSUPPORTED &&
            strstr(dpb_error_message(), "Unigram"));
    n = make_spm(buf, 2);
    T_CHECK(dpb_tokenizer_load_spm_bytes(buf, n - 3, "cut.model", &t) == DPB_E_FORMAT);
    T_CHECK(dpb_tokenizer_load_spm_bytes(buf, 5, "cut.model", &t) == DPB_E_FORMAT);
}

static void test_tiktoken_file(void)
{
    const char *dir = t_tmpdir();
    char path[512], sp[512];
    snprintf(path, sizeof path, "%s/t.tiktoken", dir);
    snprintf(sp, sizeof sp, "%s/specials.json", dir);
    /* base64 of every byte, then "ab" (YWI=) and "abc" (YWJj) */
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *txt = malloc(256 * 16 + 64);
    size_t n = 0;
    for (int b = 0; b < 256; b++)
        n += (size_t)sprintf(txt + n, "%c%c== %d\n", b64[b >> 2], b64[(b & 3) << 4], b);
    n += (size_t)sprintf(txt + n, "YWI= 256\nYWJj 257\n");
    T_CHECK(dpb_file_write(path, txt, n) == DPB_OK);
    const char *spj = "{\"pat_str\": \"\\\\S+|\\\\s+\", \"special_tokens\": {\"<|end|>\": 300}}";
    T_CHECK(dpb_file_write(sp, spj, strlen(spj)) == DPB_OK);
    dpb_tokenizer *t = NULL;
    T_CHECKF(dpb_tokenizer_load_tiktoken(path, sp, &t) == DPB_OK, "%s", dpb_error_message());
    if (t) {
        dpb_tokens tk = {0};
        T_CHECK(enc1(t, "abc ab<|end|>", DPB_TOK_ALLOW_SPECIAL, &tk) == 4 && tk.ids[0] == 257 && tk.ids[1] == ' ' &&
                tk.ids[2] == 256 && tk.ids[3] == 300);
        T_CHECK(dpb_tokenizer_vocab_size(t) == 301);
        dpb_tokens_free(&tk);
        dpb_tokenizer_free(t);
    }
    n += (size_t)sprintf(txt + n, "@@@ 12\n");
    T_CHECK(dpb_file_write(path, txt, n) == DPB_OK);
    T_CHECK(dpb_tokenizer_load_tiktoken(path, NULL, &t) == DPB_E_FORMAT && strstr(dpb_error_message(), "line 259"));
    free(txt);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    dpb_file_write(p, text, strlen(text));
}

static void test_template_detect(void)
{
    dpb_chat_template tpl;
    const char *d1 = t_tmpdir();
    char a[256];
    snprintf(a, sizeof a, "%s", d1);
    write_file(a, "config.json", "{\"model_type\": \"gpt_oss\"}");
    T_CHECK(dpb_chat_template_detect(a, &tpl) == DPB_OK && tpl == DPB_CHAT_HARMONY);
    const char *d2 = t_tmpdir();
    snprintf(a, sizeof a, "%s", d2);
    write_file(a, "config.json", "{\"model_type\": \"llama\"}");
    T_CHECK(dpb_chat_template_detect(a, &tpl) == DPB_OK && tpl == DPB_CHAT_NONE);
    write_file(a, "tokenizer_config.json", "{\"chat_template\": \"{{'<|im_start|>' + m}}\"}");
    T_CHECK(dpb_chat_template_detect(a, &tpl) == DPB_OK && tpl == DPB_CHAT_CHATML);
    write_file(a, "tokenizer_config.json",
               "{\"chat_template\": \"<|im_start|>{% if enable_thinking is false %}<think>{% endif %}\"}");
    T_CHECK(dpb_chat_template_detect(a, &tpl) == DPB_OK && tpl == DPB_CHAT_QWEN3);
}

static void test_exact_prompt_tiny(void)
{
    dpb_tokenizer *t = tiny();
    if (!t) T_SKIP("tiny tokenizer failed");
    dpb_exact_prompt_options o = {.tpl = DPB_CHAT_NONE, .seed = 1};
    dpb_chat_options_default(&o.chat);
    for (size_t n = 0; n <= 40; n += 8) {
        char *msg;
        dpb_tokens ids = {0};
        dpb_status st = dpb_tokenizer_exact_prompt(t, &o, n, &msg, &ids);
        T_CHECKF(st == DPB_OK && ids.n == n, "n=%zu: %s", n, st ? dpb_error_message() : "");
        if (!st) free(msg);
        dpb_tokens_free(&ids);
    }
    o.tpl = DPB_CHAT_CHATML;
    size_t over;
    T_CHECK(dpb_tokenizer_template_overhead(t, &o, &over) == DPB_OK && over > 10);
    char *msg;
    char want[64];
    snprintf(want, sizeof want, "the minimum is %zu tokens", over);
    T_CHECK(dpb_tokenizer_exact_prompt(t, &o, 3, &msg, NULL) == DPB_E_RANGE && strstr(dpb_error_message(), want));
    dpb_tokenizer_free(t);
}

/* NFC is applied only to the runs that need it; the result must equal utf8proc's NFC of the whole text. */
static void test_nfc_runs(void)
{
    char *j = make_bl_json(k_merges, 0, NULL, false);
    size_t jl = strlen(j);
    char *j2 = malloc(jl + 64);
    snprintf(j2, jl + 64, "{\"normalizer\":{\"type\":\"NFC\"},%s", j + 1);
    free(j);
    dpb_tokenizer *t = NULL;
    T_CHECKF(dpb_tokenizer_load_json_text(j2, strlen(j2), "nfc.json", &t) == DPB_OK, "%s", dpb_error_message());
    free(j2);
    if (!t) return;
    static const char *const cases[] = {
        "plain ascii", "e\xCC\x81", "abc e\xCC\x81 xyz", "\xC3\xAA\xCC\x81" " tail", /* e-circumflex + acute -> U+1EBF */
        "\xE1\x84\x80\xE1\x85\xA1" "!", /* Hangul jamo -> U+AC00 */
        "a\xCC\xA3\xCC\x87" "b", "\xCC\x81 leading mark", "x\xC3\xA9\xCC\x81y z\xCC\x8C", "\xE4\xB8\xAD\xE6\x96\x87",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dpb_tokens tk = {0};
        T_CHECK(dpb_tokenizer_encode(t, cases[i], strlen(cases[i]), 0, &tk) == DPB_OK);
        char *d;
        T_CHECK(dpb_tokenizer_decode(t, tk.ids, tk.n, false, &d, NULL) == DPB_OK);
        char *want = (char *)utf8proc_NFC((const utf8proc_uint8_t *)cases[i]);
        T_CHECKF(strcmp(d, want) == 0, "case %zu", i);
        free(want);
        free(d);
        dpb_tokens_free(&tk);
    }
    dpb_tokenizer_free(t);
}

int main(void)
{
    T_RUN(test_nfc_runs);
    T_RUN(test_bpe_merges);
    T_RUN(test_specials);
    T_RUN(test_decode_errors_and_stream);
    T_RUN(test_invalid_utf8_input);
    T_RUN(test_malformed_json);
    T_RUN(test_catastrophic_regex);
    T_RUN(test_spm_model);
    T_RUN(test_tiktoken_file);
    T_RUN(test_template_detect);
    T_RUN(test_exact_prompt_tiny);
    return t_done();
}
