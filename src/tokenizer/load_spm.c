/* SentencePiece tokenizer.model (protobuf, parsed by hand with bounds checks)
 * and tiktoken rank files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/checked.h"
#include "core/json.h"
#include "tokenizer/tok_internal.h"

static const char k_o200k_pattern[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

typedef struct pb {
    const uint8_t *p, *end;
    const char *what;
} pb;

static dpb_status pb_varint(pb *b, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return dpb_error_set(DPB_E_FORMAT, "%s: truncated varint", b->what);
        uint8_t c = *b->p++;
        r |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return DPB_OK;
        }
    }
    return dpb_error_set(DPB_E_FORMAT, "%s: varint longer than 10 bytes", b->what);
}

/* Reads a field key and, for length-delimited fields, the sub-buffer. */
typedef struct pb_field {
    uint32_t num, wt;
    uint64_t v;          /* varint / fixed value */
    const uint8_t *data; /* wire type 2 */
    size_t len;
} pb_field;

static dpb_status pb_next(pb *b, pb_field *f)
{
    uint64_t key;
    dpb_status st = pb_varint(b, &key);
    if (st) return st;
    f->num = (uint32_t)(key >> 3);
    f->wt = (uint32_t)(key & 7);
    switch (f->wt) {
    case 0: return pb_varint(b, &f->v);
    case 1:
        if (b->end - b->p < 8) return dpb_error_set(DPB_E_FORMAT, "%s: truncated fixed64 field %u", b->what, f->num);
        memcpy(&f->v, b->p, 8);
        b->p += 8;
        return DPB_OK;
    case 5: {
        if (b->end - b->p < 4) return dpb_error_set(DPB_E_FORMAT, "%s: truncated fixed32 field %u", b->what, f->num);
        uint32_t x;
        memcpy(&x, b->p, 4);
        f->v = x;
        b->p += 4;
        return DPB_OK;
    }
    case 2: {
        uint64_t l;
        if ((st = pb_varint(b, &l))) return st;
        if (l > (uint64_t)(b->end - b->p))
            return dpb_error_set(DPB_E_FORMAT, "%s: field %u length %llu runs past the end", b->what, f->num,
                                 (unsigned long long)l);
        f->data = b->p;
        f->len = (size_t)l;
        b->p += l;
        return DPB_OK;
    }
    default: return dpb_error_set(DPB_E_FORMAT, "%s: unsupported protobuf wire type %u (field %u)", b->what, f->wt, f->num);
    }
}

typedef struct spm_piece {
    const uint8_t *s;
    size_t len;
    float score;
    uint32_t type;
} spm_piece;

static const float *g_scores;
static int cmp_score(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (g_scores[x] > g_scores[y]) return -1;
    if (g_scores[x] < g_scores[y]) return 1;
    return x < y ? -1 : x > y;
}

dpb_status dpb_tokenizer_load_spm_bytes(const uint8_t *data, size_t len, const char *what, dpb_tokenizer **out)
{
    *out = NULL;
    pb b = {data, data + len, what};
    size_t n = 0, cap = 0;
    spm_piece *pcs = NULL;
    uint64_t model_type = 1; /* UNIGRAM is the protobuf default */
    bool byte_fallback = false, dummy = true, extra_ws = true, escape_ws = true;
    char norm_name[64] = "";
    dpb_status st = DPB_OK;
    while (b.p < b.end) {
        pb_field f;
        if ((st = pb_next(&b, &f))) goto fail;
        if (f.num == 1 && f.wt == 2) {
            pb s = {f.data, f.data + f.len, what};
            spm_piece pc = {NULL, 0, 0.0f, 1};
            bool have = false;
            while (s.p < s.end) {
                pb_field g;
                if ((st = pb_next(&s, &g))) goto fail;
                if (g.num == 1 && g.wt == 2) {
                    pc.s = g.data;
                    pc.len = g.len;
                    have = true;
                } else if (g.num == 2 && g.wt == 5) {
                    uint32_t x = (uint32_t)g.v;
                    memcpy(&pc.score, &x, 4);
                } else if (g.num == 3 && g.wt == 0) pc.type = (uint32_t)g.v;
            }
            if (!have) {
                st = dpb_error_set(DPB_E_FORMAT, "%s: piece %zu has no text", what, n);
                goto fail;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                if (cap > (1u << 24)) {
                    st = dpb_error_set(DPB_E_RANGE, "%s: too many pieces", what);
                    goto fail;
                }
                spm_piece *q = realloc(pcs, cap * sizeof *q);
                if (!q) {
                    st = dpb_error_set(DPB_E_NOMEM, "%s: out of memory", what);
                    goto fail;
                }
                pcs = q;
            }
            pcs[n++] = pc;
        } else if (f.num == 2 && f.wt == 2) {
            pb s = {f.data, f.data + f.len, what};
            while (s.p < s.end) {
                pb_field g;
                if ((st = pb_next(&s, &g))) goto fail;
                if (g.num == 3 && g.wt == 0) model_type = g.v;
                else if (g.num == 35 && g.wt == 0) byte_fallback = g.v != 0;
            }
        } else if (f.num == 3 && f.wt == 2) {
            pb s = {f.data, f.data + f.len, what};
            while (s.p < s.end) {
                pb_field g;
                if ((st = pb_next(&s, &g))) goto fail;
                if (g.num == 1 && g.wt == 2) snprintf(norm_name, sizeof norm_name, "%.*s", (int)g.len, (const char *)g.data);
                else if (g.num == 3 && g.wt == 0) dummy = g.v != 0;
                else if (g.num == 4 && g.wt == 0) extra_ws = g.v != 0;
                else if (g.num == 5 && g.wt == 0) escape_ws = g.v != 0;
            }
        }
    }
    if (n == 0) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: no pieces (not a SentencePiece model?)", what);
        goto fail;
    }
    if (model_type != 2) {
        st = dpb_error_set(DPB_E_UNSUPPORTED, "%s: SentencePiece model type %s is not supported (only BPE is)", what,
                           model_type == 1 ? "Unigram" : model_type == 3 ? "Word" : model_type == 4 ? "Char" : "unknown");
        goto fail;
    }
    if (norm_name[0] && strcmp(norm_name, "identity") != 0) {
        st = dpb_error_set(DPB_E_UNSUPPORTED, "%s: normalizer_spec.name '%s' is not supported (identity is)", what,
                           norm_name);
        goto fail;
    }
    dpb_tokenizer *t;
    if ((st = tok_new(TOK_SPM, &t))) goto fail;
    t->id_limit = (uint32_t)n + 1;
    t->byte_fallback = byte_fallback;
    t->space_to_meta = escape_ws;
    t->prepend_meta = dummy;
    t->prepend_first_only = true;
    t->remove_extra_ws = extra_ws;
    t->strip_leading_space = dummy;
    t->fuse_unk = true;
    for (size_t i = 0; i < n && !st; i++) {
        uint8_t fl = 0;
        if (pcs[i].type == 2) fl = TF_UNK;
        else if (pcs[i].type == 3 || pcs[i].type == 5) fl = TF_CONTROL | TF_SPECIAL;
        if (pcs[i].type == 4) st = tok_add_added(t, (int32_t)i, (const char *)pcs[i].s, pcs[i].len, false, false, false, what);
        else st = tok_set_token(t, (int32_t)i, pcs[i].s, pcs[i].len, fl, what);
        if (!st && pcs[i].type == 6 && !(t->tok_flags[i] & TF_BYTE))
            st = dpb_error_set(DPB_E_FORMAT, "%s: byte piece %zu is not of the form <0xNN>", what, i);
        if (!st && pcs[i].type == 2 && t->unk_id < 0) t->unk_id = (int32_t)i;
    }
    if (!st) st = tok_build_vocab_index(t, what);
    if (!st) {
        float *scores = malloc(n * sizeof *scores);
        uint32_t *order = malloc(n * sizeof *order), *rank = malloc(n * sizeof *rank);
        if (!scores || !order || !rank) st = dpb_error_set(DPB_E_NOMEM, "%s: out of memory", what);
        else {
            for (size_t i = 0; i < n; i++) {
                scores[i] = pcs[i].score != pcs[i].score ? -1e30f : pcs[i].score;
                order[i] = (uint32_t)i;
            }
            g_scores = scores;
            qsort(order, n, sizeof *order, cmp_score);
            uint32_t r = 0;
            for (size_t i = 0; i < n; i++) {
                if (i > 0 && scores[order[i]] != scores[order[i - 1]]) r = (uint32_t)i;
                rank[order[i]] = r;
            }
            st = tok_pairs_from_vocab(t, rank, true);
        }
        free(scores);
        free(order);
        free(rank);
    }
    if (!st) st = tok_finish(t, what);
    free(pcs);
    if (st) {
        dpb_tokenizer_free(t);
        return st;
    }
    *out = t;
    return DPB_OK;
fail:
    free(pcs);
    return st;
}

static int b64v(uint8_t c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

dpb_status dpb_tokenizer_load_tiktoken(const char *path, const char *specials_path, dpb_tokenizer **out)
{
    *out = NULL;
    char *text;
    size_t len;
    dpb_status st = tok_read_file(path, TOK_MAX_FILE, &text, &len);
    if (st) return st;
    dpb_tokenizer *t;
    if ((st = tok_new(TOK_BYTE_LEVEL, &t))) {
        free(text);
        return st;
    }
    t->ignore_merges = true;
    {
        size_t lines = 0;
        for (size_t k = 0; k < len; k++) lines += text[k] == '\n';
        t->id_limit = (uint32_t)(lines * 2 + 65536 < (1u << 26) ? lines * 2 + 65536 : (1u << 26));
    }
    uint8_t dec[1024];
    size_t line = 0, i = 0;
    while (i < len && !st) {
        line++;
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        size_t sp = i;
        while (sp < e && text[sp] != ' ') sp++;
        if (e == i || (e == i + 1 && text[i] == '\r')) {
            i = e + 1;
            continue;
        }
        if (sp == e || sp == i) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: line %zu: expected '<base64> <rank>'", path, line);
            break;
        }
        /* base64 */
        size_t n = 0;
        uint32_t acc = 0;
        int bits = 0;
        for (size_t k = i; k < sp; k++) {
            uint8_t c = (uint8_t)text[k];
            if (c == '=') break;
            int v = b64v(c);
            if (v < 0 || n >= sizeof dec) {
                st = dpb_error_set(DPB_E_FORMAT, "%s: line %zu: bad base64 token", path, line);
                break;
            }
            acc = (acc << 6) | (uint32_t)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                dec[n++] = (uint8_t)(acc >> bits);
            }
        }
        if (st) break;
        char *endp;
        long long rank = strtoll(text + sp + 1, &endp, 10);
        if (endp == text + sp + 1 || rank < 0 || rank >= (1 << 26) || (*endp != '\n' && *endp != '\r' && *endp != 0)) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: line %zu: bad rank", path, line);
            break;
        }
        st = tok_set_token(t, (int32_t)rank, dec, n, 0, path);
        i = e + 1;
    }
    free(text);
    if (!st) st = tok_build_vocab_index(t, path);
    if (!st) {
        uint32_t *rank = malloc((size_t)t->n_ids * sizeof *rank);
        if (!rank) st = dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
        else {
            for (uint32_t k = 0; k < t->n_ids; k++) rank[k] = k;
            st = tok_pairs_from_vocab(t, rank, false);
            free(rank);
        }
    }
    const char *pattern = k_o200k_pattern;
    cJSON *spec = NULL;
    if (!st && specials_path) {
        st = dpb_json_load(specials_path, 16u << 20, &spec);
        if (!st) {
            const cJSON *pat = cJSON_GetObjectItemCaseSensitive(spec, "pat_str");
            if (cJSON_IsString(pat)) pattern = pat->valuestring;
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(spec, "special_tokens"), *e;
            if (sp && !cJSON_IsObject(sp))
                st = dpb_error_set(DPB_E_FORMAT, "%s: special_tokens must be an object", specials_path);
            cJSON_ArrayForEach(e, sp)
            {
                int64_t id;
                if ((st = dpb_json_item_int(e, specials_path, e->string, 0, (1 << 26) - 1, &id))) break;
                if ((st = tok_add_added(t, (int32_t)id, e->string, strlen(e->string), true, false, false, specials_path)))
                    break;
            }
        }
    }
    if (!st) st = tok_set_pattern(t, pattern, specials_path ? specials_path : path);
    cJSON_Delete(spec);
    if (!st) st = tok_finish(t, path);
    if (st) {
        dpb_tokenizer_free(t);
        return st;
    }
    *out = t;
    return DPB_OK;
}
