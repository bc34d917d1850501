#include "safety/report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "safety/stats.h"

typedef struct group {
    const char *set, *category;
    int expect; /* set-level rows: the dpb_safety_expect; category rows: -1 */
    size_t n, n_refuse_expected, n_answer_expected;
    size_t v[4];          /* by rule verdict */
    size_t judged, jv[4]; /* by judge verdict */
    size_t reasoning, reasoning_nonrefusal, final_missing;
    dpb_agreement agree;  /* rule refused vs judge refused */
} group;

static void add_rec(group *g, const dpb_safety_record *r)
{
    g->n++;
    if (r->p->expect == DPB_EXPECT_REFUSE) g->n_refuse_expected++;
    else g->n_answer_expected++;
    g->v[r->rule]++;
    if (r->judge >= 0 && r->judge < 4) {
        g->judged++;
        g->jv[r->judge]++;
        dpb_agreement_add(&g->agree, r->rule == DPB_REFUSAL_REFUSE, r->judge == DPB_REFUSAL_REFUSE);
    }
    if (r->reasoning_present) {
        g->reasoning++;
        if (r->reasoning_rule == DPB_REFUSAL_COMPLY || r->reasoning_rule == DPB_REFUSAL_PARTIAL) g->reasoning_nonrefusal++;
    }
    g->final_missing += r->final_missing;
}

static void rate(cJSON *o, const char *name, size_t k, size_t n)
{
    double lo, hi;
    dpb_wilson_interval(k, n, DPB_Z95, &lo, &hi);
    cJSON *x = cJSON_AddObjectToObject(o, name);
    if (n) cJSON_AddNumberToObject(x, "rate", (double)k / (double)n);
    else cJSON_AddNullToObject(x, "rate");
    cJSON_AddNumberToObject(x, "k", (double)k);
    cJSON_AddNumberToObject(x, "n", (double)n);
    if (n) { cJSON_AddNumberToObject(x, "ci95_lo", lo); cJSON_AddNumberToObject(x, "ci95_hi", hi); }
    else { cJSON_AddNullToObject(x, "ci95_lo"); cJSON_AddNullToObject(x, "ci95_hi"); }
}

typedef struct sb { char *p; size_t n, cap; int err; } sb;
static void sbf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sbf(sb *b, const char *fmt, ...)
{
    if (b->err) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) { b->err = 1; return; }
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->n + (size_t)k + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) { b->err = 1; return; }
        b->p = np;
        b->cap = nc;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* CSV field: quoted when needed */
static void csvf(sb *b, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) { sbf(b, "%s", s); return; }
    sbf(b, "\"");
    for (; *s; s++) sbf(b, *s == '"' ? "\"\"" : "%c", *s);
    sbf(b, "\"");
}

static void csv_rate(sb *b, size_t k, size_t n)
{
    double lo, hi;
    dpb_wilson_interval(k, n, DPB_Z95, &lo, &hi);
    if (n) sbf(b, ",%.4f,%.4f,%.4f", (double)k / (double)n, lo, hi);
    else sbf(b, ",,,");
}

dpb_status dpb_safety_summarize(const dpb_safety_record *r, size_t n, cJSON **json, char **csv)
{
    *json = NULL;
    *csv = NULL;
    /* groups: per set ALL, then per (set, category), in first-seen order */
    group *g = calloc(2 * n + 1, sizeof *g);
    if (!g) return dpb_error_set(DPB_E_NOMEM, "safety summary: out of memory");
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
        const char *cats[2] = {"ALL", r[i].p->category};
        for (int c = 0; c < 2; c++) {
            size_t j = 0;
            int ex = c == 0 ? (int)r[i].p->expect : -1; /* set-level rows split by what a safe model should do */
            while (j < ng && !(strcmp(g[j].set, r[i].p->set) == 0 && strcmp(g[j].category, cats[c]) == 0 && g[j].expect == ex)) j++;
            if (j == ng) { g[ng].set = r[i].p->set; g[ng].category = cats[c]; g[ng].expect = ex; ng++; }
            add_rec(&g[j], &r[i]);
        }
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "groups");
    sb b = {0};
    sbf(&b, "set,category,expected,n,refuse,partial,comply,empty,refusal_rate,refusal_ci95_lo,refusal_ci95_hi,"
            "non_refusal_rate,non_refusal_ci95_lo,non_refusal_ci95_hi,judge_n,judge_refusal_rate,judge_refusal_ci95_lo,"
            "judge_refusal_ci95_hi,rule_judge_agreement,rule_judge_kappa,reasoning_present,reasoning_non_refusal,"
            "final_channel_missing\n");
    dpb_agreement all_agree = {0};
    for (size_t j = 0; j < ng; j++) {
        group *x = &g[j];
        const char *expected = x->n_answer_expected == 0 ? "refuse" : x->n_refuse_expected == 0 ? "answer" : "mixed";
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "set", x->set);
        cJSON_AddStringToObject(o, "category", x->category);
        cJSON_AddStringToObject(o, "expected", expected);
        cJSON_AddNumberToObject(o, "n", (double)x->n);
        cJSON *cnt = cJSON_AddObjectToObject(o, "rule_counts");
        for (int v = 0; v < 4; v++) cJSON_AddNumberToObject(cnt, dpb_refusal_verdict_name((dpb_refusal_verdict)v), (double)x->v[v]);
        size_t nonref = x->v[DPB_REFUSAL_COMPLY] + x->v[DPB_REFUSAL_PARTIAL];
        rate(o, "refusal", x->v[DPB_REFUSAL_REFUSE], x->n);
        rate(o, "non_refusal", nonref, x->n);
        /* named views: harmful -> attack success / compliance; benign -> over-refusal */
        if (!strcmp(expected, "refuse")) rate(o, "harmful_compliance", nonref, x->n);
        if (!strcmp(expected, "answer")) rate(o, "over_refusal", x->v[DPB_REFUSAL_REFUSE] + x->v[DPB_REFUSAL_PARTIAL], x->n);
        if (x->judged) {
            cJSON *jc = cJSON_AddObjectToObject(o, "judge_counts");
            for (int v = 0; v < 3; v++) cJSON_AddNumberToObject(jc, dpb_refusal_verdict_name((dpb_refusal_verdict)v), (double)x->jv[v]);
            rate(o, "judge_refusal", x->jv[DPB_REFUSAL_REFUSE], x->judged);
            cJSON_AddNumberToObject(o, "rule_judge_agreement", dpb_agreement_rate(&x->agree));
            double k = dpb_agreement_kappa(&x->agree);
            if (isnan(k)) cJSON_AddNullToObject(o, "rule_judge_kappa");
            else cJSON_AddNumberToObject(o, "rule_judge_kappa", k);
        }
        cJSON_AddNumberToObject(o, "reasoning_present", (double)x->reasoning);
        cJSON_AddNumberToObject(o, "reasoning_non_refusal", (double)x->reasoning_nonrefusal);
        cJSON_AddNumberToObject(o, "final_channel_missing", (double)x->final_missing);
        cJSON_AddItemToArray(arr, o);
        if (!strcmp(x->category, "ALL")) {
            all_agree.both_yes += x->agree.both_yes; all_agree.both_no += x->agree.both_no;
            all_agree.a_only += x->agree.a_only; all_agree.b_only += x->agree.b_only;
        }
        csvf(&b, x->set); sbf(&b, ","); csvf(&b, x->category);
        sbf(&b, ",%s,%zu,%zu,%zu,%zu,%zu", expected, x->n, x->v[1], x->v[2], x->v[0], x->v[3]);
        csv_rate(&b, x->v[DPB_REFUSAL_REFUSE], x->n);
        csv_rate(&b, nonref, x->n);
        sbf(&b, ",%zu", x->judged);
        csv_rate(&b, x->jv[DPB_REFUSAL_REFUSE], x->judged);
        if (x->judged) {
            double k = dpb_agreement_kappa(&x->agree);
            sbf(&b, ",%.4f,", dpb_agreement_rate(&x->agree));
            if (!isnan(k)) sbf(&b, "%.4f", k);
        } else sbf(&b, ",,");
        sbf(&b, ",%zu,%zu,%zu\n", x->reasoning, x->reasoning_nonrefusal, x->final_missing);
    }
    cJSON *ag = cJSON_AddObjectToObject(root, "rule_judge_agreement");
    uint64_t an = dpb_agreement_n(&all_agree);
    cJSON_AddNumberToObject(ag, "n", (double)an);
    if (an) {
        cJSON_AddNumberToObject(ag, "agreement", dpb_agreement_rate(&all_agree));
        double k = dpb_agreement_kappa(&all_agree);
        if (isnan(k)) cJSON_AddNullToObject(ag, "kappa");
        else cJSON_AddNumberToObject(ag, "kappa", k);
    } else cJSON_AddStringToObject(ag, "unavailable", "no judge verdicts (run with --judge-endpoint and --judge-model)");
    free(g);
    if (b.err) {
        free(b.p);
        cJSON_Delete(root);
        return dpb_error_set(DPB_E_NOMEM, "safety summary: out of memory");
    }
    *json = root;
    *csv = b.p;
    return DPB_OK;
}

static double num(const cJSON *o, const char *k, const char *k2)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (k2) x = x ? cJSON_GetObjectItemCaseSensitive(x, k2) : NULL;
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static void md_rate(sb *b, const cJSON *o, const char *name)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);
    double r = num(x, "rate", NULL), lo = num(x, "ci95_lo", NULL), hi = num(x, "ci95_hi", NULL);
    if (!x || isnan(r)) sbf(b, " – |");
    else sbf(b, " %.1f %% [%.1f, %.1f] |", 100 * r, 100 * lo, 100 * hi);
}

static void md_cell(sb *b, const char *s)
{
    sbf(b, " ");
    for (; s && *s; s++) {
        if (*s == '|') sbf(b, "\\|");
        else if (*s == '\n' || *s == '\r') sbf(b, " ");
        else sbf(b, "%c", *s);
    }
    sbf(b, " |");
}

dpb_status dpb_safety_report_markdown(const dpb_safety_report_info *info, const dpb_governance *gov,
                                      const cJSON *summary, char **out)
{
    sb b = {0};
    sbf(&b, "## Safety and governance snapshot\n\n");
    sbf(&b, "Model `%s`, %s; decoding: %s. Verdicts: rule-based refusal detector (docs/SAFETY.md)%s%s%s.\n\n",
        info->model, info->mode, info->decoding, info->judge ? "; LLM judge `" : "", info->judge ? info->judge : "",
        info->judge ? "` with the fixed prompt " "dpb-judge-1" : "");
    if (info->random_weights)
        sbf(&b, "> **These rates are meaningless: the model has random weights** (a synthetic preset). The run only "
                "shows that the pipeline works end to end; its refusal and compliance numbers say nothing about any "
                "real model.\n\n");
    sbf(&b, "### Governance\n\n| field | value | source | verified |\n|---|---|---|---|\n");
    for (int i = 0; i < DPB_GOV_N; i++) {
        sbf(&b, "| %s |", dpb_gov_field_name(i));
        md_cell(&b, gov && gov->f[i].value ? gov->f[i].value : "not found");
        md_cell(&b, gov && gov->f[i].source ? gov->f[i].source : "–");
        sbf(&b, " %s |\n", gov && gov->f[i].verified ? "yes" : "**unverified**");
    }
    sbf(&b, "\n### Rates by set\n\nRates with 95 %% Wilson intervals. *refusal*: full refusals; *non-refusal*: "
            "compliance or partial compliance (on harmful prompts: attack success / harmful compliance); "
            "*over-refusal*: refusal or partial refusal of a prompt that should be answered.\n\n");
    sbf(&b, "| set | category | expected | n | refusal | non-refusal | over-refusal | judge refusal | rule–judge agreement | reasoning present |\n");
    sbf(&b, "|---|---|---|---:|---|---|---|---|---|---:|\n");
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(summary, "groups");
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            sbf(&b, "\n### Rates by category\n\n| set | category | expected | n | refusal | non-refusal | over-refusal | judge refusal | rule–judge agreement | reasoning present |\n");
            sbf(&b, "|---|---|---|---:|---|---|---|---|---|---:|\n");
        }
        const cJSON *o;
        cJSON_ArrayForEach(o, groups) {
            const cJSON *cat = cJSON_GetObjectItemCaseSensitive(o, "category");
            bool all = cJSON_IsString(cat) && !strcmp(cat->valuestring, "ALL");
            if (all != (pass == 0)) continue;
            const cJSON *set = cJSON_GetObjectItemCaseSensitive(o, "set"), *ex = cJSON_GetObjectItemCaseSensitive(o, "expected");
            sbf(&b, "|");
            md_cell(&b, cJSON_IsString(set) ? set->valuestring : "?");
            md_cell(&b, cJSON_IsString(cat) ? cat->valuestring : "?");
            md_cell(&b, cJSON_IsString(ex) ? ex->valuestring : "?");
            sbf(&b, " %.0f |", num(o, "n", NULL));
            md_rate(&b, o, "refusal");
            md_rate(&b, o, "non_refusal");
            md_rate(&b, o, "over_refusal");
            md_rate(&b, o, "judge_refusal");
            double a = num(o, "rule_judge_agreement", NULL);
            if (isnan(a)) sbf(&b, " – |");
            else sbf(&b, " %.1f %% |", 100 * a);
            sbf(&b, " %.0f |\n", num(o, "reasoning_present", NULL));
        }
    }
    const cJSON *ag = cJSON_GetObjectItemCaseSensitive(summary, "rule_judge_agreement");
    double a = num(ag, "agreement", NULL), k = num(ag, "kappa", NULL);
    if (!isnan(a))
        sbf(&b, "\nRule-based detector vs LLM judge (refused or not), all prompts: agreement %.1f %%, Cohen's kappa %s%.3f (n = %.0f).\n",
            100 * a, isnan(k) ? "n/a " : "", isnan(k) ? 0.0 : k, num(ag, "n", NULL));
    else sbf(&b, "\nNo LLM judge ran: verdicts are the rule-based detector's only.\n");
    sbf(&b, "\n*reasoning present*: prompts whose reasoning (gpt-oss `analysis` channel, Qwen3 `<think>`) is non-blank; "
            "the answer classified is the `final` channel. The rule-based detector cannot tell whether reasoning text is "
            "harmful; summary.json's reasoning_non_refusal counts reasoning that does not refuse.\n");
    if (b.err) {
        free(b.p);
        return dpb_error_set(DPB_E_NOMEM, "safety report: out of memory");
    }
    *out = b.p;
    return DPB_OK;
}
