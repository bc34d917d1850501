/* The report's figures, drawn by gnuplot (Debian's gnuplot-nox has the cairo
 * terminals): each figure is NAME.gp plus its data files NAME-*.dat in
 * figures/, run once, writing NAME.png, NAME.svg and NAME.pdf.  A figure
 * whose data is missing is not drawn; d->fig says why. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/file.h"
#include "report/internal.h"
#include "report/report.h"

typedef struct fig_ctx {
    rp_data *d;
    const char *dir;
    const char *gnuplot;
    bool no_gnuplot;
    char no_gnuplot_why[200];
} fig_ctx;

static rp_figure *fig_new(rp_data *d, const char *name, const char *title, const char *caption)
{
    if (d->nfig == RP_MAXFIG) return NULL;
    rp_figure *f = &d->fig[d->nfig++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->title, sizeof f->title, "%s", title);
    snprintf(f->caption, sizeof f->caption, "%s", caption);
    return f;
}

static void fig_skip(rp_figure *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fig_skip(rp_figure *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->reason, sizeof f->reason, fmt, ap);
    va_end(ap);
    f->drawn = false;
}

static FILE *open_in(const char *dir, const char *name)
{
    char *p;
    if (dpb_path_join(dir, name, &p)) return NULL;
    FILE *f = fopen(p, "w");
    free(p);
    return f;
}

static void qstr(FILE *f, const char *s)
{
    fputc('\'', f);
    dpb_gnuplot_escape(f, s);
    fputc('\'', f);
}

static void num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, " %.9g", v);
    else fputs(" NaN", f);
}

/* Runs gnuplot NAME.gp in dir; true when NAME.png, .svg and .pdf exist and are not empty. */
static bool run_gnuplot(fig_ctx *c, rp_figure *f)
{
    if (c->no_gnuplot) {
        fig_skip(f, "%s", c->no_gnuplot_why);
        return false;
    }
    char gp[96], log[96];
    snprintf(gp, sizeof gp, "%s.gp", f->name);
    snprintf(log, sizeof log, "%s.log", f->name);
    char *argv[] = {(char *)c->gnuplot, gp, NULL};
    int rc = rp_run_in(c->dir, log, argv);
    if (rc < 0) {
        fig_skip(f, "cannot start gnuplot: %s", strerror(errno));
        return false;
    }
    if (rc == 127) {
        c->no_gnuplot = true;
        snprintf(c->no_gnuplot_why, sizeof c->no_gnuplot_why,
                 "gnuplot is not installed ('%.80s' not found; Debian: gnuplot-nox)", c->gnuplot);
        fig_skip(f, "%s", c->no_gnuplot_why);
        return false;
    }
    static const char *const ext[] = {"png", "svg", "pdf"};
    for (int i = 0; i < 3; i++) {
        char name[96], *p;
        snprintf(name, sizeof name, "%s.%s", f->name, ext[i]);
        struct stat sb;
        bool ok = dpb_path_join(c->dir, name, &p) == DPB_OK && stat(p, &sb) == 0 && sb.st_size > 0;
        free(p);
        if (!ok) {
            fig_skip(f, "gnuplot (exit %d) did not write %s: see figures/%s", rc, name, log);
            return false;
        }
    }
    f->drawn = true;
    return true;
}

/* The script: the body three times, once per terminal. */
static bool write_script(fig_ctx *c, rp_figure *f, const char *body, bool tall)
{
    char name[96];
    snprintf(name, sizeof name, "%s.gp", f->name);
    FILE *g = open_in(c->dir, name);
    if (!g) {
        fig_skip(f, "cannot write figures/%s", name);
        return false;
    }
    fprintf(g, "# %s: drawn by deploybench report (gnuplot %s.gp in this folder redraws it)\n", f->name, f->name);
    fprintf(g, "set encoding utf8\nset datafile missing 'NaN'\n");
    const char *terms[3][2] = {{"pngcairo noenhanced size 1000,%d font 'DejaVu Sans,11'", "png"},
                               {"svg noenhanced size 1000,%d font 'DejaVu Sans,11' background '#ffffff'", "svg"},
                               {"pdfcairo noenhanced size 6.5in,%s font 'DejaVu Sans,8'", "pdf"}};
    for (int i = 0; i < 3; i++) {
        fputs("set terminal ", g);
        if (i < 2) fprintf(g, terms[i][0], tall ? 720 : 560);
        else fprintf(g, terms[i][0], tall ? "4.6in" : "3.6in");
        fprintf(g, "\nset output '%s.%s'\nreset\n", f->name, terms[i][1]);
        fputs("set grid back lc rgb '#dddddd'\nset key outside right top vertical Left reverse\nset border 3\n"
              "set tics nomirror\n",
              g);
        fputs(body, g);
        fputs("\nunset multiplot\nunset output\n", g);
    }
    fclose(g);
    return true;
}

static void style_line(FILE *s, int idx, const char *color, int dash, int pt)
{
    fprintf(s, "set style line %d lc rgb '%s' lw 2 dt %d pt %d ps 1.2\n", idx, color, dash, pt);
}

static double log2_ceil(double v) { return pow(2, ceil(log2(v))); }

/* ---- 1. TTFT vs prompt length ---------------------------------------- */
static void fig_ttft(fig_ctx *c)
{
    rp_data *d = c->d;
    rp_figure *f = fig_new(d, "ttft_vs_prompt", "TTFT vs prompt length",
                           "Time to first token (p50, with p95 as the upper bar) against prompt length, batch 1, at each "
                           "model's smallest generation length. Latency step (summary.json).");
    if (!f) return;
    char *body = NULL;
    size_t bl = 0;
    FILE *s = open_memstream(&body, &bl);
    fputs("set title 'Time to first token vs prompt length (p50; bar to p95; batch 1)'\n"
          "set xlabel 'prompt length (tokens)'\nset ylabel 'TTFT (ms)'\nset logscale x 2\nset yrange [0:*]\n",
          s);
    int k = 0;
    double xmin = 1e300, xmax = 0;
    char plot[8192] = "plot ";
    size_t pl = 5;
    for (size_t i = 0; i < d->n; i++) {
        rp_model *m = &d->m[i];
        double g0 = 1e300;
        const cJSON *cl;
        cJSON_ArrayForEach(cl, m->latency) if (rp_num(cl, "batch") == 1 && rp_num(cl, "gen_tokens") < g0) g0 =
            rp_num(cl, "gen_tokens");
        char dn[96];
        snprintf(dn, sizeof dn, "%s-%zu.dat", f->name, i);
        FILE *df = NULL;
        int rows = 0;
        cJSON_ArrayForEach(cl, m->latency) {
            if (rp_num(cl, "batch") != 1 || rp_num(cl, "gen_tokens") != g0) continue;
            double x = rp_num(cl, "prompt_tokens"), y = rp_num(cl, "ttft_ms_p50"), y95 = rp_num(cl, "ttft_ms_p95");
            if (!isfinite(x) || !isfinite(y)) continue;
            if (!df && !(df = open_in(c->dir, dn))) break;
            if (!rows) fprintf(df, "# prompt_tokens ttft_ms_p50 ttft_ms_p50 ttft_ms_p95 (model %zu)\n", i);
            fprintf(df, "%.0f", x);
            num(df, y), num(df, y), num(df, isfinite(y95) ? y95 : y);
            fputc('\n', df);
            rows++;
            xmin = fmin(xmin, x), xmax = fmax(xmax, x);
        }
        if (df) fclose(df);
        if (!rows) continue;
        char lab[160];
        rp_model_label(m, lab, sizeof lab);
        k++;
        style_line(s, k, m->color, 1, 7);
        char t[400], *tp = NULL;
        size_t tl = 0;
        FILE *ts = open_memstream(&tp, &tl);
        fprintf(ts, "%s'%s' using 1:2:3:4 with yerrorlines ls %d title ", k > 1 ? ", " : "", dn, k);
        char full[220];
        snprintf(full, sizeof full, "%s, gen %.0f", lab, g0);
        qstr(ts, full);
        fclose(ts);
        snprintf(t, sizeof t, "%s", tp);
        free(tp);
        pl += (size_t)snprintf(plot + pl, sizeof plot - pl, "%s", t);
    }
    if (!k) {
        fclose(s);
        free(body);
        fig_skip(f, "no latency results (the latency step did not run or finish)");
        return;
    }
    fprintf(s, "set xrange [%g:%g]\n%s\n", xmin / 1.5, xmax * 1.5, plot);
    fclose(s);
    if (write_script(c, f, body, false)) run_gnuplot(c, f);
    free(body);
}

/* ---- 2. TPOT and ITL vs generation length ---------------------------- */
static void fig_tpot(fig_ctx *c)
{
    rp_data *d = c->d;
    rp_figure *f = fig_new(d, "tpot_itl_vs_gen", "TPOT and ITL vs generation length",
                           "Time per output token (first token excluded; solid) and inter-token latency (dashed), p50, "
                           "against the number of generated tokens, batch 1, at each model's largest prompt length.");
    if (!f) return;
    char *body = NULL;
    size_t bl = 0;
    FILE *s = open_memstream(&body, &bl);
    fputs("set title 'TPOT (solid) and ITL (dashed) vs generation length (p50; batch 1)'\n"
          "set xlabel 'generated tokens'\nset ylabel 'time per token (ms)'\nset logscale x 2\nset yrange [0:*]\n",
          s);
    int k = 0;
    double xmin = 1e300, xmax = 0;
    char *plot = NULL;
    size_t pl = 0;
    FILE *ps = open_memstream(&plot, &pl);
    fputs("plot ", ps);
    for (size_t i = 0; i < d->n; i++) {
        rp_model *m = &d->m[i];
        double p0 = -1;
        const cJSON *cl;
        cJSON_ArrayForEach(cl, m->latency) if (rp_num(cl, "batch") == 1 && rp_num(cl, "prompt_tokens") > p0) p0 =
            rp_num(cl, "prompt_tokens");
        char dn[96];
        snprintf(dn, sizeof dn, "%s-%zu.dat", f->name, i);
        FILE *df = NULL;
        int rows = 0;
        cJSON_ArrayForEach(cl, m->latency) {
            if (rp_num(cl, "batch") != 1 || rp_num(cl, "prompt_tokens") != p0) continue;
            double x = rp_num(cl, "gen_tokens"), y = rp_num(cl, "tpot_ms_p50"), y2 = rp_num(cl, "itl_ms_p50");
            if (!isfinite(x) || !isfinite(y)) continue;
            if (!df && !(df = open_in(c->dir, dn))) break;
            if (!rows) fprintf(df, "# gen_tokens tpot_ms_p50 itl_ms_p50 (model %zu)\n", i);
            fprintf(df, "%.0f", x);
            num(df, y), num(df, y2);
            fputc('\n', df);
            rows++;
            xmin = fmin(xmin, x), xmax = fmax(xmax, x);
        }
        if (df) fclose(df);
        if (!rows) continue;
        char lab[160], full[260];
        rp_model_label(m, lab, sizeof lab);
        style_line(s, 2 * k + 1, m->color, 1, 7);
        style_line(s, 2 * k + 2, m->color, 2, 6);
        fprintf(ps, "%s'%s' using 1:2 with linespoints ls %d title ", k ? ", " : "", dn, 2 * k + 1);
        snprintf(full, sizeof full, "%s TPOT, prompt %.0f", lab, p0);
        qstr(ps, full);
        fprintf(ps, ", '%s' using 1:3 with linespoints ls %d title ", dn, 2 * k + 2);
        snprintf(full, sizeof full, "%s ITL", lab);
        qstr(ps, full);
        k++;
    }
    fclose(ps);
    if (!k) {
        fig_skip(f, "no latency results (the latency step did not run or finish)");
    } else {
        fprintf(s, "set xrange [%g:%g]\n%s\n", xmin / 1.5, xmax * 1.5, plot);
    }
    fclose(s);
    if (k && write_script(c, f, body, false)) run_gnuplot(c, f);
    free(body);
    free(plot);
}

/* ---- 3. p50/p95/p99 bars --------------------------------------------- */
static void fig_percentiles(fig_ctx *c)
{
    rp_data *d = c->d;
    rp_figure *f = fig_new(d, "latency_percentiles", "TTFT and TPOT percentiles",
                           "p50, p95 and p99 of TTFT (left) and TPOT (right) at each model's headline cell "
                           "(2048-token prompt, 64 generated, batch 1, or its largest prompt and smallest "
                           "generation), one bar per model.");
    if (!f) return;
    FILE *df = NULL;
    int k = 0;
    char dn[96];
    snprintf(dn, sizeof dn, "%s.dat", f->name);
    char *titles = NULL;
    size_t tl = 0;
    FILE *ts = open_memstream(&titles, &tl);
    const rp_model *used[RP_MAXM];
    const cJSON *cells[RP_MAXM];
    for (size_t i = 0; i < d->n; i++) {
        const cJSON *cl = rp_headline_cell(&d->m[i]);
        if (!cl || !isfinite(rp_num(cl, "ttft_ms_p50"))) continue;
        used[k] = &d->m[i];
        cells[k++] = cl;
    }
    if (!k) {
        fclose(ts);
        free(titles);
        fig_skip(f, "no latency results (the latency step did not run or finish)");
        return;
    }
    if (!(df = open_in(c->dir, dn))) {
        fclose(ts);
        free(titles);
        fig_skip(f, "cannot write figures/%s", dn);
        return;
    }
    /* rows: percentile; columns: TTFT per model, then TPOT per model */
    fputs("# percentile", df);
    for (int j = 0; j < k; j++) fprintf(df, " ttft_ms(model%d)", j);
    for (int j = 0; j < k; j++) fprintf(df, " tpot_ms(model%d)", j);
    fputc('\n', df);
    static const char *const pc[3] = {"p50", "p95", "p99"};
    for (int r = 0; r < 3; r++) {
        fprintf(df, "%s", pc[r]);
        char key[32];
        for (int j = 0; j < k; j++) snprintf(key, sizeof key, "ttft_ms_%s", pc[r]), num(df, rp_num(cells[j], key));
        for (int j = 0; j < k; j++) snprintf(key, sizeof key, "tpot_ms_%s", pc[r]), num(df, rp_num(cells[j], key));
        fputc('\n', df);
    }
    fclose(df);
    char *body = NULL;
    size_t bl = 0;
    FILE *s = open_memstream(&body, &bl);
    fputs("set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.85 border -1\n"
          "set boxwidth 0.9\nset yrange [0:*]\nset multiplot layout 1,2\n",
          s);
    for (int panel = 0; panel < 2; panel++) {
        fprintf(s, "set title '%s percentiles at the headline cell'\nset ylabel '%s (ms)'\nset xlabel 'percentile'\n",
                panel ? "TPOT" : "TTFT", panel ? "TPOT" : "TTFT");
        double top = 0;
        for (int r2 = 0; r2 < 3; r2++)
            for (int j = 0; j < k; j++) {
                char key2[32];
                snprintf(key2, sizeof key2, "%s_ms_%s", panel ? "tpot" : "ttft", pc[r2]);
                double v = rp_num(cells[j], key2);
                if (isfinite(v)) top = fmax(top, v);
            }
        if (top > 0) fprintf(s, "set yrange [0:%g]\n", top * (panel ? 1.1 : 1.45));
        /* one legend, inside the left panel (headroom above the bars): outside, it would squeeze both panels */
        fputs(panel ? "unset key\n" : "set key inside left top vertical Left reverse box opaque\n", s);
        fputs("plot ", s);
        for (int j = 0; j < k; j++) {
            char lab[160], full[260];
            rp_model_label(used[j], lab, sizeof lab);
            snprintf(full, sizeof full, "%s (p%.0f/g%.0f)", lab, rp_num(cells[j], "prompt_tokens"),
                     rp_num(cells[j], "gen_tokens"));
            fprintf(s, "%s'%s' using %d:xtic(1) lc rgb '%s' title ", j ? ", " : "", dn, 2 + panel * k + j,
                    used[j]->color);
            qstr(s, full);
        }
        fputc('\n', s);
    }
    fclose(s);
    fclose(ts);
    free(titles);
    if (write_script(c, f, body, false)) run_gnuplot(c, f);
    free(body);
}

/* ---- 4. memory and KV vs context -------------------------------------- */
static void fig_memory(fig_ctx *c)
{
    rp_data *d = c->d;
    rp_figure *f = fig_new(d, "memory_kv_vs_context", "Memory and KV cache vs context",
                           "KV cache bytes the engine allocated (solid, measured) and inspect's analytic figure (open "
                           "circles), the reference study's 'KV cache' = peak - baseline (dashed; it includes "
                           "workspace and activations), and the process peak (dotted: device memory from NVML, or "
                           "host RSS on the CPU), against context length.");
    if (!f) return;
    double ymax = 0;
    int k = 0;
    for (size_t i = 0; i < d->n; i++) {
        const cJSON *r;
        cJSON_ArrayForEach(r, d->m[i].memory) {
            ymax = fmax(ymax, rp_num(r, "kv_bytes_allocated_exact"));
            ymax = fmax(ymax, rp_num(r, "seed_kv_cache_bytes_peak_minus_baseline"));
            k++;
        }
    }
    if (!k) {
        fig_skip(f, "no memory results (the memory step did not run or finish)");
        return;
    }
    const char *unit = ymax >= 1073741824.0 ? "GiB" : ymax >= 1048576.0 ? "MiB" : "KiB";
    double div = ymax >= 1073741824.0 ? 1073741824.0 : ymax >= 1048576.0 ? 1048576.0 : 1024.0;
    char *body = NULL, *plot = NULL;
    size_t bl = 0, pl = 0;
    FILE *s = open_memstream(&body, &bl), *ps = open_memstream(&plot, &pl);
    fprintf(s,
            "set title 'KV cache and memory vs context (batch 1)'\nset xlabel 'context (prompt + generated tokens)'\n"
            "set ylabel 'memory (%s)'\nset logscale x 2\nset logscale y 2\n",
            unit);
    int n = 0;
    double xmin = 1e300, xmax = 0;
    for (size_t i = 0; i < d->n; i++) {
        rp_model *m = &d->m[i];
        char dn[96];
        snprintf(dn, sizeof dn, "%s-%zu.dat", f->name, i);
        FILE *df = NULL;
        int rows = 0;
        bool peak_any = false;
        const cJSON *r;
        cJSON_ArrayForEach(r, m->memory) {
            double x = rp_num(r, "max_ctx_tokens");
            if (!isfinite(x)) x = rp_num(r, "context");
            double kv = rp_num(r, "kv_bytes_allocated_exact"), an = rp_num(r, "kv_bytes_analytic"),
                   seed = rp_num(r, "seed_kv_cache_bytes_peak_minus_baseline"),
                   peak = rp_num(r, "device_proc_mem_peak_bytes");
            if (!isfinite(peak) || peak <= 0) peak = rp_num(r, "host_rss_peak_bytes");
            if (!isfinite(x) || !isfinite(kv)) continue;
            if (!df && !(df = open_in(c->dir, dn))) break;
            if (!rows) fprintf(df, "# context kv_exact kv_analytic seed_peak_minus_baseline process_peak (model %zu, %s)\n", i,
                               unit);
            fprintf(df, "%.0f", x);
            num(df, kv / div), num(df, an / div), num(df, seed > 0 ? seed / div : NAN), num(df, peak / div);
            fputc('\n', df);
            peak_any |= isfinite(peak);
            rows++;
            xmin = fmin(xmin, x), xmax = fmax(xmax, x);
        }
        if (df) fclose(df);
        if (!rows) continue;
        char lab[160];
        rp_model_label(m, lab, sizeof lab);
        style_line(s, 4 * n + 1, m->color, 1, 7);
        style_line(s, 4 * n + 2, m->color, 1, 6);
        style_line(s, 4 * n + 3, m->color, 2, 5);
        style_line(s, 4 * n + 4, m->color, 3, 1);
                fprintf(ps, "%s'%s' using 1:2 with linespoints ls %d title ", n ? ", " : "", dn, 4 * n + 1);
        qstr(ps, lab);
        fprintf(ps, ", '%s' using 1:3 with points ls %d ps 2 notitle", dn, 4 * n + 2);
        fprintf(ps, ", '%s' using 1:4 with linespoints ls %d notitle", dn, 4 * n + 3);
        fprintf(ps, ", '%s' using 1:5 with linespoints ls %d notitle", dn, 4 * n + 4);
        n++;
    }
    /* what each line style means, once */
    fputs(", NaN with linespoints lc rgb '#444444' lw 2 dt 1 pt 7 title 'KV allocated (measured)'"
          ", NaN with points lc rgb '#444444' pt 6 ps 2 title 'KV analytic (inspect)'"
          ", NaN with linespoints lc rgb '#444444' lw 2 dt 2 pt 5 title 'study def. KV: peak - baseline'"
          ", NaN with linespoints lc rgb '#444444' lw 2 dt 3 pt 1 title 'process peak'",
          ps);
    fclose(ps);
    fprintf(s, "plot %s\n", plot);
    fclose(s);
    free(plot);
    if (!n) fig_skip(f, "no memory results with KV figures");
    else {
        /* the x range is set by prepending to the body */
        char *b2 = NULL;
        size_t l2 = 0;
        FILE *s2 = open_memstream(&b2, &l2);
        fprintf(s2, "set xrange [%g:%g]\n%s", xmin / 1.5, log2_ceil(xmax) * 1.5, body);
        fclose(s2);
        if (write_script(c, f, b2, true)) run_gnuplot(c, f);
        free(b2);
    }
    free(body);
}

/* ---- 5. energy per 1k tokens ----------------------------------------- */
static void fig_energy(fig_ctx *c)
{
    rp_data *d = c->d;
    rp_figure *f = fig_new(d, "energy_per_1k", "Energy per 1k generated tokens",
                           "Joules per 1,000 generated tokens per model and context: our figure from the NVML energy "
                           "counter (or the power integral), and the reference study's method (average power x time, "
                           "no idle baseline), with its published gpt-oss-20b figure (H100 NVL) in grey.");
    if (!f) return;
    char dn[96];
    snprintf(dn, sizeof dn, "%s.dat", f->name);
    FILE *df = NULL;
    int rows = 0;
    const char *why = NULL;
    char *body = NULL;
    size_t bl = 0;
    FILE *s = open_memstream(&body, &bl);
    bool gptoss = false;
    for (size_t i = 0; i < d->n; i++) {
        const cJSON *r;
        cJSON_ArrayForEach(r, d->m[i].energy) {
            double j = rp_num(r, "j_per_1k_tokens"), sj = rp_num(r, "seed_j_per_1k_tokens_avg_w_x_time_no_idle");
            if (!isfinite(j) && !isfinite(sj)) {
                if (!why) why = rp_unavailable(r, "j_per_1k_tokens");
                continue;
            }
            if (!df && !(df = open_in(c->dir, dn))) break;
            if (!rows) fputs("# label ours_j_per_1k seed_method_j_per_1k color\n", df);
            char lab[160], full[260];
            rp_model_label(&d->m[i], lab, sizeof lab);
            snprintf(full, sizeof full, "%s, %.0f/%.0f", lab, rp_num(r, "context"), rp_num(r, "gen_tokens"));
            rp_dat_label(df, full);
            num(df, j), num(df, sj);
            fprintf(df, " %ld\n", strtol(d->m[i].color + 1, NULL, 16));
            rows++;
            gptoss |= strcmp(d->m[i].name, "gpt-oss-20b") == 0;
        }
    }
    if (rows && gptoss) {
        fprintf(df, "\"%s\" NaN %.1f 8947848\n", "reference study, H100 NVL", RP_REF_J_PER_1K);
        rows++;
    }
    if (df) fclose(df);
    if (!rows) {
        fclose(s);
        free(body);
        fig_skip(f, "no energy figure was measured%s%s", why ? ": " : "", why ? why : "");
        return;
    }
    fputs("set title 'Energy per 1k generated tokens'\nset ylabel 'energy (J per 1k tokens)'\n"
          "set xlabel 'model, context/generated tokens'\nset style fill solid 0.85 border -1\nset boxwidth 0.35\n"
          "set yrange [0:*]\nset xtics rotate by -20\n"
          "plot '",
          s);
    fprintf(s, "%s' using ($0-0.18):2:4:xtic(1) with boxes lc rgb variable title 'ours (energy counter or "
               "integral)', '%s' using ($0+0.18):3:4 with boxes lc rgb variable fs pattern 4 border -1 title "
               "'study method: avg W x time, no idle'\n",
            dn, dn);
    fclose(s);
    if (write_script(c, f, body, false)) run_gnuplot(c, f);
    free(body);
}

/* ---- 6. APE ----------------------------------------------------------- */
static void fig_ape(fig_ctx *c)
{
    rp_data *d = c->d;
    rp_figure *f = fig_new(d, "ape", "Active Parameter Efficiency",
                           "Active Parameter Efficiency as the reference study defines it (metric / active parameters "
                           "in billions, active counted from the checkpoint) at each model's largest context and "
                           "smallest generation: decode tok/s per active B, 1000/TTFT per active B and, when energy "
                           "was measured, tokens per watt per active B.");
    if (!f) return;
    if (!d->ape || !cJSON_GetArraySize(d->ape)) {
        fig_skip(f, "no APE results (the ape step did not run or had no latency rows)");
        return;
    }
    static const char *const metric[3] = {"decode_tok_s_per_active_b", "inv_ttft_per_s_per_active_b",
                                          "tokens_per_watt_per_active_b"};
    static const char *const ylab[3] = {"decode tok/s per active B", "(1000/TTFT) per s per active B",
                                        "tokens per W per active B"};
    char dn[96];
    snprintf(dn, sizeof dn, "%s.dat", f->name);
    FILE *df = open_in(c->dir, dn);
    if (!df) {
        fig_skip(f, "cannot write figures/%s", dn);
        return;
    }
    fputs("# label decode_per_active_b inv_ttft_per_active_b tokens_per_watt_per_active_b color\n", df);
    int rows = 0;
    bool have[3] = {false, false, false};
    for (size_t i = 0; i < d->n; i++) {
        const cJSON *r, *best = NULL;
        double bc = -1, bg = 1e300;
        cJSON_ArrayForEach(r, d->ape) {
            const char *ms = rp_str(r, "model");
            if (!ms || strcmp(ms, d->m[i].spec) != 0) continue;
            double cx = rp_num(r, "context_length"), g = rp_num(r, "gen_tokens");
            if (cx > bc || (cx == bc && g < bg)) best = r, bc = cx, bg = g;
        }
        if (!best) continue;
        char lab[160];
        rp_model_label(&d->m[i], lab, sizeof lab);
        rp_dat_label(df, lab);
        for (int j = 0; j < 3; j++) {
            double v = rp_num(best, metric[j]);
            have[j] |= isfinite(v);
            num(df, v);
        }
        fprintf(df, " %ld\n", strtol(d->m[i].color + 1, NULL, 16));
        rows++;
    }
    fclose(df);
    int panels = have[0] + have[1] + have[2];
    if (!rows || !panels) {
        fig_skip(f, "the APE rows match no model of this report");
        return;
    }
    char *body = NULL;
    size_t bl = 0;
    FILE *s = open_memstream(&body, &bl);
    fprintf(s, "set style fill solid 0.85 border -1\nset boxwidth 0.6\nset yrange [0:*]\nset xtics rotate by -20\n"
               "unset key\nset multiplot layout 1,%d title 'Active Parameter Efficiency (metric / active B)'\n",
            panels);
    for (int j = 0; j < 3; j++) {
        if (!have[j]) continue;
        fprintf(s, "set ylabel '%s'\nset xlabel 'model'\nplot '%s' using 0:%d:%d:xtic(1) with boxes lc rgb variable\n",
                ylab[j], dn, 2 + j, 5);
    }
    fclose(s);
    if (write_script(c, f, body, false)) run_gnuplot(c, f);
    free(body);
}

/* ---- 7, 8. serving: throughput vs latency, goodput --------------------- */
static void fig_serving(fig_ctx *c, bool goodput)
{
    rp_data *d = c->d;
    rp_figure *f =
        goodput ? fig_new(d, "goodput", "Goodput vs concurrency",
                          "Requests per second that met every goodput limit (solid) and all completed requests per "
                          "second (dashed) against the number of concurrent users (closed loop), from the serving "
                          "sweep (deploybench load against deploybench serve).")
                : fig_new(d, "throughput_vs_latency", "Throughput vs latency across concurrency",
                          "Output throughput of the server against the median time per output token, one point per "
                          "concurrency level (labelled), from the serving sweep (deploybench load against deploybench "
                          "serve).");
    if (!f) return;
    char *body = NULL, *plot = NULL;
    size_t bl = 0, pl = 0;
    FILE *s = open_memstream(&body, &bl), *ps = open_memstream(&plot, &pl);
    int n = 0;
    bool any_good = false;
    char limits[160] = "";
    double cmax = 1;
    for (size_t i = 0; i < d->n; i++) {
        rp_model *m = &d->m[i];
        char dn[96];
        snprintf(dn, sizeof dn, "%s-%zu.dat", f->name, i);
        FILE *df = NULL;
        int rows = 0;
        const cJSON *lv;
        cJSON_ArrayForEach(lv, m->serve) {
            double conc = rp_num(lv, "max_concurrency"), thr = rp_num(lv, "output_throughput_tok_per_s"),
                   tpot = rp_num(lv, "median_tpot_ms"), good = rp_num(lv, "request_goodput"),
                   rps = rp_num(lv, "request_throughput_req_per_s"), done = rp_num(lv, "completed");
            if (!isfinite(conc) || !(done > 0)) continue;
            if (goodput ? !isfinite(rps) : (!isfinite(thr) || !isfinite(tpot))) continue;
            if (!df && !(df = open_in(c->dir, dn))) break;
            if (!rows) fprintf(df, "# concurrency output_tok_s median_tpot_ms goodput_req_s throughput_req_s (model %zu)\n",
                               i);
            fprintf(df, "%.0f", conc);
            num(df, thr), num(df, tpot), num(df, good), num(df, rps);
            fputc('\n', df);
            any_good |= isfinite(good);
            cmax = fmax(cmax, conc);
            rows++;
            const cJSON *gl = cJSON_GetObjectItemCaseSensitive(lv, "goodput_limits_ms");
            if (!limits[0] && cJSON_IsObject(gl) && gl->child) {
                size_t k = 0;
                const cJSON *e;
                cJSON_ArrayForEach(e, gl) if (cJSON_IsNumber(e) && e->string && k < sizeof limits - 40) k +=
                    (size_t)snprintf(limits + k, sizeof limits - k, "%s%s <= %g ms", k ? ", " : "", e->string,
                                     e->valuedouble);
            }
        }
        if (df) fclose(df);
        if (!rows) continue;
        char lab[160], full[260];
        rp_model_label(m, lab, sizeof lab);
        style_line(s, 2 * n + 1, m->color, 1, 7);
        style_line(s, 2 * n + 2, m->color, 2, 6);
        if (goodput) {
            fprintf(ps, "%s'%s' using 1:4 with linespoints ls %d title ", n ? ", " : "", dn, 2 * n + 1);
            snprintf(full, sizeof full, "%s goodput", lab);
            qstr(ps, full);
            fprintf(ps, ", '%s' using 1:5 with linespoints ls %d title ", dn, 2 * n + 2);
            snprintf(full, sizeof full, "%s all completed", lab);
            qstr(ps, full);
        } else {
            fprintf(ps, "%s'%s' using 3:2 with linespoints ls %d title ", n ? ", " : "", dn, 2 * n + 1);
            qstr(ps, lab);
            fprintf(ps, ", '%s' using 3:2:(sprintf('c=%%d', $1)) with labels offset char 1,0.6 tc rgb '%s' notitle",
                    dn, m->color);
        }
        n++;
    }
    fclose(ps);
    if (goodput)
        fprintf(s,
                "set title 'Goodput vs concurrency (goodput: %s)'\nset xlabel 'concurrent users (closed loop)'\n"
                "set ylabel 'requests per second (req/s)'\nset logscale x 2\nset yrange [0:*]\nset xrange [0.7:%g]\n",
                limits[0] ? limits : "no limits recorded", cmax * 1.4);
    else
        fputs("set title 'Output throughput vs per-token latency across concurrency'\n"
              "set xlabel 'median TPOT (ms per output token)'\nset ylabel 'output throughput (tok/s)'\n"
              "set yrange [0:*]\nset xrange [0:*]\n",
              s);
    fprintf(s, "plot %s\n", plot);
    fclose(s);
    if (!n) fig_skip(f, "no serving results (the serve step did not run, or no request completed)");
    else if (goodput && !any_good) fig_skip(f, "the serving sweep recorded no goodput (run it with --goodput)");
    else if (write_script(c, f, body, false)) run_gnuplot(c, f);
    free(body);
    free(plot);
}

int rp_run_in(const char *dir, const char *log, char *const argv[])
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(126);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        if (nul >= 0) dup2(nul, 0);
        execvp(argv[0], argv);
        _exit(127);
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
}

void rp_dat_label(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) fputc(*s == '"' ? '\'' : (unsigned char)*s < 0x20 ? ' ' : *s, f);
    fputc('"', f);
}

void rp_figures_draw(rp_data *d, const char *dir, const char *gnuplot)
{
    fig_ctx c = {.d = d, .dir = dir, .gnuplot = gnuplot};
    fig_ttft(&c);
    fig_tpot(&c);
    fig_percentiles(&c);
    fig_memory(&c);
    fig_energy(&c);
    fig_ape(&c);
    fig_serving(&c, false);
    fig_serving(&c, true);
}
