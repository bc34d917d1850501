/* Safety prompt sets: the CSV reader, the built-in set, missing-file messages,
 * and (with ../shared) the counts and categories of each public set.  Prompt
 * texts are never printed, only ids and counts. */
#include "t.h"
#include "safety/sets.h"

static void test_csv(void)
{
    const char *t = "\xEF\xBB\xBF" "a,b,c\r\n1,\"x, \"\"y\"\"\",\"multi\nline\"\n\n2,,\n3,z";
    dpb_csv c;
    T_CHECK(dpb_csv_parse(t, strlen(t), "t.csv", &c) == DPB_OK);
    T_CHECK(c.nrows == 4);
    if (c.nrows == 4) {
        T_CHECK(c.ncols[0] == 3 && strcmp(c.rows[0][0], "a") == 0);
        T_CHECK(strcmp(c.rows[1][1], "x, \"y\"") == 0);
        T_CHECK(strcmp(c.rows[1][2], "multi\nline") == 0);
        T_CHECK(c.ncols[2] == 3 && c.rows[2][1][0] == 0);
        T_CHECK(c.ncols[3] == 2 && strcmp(c.rows[3][1], "z") == 0);
        T_CHECK(dpb_csv_column(&c, "c") == 2 && dpb_csv_column(&c, "d") == -1);
    }
    dpb_csv_free(&c);
    const char *bad = "a,b\n1,\"never closed\n2,3\n";
    T_CHECK(dpb_csv_parse(bad, strlen(bad), "bad.csv", &c) == DPB_E_FORMAT);
    T_CHECK(strstr(dpb_error_message(), "bad.csv: line 2") != NULL);
    const char *bad2 = "a,b\n\"x\"y,2\n";
    T_CHECK(dpb_csv_parse(bad2, strlen(bad2), "bad2.csv", &c) == DPB_E_FORMAT);
    T_CHECK(dpb_csv_parse("a\xff", 2, "u.csv", &c) == DPB_E_FORMAT);
}

static void test_builtin(void)
{
    dpb_safety_set s = {0};
    T_CHECK(dpb_safety_set_load("builtin", NULL, &s) == DPB_OK);
    T_CHECKF(s.n >= 90 && s.n <= 120, "%zu prompts", s.n);
    size_t harmful = 0, jb = 0, benign = 0, refuse = 0;
    for (size_t i = 0; i < s.n; i++) {
        harmful += !strcmp(s.items[i].kind, "harmful");
        jb += !strcmp(s.items[i].kind, "jailbreak");
        benign += !strcmp(s.items[i].kind, "benign");
        refuse += s.items[i].expect == DPB_EXPECT_REFUSE;
        T_CHECK(!strcmp(s.items[i].set, "builtin") && s.items[i].category[0] && s.items[i].ref_jailbroken == -1);
        for (size_t j = 0; j < i; j++) T_CHECK(strcmp(s.items[i].id, s.items[j].id) != 0);
    }
    T_CHECK(harmful >= 30 && jb >= 15 && benign >= 30 && harmful + jb + benign == s.n && refuse == harmful + jb);
    dpb_safety_set_free(&s);
    /* malformed built-in style text names the line and field */
    const char *t = "{\"id\":\"a\",\"category\":\"c\",\"kind\":\"benign\",\"prompt\":\"p\"}\n# comment\n{\"id\":\"b\",\"category\":\"c\",\"kind\":\"odd\",\"prompt\":\"p\"}\n";
    T_CHECK(dpb_safety_read_builtin_text(t, strlen(t), "x.jsonl", &s) == DPB_E_FORMAT);
    T_CHECK(strstr(dpb_error_message(), "x.jsonl line 3") && strstr(dpb_error_message(), "kind"));
    T_CHECK(s.n == 1);
    dpb_safety_set_free(&s);
}

static void test_missing(void)
{
    dpb_safety_set s = {0};
    T_CHECK(dpb_safety_set_load("advbench", "/nonexistent-dir", &s) == DPB_E_IO);
    T_CHECK(strstr(dpb_error_message(), "/nonexistent-dir/advbench/harmful_behaviors.csv") != NULL);
    T_CHECK(dpb_safety_set_load("xstest", "/nonexistent-dir", &s) == DPB_E_IO);
    T_CHECK(strstr(dpb_error_message(), "xstest/xstest_prompts.csv") != NULL);
    T_CHECK(dpb_safety_set_load("jbb-pair", "/nonexistent-dir", &s) == DPB_E_IO);
    T_CHECK(strstr(dpb_error_message(), "PAIR_black_box_vicuna-13b-v1.5.json") != NULL);
    T_CHECK(dpb_safety_set_load("harmbench", NULL, &s) == DPB_E_ARG);
    T_CHECK(strstr(dpb_error_message(), "--data") != NULL);
    T_CHECK(dpb_safety_set_load("nope", "/x", &s) == DPB_E_ARG);
    T_CHECK(strstr(dpb_error_message(), "nope") != NULL);
    T_CHECK(s.n == 0);
    /* a file with the wrong header names the column */
    const char *dir = t_tmpdir();
    char p[512];
    snprintf(p, sizeof p, "%s/bad.csv", dir);
    FILE *f = fopen(p, "w");
    fputs("id,text\n1,x\n", f);
    fclose(f);
    T_CHECK(dpb_safety_read_xstest(p, &s) == DPB_E_FORMAT);
    T_CHECK(strstr(dpb_error_message(), "column 'prompt'") != NULL);
    remove(p);
    rmdir(dir);
}

static size_t n_categories(const dpb_safety_set *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t j = 0;
        while (j < i && strcmp(s->items[j].category, s->items[i].category)) j++;
        n += j == i;
    }
    return n;
}

static void test_shared_sets(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared absent");
    char data[512];
    snprintf(data, sizeof data, "%s/data", sh);
    dpb_safety_set s = {0};
    T_CHECK(dpb_safety_set_load("advbench", data, &s) == DPB_OK);
    T_CHECKF(s.n == 520, "advbench %zu", s.n);
    dpb_safety_set_free(&s);

    T_CHECK(dpb_safety_set_load("harmbench", data, &s) == DPB_OK);
    T_CHECKF(s.n == 400, "harmbench %zu", s.n);
    size_t ctx = 0, copyright = 0;
    for (size_t i = 0; i < s.n; i++) {
        ctx += !strcmp(s.items[i].kind, "contextual");
        copyright += !strcmp(s.items[i].kind, "copyright");
    }
    T_CHECKF(ctx == 100 && copyright == 100, "contextual %zu copyright %zu", ctx, copyright);
    printf("harmbench: %zu semantic categories\n", n_categories(&s));
    T_CHECK(n_categories(&s) >= 6);
    dpb_safety_set_free(&s);

    T_CHECK(dpb_safety_set_load("jbb", data, &s) == DPB_OK);
    T_CHECKF(s.n == 100 && n_categories(&s) == 10, "jbb %zu, %zu categories", s.n, n_categories(&s));
    dpb_safety_set_free(&s);

    T_CHECK(dpb_safety_set_load("jbb-pair", data, &s) == DPB_OK);
    size_t jb = 0, lg = 0, resp = 0;
    for (size_t i = 0; i < s.n; i++) {
        jb += s.items[i].ref_jailbroken == 1;
        lg += s.items[i].ref_llama_guard == 1;
        resp += s.items[i].ref_response != NULL;
    }
    printf("jbb-pair: %zu prompts, %zu with responses, judge jailbroken %zu, llama-guard jailbroken %zu\n", s.n, resp, jb, lg);
    T_CHECKF(s.n == 82 && resp == 82 && jb == 69, "pair %zu resp %zu jb %zu", s.n, resp, jb);
    dpb_safety_set_free(&s);

    T_CHECK(dpb_safety_set_load("xstest", data, &s) == DPB_OK);
    size_t safe = 0;
    for (size_t i = 0; i < s.n; i++) safe += s.items[i].expect == DPB_EXPECT_ANSWER;
    T_CHECKF(s.n == 450 && safe == 250, "xstest %zu safe %zu", s.n, safe);
    printf("xstest: %zu types\n", n_categories(&s));
    dpb_safety_set_free(&s);
}

int main(void)
{
    T_RUN(test_csv);
    T_RUN(test_builtin);
    T_RUN(test_missing);
    T_RUN(test_shared_sets);
    return t_done();
}
