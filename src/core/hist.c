#include "core/hist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SUB (1u << DPB_HIST_SUB_BITS)       /* exact region and per-octave doubling unit */
#define HALF (SUB >> 1)                      /* buckets per octave above the exact region */
#define MAX_BIT 44                           /* DPB_HIST_MAX_VALUE = 2^MAX_BIT */
/* Octaves with msb m in [SUB_BITS, MAX_BIT - 1]: shift = m - (SUB_BITS - 1) in [1, MAX_BIT - SUB_BITS]. */
#define N_BUCKETS (SUB + (MAX_BIT - DPB_HIST_SUB_BITS) * HALF)

struct dpb_hist {
    uint64_t count, clamped, min, max;
    unsigned __int128 sum;
    long double sumsq;
    uint64_t b[N_BUCKETS];
};

uint32_t dpb_hist_bucket_count(void) { return N_BUCKETS; }

uint32_t dpb_hist_bucket_of(uint64_t v)
{
    if (v >= DPB_HIST_MAX_VALUE) return N_BUCKETS - 1;
    if (v < SUB) return (uint32_t)v;
    unsigned m = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = m - (DPB_HIST_SUB_BITS - 1);
    uint64_t sub = v >> shift; /* in [HALF, SUB) */
    return SUB + (shift - 1) * HALF + (uint32_t)(sub - HALF);
}

void dpb_hist_bucket_range(uint32_t idx, uint64_t *lo, uint64_t *hi)
{
    if (idx < SUB) {
        *lo = *hi = idx;
        return;
    }
    uint32_t k = idx - SUB;
    unsigned shift = k / HALF + 1;
    uint64_t sub = HALF + k % HALF;
    *lo = sub << shift;
    *hi = ((sub + 1) << shift) - 1;
}

dpb_status dpb_hist_create(dpb_hist **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return dpb_error_set(DPB_E_NOMEM, "histogram: out of memory (%zu bytes)", sizeof **out);
    (*out)->min = UINT64_MAX;
    return DPB_OK;
}

void dpb_hist_free(dpb_hist *h) { free(h); }

void dpb_hist_reset(dpb_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void dpb_hist_record_n(dpb_hist *h, uint64_t v, uint64_t n)
{
    if (n == 0) return;
    h->count += n;
    if (v >= DPB_HIST_MAX_VALUE) h->clamped += n;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    h->sum += (unsigned __int128)v * n;
    h->sumsq += (long double)v * (long double)v * (long double)n;
    h->b[dpb_hist_bucket_of(v)] += n;
}

void dpb_hist_record(dpb_hist *h, uint64_t v) { dpb_hist_record_n(h, v, 1); }

void dpb_hist_merge(dpb_hist *dst, const dpb_hist *src)
{
    if (src->count == 0) return;
    dst->count += src->count;
    dst->clamped += src->clamped;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
    dst->sum += src->sum;
    dst->sumsq += src->sumsq;
    for (uint32_t i = 0; i < N_BUCKETS; i++) dst->b[i] += src->b[i];
}

uint64_t dpb_hist_count(const dpb_hist *h) { return h->count; }
uint64_t dpb_hist_clamped(const dpb_hist *h) { return h->clamped; }

static dpb_status empty(void) { return dpb_error_set(DPB_E_UNAVAILABLE, "histogram: no values recorded"); }

dpb_status dpb_hist_min(const dpb_hist *h, uint64_t *out)
{
    if (!h->count) return empty();
    *out = h->min;
    return DPB_OK;
}

dpb_status dpb_hist_max(const dpb_hist *h, uint64_t *out)
{
    if (!h->count) return empty();
    *out = h->max;
    return DPB_OK;
}

dpb_status dpb_hist_mean(const dpb_hist *h, double *out)
{
    if (!h->count) return empty();
    unsigned __int128 q = h->sum / h->count, r = h->sum % h->count;
    *out = (double)q + (double)r / (double)h->count;
    return DPB_OK;
}

dpb_status dpb_hist_stddev(const dpb_hist *h, double *out)
{
    if (!h->count) return empty();
    long double n = (long double)h->count;
    long double mean = (long double)h->sum / n;
    long double var = h->sumsq / n - mean * mean;
    if (var < 0) var = 0;
    *out = (double)sqrtl(var);
    return DPB_OK;
}

dpb_status dpb_hist_percentile(const dpb_hist *h, double p, double *out)
{
    if (!h->count) return empty();
    if (!(p >= 0.0 && p <= 100.0))
        return dpb_error_set(DPB_E_ARG, "histogram: percentile %g is outside [0, 100]", p);
    if (p == 0.0) { *out = (double)h->min; return DPB_OK; }
    if (p == 100.0) { *out = (double)h->max; return DPB_OK; }
    double r = ceil(p / 100.0 * (double)h->count);
    uint64_t rank = r < 1.0 ? 1 : (uint64_t)r;
    if (rank > h->count) rank = h->count;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < N_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t lo, hi;
            dpb_hist_bucket_range(i, &lo, &hi);
            double mid = ((double)lo + (double)hi) / 2.0;
            if (mid < (double)h->min) mid = (double)h->min;
            if (mid > (double)h->max) mid = (double)h->max;
            *out = mid;
            return DPB_OK;
        }
    }
    return dpb_error_set(DPB_E_INTERNAL, "histogram: bucket counts do not add up to %llu", (unsigned long long)h->count);
}
