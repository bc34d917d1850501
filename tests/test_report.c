/* deploybench report: escaping for HTML, LaTeX and gnuplot; a report of an empty folder lists every
 * figure as not drawn (never an empty plot); a missing folder is an error naming it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/file.h"
#include "report/report.h"
#include "t.h"

static char *esc(void (*fn)(FILE *, const char *), const char *s)
{
    char *b = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&b, &n);
    fn(f, s);
    fclose(f);
    return b;
}

static void test_html(void)
{
    char *o = esc(dpb_html_escape, "a<b>&\"c\"'d'");
    T_CHECKF(strcmp(o, "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;") == 0, "%s", o);
    free(o);
    o = esc(dpb_html_escape, "x\001y");
    T_CHECK(strcmp(o, "x?y") == 0);
    free(o);
    o = esc(dpb_html_escape, NULL);
    T_CHECK(strcmp(o, "") == 0);
    free(o);
}

static void test_latex(void)
{
    char *o = esc(dpb_latex_escape, "\\{}$&#^_%~");
    T_CHECKF(strcmp(o, "\\textbackslash{}\\{\\}\\$\\&\\#\\textasciicircum{}\\_\\%\\textasciitilde{}") == 0, "%s", o);
    free(o);
    o = esc(dpb_latex_escape, "a<b>|\"");
    T_CHECKF(strcmp(o, "a\\textless{}b\\textgreater{}\\textbar{}\\textquotedbl{}") == 0, "%s", o);
    free(o);
    /* a path may break after each slash; non-ASCII becomes one '?' per character */
    o = esc(dpb_latex_escape, "a/b \xc3\xa9t\xc3\xa9");
    T_CHECKF(strcmp(o, "a/\\allowbreak{}b ?t?") == 0, "%s", o);
    free(o);
    o = esc(dpb_latex_escape, "line\nbreak");
    T_CHECK(strcmp(o, "line break") == 0);
    free(o);
}

static void test_gnuplot(void)
{
    char *o = esc(dpb_gnuplot_escape, "it's\n");
    T_CHECKF(strcmp(o, "it''s ") == 0, "%s", o);
    free(o);
}

static void test_empty_folder(void)
{
    char dir[] = "/tmp/dpb_test_report_XXXXXX";
    T_CHECK(mkdtemp(dir) != NULL);
    dpb_report_opts o = {.results = dir, .gnuplot = "/nonexistent/gnuplot", .build_pdf = false};
    dpb_report_result r;
    T_CHECK(dpb_report_write(&o, &r) == DPB_OK);
    T_CHECKF(r.figures_drawn == 0 && r.figures_skipped == 8, "%d drawn, %d skipped", r.figures_drawn, r.figures_skipped);
    char path[256];
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/summary.md", dir);
    T_CHECK(dpb_file_read(path, 1 << 20, &text, &len) == DPB_OK);
    T_CHECK(text && strstr(text, "TTFT vs prompt length: **not drawn**: no latency results"));
    T_CHECK(text && strstr(text, "Goodput vs concurrency: **not drawn**: no serving results"));
    free(text);
    snprintf(path, sizeof path, "%s/report.html", dir);
    T_CHECK(dpb_file_read(path, 1 << 20, &text, &len) == DPB_OK);
    T_CHECK(text && strstr(text, "<!DOCTYPE html>") && !strstr(text, "<script") && !strstr(text, "data:image"));
    free(text);
    snprintf(path, sizeof path, "%s/paper/main.tex", dir);
    T_CHECK(dpb_file_exists(path));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    T_CHECK(system(cmd) == 0);
}

static void test_missing(void)
{
    dpb_report_opts o = {.results = "/nonexistent/results/dir"};
    dpb_report_result r;
    T_CHECK(dpb_report_write(&o, &r) == DPB_E_ARG);
    T_CHECK(strstr(dpb_error_message(), "/nonexistent/results/dir: not a folder") != NULL);
}

int main(void)
{
    T_RUN(test_html);
    T_RUN(test_latex);
    T_RUN(test_gnuplot);
    T_RUN(test_empty_folder);
    T_RUN(test_missing);
    return t_done();
}
