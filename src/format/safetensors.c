/* safetensors reader and writer.
 *
 * The header is parsed by a small strict JSON parser of our own (not cJSON,
 * whose numbers pass through double): integers are read digit by digit into
 * uint64 with overflow detection, strings are decoded with every JSON escape,
 * and the whole header must be UTF-8.  Parsing happens in two passes: a
 * generic syntax check (iterative, nesting limited to DPB_ST_MAX_DEPTH) so
 * that malformed JSON is always reported as such with its byte offset, then a
 * schema pass that builds the entries.  Neither pass recurses. */
#include "format/safetensors.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "core/checked.h"
#include "core/json.h"

#define DPB_ST_MAX_DEPTH 64

/* ---------------------------------------------------------------- messages */

/* Copies s (n bytes) into buf for an error message: control characters and
 * quotes escaped, long names cut with "...", always one line. */
static const char *printable(char *buf, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (k + 8 >= cap) {
            if (cap >= 4) memcpy(buf + (k < cap - 4 ? k : cap - 4), "...", 4);
            return buf;
        }
        if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\') k += (size_t)snprintf(buf + k, cap - k, "\\x%02x", c);
        else buf[k++] = (char)c;
    }
    buf[k] = 0;
    return buf;
}

#define NAMEBUF 160
#define PNAME(buf, s) printable(buf, sizeof buf, (s), strlen(s))

static void shape_text(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* ----------------------------------------------------------------- lexing */

typedef struct parser {
    const uint8_t *s;
    size_t n, i;
    const char *fname;
    size_t base; /* file offset of s[0], for messages */
    /* Decoded strings go here, one after another (pass 2).  A decoded string
     * plus its NUL is never longer than its quoted raw form, so an arena of
     * header length + 1 bytes holds them all. */
    char *arena;
    size_t arena_used, arena_cap;
} parser;

static void skip_ws(parser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static dpb_status syntax(parser *p, const char *what)
{
    return dpb_error_set(DPB_E_FORMAT, "%s: header is not valid JSON: %s at byte %zu", p->fname, what,
                         p->base + p->i);
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(parser *p, uint32_t *out)
{
    if (p->n - p->i < 4) return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(p->s[p->i + (size_t)k]);
        if (h < 0) return false;
        v = (v << 4) | (uint32_t)h;
    }
    p->i += 4;
    *out = v;
    return true;
}

/* Lexes a string starting at the opening quote.  With out != NULL, the
 * decoded UTF-8 (NUL-terminated, in the parser's arena) goes to *out and its
 * length to *out_len.  Decoded strings never hold NUL (a C string could not
 * carry it). */
static dpb_status lex_string(parser *p, char **out, size_t *out_len)
{
    if (p->i >= p->n || p->s[p->i] != '"') return syntax(p, "expected a string");
    size_t start = ++p->i;
    size_t raw_end = start;
    while (raw_end < p->n && p->s[raw_end] != '"') {
        if (p->s[raw_end] == '\\') raw_end++;
        raw_end++;
    }
    if (raw_end >= p->n) return syntax(p, "unterminated string");
    char *buf = NULL;
    size_t k = 0;
    if (out) {
        if (!p->arena || p->arena_cap - p->arena_used < raw_end - start + 1)
            return dpb_error_set(DPB_E_INTERNAL, "%s: string arena exhausted", p->fname);
        buf = p->arena + p->arena_used;
    }
    dpb_status st = DPB_OK;
    while (p->s[p->i] != '"') {
        uint8_t c = p->s[p->i];
        if (c < 0x20) { st = syntax(p, "control character in a string"); goto fail; }
        if (c != '\\') {
            if (buf) buf[k++] = (char)c;
            p->i++;
            continue;
        }
        p->i++;
        uint8_t e = p->s[p->i++];
        uint32_t cp;
        switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (!read_hex4(p, &cp)) { st = syntax(p, "bad \\u escape"); goto fail; }
            if (cp >= 0xDC00 && cp <= 0xDFFF) { st = syntax(p, "lone low surrogate in a \\u escape"); goto fail; }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
                    st = syntax(p, "high surrogate not followed by a low surrogate");
                    goto fail;
                }
                p->i += 2;
                if (!read_hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    st = syntax(p, "high surrogate not followed by a low surrogate");
                    goto fail;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0 && out) { st = syntax(p, "\\u0000 is not allowed in a name or value"); goto fail; }
            break;
        default:
            p->i--;
            st = syntax(p, "invalid escape in a string");
            goto fail;
        }
        if (!buf) continue;
        /* UTF-8 encoding of cp; 1 to 4 bytes, never more than the 2..12 raw bytes consumed. */
        if (cp < 0x80) buf[k++] = (char)cp;
        else if (cp < 0x800) {
            buf[k++] = (char)(0xC0 | (cp >> 6));
            buf[k++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            buf[k++] = (char)(0xE0 | (cp >> 12));
            buf[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            buf[k++] = (char)(0x80 | (cp & 0x3F));
        } else {
            buf[k++] = (char)(0xF0 | (cp >> 18));
            buf[k++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            buf[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            buf[k++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    p->i++; /* closing quote */
    if (buf) {
        buf[k] = 0;
        p->arena_used += k + 1;
        *out = buf;
        if (out_len) *out_len = k;
    }
    return DPB_OK;
fail:
    return st;
}

/* A JSON number token: its span and shape. */
typedef struct numtok {
    size_t start, end;
    bool negative, integer; /* integer: no fraction and no exponent */
} numtok;

static dpb_status lex_number(parser *p, numtok *t)
{
    t->start = p->i;
    t->negative = false;
    t->integer = true;
    if (p->i < p->n && p->s[p->i] == '-') {
        t->negative = true;
        p->i++;
    }
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return syntax(p, "malformed number");
    if (p->s[p->i] == '0') {
        p->i++;
        if (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') return syntax(p, "number with a leading zero");
    } else {
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && p->s[p->i] == '.') {
        t->integer = false;
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return syntax(p, "malformed number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        t->integer = false;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return syntax(p, "malformed number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    t->end = p->i;
    return DPB_OK;
}

static bool lex_literal(parser *p, const char *lit)
{
    size_t l = strlen(lit);
    if (p->n - p->i < l || memcmp(p->s + p->i, lit, l) != 0) return false;
    p->i += l;
    return true;
}

/* ------------------------------------------------------- pass 1: syntax */

/* Checks that s[0..n) is one JSON value followed only by whitespace, with
 * containers nested at most DPB_ST_MAX_DEPTH deep.  Iterative. */
static dpb_status check_syntax(parser *p)
{
    char stack[DPB_ST_MAX_DEPTH]; /* '{' or '[' */
    int depth = 0;
    dpb_status st;
    skip_ws(p);
    for (;;) {
        /* Expect a value. */
        skip_ws(p);
        if (p->i >= p->n) return syntax(p, "unexpected end");
        uint8_t c = p->s[p->i];
        if (c == '{' || c == '[') {
            if (depth == DPB_ST_MAX_DEPTH) return syntax(p, "nesting deeper than 64 levels");
            stack[depth++] = (char)c;
            p->i++;
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == (c == '{' ? '}' : ']')) {
                p->i++;
                depth--;
                goto after_value;
            }
            if (c == '{') goto object_key;
            continue;
        } else if (c == '"') {
            if ((st = lex_string(p, NULL, NULL))) return st;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            numtok t;
            if ((st = lex_number(p, &t))) return st;
        } else if (!lex_literal(p, "true") && !lex_literal(p, "false") && !lex_literal(p, "null")) {
            return syntax(p, "unexpected character");
        }
    after_value:
        for (;;) {
            skip_ws(p);
            if (depth == 0) {
                if (p->i != p->n) return syntax(p, "data after the JSON value");
                return DPB_OK;
            }
            if (p->i >= p->n) return syntax(p, "unexpected end");
            char top = stack[depth - 1];
            c = p->s[p->i];
            if (c == ',') {
                p->i++;
                if (top == '{') goto object_key;
                break; /* next array element */
            }
            if ((top == '{' && c == '}') || (top == '[' && c == ']')) {
                p->i++;
                depth--;
                continue;
            }
            return syntax(p, top == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
        continue;
    object_key:
        skip_ws(p);
        if ((st = lex_string(p, NULL, NULL))) return st;
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') return syntax(p, "expected ':'");
        p->i++;
    }
}

/* ------------------------------------------------------- pass 2: schema */

typedef struct schema {
    parser p;
    dpb_st_header *h;
    size_t cap, meta_cap;
} schema;

static dpb_status expect(parser *p, uint8_t c, const char *ctx)
{
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != c) {
        char what[64];
        snprintf(what, sizeof what, "expected '%c'%s", c, ctx);
        return syntax(p, what);
    }
    p->i++;
    return DPB_OK;
}

/* Reads an exact unsigned integer (shape dims, offsets). */
static dpb_status read_u64(parser *p, const char *tname, const char *field, uint64_t max, uint64_t *out)
{
    char nb[NAMEBUF];
    skip_ws(p);
    if (p->i >= p->n || !(p->s[p->i] == '-' || (p->s[p->i] >= '0' && p->s[p->i] <= '9')))
        return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': %s must hold integers", p->fname, PNAME(nb, tname),
                             field);
    numtok t;
    dpb_status st = lex_number(p, &t);
    if (st) return st;
    int tl = (int)(t.end - t.start > 40 ? 40 : t.end - t.start);
    const char *ts = (const char *)p->s + t.start;
    if (t.negative)
        return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': %s holds the negative number %.*s", p->fname,
                             PNAME(nb, tname), field, tl, ts);
    if (!t.integer)
        return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': %s holds %.*s, which is not an integer", p->fname,
                             PNAME(nb, tname), field, tl, ts);
    uint64_t v = 0;
    for (size_t k = t.start; k < t.end; k++) {
        if (!dpb_mul_u64(v, 10, &v) || !dpb_add_u64(v, (uint64_t)(p->s[k] - '0'), &v) || v > max)
            return dpb_error_set(DPB_E_RANGE, "%s: tensor '%s': %s holds %.*s%s, larger than %llu", p->fname,
                                 PNAME(nb, tname), field, tl, ts, t.end - t.start > 40 ? "..." : "",
                                 (unsigned long long)max);
    }
    *out = v;
    return DPB_OK;
}

static dpb_status parse_entry(schema *sc, dpb_st_entry *e)
{
    parser *p = &sc->p;
    char nb[NAMEBUF];
    const char *tn = e->name;
    dpb_status st;
    bool have_dtype = false, have_shape = false, have_off = false;
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != '{')
        return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': entry must be an object with dtype, shape and data_offsets",
                             p->fname, PNAME(nb, tn));
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        goto check;
    }
    for (;;) {
        char *key = NULL;
        size_t klen;
        skip_ws(p);
        if ((st = lex_string(p, &key, &klen))) return st;
        if ((st = expect(p, ':', " after a key"))) return st;
        skip_ws(p);
        if (strcmp(key, "dtype") == 0) {
            if (have_dtype)
                return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': field 'dtype' appears twice", p->fname,
                                     PNAME(nb, tn));
            have_dtype = true;
            if (p->i >= p->n || p->s[p->i] != '"')
                return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': field 'dtype' must be a string", p->fname,
                                     PNAME(nb, tn));
            char *dt;
            size_t dlen;
            if ((st = lex_string(p, &dt, &dlen))) return st;
            e->dtype = dpb_dtype_parse(dt, dlen);
            if (e->dtype == DPB_DT_INVALID) {
                char db[64];
                st = dpb_error_set(DPB_E_UNSUPPORTED, "%s: tensor '%s': unknown dtype '%s'", p->fname, PNAME(nb, tn),
                                   printable(db, sizeof db, dt, dlen));
                return st;
            }
        } else if (strcmp(key, "shape") == 0 || strcmp(key, "data_offsets") == 0) {
            bool is_shape = key[0] == 's';
            const char *field = is_shape ? "shape" : "data_offsets";
            if (is_shape ? have_shape : have_off)
                return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': field '%s' appears twice", p->fname,
                                     PNAME(nb, tn), field);
            if (is_shape) have_shape = true;
            else have_off = true;
            if (p->i >= p->n || p->s[p->i] != '[')
                return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': field '%s' must be a list of integers", p->fname,
                                     PNAME(nb, tn), field);
            p->i++;
            int count = 0;
            uint64_t off[2] = {0, 0};
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ']') p->i++;
            else {
                for (;;) {
                    int limit = is_shape ? DPB_MAX_DIMS : 2;
                    if (count == limit) {
                        if (is_shape)
                            return dpb_error_set(DPB_E_UNSUPPORTED,
                                                 "%s: tensor '%s': shape has more than %d dimensions", p->fname,
                                                 PNAME(nb, tn), DPB_MAX_DIMS);
                        return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': data_offsets must hold exactly 2 integers",
                                             p->fname, PNAME(nb, tn));
                    }
                    uint64_t v = 0;
                    if ((st = read_u64(p, tn, field, is_shape ? (uint64_t)INT64_MAX : UINT64_MAX, &v))) return st;
                    if (is_shape) e->shape[count] = (int64_t)v;
                    else off[count] = v;
                    count++;
                    skip_ws(p);
                    if (p->i < p->n && p->s[p->i] == ',') {
                        p->i++;
                        continue;
                    }
                    if ((st = expect(p, ']', " closing a list"))) return st;
                    break;
                }
            }
            if (is_shape) e->ndim = count;
            else {
                if (count != 2)
                    return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': data_offsets must hold exactly 2 integers, not %d",
                                         p->fname, PNAME(nb, tn), count);
                e->begin = off[0];
                e->end = off[1];
            }
        } else {
            char kb[64];
            st = dpb_error_set(DPB_E_FORMAT,
                               "%s: tensor '%s': unknown field '%s' (allowed: dtype, shape, data_offsets)", p->fname,
                               PNAME(nb, tn), printable(kb, sizeof kb, key, klen));
            return st;
        }
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if ((st = expect(p, '}', " closing a tensor entry"))) return st;
        break;
    }
check:
    if (!have_dtype || !have_shape || !have_off)
        return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': field '%s' is missing", p->fname, PNAME(nb, tn),
                             !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    /* Byte size from the shape, overflow-checked. */
    uint64_t bytes = dpb_dtype_size(e->dtype), nel = 1;
    char sb[200];
    bool overflow = false;
    for (int d = 0; d < e->ndim; d++) overflow |= !dpb_mul_u64(nel, (uint64_t)e->shape[d], &nel);
    overflow |= !dpb_mul_u64(nel, bytes, &bytes);
    if (overflow) {
        shape_text(sb, sizeof sb, e->ndim, e->shape);
        return dpb_error_set(DPB_E_RANGE, "%s: tensor '%s': shape %s of %s overflows 64 bits of bytes", p->fname,
                             PNAME(nb, tn), sb, dpb_dtype_name(e->dtype));
    }
    if (e->end < e->begin)
        return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                             p->fname, PNAME(nb, tn), (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end - e->begin != bytes) {
        shape_text(sb, sizeof sb, e->ndim, e->shape);
        return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but shape %s of %s needs %llu",
                             p->fname, PNAME(nb, tn), (unsigned long long)e->begin, (unsigned long long)e->end,
                             (unsigned long long)(e->end - e->begin), sb, dpb_dtype_name(e->dtype),
                             (unsigned long long)bytes);
    }
    return DPB_OK;
}

static int cmp_idx_str(const void *a, const void *b, void *ctx)
{
    char **names = ctx;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(names[x], names[y]);
    return c ? c : (x < y ? -1 : x > y);
}

/* Duplicate keys, found by sorting (n log n: a hostile header may hold
 * millions of keys).  The key order itself is kept. */
static dpb_status check_meta_duplicates(const char *fname, const dpb_st_header *h)
{
    if (h->meta_count < 2) return DPB_OK;
    size_t *order = malloc(h->meta_count * sizeof *order);
    if (!order) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", fname);
    for (size_t i = 0; i < h->meta_count; i++) order[i] = i;
    qsort_r(order, h->meta_count, sizeof *order, cmp_idx_str, h->meta_keys);
    dpb_status st = DPB_OK;
    for (size_t i = 1; i < h->meta_count && !st; i++) {
        if (strcmp(h->meta_keys[order[i - 1]], h->meta_keys[order[i]]) == 0) {
            char nb[NAMEBUF];
            st = dpb_error_set(DPB_E_FORMAT, "%s: __metadata__ key '%s' appears twice", fname,
                               PNAME(nb, h->meta_keys[order[i]]));
        }
    }
    free(order);
    return st;
}

static dpb_status parse_metadata(schema *sc, bool *seen)
{
    parser *p = &sc->p;
    dpb_st_header *h = sc->h;
    dpb_status st;
    if (*seen) return dpb_error_set(DPB_E_FORMAT, "%s: __metadata__ appears twice", p->fname);
    *seen = true;
    skip_ws(p);
    if (lex_literal(p, "null")) return DPB_OK;
    if (p->i >= p->n || p->s[p->i] != '{')
        return dpb_error_set(DPB_E_FORMAT, "%s: __metadata__ must be an object of strings", p->fname);
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return DPB_OK;
    }
    for (;;) {
        char *k = NULL, *v = NULL;
        size_t klen;
        char nb[NAMEBUF];
        skip_ws(p);
        if ((st = lex_string(p, &k, &klen))) return st;
        if ((st = expect(p, ':', " after a key"))) return st;
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != '"') {
            st = dpb_error_set(DPB_E_FORMAT, "%s: __metadata__ key '%s' must have a string value", p->fname,
                               printable(nb, sizeof nb, k, klen));
            return st;
        }
        if ((st = lex_string(p, &v, NULL))) return st;
        if (h->meta_count == sc->meta_cap) {
            size_t nc = sc->meta_cap ? sc->meta_cap * 2 : 8;
            char **nk = realloc(h->meta_keys, nc * sizeof *nk);
            if (nk) h->meta_keys = nk;
            char **nv = nk ? realloc(h->meta_values, nc * sizeof *nv) : NULL;
            if (nv) h->meta_values = nv;
            if (!nk || !nv) {
                return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", p->fname);
            }
            sc->meta_cap = nc;
        }
        h->meta_keys[h->meta_count] = k;
        h->meta_values[h->meta_count] = v;
        h->meta_count++;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if ((st = expect(p, '}', " closing __metadata__"))) return st;
        return check_meta_duplicates(p->fname, h);
    }
}

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp(((const dpb_st_entry *)a)->name, ((const dpb_st_entry *)b)->name);
}

static int cmp_entry_offset(const void *a, const void *b)
{
    const dpb_st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static dpb_status parse_schema(schema *sc)
{
    parser *p = &sc->p;
    dpb_st_header *h = sc->h;
    dpb_status st;
    bool meta_seen = false;
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != '{')
        return dpb_error_set(DPB_E_FORMAT, "%s: header must be a JSON object", p->fname);
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return DPB_OK;
    }
    for (;;) {
        char *name = NULL;
        size_t nlen;
        skip_ws(p);
        if ((st = lex_string(p, &name, &nlen))) return st;
        if ((st = expect(p, ':', " after a key"))) return st;
        if (strcmp(name, "__metadata__") == 0) {
            if ((st = parse_metadata(sc, &meta_seen))) return st;
        } else {
            if (h->count == sc->cap) {
                /* Growth follows the entries actually present, so memory stays
                 * proportional to the header's length. */
                size_t nc = sc->cap ? sc->cap * 2 : 16;
                dpb_st_entry *ne = realloc(h->entries, nc * sizeof *ne);
                if (!ne) {
                    return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", p->fname);
                }
                h->entries = ne;
                sc->cap = nc;
            }
            dpb_st_entry *e = &h->entries[h->count++];
            memset(e, 0, sizeof *e);
            e->name = name;
            if ((st = parse_entry(sc, e))) return st;
        }
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        return expect(p, '}', " closing the header");
    }
}

/* Sorted by name: duplicates.  Sorted by offset: contiguous from 0, no
 * overlap, and the last one ends where the data region ends. */
static dpb_status check_layout(const char *fname, dpb_st_header *h, uint64_t data_len)
{
    char nb[NAMEBUF], nb2[NAMEBUF];
    if (h->count > 1) {
        qsort(h->entries, h->count, sizeof *h->entries, cmp_entry_name);
        for (size_t i = 1; i < h->count; i++)
            if (strcmp(h->entries[i - 1].name, h->entries[i].name) == 0)
                return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s' appears twice in the header", fname,
                                     PNAME(nb, h->entries[i].name));
        qsort(h->entries, h->count, sizeof *h->entries, cmp_entry_offset);
    }
    uint64_t pos = 0;
    const dpb_st_entry *prev = NULL;
    for (size_t i = 0; i < h->count; i++) {
        const dpb_st_entry *e = &h->entries[i];
        if (e->begin != pos) {
            if (!prev)
                return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': data_offsets start at %llu, but the first tensor must start at 0",
                                     fname, PNAME(nb, e->name), (unsigned long long)e->begin);
            if (e->begin < pos)
                return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' [%llu, %llu]",
                                     fname, PNAME(nb, e->name), (unsigned long long)e->begin,
                                     (unsigned long long)e->end, PNAME(nb2, prev->name),
                                     (unsigned long long)prev->begin, (unsigned long long)prev->end);
            return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': data_offsets start at %llu, leaving a hole of %llu bytes after tensor '%s' (ends at %llu)",
                                 fname, PNAME(nb, e->name), (unsigned long long)e->begin,
                                 (unsigned long long)(e->begin - pos), PNAME(nb2, prev->name),
                                 (unsigned long long)pos);
        }
        if (e->end > data_len)
            return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the file (data region is %llu bytes)",
                                 fname, PNAME(nb, e->name), (unsigned long long)e->begin, (unsigned long long)e->end,
                                 (unsigned long long)data_len);
        pos = e->end;
        prev = e;
    }
    if (pos != data_len)
        return dpb_error_set(DPB_E_FORMAT, "%s: %llu trailing bytes after the last tensor (tensors end at %llu, data region is %llu bytes)",
                             fname, (unsigned long long)(data_len - pos), (unsigned long long)pos,
                             (unsigned long long)data_len);
    return DPB_OK;
}

dpb_status dpb_safetensors_parse(const uint8_t *file, uint64_t file_size, const char *fname, dpb_st_header *out)
{
    memset(out, 0, sizeof *out);
    if (!fname) fname = "safetensors";
    if (file_size < 8)
        return dpb_error_set(DPB_E_FORMAT, "%s: file is %llu bytes, too short for the 8-byte header length", fname,
                             (unsigned long long)file_size);
    uint64_t n = 0;
    for (int k = 7; k >= 0; k--) n = (n << 8) | file[k];
    if (n > DPB_ST_MAX_HEADER)
        return dpb_error_set(DPB_E_FORMAT, "%s: header length %llu is more than the %u bytes allowed", fname,
                             (unsigned long long)n, DPB_ST_MAX_HEADER);
    if (n > file_size - 8)
        return dpb_error_set(DPB_E_FORMAT, "%s: header length %llu runs past the end of the %llu-byte file", fname,
                             (unsigned long long)n, (unsigned long long)file_size);
    if (n < 2)
        return dpb_error_set(DPB_E_FORMAT, "%s: header length %llu is too short for a JSON object", fname,
                             (unsigned long long)n);
    const uint8_t *hdr = file + 8;
    size_t bad;
    if (!dpb_utf8_valid(hdr, (size_t)n, &bad))
        return dpb_error_set(DPB_E_FORMAT, "%s: header is not valid UTF-8 at byte %zu", fname, (size_t)8 + bad);
    if (hdr[0] != '{') return dpb_error_set(DPB_E_FORMAT, "%s: header does not start with '{'", fname);
    parser p = {hdr, (size_t)n, 0, fname, 8, NULL, 0, 0};
    dpb_status st = check_syntax(&p);
    if (st) return st;
    out->strings = malloc((size_t)n + 1);
    if (!out->strings) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory for a %llu-byte header", fname,
                                            (unsigned long long)n);
    schema sc = {{hdr, (size_t)n, 0, fname, 8, out->strings, 0, (size_t)n + 1}, out, 0, 0};
    st = parse_schema(&sc);
    if (!st) st = check_layout(fname, out, file_size - 8 - n);
    if (st) {
        dpb_st_header_free(out);
        return st;
    }
    out->data_offset = 8 + n;
    return DPB_OK;
}

void dpb_st_header_free(dpb_st_header *h)
{
    if (!h) return;
    free(h->entries);
    free(h->strings);
    free(h->meta_keys);
    free(h->meta_values);
    memset(h, 0, sizeof *h);
}

dpb_status dpb_safetensors_open(const char *path, dpb_safetensors_file *out)
{
    memset(out, 0, sizeof *out);
    dpb_status st = dpb_file_map_open(path, &out->map);
    if (st) return st;
    static const uint8_t empty[1];
    st = dpb_safetensors_parse(out->map.data ? out->map.data : empty, out->map.size, path, &out->hdr);
    if (st) dpb_file_map_close(&out->map);
    return st;
}

void dpb_safetensors_close(dpb_safetensors_file *f)
{
    if (!f) return;
    dpb_st_header_free(&f->hdr);
    dpb_file_map_close(&f->map);
}

const void *dpb_safetensors_data(const dpb_safetensors_file *f, const dpb_st_entry *e)
{
    return f->map.data + f->hdr.data_offset + e->begin;
}

/* ------------------------------------------------------------------ index */

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

dpb_status dpb_safetensors_index_parse(const char *text, size_t len, const char *fname, dpb_st_index *out)
{
    memset(out, 0, sizeof *out);
    if (!fname) fname = "model.safetensors.index.json";
    cJSON *root = NULL;
    dpb_status st = dpb_json_parse(text, len, fname, &root);
    if (st) return st;
    char nb[NAMEBUF], nb2[NAMEBUF];
    size_t *order = NULL;
    if (!cJSON_IsObject(root)) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: the top level must be a JSON object", fname);
        goto done;
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!wm) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: required field 'weight_map' is missing", fname);
        goto done;
    }
    if (!cJSON_IsObject(wm)) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: field 'weight_map' must be an object of tensor name -> shard file", fname);
        goto done;
    }
    size_t n = 0;
    for (const cJSON *it = wm->child; it; it = it->next) n++; /* bounded by len: each entry takes >= 5 bytes */
    if (n) {
        out->tensors = calloc(n, sizeof *out->tensors);
        out->shards = calloc(n, sizeof *out->shards);
        out->shard_files = calloc(n, sizeof *out->shard_files);
        order = malloc(n * sizeof *order);
        if (!out->tensors || !out->shards || !out->shard_files || !order) {
            st = dpb_error_set(DPB_E_NOMEM, "%s: out of memory", fname);
            goto done;
        }
    }
    for (const cJSON *it = wm->child; it; it = it->next) {
        const char *t = it->string ? it->string : "";
        if (!cJSON_IsString(it) || !it->valuestring) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: weight_map: tensor '%s' must map to a shard file name", fname,
                               PNAME(nb, t));
            goto done;
        }
        const char *s = it->valuestring;
        if (!*s || strchr(s, '/') || strchr(s, '\\') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: weight_map: tensor '%s': shard '%s' is not a plain file name", fname,
                               PNAME(nb, t), PNAME(nb2, s));
            goto done;
        }
        size_t i = out->count++;
        out->tensors[i] = strdup(t);
        out->shards[i] = strdup(s);
        if (!out->tensors[i] || !out->shards[i]) {
            st = dpb_error_set(DPB_E_NOMEM, "%s: out of memory", fname);
            goto done;
        }
    }
    /* Distinct shards in first-seen order, by sorting (ties by position, so
     * each group starts with its first occurrence). */
    for (size_t i = 0; i < out->count; i++) order[i] = i;
    if (out->count > 1) qsort_r(order, out->count, sizeof *order, cmp_idx_str, out->shards);
    {
        size_t m = 0;
        for (size_t i = 0; i < out->count; i++)
            if (i == 0 || strcmp(out->shards[order[i - 1]], out->shards[order[i]]) != 0) order[m++] = order[i];
        if (m > 1) qsort(order, m, sizeof *order, cmp_size);
        for (size_t i = 0; i < m; i++) {
            out->shard_files[i] = strdup(out->shards[order[i]]);
            if (!out->shard_files[i]) {
                st = dpb_error_set(DPB_E_NOMEM, "%s: out of memory", fname);
                goto done;
            }
            out->shard_count++;
        }
    }
    for (size_t i = 0; i < out->count; i++) order[i] = i;
    if (out->count > 1) qsort_r(order, out->count, sizeof *order, cmp_idx_str, out->tensors);
    for (size_t i = 1; i < out->count; i++) {
        if (strcmp(out->tensors[order[i - 1]], out->tensors[order[i]]) == 0) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: weight_map: tensor '%s' is listed twice", fname,
                               PNAME(nb, out->tensors[order[i]]));
            goto done;
        }
    }
done:
    free(order);
    cJSON_Delete(root);
    if (st) dpb_st_index_free(out);
    return st;
}

void dpb_st_index_free(dpb_st_index *ix)
{
    if (!ix) return;
    for (size_t i = 0; i < ix->count; i++) {
        free(ix->tensors[i]);
        free(ix->shards[i]);
    }
    free(ix->tensors);
    free(ix->shards);
    for (size_t i = 0; i < ix->shard_count; i++) free(ix->shard_files[i]);
    free(ix->shard_files);
    memset(ix, 0, sizeof *ix);
}

/* ----------------------------------------------------------------- writer */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"') sb_put(b, "\\\"", 2);
        else if (*c == '\\') sb_put(b, "\\\\", 2);
        else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            sb_put(b, esc, 6);
        } else sb_put(b, (const char *)c, 1);
    }
    sb_put(b, "\"", 1);
}

static int cmp_cstr_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static dpb_status header_build(const dpb_st_write_entry *e, size_t n, const char *const *meta_keys,
                               const char *const *meta_values, size_t meta_count, uint8_t **prefix,
                               size_t *prefix_len, uint64_t *offsets, uint64_t *total)
{
    *prefix = NULL;
    *prefix_len = 0;
    char nb[NAMEBUF];
    size_t bad;
    for (size_t i = 0; i < meta_count; i++) {
        if (!meta_keys[i] || !meta_values[i] ||
            !dpb_utf8_valid((const uint8_t *)meta_keys[i], strlen(meta_keys[i]), &bad) ||
            !dpb_utf8_valid((const uint8_t *)meta_values[i], strlen(meta_values[i]), &bad))
            return dpb_error_set(DPB_E_ARG, "safetensors writer: metadata entry %zu is not a UTF-8 string pair", i);
    }
    /* Names: present, UTF-8, not __metadata__, distinct. */
    const char **names = n ? malloc(n * sizeof *names) : NULL;
    if (n && !names) return dpb_error_set(DPB_E_NOMEM, "safetensors writer: out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!e[i].name || !dpb_utf8_valid((const uint8_t *)e[i].name, strlen(e[i].name), &bad) ||
            strcmp(e[i].name, "__metadata__") == 0) {
            free(names);
            return dpb_error_set(DPB_E_ARG, "safetensors writer: tensor %zu has an invalid name", i);
        }
        names[i] = e[i].name;
    }
    if (n > 1) qsort(names, n, sizeof *names, cmp_cstr_ptr);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            dpb_status st = dpb_error_set(DPB_E_ARG, "safetensors writer: tensor '%s' given twice", PNAME(nb, names[i]));
            free(names);
            return st;
        }
    }
    free(names);

    sbuf b = {0};
    sb_put(&b, "\0\0\0\0\0\0\0\0", 8);      /* length, filled in below */
    sb_puts(&b, "{");
    bool first = true;
    if (meta_count) {
        sb_puts(&b, "\"__metadata__\":{");
        for (size_t i = 0; i < meta_count; i++) {
            if (i) sb_puts(&b, ",");
            sb_json_string(&b, meta_keys[i]);
            sb_puts(&b, ":");
            sb_json_string(&b, meta_values[i]);
        }
        sb_puts(&b, "}");
        first = false;
    }
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        size_t es = dpb_dtype_size(e[i].dtype);
        if (!es || e[i].ndim < 0 || e[i].ndim > DPB_MAX_DIMS || (e[i].ndim && !e[i].shape)) {
            free(b.s);
            return dpb_error_set(DPB_E_ARG, "safetensors writer: tensor '%s': bad dtype or rank", PNAME(nb, e[i].name));
        }
        uint64_t bytes = es;
        for (int d = 0; d < e[i].ndim; d++) {
            if (e[i].shape[d] < 0 || !dpb_mul_u64(bytes, (uint64_t)e[i].shape[d], &bytes)) {
                free(b.s);
                return dpb_error_set(DPB_E_ARG, "safetensors writer: tensor '%s': negative or overflowing shape",
                                     PNAME(nb, e[i].name));
            }
        }
        uint64_t end;
        if (!dpb_add_u64(pos, bytes, &end)) {
            free(b.s);
            return dpb_error_set(DPB_E_RANGE, "safetensors writer: tensor '%s': total size overflows", PNAME(nb, e[i].name));
        }
        if (!first) sb_puts(&b, ",");
        first = false;
        sb_json_string(&b, e[i].name);
        char tmp[64];
        snprintf(tmp, sizeof tmp, ":{\"dtype\":\"%s\",\"shape\":[", dpb_dtype_name(e[i].dtype));
        sb_puts(&b, tmp);
        for (int d = 0; d < e[i].ndim; d++) {
            snprintf(tmp, sizeof tmp, "%s%lld", d ? "," : "", (long long)e[i].shape[d]);
            sb_puts(&b, tmp);
        }
        snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)pos, (unsigned long long)end);
        sb_puts(&b, tmp);
        if (offsets) offsets[i] = pos;
        pos = end;
    }
    sb_puts(&b, "}");
    while ((b.len - 8) % 8) sb_puts(&b, " ");
    if (b.oom) {
        free(b.s);
        return dpb_error_set(DPB_E_NOMEM, "safetensors writer: out of memory");
    }
    if (b.len - 8 > DPB_ST_MAX_HEADER) {
        free(b.s);
        return dpb_error_set(DPB_E_RANGE, "safetensors writer: header of %zu bytes exceeds %u", b.len - 8,
                             DPB_ST_MAX_HEADER);
    }
    uint64_t hl = b.len - 8;
    for (int k = 0; k < 8; k++) b.s[k] = (char)(hl >> (8 * k));
    *prefix = (uint8_t *)b.s;
    *prefix_len = b.len;
    if (total) *total = pos;
    return DPB_OK;
}

dpb_status dpb_safetensors_header_build(const dpb_st_write_entry *e, size_t n, const char *const *meta_keys,
                                        const char *const *meta_values, size_t meta_count, uint8_t **prefix,
                                        size_t *prefix_len, uint64_t *offsets)
{
    return header_build(e, n, meta_keys, meta_values, meta_count, prefix, prefix_len, offsets, NULL);
}

dpb_status dpb_safetensors_write(const char *path, const dpb_st_write_entry *e, const void *const *data, size_t n)
{
    uint8_t *prefix;
    size_t plen;
    uint64_t *offs = malloc((n ? n : 1) * sizeof *offs);
    if (!offs) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
    uint64_t total;
    dpb_status st = header_build(e, n, NULL, NULL, 0, &prefix, &plen, offs, &total);
    if (st) {
        free(offs);
        return dpb_error_prefix(st, "%s", path);
    }
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    FILE *f = NULL;
    if (tmp) {
        snprintf(tmp, tl, "%s.tmp%ld", path, (long)getpid());
        f = fopen(tmp, "wb");
    }
    if (!f) {
        st = tmp ? dpb_error_set(DPB_E_IO, "%s: cannot create: %s", tmp, strerror(errno))
                 : dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
        goto done;
    }
    bool bad = fwrite(prefix, 1, plen, f) != plen;
    for (size_t i = 0; i < n && !bad; i++) {
        uint64_t end = i + 1 < n ? offs[i + 1] : total;
        uint64_t sz = end - offs[i];
        if (sz && !data[i]) {
            bad = true;
            errno = EINVAL;
            break;
        }
        if (sz && fwrite(data[i], 1, (size_t)sz, f) != sz) bad = true;
    }
    bad |= fflush(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        st = dpb_error_set(DPB_E_IO, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
    }
done:
    free(tmp);
    free(prefix);
    free(offs);
    return st;
}
