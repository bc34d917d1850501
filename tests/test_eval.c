/* Evaluation readers and scoring against lm-evaluation-harness's rules.
 * The GSM8K table's expected values were produced by Python's re with
 * lm-eval's RegexFilter/take_first and exact_match(ignore_case,
 * regexes_to_ignore) logic (see docs/EVAL.md). */
#include "t.h"
#include "core/file.h"
#include "eval/eval.h"

typedef struct {
    const char *out, *target;
    const char *strict; int strict_ok;
    const char *flex; int flex_ok;
    const char *cot; int cot_ok;
} gsm_case;

static const gsm_case k_gsm[] = {
    {"Natalia sold 48/2 = 24 clips in May.\n#### 72", "#### 72", "72", 1, "72", 1, "[invalid]", 0},
    {"#### 1,000", "#### 1000", "1,000", 1, "1,000", 1, "[invalid]", 0},
    {"#### $1,000", "#### 1000", "[invalid]", 0, "$1,000", 1, "[invalid]", 0},
    {"The total is $1,000.", "#### 1000", "[invalid]", 0, "$1,000.", 1, "[invalid]", 0},
    {"#### 72.", "#### 72", "72.", 1, "72.", 1, "[invalid]", 0},
    {"#### -5", "#### -5", "-5", 1, "-5", 1, "[invalid]", 0},
    {"She lost 5 dollars, so -5 is the change. #### -5", "#### -5", "-5", 1, "-5", 1, "[invalid]", 0},
    {"#### 5", "#### -5", "5", 0, "5", 0, "[invalid]", 0},
    {"First 3 + 4 = 7, then 7 * 2 = 14.", "#### 14", "[invalid]", 0, "14.", 1, "[invalid]", 0},
    {"First 3 + 4 = 7, then 7 * 2 = 14. #### 14", "#### 14", "14", 1, "14", 1, "[invalid]", 0},
    {"I do not know.", "#### 14", "[invalid]", 0, "[invalid]", 0, "[invalid]", 0},
    {"", "#### 0", "[invalid]", 0, "[invalid]", 0, "[invalid]", 0},
    {"#### 3.50", "#### 3.5", "3.50", 0, "3.50", 0, "[invalid]", 0},
    {"It costs $3.50.", "#### 3.50", "[invalid]", 0, "$3.50.", 1, "[invalid]", 0},
    {"#### 18\nQuestion: next one 99", "#### 18", "18", 1, "99", 0, "[invalid]", 0},
    {"#### 18 and later #### 20", "#### 18", "18", 1, "20", 0, "[invalid]", 0},
    {"####72", "#### 72", "[invalid]", 0, "72", 1, "[invalid]", 0},
    {"#### abc", "#### 5", "[invalid]", 0, "[invalid]", 0, "[invalid]", 0},
    {"The answer is 42.", "#### 42", "[invalid]", 0, "42.", 1, "42", 1},
    {"The answer is 42", "#### 42", "[invalid]", 0, "42", 1, "4", 0},
    {"The answer is $42.", "#### 42", "[invalid]", 0, "$42.", 1, "[invalid]", 0},
    {"The answer is 1,234.\n\nQ:", "#### 1234", "[invalid]", 0, "1,234.", 1, "1,234", 1},
    {"the answer is 42.", "#### 42", "[invalid]", 0, "42.", 1, "[invalid]", 0},
    {"There are 7 apples and 3 pears, 10 fruits.", "#### 10", "[invalid]", 0, "10", 1, "[invalid]", 0},
    {"Answer: 10.5 hours", "#### 10.5", "[invalid]", 0, "10.5", 1, "[invalid]", 0},
    {"Total: 2,500,000 people", "#### 2500000", "[invalid]", 0, "2,500,000", 1, "[invalid]", 0},
    {"x = -3.", "#### -3", "[invalid]", 0, "-3.", 1, "[invalid]", 0},
    {"It is 5 - 3 = 2", "#### 2", "[invalid]", 0, "2", 1, "[invalid]", 0},
    {"Result 7-", "#### 7", "[invalid]", 0, "7", 1, "[invalid]", 0},
    {"We get 1.", "#### 1", "[invalid]", 0, "1.", 1, "[invalid]", 0},
    {"#### 0", "#### 0", "0", 1, "0", 1, "[invalid]", 0},
    {"#### 100%", "#### 100", "100", 1, "100", 1, "[invalid]", 0},
    {"It is 12 o'clock. #### 12\n\n", "#### 12", "12", 1, "12", 1, "[invalid]", 0},
    {"#### 1.000", "#### 1", "1.000", 0, "1.000", 0, "[invalid]", 0},
    {"$5", "#### 5", "[invalid]", 0, "$5", 1, "[invalid]", 0},
    {"5 dollars then ...", "#### 5", "[invalid]", 0, "...", 0, "[invalid]", 0},
};

static void test_gsm8k_table(void)
{
    size_t n = sizeof k_gsm / sizeof *k_gsm;
    T_CHECK(n >= 30);
    for (size_t i = 0; i < n; i++) {
        const gsm_case *c = &k_gsm[i];
        char *s = NULL, *f = NULL, *k = NULL;
        T_CHECK(dpb_eval_gsm8k_strict(c->out, &s) == DPB_OK);
        T_CHECK(dpb_eval_gsm8k_flexible(c->out, &f) == DPB_OK);
        T_CHECK(dpb_eval_gsm8k_cot_strict(c->out, &k) == DPB_OK);
        if (!s || !f || !k) { free(s); free(f); free(k); continue; }
        T_CHECKF(strcmp(s, c->strict) == 0, "case %zu strict '%s' want '%s'", i, s, c->strict);
        T_CHECKF(strcmp(f, c->flex) == 0, "case %zu flexible '%s' want '%s'", i, f, c->flex);
        T_CHECKF(strcmp(k, c->cot) == 0, "case %zu cot '%s' want '%s'", i, k, c->cot);
        bool m1 = false, m2 = false, m3 = false;
        T_CHECK(dpb_eval_gsm8k_match(s, c->target, &m1) == DPB_OK);
        T_CHECK(dpb_eval_gsm8k_match(f, c->target, &m2) == DPB_OK);
        T_CHECK(dpb_eval_gsm8k_match(k, c->target, &m3) == DPB_OK);
        T_CHECKF(m1 == (bool)c->strict_ok, "case %zu strict match %d", i, m1);
        T_CHECKF(m2 == (bool)c->flex_ok, "case %zu flexible match %d", i, m2);
        T_CHECKF(m3 == (bool)c->cot_ok, "case %zu cot match %d", i, m3);
        free(s); free(f); free(k);
    }
}

static void test_gsm8k_target_with_solution(void)
{
    bool m = false;
    T_CHECK(dpb_eval_gsm8k_match("72", "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nSo 48+24 = <<48+24=72>>72.\n#### 72", &m) == DPB_OK);
    T_CHECK(m);
    T_CHECK(dpb_eval_gsm8k_match("[invalid]", "#### 72", &m) == DPB_OK);
    T_CHECK(!m);
}

static void test_mmlu_argmax(void)
{
    double a[4] = {-3.0, -1.5, -2.0, -9.0};
    T_CHECK(dpb_eval_argmax(a, 4) == 1);
    double b[4] = {-1.0, -1.0, -2.0, -0.5};
    T_CHECK(dpb_eval_argmax(b, 4) == 3);
    double c[4] = {-1.0, -1.0, -2.0, -3.0}; /* tie: first, like numpy.argmax */
    T_CHECK(dpb_eval_argmax(c, 4) == 0);
    double d[4] = {NAN, -4.0, -2.0, -3.0};
    T_CHECK(dpb_eval_argmax(d, 4) == 2);
}

static void test_bbh_match(void)
{
    char *x = NULL;
    T_CHECK(dpb_eval_bbh_extract("A and B is False. So the answer is False.", &x) == DPB_OK);
    T_CHECK(x && strcmp(x, "False") == 0);
    T_CHECK(dpb_eval_bbh_match(x, "False"));
    T_CHECK(!dpb_eval_bbh_match(x, "false")); /* no ignore_case in lm-eval's bbh template */
    free(x);
    T_CHECK(dpb_eval_bbh_extract("So the answer is (B).", &x) == DPB_OK);
    T_CHECK(x && strcmp(x, "(B)") == 0);
    T_CHECK(dpb_eval_bbh_match(x, "(B)"));
    free(x);
    T_CHECK(dpb_eval_bbh_extract("The answer is True.", &x) == DPB_OK); /* lookbehind is case-sensitive */
    T_CHECK(x && strcmp(x, "[invalid]") == 0);
    free(x);
    T_CHECK(dpb_eval_bbh_extract("so the answer is 24", &x) == DPB_OK); /* (?=.) drops the last character */
    T_CHECK(x && strcmp(x, "2") == 0);
    free(x);
    T_CHECK(dpb_eval_bbh_extract("the answer is a b c d.\nmore", &x) == DPB_OK);
    T_CHECK(x && strcmp(x, "a b c d") == 0);
    free(x);
}

static void test_stops_stderr(void)
{
    char t[] = "42 apples\n\nQuestion: next";
    const char *stops[] = {"Question:", "\n\n"};
    dpb_eval_apply_stops(t, stops, 2);
    T_CHECK(strcmp(t, "42 apples") == 0);
    T_CHECK(fabs(dpb_eval_stderr(5, 10) - sqrt(0.25 / 9)) < 1e-12);
    T_CHECK(isnan(dpb_eval_stderr(1, 1)));
}

static void test_csv_and_mmlu(void)
{
    const char *hdr = "question,choice0,choice1,choice2,choice3,answer\n"
                      "\"What, if anything?\",a,\"b \"\"q\"\"\",\"c\nd\",e ,2\r\n"
                      "Plain?,1,2,3,4,0\n";
    dpb_eval_set s = {0};
    T_CHECK(dpb_eval_mmlu_parse(hdr, strlen(hdr), "high_school_physics", "t.csv", &s) == DPB_OK);
    T_CHECK(s.n == 2);
    if (s.n == 2) {
        T_CHECK(strcmp(s.items[0].question, "What, if anything?") == 0);
        T_CHECK(strcmp(s.items[0].choices[1], "b \"q\"") == 0);
        T_CHECK(strcmp(s.items[0].choices[2], "c\nd") == 0);
        T_CHECK(strcmp(s.items[0].choices[3], "e ") == 0);
        T_CHECK(s.items[0].answer == 2 && s.items[1].answer == 0);
        char *p = NULL;
        T_CHECK(dpb_eval_mmlu_prompt(&s.items[1], &p) == DPB_OK);
        T_CHECK(p && strcmp(p, "Plain?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:") == 0);
        free(p);
        T_CHECK(dpb_eval_mmlu_fewshot(&s.items[1], &s, 1, &p) == DPB_OK);
        T_CHECK(p && strncmp(p, "The following are multiple choice questions (with answers) about high school physics.\n\n"
                                "What, if anything?\nA. a\n", 110) == 0);
        T_CHECK(p && strstr(p, "e \nAnswer: C\n\nPlain?\nA. 1") != NULL);
        free(p);
    }
    dpb_eval_set_free(&s);
    const char *letters = "Q1?,a,b,c,d,B\nQ2?,a,b,c,d,D\n";
    T_CHECK(dpb_eval_mmlu_parse(letters, strlen(letters), "x", "v.csv", &s) == DPB_OK);
    T_CHECK(s.n == 2 && s.items[0].answer == 1 && s.items[1].answer == 3);
    dpb_eval_set_free(&s);
    /* hostile: wrong field counts, bad answers, unterminated quotes, NUL */
    const char *bad[] = {"q,a,b,c,d\n", "q,a,b,c,d,E\n", "question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,4\n",
                         "\"q,a,b,c,d,A\n", "q,a,b,c,d,A,extra\n", "\"q\"x,a,b,c,d,A\n", "q,a,b,c,d,"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        dpb_status st = dpb_eval_mmlu_parse(bad[i], strlen(bad[i]), "x", "bad.csv", &s);
        T_CHECKF(st == DPB_E_FORMAT, "bad %zu gave %d", i, st);
        T_CHECK(strstr(dpb_error_message(), "bad.csv") != NULL);
        dpb_eval_set_free(&s);
    }
    const char nul[] = "q,a,b\0,c,d,A\n";
    T_CHECK(dpb_eval_mmlu_parse(nul, sizeof nul - 1, "x", "nul.csv", &s) == DPB_E_FORMAT);
    dpb_eval_set_free(&s);
}

static void test_jsonl_readers(void)
{
    const char *g = "{\"question\":\"1+1?\",\"answer\":\"1+1=2\\n#### 2\"}\n\n{\"question\":\"q\",\"answer\":\"#### 3\"}";
    dpb_eval_set s = {0};
    T_CHECK(dpb_eval_gsm8k_parse(g, strlen(g), "g.jsonl", &s) == DPB_OK);
    T_CHECK(s.n == 2);
    char *p = NULL;
    if (s.n == 2) {
        T_CHECK(dpb_eval_gsm8k_prompt(&s.items[1], &s, NULL, 1, &p) == DPB_OK);
        T_CHECK(p && strcmp(p, "Question: 1+1?\nAnswer: 1+1=2\n#### 2\n\nQuestion: q\nAnswer:") == 0);
        free(p);
    }
    dpb_eval_set_free(&s);
    const char *gbad[] = {"{\"question\":1,\"answer\":\"#### 2\"}", "{\"question\":\"q\"}", "[1]", "{\"question\":\"q\",\"answer\":\"2\"}", "{"};
    for (size_t i = 0; i < sizeof gbad / sizeof *gbad; i++) {
        T_CHECKF(dpb_eval_gsm8k_parse(gbad[i], strlen(gbad[i]), "g.jsonl", &s) != DPB_OK, "gsm bad %zu", i);
        T_CHECK(strstr(dpb_error_message(), "g.jsonl: line 1") != NULL);
        dpb_eval_set_free(&s);
    }
    const char *h = "{\"task_id\":\"T/0\",\"prompt\":\"def f():\\n\",\"entry_point\":\"f\",\"canonical_solution\":\"    return 1\\n\",\"test\":\"def check(c):\\n    assert c()==1\\n\"}";
    T_CHECK(dpb_eval_humaneval_parse(h, strlen(h), "h.jsonl", &s) == DPB_OK && s.n == 1);
    dpb_eval_set_free(&s);
    const char *hbad = "{\"task_id\":\"T/0\",\"prompt\":\"\",\"entry_point\":\"f(); import os\",\"canonical_solution\":\"\",\"test\":\"\"}";
    T_CHECK(dpb_eval_humaneval_parse(hbad, strlen(hbad), "h.jsonl", &s) == DPB_E_FORMAT);
    dpb_eval_set_free(&s);
    const char *b = "{\"canary\":\"x\",\"examples\":[{\"input\":\"not True is\",\"target\":\"False\"}]}";
    T_CHECK(dpb_eval_bbh_parse(b, strlen(b), "boolean_expressions", "b.json", &s) == DPB_OK && s.n == 1);
    if (s.n == 1) {
        T_CHECK(dpb_eval_bbh_prompt(&s.items[0], "Evaluate.", "Q: x\nA: y. So the answer is z.", 3, &p) == DPB_OK);
        T_CHECK(p && strcmp(p, "Evaluate.\n\nQ: x\nA: y. So the answer is z.\n\nQ: not True is\nA: Let's think step by step.\n") == 0);
        free(p);
    }
    dpb_eval_set_free(&s);
    const char *bbad = "{\"examples\":[{\"input\":\"x\"}]}";
    T_CHECK(dpb_eval_bbh_parse(bbad, strlen(bbad), "t", "b.json", &s) == DPB_E_FORMAT);
    dpb_eval_set_free(&s);
    char *d = NULL, *sh = NULL;
    const char *cot = "CANARY\n-----\nEvaluate things.\n\nQ: a\nA: b\n\n";
    T_CHECK(dpb_eval_bbh_cot_parse(cot, strlen(cot), "c.txt", &d, &sh) == DPB_OK);
    T_CHECK(d && sh && strcmp(d, "Evaluate things.") == 0 && strcmp(sh, "Q: a\nA: b") == 0);
    free(d); free(sh);
    T_CHECK(dpb_eval_bbh_cot_parse("x\ny\n", 4, "c.txt", &d, &sh) == DPB_E_FORMAT);
}

static void test_shared_data(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared is absent");
    char p[1024];
    dpb_eval_set s = {0};
    snprintf(p, sizeof p, "%s/data/mmlu/test", sh);
    T_CHECK(dpb_eval_mmlu_load_dir(p, "test", NULL, &s) == DPB_OK);
    T_CHECKF(s.n == 14042, "mmlu test %zu", s.n);
    dpb_eval_set_free(&s);
    snprintf(p, sizeof p, "%s/data/mmlu/dev", sh);
    T_CHECK(dpb_eval_mmlu_load_dir(p, "dev", NULL, &s) == DPB_OK);
    T_CHECKF(s.n == 285, "mmlu dev %zu", s.n);
    dpb_eval_set_free(&s);
    snprintf(p, sizeof p, "%s/data/mmlu/val-prerelease-2020", sh);
    T_CHECK(dpb_eval_mmlu_load_dir(p, "val", NULL, &s) == DPB_OK);
    T_CHECKF(s.n == 1542, "mmlu val %zu", s.n);
    dpb_eval_set_free(&s);
    snprintf(p, sizeof p, "%s/data/gsm8k/test.jsonl", sh);
    T_CHECK(dpb_eval_gsm8k_load(p, &s) == DPB_OK);
    T_CHECKF(s.n == 1319, "gsm8k %zu", s.n);
    dpb_eval_set_free(&s);
    snprintf(p, sizeof p, "%s/data/humaneval/HumanEval.jsonl.gz", sh);
    T_CHECK(dpb_eval_humaneval_load(p, &s) == DPB_OK);
    T_CHECKF(s.n == 164, "humaneval %zu", s.n);
    dpb_eval_set_free(&s);
    char **names = NULL;
    size_t nt = 0, total = 0;
    snprintf(p, sizeof p, "%s/data/bbh/bbh", sh);
    T_CHECK(dpb_eval_bbh_tasks(p, &names, &nt) == DPB_OK);
    T_CHECKF(nt == 27, "bbh tasks %zu", nt);
    for (size_t i = 0; i < nt; i++) {
        char f[1200];
        snprintf(f, sizeof f, "%s/data/bbh/bbh/%s.json", sh, names[i]);
        char *text = NULL;
        size_t len = 0;
        T_CHECK(dpb_file_read(f, DPB_EVAL_MAX_FILE, &text, &len) == DPB_OK);
        if (text) T_CHECK(dpb_eval_bbh_parse(text, len, names[i], f, &s) == DPB_OK);
        free(text);
        snprintf(f, sizeof f, "%s/data/bbh/cot-prompts/%s.txt", sh, names[i]);
        T_CHECK(dpb_file_read(f, DPB_EVAL_MAX_FILE, &text, &len) == DPB_OK);
        char *d = NULL, *shots = NULL;
        if (text) T_CHECK(dpb_eval_bbh_cot_parse(text, len, f, &d, &shots) == DPB_OK);
        T_CHECK(shots && strstr(shots, "Q: ") && strstr(shots, "So the answer is "));
        free(d); free(shots); free(text);
        free(names[i]);
    }
    free(names);
    total = s.n;
    T_CHECKF(total == 6511, "bbh examples %zu", total);
    dpb_eval_set_free(&s);
}

int main(void)
{
    T_RUN(test_gsm8k_table);
    T_RUN(test_gsm8k_target_with_solution);
    T_RUN(test_mmlu_argmax);
    T_RUN(test_bbh_match);
    T_RUN(test_stops_stderr);
    T_RUN(test_csv_and_mmlu);
    T_RUN(test_jsonl_readers);
    T_RUN(test_shared_data);
    return t_done();
}
