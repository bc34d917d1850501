/* The log-linear histogram: exactness, bounded error, merging. */
#include "t.h"
#include "core/hist.h"
#include <stdint.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_empty_is_unavailable(void)
{
    dpb_hist *h;
    T_CHECK(dpb_hist_create(&h) == DPB_OK);
    double d;
    uint64_t u;
    T_CHECK(dpb_hist_percentile(h, 50, &d) == DPB_E_UNAVAILABLE);
    T_CHECK(dpb_hist_mean(h, &d) == DPB_E_UNAVAILABLE);
    T_CHECK(dpb_hist_min(h, &u) == DPB_E_UNAVAILABLE);
    T_CHECK(dpb_hist_count(h) == 0);
    T_CHECK(dpb_hist_percentile(h, 101, &d) != DPB_OK);
    dpb_hist_free(h);
}

static void test_small_values_exact(void)
{
    dpb_hist *h;
    T_CHECK(dpb_hist_create(&h) == DPB_OK);
    for (uint64_t v = 1; v <= 100; v++) dpb_hist_record(h, v);
    double p;
    T_CHECK(dpb_hist_percentile(h, 50, &p) == DPB_OK && p == 50.0);
    T_CHECK(dpb_hist_percentile(h, 99, &p) == DPB_OK && p == 99.0);
    T_CHECK(dpb_hist_percentile(h, 99.5, &p) == DPB_OK && p == 100.0);
    T_CHECK(dpb_hist_percentile(h, 0, &p) == DPB_OK && p == 1.0);
    T_CHECK(dpb_hist_percentile(h, 100, &p) == DPB_OK && p == 100.0);
    T_CHECK(dpb_hist_percentile(h, 1, &p) == DPB_OK && p == 1.0);
    double m, s;
    T_CHECK(dpb_hist_mean(h, &m) == DPB_OK && m == 50.5);
    /* population std of 1..100 = sqrt((100^2 - 1) / 12) */
    T_CHECK(dpb_hist_stddev(h, &s) == DPB_OK && fabs(s - sqrt(9999.0 / 12.0)) < 1e-9);
    dpb_hist_free(h);
}

static void test_bucket_geometry(void)
{
    /* Buckets tile the range without gaps and stay within 2^-10 relative width. */
    uint64_t prev_hi = 0;
    int ok = 1;
    for (uint32_t i = 0; i < dpb_hist_bucket_count(); i++) {
        uint64_t lo, hi;
        dpb_hist_bucket_range(i, &lo, &hi);
        if (i > 0 && lo != prev_hi + 1) ok = 0;
        if (hi < lo) ok = 0;
        if (lo >= 2048 && (double)(hi - lo + 1) > (double)lo / 1024.0 + 1e-9) ok = 0;
        if (dpb_hist_bucket_of(lo) != i || dpb_hist_bucket_of(hi) != i) ok = 0;
        prev_hi = hi;
    }
    T_CHECK(ok);
    T_CHECK(prev_hi + 1 == DPB_HIST_MAX_VALUE);
}

static void test_relative_error_bound(void)
{
    enum { N = 200000 };
    uint64_t *v = malloc(N * sizeof *v);
    dpb_hist *h;
    T_CHECK(v && dpb_hist_create(&h) == DPB_OK);
    unsigned __int128 sum = 0;
    for (int i = 0; i < N; i++) {
        /* log-uniform from 1 us to 100 s in ns */
        double e = 3.0 + 8.0 * (double)(rnd() >> 11) / 9007199254740992.0;
        v[i] = (uint64_t)pow(10.0, e);
        sum += v[i];
        dpb_hist_record(h, v[i]);
    }
    qsort(v, N, sizeof *v, cmp_u64);
    static const double ps[] = {1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99};
    double worst = 0;
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        size_t rank = (size_t)ceil(ps[k] / 100.0 * N);
        double exact = (double)v[rank - 1], got;
        T_CHECK(dpb_hist_percentile(h, ps[k], &got) == DPB_OK);
        double rel = fabs(got - exact) / exact;
        if (rel > worst) worst = rel;
    }
    T_CHECKF(worst <= 1.0 / 2048.0, "worst relative error %g", worst);
    double mean;
    T_CHECK(dpb_hist_mean(h, &mean) == DPB_OK);
    T_CHECK(fabs(mean - (double)sum / N) <= 1e-6 * mean);
    uint64_t mn, mx;
    T_CHECK(dpb_hist_min(h, &mn) == DPB_OK && mn == v[0]);
    T_CHECK(dpb_hist_max(h, &mx) == DPB_OK && mx == v[N - 1]);
    free(v);
    dpb_hist_free(h);
}

static void test_merge_equals_union(void)
{
    dpb_hist *a, *b, *u;
    T_CHECK(dpb_hist_create(&a) == DPB_OK && dpb_hist_create(&b) == DPB_OK && dpb_hist_create(&u) == DPB_OK);
    for (int i = 0; i < 50000; i++) {
        uint64_t x = rnd() % 5000000000ull;
        dpb_hist_record(i % 3 ? a : b, x);
        dpb_hist_record(u, x);
    }
    dpb_hist_merge(a, b);
    T_CHECK(dpb_hist_count(a) == dpb_hist_count(u));
    for (double p = 0; p <= 100; p += 0.5) {
        double x, y;
        T_CHECK(dpb_hist_percentile(a, p, &x) == DPB_OK && dpb_hist_percentile(u, p, &y) == DPB_OK);
        T_CHECK(x == y);
    }
    double ma, mu;
    T_CHECK(dpb_hist_mean(a, &ma) == DPB_OK && dpb_hist_mean(u, &mu) == DPB_OK && ma == mu);
    dpb_hist_free(a);
    dpb_hist_free(b);
    dpb_hist_free(u);
}

static void test_clamped_values(void)
{
    dpb_hist *h;
    T_CHECK(dpb_hist_create(&h) == DPB_OK);
    dpb_hist_record(h, DPB_HIST_MAX_VALUE * 4);
    dpb_hist_record(h, 5);
    T_CHECK(dpb_hist_clamped(h) == 1);
    uint64_t mx;
    double p;
    T_CHECK(dpb_hist_max(h, &mx) == DPB_OK && mx == DPB_HIST_MAX_VALUE * 4);
    T_CHECK(dpb_hist_percentile(h, 50, &p) == DPB_OK && p == 5.0);
    T_CHECK(dpb_hist_percentile(h, 100, &p) == DPB_OK && p == (double)(DPB_HIST_MAX_VALUE * 4));
    dpb_hist_reset(h);
    T_CHECK(dpb_hist_count(h) == 0 && dpb_hist_clamped(h) == 0);
    dpb_hist_free(h);
}

int main(void)
{
    T_RUN(test_empty_is_unavailable);
    T_RUN(test_small_values_exact);
    T_RUN(test_bucket_geometry);
    T_RUN(test_relative_error_bound);
    T_RUN(test_merge_equals_union);
    T_RUN(test_clamped_values);
    return t_done();
}
