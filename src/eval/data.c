/* Readers for the evaluation data sets (see eval.h). */
#include "eval/eval.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <cjson/cJSON.h>
#include "core/checked.h"
#include "core/file.h"
#include "core/json.h"

static void item_free(dpb_eval_item *it)
{
    free(it->subset);
    free(it->question);
    for (int i = 0; i < 4; i++) free(it->choices[i]);
    free(it->target);
    free(it->task_id);
    free(it->entry_point);
    free(it->canonical);
    free(it->test);
}

void dpb_eval_set_free(dpb_eval_set *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) item_free(&s->items[i]);
    free(s->items);
    s->items = NULL;
    s->n = s->cap = 0;
}

static dpb_status set_push(dpb_eval_set *s, dpb_eval_item **out)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64, bytes;
        if (!dpb_mul_size(nc, sizeof *s->items, &bytes)) return dpb_error_set(DPB_E_RANGE, "eval: too many items");
        dpb_eval_item *p = realloc(s->items, bytes);
        if (!p) return dpb_error_set(DPB_E_NOMEM, "eval: out of memory");
        s->items = p;
        s->cap = nc;
    }
    dpb_eval_item *it = &s->items[s->n++];
    memset(it, 0, sizeof *it);
    it->answer = -1;
    *out = it;
    return DPB_OK;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* ---------------------------------------------------------------- CSV */

void dpb_eval_csv_free(char **fields, size_t nrows, size_t ncols)
{
    if (!fields) return;
    for (size_t i = 0; i < nrows * ncols; i++) free(fields[i]);
    free(fields);
}

dpb_status dpb_eval_csv_parse(const char *text, size_t len, size_t ncols, const char *what, char ***fields_out,
                              size_t *nrows_out)
{
    *fields_out = NULL;
    *nrows_out = 0;
    if (ncols == 0 || ncols > 64) return dpb_error_set(DPB_E_ARG, "%s: bad column count", what);
    char **fields = NULL;
    size_t nf = 0, capf = 0, nrows = 0, line = 1;
    char *buf = malloc(len + 1); /* one field is never longer than the input */
    if (!buf) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", what);
    size_t i = 0, row_fields = 0, row_line = 1;
    dpb_status st = DPB_OK;
    if (len >= 3 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB && (unsigned char)text[2] == 0xBF)
        i = 3; /* UTF-8 byte order mark */
    while (i < len) {
        /* one field */
        size_t bl = 0;
        if (text[i] == '"') {
            i++;
            for (;;) {
                if (i >= len) { st = dpb_error_set(DPB_E_FORMAT, "%s: line %zu: unterminated quoted field", what, row_line); goto fail; }
                if (text[i] == '"') {
                    if (i + 1 < len && text[i + 1] == '"') { buf[bl++] = '"'; i += 2; continue; }
                    i++;
                    break;
                }
                if (text[i] == '\n') line++;
                if (text[i] == 0) { st = dpb_error_set(DPB_E_FORMAT, "%s: line %zu: NUL byte", what, line); goto fail; }
                buf[bl++] = text[i++];
            }
            if (i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
                st = dpb_error_set(DPB_E_FORMAT, "%s: line %zu: text after a closing quote", what, line);
                goto fail;
            }
        } else {
            while (i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
                if (text[i] == 0) { st = dpb_error_set(DPB_E_FORMAT, "%s: line %zu: NUL byte", what, line); goto fail; }
                buf[bl++] = text[i++];
            }
        }
        if (nf == capf) {
            size_t nc = capf ? capf * 2 : 256, bytes;
            if (!dpb_mul_size(nc, sizeof *fields, &bytes)) { st = dpb_error_set(DPB_E_RANGE, "%s: too many fields", what); goto fail; }
            char **p = realloc(fields, bytes);
            if (!p) { st = dpb_error_set(DPB_E_NOMEM, "%s: out of memory", what); goto fail; }
            fields = p;
            capf = nc;
        }
        if (!(fields[nf] = dupn(buf, bl))) { st = dpb_error_set(DPB_E_NOMEM, "%s: out of memory", what); goto fail; }
        nf++;
        row_fields++;
        if (row_fields > ncols) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: line %zu: more than %zu fields", what, row_line, ncols);
            goto fail;
        }
        if (i < len && text[i] == ',') { i++; if (i == len) { st = dpb_error_set(DPB_E_FORMAT, "%s: line %zu: ends after a comma", what, row_line); goto fail; } continue; }
        /* end of row */
        if (i < len && text[i] == '\r') i++;
        if (i < len && text[i] == '\n') { i++; line++; }
        if (row_fields != ncols) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: line %zu: %zu fields, expected %zu", what, row_line, row_fields, ncols);
            goto fail;
        }
        nrows++;
        row_fields = 0;
        row_line = line;
        /* skip blank lines */
        while (i < len && (text[i] == '\n' || text[i] == '\r')) { if (text[i] == '\n') line++; i++; }
        row_line = line;
    }
    free(buf);
    *fields_out = fields;
    *nrows_out = nrows;
    return DPB_OK;
fail:
    free(buf);
    for (size_t k = 0; k < nf; k++) free(fields[k]);
    free(fields);
    return st;
}

/* ---------------------------------------------------------------- MMLU */

dpb_status dpb_eval_mmlu_parse(const char *text, size_t len, const char *subject, const char *what, dpb_eval_set *out)
{
    char **f = NULL;
    size_t nrows = 0;
    dpb_status st = dpb_eval_csv_parse(text, len, 6, what, &f, &nrows);
    if (st) return st;
    size_t r0 = 0;
    bool header = nrows > 0 && strcmp(f[0], "question") == 0 && strcmp(f[5], "answer") == 0;
    if (header) r0 = 1;
    for (size_t r = r0; r < nrows; r++) {
        char **row = f + r * 6;
        const char *a = row[5];
        int ans = -1;
        if (header) {
            if (a[0] >= '0' && a[0] <= '3' && a[1] == 0) ans = a[0] - '0';
        } else if (a[0] >= 'A' && a[0] <= 'D' && a[1] == 0) ans = a[0] - 'A';
        if (ans < 0) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: row %zu: answer '%.20s' is not %s", what, r + 1, a,
                               header ? "0-3 (the file has a header)" : "A-D (the file has no header)");
            goto fail;
        }
        dpb_eval_item *it;
        if ((st = set_push(out, &it))) goto fail;
        it->answer = ans;
        it->question = row[0];
        row[0] = NULL;
        for (int c = 0; c < 4; c++) { it->choices[c] = row[1 + c]; row[1 + c] = NULL; }
        if (subject && !(it->subset = strdup(subject))) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto fail; }
    }
    dpb_eval_csv_free(f, nrows, 6);
    return DPB_OK;
fail:
    dpb_eval_csv_free(f, nrows, 6);
    return st;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names in dir ending with suffix (the suffix removed). */
static dpb_status list_suffix(const char *dir, const char *suffix, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return dpb_error_set(DPB_E_IO, "%s: cannot open the folder", dir);
    size_t cap = 0, cnt = 0, sl = strlen(suffix);
    char **v = NULL;
    struct dirent *de;
    dpb_status st = DPB_OK;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l <= sl || strcmp(de->d_name + l - sl, suffix) != 0 || de->d_name[0] == '.') continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(v, cap * sizeof *p);
            if (!p) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); break; }
            v = p;
        }
        if (!(v[cnt] = dupn(de->d_name, l - sl))) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); break; }
        cnt++;
    }
    closedir(d);
    if (st) {
        for (size_t i = 0; i < cnt; i++) free(v[i]);
        free(v);
        return st;
    }
    if (cnt) qsort(v, cnt, sizeof *v, cmp_str);
    *names = v;
    *n = cnt;
    return DPB_OK;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

dpb_status dpb_eval_mmlu_load_dir(const char *dir, const char *split, const char *subject, dpb_eval_set *out)
{
    char suffix[64];
    snprintf(suffix, sizeof suffix, "_%s.csv", split);
    char **names;
    size_t n;
    dpb_status st = list_suffix(dir, suffix, &names, &n);
    if (st) return st;
    size_t loaded = 0;
    for (size_t i = 0; i < n && !st; i++) {
        if (subject && strcmp(subject, names[i]) != 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s%s", dir, names[i], suffix);
        char *text = NULL;
        size_t len = 0;
        if ((st = dpb_file_read(path, DPB_EVAL_MAX_FILE, &text, &len))) break;
        st = dpb_eval_mmlu_parse(text, len, names[i], path, out);
        free(text);
        loaded++;
    }
    free_names(names, n);
    if (!st && loaded == 0)
        st = dpb_error_set(DPB_E_ARG, "%s: no %s*%s file", dir, subject ? subject : "", suffix);
    return st;
}

/* ---------------------------------------------------------------- JSONL */

typedef dpb_status (*jsonl_item_fn)(const cJSON *obj, const char *what, size_t line, dpb_eval_set *out);

static dpb_status jsonl_each(const char *text, size_t len, const char *what, dpb_eval_set *out, jsonl_item_fn fn)
{
    size_t i = 0, line = 0;
    while (i < len) {
        line++;
        const char *nl = memchr(text + i, '\n', len - i);
        size_t l = nl ? (size_t)(nl - (text + i)) : len - i;
        size_t a = i, b = i + l;
        while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) b--;
        i += l + (nl ? 1 : 0);
        if (a == b) continue;
        char w[512];
        snprintf(w, sizeof w, "%s: line %zu", what, line);
        cJSON *obj = NULL;
        dpb_status st = dpb_json_parse(text + a, b - a, w, &obj);
        if (st) return st;
        if (!cJSON_IsObject(obj)) st = dpb_error_set(DPB_E_FORMAT, "%s: not a JSON object", w);
        else st = fn(obj, w, line, out);
        cJSON_Delete(obj);
        if (st) return st;
    }
    return DPB_OK;
}

static dpb_status get_str_dup(const cJSON *obj, const char *key, const char *what, char **out)
{
    const char *s = NULL;
    dpb_status st = dpb_json_get_string(obj, key, what, DPB_JSON_REQUIRED, NULL, &s, NULL);
    if (st) return st;
    if (!(*out = strdup(s))) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    return DPB_OK;
}

static dpb_status gsm8k_item(const cJSON *obj, const char *what, size_t line, dpb_eval_set *out)
{
    (void)line;
    dpb_eval_item *it;
    dpb_status st = set_push(out, &it);
    if (st) return st;
    if ((st = get_str_dup(obj, "question", what, &it->question))) return st;
    if ((st = get_str_dup(obj, "answer", what, &it->target))) return st;
    if (!strstr(it->target, "#### ")) return dpb_error_set(DPB_E_FORMAT, "%s: field answer has no '#### ' line", what);
    return DPB_OK;
}

dpb_status dpb_eval_gsm8k_parse(const char *text, size_t len, const char *what, dpb_eval_set *out)
{
    return jsonl_each(text, len, what, out, gsm8k_item);
}

dpb_status dpb_eval_gsm8k_load(const char *path, dpb_eval_set *out)
{
    char *text = NULL;
    size_t len = 0;
    dpb_status st = dpb_file_read(path, DPB_EVAL_MAX_FILE, &text, &len);
    if (st) return st;
    st = dpb_eval_gsm8k_parse(text, len, path, out);
    free(text);
    return st;
}

static dpb_status humaneval_item(const cJSON *obj, const char *what, size_t line, dpb_eval_set *out)
{
    (void)line;
    dpb_eval_item *it;
    dpb_status st = set_push(out, &it);
    if (st) return st;
    if ((st = get_str_dup(obj, "task_id", what, &it->task_id))) return st;
    if ((st = get_str_dup(obj, "prompt", what, &it->question))) return st;
    if ((st = get_str_dup(obj, "entry_point", what, &it->entry_point))) return st;
    if ((st = get_str_dup(obj, "canonical_solution", what, &it->canonical))) return st;
    if ((st = get_str_dup(obj, "test", what, &it->test))) return st;
    /* the entry point becomes Python source: an identifier only */
    const char *e = it->entry_point;
    if (!*e) return dpb_error_set(DPB_E_FORMAT, "%s: field entry_point is empty", what);
    for (const char *p = e; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || (p != e && *p >= '0' && *p <= '9')))
            return dpb_error_set(DPB_E_FORMAT, "%s: field entry_point '%.40s' is not a Python identifier", what, e);
    return DPB_OK;
}

dpb_status dpb_eval_humaneval_parse(const char *text, size_t len, const char *what, dpb_eval_set *out)
{
    return jsonl_each(text, len, what, out, humaneval_item);
}

dpb_status dpb_eval_read_gz(const char *path, size_t max, char **out, size_t *len_out)
{
    *out = NULL;
    *len_out = 0;
    gzFile g = gzopen(path, "rb");
    if (!g) return dpb_error_set(DPB_E_IO, "%s: cannot open", path);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    dpb_status st = DPB_OK;
    if (!buf) { gzclose(g); return dpb_error_set(DPB_E_NOMEM, "out of memory"); }
    for (;;) {
        if (len == cap) {
            if (cap >= max) { st = dpb_error_set(DPB_E_RANGE, "%s: decompresses to more than %zu bytes", path, max); break; }
            size_t nc = cap * 2 > max ? max : cap * 2;
            char *p = realloc(buf, nc + 1);
            if (!p) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); break; }
            buf = p;
            cap = nc;
        }
        size_t want = cap - len;
        if (want > (1u << 30)) want = 1u << 30;
        int r = gzread(g, buf + len, (unsigned)want);
        if (r < 0) {
            int err;
            const char *m = gzerror(g, &err);
            st = dpb_error_set(DPB_E_FORMAT, "%s: gzip: %s", path, m ? m : "read error");
            break;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    gzclose(g);
    if (st) { free(buf); return st; }
    buf[len] = 0;
    if (memchr(buf, 0, len)) { free(buf); return dpb_error_set(DPB_E_FORMAT, "%s: NUL byte in the text", path); }
    *out = buf;
    *len_out = len;
    return DPB_OK;
}

dpb_status dpb_eval_humaneval_load(const char *path, dpb_eval_set *out)
{
    char *text;
    size_t len;
    dpb_status st = dpb_eval_read_gz(path, 64u << 20, &text, &len);
    if (st) return st;
    st = dpb_eval_humaneval_parse(text, len, path, out);
    free(text);
    return st;
}

/* ---------------------------------------------------------------- BBH */

dpb_status dpb_eval_bbh_parse(const char *text, size_t len, const char *task, const char *what, dpb_eval_set *out)
{
    cJSON *root = NULL;
    dpb_status st = dpb_json_parse(text, len, what, &root);
    if (st) return st;
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "examples");
    if (!cJSON_IsArray(ex)) { cJSON_Delete(root); return dpb_error_set(DPB_E_FORMAT, "%s: field examples is not an array", what); }
    size_t k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ex)
    {
        char w[512];
        snprintf(w, sizeof w, "%s: examples[%zu]", what, k++);
        dpb_eval_item *it;
        if (!cJSON_IsObject(e)) { st = dpb_error_set(DPB_E_FORMAT, "%s: not an object", w); break; }
        if ((st = set_push(out, &it))) break;
        if ((st = get_str_dup(e, "input", w, &it->question))) break;
        if ((st = get_str_dup(e, "target", w, &it->target))) break;
        if (task && !(it->subset = strdup(task))) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); break; }
    }
    cJSON_Delete(root);
    return st;
}

static char *trimmed_dup(const char *a, const char *b)
{
    while (b > a && (b[-1] == '\n' || b[-1] == ' ' || b[-1] == '\r' || b[-1] == '\t')) b--;
    return dupn(a, (size_t)(b - a));
}

dpb_status dpb_eval_bbh_cot_parse(const char *text, size_t len, const char *what, char **description, char **shots)
{
    *description = *shots = NULL;
    if (memchr(text, 0, len)) return dpb_error_set(DPB_E_FORMAT, "%s: NUL byte", what);
    const char *end = text + len, *p = text;
    /* line 1: canary; line 2: "-----"; line 3: description; then exemplars */
    const char *lines[4];
    for (int i = 0; i < 3; i++) {
        lines[i] = p;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return dpb_error_set(DPB_E_FORMAT, "%s: expected a canary line, '-----' and a description", what);
        p = nl + 1;
    }
    lines[3] = p;
    if (strncmp(lines[1], "-----", 5) != 0) return dpb_error_set(DPB_E_FORMAT, "%s: line 2 is not '-----'", what);
    while (p < end && (*p == '\n' || *p == '\r')) p++;
    if (!(*description = trimmed_dup(lines[2], lines[3]))) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    if (!(*shots = trimmed_dup(p, end))) {
        free(*description);
        *description = NULL;
        return dpb_error_set(DPB_E_NOMEM, "out of memory");
    }
    return DPB_OK;
}

dpb_status dpb_eval_bbh_tasks(const char *dir, char ***names, size_t *n)
{
    return list_suffix(dir, ".json", names, n);
}
