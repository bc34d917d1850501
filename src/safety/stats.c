#include "safety/stats.h"

#include <math.h>

void dpb_wilson_interval(uint64_t k, uint64_t n, double z, double *lo, double *hi)
{
    if (n == 0 || k > n) {
        *lo = *hi = NAN;
        return;
    }
    double nn = (double)n, p = (double)k / nn, z2 = z * z;
    double den = 1 + z2 / nn;
    double centre = (p + z2 / (2 * nn)) / den;
    double half = z * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / den;
    *lo = centre - half < 0 ? 0 : centre - half;
    *hi = centre + half > 1 ? 1 : centre + half;
    if (k == 0) *lo = 0;
    if (k == n) *hi = 1;
}

void dpb_agreement_add(dpb_agreement *a, bool x, bool y)
{
    if (x && y) a->both_yes++;
    else if (!x && !y) a->both_no++;
    else if (x) a->a_only++;
    else a->b_only++;
}

uint64_t dpb_agreement_n(const dpb_agreement *a) { return a->both_yes + a->both_no + a->a_only + a->b_only; }

double dpb_agreement_rate(const dpb_agreement *a)
{
    uint64_t n = dpb_agreement_n(a);
    return n ? (double)(a->both_yes + a->both_no) / (double)n : NAN;
}

double dpb_agreement_kappa(const dpb_agreement *a)
{
    double n = (double)dpb_agreement_n(a);
    if (n == 0) return NAN;
    double po = (double)(a->both_yes + a->both_no) / n;
    double pa = (double)(a->both_yes + a->a_only) / n, pb = (double)(a->both_yes + a->b_only) / n;
    double pe = pa * pb + (1 - pa) * (1 - pb);
    if (pe >= 1) return NAN;
    return (po - pe) / (1 - pe);
}
