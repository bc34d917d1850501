/* Python's random.Random, as far as lm-evaluation-harness's few-shot sampler
 * uses it: MT19937 seeded from an integer with init_by_array (Python's
 * random.seed(int)), getrandbits(k <= 32), _randbelow and random.sample's
 * index choice (both of its algorithms).  lm-eval draws each document's
 * few-shot exemplars with Random(1234).sample(pool, k), one call per
 * evaluated document in order (lm_eval/api/samplers.py), so the same
 * sequence of calls here gives the same exemplars. */
#ifndef DPB_EVAL_PYRANDOM_H
#define DPB_EVAL_PYRANDOM_H

#include <stddef.h>
#include <stdint.h>
#include "core/status.h"

typedef struct dpb_pyrandom {
    uint32_t mt[624];
    int mti;
} dpb_pyrandom;

/* random.Random(seed) for a non-negative integer seed. */
void dpb_pyrandom_seed(dpb_pyrandom *r, uint64_t seed);
/* random.getrandbits(32) */
uint32_t dpb_pyrandom_u32(dpb_pyrandom *r);
/* random._randbelow(n) for 1 <= n < 2^32 */
uint32_t dpb_pyrandom_below(dpb_pyrandom *r, uint32_t n);
/* The indexes random.sample(range(n), k) returns, in its order (k <= n < 2^32). */
dpb_status dpb_pyrandom_sample(dpb_pyrandom *r, size_t n, size_t k, size_t *out);

#endif
