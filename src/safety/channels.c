#include "safety/channels.h"

#include <stdlib.h>
#include <string.h>

typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static int sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->n + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) return -1;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

/* Appends s[0..n) without <|...|> markers. */
static int sb_add_clean(sbuf *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *m = NULL;
        for (size_t j = i; j + 1 < n; j++)
            if (s[j] == '<' && s[j + 1] == '|') { m = s + j; break; }
        if (!m) return sb_add(b, s + i, n - i);
        const char *e = NULL;
        for (const char *q = m + 2; q + 1 < s + n; q++)
            if (q[0] == '|' && q[1] == '>') { e = q + 2; break; }
            else if (q[0] == '\n' || q - m > 40) break;
        if (!e) { /* not a marker: keep the '<' */
            if (sb_add(b, s + i, (size_t)(m - (s + i)) + 1)) return -1;
            i = (size_t)(m - s) + 1;
            continue;
        }
        if (sb_add(b, s + i, (size_t)(m - (s + i)))) return -1;
        i = (size_t)(e - s);
    }
    return 0;
}

static const char *find(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    if (k > n) return NULL;
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(s + i, needle, k) == 0) return s + i;
    return NULL;
}

static bool blank(const char *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\n' && *s != '\t' && *s != '\r') return false;
    return true;
}

void dpb_safety_split_free(dpb_safety_split *s)
{
    if (!s) return;
    free(s->final);
    free(s->reasoning);
    memset(s, 0, sizeof *s);
}

dpb_status dpb_safety_split_response(dpb_chat_template tpl, const char *text, size_t len, dpb_safety_split *out)
{
    memset(out, 0, sizeof *out);
    sbuf fin = {0}, rsn = {0};
    int err = sb_add(&fin, "", 0) | sb_add(&rsn, "", 0);
    if (!err && tpl == DPB_CHAT_HARMONY) {
        /* segments: <|channel|>NAME<|message|>CONTENT up to <|end|>, <|return|>, <|call|>, <|start|> or the end */
        bool any_final = false;
        const char *p = text, *end = text + len;
        for (;;) {
            const char *c = find(p, (size_t)(end - p), "<|channel|>");
            if (!c) break;
            const char *nm = c + 11;
            const char *m = find(nm, (size_t)(end - nm), "<|message|>");
            if (!m) break;
            const char *body = m + 11, *stop = end;
            static const char *const enders[] = {"<|end|>", "<|return|>", "<|call|>", "<|start|>", "<|channel|>"};
            for (size_t k = 0; k < 5; k++) {
                const char *x = find(body, (size_t)(end - body), enders[k]);
                if (x && x < stop) stop = x;
            }
            size_t nl = (size_t)(m - nm);
            bool is_final = nl >= 5 && memcmp(nm, "final", 5) == 0;
            if (is_final) any_final = true;
            err |= sb_add_clean(is_final ? &fin : &rsn, body, (size_t)(stop - body));
            p = stop;
        }
        /* the generation prompt may already hold <|channel|>: text with no marker at all is the answer when it
         * does not look like an unfinished channel header */
        if (!any_final && !find(text, len, "<|channel|>") && !find(text, len, "<|message|>")) {
            err |= sb_add_clean(&fin, text, len);
            any_final = true;
        }
        out->final_missing = !any_final;
    } else if (!err && tpl == DPB_CHAT_QWEN3) {
        const char *o = find(text, len, "<think>");
        const char *c = find(text, len, "</think>");
        if (c && (!o || o < c)) {
            const char *rs = o ? o + 7 : text;
            err |= sb_add_clean(&rsn, rs, (size_t)(c - rs));
            err |= sb_add_clean(&fin, c + 8, len - (size_t)(c + 8 - text));
        } else if (o) {
            err |= sb_add_clean(&fin, text, (size_t)(o - text));
            err |= sb_add_clean(&rsn, o + 7, len - (size_t)(o + 7 - text)); /* unfinished thinking */
        } else err |= sb_add_clean(&fin, text, len);
    } else if (!err) err |= sb_add_clean(&fin, text, len);
    if (err) {
        free(fin.p);
        free(rsn.p);
        return dpb_error_set(DPB_E_NOMEM, "response split: out of memory");
    }
    out->final = fin.p;
    out->reasoning = rsn.p;
    out->has_reasoning = !blank(rsn.p);
    return DPB_OK;
}
