/* A log-linear ("HDR-style") histogram of non-negative integer values
 * (nanoseconds, in practice).
 *
 * - Values below 2^11 are counted exactly; above, every power-of-two range is
 *   split into 1,024 equal buckets, so a bucket is at most 2^-10 of its lower
 *   bound wide and a reported percentile (its bucket's midpoint, clamped to the
 *   exact min and max) is within 2^-11 (0.049 %) of a value that was recorded.
 * - Values above DPB_HIST_MAX_VALUE (2^44 ns, about 4.9 hours) land in the top
 *   bucket and are counted in `clamped`; min/max/mean stay exact.
 * - count, min, max and the sum (mean) are exact; the standard deviation comes
 *   from a long double sum of squares.
 * - Two histograms merge exactly (bucket-wise addition), so per-level or
 *   per-thread histograms can be combined without losing resolution.
 *
 * Percentile method (DPB_HIST_PERCENTILE_METHOD): nearest rank.  For p in
 * (0, 100], the rank is ceil(p/100 * count) (at least 1); the answer is the
 * bucket holding the value of that rank, reported as the bucket's midpoint
 * clamped to [min, max].  p = 0 gives min, p = 100 gives max exactly. */
#ifndef DPB_HIST_H
#define DPB_HIST_H

#include <stdint.h>
#include "core/status.h"

#define DPB_HIST_SUB_BITS 11
#define DPB_HIST_MAX_VALUE (1ull << 44)
#define DPB_HIST_PERCENTILE_METHOD "nearest-rank on a log-linear histogram (bucket midpoint, relative error <= 2^-11)"

typedef struct dpb_hist dpb_hist;

dpb_status dpb_hist_create(dpb_hist **out);
void dpb_hist_free(dpb_hist *h);
void dpb_hist_reset(dpb_hist *h);
/* Records one value (never fails; values above the range are clamped into the top bucket). */
void dpb_hist_record(dpb_hist *h, uint64_t v);
/* Records v n times. */
void dpb_hist_record_n(dpb_hist *h, uint64_t v, uint64_t n);
/* dst += src, exactly. */
void dpb_hist_merge(dpb_hist *dst, const dpb_hist *src);

uint64_t dpb_hist_count(const dpb_hist *h);
uint64_t dpb_hist_clamped(const dpb_hist *h);
/* min/max/mean/stddev/percentile of an empty histogram: DPB_E_UNAVAILABLE. */
dpb_status dpb_hist_min(const dpb_hist *h, uint64_t *out);
dpb_status dpb_hist_max(const dpb_hist *h, uint64_t *out);
dpb_status dpb_hist_mean(const dpb_hist *h, double *out);
/* Population standard deviation (as numpy.std, which vLLM's benchmark uses). */
dpb_status dpb_hist_stddev(const dpb_hist *h, double *out);
/* p in [0, 100]; see the method above. */
dpb_status dpb_hist_percentile(const dpb_hist *h, double p, double *out);

/* Bucket geometry, exposed for tests: the bucket index of v, and the
 * [lo, hi] range of values that index holds. */
uint32_t dpb_hist_bucket_of(uint64_t v);
void dpb_hist_bucket_range(uint32_t idx, uint64_t *lo, uint64_t *hi);
uint32_t dpb_hist_bucket_count(void);

#endif
