/* Reading a results folder for the report. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/file.h"
#include "core/json.h"
#include "report/internal.h"

double rp_num(const cJSON *o, const char *key)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
}

const char *rp_str(const cJSON *o, const char *key)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *rp_unavailable(const cJSON *o, const char *key)
{
    const char *s = rp_str(o, key);
    if (!s) return o && cJSON_GetObjectItemCaseSensitive(o, key) ? NULL : "not recorded";
    return strncmp(s, "unavailable: ", 13) == 0 ? s + 13 : strncmp(s, "unavailable", 11) == 0 ? s : NULL;
}

void rp_model_label(const rp_model *m, char *buf, size_t cap)
{
    if (m->synthetic) snprintf(buf, cap, "%s [synthetic]", m->name);
    else snprintf(buf, cap, "%s", m->name);
}

const cJSON *rp_headline_cell(const rp_model *m)
{
    const cJSON *c, *best = NULL;
    double bp = -1, bg = 1e300;
    cJSON_ArrayForEach(c, m->latency) {
        double p = rp_num(c, "prompt_tokens"), g = rp_num(c, "gen_tokens"), b = rp_num(c, "batch");
        if (b != 1) continue;
        if (p == 2048 && g == 64) return c;
        if (p > bp || (p == bp && g < bg)) best = c, bp = p, bg = g;
    }
    return best;
}

/* Fixed colours per model family (the reference study's three models first). */
static const char *family_color(const char *name, const char *stands_for, size_t idx)
{
    static const char *const extra[] = {"#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"};
    const char *n = stands_for && *stands_for ? stands_for : name;
    if (strstr(n, "gpt-oss")) return "#1f77b4";
    if (strstr(n, "qwen")) return "#ff7f0e";
    if (strstr(n, "yi") || strstr(n, "llama")) return "#2ca02c";
    return extra[idx % (sizeof extra / sizeof extra[0])];
}

static const char *const k_ref[3] = {"gpt-oss-20b", "qwen3-32b", "yi-34b"};
static const char *const k_tiny[3] = {"gpt-oss-tiny", "qwen3-tiny", "llama-tiny"};

static rp_model *model_get(rp_data *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->m[i].name, name) == 0) return &d->m[i];
    if (d->n == RP_MAXM) return NULL;
    rp_model *m = &d->m[d->n++];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    return m;
}

static cJSON *keep(rp_data *d, cJSON *doc)
{
    if (doc) cJSON_AddItemToArray(d->owned, doc);
    return doc;
}

static cJSON *load_in(rp_data *d, const char *dir, const char *name)
{
    char *p;
    if (dpb_path_join(dir, name, &p)) return NULL;
    cJSON *doc = NULL;
    if (dpb_file_exists(p) && dpb_json_load(p, (size_t)256 << 20, &doc) != DPB_OK) doc = NULL;
    free(p);
    return keep(d, doc);
}

static bool has(const char *dir, const char *name)
{
    char *p;
    if (dpb_path_join(dir, name, &p)) return false;
    bool r = dpb_file_exists(p);
    free(p);
    return r;
}

/* A results folder: what it holds decides its kind. */
static void take_folder(rp_data *d, const char *dir, const char *model_hint)
{
    cJSON *man = load_in(d, dir, "manifest.json");
    if (!man && model_hint && has(dir, "samples.jsonl") && has(dir, "run.json")) {
        /* deploybench eval: summary.json {task, metrics: {NAME: {n, accuracy, stderr}}} */
        cJSON *sum = load_in(d, dir, "summary.json");
        const cJSON *ms = sum ? cJSON_GetObjectItemCaseSensitive(sum, "metrics") : NULL;
        rp_model *m = cJSON_IsObject(ms) ? model_get(d, model_hint) : NULL;
        if (!m) return;
        if (!m->eval) m->eval = keep(d, cJSON_CreateArray());
        const cJSON *e;
        cJSON_ArrayForEach(e, ms) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "task", rp_str(sum, "task") ? rp_str(sum, "task") : "?");
            cJSON_AddStringToObject(row, "metric", e->string ? e->string : "?");
            cJSON_AddNumberToObject(row, "n", rp_num(e, "n"));
            cJSON_AddNumberToObject(row, "accuracy", rp_num(e, "accuracy"));
            if (isfinite(rp_num(e, "stderr"))) cJSON_AddNumberToObject(row, "stderr", rp_num(e, "stderr"));
            cJSON_AddItemToArray((cJSON *)m->eval, row);
        }
        return;
    }
    if (!man) return;
    const char *spec = rp_str(cJSON_GetObjectItemCaseSensitive(man, "model"), "spec");
    char name[64];
    if (model_hint) snprintf(name, sizeof name, "%s", model_hint);
    else if (spec) snprintf(name, sizeof name, "%s", strncmp(spec, "synth:", 6) == 0 ? spec + 6 : spec);
    else return;
    cJSON *doc;
    const cJSON *arr = NULL;
    int kind = 0;
    if (has(dir, "cells.jsonl") && (doc = load_in(d, dir, "summary.json")))
        arr = cJSON_GetObjectItemCaseSensitive(doc, "cells"), kind = 1;
    else if ((doc = load_in(d, dir, "memory.json"))) arr = cJSON_GetObjectItemCaseSensitive(doc, "rows"), kind = 2;
    else if ((doc = load_in(d, dir, "energy_summary.json"))) arr = cJSON_GetObjectItemCaseSensitive(doc, "contexts"), kind = 3;
    else if ((doc = load_in(d, dir, "ablation.json"))) arr = cJSON_GetObjectItemCaseSensitive(doc, "rows"), kind = 4;
    else if (has(dir, "sweep.csv") && (doc = load_in(d, dir, "summary.json")))
        arr = cJSON_GetObjectItemCaseSensitive(doc, "levels"), kind = 5;
    else if (has(dir, "governance.json") && (doc = load_in(d, dir, "summary.json"))) {
        /* deploybench safety: the report names its folder (its own report.md has the rates) */
        static const cJSON empty_arr = {.type = cJSON_Array};
        arr = &empty_arr, kind = 6;
    }
    if (!kind || !cJSON_IsArray(arr)) return;
    rp_model *m = model_get(d, name);
    if (!m) return;
    if (spec && !m->spec[0]) {
        snprintf(m->spec, sizeof m->spec, "%s", spec);
        m->synthetic = strncmp(spec, "synth:", 6) == 0;
        for (int i = 0; i < 3; i++) {
            char t[64];
            snprintf(t, sizeof t, "synth:%s", k_tiny[i]);
            if (strcmp(spec, t) == 0) snprintf(m->stands_for, sizeof m->stands_for, "%s", k_ref[i]);
        }
    }
    if (!d->host_manifest && cJSON_GetObjectItemCaseSensitive(man, "host")) d->host_manifest = man;
    switch (kind) {
    case 1: m->latency = arr; break;
    case 2: m->memory = arr; break;
    case 3: m->energy = arr; break;
    case 4: {
        /* one folder per test: their rows together */
        if (!m->ablate) m->ablate = keep(d, cJSON_CreateArray());
        const cJSON *row;
        cJSON_ArrayForEach(row, arr) cJSON_AddItemToArray((cJSON *)m->ablate, cJSON_Duplicate(row, 1));
        break;
    }
    case 5: m->serve = arr; break;
    case 6: m->safety = keep(d, cJSON_CreateString(dir)); break;
    }
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sub-folders of dir, sorted (caller frees each and the array). */
static size_t subdirs(const char *dir, char ***out)
{
    *out = NULL;
    DIR *dd = opendir(dir);
    if (!dd) return 0;
    size_t n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(dd))) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".incomplete-")) continue;
        char *p;
        if (dpb_path_join(dir, e->d_name, &p)) continue;
        if (!dpb_dir_exists(p)) {
            free(p);
            continue;
        }
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            char **nv = n < 4096 ? realloc(v, nc * sizeof *nv) : NULL;
            if (!nv) {
                free(p);
                break;
            }
            v = nv;
            cap = nc;
        }
        v[n++] = p;
    }
    closedir(dd);
    if (n) qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    return n;
}

dpb_status rp_collect(const char *results, rp_data *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->results, sizeof d->results, "%s", results);
    d->owned = cJSON_CreateArray();
    d->notes = cJSON_CreateArray();
    if (!d->owned || !d->notes) return dpb_error_set(DPB_E_NOMEM, "report: out of memory");
    if (!dpb_dir_exists(results)) return dpb_error_set(DPB_E_ARG, "--results %s: not a folder", results);
    cJSON *sm = load_in(d, results, "manifest.json");
    const cJSON *study = sm ? cJSON_GetObjectItemCaseSensitive(sm, "study") : NULL;
    if (study) {
        d->study = sm;
        /* Models in the study's order, with its synthetic marks. */
        const cJSON *mo;
        cJSON_ArrayForEach(mo, cJSON_GetObjectItemCaseSensitive(study, "models")) {
            const char *nm = rp_str(mo, "name");
            rp_model *m = nm ? model_get(d, nm) : NULL;
            if (!m) continue;
            snprintf(m->spec, sizeof m->spec, "%s", rp_str(mo, "spec") ? rp_str(mo, "spec") : "");
            m->synthetic = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mo, "synthetic"));
            if (rp_str(mo, "stands_for")) snprintf(m->stands_for, sizeof m->stands_for, "%s", rp_str(mo, "stands_for"));
        }
        const cJSON *s, *steps = cJSON_GetObjectItemCaseSensitive(study, "steps");
        cJSON_ArrayForEach(s, steps) {
            const char *st = rp_str(s, "status");
            /* only the latest run of a model's step counts */
            bool later = false;
            for (const cJSON *t = s->next; t && !later; t = t->next)
                later = rp_str(t, "step") && rp_str(s, "step") && !strcmp(rp_str(t, "step"), rp_str(s, "step")) &&
                        ((!rp_str(t, "model") && !rp_str(s, "model")) ||
                         (rp_str(t, "model") && rp_str(s, "model") && !strcmp(rp_str(t, "model"), rp_str(s, "model"))));
            if (later) continue;
            const cJSON *mi = cJSON_GetObjectItemCaseSensitive(s, "model_info");
            if (mi && rp_str(mi, "name")) {
                rp_model *m = model_get(d, rp_str(mi, "name"));
                if (m && !m->spec[0]) {
                    snprintf(m->spec, sizeof m->spec, "%s", rp_str(mi, "spec") ? rp_str(mi, "spec") : "");
                    m->synthetic = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mi, "synthetic"));
                    if (rp_str(mi, "stands_for"))
                        snprintf(m->stands_for, sizeof m->stands_for, "%s", rp_str(mi, "stands_for"));
                }
            }
            if (!st || !strcmp(st, "complete")) continue;
            if (!strcmp(st, "running") && rp_str(s, "step") && !strcmp(rp_str(s, "step"), "report")) continue;
            cJSON *n = cJSON_CreateObject();
            cJSON_AddStringToObject(n, "model", rp_str(s, "model") ? rp_str(s, "model") : "(all models)");
            cJSON_AddStringToObject(n, "step", rp_str(s, "step") ? rp_str(s, "step") : "?");
            cJSON_AddStringToObject(n, "status", st);
            const char *why = rp_str(s, "reason") ? rp_str(s, "reason") : rp_str(s, "message");
            cJSON_AddStringToObject(n, "reason", why ? why : "");
            cJSON_AddItemToArray(d->notes, n);
        }
    }
    /* Results folders: OUT/X and OUT/MODEL/STEP. */
    char **top;
    size_t nt = subdirs(results, &top);
    for (size_t i = 0; i < nt; i++) {
        const char *base = strrchr(top[i], '/') ? strrchr(top[i], '/') + 1 : top[i];
        if (has(top[i], "manifest.json")) take_folder(d, top[i], NULL);
        else if (strcmp(base, "figures") && strcmp(base, "paper")) {
            char **sub;
            size_t ns = subdirs(top[i], &sub);
            for (size_t j = 0; j < ns; j++) {
                take_folder(d, sub[j], base);
                free(sub[j]);
            }
            free(sub);
        }
        free(top[i]);
    }
    free(top);
    cJSON *ape = NULL;
    {
        char *ad;
        if (dpb_path_join(results, "ape", &ad) == DPB_OK) {
            ape = load_in(d, ad, "ape_analysis.json");
            free(ad);
        }
    }
    if (ape && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(ape, "rows")))
        d->ape = cJSON_GetObjectItemCaseSensitive(ape, "rows");
    /* Models the study listed but that have no results keep their place (their steps are in notes). */
    for (size_t i = 0; i < d->n; i++) d->m[i].color = family_color(d->m[i].name, d->m[i].stands_for, i);
    char *cp;
    if (dpb_path_join(results, "commands.sh", &cp) == DPB_OK) {
        size_t len;
        if (dpb_file_exists(cp) && dpb_file_read(cp, 1 << 22, &d->commands, &len) != DPB_OK) d->commands = NULL;
        free(cp);
    }
    return DPB_OK;
}

void rp_data_free(rp_data *d)
{
    cJSON_Delete(d->owned);
    cJSON_Delete(d->notes);
    for (int i = 0; i < d->ntab; i++) cJSON_Delete(d->tab[i].rows);
    free(d->commands);
    memset(d, 0, sizeof *d);
}
