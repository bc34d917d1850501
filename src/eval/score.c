/* Prompts and scoring as lm-evaluation-harness defines them (docs/EVAL.md
 * names the task YAMLs each rule comes from). */
#include "eval/eval.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/json.h"

/* ---------------------------------------------------------------- text builder */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int err;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->err) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) {
            if (nc > ((size_t)1 << 40)) { b->err = 1; return; }
            nc *= 2;
        }
        char *q = realloc(b->p, nc);
        if (!q) { b->err = 1; return; }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static dpb_status sb_done(sbuf *b, char **out)
{
    if (b->err || !b->p) {
        free(b->p);
        *out = NULL;
        return dpb_error_set(DPB_E_NOMEM, "eval: out of memory building a prompt");
    }
    *out = b->p;
    return DPB_OK;
}

/* Python's str.strip() for ASCII whitespace. */
static void sb_strip(sbuf *b, const char *s)
{
    const char *e = s + strlen(s);
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r' || *s == '\f' || *s == '\v') s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\f' || e[-1] == '\v')) e--;
    sb_add(b, s, (size_t)(e - s));
}

/* ---------------------------------------------------------------- prompts */

static void mmlu_body(sbuf *b, const dpb_eval_item *it)
{
    static const char *const L[4] = {"\nA. ", "\nB. ", "\nC. ", "\nD. "};
    sb_strip(b, it->question ? it->question : "");
    for (int c = 0; c < 4; c++) {
        sb_str(b, L[c]);
        sb_str(b, it->choices[c] ? it->choices[c] : "");
    }
    sb_str(b, "\nAnswer:");
}

dpb_status dpb_eval_mmlu_prompt(const dpb_eval_item *it, char **out)
{
    sbuf b = {0};
    mmlu_body(&b, it);
    return sb_done(&b, out);
}

dpb_status dpb_eval_mmlu_fewshot(const dpb_eval_item *it, const dpb_eval_set *dev, int k, char **out)
{
    sbuf b = {0};
    sb_str(&b, "The following are multiple choice questions (with answers) about ");
    for (const char *s = it->subset ? it->subset : ""; *s; s++) sb_add(&b, *s == '_' ? " " : s, 1);
    sb_str(&b, ".\n\n");
    int used = 0;
    for (size_t i = 0; dev && i < dev->n && used < k; i++) {
        const dpb_eval_item *d = &dev->items[i];
        if (it->subset && d->subset && strcmp(it->subset, d->subset) != 0) continue;
        if (d->answer < 0 || d->answer > 3) continue;
        mmlu_body(&b, d);
        char tail[4] = {' ', (char)('A' + d->answer), 0, 0};
        sb_str(&b, tail);
        sb_str(&b, "\n\n");
        used++;
    }
    mmlu_body(&b, it);
    return sb_done(&b, out);
}

dpb_status dpb_eval_gsm8k_prompt(const dpb_eval_item *it, const dpb_eval_set *pool, const size_t *shots, int k,
                                 char **out)
{
    sbuf b = {0};
    for (size_t i = 0; pool && (int)i < k; i++) {
        size_t j = shots ? shots[i] : i;
        if (j >= pool->n) break;
        sb_str(&b, "Question: ");
        sb_str(&b, pool->items[j].question);
        sb_str(&b, "\nAnswer: ");
        sb_str(&b, pool->items[j].target);
        sb_str(&b, "\n\n");
    }
    sb_str(&b, "Question: ");
    sb_str(&b, it->question);
    sb_str(&b, "\nAnswer:");
    return sb_done(&b, out);
}

/* lm_eval/tasks/gsm8k/gsm8k-cot.yaml's fewshot_config samples (Wei et al.'s 8 exemplars). */
static const char *const k_cot_q[8] = {
    "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?",
    "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
    "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
    "Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason give to Denny?",
    "Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?",
    "There were nine computers in the server room. Five more computers were installed each day, from monday to thursday. How many computers are now in the server room?",
    "Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?",
    "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
};
static const char *const k_cot_a[8] = {
    "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The answer is 6.",
    "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.",
    "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, they had 74 - 35 = 39. The answer is 39.",
    "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. The answer is 8.",
    "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. The answer is 9.",
    "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers were added. 9 + 20 is 29. The answer is 29.",
    "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33.",
    "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8.",
};

dpb_status dpb_eval_gsm8k_cot_prompt(const dpb_eval_item *it, int k, char **out)
{
    sbuf b = {0};
    for (int i = 0; i < k && i < 8; i++) {
        sb_str(&b, "Q: ");
        sb_str(&b, k_cot_q[i]);
        sb_str(&b, "\nA: ");
        sb_str(&b, k_cot_a[i]);
        sb_str(&b, "\n\n");
    }
    sb_str(&b, "Q: ");
    sb_str(&b, it->question);
    sb_str(&b, "\nA:");
    return sb_done(&b, out);
}

dpb_status dpb_eval_bbh_prompt(const dpb_eval_item *it, const char *description, const char *shots, int k, char **out)
{
    sbuf b = {0};
    if (description && *description) {
        sb_str(&b, description);
        sb_str(&b, "\n\n");
    }
    if (k > 0 && shots && *shots) {
        sb_str(&b, shots);
        sb_str(&b, "\n\n");
    }
    sb_str(&b, "Q: ");
    sb_str(&b, it->question);
    sb_str(&b, "\nA: Let's think step by step.\n");
    return sb_done(&b, out);
}

/* ---------------------------------------------------------------- regex helpers */

/* All matches of pattern in s (non-overlapping, like Python's re.findall);
 * for each, the first non-empty capture group (or the whole match when the
 * pattern has no group).  which = 0: the first match, -1: the last.  *out is
 * NULL when nothing matched. */
static dpb_status regex_pick(const char *pattern, uint32_t opts, const char *s, int which, char **out)
{
    *out = NULL;
    size_t bad;
    if (!dpb_utf8_valid((const uint8_t *)s, strlen(s), &bad))
        return dpb_error_set(DPB_E_FORMAT, "eval: the text is not valid UTF-8 (byte %zu)", bad);
    int err;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts | PCRE2_UTF, &err, &eoff, NULL);
    if (!re) return dpb_error_set(DPB_E_INTERNAL, "eval: regex '%s' does not compile", pattern);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) { pcre2_code_free(re); return dpb_error_set(DPB_E_NOMEM, "out of memory"); }
    uint32_t ngroups = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &ngroups);
    size_t len = strlen(s), off = 0, bs = 0, be = 0;
    bool found = false;
    dpb_status st = DPB_OK;
    while (off <= len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, off, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            if (rc == PCRE2_ERROR_BADUTFOFFSET || rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT) break;
            st = dpb_error_set(DPB_E_FORMAT, "eval: regex match failed (%d)", rc);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1], gs = ms, ge = me;
        if (ngroups > 0) {
            gs = ge = 0;
            for (uint32_t g = 1; g <= ngroups && (int)g < rc; g++)
                if (ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] > ov[2 * g]) { gs = ov[2 * g]; ge = ov[2 * g + 1]; break; }
        }
        bs = gs;
        be = ge;
        found = true;
        if (which == 0) break;
        off = me > ms ? me : me + 1;
        /* keep UTF-8 alignment after an empty match */
        while (off < len && ((unsigned char)s[off] & 0xC0) == 0x80) off++;
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    if (st) return st;
    if (found) {
        *out = malloc(be - bs + 1);
        if (!*out) return dpb_error_set(DPB_E_NOMEM, "out of memory");
        memcpy(*out, s + bs, be - bs);
        (*out)[be - bs] = 0;
    }
    return DPB_OK;
}

/* lm-eval's RegexFilter then take_first: the pick, stripped, else "[invalid]". */
static dpb_status filter(const char *pattern, const char *output, int which, char **out)
{
    char *m = NULL;
    dpb_status st = regex_pick(pattern, 0, output ? output : "", which, &m);
    if (st) return st;
    if (!m) {
        *out = strdup(DPB_EVAL_INVALID);
        return *out ? DPB_OK : dpb_error_set(DPB_E_NOMEM, "out of memory");
    }
    sbuf b = {0};
    sb_strip(&b, m);
    free(m);
    if (!b.p) sb_add(&b, "", 0);
    return sb_done(&b, out);
}

dpb_status dpb_eval_gsm8k_strict(const char *output, char **out)
{
    return filter("#### (\\-?[0-9\\.\\,]+)", output, 0, out);
}

dpb_status dpb_eval_gsm8k_cot_strict(const char *output, char **out)
{
    return filter("The answer is (\\-?[0-9\\.\\,]+).", output, 0, out);
}

dpb_status dpb_eval_gsm8k_flexible(const char *output, char **out)
{
    return filter("(-?[$0-9.,]{2,})|(-?[0-9]+)", output, -1, out);
}

dpb_status dpb_eval_bbh_extract(const char *output, char **out)
{
    return filter("(?<=the answer is )(.*)(?=.)", output, 0, out);
}

/* Python's re.sub(pattern, "", s) for the patterns lm-eval ignores. */
static dpb_status regex_remove(const char *pattern, char *s)
{
    size_t bad;
    if (!dpb_utf8_valid((const uint8_t *)s, strlen(s), &bad))
        return dpb_error_set(DPB_E_FORMAT, "eval: the text is not valid UTF-8 (byte %zu)", bad);
    int err;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &eoff, NULL);
    if (!re) return dpb_error_set(DPB_E_INTERNAL, "eval: regex '%s' does not compile", pattern);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) { pcre2_code_free(re); return dpb_error_set(DPB_E_NOMEM, "out of memory"); }
    size_t len = strlen(s), off = 0, w = 0, r = 0;
    while (off <= len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, off, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        /* copy s[r, ov[0]) then skip the match */
        memmove(s + w, s + r, ov[0] - r);
        w += ov[0] - r;
        r = ov[1];
        off = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
        if (ov[1] == ov[0] && ov[0] < len) { s[w++] = s[r]; r++; }
    }
    memmove(s + w, s + r, len - r);
    w += len - r;
    s[w] = 0;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return DPB_OK;
}

static dpb_status gsm8k_normalize(const char *in, char **out)
{
    static const char *const ignore[] = {",", "\\$", "(?s).*#### ", "\\.$"};
    char *s = strdup(in ? in : "");
    if (!s) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    for (size_t i = 0; i < sizeof ignore / sizeof *ignore; i++) {
        dpb_status st = regex_remove(ignore[i], s);
        if (st) { free(s); return st; }
    }
    /* ignore_case: Python's str.lower(); ASCII is what these strings hold */
    for (char *p = s; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    *out = s;
    return DPB_OK;
}

dpb_status dpb_eval_gsm8k_match(const char *extracted, const char *target, bool *match)
{
    char *a = NULL, *b = NULL;
    dpb_status st = gsm8k_normalize(extracted, &a);
    if (!st) st = gsm8k_normalize(target, &b);
    *match = !st && strcmp(a, b) == 0;
    free(a);
    free(b);
    return st;
}

bool dpb_eval_bbh_match(const char *extracted, const char *target)
{
    return extracted && target && strcmp(extracted, target) == 0;
}

int dpb_eval_argmax(const double *ll, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (ll[i] > ll[best] || (isnan(ll[best]) && !isnan(ll[i]))) best = i;
    return best;
}

void dpb_eval_apply_stops(char *text, const char *const *stops, int nstops)
{
    size_t cut = strlen(text);
    for (int i = 0; i < nstops; i++) {
        if (!stops[i] || !*stops[i]) continue;
        const char *p = strstr(text, stops[i]);
        if (p && (size_t)(p - text) < cut) cut = (size_t)(p - text);
    }
    text[cut] = 0;
}

double dpb_eval_stderr(double correct, double n)
{
    if (n < 2) return NAN;
    double p = correct / n;
    return sqrt(p * (1 - p) / (n - 1));
}
