/* deploybench report: figures, report.html, summary.md and paper/ from a results folder. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "cli/cli.h"
#include "report/report.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deploybench report --results DIR [--out DIR] [--no-pdf] [--gnuplot PROGRAM]\n\n"
            "Turns a study folder (deploybench study --out DIR, or any folder holding latency, memory,\n"
            "energy, ablate and load results folders up to two levels down) into:\n"
            "  figures/     NAME.png, NAME.svg and NAME.pdf for each figure, with the gnuplot script\n"
            "               (NAME.gp) and the data (NAME*.dat) that drew it\n"
            "  report.html  one self-contained page: tables, figures inlined as PNG data URIs, CSS inline,\n"
            "               no network, no JavaScript\n"
            "  summary.md   the headline tables in Markdown\n"
            "  paper/       main.tex (booktabs tables, the figures as PDF, a methods section from the\n"
            "               manifests: hardware, driver, software, every metric's formula; where our\n"
            "               definitions differ from the reference study's), built to main.pdf with latexmk -pdf\n"
            "Figures: TTFT vs prompt length; TPOT and ITL vs generation length; p50/p95/p99 bars; memory\n"
            "and KV vs context (measured and analytic); energy per 1k tokens; APE; throughput vs latency\n"
            "across concurrency; goodput.  A figure whose data is missing is skipped and listed as such.\n"
            "Synthetic (synth:) models are marked as such everywhere.  The reference study's published\n"
            "numbers (gpt-oss-20b, 2048/64, H100 NVL, transformers bf16) appear as labelled columns.\n\n"
            "  --results DIR      the results folder (required)\n"
            "  --out DIR          where to write (default: the results folder)\n"
            "  --no-pdf           write paper/ but do not run latexmk\n"
            "  --gnuplot PROGRAM  the gnuplot to run (default: gnuplot on PATH, or $DPB_GNUPLOT); without\n"
            "                     one the figures are skipped and the report says so\n"
            "docs/REPORT.md.\n");
}

int dpb_cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {{"results", required_argument, 0, 'r'}, {"out", required_argument, 0, 'o'},
                                         {"no-pdf", no_argument, 0, 'n'},        {"gnuplot", required_argument, 0, 'g'},
                                         {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    dpb_report_opts o = {.build_pdf = true};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': o.results = optarg; break;
        case 'o': o.out = optarg; break;
        case 'n': o.build_pdf = false; break;
        case 'g': o.gnuplot = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':': return dpb_cli_usage_error("report", "%s needs a value", argv[optind - 1]);
        default: return dpb_cli_usage_error("report", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return dpb_cli_usage_error("report", "unexpected argument '%s'", argv[optind]);
    if (!o.results) return dpb_cli_usage_error("report", "--results DIR is required");
    dpb_report_result res;
    dpb_status st = dpb_report_write(&o, &res);
    if (st) return dpb_cli_fail("report", st);
    const char *out = o.out ? o.out : o.results;
    printf("report: %d figures drawn, %d skipped; wrote %s/report.html, %s/summary.md, %s/paper/main.tex%s%s\n",
           res.figures_drawn, res.figures_skipped, out, out, out, res.pdf_built ? " and paper/main.pdf" : "",
           res.pdf_note[0] ? "" : "");
    if (!res.pdf_built && res.pdf_note[0] && o.build_pdf) fprintf(stderr, "report: no PDF: %s\n", res.pdf_note);
    return 0;
}
