/* Safety prompt sets: CSV/JSON readers and the built-in set. */
#include "safety/sets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "core/checked.h"
#include "core/file.h"
#include "core/json.h"

#define MAX_FILE_BYTES (64u << 20)

/* ---------------- CSV ---------------- */

typedef struct growbuf { char *p; size_t n, cap; } growbuf;

static dpb_status gb_put(growbuf *b, char ch)
{
    if (b->n + 1 >= b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        char *np = realloc(b->p, nc);
        if (!np) return dpb_error_set(DPB_E_NOMEM, "csv: out of memory");
        b->p = np;
        b->cap = nc;
    }
    b->p[b->n++] = ch;
    b->p[b->n] = 0;
    return DPB_OK;
}

static dpb_status push_ptr(void ***arr, size_t *n, size_t *cap, void *v)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8, bytes;
        if (!dpb_mul_size(nc, sizeof(void *), &bytes)) return dpb_error_set(DPB_E_RANGE, "csv: too many fields");
        void **np = realloc(*arr, bytes);
        if (!np) return dpb_error_set(DPB_E_NOMEM, "csv: out of memory");
        *arr = np;
        *cap = nc;
    }
    (*arr)[(*n)++] = v;
    return DPB_OK;
}

void dpb_csv_free(dpb_csv *c)
{
    if (!c) return;
    for (size_t r = 0; r < c->nrows; r++) {
        for (size_t k = 0; k < c->ncols[r]; k++) free(c->rows[r][k]);
        free(c->rows[r]);
    }
    free(c->rows);
    free(c->ncols);
    memset(c, 0, sizeof *c);
}

dpb_status dpb_csv_parse(const char *text, size_t len, const char *what, dpb_csv *out)
{
    memset(out, 0, sizeof *out);
    size_t bad;
    if (!dpb_utf8_valid((const uint8_t *)text, len, &bad))
        return dpb_error_set(DPB_E_FORMAT, "%s: not valid UTF-8 at byte %zu", what, bad);
    size_t i = 0, line = 1, ncols_cap = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) i = 3;
    dpb_status st = DPB_OK;
    while (i < len) {
        char **row = NULL;
        size_t nf = 0, fcap = 0, row_line = line;
        for (;;) { /* one field */
            growbuf f = {0};
            if ((st = gb_put(&f, 0))) goto fail_field;
            f.n = 0;
            if (i < len && text[i] == '"') {
                i++;
                for (;;) {
                    if (i >= len) {
                        st = dpb_error_set(DPB_E_FORMAT, "%s: line %zu: quoted field never closed", what, row_line);
                        goto fail_field;
                    }
                    if (text[i] == '"') {
                        if (i + 1 < len && text[i + 1] == '"') { if ((st = gb_put(&f, '"'))) goto fail_field; i += 2; continue; }
                        i++;
                        break;
                    }
                    if (text[i] == '\n') line++;
                    if ((st = gb_put(&f, text[i++]))) goto fail_field;
                }
                if (i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
                    st = dpb_error_set(DPB_E_FORMAT, "%s: line %zu: text after a closing quote", what, line);
                    goto fail_field;
                }
            } else {
                while (i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
                    if ((st = gb_put(&f, text[i++]))) goto fail_field;
                }
            }
            if ((st = push_ptr((void ***)&row, &nf, &fcap, f.p))) goto fail_field;
            if (i < len && text[i] == ',') { i++; continue; }
            if (i < len && text[i] == '\r') i++;
            if (i < len && text[i] == '\n') { i++; line++; }
            break;
        fail_field:
            free(f.p);
            for (size_t k = 0; k < nf; k++) free(row[k]);
            free(row);
            dpb_csv_free(out);
            return st;
        }
        /* a blank line is skipped */
        if (nf == 1 && row[0][0] == 0) {
            free(row[0]);
            free(row);
            continue;
        }
        if (out->nrows == ncols_cap) {
            size_t nc = ncols_cap ? ncols_cap * 2 : 8;
            size_t *ncp = realloc(out->ncols, nc * sizeof *ncp);
            char ***nrp = ncp ? realloc(out->rows, nc * sizeof *nrp) : NULL;
            if (ncp) out->ncols = ncp;
            if (nrp) out->rows = nrp;
            if (!ncp || !nrp) {
                for (size_t k = 0; k < nf; k++) free(row[k]);
                free(row);
                dpb_csv_free(out);
                return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", what);
            }
            ncols_cap = nc;
        }
        out->rows[out->nrows] = row;
        out->ncols[out->nrows++] = nf;
    }
    return DPB_OK;
}

long dpb_csv_column(const dpb_csv *c, const char *name)
{
    if (!c->nrows) return -1;
    for (size_t k = 0; k < c->ncols[0]; k++)
        if (strcmp(c->rows[0][k], name) == 0) return (long)k;
    return -1;
}

/* ---------------- sets ---------------- */

void dpb_safety_set_free(dpb_safety_set *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        dpb_safety_prompt *p = &s->items[i];
        free(p->set); free(p->category); free(p->id); free(p->kind); free(p->prompt); free(p->ref_response);
    }
    free(s->items);
    memset(s, 0, sizeof *s);
}


static dpb_status add_prompt(dpb_safety_set *s, const char *set, const char *category, const char *id, const char *kind,
                             const char *prompt, dpb_safety_expect expect, dpb_safety_prompt **added)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64, bytes;
        if (!dpb_mul_size(nc, sizeof *s->items, &bytes)) return dpb_error_set(DPB_E_RANGE, "safety set: too many prompts");
        dpb_safety_prompt *np = realloc(s->items, bytes);
        if (!np) return dpb_error_set(DPB_E_NOMEM, "safety set: out of memory");
        s->items = np;
        s->cap = nc;
    }
    dpb_safety_prompt *p = &s->items[s->n];
    memset(p, 0, sizeof *p);
    p->set = strdup(set);
    p->category = strdup(category && *category ? category : "uncategorized");
    p->id = strdup(id);
    p->kind = strdup(kind);
    p->prompt = strdup(prompt);
    p->expect = expect;
    p->ref_jailbroken = p->ref_llama_guard = -1;
    s->n++;
    if (!p->set || !p->category || !p->id || !p->kind || !p->prompt)
        return dpb_error_set(DPB_E_NOMEM, "safety set: out of memory");
    if (added) *added = p;
    return DPB_OK;
}

static dpb_status load_csv_file(const char *path, dpb_csv *c)
{
    if (!dpb_file_exists(path))
        return dpb_error_set(DPB_E_IO, "%s: file not found (expected here; see docs/SAFETY.md for the layout)", path);
    char *text = NULL;
    size_t len = 0;
    dpb_status st = dpb_file_read(path, MAX_FILE_BYTES, &text, &len);
    if (st) return st;
    st = dpb_csv_parse(text, len, path, c);
    free(text);
    return st;
}

/* Columns by name; an absent required column is an error naming it. */
static dpb_status need_cols(const dpb_csv *c, const char *path, const char *const *names, long *idx, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        idx[k] = dpb_csv_column(c, names[k]);
        if (idx[k] < 0) return dpb_error_set(DPB_E_FORMAT, "%s: header has no column '%s'", path, names[k]);
    }
    return DPB_OK;
}

static const char *cell(const dpb_csv *c, size_t r, long k) { return (size_t)k < c->ncols[r] ? c->rows[r][k] : ""; }

dpb_status dpb_safety_read_advbench(const char *path, dpb_safety_set *out)
{
    dpb_csv c;
    dpb_status st = load_csv_file(path, &c);
    if (st) return st;
    static const char *const names[] = {"goal"};
    long k[1];
    if (!(st = need_cols(&c, path, names, k, 1))) {
        for (size_t r = 1; r < c.nrows && !st; r++) {
            char id[32];
            snprintf(id, sizeof id, "advbench-%zu", r - 1);
            st = add_prompt(out, "advbench", "harmful_behaviors", id, "harmful", cell(&c, r, k[0]), DPB_EXPECT_REFUSE, NULL);
        }
    }
    dpb_csv_free(&c);
    return st;
}

dpb_status dpb_safety_read_harmbench(const char *path, dpb_safety_set *out)
{
    dpb_csv c;
    dpb_status st = load_csv_file(path, &c);
    if (st) return st;
    static const char *const names[] = {"Behavior", "FunctionalCategory", "SemanticCategory", "ContextString", "BehaviorID"};
    long k[5];
    if (!(st = need_cols(&c, path, names, k, 5))) {
        for (size_t r = 1; r < c.nrows && !st; r++) {
            const char *beh = cell(&c, r, k[0]), *ctx = cell(&c, r, k[3]);
            char *prompt = NULL;
            /* HarmBench's contextual layout: context, a rule, then the behaviour. */
            if (*ctx) {
                size_t n = strlen(ctx) + strlen(beh) + 16;
                prompt = malloc(n);
                if (!prompt) { st = dpb_error_set(DPB_E_NOMEM, "harmbench: out of memory"); break; }
                snprintf(prompt, n, "%s\n\n---\n\n%s", ctx, beh);
            }
            char cat[256];
            snprintf(cat, sizeof cat, "%s", cell(&c, r, k[2]));
            const char *func = cell(&c, r, k[1]);
            st = add_prompt(out, "harmbench", cat, cell(&c, r, k[4]), *func ? func : "standard", prompt ? prompt : beh,
                            DPB_EXPECT_REFUSE, NULL);
            free(prompt);
        }
    }
    dpb_csv_free(&c);
    return st;
}

dpb_status dpb_safety_read_jbb(const char *path, dpb_safety_set *out)
{
    dpb_csv c;
    dpb_status st = load_csv_file(path, &c);
    if (st) return st;
    static const char *const names[] = {"Index", "Goal", "Behavior", "Category"};
    long k[4];
    if (!(st = need_cols(&c, path, names, k, 4))) {
        for (size_t r = 1; r < c.nrows && !st; r++) {
            char id[64];
            snprintf(id, sizeof id, "jbb-%s", cell(&c, r, k[0]));
            st = add_prompt(out, "jbb", cell(&c, r, k[3]), id, "harmful", cell(&c, r, k[1]), DPB_EXPECT_REFUSE, NULL);
        }
    }
    dpb_csv_free(&c);
    return st;
}

dpb_status dpb_safety_read_jbb_pair(const char *path, dpb_safety_set *out)
{
    if (!dpb_file_exists(path))
        return dpb_error_set(DPB_E_IO, "%s: file not found (expected here; see docs/SAFETY.md for the layout)", path);
    cJSON *root = NULL;
    dpb_status st = dpb_json_load(path, MAX_FILE_BYTES, &root);
    if (st) return st;
    const cJSON *jb = cJSON_GetObjectItemCaseSensitive(root, "jailbreaks");
    if (!cJSON_IsArray(jb)) {
        cJSON_Delete(root);
        return dpb_error_set(DPB_E_FORMAT, "%s: jailbreaks: expected an array", path);
    }
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, jb) {
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(e, "prompt");
        const cJSON *resp = cJSON_GetObjectItemCaseSensitive(e, "response");
        const cJSON *cat = cJSON_GetObjectItemCaseSensitive(e, "category");
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(e, "index");
        const cJSON *jbk = cJSON_GetObjectItemCaseSensitive(e, "jailbroken");
        const cJSON *lg = cJSON_GetObjectItemCaseSensitive(e, "jailbroken_llama_guard1");
        if (!cJSON_IsObject(e)) { st = dpb_error_set(DPB_E_FORMAT, "%s: jailbreaks[%zu]: expected an object", path, i); break; }
        if (cJSON_IsNull(prompt) || !prompt) { i++; continue; } /* no jailbreak submitted for this behaviour */
        if (!cJSON_IsString(prompt)) { st = dpb_error_set(DPB_E_FORMAT, "%s: jailbreaks[%zu].prompt: expected a string", path, i); break; }
        if (resp && !cJSON_IsNull(resp) && !cJSON_IsString(resp)) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: jailbreaks[%zu].response: expected a string or null", path, i);
            break;
        }
        if ((jbk && !cJSON_IsBool(jbk)) || (lg && !cJSON_IsBool(lg))) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: jailbreaks[%zu]: jailbroken labels must be booleans", path, i);
            break;
        }
        char id[64];
        if (cJSON_IsNumber(idx)) snprintf(id, sizeof id, "jbb-pair-%lld", (long long)idx->valuedouble);
        else snprintf(id, sizeof id, "jbb-pair-pos%zu", i);
        dpb_safety_prompt *p = NULL;
        st = add_prompt(out, "jbb-pair", cJSON_IsString(cat) ? cat->valuestring : "", id, "jailbreak", prompt->valuestring,
                        DPB_EXPECT_REFUSE, &p);
        if (st) break;
        if (cJSON_IsString(resp)) {
            p->ref_response = strdup(resp->valuestring);
            if (!p->ref_response) { st = dpb_error_set(DPB_E_NOMEM, "jbb-pair: out of memory"); break; }
        }
        p->ref_jailbroken = jbk ? cJSON_IsTrue(jbk) : -1;
        p->ref_llama_guard = lg ? cJSON_IsTrue(lg) : -1;
        i++;
    }
    cJSON_Delete(root);
    return st;
}

dpb_status dpb_safety_read_xstest(const char *path, dpb_safety_set *out)
{
    dpb_csv c;
    dpb_status st = load_csv_file(path, &c);
    if (st) return st;
    static const char *const names[] = {"id", "prompt", "type", "label"};
    long k[4];
    if (!(st = need_cols(&c, path, names, k, 4))) {
        for (size_t r = 1; r < c.nrows && !st; r++) {
            const char *label = cell(&c, r, k[3]);
            bool safe = strcmp(label, "safe") == 0;
            if (!safe && strcmp(label, "unsafe") != 0) {
                st = dpb_error_set(DPB_E_FORMAT, "%s: row %zu: label '%.20s' is neither safe nor unsafe", path, r, label);
                break;
            }
            char id[64];
            snprintf(id, sizeof id, "xstest-%s", cell(&c, r, k[0]));
            st = add_prompt(out, "xstest", cell(&c, r, k[2]), id, safe ? "safe" : "unsafe-contrast", cell(&c, r, k[1]),
                            safe ? DPB_EXPECT_ANSWER : DPB_EXPECT_REFUSE, NULL);
        }
    }
    dpb_csv_free(&c);
    return st;
}

dpb_status dpb_safety_read_builtin_text(const char *text, size_t len, const char *what, dpb_safety_set *out)
{
    size_t pos = 0, line = 0;
    dpb_status st = DPB_OK;
    while (pos < len && !st) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        line++;
        size_t a = pos;
        while (a < end && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        if (a < end && text[a] != '#') {
            cJSON *o = NULL;
            char where[160];
            snprintf(where, sizeof where, "%s line %zu", what, line);
            if ((st = dpb_json_parse(text + a, end - a, where, &o))) break;
            const char *id, *cat, *kind, *prompt;
            if (!cJSON_IsObject(o)) st = dpb_error_set(DPB_E_FORMAT, "%s: expected an object", where);
            if (!st) st = dpb_json_get_string(o, "id", where, DPB_JSON_REQUIRED, NULL, &id, NULL);
            if (!st) st = dpb_json_get_string(o, "category", where, DPB_JSON_REQUIRED, NULL, &cat, NULL);
            if (!st) st = dpb_json_get_string(o, "kind", where, DPB_JSON_REQUIRED, NULL, &kind, NULL);
            if (!st) st = dpb_json_get_string(o, "prompt", where, DPB_JSON_REQUIRED, NULL, &prompt, NULL);
            if (!st) {
                dpb_safety_expect ex = DPB_EXPECT_REFUSE;
                if (!strcmp(kind, "harmful") || !strcmp(kind, "jailbreak")) ex = DPB_EXPECT_REFUSE;
                else if (!strcmp(kind, "benign")) ex = DPB_EXPECT_ANSWER;
                else st = dpb_error_set(DPB_E_FORMAT, "%s: kind: '%.20s' is not harmful, jailbreak or benign", where, kind);
                if (!st) st = add_prompt(out, "builtin", cat, id, kind, prompt, ex, NULL);
            }
            cJSON_Delete(o);
        }
        pos = nl ? end + 1 : len;
    }
    return st;
}

dpb_status dpb_safety_read_prompts_file(const char *path, dpb_safety_set *out)
{
    if (!dpb_file_exists(path)) return dpb_error_set(DPB_E_IO, "--prompts %s: file not found", path);
    char *text = NULL;
    size_t len = 0;
    dpb_status st = dpb_file_read(path, MAX_FILE_BYTES, &text, &len);
    if (st) return st;
    size_t first = out->n;
    st = dpb_safety_read_builtin_text(text, len, path, out);
    free(text);
    for (size_t i = first; i < out->n; i++) {
        char *c = strdup("custom");
        if (!c) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
        free(out->items[i].set);
        out->items[i].set = c;
    }
    return st;
}

dpb_status dpb_safety_set_load(const char *name, const char *data_dir, dpb_safety_set *out)
{
    const char *rel = NULL;
    dpb_status (*reader)(const char *, dpb_safety_set *) = NULL;
    if (!strcmp(name, "builtin")) {
        size_t len;
        const char *t = dpb_safety_builtin_text(&len);
        return dpb_safety_read_builtin_text(t, len, "data/safety/builtin.jsonl (built in)", out);
    }
    if (!strcmp(name, "advbench")) { rel = "advbench/harmful_behaviors.csv"; reader = dpb_safety_read_advbench; }
    else if (!strcmp(name, "harmbench")) { rel = "harmbench/harmbench_behaviors_text_all.csv"; reader = dpb_safety_read_harmbench; }
    else if (!strcmp(name, "jbb")) { rel = "jailbreakbench/jbb_behaviors_harmful.derived.csv"; reader = dpb_safety_read_jbb; }
    else if (!strcmp(name, "jbb-pair")) { rel = "jailbreakbench/PAIR_black_box_vicuna-13b-v1.5.json"; reader = dpb_safety_read_jbb_pair; }
    else if (!strcmp(name, "xstest")) { rel = "xstest/xstest_prompts.csv"; reader = dpb_safety_read_xstest; }
    else return dpb_error_set(DPB_E_ARG, "--sets: unknown set '%s' (known: %s)", name, DPB_SAFETY_SET_NAMES);
    if (!data_dir)
        return dpb_error_set(DPB_E_ARG, "--sets %s needs --data DIR (a folder holding %s)", name, rel);
    char *path = NULL;
    dpb_status st = dpb_path_join(data_dir, rel, &path);
    if (st) return st;
    if (!dpb_file_exists(path)) {
        st = dpb_error_set(DPB_E_IO, "set %s: expected file %s is missing (--data %s should hold %s)", name, path,
                           data_dir, rel);
    } else st = reader(path, out);
    free(path);
    return st;
}
