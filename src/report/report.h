/* deploybench report: figures (gnuplot), report.html, summary.md and a
 * LaTeX paper from a results folder written by deploybench study (or any
 * folder holding latency/memory/energy/ablate/load results folders).
 *
 *   dpb_report_write(&opts, &res)
 *
 * Reads, under opts.results: manifest.json (the study's, when there is one:
 * model names, synthetic flags, skipped and failed steps), every results
 * folder found two levels deep (each has a manifest.json naming its command),
 * ape/ape_analysis.json and commands.sh.  Writes into opts.out (default: the
 * results folder): figures/ (NAME.png, .svg, .pdf, plus NAME.gp and its data
 * files), report.html, summary.md, paper/ (main.tex, tables, figures as PDF;
 * built with latexmk when opts.build_pdf and latexmk is found).
 *
 * A figure whose data is missing is not drawn: it is listed, with the reason,
 * in every output.  Every string from the results (model names, paths,
 * commands) is escaped for the format it goes into (dpb_html_escape,
 * dpb_latex_escape). */
#ifndef DPB_REPORT_REPORT_H
#define DPB_REPORT_REPORT_H

#include <stdbool.h>
#include <stdio.h>
#include "core/status.h"

typedef struct dpb_report_opts {
    const char *results;  /* the results (study) folder */
    const char *out;      /* where to write; NULL: results */
    const char *gnuplot;  /* the gnuplot program; NULL: "gnuplot" from PATH ($DPB_GNUPLOT overrides) */
    bool build_pdf;       /* run latexmk -pdf in paper/ when it is installed */
} dpb_report_opts;

typedef struct dpb_report_result {
    int figures_drawn, figures_skipped;
    bool pdf_built;
    char pdf_note[256];   /* why the PDF was not built, or "" */
} dpb_report_result;

dpb_status dpb_report_write(const dpb_report_opts *o, dpb_report_result *res);

/* Escapers: write s to f escaped for HTML text/attributes (& < > " '), or
 * for LaTeX text (\ { } $ & # ^ _ % ~ and control characters dropped). */
void dpb_html_escape(FILE *f, const char *s);
void dpb_latex_escape(FILE *f, const char *s);
/* For gnuplot single-quoted strings: ' doubled, control characters dropped. */
void dpb_gnuplot_escape(FILE *f, const char *s);

#endif
