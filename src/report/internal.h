/* deploybench report internals: the data read from a results folder, the
 * tables built once from it and written three ways (HTML, Markdown, LaTeX),
 * and the figures drawn with gnuplot. */
#ifndef DPB_REPORT_INTERNAL_H
#define DPB_REPORT_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "core/status.h"

#define RP_MAXM 16
#define RP_MAXFIG 16
#define RP_MAXTAB 32

typedef struct rp_model {
    char name[64];
    char spec[512];
    char stands_for[64];  /* reference model a tiny preset stands in for, or "" */
    bool synthetic;
    const char *color;    /* fixed per model family: "#rrggbb" */
    const cJSON *latency; /* cells (array) */
    const cJSON *memory;  /* rows */
    const cJSON *energy;  /* contexts */
    const cJSON *ablate;  /* rows */
    const cJSON *serve;   /* levels */
    const cJSON *eval;    /* array of {task, summary} */
    const cJSON *safety;  /* summary object */
} rp_model;

typedef struct rp_figure {
    char name[48];
    char title[160];
    char caption[600];
    bool drawn;
    char reason[400];     /* why it was skipped */
} rp_figure;

typedef struct rp_table {
    char id[32];
    char title[160];
    char caption[800];
    int ncols;
    const char *head[16];
    cJSON *rows;          /* array of arrays of strings (plain text; renderers escape) */
    bool wide;
} rp_table;

typedef struct rp_data {
    char results[4096];
    rp_model m[RP_MAXM];
    size_t n;
    cJSON *owned;              /* every loaded document */
    const cJSON *study;        /* the study manifest, or NULL */
    const cJSON *host_manifest;/* a step manifest, for the methods */
    const cJSON *ape;          /* ape rows, or NULL */
    cJSON *notes;              /* [{model, step, status, reason}] steps skipped, failed or not finished */
    char *commands;            /* commands.sh, or NULL */
    rp_figure fig[RP_MAXFIG];
    int nfig;
    rp_table tab[RP_MAXTAB];
    int ntab;
} rp_data;

dpb_status rp_collect(const char *results, rp_data *d);
void rp_data_free(rp_data *d);

/* Numbers from result objects: NaN when absent or "unavailable: ..." */
double rp_num(const cJSON *o, const char *key);
const char *rp_str(const cJSON *o, const char *key);
/* The unavailable reason a field holds, or NULL. */
const char *rp_unavailable(const cJSON *o, const char *key);
/* A model's display name: "name [synthetic]" for synth: models (the models table says what each stands in for). */
void rp_model_label(const rp_model *m, char *buf, size_t cap);
/* The headline latency cell of a model: prompt 2048 / gen 64 / batch 1 when measured, else the
 * largest prompt with the smallest generation at batch 1. */
const cJSON *rp_headline_cell(const rp_model *m);

/* Figures: draws every figure into dir (figures/), filling d->fig. */
void rp_figures_draw(rp_data *d, const char *dir, const char *gnuplot);
/* Tables: fills d->tab. */
dpb_status rp_tables_build(rp_data *d);

/* Runs argv[0] (found on PATH) with argv in dir, stdin from /dev/null, stdout and stderr to dir/log;
 * returns its exit status (127: not found; 128+N: killed by signal N; -1: could not start, errno set). */
int rp_run_in(const char *dir, const char *log, char *const argv[]);
/* Writes s as one double-quoted gnuplot data field (" inside becomes '). */
void rp_dat_label(FILE *f, const char *s);

/* Writers. */
dpb_status rp_write_html(const rp_data *d, const char *out_dir, const char *fig_dir);
dpb_status rp_write_markdown(const rp_data *d, const char *out_dir);
dpb_status rp_write_latex(const rp_data *d, const char *paper_dir, const char *fig_dir);

/* The reference study's published numbers (gpt-oss-20b, 2048/64, H100 NVL, transformers bf16). */
#define RP_REF_LABEL "reference study (gpt-oss-20b, 2048/64, H100 NVL, transformers bf16)"
#define RP_REF_J_PER_1K 9764.0

/* Definitions and metric formulas, shared by the HTML and LaTeX writers:
 * {name, ours, the reference study's} rows, plain text. */
typedef struct rp_definition {
    const char *metric, *ours, *reference;
} rp_definition;
extern const rp_definition rp_definitions[];
extern const int rp_n_definitions;

#endif
