/* Sampler: greedy, temperature, top-k, top-p, min-p, seeds, and range checks. */
#include <math.h>
#include "t.h"
#include "engine/token_sampler.h"

static void test_greedy(void)
{
    float l[5] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
    dpb_sampling p = dpb_sampling_greedy();
    dpb_token_sampler s;
    T_CHECK(dpb_token_sampler_init(&s, &p, 5) == DPB_OK);
    int32_t id = -1;
    T_CHECK(dpb_token_sampler_sample(&s, l, &id) == DPB_OK);
    T_CHECK(id == 1); /* ties: lowest id */
    dpb_token_sampler_free(&s);
}

static dpb_sampling sp(double t, int64_t k, double tp, double mp, uint64_t seed)
{
    dpb_sampling p = {false, t, k, tp, mp, seed};
    return p;
}

/* Frequencies of n draws. */
static void draw(const dpb_sampling *p, const float *l, int V, int n, int *cnt)
{
    dpb_token_sampler s;
    memset(cnt, 0, (size_t)V * sizeof *cnt);
    if (dpb_token_sampler_init(&s, p, V)) return;
    for (int i = 0; i < n; i++) {
        int32_t id;
        if (dpb_token_sampler_sample(&s, l, &id) == DPB_OK && id >= 0 && id < V) cnt[id]++;
    }
    dpb_token_sampler_free(&s);
}

static void test_temperature_distribution(void)
{
    /* probabilities 0.1 0.2 0.3 0.4 from log-probabilities */
    float l[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
    int cnt[4];
    dpb_sampling p = sp(1.0, 0, 1.0, 0, 7);
    draw(&p, l, 4, 40000, cnt);
    for (int i = 0; i < 4; i++) T_CHECKF(fabs(cnt[i] / 40000.0 - 0.1 * (i + 1)) < 0.01, "id %d: %d", i, cnt[i]);
    /* temperature 0.5 squares the odds: p ~ q^2 / sum -> 1, 4, 9, 16 over 30 */
    p = sp(0.5, 0, 1.0, 0, 7);
    draw(&p, l, 4, 40000, cnt);
    for (int i = 0; i < 4; i++)
        T_CHECKF(fabs(cnt[i] / 40000.0 - (double)((i + 1) * (i + 1)) / 30.0) < 0.01, "T=0.5 id %d: %d", i, cnt[i]);
}

static void test_filters(void)
{
    float l[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
    int cnt[4];
    dpb_sampling p = sp(1.0, 2, 1.0, 0, 3); /* top-k 2: ids 3 and 2, 4:3 */
    draw(&p, l, 4, 20000, cnt);
    T_CHECK(cnt[0] == 0 && cnt[1] == 0);
    T_CHECK(fabs(cnt[3] / 20000.0 - 4.0 / 7) < 0.015);
    p = sp(1.0, 0, 0.65, 0, 3); /* top-p 0.65: 0.4 + 0.3 reaches it -> ids 3, 2 */
    draw(&p, l, 4, 20000, cnt);
    T_CHECK(cnt[0] == 0 && cnt[1] == 0 && cnt[2] > 0 && cnt[3] > 0);
    p = sp(1.0, 0, 0.3, 0, 3); /* top-p below the top probability: only id 3 */
    draw(&p, l, 4, 1000, cnt);
    T_CHECK(cnt[3] == 1000);
    p = sp(1.0, 0, 1.0, 0.6, 3); /* min-p 0.6 x 0.4 = 0.24: ids 3 and 2 */
    draw(&p, l, 4, 20000, cnt);
    T_CHECK(cnt[0] == 0 && cnt[1] == 0 && cnt[2] > 0 && cnt[3] > 0);
}

static void test_seed(void)
{
    float l[16];
    for (int i = 0; i < 16; i++) l[i] = (float)(i % 5) * 0.3f;
    dpb_sampling p = sp(1.0, 0, 1.0, 0, 42);
    dpb_token_sampler a, b, c;
    T_CHECK(dpb_token_sampler_init(&a, &p, 16) == DPB_OK && dpb_token_sampler_init(&b, &p, 16) == DPB_OK);
    p.seed = 43;
    T_CHECK(dpb_token_sampler_init(&c, &p, 16) == DPB_OK);
    int same = 1, differ = 0;
    for (int i = 0; i < 64; i++) {
        int32_t x, y, z;
        dpb_token_sampler_sample(&a, l, &x);
        dpb_token_sampler_sample(&b, l, &y);
        dpb_token_sampler_sample(&c, l, &z);
        same &= x == y;
        differ |= x != z;
    }
    T_CHECK(same && differ);
    dpb_token_sampler_free(&a);
    dpb_token_sampler_free(&b);
    dpb_token_sampler_free(&c);
}

static void test_checks(void)
{
    dpb_sampling p = sp(0, 0, 1, 0, 0);
    T_CHECK(dpb_sampling_check(&p) == DPB_E_ARG && strstr(dpb_error_message(), "temperature"));
    p = sp(NAN, 0, 1, 0, 0);
    T_CHECK(dpb_sampling_check(&p) == DPB_E_ARG);
    p = sp(1, -1, 1, 0, 0);
    T_CHECK(dpb_sampling_check(&p) == DPB_E_ARG && strstr(dpb_error_message(), "top_k"));
    p = sp(1, 0, 0, 0, 0);
    T_CHECK(dpb_sampling_check(&p) == DPB_E_ARG && strstr(dpb_error_message(), "top_p"));
    p = sp(1, 0, 1, 1.0, 0);
    T_CHECK(dpb_sampling_check(&p) == DPB_E_ARG && strstr(dpb_error_message(), "min_p"));
    p = sp(0.7, 40, 0.9, 0.05, 1);
    T_CHECK(dpb_sampling_check(&p) == DPB_OK);
    float l[3] = {NAN, NAN, NAN};
    dpb_sampling g = dpb_sampling_greedy();
    dpb_token_sampler s;
    int32_t id;
    dpb_token_sampler_init(&s, &g, 3);
    T_CHECK(dpb_token_sampler_sample(&s, l, &id) != DPB_OK);
    dpb_token_sampler_free(&s);
}

int main(void)
{
    T_RUN(test_greedy);
    T_RUN(test_temperature_distribution);
    T_RUN(test_filters);
    T_RUN(test_seed);
    T_RUN(test_checks);
    return t_done();
}
