/* Safety prompt sets: the built-in curated set (data/safety/builtin.jsonl,
 * compiled into the binary) and readers for AdvBench, HarmBench,
 * JailbreakBench (behaviours and the PAIR artifact) and XSTest, read in place
 * from a data folder laid out like ../shared/data (docs/SAFETY.md).
 *
 * Every prompt carries what a safe model should do with it: refuse (harmful
 * requests, jailbreaks, XSTest's unsafe contrasts) or answer (benign
 * lookalikes, XSTest's safe prompts). */
#ifndef DPB_SAFETY_SETS_H
#define DPB_SAFETY_SETS_H

#include <stdbool.h>
#include <stddef.h>
#include "core/status.h"

typedef enum dpb_safety_expect {
    DPB_EXPECT_REFUSE = 0, /* harmful: refusing is the safe behaviour */
    DPB_EXPECT_ANSWER,     /* benign: refusing is over-refusal */
} dpb_safety_expect;

typedef struct dpb_safety_prompt {
    char *set;      /* builtin, advbench, harmbench, jbb, jbb-pair, xstest */
    char *category; /* the set's own category ("uncategorized" when it has none) */
    char *id;       /* stable id within the set */
    char *kind;     /* harmful, jailbreak, benign, safe, unsafe-contrast */
    char *prompt;   /* the user message */
    dpb_safety_expect expect;
    /* the JailbreakBench PAIR artifact only: the recorded target response and labels */
    char *ref_response;  /* NULL when absent */
    int ref_jailbroken;  /* -1 absent, 0/1: the artifact's judge label ("jailbroken") */
    int ref_llama_guard; /* -1 absent, 0/1: "jailbroken_llama_guard1" */
} dpb_safety_prompt;

typedef struct dpb_safety_set {
    dpb_safety_prompt *items;
    size_t n, cap;
} dpb_safety_set;

void dpb_safety_set_free(dpb_safety_set *s);

/* Set names accepted by dpb_safety_set_load. */
#define DPB_SAFETY_SET_NAMES "builtin, advbench, harmbench, jbb, jbb-pair, xstest"

/* Appends the prompts of one named set to out.  data_dir is the folder that
 * holds advbench/, harmbench/, jailbreakbench/ and xstest/ (unused for
 * builtin).  A missing file is DPB_E_IO naming the expected path. */
dpb_status dpb_safety_set_load(const char *name, const char *data_dir, dpb_safety_set *out);

/* The individual readers (path is the file itself). */
dpb_status dpb_safety_read_builtin_text(const char *text, size_t len, const char *what, dpb_safety_set *out);
dpb_status dpb_safety_read_advbench(const char *path, dpb_safety_set *out);
dpb_status dpb_safety_read_harmbench(const char *path, dpb_safety_set *out);
dpb_status dpb_safety_read_jbb(const char *path, dpb_safety_set *out);
dpb_status dpb_safety_read_jbb_pair(const char *path, dpb_safety_set *out);
dpb_status dpb_safety_read_xstest(const char *path, dpb_safety_set *out);

/* A user prompt file in the built-in set's JSONL format ({id, category, kind, prompt}
 * per line, kind harmful|jailbreak|benign); its prompts get set "custom". */
dpb_status dpb_safety_read_prompts_file(const char *path, dpb_safety_set *out);

/* The built-in set's JSONL text (embedded at build time) and its length. */
const char *dpb_safety_builtin_text(size_t *len);

/* ---- CSV (RFC 4180: quoted fields, doubled quotes, newlines in quotes) ---- */
typedef struct dpb_csv {
    char ***rows;   /* rows[r][c], NUL-terminated; row 0 is the header */
    size_t *ncols;
    size_t nrows;
} dpb_csv;
/* Parses text[0..len); what names the source in errors (line numbers are 1-based). */
dpb_status dpb_csv_parse(const char *text, size_t len, const char *what, dpb_csv *out);
void dpb_csv_free(dpb_csv *c);
/* Column index of name in the header, or -1. */
long dpb_csv_column(const dpb_csv *c, const char *name);

#endif
