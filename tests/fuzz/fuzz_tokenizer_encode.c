/* Fuzz the encoder and decoder on two small tokenizers built in memory:
 * byte-level BPE with a regex pre-tokenizer and added tokens (decode must
 * give the input back), and SentencePiece-style BPE with byte fallback.
 * Random ids go through the streaming decoder. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "core/json.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

static dpb_tokenizer *g_bl, *g_spm;

static void sym(int b, char *out)
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

static dpb_tokenizer *build_bl(void)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    const char *adds[] = {"<|endoftext|>", "<|im_start|>", "<think>"};
    for (int i = 0; i < 3; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", 1000 + i);
        cJSON_AddStringToObject(e, "content", adds[i]);
        cJSON_AddBoolToObject(e, "special", i < 2);
        cJSON_AddItemToArray(added, e);
    }
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    int id = 0;
    char s[4], a[8], b[8], m[16];
    for (int x = 0; x < 256; x++) {
        sym(x, s);
        cJSON_AddNumberToObject(vocab, s, id++);
    }
    /* merges of frequent pairs, and of those results */
    const char *pairs[] = {"t h", "th e", "e r", "i n", "a n", "o n", "\xC4\xA0 t", "\xC4\xA0t h", "\xC4\xA0th e", "\xC4\xA0 \xC4\xA0",
                           "\xC4\xA0\xC4\xA0 \xC4\xA0\xC4\xA0", "1 2", "12 3", "a a", "aa aa", "aaaa aaaa"};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        sscanf(pairs[i], "%7s %7s", a, b);
        snprintf(m, sizeof m, "%s%s", a, b);
        if (!cJSON_GetObjectItemCaseSensitive(vocab, m)) cJSON_AddNumberToObject(vocab, m, id++);
        cJSON_AddItemToArray(merges, cJSON_CreateString(pairs[i]));
    }
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *arr = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *sp = cJSON_CreateObject();
    cJSON_AddStringToObject(sp, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(sp, "pattern"), "Regex",
                            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");
    cJSON_AddStringToObject(sp, "behavior", "Isolated");
    cJSON_AddItemToArray(arr, sp);
    cJSON *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "use_regex", 0);
    cJSON_AddItemToArray(arr, bl);
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    dpb_tokenizer *t = NULL;
    if (dpb_tokenizer_load_json_text(txt, strlen(txt), "fuzz-bl", &t)) {
        fprintf(stderr, "%s\n", dpb_error_message());
        abort();
    }
    free(txt);
    return t;
}

static dpb_tokenizer *build_spm(void)
{
    const char *j =
        "{\"added_tokens\": [{\"id\": 300, \"content\": \"<|im_end|>\", \"special\": true}],"
        "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, {\"type\": \"Prepend\", \"prepend\": \"\\u2581\"},"
        "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"}]},"
        "\"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},"
        "\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"unk_token\": \"<unk>\", \"fuse_unk\": true, \"vocab\": {";
    char *buf = malloc(65536);
    size_t n = (size_t)sprintf(buf, "%s\"<unk>\": 0", j);
    for (int b = 0; b < 256; b++) n += (size_t)sprintf(buf + n, ", \"<0x%02X>\": %d", b, b + 1);
    n += (size_t)sprintf(buf + n, ", \"\\u2581\": 257, \"a\": 258, \"b\": 259, \"ab\": 260, \"\\u2581a\": 261, \"\\u2581ab\": 262,"
                                  " \"\\u00e9\": 263}, \"merges\": [\"a b\", \"\\u2581 a\", \"\\u2581a b\"]}}");
    dpb_tokenizer *t = NULL;
    if (dpb_tokenizer_load_json_text(buf, n, "fuzz-spm", &t)) {
        fprintf(stderr, "%s\n", dpb_error_message());
        abort();
    }
    free(buf);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_bl) {
        g_bl = build_bl();
        g_spm = build_spm();
        dpb_tokenizer_set_match_limits(g_bl, 1000000, 10000);
    }
    if (size > (1 << 16)) return 0;
    const char *text = (const char *)data;
    dpb_tokens tk = {0};
    dpb_status st = dpb_tokenizer_encode(g_bl, text, size, DPB_TOK_ALLOW_SPECIAL, &tk);
    bool valid = dpb_utf8_valid(data, size, NULL);
    if ((st == DPB_OK) != valid && !(st == DPB_E_RANGE && valid)) abort();
    if (st == DPB_OK) {
        char *d;
        size_t dl;
        if (dpb_tokenizer_decode(g_bl, tk.ids, tk.n, false, &d, &dl)) abort();
        if (dl != size || memcmp(d, data, size) != 0) abort(); /* byte-level round trip is exact */
        free(d);
    }
    tk.n = 0;
    if (dpb_tokenizer_encode(g_bl, text, size, 0, &tk) == DPB_OK) {
        for (size_t i = 0; i < tk.n; i++)
            if (tk.ids[i] == 1000 || tk.ids[i] == 1001) abort(); /* specials only when allowed */
    }
    tk.n = 0;
    if (dpb_tokenizer_encode(g_spm, text, size, DPB_TOK_ALLOW_SPECIAL, &tk) == DPB_OK) {
        char *d;
        if (dpb_tokenizer_decode(g_spm, tk.ids, tk.n, false, &d, NULL)) abort();
        free(d);
    }
    /* random ids through the streaming decoder */
    dpb_tokenizer_stream s;
    dpb_tokenizer_stream_init(&s, g_spm, size & 1);
    for (size_t i = 0; i + 1 < size && i < 512; i += 2) {
        int32_t id = (int32_t)(data[i] | (data[i + 1] << 8)) % 320;
        const char *p;
        size_t pl;
        dpb_status ps = dpb_tokenizer_stream_push(&s, id, &p, &pl);
        if (ps == DPB_OK && !dpb_utf8_valid((const uint8_t *)p, pl, NULL)) abort();
    }
    const char *p;
    size_t pl;
    dpb_tokenizer_stream_finish(&s, &p, &pl);
    dpb_tokenizer_stream_free(&s);
    dpb_tokens_free(&tk);
    return 0;
}
