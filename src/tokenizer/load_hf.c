/* Hugging Face tokenizer.json (plain or gzip) for BPE models. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
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
    {
        /* gzip stores the uncompressed size (mod 2^32) in its last four bytes */
        FILE *raw = fopen(path, "rb");
        if (raw) {
            unsigned char hdr[2], tail[4];
            if (fread(hdr, 1, 2, raw) == 2 && hdr[0] == 0x1F && hdr[1] == 0x8B && fseek(raw, -4, SEEK_END) == 0 &&
                fread(tail, 1, 4, raw) == 4) {
                size_t isize = (size_t)tail[0] | (size_t)tail[1] << 8 | (size_t)tail[2] << 16 | (size_t)tail[3] << 24;
                if (isize + 1 > cap && isize + 1 <= max_bytes) cap = isize + 1;
            } else if (fseek(raw, 0, SEEK_END) == 0) {
                long sz = ftell(raw);
                if (sz > 0 && (size_t)sz + 1 > cap && (size_t)sz + 1 <= max_bytes) cap = (size_t)sz + 1;
            }
            fclose(raw);
        }
    }
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
        } else if ((p[0] & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80) {
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
        if (!dpb_utf8_valid((const uint8_t *)s, sl, NULL))
            return dpb_error_set(DPB_E_FORMAT, "%s: model: token '%.60s' is not valid UTF-8", c->what, s);
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

/* ---- a small scanner for the two large arrays (model.vocab, model.merges),
 * which would cost a cJSON node per entry; the rest goes through cJSON. */

typedef struct span {
    size_t b, e; /* [b, e) of the value in the text; e == 0 when absent */
} span;

static size_t skip_ws(const char *t, size_t i, size_t n)
{
    while (i < n && (t[i] == ' ' || t[i] == '\n' || t[i] == '\r' || t[i] == '\t')) i++;
    return i;
}

/* Skips a JSON string starting at t[i] == '"'; returns the index after it or 0. */
static size_t skip_string(const char *t, size_t i, size_t n)
{
    for (i++; i < n;) {
        const char *q = memchr(t + i, '"', n - i);
        if (!q) return 0;
        size_t k = (size_t)(q - t);
        size_t bs = 0;
        while (k - bs > i && t[k - bs - 1] == '\\') bs++;
        if (bs % 2 == 0) return k + 1;
        i = k + 1;
    }
    return 0;
}

/* Skips any JSON value (depth-limited); returns the index after it or 0. */
static size_t skip_value(const char *t, size_t i, size_t n, int depth)
{
    if (i >= n || depth > 512) return 0;
    if (t[i] == '"') return skip_string(t, i, n);
    if (t[i] == '{' || t[i] == '[') {
        char close = t[i] == '{' ? '}' : ']';
        i = skip_ws(t, i + 1, n);
        if (i < n && t[i] == close) return i + 1;
        for (;;) {
            if (close == '}') {
                if (i >= n || t[i] != '"') return 0;
                i = skip_string(t, i, n);
                if (!i) return 0;
                i = skip_ws(t, i, n);
                if (i >= n || t[i] != ':') return 0;
                i = skip_ws(t, i + 1, n);
            }
            i = skip_value(t, i, n, depth + 1);
            if (!i) return 0;
            i = skip_ws(t, i, n);
            if (i < n && t[i] == ',') {
                i = skip_ws(t, i + 1, n);
                continue;
            }
            if (i < n && t[i] == close) return i + 1;
            return 0;
        }
    }
    size_t s = i;
    while (i < n && t[i] != ',' && t[i] != '}' && t[i] != ']' && t[i] != ' ' && t[i] != '\n' && t[i] != '\r' &&
           t[i] != '\t')
        i++;
    return i > s ? i : 0;
}

static bool key_is(const char *t, size_t b, size_t e, const char *key)
{
    size_t l = strlen(key);
    return e - b == l + 2 && memcmp(t + b + 1, key, l) == 0;
}

/* Finds model.vocab and model.merges. */
static void find_spans(const char *t, size_t n, span *vocab, span *merges)
{
    memset(vocab, 0, sizeof *vocab);
    memset(merges, 0, sizeof *merges);
    size_t i = skip_ws(t, 0, n);
    if (i >= n || t[i] != '{') return;
    i = skip_ws(t, i + 1, n);
    while (i < n && t[i] == '"') {
        size_t kb = i, ke = skip_string(t, i, n);
        if (!ke) return;
        i = skip_ws(t, ke, n);
        if (i >= n || t[i] != ':') return;
        i = skip_ws(t, i + 1, n);
        if (key_is(t, kb, ke, "model") && i < n && t[i] == '{') {
            size_t j = skip_ws(t, i + 1, n);
            while (j < n && t[j] == '"') {
                size_t mb = j, me = skip_string(t, j, n);
                if (!me) return;
                j = skip_ws(t, me, n);
                if (j >= n || t[j] != ':') return;
                j = skip_ws(t, j + 1, n);
                size_t ve = skip_value(t, j, n, 0);
                if (!ve) return;
                if (key_is(t, mb, me, "vocab") && !vocab->e) *vocab = (span){j, ve};
                if (key_is(t, mb, me, "merges") && !merges->e) *merges = (span){j, ve};
                j = skip_ws(t, ve, n);
                if (j < n && t[j] == ',') j = skip_ws(t, j + 1, n);
            }
        }
        size_t ve = skip_value(t, i, n, 0);
        if (!ve) return;
        i = skip_ws(t, ve, n);
        if (i < n && t[i] == ',') i = skip_ws(t, i + 1, n);
        else return;
    }
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the JSON string at t[*i] into c->sbuf (NUL-terminated); advances *i. */
typedef struct strbuf {
    char *p;
    size_t cap;
} strbuf;

static bool read_string(const char *t, size_t n, size_t *i, strbuf *sb, size_t *out_len)
{
    size_t k = *i;
    if (k >= n || t[k] != '"') return false;
    k++;
    size_t w = 0;
    for (;;) {
        if (w + 8 > sb->cap) {
            size_t nc = sb->cap ? sb->cap * 2 : 256;
            char *q = realloc(sb->p, nc);
            if (!q) return false;
            sb->p = q;
            sb->cap = nc;
        }
        if (k >= n) return false;
        unsigned char ch = (unsigned char)t[k];
        if (ch == '"') break;
        if (ch < 0x20) return false;
        if (ch != '\\') {
            sb->p[w++] = (char)ch;
            k++;
            continue;
        }
        if (k + 1 >= n) return false;
        char e = t[k + 1];
        k += 2;
        switch (e) {
        case '"': sb->p[w++] = '"'; break;
        case '\\': sb->p[w++] = '\\'; break;
        case '/': sb->p[w++] = '/'; break;
        case 'b': sb->p[w++] = '\b'; break;
        case 'f': sb->p[w++] = '\f'; break;
        case 'n': sb->p[w++] = '\n'; break;
        case 'r': sb->p[w++] = '\r'; break;
        case 't': sb->p[w++] = '\t'; break;
        case 'u': {
            uint32_t cp = 0;
            if (k + 4 > n) return false;
            for (int q = 0; q < 4; q++) {
                int h = hexv(t[k + q]);
                if (h < 0) return false;
                cp = cp * 16 + (uint32_t)h;
            }
            k += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (k + 6 > n || t[k] != '\\' || t[k + 1] != 'u') return false;
                uint32_t lo = 0;
                for (int q = 0; q < 4; q++) {
                    int h = hexv(t[k + 2 + q]);
                    if (h < 0) return false;
                    lo = lo * 16 + (uint32_t)h;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) return false;
                k += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
            if (cp == 0) return false; /* NUL inside a token name */
            if (cp < 0x80) sb->p[w++] = (char)cp;
            else if (cp < 0x800) {
                sb->p[w++] = (char)(0xC0 | (cp >> 6));
                sb->p[w++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                sb->p[w++] = (char)(0xE0 | (cp >> 12));
                sb->p[w++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                sb->p[w++] = (char)(0x80 | (cp & 0x3F));
            } else {
                sb->p[w++] = (char)(0xF0 | (cp >> 18));
                sb->p[w++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                sb->p[w++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                sb->p[w++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: return false;
        }
    }
    sb->p[w] = 0;
    *out_len = w;
    *i = k + 1;
    return true;
}

static dpb_status load_vocab_span(hf_ctx *c, const char *t, span sp)
{
    const char *what = c->what;
    size_t i = sp.b, n = sp.e, count = 0;
    strbuf sb = {0};
    dpb_status st = DPB_OK;
    if (t[i] != '{') return dpb_error_set(DPB_E_FORMAT, "%s: model.vocab is not an object", what);
    i = skip_ws(t, i + 1, n);
    if (i < n && t[i] == '}') return dpb_error_set(DPB_E_FORMAT, "%s: model.vocab is empty", what);
    for (;;) {
        size_t klen;
        size_t at = i;
        if (!read_string(t, n, &i, &sb, &klen)) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: model.vocab: bad token string at byte %zu", what, at);
            break;
        }
        if (strlen(sb.p) != klen) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: model.vocab: token with a NUL at byte %zu", what, at);
            break;
        }
        i = skip_ws(t, i, n);
        if (i >= n || t[i] != ':') {
            st = dpb_error_set(DPB_E_FORMAT, "%s: model.vocab: expected ':' at byte %zu", what, i);
            break;
        }
        i = skip_ws(t, i + 1, n);
        long long id = 0;
        size_t d = i;
        while (i < n && t[i] >= '0' && t[i] <= '9' && i - d < 9) id = id * 10 + (t[i++] - '0');
        if (i == d || (i < n && ((t[i] >= '0' && t[i] <= '9') || t[i] == '.' || t[i] == 'e' || t[i] == 'E')) ||
            id >= (1 << 26)) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: model.vocab['%.60s']: id must be a whole number in [0, 2^26)", what,
                               sb.p);
            break;
        }
        const uint8_t *p;
        size_t pn;
        if ((st = piece_bytes(c, sb.p, &p, &pn))) break;
        if ((st = tok_set_token(c->t, (int32_t)id, p, pn, 0, "model.vocab"))) {
            dpb_error_prefix(st, "%s", what);
            break;
        }
        count++;
        i = skip_ws(t, i, n);
        if (i < n && t[i] == ',') {
            i = skip_ws(t, i + 1, n);
            continue;
        }
        if (i < n && t[i] == '}') break;
        st = dpb_error_set(DPB_E_FORMAT, "%s: model.vocab: expected ',' or '}' at byte %zu", what, i);
        break;
    }
    free(sb.p);
    return st;
}

typedef struct merge_rec {
    uint32_t off;    /* into the byte buffer: left bytes then right bytes */
    uint32_t la, lb;
    int32_t ia, ib, im;
    uint32_t src;    /* byte offset in the file, for errors */
} merge_rec;

/* Merges are read in three steps: parse (one thread), resolve the three
 * vocabulary lookups per merge (OpenMP threads, read-only), insert in rank order. */
static dpb_status load_merges_span(hf_ctx *c, const char *t, span sp)
{
    dpb_tokenizer *tk = c->t;
    const char *what = c->what;
    size_t i = sp.b, n = sp.e;
    strbuf sa = {0}, sbb = {0};
    dpb_status st = DPB_OK;
    if (t[i] != '[') return dpb_error_set(DPB_E_FORMAT, "%s: model.merges is not an array", what);
    size_t quotes = 0;
    for (const char *q = t + i; (q = memchr(q, '"', (size_t)(t + n - q))); q++) quotes++;
    size_t maxm = quotes / 2 + 1;
    merge_rec *m = malloc(maxm * sizeof *m);
    size_t bcap = (n - i) + 64, blen = 0; /* byte-level strings only shrink when decoded */
    uint8_t *bytes = malloc(bcap);
    if (!m || !bytes) {
        free(m);
        free(bytes);
        return dpb_error_set(DPB_E_NOMEM, "%s: out of memory for %zu merges", what, maxm);
    }
    size_t nm = 0;
    i = skip_ws(t, i + 1, n);
    if (i < n && t[i] == ']') goto insert;
    for (;;) {
        size_t la, lb, at = i;
        const char *a_s, *b_s;
        if (nm >= maxm) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: model.merges: malformed at byte %zu", what, at);
            break;
        }
        if (i < n && t[i] == '"') {
            if (!read_string(t, n, &i, &sa, &la)) {
                st = dpb_error_set(DPB_E_FORMAT, "%s: model.merges[%zu]: bad string at byte %zu", what, nm, at);
                break;
            }
            char *spc = strchr(sa.p, ' ');
            if (!spc || strchr(spc + 1, ' ') || strlen(sa.p) != la) {
                st = dpb_error_set(DPB_E_FORMAT, "%s: model.merges[%zu]: '%.60s' is not two tokens separated by a space",
                                   what, nm, sa.p);
                break;
            }
            *spc = 0;
            a_s = sa.p;
            b_s = spc + 1;
        } else if (i < n && t[i] == '[') {
            i = skip_ws(t, i + 1, n);
            bool ok = read_string(t, n, &i, &sa, &la);
            if (ok) {
                i = skip_ws(t, i, n);
                ok = i < n && t[i] == ',';
            }
            if (ok) {
                i = skip_ws(t, i + 1, n);
                ok = read_string(t, n, &i, &sbb, &lb);
            }
            if (ok) {
                i = skip_ws(t, i, n);
                ok = i < n && t[i] == ']';
                i++;
            }
            if (ok) ok = strlen(sa.p) == la && strlen(sbb.p) == lb;
            if (!ok) {
                st = dpb_error_set(DPB_E_FORMAT, "%s: model.merges[%zu]: expected [\"a\", \"b\"] at byte %zu", what, nm, at);
                break;
            }
            a_s = sa.p;
            b_s = sbb.p;
        } else {
            st = dpb_error_set(DPB_E_FORMAT, "%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"] at byte %zu", what,
                               nm, at);
            break;
        }
        const uint8_t *p;
        size_t na, nb;
        if ((st = piece_bytes(c, a_s, &p, &na))) break;
        if (blen + na + 4 * strlen(b_s) + 8 > bcap || blen > UINT32_MAX - (1u << 20)) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: model.merges: malformed at byte %zu", what, at);
            break;
        }
        memcpy(bytes + blen, p, na);
        if ((st = piece_bytes(c, b_s, &p, &nb))) break;
        memcpy(bytes + blen + na, p, nb);
        m[nm] = (merge_rec){(uint32_t)blen, (uint32_t)na, (uint32_t)nb, -1, -1, -1, (uint32_t)at};
        blen += na + nb;
        nm++;
        i = skip_ws(t, i, n);
        if (i < n && t[i] == ',') {
            i = skip_ws(t, i + 1, n);
            continue;
        }
        if (i < n && t[i] == ']') break;
        st = dpb_error_set(DPB_E_FORMAT, "%s: model.merges: expected ',' or ']' at byte %zu", what, i);
        break;
    }
    free(sa.p);
    free(sbb.p);
    if (st) goto out;
    /* Files list merges roughly in the order of the tokens they make, so the merged
     * token is usually the previous merge's or the next id: try those before hashing. */
#pragma omp parallel if (nm > 20000)
    {
        size_t nt = (size_t)omp_get_num_threads(), me = (size_t)omp_get_thread_num();
        size_t k0 = nm * me / nt, k1 = nm * (me + 1) / nt;
        int32_t prev = -1;
        for (size_t k = k0; k < k1; k++) {
            merge_rec *r = &m[k];
            size_t lm = (size_t)r->la + r->lb;
            r->ia = tok_lookup(tk, bytes + r->off, r->la);
            r->ib = tok_lookup(tk, bytes + r->off + r->la, r->lb);
            r->im = -1;
            for (int32_t g = prev; g >= 0 && g <= prev + 1 && (uint32_t)g < tk->n_ids; g++)
                if ((tk->tok_flags[g] & TF_PRESENT) && tk->tok_len[g] == lm &&
                    memcmp(tk->arena + tk->tok_off[g], bytes + r->off, lm) == 0) {
                    r->im = g;
                    break;
                }
            if (r->im < 0) r->im = tok_lookup(tk, bytes + r->off, lm);
            prev = r->im;
        }
    }
insert:
    if ((st = tok_pairs_reserve(tk, nm))) goto out;
    for (size_t k = 0; k < nm; k++) {
        if (m[k].ia < 0 || m[k].ib < 0 || m[k].im < 0) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: model.merges[%zu] (byte %u): %s is not in the vocabulary", what, k,
                               m[k].src, m[k].ia < 0 ? "the left token" : m[k].ib < 0 ? "the right token" : "the merged token");
            break;
        }
        tok_pair_add(tk, m[k].ia, m[k].ib, (uint32_t)k, m[k].im);
    }
out:
    free(m);
    free(bytes);
    return st;
}

static dpb_status load_model(hf_ctx *c, const cJSON *root, const char *text, span vsp, span msp)
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
    if (!vsp.e) return dpb_error_set(DPB_E_FORMAT, "%s: model.vocab is missing", what);
    if (!msp.e) return dpb_error_set(DPB_E_FORMAT, "%s: model.merges is missing", what);
    const char *s;
    if ((st = dpb_json_get_string(model, "continuing_subword_prefix", what, DPB_JSON_OPTIONAL, NULL, &s, NULL))) return st;
    if (s && *s) return dpb_error_set(DPB_E_UNSUPPORTED, "%s: model.continuing_subword_prefix is not supported", what);
    if ((st = dpb_json_get_string(model, "end_of_word_suffix", what, DPB_JSON_OPTIONAL, NULL, &s, NULL))) return st;
    if (s && *s) return dpb_error_set(DPB_E_UNSUPPORTED, "%s: model.end_of_word_suffix is not supported", what);
    if ((st = dpb_json_get_bool(model, "byte_fallback", what, DPB_JSON_OPTIONAL, false, &t->byte_fallback, NULL))) return st;
    if ((st = dpb_json_get_bool(model, "fuse_unk", what, DPB_JSON_OPTIONAL, false, &t->fuse_unk, NULL))) return st;
    if ((st = dpb_json_get_bool(model, "ignore_merges", what, DPB_JSON_OPTIONAL, false, &t->ignore_merges, NULL))) return st;
    if ((st = load_vocab_span(c, text, vsp))) return st;
    if ((st = tok_build_vocab_index(t, what))) return st;
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
    return load_merges_span(c, text, msp);
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

/* UTF-8 check with an ASCII fast path (the large files are mostly ASCII). */
static bool utf8_ok(const char *text, size_t len, size_t *bad)
{
    size_t i = 0;
    while (i < len) {
        while (i + 8 <= len) {
            uint64_t v;
            memcpy(&v, text + i, 8);
            if (v & 0x8080808080808080ull) break;
            i += 8;
        }
        size_t e = i + 4096 < len ? i + 4096 : len;
        /* extend to a character boundary */
        while (e < len && ((uint8_t)text[e] & 0xC0) == 0x80) e++;
        size_t b;
        if (!dpb_utf8_valid((const uint8_t *)text + i, e - i, &b)) {
            *bad = i + b;
            return false;
        }
        i = e;
    }
    return true;
}

/* text must be writable: the two large values are blanked in place after they are read. */
static dpb_status load_json_mut(char *text, size_t len, const char *what, dpb_tokenizer **out)
{
    *out = NULL;
    size_t bad;
    span vsp, msp;
    find_spans(text, len, &vsp, &msp);
    /* cJSON gets the text with model.vocab and model.merges replaced by {} and []; they are
     * read by the scanner below from a saved copy of just those spans. */
    char *big = NULL;
    size_t vlen = vsp.e ? vsp.e - vsp.b : 0, mlen = msp.e ? msp.e - msp.b : 0;
    big = malloc(vlen + mlen + 1);
    if (!big) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", what);
    if (vlen) {
        memcpy(big, text + vsp.b, vlen);
        memset(text + vsp.b, ' ', vlen);
        text[vsp.b] = '{';
        text[vsp.b + 1] = '}';
    }
    if (mlen) {
        memcpy(big + vlen, text + msp.b, mlen);
        memset(text + msp.b, ' ', mlen);
        text[msp.b] = '[';
        text[msp.b + 1] = ']';
    }
    /* The rest is checked here; strings inside the two spans are checked one by one as they are read. */
    if (!utf8_ok(text, len, &bad)) {
        free(big);
        return dpb_error_set(DPB_E_FORMAT, "%s: not valid UTF-8 at byte %zu", what, bad);
    }
    span v2 = vlen ? (span){0, vlen} : (span){0, 0};
    span m2 = mlen ? (span){vlen, vlen + mlen} : (span){0, 0};
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    dpb_status st;
    if (!root) {
        free(big);
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        return dpb_error_set(DPB_E_FORMAT, "%s: invalid JSON at byte %zu", what, off);
    }
    if (!cJSON_IsObject(root)) {
        free(big);
        cJSON_Delete(root);
        return dpb_error_set(DPB_E_FORMAT, "%s: not a JSON object", what);
    }
    text = big; /* the scanner reads the saved spans */
    vsp = v2;
    msp = m2;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    bool bl = has_bytelevel(pre) || has_bytelevel(dec);
    hf_ctx c = {.what = what};
    if (!cJSON_IsObject(model)) {
        cJSON_Delete(root);
        free(big);
        return dpb_error_set(DPB_E_FORMAT, "%s: missing \"model\" object", what);
    }
    if ((st = tok_new(bl ? TOK_BYTE_LEVEL : TOK_SPM, &c.t))) {
        cJSON_Delete(root);
        free(big);
        return st;
    }
    {
        /* Ids may not run far beyond the number of entries: no allocation larger than the file justifies. */
        size_t entries = 0;
        for (size_t k = 0; k < vlen; k++) entries += big[k] == ':';
        entries += (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "added_tokens"));
        c.t->id_limit = (uint32_t)(entries * 2 + 65536 < (1u << 26) ? entries * 2 + 65536 : (1u << 26));
    }
    uint32_t b2c[256];
    tok_bytelevel_tables(b2c);
    for (int b = 0; b < 256; b++) {
        c.cp_ok[b2c[b]] = 1;
        c.cp_byte[b2c[b]] = (uint8_t)b;
    }
    if (!(st = load_model(&c, root, text, vsp, msp)) && !(st = load_added(&c, root)) &&
        !(st = parse_normalizer(&c, cJSON_GetObjectItemCaseSensitive(root, "normalizer"))) &&
        !(st = parse_pretok(&c, pre))) {
        parse_decoder(&c, dec);
        st = tok_finish(c.t, what);
    }
    free(c.buf);
    free(big);
    cJSON_Delete(root);
    if (st) {
        dpb_tokenizer_free(c.t);
        return st;
    }
    *out = c.t;
    return DPB_OK;
}

dpb_status dpb_tokenizer_load_json_text(const char *text, size_t len, const char *what, dpb_tokenizer **out)
{
    *out = NULL;
    char *copy = malloc(len + 1);
    if (!copy) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", what);
    memcpy(copy, text, len);
    copy[len] = 0;
    dpb_status st = load_json_mut(copy, len, what, out);
    free(copy);
    return st;
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
    if (i < len && text[i] == '{') st = load_json_mut(text, len, path, out);
    else if (len > 0 && (uint8_t)text[0] == 0x0A) st = dpb_tokenizer_load_spm_bytes((const uint8_t *)text, len, path, out);
    else st = dpb_error_set(DPB_E_FORMAT, "%s: neither a tokenizer.json, a SentencePiece model nor a .tiktoken file", path);
    free(text);
    return st;
}
