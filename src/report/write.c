/* report.html, summary.md and paper/ from the collected data; and
 * dpb_report_write, which runs the whole report. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/file.h"
#include "core/timeutil.h"
#include "core/version.h"
#include "report/internal.h"
#include "report/report.h"

static const char *host_str(const rp_data *d, const char *key)
{
    const cJSON *h = d->host_manifest ? cJSON_GetObjectItemCaseSensitive(d->host_manifest, "host") : NULL;
    const char *s = rp_str(h, key);
    return s ? s : "not recorded";
}

/* Facts for the methods section, as {label, value} pairs of plain text. */
static int methods_facts(const rp_data *d, char facts[][2][512], int cap)
{
    int n = 0;
    const cJSON *hm = d->host_manifest;
    const cJSON *h = hm ? cJSON_GetObjectItemCaseSensitive(hm, "host") : NULL;
#define FACT(l, ...) \
    if (n < cap) snprintf(facts[n][0], sizeof facts[n][0], "%s", l), snprintf(facts[n][1], sizeof facts[n][1], __VA_ARGS__), n++
    FACT("CPU", "%s (%.0f threads)", host_str(d, "cpu_model"), rp_num(h, "cpu_threads"));
    FACT("memory", "%.1f GiB", rp_num(h, "mem_total_bytes") / 1073741824.0);
    FACT("operating system", "%s", host_str(d, "kernel"));
    FACT("GPUs", "%s", host_str(d, "gpus"));
    FACT("GPU driver", "%s", host_str(d, "gpu_driver_version"));
    FACT("CUDA driver", "%s", host_str(d, "cuda_driver_version"));
    FACT("deploybench", "%s, commit %s", rp_str(hm, "deploybench_version") ? rp_str(hm, "deploybench_version") : "?",
         rp_str(hm, "commit") ? rp_str(hm, "commit") : "?");
    const cJSON *st = d->study ? cJSON_GetObjectItemCaseSensitive(d->study, "study") : NULL;
    FACT("backend", "%s", rp_str(st, "backend") ? rp_str(st, "backend") : "as each step's manifest records");
    if (d->study) FACT("study command", "deploybench %s", rp_str(d->study, "command_line") ? rp_str(d->study, "command_line") + (strncmp(rp_str(d->study, "command_line"), "deploybench ", 12) == 0 ? 12 : 0) : "?");
    FACT("report written by", "deploybench %s (%s)", DPB_VERSION, dpb_build_commit());
#undef FACT
    return n;
}

/* ---- HTML --------------------------------------------------------------- */

static const char k_css[] =
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;color:#1d1d1f;"
    "background:#fafafa}main{max-width:1180px;margin:0 auto;padding:24px 28px 60px;background:#fff}"
    "h1{font-size:28px;margin:8px 0 4px}h2{font-size:21px;margin:36px 0 8px;border-bottom:2px solid #e5e5e5;"
    "padding-bottom:4px}h3{font-size:17px;margin:22px 0 6px}p.meta{color:#555;margin:0 0 12px}"
    ".badge{display:inline-block;background:#fff3cd;color:#7a5d00;border:1px solid #e8d48a;border-radius:4px;"
    "padding:1px 6px;font-size:12px;font-weight:600;margin-left:4px}"
    ".warn{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px;margin:12px 0}"
    "table{border-collapse:collapse;margin:8px 0 4px;font-size:13px;font-variant-numeric:tabular-nums}"
    "th,td{padding:4px 8px;text-align:right;border-bottom:1px solid #eee;vertical-align:top}"
    "th{background:#f3f4f6;border-top:2px solid #999;border-bottom:1px solid #999;font-weight:600}"
    "td:first-child,th:first-child{text-align:left}tbody tr:last-child td{border-bottom:2px solid #999}"
    ".scroll{overflow-x:auto}.caption{color:#555;font-size:13px;margin:2px 0 14px;max-width:900px}"
    "figure{margin:18px 0 26px}figure img{max-width:100%;height:auto;border:1px solid #eee}"
    "figcaption{color:#444;font-size:13px;max-width:900px}"
    ".swatch{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:middle;margin-right:4px}"
    "pre{background:#f6f8fa;padding:10px;overflow-x:auto;font-size:12px;white-space:pre-wrap;word-break:break-all}"
    "nav a{margin-right:12px}td.ref,th.ref{background:#f1f1f1;color:#333}";

static void html_table(FILE *f, const rp_table *t)
{
    fprintf(f, "<h3 id=\"t-%s\">", t->id);
    dpb_html_escape(f, t->title);
    fputs("</h3>\n", f);
    if (!cJSON_GetArraySize(t->rows)) {
        fputs("<p class=\"caption\">No results for this table.</p>\n", f);
        return;
    }
    fputs("<div class=\"scroll\"><table><thead><tr>", f);
    bool ref = strcmp(t->id, "reference") == 0;
    for (int i = 0; i < t->ncols; i++) {
        fputs(ref && i == 1 ? "<th class=\"ref\">" : "<th>", f);
        dpb_html_escape(f, t->head[i]);
        fputs("</th>", f);
    }
    fputs("</tr></thead><tbody>\n", f);
    const cJSON *r;
    cJSON_ArrayForEach(r, t->rows) {
        fputs("<tr>", f);
        const cJSON *c;
        int i = 0;
        cJSON_ArrayForEach(c, r) {
            bool sw = strcmp(t->id, "models") == 0 && i == 4;
            fputs(ref && i == 1 ? "<td class=\"ref\">" : "<td>", f);
            if (sw) {
                fputs("<span class=\"swatch\" style=\"background:", f);
                dpb_html_escape(f, c->valuestring);
                fputs("\"></span>", f);
            }
            dpb_html_escape(f, c->valuestring);
            fputs("</td>", f);
            i++;
        }
        fputs("</tr>\n", f);
    }
    fputs("</tbody></table></div>\n<p class=\"caption\">", f);
    dpb_html_escape(f, t->caption);
    fputs("</p>\n", f);
}

static const rp_table *find_tab(const rp_data *d, const char *id)
{
    for (int i = 0; i < d->ntab; i++)
        if (!strcmp(d->tab[i].id, id)) return &d->tab[i];
    return NULL;
}

static void base64(FILE *f, const unsigned char *p, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        fputc(a[v >> 18 & 63], f);
        fputc(a[v >> 12 & 63], f);
        fputc(i + 1 < n ? a[v >> 6 & 63] : '=', f);
        fputc(i + 2 < n ? a[v & 63] : '=', f);
    }
}

dpb_status rp_write_html(const rp_data *d, const char *out_dir, const char *fig_dir)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return dpb_error_set(DPB_E_NOMEM, "report: out of memory");
    char now[40];
    dpb_time_iso8601(now, sizeof now);
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>deploybench study report</title>\n<style>",
          f);
    fputs(k_css, f);
    fputs("</style></head><body><main>\n<h1>deploybench study report</h1>\n<p class=\"meta\">Results: <code>", f);
    dpb_html_escape(f, d->results);
    fprintf(f, "</code> &middot; written %s by deploybench %s</p>\n", now, DPB_VERSION);
    bool synth = false;
    for (size_t i = 0; i < d->n; i++) synth |= d->m[i].synthetic;
    if (synth)
        fputs("<p class=\"warn\"><strong>Synthetic models.</strong> Models marked <span class=\"badge\">synthetic</span> "
              "have random weights generated by deploybench (<code>synth:PRESET</code>): their speed, memory and "
              "energy are those of the architecture on this machine; their outputs, and any accuracy, mean "
              "nothing.</p>\n",
              f);
    fputs("<nav><a href=\"#summary\">Summary</a><a href=\"#figures\">Figures</a><a href=\"#tables\">Tables</a>"
          "<a href=\"#definitions\">Definitions</a><a href=\"#methods\">Methods</a><a href=\"#commands\">Commands</a>"
          "</nav>\n<h2 id=\"summary\">Summary</h2>\n",
          f);
    fputs("<p>Models:", f);
    for (size_t i = 0; i < d->n; i++) {
        fprintf(f, " <span class=\"swatch\" style=\"background:%s\"></span><strong>", d->m[i].color);
        dpb_html_escape(f, d->m[i].name);
        fputs("</strong>", f);
        if (d->m[i].synthetic) fputs("<span class=\"badge\">synthetic</span>", f);
        if (d->m[i].stands_for[0]) {
            fputs(" (stands in for ", f);
            dpb_html_escape(f, d->m[i].stands_for);
            fputs(")", f);
        }
        fputs(i + 1 < d->n ? ";" : ".", f);
    }
    if (!d->n) fputs(" none found.", f);
    fputs("</p>\n", f);
    if (find_tab(d, "models")) html_table(f, find_tab(d, "models"));
    if (find_tab(d, "reference")) html_table(f, find_tab(d, "reference"));

    fputs("<h2 id=\"figures\">Figures</h2>\n", f);
    int skipped = 0;
    for (int i = 0; i < d->nfig; i++) {
        const rp_figure *g = &d->fig[i];
        if (!g->drawn) {
            skipped++;
            continue;
        }
        char name[96], *p;
        snprintf(name, sizeof name, "%s.png", g->name);
        if (dpb_path_join(fig_dir, name, &p)) continue;
        char *png = NULL;
        size_t pl = 0;
        dpb_status st = dpb_file_read(p, (size_t)32 << 20, &png, &pl);
        free(p);
        if (st) continue;
        fprintf(f, "<figure id=\"f-%s\"><img alt=\"", g->name);
        dpb_html_escape(f, g->title);
        fputs("\" src=\"data:image/png;base64,", f);
        base64(f, (const unsigned char *)png, pl);
        free(png);
        fprintf(f, "\"><figcaption><strong>Figure %d. ", i + 1);
        dpb_html_escape(f, g->title);
        fputs(".</strong> ", f);
        dpb_html_escape(f, g->caption);
        fprintf(f, " (figures/%s.png, .svg, .pdf)</figcaption></figure>\n", g->name);
    }
    if (skipped) {
        fputs("<h3>Figures not drawn</h3>\n<div class=\"scroll\"><table><thead><tr><th>figure</th><th>why</th></tr>"
              "</thead><tbody>\n",
              f);
        for (int i = 0; i < d->nfig; i++) {
            if (d->fig[i].drawn) continue;
            fputs("<tr><td>", f);
            dpb_html_escape(f, d->fig[i].title);
            fputs("</td><td>", f);
            dpb_html_escape(f, d->fig[i].reason);
            fputs("</td></tr>\n", f);
        }
        fputs("</tbody></table></div>\n", f);
    }

    fputs("<h2 id=\"tables\">Tables</h2>\n", f);
    for (int i = 0; i < d->ntab; i++)
        if (strcmp(d->tab[i].id, "models") && strcmp(d->tab[i].id, "reference")) html_table(f, &d->tab[i]);

    fputs("<h2 id=\"definitions\">Definitions</h2>\n<p>Where deploybench's definitions differ from the reference "
          "study's. Its \"TPOT\" is tokens per second including prefill; its \"KV cache\" is peak minus baseline "
          "memory; its energy has no idle baseline. deploybench reports each under a name that says what it is "
          "(the <code>seed_*</code> columns) beside the correct figure.</p>\n"
          "<div class=\"scroll\"><table><thead><tr><th>metric</th><th>deploybench</th><th class=\"ref\">reference "
          "study</th></tr></thead><tbody>\n",
          f);
    for (int i = 0; i < rp_n_definitions; i++) {
        fputs("<tr><td>", f);
        dpb_html_escape(f, rp_definitions[i].metric);
        fputs("</td><td style=\"text-align:left\">", f);
        dpb_html_escape(f, rp_definitions[i].ours);
        fputs("</td><td class=\"ref\" style=\"text-align:left\">", f);
        dpb_html_escape(f, rp_definitions[i].reference);
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody></table></div>\n<h2 id=\"methods\">Methods</h2>\n<div class=\"scroll\"><table><tbody>\n", f);
    char facts[16][2][512];
    int nf = methods_facts(d, facts, 16);
    for (int i = 0; i < nf; i++) {
        fputs("<tr><td>", f);
        dpb_html_escape(f, facts[i][0]);
        fputs("</td><td style=\"text-align:left\">", f);
        dpb_html_escape(f, facts[i][1]);
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody></table></div>\n<p class=\"caption\">Every step folder has its own manifest.json (command line, "
          "commit, host, GPU, driver, model hashes, start and end). Percentiles: nearest rank on a log-linear "
          "histogram.</p>\n<h2 id=\"commands\">Commands</h2>\n",
          f);
    if (d->commands) {
        fputs("<p>commands.sh: every command the study ran, in order.</p>\n<pre>", f);
        dpb_html_escape(f, d->commands);
        fputs("</pre>\n", f);
    } else fputs("<p>No commands.sh in the results folder (not written by deploybench study).</p>\n", f);
    fputs("</main></body></html>\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return dpb_error_set(DPB_E_NOMEM, "report: out of memory");
    }
    char *p;
    dpb_status st = dpb_path_join(out_dir, "report.html", &p);
    if (!st) st = dpb_file_write(p, buf, len);
    free(p);
    free(buf);
    return st;
}

/* ---- Markdown ------------------------------------------------------------ */

static void md_cell(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|') fputs("\\|", f);
        else if (*s == '\n' || *s == '\r') fputc(' ', f);
        else if (*s == '<') fputs("&lt;", f);
        else fputc(*s, f);
    }
}

static void md_table(FILE *f, const rp_table *t)
{
    fprintf(f, "\n### %s\n\n", t->title);
    if (!cJSON_GetArraySize(t->rows)) {
        fputs("No results for this table.\n", f);
        return;
    }
    fputs("|", f);
    for (int i = 0; i < t->ncols; i++) fputc(' ', f), md_cell(f, t->head[i]), fputs(" |", f);
    fputs("\n|", f);
    for (int i = 0; i < t->ncols; i++) fputs(i ? "---:|" : "---|", f);
    fputc('\n', f);
    const cJSON *r;
    cJSON_ArrayForEach(r, t->rows) {
        fputs("|", f);
        const cJSON *c;
        cJSON_ArrayForEach(c, r) fputc(' ', f), md_cell(f, c->valuestring), fputs(" |", f);
        fputc('\n', f);
    }
    fputc('\n', f);
    md_cell(f, t->caption);
    fputc('\n', f);
}

dpb_status rp_write_markdown(const rp_data *d, const char *out_dir)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return dpb_error_set(DPB_E_NOMEM, "report: out of memory");
    fputs("# deploybench study: summary\n\nResults: `", f);
    md_cell(f, d->results);
    fputs("`. The full report is report.html; the paper is paper/main.tex.\n", f);
    for (size_t i = 0; i < d->n; i++)
        if (d->m[i].synthetic) {
            fputs("\n**Synthetic models** (random weights, `synth:PRESET`) measure the architecture only; their outputs "
                  "mean nothing.\n",
                  f);
            break;
        }
    static const char *const order[] = {"models", "reference", "latency", "memory", "energy", "ape", "serving", "notrun"};
    for (int k = 0; k < 8; k++)
        if (find_tab(d, order[k])) md_table(f, find_tab(d, order[k]));
    fputs("\n### Figures\n\n", f);
    for (int i = 0; i < d->nfig; i++) {
        if (d->fig[i].drawn) fprintf(f, "- [%s](figures/%s.png) ([SVG](figures/%s.svg), [PDF](figures/%s.pdf))\n",
                                     d->fig[i].title, d->fig[i].name, d->fig[i].name, d->fig[i].name);
        else {
            fprintf(f, "- %s: **not drawn**: ", d->fig[i].title);
            md_cell(f, d->fig[i].reason);
            fputc('\n', f);
        }
    }
    fputs("\n### Definitions that differ from the reference study's\n\n| metric | deploybench | reference study |\n"
          "|---|---|---|\n",
          f);
    for (int i = 0; i < rp_n_definitions; i++) {
        fputs("| ", f);
        md_cell(f, rp_definitions[i].metric);
        fputs(" | ", f);
        md_cell(f, rp_definitions[i].ours);
        fputs(" | ", f);
        md_cell(f, rp_definitions[i].reference);
        fputs(" |\n", f);
    }
    if (fclose(f) != 0) {
        free(buf);
        return dpb_error_set(DPB_E_NOMEM, "report: out of memory");
    }
    char *p;
    dpb_status st = dpb_path_join(out_dir, "summary.md", &p);
    if (!st) st = dpb_file_write(p, buf, len);
    free(p);
    free(buf);
    return st;
}

/* ---- LaTeX ---------------------------------------------------------------- */

static void tex_table(FILE *f, const rp_table *t)
{
    fprintf(f, "\\subsection*{");
    dpb_latex_escape(f, t->title);
    fputs("}\n", f);
    if (!cJSON_GetArraySize(t->rows)) {
        fputs("No results for this table.\n\n", f);
        return;
    }
    bool wide_text = !strcmp(t->id, "notrun") || !strcmp(t->id, "models") || !strcmp(t->id, "energy");
    /* Every column a paragraph column, so headers wrap and the table fits the 17 cm text width. */
    double first = 2.6, w = t->ncols > 1 ? (16.6 - first) / (t->ncols - 1) - 0.2 : 10;
    double last = w;
    if (wide_text && t->ncols > 2) {
        last = 4.2;
        w = (16.6 - first - last - 0.2) / (t->ncols - 2) - 0.2;
    }
    fputs("{\\scriptsize\\setlength{\\tabcolsep}{3pt}\n\\begin{longtable}{", f);
    for (int i = 0; i < t->ncols; i++) {
        if (i == 0) fprintf(f, ">{\\raggedright\\arraybackslash}p{%.2fcm}", first);
        else if (wide_text && i == t->ncols - 1) fprintf(f, ">{\\raggedright\\arraybackslash}p{%.2fcm}", last);
        else fprintf(f, ">{\\raggedleft\\arraybackslash}p{%.2fcm}", w);
    }
    fputs("}\n\\caption{", f);
    dpb_latex_escape(f, t->caption);
    fprintf(f, "}\\label{tab:%s}\\\\\n\\toprule\n", t->id);
    for (int i = 0; i < t->ncols; i++) {
        if (i) fputs(" & ", f);
        dpb_latex_escape(f, t->head[i]);
    }
    fputs(" \\\\\n\\midrule\n\\endhead\n", f);
    const cJSON *r;
    cJSON_ArrayForEach(r, t->rows) {
        const cJSON *c;
        int i = 0;
        cJSON_ArrayForEach(c, r) {
            if (i++) fputs(" & ", f);
            dpb_latex_escape(f, c->valuestring);
        }
        fputs(" \\\\\n", f);
    }
    fputs("\\bottomrule\n\\end{longtable}}\n\n", f);
}

dpb_status rp_write_latex(const rp_data *d, const char *paper_dir, const char *fig_dir)
{
    dpb_status st = dpb_dir_create(paper_dir);
    if (st) return st;
    char *pfig;
    if ((st = dpb_path_join(paper_dir, "figures", &pfig))) return st;
    if ((st = dpb_dir_create(pfig))) {
        free(pfig);
        return st;
    }
    /* The figures as PDF, next to the paper. */
    for (int i = 0; i < d->nfig; i++) {
        if (!d->fig[i].drawn) continue;
        char name[96], *src, *dst;
        snprintf(name, sizeof name, "%s.pdf", d->fig[i].name);
        if (dpb_path_join(fig_dir, name, &src) == DPB_OK) {
            if (dpb_path_join(pfig, name, &dst) == DPB_OK) {
                dpb_status s2 = dpb_file_copy(src, dst);
                if (s2 && !st) st = s2;
                free(dst);
            }
            free(src);
        }
    }
    free(pfig);
    if (st) return st;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return dpb_error_set(DPB_E_NOMEM, "report: out of memory");
    fputs("% Written by deploybench report; build with: latexmk -pdf main.tex\n"
          "\\documentclass[10pt]{article}\n\\usepackage[margin=2cm]{geometry}\n"
          "\\IfFileExists{lmodern.sty}{\\usepackage[T1]{fontenc}\\usepackage{lmodern}}{}\n"
          "\\usepackage{textcomp}\n\\usepackage{booktabs}\n\\usepackage{longtable}\n\\usepackage{graphicx}\n"
          "\\usepackage{array}\n\\usepackage{xcolor}\n\\usepackage{hyperref}\n\\sloppy\n"
          "\\setlength{\\LTcapwidth}{\\linewidth}\n"
          "\\title{LLM deployment measurements with deploybench}\n\\author{deploybench report}\n\\date{",
          f);
    char now[40];
    dpb_time_iso8601(now, sizeof now);
    dpb_latex_escape(f, now);
    fputs("}\n\\begin{document}\n\\maketitle\n\n\\begin{abstract}\nLatency, memory, energy, Active Parameter "
          "Efficiency and serving throughput measured with deploybench's own engine, beside the reference study's "
          "published figures where the definitions allow a comparison.\n\\end{abstract}\n\n",
          f);
    bool synth = false;
    for (size_t i = 0; i < d->n; i++) synth |= d->m[i].synthetic;
    if (synth)
        fputs("\\noindent\\fbox{\\parbox{\\dimexpr\\linewidth-2\\fboxsep\\relax}{\\textbf{Synthetic models.} Models "
              "marked synthetic have random weights generated by deploybench (synth:PRESET): their speed, memory and "
              "energy are those of the architecture; their outputs mean nothing.}}\n\n",
              f);
    fputs("\\section{Models and headline figures}\n", f);
    if (find_tab(d, "models")) tex_table(f, find_tab(d, "models"));
    if (find_tab(d, "reference")) tex_table(f, find_tab(d, "reference"));
    fputs("\\section{Figures}\n", f);
    for (int i = 0; i < d->nfig; i++) {
        if (!d->fig[i].drawn) continue;
        fprintf(f, "\\begin{figure}[htbp]\\centering\n\\includegraphics[width=\\linewidth]{figures/%s.pdf}\n\\caption{",
                d->fig[i].name);
        dpb_latex_escape(f, d->fig[i].caption);
        fprintf(f, "}\\label{fig:%s}\n\\end{figure}\n", d->fig[i].name);
    }
    fputs("\\clearpage\n", f);
    bool any_skip = false;
    for (int i = 0; i < d->nfig; i++) any_skip |= !d->fig[i].drawn;
    if (any_skip) {
        fputs("\\paragraph{Figures not drawn.}\n\\begin{itemize}\n", f);
        for (int i = 0; i < d->nfig; i++) {
            if (d->fig[i].drawn) continue;
            fputs("\\item ", f);
            dpb_latex_escape(f, d->fig[i].title);
            fputs(": ", f);
            dpb_latex_escape(f, d->fig[i].reason);
            fputc('\n', f);
        }
        fputs("\\end{itemize}\n", f);
    }
    fputs("\\section{Results}\n", f);
    for (int i = 0; i < d->ntab; i++)
        if (strcmp(d->tab[i].id, "models") && strcmp(d->tab[i].id, "reference")) tex_table(f, &d->tab[i]);
    fputs("\\section{Definitions}\\label{sec:definitions}\nWhere our definitions differ from the reference study's: its "
          "``TPOT'' is tokens per second including prefill; its ``KV cache'' is peak minus baseline memory; its "
          "energy has no idle baseline. We report each of its figures under a name that says what it is (the "
          "seed\\_* columns) beside the correct one.\n\n"
          "{\\small\\begin{longtable}{p{2.6cm}p{7.2cm}p{6.0cm}}\n\\toprule\nmetric & deploybench & reference study "
          "\\\\\n\\midrule\n\\endhead\n",
          f);
    for (int i = 0; i < rp_n_definitions; i++) {
        dpb_latex_escape(f, rp_definitions[i].metric);
        fputs(" & ", f);
        dpb_latex_escape(f, rp_definitions[i].ours);
        fputs(" & ", f);
        dpb_latex_escape(f, rp_definitions[i].reference);
        fputs(" \\\\\n", f);
    }
    fputs("\\bottomrule\n\\end{longtable}}\n\n\\section{Methods}\nThe hardware and software below come from the "
          "results' manifests (each step folder has one: command line, commit, host, GPU, driver, model hashes, "
          "start and end times). All times are CLOCK\\_MONOTONIC timestamps taken by the engine; the formula of "
          "every metric is in Section~\\ref{sec:definitions}.\n\n{\\small\\begin{longtable}{p{3cm}p{12.5cm}}\n"
          "\\toprule\n\\endhead\n",
          f);
    char facts[16][2][512];
    int nf = methods_facts(d, facts, 16);
    for (int i = 0; i < nf; i++) {
        dpb_latex_escape(f, facts[i][0]);
        fputs(" & ", f);
        dpb_latex_escape(f, facts[i][1]);
        fputs(" \\\\\n", f);
    }
    fputs("\\bottomrule\n\\end{longtable}}\n\n", f);
    if (d->commands) {
        fputs("\\subsection*{Commands}\nEvery command the study ran (commands.sh), in order.\n\n{\\scriptsize\\ttfamily"
              "\\raggedright\n",
              f);
        char *dup = strdup(d->commands);
        for (char *sv, *line = dup ? strtok_r(dup, "\n", &sv) : NULL; line; line = strtok_r(NULL, "\n", &sv)) {
            dpb_latex_escape(f, line);
            fputs("\\par\n", f);
        }
        free(dup);
        fputs("}\n", f);
    }
    fputs("\\end{document}\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return dpb_error_set(DPB_E_NOMEM, "report: out of memory");
    }
    char *p;
    st = dpb_path_join(paper_dir, "main.tex", &p);
    if (!st) st = dpb_file_write(p, buf, len);
    free(p);
    free(buf);
    return st;
}

/* ---- the whole report ----------------------------------------------------- */

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path || strchr(prog, '/')) return access(prog, X_OK) == 0;
    char *dup = strdup(path);
    bool found = false;
    for (char *sv, *d = dup ? strtok_r(dup, ":", &sv) : NULL; d && !found; d = strtok_r(NULL, ":", &sv)) {
        char *p;
        if (dpb_path_join(d, prog, &p) == DPB_OK) {
            found = access(p, X_OK) == 0;
            free(p);
        }
    }
    free(dup);
    return found;
}

static void build_pdf(const char *paper_dir, dpb_report_result *res)
{
    if (!on_path("latexmk")) {
        snprintf(res->pdf_note, sizeof res->pdf_note, "latexmk is not installed (Debian: latexmk, texlive-latex-recommended)");
        return;
    }
    char *argv[] = {"latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex", NULL};
    int rc = rp_run_in(paper_dir, "latexmk.log", argv);
    if (rc < 0) {
        snprintf(res->pdf_note, sizeof res->pdf_note, "cannot start latexmk: %s", strerror(errno));
        return;
    }
    char *pdf;
    if (dpb_path_join(paper_dir, "main.pdf", &pdf)) return;
    res->pdf_built = rc == 0 && dpb_file_exists(pdf);
    free(pdf);
    if (!res->pdf_built) snprintf(res->pdf_note, sizeof res->pdf_note, "latexmk failed (exit %d): see paper/latexmk.log and paper/main.log",
                                  rc);
}

dpb_status dpb_report_write(const dpb_report_opts *o, dpb_report_result *res)
{
    memset(res, 0, sizeof *res);
    rp_data *d = calloc(1, sizeof *d);
    if (!d) return dpb_error_set(DPB_E_NOMEM, "report: out of memory");
    const char *out = o->out ? o->out : o->results;
    char *fig = NULL, *paper = NULL;
    dpb_status st = rp_collect(o->results, d);
    if (!st) st = dpb_dir_create(out);
    if (!st) st = dpb_path_join(out, "figures", &fig);
    if (!st) st = dpb_dir_create(fig);
    if (!st) st = dpb_path_join(out, "paper", &paper);
    if (st) goto done;
    const char *gp = o->gnuplot ? o->gnuplot : getenv("DPB_GNUPLOT") ? getenv("DPB_GNUPLOT") : "gnuplot";
    rp_figures_draw(d, fig, gp);
    for (int i = 0; i < d->nfig; i++) {
        if (d->fig[i].drawn) res->figures_drawn++;
        else res->figures_skipped++;
    }
    if ((st = rp_tables_build(d))) goto done;
    if ((st = rp_write_html(d, out, fig))) goto done;
    if ((st = rp_write_markdown(d, out))) goto done;
    if ((st = rp_write_latex(d, paper, fig))) goto done;
    if (o->build_pdf) build_pdf(paper, res);
    else snprintf(res->pdf_note, sizeof res->pdf_note, "--no-pdf");
done:
    rp_data_free(d);
    free(d);
    free(fig);
    free(paper);
    return st;
}
