/* Our rule-based verdicts on the responses recorded in JailbreakBench's PAIR
 * artifact (Vicuna-13B), compared with the artifact's labels: "jailbroken"
 * (JailbreakBench's judge) and "jailbroken_llama_guard1".  We call a response
 * "jailbroken" when the detector finds no full refusal (comply or partial).
 * Prints the agreement quoted in docs/SAFETY.md; also checks the Wilson
 * interval and kappa arithmetic on known values. */
#include "t.h"
#include "safety/refusal.h"
#include "safety/sets.h"
#include "safety/stats.h"

static void test_stats(void)
{
    double lo, hi;
    dpb_wilson_interval(5, 10, DPB_Z95, &lo, &hi); /* reference: 0.2366, 0.7634 */
    T_CHECKF(fabs(lo - 0.2366) < 1e-3 && fabs(hi - 0.7634) < 1e-3, "%f %f", lo, hi);
    dpb_wilson_interval(0, 20, DPB_Z95, &lo, &hi); /* 0, 0.1611 */
    T_CHECKF(lo == 0 && fabs(hi - 0.1611) < 1e-3, "%f %f", lo, hi);
    dpb_wilson_interval(20, 20, DPB_Z95, &lo, &hi);
    T_CHECKF(hi == 1 && fabs(lo - 0.8389) < 1e-3, "%f %f", lo, hi);
    dpb_wilson_interval(0, 0, DPB_Z95, &lo, &hi);
    T_CHECK(isnan(lo) && isnan(hi));
    dpb_agreement a = {0};
    /* 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no: po 0.7, pe 0.5*0.6+0.5*0.4 = 0.5, kappa 0.4 */
    for (int i = 0; i < 20; i++) dpb_agreement_add(&a, true, true);
    for (int i = 0; i < 5; i++) dpb_agreement_add(&a, true, false);
    for (int i = 0; i < 10; i++) dpb_agreement_add(&a, false, true);
    for (int i = 0; i < 15; i++) dpb_agreement_add(&a, false, false);
    T_CHECK(dpb_agreement_n(&a) == 50);
    T_CHECK(fabs(dpb_agreement_rate(&a) - 0.7) < 1e-12 && fabs(dpb_agreement_kappa(&a) - 0.4) < 1e-12);
    dpb_agreement e = {0};
    T_CHECK(isnan(dpb_agreement_rate(&e)) && isnan(dpb_agreement_kappa(&e)));
}

static void test_pair_agreement(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared absent");
    char data[512];
    snprintf(data, sizeof data, "%s/data", sh);
    dpb_safety_set s = {0};
    T_CHECK(dpb_safety_set_load("jbb-pair", data, &s) == DPB_OK);
    dpb_refusal_detector *d;
    T_CHECK(dpb_refusal_detector_create(&d) == DPB_OK);
    if (!d) return;
    dpb_agreement judge = {0}, guard = {0};
    size_t counts[4] = {0};
    for (size_t i = 0; i < s.n; i++) {
        const dpb_safety_prompt *p = &s.items[i];
        if (!p->ref_response || p->ref_jailbroken < 0) continue;
        dpb_refusal_result r;
        T_CHECK(dpb_refusal_classify(d, p->ref_response, strlen(p->ref_response), &r) == DPB_OK);
        counts[r.verdict]++;
        bool ours = r.verdict == DPB_REFUSAL_COMPLY || r.verdict == DPB_REFUSAL_PARTIAL;
        dpb_agreement_add(&judge, ours, p->ref_jailbroken == 1);
        if (p->ref_llama_guard >= 0) dpb_agreement_add(&guard, ours, p->ref_llama_guard == 1);
        if (ours != (p->ref_jailbroken == 1))
            printf("  disagree %s: ours %s (rule %s), judge %s\n", p->id, dpb_refusal_verdict_name(r.verdict),
                   r.refusal_rule ? r.refusal_rule : "-", p->ref_jailbroken ? "jailbroken" : "not jailbroken");
    }
    printf("PAIR artifact (vicuna-13b-v1.5), %llu responses: ours comply %zu partial %zu refuse %zu empty %zu\n",
           (unsigned long long)dpb_agreement_n(&judge), counts[0], counts[2], counts[1], counts[3]);
    printf("  vs judge 'jailbroken': agreement %.3f, kappa %.3f (both yes %llu, both no %llu, ours only %llu, judge only %llu)\n",
           dpb_agreement_rate(&judge), dpb_agreement_kappa(&judge), (unsigned long long)judge.both_yes,
           (unsigned long long)judge.both_no, (unsigned long long)judge.a_only, (unsigned long long)judge.b_only);
    printf("  vs 'jailbroken_llama_guard1': agreement %.3f, kappa %.3f (both yes %llu, both no %llu, ours only %llu, guard only %llu)\n",
           dpb_agreement_rate(&guard), dpb_agreement_kappa(&guard), (unsigned long long)guard.both_yes,
           (unsigned long long)guard.both_no, (unsigned long long)guard.a_only, (unsigned long long)guard.b_only);
    T_CHECK(dpb_agreement_n(&judge) == 82);
    /* regression guard on the figure quoted in docs/SAFETY.md */
    T_CHECKF(dpb_agreement_rate(&judge) >= 0.80, "agreement %.3f", dpb_agreement_rate(&judge));
    dpb_refusal_detector_free(d);
    dpb_safety_set_free(&s);
}

int main(void)
{
    T_RUN(test_stats);
    T_RUN(test_pair_agreement);
    return t_done();
}
