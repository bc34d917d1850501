/* Hugging Face tokenizer.json (plain or gzip) for BPE models. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "core/checked.h"
#include "core/json.h"
#include "tokenizer/tok_internal.h"

static const char k_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

void tok_bytelevel_tables(uint32_t byte_to_cp[256])
{
    uint32_t n = 0;
    for (int b = 0; b < 256; b++) {
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) byte_to_cp[b] = (uint32_t)b;
        else byte_to_cp[b] = 256 + n++;
    }
}

dpb_status tok_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) return dpb_error_set(DPB_E_IO, "%s: cannot open", path);
    gzbuffer(f, 1 << 17);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        gzclose(f);
        return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len == cap) {
            if (cap >= max_bytes) {
                free(buf);
                gzclose(f);
                return dpb_error_set(DPB_E_RANGE, "%s: larger than %zu bytes (after decompression)", path, max_bytes);
            }
            size_t nc = cap * 2 > max_bytes ? max_bytes : cap * 2;
            char *p = realloc(buf, nc + 1);
            if (!p) {
                free(buf);
                gzclose(f);
                return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
            }
            buf = p;
            cap = nc;
        }
        size_t want = cap - len;
        if (want > (1u << 30)) want = 1u << 30;
        int r = gzread(f, buf + len, (unsigned)want);
        if (r < 0) {
            int e;
            const char *m = gzerror(f, &e);
            dpb_status st = dpb_error_set(DPB_E_IO, "%s: read failed: %s", path, m ? m : "?");
            free(buf);
            gzclose(f);
            return st;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    gzclose(f);
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return DPB_OK;
}

/* Converts a byte-level vocab string (GPT-2 unicode alphabet) to raw bytes. */
static bool bl_decode(const uint8_t cp_to_byte_ok[512], const uint8_t cp_to_byte[512], const char *s, uint8_t *out,
                      size_t *out_len)
{
    size_t n = 0;
    const uint8_t *p = (const uint8_t *)s;
    while (*p) {
        uint32_t cp;
        if (p[0] < 0x80) {
            cp = p[0];
            p++;
        } else if ((p[0] & 0xE0) == 0xC0 && p[1]) {
            cp = ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
            p += 2;
        } else return false;
        if (cp >= 512 || !cp_to_byte_ok[cp]) return false;
        out[n++] = cp_to_byte[cp];
    }
    *out_len = n;
    return true;
}

typedef struct hf_ctx {
    dpb_tokenizer *t;
    const char *what;
    uint8_t cp_ok[512], cp_byte[512];
    uint8_t *buf;
    size_t cap;
} hf_ctx;

/* The vocabulary form of a string: raw bytes for byte-level, else UTF-8 as is. */
static dpb_status piece_bytes(hf_ctx *c, const char *s, const uint8_t **p, size_t *n)
{
    size_t sl = strlen(s);
    if (c->t->kind != TOK_BYTE_LEVEL) {
        *p = (const uint8_t *)s;
        *n = sl;
        return DPB_OK;
    }
    if (sl + 1 > c->cap) {
        size_t nc = sl + 64;
        uint8_t *q = realloc(c->buf, nc);
        if (!q) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", c->what);
        c->buf = q;
        c->cap = nc;
    }
    if (!bl_decode(c->cp_ok, c->cp_byte, s, c->buf, n))
        return dpb_error_set(DPB_E_FORMAT, "%s: model.vocab: token '%.60s' is not in the byte-level alphabet", c->what, s);
    *p = c->buf;
    return DPB_OK;
}

static bool type_is(const cJSON *o, const char *type)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) && strcmp(ty->valuestring, type) == 0;
}

static bool has_bytelevel(const cJSON *o)
{
    if (!cJSON_IsObject(o)) return false;
    if (type_is(o, "ByteLevel")) return true;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers");
    if (!a) a = cJSON_GetObjectItemCaseSensitive(o, "decoders");
    const cJSON *e;
    cJSON_ArrayForEach(e, a) if (has_bytelevel(e)) return true;
    return false;
}

static dpb_status parse_normalizer(hf_ctx *c, const cJSON *n)
{
    dpb_tokenizer *t = c->t;
    if (!n || cJSON_IsNull(n)) return DPB_OK;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(n, "type");
    if (!cJSON_IsString(ty)) return dpb_error_set(DPB_E_FORMAT, "%s: normalizer: missing \"type\"", c->what);
    const char *type = ty->valuestring;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "normalizers"))
        {
            dpb_status st = parse_normalizer(c, e);
            if (st) return st;
        }
        return DPB_OK;
    }
    if (strcmp(type, "NFC") == 0) {
        t->nfc = true;
        return DPB_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const cJSON *str = cJSON_GetObjectItemCaseSensitive(pat, "String");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(n, "content");
        if (cJSON_IsString(str) && cJSON_IsString(content) && strcmp(str->valuestring, " ") == 0 &&
            strcmp(content->valuestring, "\xE2\x96\x81") == 0) {
            t->space_to_meta = true;
            return DPB_OK;
        }
        return dpb_error_set(DPB_E_UNSUPPORTED, "%s: normalizer: only Replace(\" \" -> \"\\u2581\") is supported",
                             c->what);
    }
    if (strcmp(type, "Prepend") == 0) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(n, "prepend");
        if (cJSON_IsString(p) && strcmp(p->valuestring, "\xE2\x96\x81") == 0) {
            t->prepend_meta = true;
            return DPB_OK;
        }
        return dpb_error_set(DPB_E_UNSUPPORTED, "%s: normalizer: only Prepend(\"\\u2581\") is supported", c->what);
    }
    return dpb_error_set(DPB_E_UNSUPPORTED, "%s: normalizer type '%s' is not supported (NFC, Replace, Prepend, Sequence are)",
                         c->what, type);
}

static dpb_status parse_pretok(hf_ctx *c, const cJSON *p)
{
    dpb_tokenizer *t = c->t;
    if (!p || cJSON_IsNull(p)) return DPB_OK;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(p, "type");
    if (!cJSON_IsString(ty)) return dpb_error_set(DPB_E_FORMAT, "%s: pre_tokenizer: missing \"type\"", c->what);
    const char *type = ty->valuestring;
    dpb_status st;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"))
        {
            if ((st = parse_pretok(c, e))) return st;
        }
        return DPB_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        bool use_regex = true, prefix = false;
        if ((st = dpb_json_get_bool(p, "use_regex", c->what, DPB_JSON_OPTIONAL, true, &use_regex, NULL))) return st;
        if ((st = dpb_json_get_bool(p, "add_prefix_space", c->what, DPB_JSON_OPTIONAL, false, &prefix, NULL))) return st;
        t->bytelevel_prefix_space = prefix;
        if (use_regex) {
            if (t->re) return dpb_error_set(DPB_E_UNSUPPORTED, "%s: pre_tokenizer: more than one regex split", c->what);
            return tok_set_pattern(t, k_gpt2_pattern, c->what);
        }
        return DPB_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const char *beh = NULL;
        bool invert = false;
        if ((st = dpb_json_get_string(p, "behavior", c->what, DPB_JSON_OPTIONAL, "Isolated", &beh, NULL))) return st;
        if ((st = dpb_json_get_bool(p, "invert", c->what, DPB_JSON_OPTIONAL, false, &invert, NULL))) return st;
        if (strcmp(beh, "Isolated") != 0 || invert)
            return dpb_error_set(DPB_E_UNSUPPORTED,
                                 "%s: pre_tokenizer Split: behavior '%s'%s is not supported (Isolated is)", c->what, beh,
                                 invert ? " with invert" : "");
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *str = cJSON_GetObjectItemCaseSensitive(pat, "String");
        if (t->re) return dpb_error_set(DPB_E_UNSUPPORTED, "%s: pre_tokenizer: more than one regex split", c->what);
        if (cJSON_IsString(rx)) return tok_set_pattern(t, rx->valuestring, c->what);
        if (cJSON_IsString(str)) {
            size_t l = strlen(str->valuestring);
            if (l > 4096 || strstr(str->valuestring, "\\E"))
                return dpb_error_set(DPB_E_UNSUPPORTED, "%s: pre_tokenizer Split: string pattern not supported", c->what);
            char q[4200];
            snprintf(q, sizeof q, "\\Q%s\\E", str->valuestring);
            return tok_set_pattern(t, q, c->what);
        }
        return dpb_error_set(DPB_E_FORMAT, "%s: pre_tokenizer Split: missing pattern.Regex", c->what);
    }
    if (strcmp(type, "Metaspace") == 0) {
        const char *scheme = NULL;
        bool split = true, prefix = true, have_prefix = false;
        if ((st = dpb_json_get_string(p, "prepend_scheme", c->what, DPB_JSON_OPTIONAL, NULL, &scheme, NULL))) return st;
        if ((st = dpb_json_get_bool(p, "split", c->what, DPB_JSON_OPTIONAL, true, &split, NULL))) return st;
        if ((st = dpb_json_get_bool(p, "add_prefix_space", c->what, DPB_JSON_OPTIONAL, true, &prefix, &have_prefix)))
            return st;
        t->space_to_meta = true;
        t->meta_split = split;
        if (scheme) {
            if (strcmp(scheme, "always") == 0) t->prepend_meta = true;
            else if (strcmp(scheme, "first") == 0) t->prepend_meta = t->prepend_first_only = true;
            else if (strcmp(scheme, "never") != 0)
                return dpb_error_set(DPB_E_UNSUPPORTED, "%s: Metaspace prepend_scheme '%s' is not supported", c->what,
                                     scheme);
        } else t->prepend_meta = prefix;
        return DPB_OK;
    }
    return dpb_error_set(DPB_E_UNSUPPORTED,
                         "%s: pre_tokenizer type '%s' is not supported (ByteLevel, Split, Metaspace, Sequence are)",
                         c->what, type);
}

static void parse_decoder(hf_ctx *c, const cJSON *d)
{
    if (!cJSON_IsObject(d)) return;
    if (type_is(d, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "decoders")) parse_decoder(c, e);
        return;
    }
    if (type_is(d, "Strip")) {
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        if (cJSON_IsNumber(start) && start->valuedouble >= 1) c->t->strip_leading_space = true;
    }
    if (type_is(d, "Metaspace")) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(d, "prepend_scheme");
        if (!cJSON_IsString(s) || strcmp(s->valuestring, "never") != 0) c->t->strip_leading_space = true;
    }
}

static dpb_status load_model(hf_ctx *c, const cJSON *root)
{
    dpb_tokenizer *t = c->t;
    const char *what = c->what;
    dpb_status st;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return dpb_error_set(DPB_E_FORMAT, "%s: missing \"model\" object", what);
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (cJSON_IsString(ty) && strcmp(ty->valuestring, "BPE") != 0)
        return dpb_error_set(DPB_E_UNSUPPORTED, "%s: model.type '%s' is not supported (only BPE tokenizers are)", what,
                             ty->valuestring);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab)) return dpb_error_set(DPB_E_FORMAT, "%s: model.vocab missing or not an object", what);
    if (!cJSON_IsArray(merges)) return dpb_error_set(DPB_E_FORMAT, "%s: model.merges missing or not an array", what);
    const char *s;
    if ((st = dpb_json_get_string(model, "continuing_subword_prefix", what, DPB_JSON_OPTIONAL, NULL, &s, NULL))) return st;
    if (s && *s) return dpb_error_set(DPB_E_UNSUPPORTED, "%s: model.continuing_subword_prefix is not supported", what);
    if ((st = dpb_json_get_string(model, "end_of_word_suffix", what, DPB_JSON_OPTIONAL, NULL, &s, NULL))) return st;
    if (s && *s) return dpb_error_set(DPB_E_UNSUPPORTED, "%s: model.end_of_word_suffix is not supported", what);
    if ((st = dpb_json_get_bool(model, "byte_fallback", what, DPB_JSON_OPTIONAL, false, &t->byte_fallback, NULL))) return st;
    if ((st = dpb_json_get_bool(model, "fuse_unk", what, DPB_JSON_OPTIONAL, false, &t->fuse_unk, NULL))) return st;
    if ((st = dpb_json_get_bool(model, "ignore_merges", what, DPB_JSON_OPTIONAL, false, &t->ignore_merges, NULL))) return st;

    /* vocabulary */
    size_t nv = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab)
    {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= (1 << 26) ||
            e->valuedouble != (double)(int32_t)e->valuedouble)
            return dpb_error_set(DPB_E_FORMAT, "%s: model.vocab['%.60s']: id must be a whole number in [0, 2^26)", what,
                                 e->string ? e->string : "");
        const uint8_t *p;
        size_t n;
        if ((st = piece_bytes(c, e->string, &p, &n))) return st;
        if ((st = tok_set_token(t, (int32_t)e->valuedouble, p, n, 0, "model.vocab"))) return dpb_error_prefix(st, "%s", what);
        nv++;
    }
    if (nv == 0) return dpb_error_set(DPB_E_FORMAT, "%s: model.vocab is empty", what);
    if ((st = tok_build_vocab_index(t, what))) return st;
    /* unk */
    if ((st = dpb_json_get_string(model, "unk_token", what, DPB_JSON_OPTIONAL, NULL, &s, NULL))) return st;
    if (s) {
        const uint8_t *p;
        size_t n;
        if ((st = piece_bytes(c, s, &p, &n))) return st;
        t->unk_id = tok_lookup(t, p, n);
        if (t->unk_id < 0)
            return dpb_error_set(DPB_E_FORMAT, "%s: model.unk_token '%.60s' is not in the vocabulary", what, s);
        t->tok_flags[t->unk_id] |= TF_UNK;
    }
    /* merges */
    size_t nm = (size_t)cJSON_GetArraySize(merges);
    if ((st = tok_pairs_reserve(t, nm))) return st;
    uint32_t rank = 0;
    uint8_t *cat = NULL;
    size_t catcap = 0;
    cJSON_ArrayForEach(e, merges)
    {
        const char *a_s, *b_s;
        char *split = NULL;
        char tmp[512];
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            size_t l = strlen(e->valuestring);
            if (!sp || strchr(sp + 1, ' ') || l >= sizeof tmp) {
                free(cat);
                return dpb_error_set(DPB_E_FORMAT, "%s: model.merges[%u]: '%.60s' is not two tokens separated by a space",
                                     what, rank, e->valuestring);
            }
            memcpy(tmp, e->valuestring, l + 1);
            split = tmp + (sp - e->valuestring);
            *split = 0;
            a_s = tmp;
            b_s = split + 1;
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            a_s = e->child->valuestring;
            b_s = e->child->next->valuestring;
        } else {
            free(cat);
            return dpb_error_set(DPB_E_FORMAT, "%s: model.merges[%u]: expected \"a b\" or [\"a\", \"b\"]", what, rank);
        }
        const uint8_t *p;
        size_t na, nb;
        int32_t ia, ib, im;
        if ((st = piece_bytes(c, a_s, &p, &na))) break;
        ia = tok_lookup(t, p, na);
        if (catcap < na + 1) {
            catcap = (na + 1) * 2 + 64;
            uint8_t *q = realloc(cat, catcap);
            if (!q) {
                st = dpb_error_set(DPB_E_NOMEM, "%s: out of memory", what);
                break;
            }
            cat = q;
        }
        memcpy(cat, p, na);
        if ((st = piece_bytes(c, b_s, &p, &nb))) break;
        ib = tok_lookup(t, p, nb);
        if (catcap < na + nb) {
            catcap = (na + nb) * 2 + 64;
            uint8_t *q = realloc(cat, catcap);
            if (!q) {
                st = dpb_error_set(DPB_E_NOMEM, "%s: out of memory", what);
                break;
            }
            cat = q;
        }
        memcpy(cat + na, p, nb);
        im = tok_lookup(t, cat, na + nb);
        if (ia < 0 || ib < 0 || im < 0) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: model.merges[%u]: '%.60s' + '%.60s': %s is not in the vocabulary", what,
                               rank, a_s, b_s, ia < 0 ? "the left token" : ib < 0 ? "the right token" : "the merged token");
            break;
        }
        tok_pair_add(t, ia, ib, rank, im);
        rank++;
    }
    free(cat);
    return st;
}

static dpb_status load_added(hf_ctx *c, const cJSON *root)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!arr || cJSON_IsNull(arr)) return DPB_OK;
    if (!cJSON_IsArray(arr)) return dpb_error_set(DPB_E_FORMAT, "%s: added_tokens is not an array", c->what);
    const cJSON *e;
    size_t i = 0;
    cJSON_ArrayForEach(e, arr)
    {
        int64_t id;
        const char *content;
        bool special = false, lstrip = false, rstrip = false;
        char w[96];
        snprintf(w, sizeof w, "%s: added_tokens[%zu]", c->what, i);
        dpb_status st;
        if ((st = dpb_json_get_int(e, "id", w, DPB_JSON_REQUIRED, 0, (1 << 26) - 1, 0, &id, NULL))) return st;
        if ((st = dpb_json_get_string(e, "content", w, DPB_JSON_REQUIRED, NULL, &content, NULL))) return st;
        if ((st = dpb_json_get_bool(e, "special", w, DPB_JSON_OPTIONAL, false, &special, NULL))) return st;
        if ((st = dpb_json_get_bool(e, "lstrip", w, DPB_JSON_OPTIONAL, false, &lstrip, NULL))) return st;
        if ((st = dpb_json_get_bool(e, "rstrip", w, DPB_JSON_OPTIONAL, false, &rstrip, NULL))) return st;
        if ((st = tok_add_added(c->t, (int32_t)id, content, strlen(content), special, lstrip, rstrip, w))) return st;
        i++;
    }
    return DPB_OK;
}

dpb_status dpb_tokenizer_load_json_text(const char *text, size_t len, const char *what, dpb_tokenizer **out)
{
    *out = NULL;
    cJSON *root;
    dpb_status st = dpb_json_parse(text, len, what, &root);
    if (st) return st;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return dpb_error_set(DPB_E_FORMAT, "%s: not a JSON object", what);
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    bool bl = has_bytelevel(pre) || has_bytelevel(dec);
    hf_ctx c = {.what = what};
    if (!cJSON_IsObject(model)) {
        cJSON_Delete(root);
        return dpb_error_set(DPB_E_FORMAT, "%s: missing \"model\" object", what);
    }
    if ((st = tok_new(bl ? TOK_BYTE_LEVEL : TOK_SPM, &c.t))) {
        cJSON_Delete(root);
        return st;
    }
    uint32_t b2c[256];
    tok_bytelevel_tables(b2c);
    for (int b = 0; b < 256; b++) {
        c.cp_ok[b2c[b]] = 1;
        c.cp_byte[b2c[b]] = (uint8_t)b;
    }
    if (!(st = load_model(&c, root)) && !(st = load_added(&c, root)) &&
        !(st = parse_normalizer(&c, cJSON_GetObjectItemCaseSensitive(root, "normalizer"))) &&
        !(st = parse_pretok(&c, pre))) {
        parse_decoder(&c, dec);
        st = tok_finish(c.t, what);
    }
    free(c.buf);
    cJSON_Delete(root);
    if (st) {
        dpb_tokenizer_free(c.t);
        return st;
    }
    *out = c.t;
    return DPB_OK;
}

dpb_status dpb_tokenizer_load(const char *path, dpb_tokenizer **out)
{
    *out = NULL;
    size_t pl = strlen(path);
    if (pl >= 9 && strcmp(path + pl - 9, ".tiktoken") == 0) return dpb_tokenizer_load_tiktoken(path, NULL, out);
    char *text;
    size_t len;
    dpb_status st = tok_read_file(path, TOK_MAX_FILE, &text, &len);
    if (st) return st;
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) i++;
    if (i < len && text[i] == '{') st = dpb_tokenizer_load_json_text(text, len, path, out);
    else if (len > 0 && (uint8_t)text[0] == 0x0A) st = dpb_tokenizer_load_spm_bytes((const uint8_t *)text, len, path, out);
    else st = dpb_error_set(DPB_E_FORMAT, "%s: neither a tokenizer.json, a SentencePiece model nor a .tiktoken file", path);
    free(text);
    return st;
}
