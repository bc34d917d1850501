/* Python-compatible random (see pyrandom.h).  MT19937 is Matsumoto and
 * Nishimura's generator; init_by_array and the tempering constants are the
 * published algorithm's, which CPython's _randommodule.c uses unchanged. */
#include "eval/pyrandom.h"

#include <math.h>
#include <stdlib.h>
#include "core/checked.h"

static void init_genrand(dpb_pyrandom *r, uint32_t s)
{
    r->mt[0] = s;
    for (int i = 1; i < 624; i++) r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->mti = 624;
}

void dpb_pyrandom_seed(dpb_pyrandom *r, uint64_t seed)
{
    /* random.seed(int): the absolute value's 32-bit words, least significant first (at least one) */
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    int klen = key[1] ? 2 : 1;
    init_genrand(r, 19650218u);
    int i = 1, j = 0;
    for (int k = 624 > klen ? 624 : klen; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
        i++;
        j++;
        if (i >= 624) { r->mt[0] = r->mt[623]; i = 1; }
        if (j >= klen) j = 0;
    }
    for (int k = 623; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= 624) { r->mt[0] = r->mt[623]; i = 1; }
    }
    r->mt[0] = 0x80000000u;
    r->mti = 624;
}

uint32_t dpb_pyrandom_u32(dpb_pyrandom *r)
{
    if (r->mti >= 624) {
        for (int k = 0; k < 624; k++) {
            uint32_t y = (r->mt[k] & 0x80000000u) | (r->mt[(k + 1) % 624] & 0x7fffffffu);
            r->mt[k] = r->mt[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        r->mti = 0;
    }
    uint32_t y = r->mt[r->mti++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint32_t dpb_pyrandom_below(dpb_pyrandom *r, uint32_t n)
{
    if (n <= 1) return 0;
    int k = 0; /* n.bit_length() */
    for (uint32_t v = n; v; v >>= 1) k++;
    uint32_t x;
    do x = dpb_pyrandom_u32(r) >> (32 - k); /* getrandbits(k) */
    while (x >= n);
    return x;
}

dpb_status dpb_pyrandom_sample(dpb_pyrandom *r, size_t n, size_t k, size_t *out)
{
    if (k > n || n > UINT32_MAX) return dpb_error_set(DPB_E_ARG, "sample: %zu of %zu", k, n);
    /* random.sample: a pool when an n-list is smaller than a k-set, else rejection with a set */
    double setsize = 21;
    if (k > 5) setsize += pow(4.0, ceil(log((double)k * 3) / log(4.0)));
    if ((double)n <= setsize) {
        size_t *pool = malloc((n ? n : 1) * sizeof *pool);
        if (!pool) return dpb_error_set(DPB_E_NOMEM, "sample: out of memory");
        for (size_t i = 0; i < n; i++) pool[i] = i;
        for (size_t i = 0; i < k; i++) {
            size_t j = dpb_pyrandom_below(r, (uint32_t)(n - i));
            out[i] = pool[j];
            pool[j] = pool[n - i - 1];
        }
        free(pool);
        return DPB_OK;
    }
    for (size_t i = 0; i < k; i++) {
        size_t j;
        for (;;) {
            j = dpb_pyrandom_below(r, (uint32_t)n);
            size_t q = 0;
            while (q < i && out[q] != j) q++;
            if (q == i) break;
        }
        out[i] = j;
    }
    return DPB_OK;
}

#include "eval/eval.h"

dpb_status dpb_eval_fewshot_random(size_t n_docs, size_t pool_n, int k, uint64_t seed, size_t **shots)
{
    *shots = NULL;
    if (k < 0 || (size_t)k > pool_n)
        return dpb_error_set(DPB_E_ARG, "--num-fewshot %d: the few-shot pool has %zu examples", k, pool_n);
    size_t cells;
    if (!dpb_mul_size(n_docs ? n_docs : 1, k ? (size_t)k : 1, &cells) || !dpb_mul_size(cells, sizeof(size_t), &cells))
        return dpb_error_set(DPB_E_RANGE, "few-shot: %zu documents x %d shots is too many", n_docs, k);
    size_t *s = malloc(cells);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "few-shot: out of memory");
    dpb_pyrandom r;
    dpb_pyrandom_seed(&r, seed);
    for (size_t d = 0; d < n_docs && k > 0; d++) {
        dpb_status st = dpb_pyrandom_sample(&r, pool_n, (size_t)k, s + d * (size_t)k);
        if (st) { free(s); return st; }
    }
    *shots = s;
    return DPB_OK;
}
