/* Tokenizer core: vocabulary and merge tables, added-token splitting,
 * normalization, regex pre-tokenization, BPE and decoding. */
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "core/checked.h"
#include "core/json.h"

#define META_UTF8 "\xE2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space */

void dpb_tokens_free(dpb_tokens *t)
{
    if (!t) return;
    free(t->ids);
    t->ids = NULL;
    t->n = t->cap = 0;
}

static dpb_status tokens_push(dpb_tokens *t, int32_t id)
{
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 256;
        int32_t *p = realloc(t->ids, nc * sizeof *p);
        if (!p) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory for %zu ids", nc);
        t->ids = p;
        t->cap = nc;
    }
    t->ids[t->n++] = id;
    return DPB_OK;
}

static dpb_status tokens_reserve(dpb_tokens *t, size_t extra)
{
    if (t->n + extra <= t->cap) return DPB_OK;
    size_t nc = t->cap ? t->cap : 256;
    while (nc < t->n + extra) nc *= 2;
    int32_t *p = realloc(t->ids, nc * sizeof *p);
    if (!p) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory for %zu ids", nc);
    t->ids = p;
    t->cap = nc;
    return DPB_OK;
}

static inline uint64_t hash_bytes(const uint8_t *s, size_t n)
{
    uint64_t h = 0x243F6A8885A308D3ull ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)s[i] << (8 * i);
    h = (h ^ v) * 0x94D049BB133111EBull;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

static inline uint64_t hash_pair(uint64_t k)
{
    k *= 0x9E3779B97F4A7C15ull;
    k ^= k >> 32;
    return k;
}

dpb_status tok_new(int kind, dpb_tokenizer **out)
{
    dpb_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
    t->kind = kind;
    t->unk_id = -1;
    for (int i = 0; i < 256; i++) t->byte_ids[i] = -1;
    t->match_limit = 10000000;
    t->depth_limit = 10000;
    t->arena_cap = 65536;
    t->arena = malloc(t->arena_cap);
    if (!t->arena) {
        free(t);
        return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
    }
    *out = t;
    return DPB_OK;
}

void dpb_tokenizer_free(dpb_tokenizer *t)
{
    if (!t) return;
    free(t->tok_off);
    free(t->tok_len);
    free(t->tok_flags);
    free(t->tok_byte);
    free(t->arena);
    free(t->vt);
    free(t->pt);
    if (t->md) pcre2_match_data_free(t->md);
    if (t->mctx) pcre2_match_context_free(t->mctx);
    if (t->jstack) pcre2_jit_stack_free(t->jstack);
    if (t->re) pcre2_code_free(t->re);
    free(t->added);
    free(t->trie);
    free(t->cache);
    free(t->scratch);
    free(t);
}

static dpb_status grow_ids(dpb_tokenizer *t, uint32_t need)
{
    if (need <= t->n_ids) return DPB_OK;
    if (need > (1u << 26) || (t->id_limit && need > t->id_limit))
        return dpb_error_set(DPB_E_RANGE, "tokenizer: token id %u is too large for a vocabulary of this size (limit %u)",
                             need - 1, t->id_limit ? t->id_limit : 1u << 26);
    uint32_t nc = t->n_ids ? t->n_ids : 1024;
    while (nc < need) nc *= 2;
    uint32_t *o = realloc(t->tok_off, nc * sizeof *o);
    if (!o) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
    t->tok_off = o;
    uint32_t *l = realloc(t->tok_len, nc * sizeof *l);
    if (!l) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
    t->tok_len = l;
    uint8_t *f = realloc(t->tok_flags, nc);
    if (!f) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
    t->tok_flags = f;
    uint8_t *b = realloc(t->tok_byte, nc);
    if (!b) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
    t->tok_byte = b;
    memset(t->tok_flags + t->n_ids, 0, nc - t->n_ids);
    memset(t->tok_byte + t->n_ids, 0, nc - t->n_ids);
    memset(t->tok_len + t->n_ids, 0, (nc - t->n_ids) * sizeof *l);
    memset(t->tok_off + t->n_ids, 0, (nc - t->n_ids) * sizeof *o);
    t->n_ids = nc; /* trimmed in tok_finish */
    return DPB_OK;
}

static dpb_status arena_add(dpb_tokenizer *t, const uint8_t *s, size_t len, uint32_t *off)
{
    if (len > (1u << 20)) return dpb_error_set(DPB_E_RANGE, "tokenizer: a token of %zu bytes is too long", len);
    if (t->arena_len + len > UINT32_MAX) return dpb_error_set(DPB_E_RANGE, "tokenizer: vocabulary text too large");
    if (t->arena_len + len > t->arena_cap) {
        size_t nc = t->arena_cap ? t->arena_cap * 2 : 65536;
        while (nc < t->arena_len + len) nc *= 2;
        uint8_t *p = realloc(t->arena, nc);
        if (!p) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
        t->arena = p;
        t->arena_cap = nc;
    }
    if (len) memcpy(t->arena + t->arena_len, s, len);
    *off = (uint32_t)t->arena_len;
    t->arena_len += len;
    return DPB_OK;
}

dpb_status tok_set_token(dpb_tokenizer *t, int32_t id, const uint8_t *s, size_t len, uint8_t flags, const char *what)
{
    if (id < 0) return dpb_error_set(DPB_E_FORMAT, "%s: negative token id %d", what, id);
    if (len == 0) return dpb_error_set(DPB_E_FORMAT, "%s: token id %d is an empty string", what, id);
    dpb_status st = grow_ids(t, (uint32_t)id + 1);
    if (st) return st;
    if (t->tok_flags[id] & TF_PRESENT) {
        /* An added token may restate a vocabulary entry with the same text. */
        if ((flags & TF_ADDED) && t->tok_len[id] == len && memcmp(t->arena + t->tok_off[id], s, len) == 0) {
            t->tok_flags[id] |= flags;
            return DPB_OK;
        }
        return dpb_error_set(DPB_E_FORMAT, "%s: duplicate token id %d", what, id);
    }
    uint32_t off = 0;
    st = arena_add(t, s, len, &off);
    if (st) return st;
    t->tok_off[id] = off;
    t->tok_len[id] = (uint32_t)len;
    t->tok_flags[id] = flags | TF_PRESENT;
    /* <0xNN> byte tokens */
    if (t->kind == TOK_SPM && len == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>' && !(flags & TF_ADDED)) {
        unsigned v;
        char hex[3] = {(char)s[3], (char)s[4], 0};
        char *end;
        v = (unsigned)strtoul(hex, &end, 16);
        if (*end == 0 && ((s[3] >= '0' && s[3] <= '9') || (s[3] >= 'A' && s[3] <= 'F')) &&
            ((s[4] >= '0' && s[4] <= '9') || (s[4] >= 'A' && s[4] <= 'F'))) {
            t->tok_flags[id] |= TF_BYTE;
            t->tok_byte[id] = (uint8_t)v;
            if (t->byte_ids[v] < 0) t->byte_ids[v] = id;
        }
    }
    return DPB_OK;
}

static inline bool bytes_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
    if (n <= 16) {
        if (n >= 8) {
            uint64_t x, y, x2, y2;
            memcpy(&x, a, 8);
            memcpy(&y, b, 8);
            memcpy(&x2, a + n - 8, 8);
            memcpy(&y2, b + n - 8, 8);
            return x == y && x2 == y2;
        }
        for (size_t i = 0; i < n; i++)
            if (a[i] != b[i]) return false;
        return true;
    }
    return memcmp(a, b, n) == 0;
}

static inline int32_t lookup_h(const dpb_tokenizer *t, const uint8_t *s, size_t len, uint64_t hv)
{
    uint32_t tag = (uint32_t)(hv >> 32);
    size_t h = (size_t)hv & t->vt_mask;
    for (;;) {
        const struct vt_entry *e = &t->vt[h];
        if (!e->id1) return -1;
        if (e->tag == tag && e->len == len && bytes_eq(t->arena + e->off, s, len)) return (int32_t)(e->id1 - 1);
        h = (h + 1) & t->vt_mask;
    }
}

int32_t tok_lookup(const dpb_tokenizer *t, const uint8_t *s, size_t len)
{
    if (!t->vt) return -1;
    return lookup_h(t, s, len, hash_bytes(s, len));
}

dpb_status tok_build_vocab_index(dpb_tokenizer *t, const char *what)
{
    size_t n = 0;
    for (uint32_t i = 0; i < t->n_ids; i++)
        if ((t->tok_flags[i] & TF_PRESENT) && !(t->tok_flags[i] & TF_ADDED)) n++;
    size_t cap = 1024;
    while (cap < n * 2) cap *= 2;
    free(t->vt);
    t->vt = calloc(cap, sizeof *t->vt);
    if (!t->vt) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory for the vocabulary index", what);
    t->vt_mask = cap - 1;
    for (uint32_t i = 0; i < t->n_ids; i++) {
        if (!(t->tok_flags[i] & TF_PRESENT) || (t->tok_flags[i] & TF_ADDED)) continue;
        const uint8_t *s = t->arena + t->tok_off[i];
        size_t len = t->tok_len[i];
        uint64_t hv = hash_bytes(s, len);
        size_t h = (size_t)hv & t->vt_mask;
        for (;;) {
            struct vt_entry *e = &t->vt[h];
            if (!e->id1) {
                *e = (struct vt_entry){(uint32_t)(hv >> 32), i + 1, t->tok_off[i], (uint32_t)len};
                break;
            }
            uint32_t j = e->id1 - 1;
            if (e->len == len && memcmp(t->arena + e->off, s, len) == 0)
                return dpb_error_set(DPB_E_FORMAT, "%s: tokens %u and %u have the same text", what, j, i);
            h = (h + 1) & t->vt_mask;
        }
    }
    return DPB_OK;
}

dpb_status tok_pairs_reserve(dpb_tokenizer *t, size_t n)
{
    size_t cap = 1024;
    while (cap < n * 2 + 16) {
        if (cap > ((size_t)1 << 30)) return dpb_error_set(DPB_E_RANGE, "tokenizer: too many merges (%zu)", n);
        cap *= 2;
    }
    free(t->pt);
    t->pt = malloc(cap * 2 * sizeof *t->pt);
    if (!t->pt) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory for %zu merges", n);
    for (size_t i = 0; i < cap; i++) t->pt[2 * i] = UINT64_MAX;
    t->p_mask = cap - 1;
    t->p_count = 0;
    return DPB_OK;
}

void tok_pair_add(dpb_tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t merged)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t h = (size_t)hash_pair(key) & t->p_mask;
    for (;;) {
        uint64_t *slot = t->pt + 2 * h;
        if (slot[0] == UINT64_MAX) {
            slot[0] = key;
            slot[1] = ((uint64_t)rank << 32) | (uint32_t)merged;
            t->p_count++;
            return;
        }
        if (slot[0] == key) {
            if ((slot[1] >> 32) > rank) slot[1] = ((uint64_t)rank << 32) | (uint32_t)merged;
            return;
        }
        h = (h + 1) & t->p_mask;
    }
}

/* rank << 32 | merged id, or UINT64_MAX when the pair does not merge. */
static inline uint64_t pair_get(const dpb_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t h = (size_t)hash_pair(key) & t->p_mask;
    for (;;) {
        const uint64_t *slot = t->pt + 2 * h;
        if (slot[0] == key) return slot[1];
        if (slot[0] == UINT64_MAX) return UINT64_MAX;
        h = (h + 1) & t->p_mask;
    }
}

static inline size_t utf8_len(uint8_t c)
{
    if (c < 0x80) return 1;
    if (c < 0xE0) return 2;
    if (c < 0xF0) return 3;
    return 4;
}

dpb_status tok_pairs_from_vocab(dpb_tokenizer *t, const uint32_t *rank_of, bool utf8_splits)
{
    size_t n = 0;
    for (uint32_t i = 0; i < t->n_ids; i++)
        if ((t->tok_flags[i] & TF_PRESENT) && t->tok_len[i] > 1) n += 2;
    dpb_status st = tok_pairs_reserve(t, n + 1024);
    if (st) return st;
    for (uint32_t i = 0; i < t->n_ids; i++) {
        uint8_t f = t->tok_flags[i];
        if (!(f & TF_PRESENT) || (f & (TF_ADDED | TF_BYTE | TF_CONTROL | TF_UNK)) || t->tok_len[i] < 2) continue;
        const uint8_t *s = t->arena + t->tok_off[i];
        size_t len = t->tok_len[i];
        for (size_t k = 1; k < len; k++) {
            if (utf8_splits && (s[k] & 0xC0) == 0x80) continue;
            int32_t a = tok_lookup(t, s, k);
            if (a < 0) continue;
            int32_t b = tok_lookup(t, s + k, len - k);
            if (b < 0) continue;
            if (t->p_count * 2 + 16 > t->p_mask) {
                /* grow: rebuild */
                size_t oc = t->p_mask + 1;
                uint64_t *old = t->pt;
                t->pt = NULL;
                st = tok_pairs_reserve(t, oc);
                if (st) {
                    free(old);
                    return st;
                }
                for (size_t j = 0; j < oc; j++)
                    if (old[2 * j] != UINT64_MAX)
                        tok_pair_add(t, (int32_t)(old[2 * j] >> 32), (int32_t)(uint32_t)old[2 * j],
                                     (uint32_t)(old[2 * j + 1] >> 32), (int32_t)(uint32_t)old[2 * j + 1]);
                free(old);
            }
            tok_pair_add(t, a, b, rank_of[i], (int32_t)i);
        }
    }
    return DPB_OK;
}

dpb_status tok_add_added(dpb_tokenizer *t, int32_t id, const char *content, size_t len, bool special, bool lstrip,
                         bool rstrip, const char *what)
{
    if (len == 0) return dpb_error_set(DPB_E_FORMAT, "%s: added token %d has empty content", what, id);
    if (t->n_added % 64 == 0) {
        tok_added *p = realloc(t->added, (t->n_added + 64) * sizeof *p);
        if (!p) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", what);
        t->added = p;
    }
    dpb_status st = tok_set_token(t, id, (const uint8_t *)content, len,
                                  (uint8_t)(TF_ADDED | (special ? TF_SPECIAL : 0)), what);
    if (st) return st;
    tok_added *a = &t->added[t->n_added++];
    a->id = id;
    a->off = t->tok_off[id];
    a->len = (uint32_t)len;
    a->special = special;
    a->lstrip = lstrip;
    a->rstrip = rstrip;
    if (special) t->tok_flags[id] |= TF_SPECIAL;
    return DPB_OK;
}

static dpb_status trie_node_new(dpb_tokenizer *t, uint8_t byte, int32_t *out)
{
    if (t->n_trie == t->cap_trie) {
        size_t nc = t->cap_trie ? t->cap_trie * 2 : 256;
        trie_node *p = realloc(t->trie, nc * sizeof *p);
        if (!p) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
        t->trie = p;
        t->cap_trie = nc;
    }
    trie_node *n = &t->trie[t->n_trie];
    n->child = n->sibling = n->added = -1;
    n->byte = byte;
    *out = (int32_t)t->n_trie++;
    return DPB_OK;
}

static dpb_status build_trie(dpb_tokenizer *t)
{
    t->n_trie = 0;
    int32_t root;
    dpb_status st = trie_node_new(t, 0, &root);
    if (st) return st;
    memset(t->first_byte, 0, sizeof t->first_byte);
    for (size_t i = 0; i < t->n_added; i++) {
        const uint8_t *s = t->arena + t->added[i].off;
        size_t len = t->added[i].len;
        t->first_byte[s[0]] = true;
        int32_t cur = 0;
        for (size_t k = 0; k < len; k++) {
            int32_t c = t->trie[cur].child, found = -1;
            while (c >= 0) {
                if (t->trie[c].byte == s[k]) {
                    found = c;
                    break;
                }
                c = t->trie[c].sibling;
            }
            if (found < 0) {
                st = trie_node_new(t, s[k], &found);
                if (st) return st;
                t->trie[found].sibling = t->trie[cur].child;
                t->trie[cur].child = found;
            }
            cur = found;
        }
        if (t->trie[cur].added < 0) t->trie[cur].added = (int32_t)i;
    }
    return DPB_OK;
}

dpb_status tok_set_pattern(dpb_tokenizer *t, const char *pattern, const char *what)
{
    int err;
    PCRE2_SIZE eoff;
    if (t->re) {
        pcre2_code_free(t->re);
        t->re = NULL;
    }
    t->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                          &eoff, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return dpb_error_set(DPB_E_FORMAT, "%s: pre_tokenizer regex is invalid at offset %zu: %s", what, (size_t)eoff,
                             (const char *)msg);
    }
    t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
    if (!t->md) t->md = pcre2_match_data_create(2, NULL);
    if (!t->mctx) t->mctx = pcre2_match_context_create(NULL);
    if (!t->md || !t->mctx) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory for the regex", what);
    if (t->jit && !t->jstack) {
        t->jstack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
        if (t->jstack) pcre2_jit_stack_assign(t->mctx, NULL, t->jstack);
    }
    pcre2_set_match_limit(t->mctx, t->match_limit);
    pcre2_set_depth_limit(t->mctx, t->depth_limit);
    return DPB_OK;
}

void dpb_tokenizer_set_match_limits(dpb_tokenizer *t, uint32_t match_limit, uint32_t depth_limit)
{
    t->match_limit = match_limit;
    t->depth_limit = depth_limit;
    if (t->mctx) {
        pcre2_set_match_limit(t->mctx, match_limit);
        pcre2_set_depth_limit(t->mctx, depth_limit);
    }
}

dpb_status tok_finish(dpb_tokenizer *t, const char *what)
{
    /* trim n_ids to max present id + 1 */
    uint32_t n = t->n_ids;
    while (n > 0 && !(t->tok_flags[n - 1] & TF_PRESENT)) n--;
    t->n_ids = n;
    if (n == 0) return dpb_error_set(DPB_E_FORMAT, "%s: the vocabulary is empty", what);
    dpb_status st = build_trie(t);
    if (st) return st;
    if (t->kind == TOK_BYTE_LEVEL) {
        for (int b = 0; b < 256; b++) {
            uint8_t c = (uint8_t)b;
            t->byte_ids[b] = tok_lookup(t, &c, 1);
        }
    }
    if (t->kind == TOK_SPM) {
        t->spm_split_ok = true;
        for (uint32_t i = 0; i < n && t->spm_split_ok; i++) {
            if (!(t->tok_flags[i] & TF_PRESENT) || (t->tok_flags[i] & TF_ADDED)) continue;
            const uint8_t *p = t->arena + t->tok_off[i];
            size_t len = t->tok_len[i];
            for (size_t k = 1; k + 3 <= len; k++)
                if (p[k] == 0xE2 && p[k + 1] == 0x96 && p[k + 2] == 0x81 &&
                    !(k >= 3 && p[k - 3] == 0xE2 && p[k - 2] == 0x96 && p[k - 1] == 0x81)) {
                    t->spm_split_ok = false;
                    break;
                }
        }
    }
    /* 64K entries (4 MB) for real vocabularies, 1K for toy ones */
    size_t cn = (size_t)1 << (n >= 16384 ? TOK_CACHE_BITS : 10);
    t->cache_mask = cn - 1;
    t->cache = aligned_alloc(64, cn * sizeof *t->cache);
    if (t->cache) memset(t->cache, 0, cn * sizeof *t->cache);
    if (!t->cache) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", what);
    if (!t->pt) {
        st = tok_pairs_reserve(t, 0);
        if (st) return st;
    }
    size_t n_reg = 0;
    for (uint32_t i = 0; i < n; i++)
        if ((t->tok_flags[i] & TF_PRESENT) && !(t->tok_flags[i] & TF_ADDED)) n_reg++;
    snprintf(t->desc, sizeof t->desc, "%s BPE, %u ids (%zu in the vocabulary, %zu added), %zu merges%s%s",
             t->kind == TOK_BYTE_LEVEL ? "byte-level" : "SentencePiece-style", n, n_reg, t->n_added, t->p_count,
             t->re ? ", regex pre-tokenizer" : "", t->nfc ? ", NFC" : "");
    return DPB_OK;
}

size_t dpb_tokenizer_vocab_size(const dpb_tokenizer *t) { return t->n_ids; }
const char *dpb_tokenizer_describe(const dpb_tokenizer *t) { return t->desc; }

int32_t dpb_tokenizer_token_id(const dpb_tokenizer *t, const char *text)
{
    size_t len = strlen(text);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->arena + t->added[i].off, text, len) == 0) return t->added[i].id;
    return tok_lookup(t, (const uint8_t *)text, len);
}

/* ------------------------------------------------------------------ */
/* BPE                                                                  */

typedef struct bpe_work {
    int32_t *ids;
    int32_t *prev, *next;
    uint64_t *heap; /* rank << 32 | pos */
    size_t cap, hcap;
} bpe_work;

static _Thread_local bpe_work tl_work;

static dpb_status work_reserve(size_t n)
{
    bpe_work *w = &tl_work;
    if (n <= w->cap) return DPB_OK;
    size_t nc = w->cap ? w->cap : 256;
    while (nc < n) nc *= 2;
    int32_t *a = realloc(w->ids, nc * sizeof *a);
    if (!a) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
    w->ids = a;
    a = realloc(w->prev, nc * sizeof *a);
    if (!a) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
    w->prev = a;
    a = realloc(w->next, nc * sizeof *a);
    if (!a) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
    w->next = a;
    w->cap = nc;
    return DPB_OK;
}

static dpb_status heap_push(uint64_t **heap, size_t *n, size_t *cap, uint64_t v)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        uint64_t *p = realloc(*heap, nc * sizeof *p);
        if (!p) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
        *heap = p;
        *cap = nc;
    }
    uint64_t *h = *heap;
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
    return DPB_OK;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0];
    uint64_t last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= last) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

/* Merges the n symbols in tl_work.ids in place; returns the new count. */
static dpb_status bpe_merge(const dpb_tokenizer *t, size_t n, size_t *out_n)
{
    int32_t *ids = tl_work.ids;
    if (n < 2) {
        *out_n = n;
        return DPB_OK;
    }
    if (n <= 48) {
        /* Quadratic scan: fastest for ordinary words. */
        uint64_t r[48];
        for (size_t i = 0; i + 1 < n; i++) r[i] = pair_get(t, ids[i], ids[i + 1]);
        for (;;) {
            uint64_t best = UINT64_MAX;
            size_t bi = 0;
            for (size_t i = 0; i + 1 < n; i++)
                if ((r[i] >> 32) < (best >> 32)) {
                    best = r[i];
                    bi = i;
                }
            if (best == UINT64_MAX) break;
            ids[bi] = (int32_t)(uint32_t)best;
            memmove(ids + bi + 1, ids + bi + 2, (n - bi - 2) * sizeof *ids);
            memmove(r + bi + 1, r + bi + 2, (n - bi - 2) * sizeof *r);
            n--;
            if (bi > 0) r[bi - 1] = pair_get(t, ids[bi - 1], ids[bi]);
            if (bi + 1 < n) r[bi] = pair_get(t, ids[bi], ids[bi + 1]);
        }
        *out_n = n;
        return DPB_OK;
    }
    /* Heap over (rank, position) with a linked list of live symbols. */
    int32_t *prev = tl_work.prev, *next = tl_work.next;
    size_t hn = 0;
    dpb_status st;
    for (size_t i = 0; i < n; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        uint64_t v = pair_get(t, ids[i], ids[i + 1]);
        if (v != UINT64_MAX && (st = heap_push(&tl_work.heap, &hn, &tl_work.hcap, (v & 0xFFFFFFFF00000000ull) | i)))
            return st;
    }
    while (hn) {
        uint64_t top = heap_pop(tl_work.heap, &hn);
        uint32_t rank = (uint32_t)(top >> 32);
        int32_t pos = (int32_t)(uint32_t)top;
        if (ids[pos] < 0) continue; /* removed */
        int32_t nx = next[pos];
        if (nx < 0) continue;
        uint64_t v = pair_get(t, ids[pos], ids[nx]);
        if (v == UINT64_MAX || (uint32_t)(v >> 32) != rank) continue; /* stale */
        ids[pos] = (int32_t)(uint32_t)v;
        ids[nx] = -1;
        next[pos] = next[nx];
        if (next[nx] >= 0) prev[next[nx]] = pos;
        if (prev[pos] >= 0) {
            int32_t p = prev[pos];
            uint64_t w = pair_get(t, ids[p], ids[pos]);
            if (w != UINT64_MAX &&
                (st = heap_push(&tl_work.heap, &hn, &tl_work.hcap, (w & 0xFFFFFFFF00000000ull) | (uint32_t)p)))
                return st;
        }
        if (next[pos] >= 0) {
            uint64_t w = pair_get(t, ids[pos], ids[next[pos]]);
            if (w != UINT64_MAX &&
                (st = heap_push(&tl_work.heap, &hn, &tl_work.hcap, (w & 0xFFFFFFFF00000000ull) | (uint32_t)pos)))
                return st;
        }
    }
    size_t m = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) ids[m++] = ids[i];
    *out_n = m;
    return DPB_OK;
}

/* Encodes one pre-token (already normalized). */
static dpb_status encode_piece(dpb_tokenizer *t, const uint8_t *p, size_t len, dpb_tokens *out)
{
    if (len == 0) return DPB_OK;
    dpb_status st;
    cache_entry *ce = NULL;
    uint64_t h = hash_bytes(p, len);
    if (len <= TOK_CACHE_MAXKEY) {
        ce = &t->cache[h & t->cache_mask];
        if (ce->hash == h && ce->klen == len && ce->nids && bytes_eq(ce->key, p, len)) {
            if (out->n + ce->nids > out->cap && (st = tokens_reserve(out, ce->nids))) return st;
            memcpy(out->ids + out->n, ce->ids, (size_t)ce->nids * sizeof *ce->ids);
            out->n += ce->nids;
            return DPB_OK;
        }
    }
    if (t->ignore_merges) {
        int32_t id = lookup_h(t, p, len, h);
        if (id >= 0) {
            if (ce) {
                ce->hash = h;
                ce->klen = (uint8_t)len;
                ce->nids = 1;
                memcpy(ce->key, p, len);
                ce->ids[0] = id;
            }
            return tokens_push(out, id);
        }
    }
    if (len > ((size_t)1 << 28))
        return dpb_error_set(DPB_E_RANGE, "tokenizer: a pre-token of %zu bytes is longer than the 256 MiB limit", len);
    if ((st = work_reserve(len + 1))) return st;
    int32_t *ids = tl_work.ids;
    size_t n = 0;
    if (t->kind == TOK_BYTE_LEVEL) {
        for (size_t i = 0; i < len; i++) {
            int32_t id = t->byte_ids[p[i]];
            if (id < 0) {
                if (t->unk_id < 0)
                    return dpb_error_set(DPB_E_FORMAT, "tokenizer: byte 0x%02X has no token and there is no unk token",
                                         p[i]);
                id = t->unk_id;
            }
            ids[n++] = id;
        }
    } else {
        bool prev_unk = false;
        for (size_t i = 0; i < len;) {
            size_t cl = utf8_len(p[i]);
            if (cl > len - i) cl = len - i;
            int32_t id = tok_lookup(t, p + i, cl);
            if (id >= 0 && !(t->tok_flags[id] & (TF_CONTROL | TF_UNK))) {
                ids[n++] = id;
                prev_unk = false;
            } else if (t->byte_fallback && t->byte_ids[p[i]] >= 0) {
                for (size_t k = 0; k < cl; k++) {
                    int32_t b = t->byte_ids[p[i + k]];
                    if (b < 0) return dpb_error_set(DPB_E_FORMAT, "tokenizer: byte token <0x%02X> is missing", p[i + k]);
                    ids[n++] = b;
                }
                prev_unk = false;
            } else {
                if (t->unk_id < 0)
                    return dpb_error_set(DPB_E_FORMAT,
                                         "tokenizer: a character is not in the vocabulary and there is no unk token");
                if (!(prev_unk && t->fuse_unk)) ids[n++] = t->unk_id;
                prev_unk = true;
            }
            i += cl;
        }
    }
    size_t m;
    if ((st = bpe_merge(t, n, &m))) return st;
    ids = tl_work.ids;
    if (ce && m <= TOK_CACHE_MAXIDS) {
        ce->hash = h;
        ce->klen = (uint8_t)len;
        ce->nids = (uint8_t)m;
        memcpy(ce->key, p, len);
        memcpy(ce->ids, ids, m * sizeof *ids);
    }
    if ((st = tokens_reserve(out, m))) return st;
    memcpy(out->ids + out->n, ids, m * sizeof *ids);
    out->n += m;
    return DPB_OK;
}

static dpb_status scratch_reserve(dpb_tokenizer *t, size_t n)
{
    if (n <= t->scratch_cap) return DPB_OK;
    size_t nc = t->scratch_cap ? t->scratch_cap : 4096;
    while (nc < n) {
        if (nc > SIZE_MAX / 2) return dpb_error_set(DPB_E_NOMEM, "tokenizer: text too large");
        nc *= 2;
    }
    uint8_t *p = realloc(t->scratch, nc);
    if (!p) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory for %zu bytes", nc);
    t->scratch = p;
    t->scratch_cap = nc;
    return DPB_OK;
}

/* SentencePiece-style words: the text can be cut before a U+2581 that follows
 * another character when no token holds such a sequence (checked at load). */
static dpb_status encode_spm_text(dpb_tokenizer *t, const uint8_t *s, size_t len, dpb_tokens *out)
{
    if (!t->spm_split_ok && !t->meta_split) return encode_piece(t, s, len, out);
    size_t start = 0;
    for (size_t i = 1; i + 3 <= len;) {
        if (s[i] == 0xE2 && s[i + 1] == 0x96 && s[i + 2] == 0x81) {
            bool after_meta = i >= 3 && s[i - 3] == 0xE2 && s[i - 2] == 0x96 && s[i - 1] == 0x81;
            if (t->meta_split || !after_meta) {
                dpb_status st = encode_piece(t, s + start, i - start, out);
                if (st) return st;
                start = i;
            }
            i += 3;
        } else i++;
    }
    return encode_piece(t, s + start, len - start, out);
}

/* Encodes a segment between added tokens: normalize, pre-tokenize, BPE. */
static dpb_status encode_segment(dpb_tokenizer *t, const uint8_t *s, size_t len, bool text_start, dpb_tokens *out)
{
    if (len == 0) return DPB_OK;
    dpb_status st;
    uint8_t *nfc_buf = NULL;
    if (t->nfc) {
        /* Only characters from U+0300 up (lead bytes >= 0xCC) can change under NFC, and
         * composition never reaches back across an ASCII character, so only the runs
         * between ASCII characters that hold such bytes go through utf8proc. */
        size_t first = len;
        for (size_t i = 0; i < len; i++)
            if (s[i] >= 0xCC) {
                first = i;
                break;
            }
        if (first < len) {
            size_t cap = len + 64, n = 0, pos = 0;
            nfc_buf = malloc(cap);
            if (!nfc_buf) return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
            size_t hit = first;
            while (pos < len) {
                if (hit >= len) {
                    for (hit = pos; hit < len && s[hit] < 0xCC; hit++) {}
                }
                if (hit >= len) {
                    if (n + (len - pos) > cap) {
                        cap = n + (len - pos);
                        uint8_t *q = realloc(nfc_buf, cap);
                        if (!q) {
                            free(nfc_buf);
                            return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
                        }
                        nfc_buf = q;
                    }
                    memcpy(nfc_buf + n, s + pos, len - pos);
                    n += len - pos;
                    break;
                }
                size_t r0 = hit;
                while (r0 > pos && s[r0 - 1] >= 0x80) r0--;
                if (r0 > pos) r0--; /* the ASCII starter before the run */
                size_t r1 = hit;
                while (r1 < len && s[r1] >= 0x80) r1++;
                uint8_t *m = NULL;
                utf8proc_ssize_t r = utf8proc_map(s + r0, (utf8proc_ssize_t)(r1 - r0), &m, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
                if (r < 0) {
                    free(nfc_buf);
                    return dpb_error_set(DPB_E_FORMAT, "tokenizer: NFC normalization failed: %s", utf8proc_errmsg(r));
                }
                size_t need = n + (r0 - pos) + (size_t)r + (len - r1) + 64;
                if (need > cap) {
                    cap = need;
                    uint8_t *q = realloc(nfc_buf, cap);
                    if (!q) {
                        free(m);
                        free(nfc_buf);
                        return dpb_error_set(DPB_E_NOMEM, "tokenizer: out of memory");
                    }
                    nfc_buf = q;
                }
                memcpy(nfc_buf + n, s + pos, r0 - pos);
                n += r0 - pos;
                memcpy(nfc_buf + n, m, (size_t)r);
                n += (size_t)r;
                free(m);
                pos = r1;
                hit = len;
            }
            s = nfc_buf;
            len = n;
        }
    }
    if (t->kind == TOK_SPM) {
        /* spaces -> U+2581, optional prefix, optional whitespace cleanup */
        size_t cap;
        if (!dpb_mul_size(len, 3, &cap) || !dpb_add_size(cap, 8, &cap)) {
            free(nfc_buf);
            return dpb_error_set(DPB_E_RANGE, "tokenizer: text too large");
        }
        if ((st = scratch_reserve(t, cap))) {
            free(nfc_buf);
            return st;
        }
        uint8_t *d = t->scratch;
        size_t n = 0, b = 0, e = len;
        if (t->remove_extra_ws) {
            while (b < e && s[b] == ' ') b++;
            while (e > b && s[e - 1] == ' ') e--;
        }
        if (b == e) {
            free(nfc_buf);
            return DPB_OK;
        }
        if (t->prepend_meta && (!t->prepend_first_only || text_start)) {
            memcpy(d, META_UTF8, 3);
            n = 3;
        }
        for (size_t i = b; i < e; i++) {
            if (s[i] == ' ' && t->space_to_meta) {
                if (t->remove_extra_ws && i > b && s[i - 1] == ' ') continue;
                memcpy(d + n, META_UTF8, 3);
                n += 3;
            } else d[n++] = s[i];
        }
        free(nfc_buf);
        return encode_spm_text(t, d, n, out);
    }
    /* byte-level */
    const uint8_t *txt = s;
    size_t tlen = len;
    if (t->bytelevel_prefix_space && s[0] != ' ') {
        if ((st = scratch_reserve(t, len + 1))) {
            free(nfc_buf);
            return st;
        }
        t->scratch[0] = ' ';
        memcpy(t->scratch + 1, s, len);
        txt = t->scratch;
        tlen = len + 1;
    }
    if (!t->re) {
        st = encode_piece(t, txt, tlen, out);
        free(nfc_buf);
        return st;
    }
    size_t pos = 0, gap = 0;
    st = DPB_OK;
    while (pos <= tlen) {
        int rc = t->jit ? pcre2_jit_match(t->re, txt, tlen, pos, PCRE2_NO_UTF_CHECK, t->md, t->mctx)
                        : pcre2_match(t->re, txt, tlen, pos, PCRE2_NO_UTF_CHECK, t->md, t->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            st = dpb_error_set(DPB_E_RANGE, "tokenizer: pre_tokenizer regex failed at byte %zu: %s", pos,
                               (const char *)msg);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
        size_t m0 = ov[0], m1 = ov[1];
        if (m1 == m0) {
            /* empty match: step one character */
            if (m0 >= tlen) break;
            pos = m0 + utf8_len(txt[m0]);
            continue;
        }
        if (m0 > gap && (st = encode_piece(t, txt + gap, m0 - gap, out))) break;
        if ((st = encode_piece(t, txt + m0, m1 - m0, out))) break;
        gap = pos = m1;
    }
    if (!st && gap < tlen) st = encode_piece(t, txt + gap, tlen - gap, out);
    free(nfc_buf);
    return st;
}

static bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

dpb_status dpb_tokenizer_encode(dpb_tokenizer *t, const char *text, size_t len, unsigned flags, dpb_tokens *out)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t bad;
    if (!dpb_utf8_valid(s, len, &bad))
        return dpb_error_set(DPB_E_FORMAT, "tokenize: input is not valid UTF-8 at byte %zu", bad);
    bool allow_special = (flags & DPB_TOK_ALLOW_SPECIAL) != 0;
    size_t seg = 0;
    dpb_status st;
    bool text_start = true;
    if (t->n_added) {
        for (size_t i = 0; i < len; i++) {
            if (!t->first_byte[s[i]]) continue;
            int32_t cur = 0, best = -1;
            size_t best_end = 0;
            for (size_t k = i; k < len; k++) {
                int32_t c = t->trie[cur].child;
                while (c >= 0 && t->trie[c].byte != s[k]) c = t->trie[c].sibling;
                if (c < 0) break;
                cur = c;
                int32_t a = t->trie[cur].added;
                if (a >= 0 && (allow_special || !t->added[a].special)) {
                    best = a;
                    best_end = k + 1;
                }
            }
            if (best < 0) continue;
            size_t b = i, e = best_end;
            if (t->added[best].lstrip)
                while (b > seg && is_ws(s[b - 1])) b--;
            if (t->added[best].rstrip)
                while (e < len && is_ws(s[e])) e++;
            if ((st = encode_segment(t, s + seg, b - seg, text_start && seg == 0, out))) return st;
            if ((st = tokens_push(out, t->added[best].id))) return st;
            text_start = false;
            seg = e;
            i = e - 1;
        }
    }
    return encode_segment(t, s + seg, len - seg, text_start && seg == 0, out);
}

dpb_status dpb_tokenizer_count(dpb_tokenizer *t, const char *text, size_t len, unsigned flags, size_t *count)
{
    dpb_tokens tk = {0};
    dpb_status st = dpb_tokenizer_encode(t, text, len, flags, &tk);
    *count = tk.n;
    dpb_tokens_free(&tk);
    return st;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                             */

static dpb_status sbuf_reserve(dpb_tokenizer_stream *s, size_t need)
{
    if (need <= s->cap) return DPB_OK;
    size_t nc = s->cap ? s->cap : 256;
    while (nc < need) nc *= 2;
    char *p = realloc(s->buf, nc);
    if (!p) return dpb_error_set(DPB_E_NOMEM, "detokenize: out of memory");
    s->buf = p;
    s->cap = nc;
    return DPB_OK;
}

void dpb_tokenizer_stream_init(dpb_tokenizer_stream *s, const dpb_tokenizer *t, bool skip_special)
{
    memset(s, 0, sizeof *s);
    s->tok = t;
    s->skip_special = skip_special;
    s->at_start = true;
}

void dpb_tokenizer_stream_free(dpb_tokenizer_stream *s)
{
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

static inline size_t emit_fffd(char *o)
{
    o[0] = (char)0xEF;
    o[1] = (char)0xBF;
    o[2] = (char)0xBD;
    return 3;
}

/* Feeds bytes through the UTF-8 assembler; o has room for 3 * n + 4 bytes. */
static size_t utf8_feed(dpb_tokenizer_stream *s, const uint8_t *b, size_t n, char *o)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[i];
        if (s->npend) {
            uint8_t lead = s->pend[0];
            bool ok;
            if (s->npend == 1 && lead == 0xE0) ok = c >= 0xA0 && c <= 0xBF;
            else if (s->npend == 1 && lead == 0xED) ok = c >= 0x80 && c <= 0x9F;
            else if (s->npend == 1 && lead == 0xF0) ok = c >= 0x90 && c <= 0xBF;
            else if (s->npend == 1 && lead == 0xF4) ok = c >= 0x80 && c <= 0x8F;
            else ok = (c & 0xC0) == 0x80;
            if (ok) {
                s->pend[s->npend++] = c;
                if ((size_t)s->npend == utf8_len(lead)) {
                    memcpy(o + w, s->pend, (size_t)s->npend);
                    w += (size_t)s->npend;
                    s->npend = 0;
                }
                continue;
            }
            w += emit_fffd(o + w);
            s->npend = 0;
        }
        if (c < 0x80) o[w++] = (char)c;
        else if (c >= 0xC2 && c <= 0xF4) s->pend[s->npend++] = c;
        else w += emit_fffd(o + w);
    }
    return w;
}

dpb_status dpb_tokenizer_stream_push(dpb_tokenizer_stream *s, int32_t id, const char **text, size_t *len)
{
    const dpb_tokenizer *t = s->tok;
    *text = "";
    *len = 0;
    if (id < 0 || (uint32_t)id >= t->n_ids || !(t->tok_flags[id] & TF_PRESENT))
        return dpb_error_set(DPB_E_RANGE, "detokenize: token id %d is not in the vocabulary (%u ids)", id, t->n_ids);
    uint8_t f = t->tok_flags[id];
    /* SentencePiece control pieces (<s>, </s>) decode to nothing, as in sentencepiece. */
    if ((f & TF_CONTROL) || (s->skip_special && (f & TF_SPECIAL))) return DPB_OK;
    const uint8_t *p = t->arena + t->tok_off[id];
    size_t n = t->tok_len[id];
    uint8_t one;
    if (f & TF_BYTE) {
        one = t->tok_byte[id];
        p = &one;
        n = 1;
    }
    dpb_status st = sbuf_reserve(s, 3 * n + 8);
    if (st) return st;
    size_t w = 0;
    if (t->kind == TOK_SPM && !(f & (TF_BYTE | TF_ADDED))) {
        /* U+2581 -> space, one leading space dropped at the start when asked */
        size_t i = 0;
        while (i < n) {
            size_t j = i;
            while (j < n && !(j + 2 < n && p[j] == 0xE2 && p[j + 1] == 0x96 && p[j + 2] == 0x81)) j++;
            w += utf8_feed(s, p + i, j - i, s->buf + w);
            if (j < n) {
                if (!(s->at_start && t->strip_leading_space && w == 0 && j == 0)) w += utf8_feed(s, (const uint8_t *)" ", 1, s->buf + w);
                j += 3;
            }
            i = j;
        }
    } else {
        w = utf8_feed(s, p, n, s->buf);
    }
    if (n) s->at_start = false;
    *text = s->buf;
    *len = w;
    return DPB_OK;
}

dpb_status dpb_tokenizer_stream_finish(dpb_tokenizer_stream *s, const char **text, size_t *len)
{
    dpb_status st = sbuf_reserve(s, 8);
    if (st) return st;
    size_t w = 0;
    if (s->npend) {
        w = emit_fffd(s->buf);
        s->npend = 0;
    }
    *text = s->buf;
    *len = w;
    return DPB_OK;
}

dpb_status dpb_tokenizer_decode(const dpb_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out,
                                size_t *out_len)
{
    *out = NULL;
    if (out_len) *out_len = 0;
    dpb_tokenizer_stream s;
    dpb_tokenizer_stream_init(&s, t, skip_special);
    size_t cap = 256, len = 0;
    char *res = malloc(cap);
    if (!res) return dpb_error_set(DPB_E_NOMEM, "detokenize: out of memory");
    dpb_status st = DPB_OK;
    for (size_t i = 0; i <= n; i++) {
        const char *p;
        size_t pl;
        if (i < n) st = dpb_tokenizer_stream_push(&s, ids[i], &p, &pl);
        else st = dpb_tokenizer_stream_finish(&s, &p, &pl);
        if (st) {
            if (i < n) dpb_error_prefix(st, "id #%zu", i);
            break;
        }
        if (len + pl + 1 > cap) {
            while (len + pl + 1 > cap) cap *= 2;
            char *q = realloc(res, cap);
            if (!q) {
                st = dpb_error_set(DPB_E_NOMEM, "detokenize: out of memory");
                break;
            }
            res = q;
        }
        memcpy(res + len, p, pl);
        len += pl;
    }
    dpb_tokenizer_stream_free(&s);
    if (st) {
        free(res);
        return st;
    }
    res[len] = 0;
    *out = res;
    if (out_len) *out_len = len;
    return DPB_OK;
}
