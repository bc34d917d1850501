/* Rates with 95 % Wilson score intervals, and agreement between two binary
 * raters (percent agreement and Cohen's kappa). */
#ifndef DPB_SAFETY_STATS_H
#define DPB_SAFETY_STATS_H

#include <stdbool.h>
#include <stdint.h>

/* Wilson score interval for k successes in n trials at z (1.959964 for 95 %).
 * n == 0 gives NAN bounds. */
void dpb_wilson_interval(uint64_t k, uint64_t n, double z, double *lo, double *hi);
#define DPB_Z95 1.959963984540054

typedef struct dpb_agreement {
    uint64_t both_yes, both_no, a_only, b_only; /* a yes / b no counts as a_only */
} dpb_agreement;

void dpb_agreement_add(dpb_agreement *a, bool rater_a, bool rater_b);
uint64_t dpb_agreement_n(const dpb_agreement *a);
/* Fraction where the raters agree (NAN when empty). */
double dpb_agreement_rate(const dpb_agreement *a);
/* Cohen's kappa (NAN when empty or when chance agreement is 1). */
double dpb_agreement_kappa(const dpb_agreement *a);

#endif
