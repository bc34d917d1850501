#include "bench/manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench/results.h"
#include "core/file.h"
#include "core/json.h"
#include "core/sha256.h"
#include "core/timeutil.h"
#include "core/version.h"
#include "format/dtype.h"
#include "telemetry/host.h"

#define MANIFEST_MAX_BYTES (16u << 20)
#define CONFIG_MAX_BYTES (16u << 20)

struct dpb_manifest {
    char *path;
    cJSON *root;
    uint64_t start_ns;
    cJSON *prev_params; /* a resumed folder's earlier "params", or NULL */
};

const char *dpb_run_status_name(dpb_run_status s)
{
    switch (s) {
    case DPB_RUN_RUNNING: return "running";
    case DPB_RUN_COMPLETE: return "complete";
    case DPB_RUN_INTERRUPTED: return "interrupted";
    case DPB_RUN_FAILED: return "failed";
    }
    return "unknown";
}

/* ---- shell quoting ---------------------------------------------------- */

static bool needs_quote(const char *s)
{
    if (!*s) return true;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_@%+=:,./-", c)))
            return true;
    }
    return false;
}

dpb_status dpb_shell_join(int argc, char *const *argv, char **out)
{
    *out = NULL;
    size_t len = 1;
    for (int i = 0; i < argc; i++) len += 4 * strlen(argv[i]) + 3;
    char *s = malloc(len), *p = s;
    if (!s) return dpb_error_set(DPB_E_NOMEM, "manifest: out of memory");
    for (int i = 0; i < argc; i++) {
        if (i) *p++ = ' ';
        const char *a = argv[i];
        if (!needs_quote(a)) {
            size_t n = strlen(a);
            memcpy(p, a, n);
            p += n;
            continue;
        }
        *p++ = '\'';
        for (; *a; a++) {
            if (*a == '\'') {
                memcpy(p, "'\\''", 4);
                p += 4;
            } else *p++ = *a;
        }
        *p++ = '\'';
    }
    *p = 0;
    *out = s;
    return DPB_OK;
}

/* ---- model hashes ----------------------------------------------------- */

typedef struct tensor_line {
    const char *name;
    char *text;
    size_t len;
} tensor_line;

static int line_cmp(const void *a, const void *b)
{
    return strcmp(((const tensor_line *)a)->name, ((const tensor_line *)b)->name);
}

dpb_status dpb_model_hash_compute(const dpb_checkpoint *ck, dpb_model_hash *out)
{
    memset(out, 0, sizeof *out);
    char *config = NULL;
    size_t config_len = 0;
    dpb_status st;
    const char *dir = dpb_checkpoint_dir(ck);
    if (dir) {
        char *path;
        st = dpb_path_join(dir, "config.json", &path);
        if (st) return st;
        st = dpb_file_read(path, CONFIG_MAX_BYTES, &config, &config_len);
        free(path);
        if (st) return dpb_error_prefix(st, "model hash");
    } else {
        st = dpb_config_to_json(dpb_checkpoint_config(ck), &config);
        if (st) return dpb_error_prefix(st, "model hash");
        config_len = strlen(config);
    }
    size_t n = dpb_checkpoint_tensor_count(ck);
    tensor_line *lines = calloc(n ? n : 1, sizeof *lines);
    if (!lines) {
        free(config);
        return dpb_error_set(DPB_E_NOMEM, "model hash: out of memory for %zu tensors", n);
    }
    st = DPB_OK;
    for (size_t i = 0; i < n && st == DPB_OK; i++) {
        const dpb_tensor *t = dpb_checkpoint_tensor_at(ck, i);
        size_t cap = strlen(t->name) + 32 + (size_t)DPB_MAX_DIMS * 21;
        char *s = malloc(cap);
        if (!s) {
            st = dpb_error_set(DPB_E_NOMEM, "model hash: out of memory");
            break;
        }
        int w = snprintf(s, cap, "%s\t%s\t", t->name, dpb_dtype_name(t->dtype));
        size_t len = w > 0 ? (size_t)w : 0;
        for (int d = 0; d < t->ndim && d < DPB_MAX_DIMS; d++)
            len += (size_t)snprintf(s + len, cap - len, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        len += (size_t)snprintf(s + len, cap - len, "\n");
        lines[i] = (tensor_line){.name = t->name, .text = s, .len = len};
    }
    if (st == DPB_OK) {
        qsort(lines, n, sizeof *lines, line_cmp);
        dpb_sha256 all, idx;
        uint8_t dg[32];
        dpb_sha256_init(&all);
        dpb_sha256_init(&idx);
        dpb_sha256_update(&all, config, config_len);
        for (size_t i = 0; i < n; i++) {
            dpb_sha256_update(&all, lines[i].text, lines[i].len);
            dpb_sha256_update(&idx, lines[i].text, lines[i].len);
        }
        dpb_sha256_final(&all, dg);
        dpb_sha256_to_hex(dg, out->model_sha256);
        dpb_sha256_final(&idx, dg);
        dpb_sha256_to_hex(dg, out->tensor_index_sha256);
        dpb_sha256_hex(config, config_len, out->config_sha256);
        out->tensors = n;
    }
    for (size_t i = 0; i < n; i++) free(lines[i].text);
    free(lines);
    free(config);
    return st;
}

/* ---- the manifest ----------------------------------------------------- */

static cJSON *time_obj(uint64_t mono_ns)
{
    char iso[48];
    dpb_time_iso8601(iso, sizeof iso);
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "utc", iso);
    cJSON_AddNumberToObject(o, "monotonic_ns", (double)mono_ns);
    return o;
}

static void set_field(cJSON *root, const char *key, cJSON *item)
{
    if (cJSON_GetObjectItemCaseSensitive(root, key)) cJSON_ReplaceItemInObjectCaseSensitive(root, key, item);
    else cJSON_AddItemToObject(root, key, item);
}

/* The earlier runs of a resumed folder: their own resumed_from list plus their start/end/status. */
static cJSON *previous_runs(const char *path, cJSON **prev_params)
{
    cJSON *list = cJSON_CreateArray();
    if (!list || !dpb_file_exists(path)) return list;
    cJSON *old;
    if (dpb_json_load(path, MANIFEST_MAX_BYTES, &old) != DPB_OK) {
        char buf[700];
        snprintf(buf, sizeof buf, "unreadable earlier manifest: %s", dpb_error_message());
        cJSON_AddItemToArray(list, cJSON_CreateString(buf));
        dpb_error_clear();
        return list;
    }
    if (prev_params) *prev_params = cJSON_DetachItemFromObjectCaseSensitive(old, "params");
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(old, "resumed_from");
    if (cJSON_IsArray(prev)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, prev) cJSON_AddItemToArray(list, cJSON_Duplicate(it, 1));
    }
    cJSON *run = cJSON_CreateObject();
    static const char *const keys[] = {"start", "end", "status", "message", "commit", "deploybench_version",
                                       "command_line", "hostname"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(old, keys[i]);
        if (v) cJSON_AddItemToObject(run, keys[i], cJSON_Duplicate(v, 1));
    }
    cJSON_AddItemToArray(list, run);
    cJSON_Delete(old);
    return list;
}

dpb_status dpb_manifest_begin(const char *dir, int argc, char *const *argv, bool resume, const dpb_nvml *nvml,
                              dpb_manifest **out)
{
    *out = NULL;
    if (argc < 1 || !argv || !argv[0]) return dpb_error_set(DPB_E_ARG, "manifest: no command");
    dpb_status st = dpb_results_dir_open(dir, resume, NULL);
    if (st) return st;
    dpb_manifest *m = calloc(1, sizeof *m);
    if (!m) return dpb_error_set(DPB_E_NOMEM, "manifest: out of memory");
    st = dpb_path_join(dir, "manifest.json", &m->path);
    if (st) {
        free(m);
        return st;
    }
    m->start_ns = dpb_now_ns();
    cJSON *r = m->root = cJSON_CreateObject();
    char **full = calloc((size_t)argc + 1, sizeof *full);
    char *line = NULL;
    if (!r || !full) {
        free(full);
        dpb_manifest_free(m);
        return dpb_error_set(DPB_E_NOMEM, "manifest: out of memory");
    }
    full[0] = "deploybench";
    for (int i = 0; i < argc; i++) full[i + 1] = argv[i];
    st = dpb_shell_join(argc + 1, full, &line);
    if (st) {
        free(full);
        dpb_manifest_free(m);
        return st;
    }
    cJSON_AddStringToObject(r, "schema", "deploybench.manifest/1");
    cJSON_AddStringToObject(r, "command", argv[0]);
    cJSON *a = cJSON_AddArrayToObject(r, "argv");
    for (int i = 0; i <= argc; i++) cJSON_AddItemToArray(a, cJSON_CreateString(full[i]));
    cJSON_AddStringToObject(r, "command_line", line);
    free(line);
    free(full);
    cJSON_AddStringToObject(r, "deploybench_version", DPB_VERSION);
    cJSON_AddStringToObject(r, "commit", dpb_build_commit());
    dpb_host_facts h;
    dpb_host_facts_collect(nvml, &h);
    cJSON *host = dpb_host_facts_json(&h);
    cJSON_AddItemToObject(r, "hostname", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(host, "hostname"), 1));
    cJSON_AddNumberToObject(r, "pid", (double)getpid());
    cJSON_AddItemToObject(r, "host", host);
    cJSON_AddNullToObject(r, "model");
    cJSON_AddItemToObject(r, "start", time_obj(m->start_ns));
    cJSON_AddNullToObject(r, "end");
    cJSON_AddStringToObject(r, "status", dpb_run_status_name(DPB_RUN_RUNNING));
    cJSON_AddNullToObject(r, "message");
    if (resume) cJSON_AddItemToObject(r, "resumed_from", previous_runs(m->path, &m->prev_params));
    if (m->prev_params) cJSON_AddItemToObject(r, "params", cJSON_Duplicate(m->prev_params, 1)); /* until replaced */
    st = dpb_manifest_write(m);
    if (st) {
        dpb_manifest_free(m);
        return st;
    }
    *out = m;
    return DPB_OK;
}

dpb_status dpb_manifest_set_model(dpb_manifest *m, const char *spec, const dpb_checkpoint *ck)
{
    dpb_model_hash h;
    dpb_status st = dpb_model_hash_compute(ck, &h);
    if (st) return st;
    const dpb_model_config *cfg = dpb_checkpoint_config(ck);
    cJSON *o = cJSON_CreateObject();
    if (!o) return dpb_error_set(DPB_E_NOMEM, "manifest: out of memory");
    cJSON_AddStringToObject(o, "spec", spec ? spec : "");
    cJSON_AddStringToObject(o, "arch", dpb_arch_name(cfg->arch));
    cJSON_AddStringToObject(o, "model_type", cfg->model_type);
    cJSON_AddBoolToObject(o, "synthetic", dpb_checkpoint_is_synthetic(ck));
    cJSON_AddStringToObject(o, "config_sha256", h.config_sha256);
    cJSON_AddStringToObject(o, "tensor_index_sha256", h.tensor_index_sha256);
    cJSON_AddStringToObject(o, "model_sha256", h.model_sha256);
    cJSON_AddNumberToObject(o, "tensors", (double)h.tensors);
    cJSON_AddNumberToObject(o, "weight_bytes", (double)dpb_checkpoint_weight_bytes(ck));
    set_field(m->root, "model", o);
    return dpb_manifest_write(m);
}

dpb_status dpb_manifest_add(dpb_manifest *m, const char *key, cJSON *item)
{
    if (!item) return dpb_error_set(DPB_E_NOMEM, "manifest: no value for '%s' (out of memory?)", key);
    set_field(m->root, key, item);
    return DPB_OK;
}

dpb_status dpb_manifest_write(dpb_manifest *m)
{
    char *s = cJSON_Print(m->root);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "%s: cannot format", m->path);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        cJSON_free(s);
        return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", m->path);
    }
    t[n] = '\n';
    t[n + 1] = 0;
    dpb_status st = dpb_file_write(m->path, t, n + 1);
    free(t);
    return st;
}

dpb_status dpb_manifest_end(dpb_manifest *m, dpb_run_status status, const char *message)
{
    uint64_t now = dpb_now_ns();
    cJSON *end = time_obj(now);
    if (!end) return dpb_error_set(DPB_E_NOMEM, "manifest: out of memory");
    cJSON_AddNumberToObject(end, "elapsed_s", (double)(now - m->start_ns) * 1e-9);
    set_field(m->root, "end", end);
    set_field(m->root, "status", cJSON_CreateString(dpb_run_status_name(status)));
    set_field(m->root, "message", message ? cJSON_CreateString(message) : cJSON_CreateNull());
    return dpb_manifest_write(m);
}

dpb_status dpb_manifest_end_with(dpb_manifest *m, dpb_status st)
{
    char msg[1024] = "";
    if (st != DPB_OK) snprintf(msg, sizeof msg, "%s", dpb_error_message());
    dpb_run_status rs = st == DPB_OK ? DPB_RUN_COMPLETE : st == DPB_E_INTERRUPTED ? DPB_RUN_INTERRUPTED : DPB_RUN_FAILED;
    dpb_status w = dpb_manifest_end(m, rs, st == DPB_OK ? NULL : msg);
    /* Keep the command's own error as the current message for the caller. */
    if (st != DPB_OK) {
        if (w != DPB_OK) dpb_error_set(st, "%s (and the manifest could not be written: %s)", msg, dpb_error_message());
        else dpb_error_set(st, "%s", msg);
    }
    return w;
}

const char *dpb_manifest_path(const dpb_manifest *m) { return m->path; }
const cJSON *dpb_manifest_json(const dpb_manifest *m) { return m->root; }

dpb_status dpb_manifest_resume_check(const dpb_manifest *m, const cJSON *params, const char *const *keys)
{
    for (size_t i = 0; m->prev_params && keys[i]; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(m->prev_params, keys[i]);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(params, keys[i]);
        if (!a || !b || cJSON_Compare(a, b, true)) continue;
        char *sa = cJSON_PrintUnformatted(a), *sb = cJSON_PrintUnformatted(b);
        dpb_status st = dpb_error_set(DPB_E_ARG, "--resume: %s was measured with %s %s, this run asks %s (use a new --out)",
                                      m->path, keys[i], sa ? sa : "?", sb ? sb : "?");
        free(sa);
        free(sb);
        return st;
    }
    return DPB_OK;
}

void dpb_manifest_free(dpb_manifest *m)
{
    if (!m) return;
    cJSON_Delete(m->prev_params);
    cJSON_Delete(m->root);
    free(m->path);
    free(m);
}
