/* Token sampling: greedy, or temperature -> top-k -> top-p -> min-p, with a
 * seeded generator (xoshiro256**), in that order as transformers applies
 * its logits warpers. */
#ifndef DPB_TOKEN_SAMPLER_H
#define DPB_TOKEN_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>
#include "core/status.h"

typedef struct dpb_sampling {
    bool greedy;        /* argmax (lowest id on ties); the other fields are ignored */
    double temperature; /* > 0 */
    int64_t top_k;      /* 0: off */
    double top_p;       /* (0, 1]; 1: off */
    double min_p;       /* [0, 1); 0: off */
    uint64_t seed;
} dpb_sampling;

/* Greedy. */
dpb_sampling dpb_sampling_greedy(void);
/* Checks ranges; errors name the parameter. */
dpb_status dpb_sampling_check(const dpb_sampling *s);

typedef struct dpb_token_sampler {
    dpb_sampling p;
    uint64_t s[4];
    float *probs;   /* scratch [V] */
    int32_t *order; /* scratch [V] */
    int64_t vocab;
} dpb_token_sampler;

dpb_status dpb_token_sampler_init(dpb_token_sampler *sm, const dpb_sampling *p, int64_t vocab);
void dpb_token_sampler_free(dpb_token_sampler *sm);
/* Picks a token from logits [vocab] (not modified). */
dpb_status dpb_token_sampler_sample(dpb_token_sampler *sm, const float *logits, int32_t *out);
/* Uniform double in [0, 1) from the sampler's generator. */
double dpb_token_sampler_uniform(dpb_token_sampler *sm);

#endif
