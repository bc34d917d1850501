#include "load/sse.h"

#include <stdlib.h>
#include <string.h>

void dpb_sse_init(dpb_sse *p, size_t max_event)
{
    memset(p, 0, sizeof *p);
    p->max_event = max_event ? max_event : (4u << 20);
}

void dpb_sse_reset(dpb_sse *p)
{
    p->llen = p->dlen = 0;
    p->has_data = 0;
    p->skip_lf = 0;
}

void dpb_sse_free(dpb_sse *p)
{
    free(p->line);
    free(p->data);
    memset(p, 0, sizeof *p);
}

int dpb_sse_pending(const dpb_sse *p) { return p->llen > 0 || p->has_data; }

static dpb_status reserve(char **b, size_t *cap, size_t need, size_t max)
{
    if (need > max + 1) return dpb_error_set(DPB_E_FORMAT, "SSE: an event is larger than %zu bytes", max);
    if (need <= *cap) return DPB_OK;
    size_t c = *cap ? *cap : 512;
    while (c < need) c *= 2;
    char *nb = realloc(*b, c);
    if (!nb) return dpb_error_set(DPB_E_NOMEM, "SSE: out of memory (%zu bytes)", c);
    *b = nb;
    *cap = c;
    return DPB_OK;
}

/* One complete line (without its terminator). */
static dpb_status on_line(dpb_sse *p, const char *l, size_t n, dpb_sse_event_fn fn, void *ctx)
{
    if (n == 0) { /* blank line: dispatch */
        if (!p->has_data) return DPB_OK;
        p->has_data = 0;
        size_t dl = p->dlen;
        p->dlen = 0;
        if (!p->data) return DPB_OK;
        p->data[dl] = 0;
        if (fn(ctx, p->data, dl)) return DPB_E_INTERRUPTED;
        return DPB_OK;
    }
    if (l[0] == ':') return DPB_OK;
    const char *colon = memchr(l, ':', n);
    size_t fl = colon ? (size_t)(colon - l) : n;
    if (fl != 4 || memcmp(l, "data", 4) != 0) return DPB_OK;
    const char *v = colon ? colon + 1 : l + n;
    if (v < l + n && *v == ' ') v++;
    size_t vl = (size_t)(l + n - v);
    size_t need = p->dlen + (p->has_data ? 1 : 0) + vl + 1;
    dpb_status st = reserve(&p->data, &p->dcap, need, p->max_event);
    if (st) return st;
    if (p->has_data) p->data[p->dlen++] = '\n';
    memcpy(p->data + p->dlen, v, vl);
    p->dlen += vl;
    p->has_data = 1;
    return DPB_OK;
}

dpb_status dpb_sse_feed(dpb_sse *p, const char *buf, size_t len, dpb_sse_event_fn fn, void *ctx)
{
    size_t i = 0;
    if (p->skip_lf && len > 0) {
        if (buf[0] == '\n') i = 1;
        p->skip_lf = 0;
    }
    while (i < len) {
        /* find the next CR or LF */
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r') j++;
        if (j == len) { /* incomplete line: keep it */
            dpb_status st = reserve(&p->line, &p->lcap, p->llen + (j - i) + 1, p->max_event);
            if (st) return st;
            memcpy(p->line + p->llen, buf + i, j - i);
            p->llen += j - i;
            return DPB_OK;
        }
        dpb_status st;
        if (p->llen) {
            st = reserve(&p->line, &p->lcap, p->llen + (j - i) + 1, p->max_event);
            if (st) return st;
            memcpy(p->line + p->llen, buf + i, j - i);
            size_t n = p->llen + (j - i);
            p->llen = 0;
            st = on_line(p, p->line, n, fn, ctx);
        } else st = on_line(p, buf + i, j - i, fn, ctx);
        if (st) return st;
        if (buf[j] == '\r') {
            if (j + 1 < len) {
                if (buf[j + 1] == '\n') j++;
            } else p->skip_lf = 1;
        }
        i = j + 1;
    }
    return DPB_OK;
}
