/* SHA-256 (FIPS 180-4 vectors), results folders, JSONL durability, manifest.json. */
#include <stdint.h>
#include <sys/stat.h>
#include "t.h"
#include "bench/manifest.h"
#include "bench/results.h"
#include "core/file.h"
#include "core/json.h"
#include "core/sha256.h"
#include "format/dtype.h"
#include "synth/synth.h"

static void hex_of(const char *msg, size_t len, char out[65]) { dpb_sha256_hex(msg, len, out); }

static void test_sha256_fips_vectors(void)
{
    char h[65];
    hex_of("abc", 3, h);
    T_CHECKF(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "%s", h);
    hex_of("", 0, h);
    T_CHECKF(strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0, "%s", h);
    const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m2, strlen(m2), h);
    T_CHECKF(strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0, "%s", h);
    const char *m3 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                     "mnopqrstnopqrstu";
    hex_of(m3, strlen(m3), h);
    T_CHECKF(strcmp(h, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1") == 0, "%s", h);
    /* One million 'a', fed in uneven pieces. */
    char chunk[997];
    memset(chunk, 'a', sizeof chunk);
    dpb_sha256 c;
    dpb_sha256_init(&c);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        dpb_sha256_update(&c, chunk, n);
        left -= n;
    }
    uint8_t dg[32];
    dpb_sha256_final(&c, dg);
    dpb_sha256_to_hex(dg, h);
    T_CHECKF(strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0, "%s", h);
}

/* Padding boundaries: 55 bytes fit one block, 56 need two; 64, 119, 120 likewise
 * (digests from Python's hashlib). */
static void test_sha256_padding_boundaries(void)
{
    static const struct { size_t n; const char *hex; } v[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
    };
    char a[128];
    memset(a, 'a', sizeof a);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char h[65];
        hex_of(a, v[i].n, h);
        T_CHECKF(strcmp(h, v[i].hex) == 0, "%zu bytes: %s", v[i].n, h);
        /* Split at every point: same digest. */
        for (size_t k = 0; k <= v[i].n; k++) {
            dpb_sha256 c;
            uint8_t dg[32];
            dpb_sha256_init(&c);
            dpb_sha256_update(&c, a, k);
            dpb_sha256_update(&c, a + k, v[i].n - k);
            dpb_sha256_final(&c, dg);
            dpb_sha256_to_hex(dg, h);
            T_CHECKF(strcmp(h, v[i].hex) == 0, "%zu bytes split at %zu", v[i].n, k);
        }
    }
}

static void test_shell_join(void)
{
    char *args[] = {"deploybench", "latency", "--model", "/my models/x", "it's", "", "a=b,c:d/e.f@g%+"};
    char *s;
    T_CHECK(dpb_shell_join(7, args, &s) == DPB_OK);
    T_CHECKF(strcmp(s, "deploybench latency --model '/my models/x' 'it'\\''s' '' a=b,c:d/e.f@g%+") == 0, "%s", s);
    free(s);
}

static void test_results_dir(void)
{
    const char *tmp = t_tmpdir();
    T_CHECK(tmp != NULL);
    char dir[512], f[600];
    snprintf(dir, sizeof dir, "%s/run/a", tmp);
    bool empty = false;
    T_CHECK(dpb_results_dir_open(dir, false, &empty) == DPB_OK);
    T_CHECK(empty && dpb_dir_exists(dir));
    T_CHECK(dpb_results_dir_open(dir, false, &empty) == DPB_OK); /* still empty: fine */
    snprintf(f, sizeof f, "%s/x.jsonl", dir);
    T_CHECK(dpb_file_write(f, "{}\n", 3) == DPB_OK);
    T_CHECK(dpb_results_dir_open(dir, false, NULL) == DPB_E_ARG);
    T_CHECKF(strstr(dpb_error_message(), "not empty") && strstr(dpb_error_message(), "--resume") &&
             strstr(dpb_error_message(), dir), "%s", dpb_error_message());
    T_CHECK(dpb_results_dir_open(dir, true, &empty) == DPB_OK);
    T_CHECK(!empty);
    T_CHECK(dpb_results_dir_open(f, true, NULL) == DPB_E_ARG);
    T_CHECKF(strstr(dpb_error_message(), "not a folder"), "%s", dpb_error_message());
}

typedef struct { int n; int64_t ids[8]; } read_ctx;
static dpb_status collect(const cJSON *o, size_t line, void *ctx)
{
    read_ctx *c = ctx;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (c->n < 8 && cJSON_IsNumber(id)) c->ids[c->n++] = (int64_t)id->valuedouble;
    (void)line;
    return DPB_OK;
}

static void test_jsonl_partial_line(void)
{
    const char *tmp = t_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/requests.jsonl", tmp);
    dpb_jsonl *j;
    size_t dropped = 99;
    T_CHECK(dpb_jsonl_open(path, &j, &dropped) == DPB_OK && dropped == 0);
    for (int i = 0; i < 3; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", i);
        cJSON_AddStringToObject(o, "text", "a \"quoted\"\nline");
        T_CHECK(dpb_jsonl_append(j, o) == DPB_OK);
        cJSON_Delete(o);
    }
    dpb_jsonl_close(j);
    /* A killed writer leaves a partial record. */
    FILE *f = fopen(path, "ab");
    fputs("{\"id\": 3, \"tex", f);
    fclose(f);
    read_ctx c = {0};
    T_CHECK(dpb_jsonl_read(path, collect, &c) == DPB_OK);
    T_CHECK(c.n == 3 && c.ids[0] == 0 && c.ids[2] == 2);
    T_CHECK(dpb_jsonl_open(path, &j, &dropped) == DPB_OK);
    T_CHECKF(dropped == strlen("{\"id\": 3, \"tex"), "dropped %zu", dropped);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", 4);
    T_CHECK(dpb_jsonl_append(j, o) == DPB_OK);
    cJSON_Delete(o);
    dpb_jsonl_close(j);
    c.n = 0;
    T_CHECK(dpb_jsonl_read(path, collect, &c) == DPB_OK);
    T_CHECK(c.n == 4 && c.ids[3] == 4);
    char *text;
    size_t len;
    T_CHECK(dpb_file_read(path, 1 << 20, &text, &len) == DPB_OK);
    T_CHECK(len > 0 && text[len - 1] == '\n' && !strstr(text, "\"tex\n"));
    free(text);
    /* A line that is not an object is an error naming the line. */
    f = fopen(path, "ab");
    fputs("[1,2]\n", f);
    fclose(f);
    c.n = 0;
    T_CHECK(dpb_jsonl_read(path, collect, &c) == DPB_E_FORMAT);
    T_CHECKF(strstr(dpb_error_message(), "requests.jsonl:5"), "%s", dpb_error_message());
    /* Missing file: no lines. */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.jsonl", tmp);
    c.n = 0;
    T_CHECK(dpb_jsonl_read(missing, collect, &c) == DPB_OK && c.n == 0);
}

static bool is_hex64(const char *s)
{
    if (!s || strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!strchr("0123456789abcdef", s[i])) return false;
    return true;
}

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static cJSON *load_manifest(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    cJSON *j = NULL;
    if (dpb_json_load(path, 1 << 20, &j) != DPB_OK) fprintf(stderr, "  %s\n", dpb_error_message());
    return j;
}

static void test_manifest_fields_and_rewrite(void)
{
    const char *tmp = t_tmpdir();
    char dir[512];
    snprintf(dir, sizeof dir, "%s/run", tmp);
    char *argv[] = {"latency", "--model", "synth:qwen3-tiny", "--out", dir, "--note", "two words"};
    dpb_manifest *m;
    T_CHECK(dpb_manifest_begin(dir, 7, argv, false, NULL, &m) == DPB_OK);
    cJSON *j = load_manifest(dir);
    T_CHECK(j != NULL);
    if (!j) {
        dpb_manifest_free(m);
        return;
    }
    T_CHECK(cJSON_IsString(get(j, "schema")) && strcmp(get(j, "schema")->valuestring, "deploybench.manifest/1") == 0);
    T_CHECK(cJSON_IsString(get(j, "command")) && strcmp(get(j, "command")->valuestring, "latency") == 0);
    T_CHECK(cJSON_GetArraySize(get(j, "argv")) == 8);
    T_CHECK(strcmp(cJSON_GetArrayItem(get(j, "argv"), 0)->valuestring, "deploybench") == 0);
    T_CHECKF(cJSON_IsString(get(j, "command_line")) && strstr(get(j, "command_line")->valuestring, "--note 'two words'"),
             "%s", cJSON_IsString(get(j, "command_line")) ? get(j, "command_line")->valuestring : "?");
    T_CHECK(cJSON_IsString(get(j, "deploybench_version")) && strlen(get(j, "deploybench_version")->valuestring) > 0);
    T_CHECK(cJSON_IsString(get(j, "commit")) && strlen(get(j, "commit")->valuestring) > 0);
    T_CHECK(cJSON_IsString(get(j, "hostname")));
    T_CHECK(cJSON_IsNumber(get(j, "pid")) && (pid_t)get(j, "pid")->valuedouble == getpid());
    const cJSON *h = get(j, "host");
    T_CHECK(cJSON_IsObject(h));
    static const char *const host_keys[] = {"cpu_model", "cpu_threads", "mem_total_bytes", "kernel", "gpus",
                                            "gpu_driver_version", "cuda_driver_version"};
    for (size_t i = 0; i < sizeof host_keys / sizeof host_keys[0]; i++)
        T_CHECKF(get(h, host_keys[i]) != NULL, "host.%s missing", host_keys[i]);
    /* Without NVML (nvml NULL) and no CUDA device, GPU facts say why, never 0 or "". */
    if (cJSON_IsString(get(h, "gpus"))) T_CHECK(strncmp(get(h, "gpus")->valuestring, "unavailable: ", 13) == 0);
    T_CHECK(cJSON_IsNumber(get(h, "cpu_threads")) && get(h, "cpu_threads")->valuedouble >= 1);
    T_CHECK(cJSON_IsNull(get(j, "model")));
    const cJSON *st = get(j, "start");
    T_CHECK(cJSON_IsString(get(st, "utc")) && strlen(get(st, "utc")->valuestring) == 24 &&
            get(st, "utc")->valuestring[23] == 'Z');
    T_CHECK(cJSON_IsNumber(get(st, "monotonic_ns")) && get(st, "monotonic_ns")->valuedouble > 0);
    T_CHECK(cJSON_IsNull(get(j, "end")));
    T_CHECK(strcmp(get(j, "status")->valuestring, "running") == 0);
    T_CHECK(get(j, "resumed_from") == NULL);
    double start_ns = get(st, "monotonic_ns")->valuedouble;
    cJSON_Delete(j);

    /* The model: spec and hashes. */
    dpb_checkpoint_opts co = {.no_weights = true};
    dpb_checkpoint *ck;
    T_CHECK(dpb_checkpoint_open("synth:qwen3-tiny", &co, &ck) == DPB_OK);
    T_CHECK(dpb_manifest_set_model(m, "synth:qwen3-tiny", ck) == DPB_OK);
    cJSON *params = cJSON_CreateObject();
    cJSON_AddNumberToObject(params, "num_requests", 10);
    T_CHECK(dpb_manifest_add(m, "params", params) == DPB_OK);
    usleep(20000);
    T_CHECK(dpb_manifest_end(m, DPB_RUN_COMPLETE, NULL) == DPB_OK);
    j = load_manifest(dir);
    T_CHECK(j != NULL);
    if (j) {
        const cJSON *mo = get(j, "model");
        T_CHECK(cJSON_IsObject(mo));
        T_CHECK(strcmp(get(mo, "spec")->valuestring, "synth:qwen3-tiny") == 0);
        T_CHECK(strcmp(get(mo, "arch")->valuestring, "qwen3") == 0);
        T_CHECK(is_hex64(get(mo, "config_sha256")->valuestring));
        T_CHECK(is_hex64(get(mo, "tensor_index_sha256")->valuestring));
        T_CHECK(is_hex64(get(mo, "model_sha256")->valuestring));
        T_CHECK(get(mo, "tensors")->valuedouble == (double)dpb_checkpoint_tensor_count(ck));
        T_CHECK(get(get(j, "params"), "num_requests")->valuedouble == 10);
        const cJSON *en = get(j, "end");
        T_CHECK(cJSON_IsObject(en));
        T_CHECK(cJSON_IsString(get(en, "utc")));
        T_CHECK(get(en, "monotonic_ns")->valuedouble > start_ns);
        T_CHECK(get(en, "elapsed_s")->valuedouble >= 0.02 && get(en, "elapsed_s")->valuedouble < 60);
        T_CHECK(strcmp(get(j, "status")->valuestring, "complete") == 0);
        T_CHECK(cJSON_IsNull(get(j, "message")));
        cJSON_Delete(j);
    }
    /* A failure keeps the command's error for the caller and records it. */
    dpb_error_set(DPB_E_IO, "model.safetensors: short read");
    T_CHECK(dpb_manifest_end_with(m, DPB_E_IO) == DPB_OK);
    T_CHECKF(strcmp(dpb_error_message(), "model.safetensors: short read") == 0, "%s", dpb_error_message());
    j = load_manifest(dir);
    if (j) {
        T_CHECK(strcmp(get(j, "status")->valuestring, "failed") == 0);
        T_CHECK(strcmp(get(j, "message")->valuestring, "model.safetensors: short read") == 0);
        cJSON_Delete(j);
    }
    dpb_manifest_free(m);
    dpb_checkpoint_close(ck);

    /* No temporary files left behind. */
    char tmpf[700];
    snprintf(tmpf, sizeof tmpf, "%s/manifest.json.tmp%ld", dir, (long)getpid());
    T_CHECK(access(tmpf, F_OK) != 0);

    /* A fresh run refuses the folder; --resume keeps the earlier run's record. */
    T_CHECK(dpb_manifest_begin(dir, 7, argv, false, NULL, &m) == DPB_E_ARG);
    T_CHECK(dpb_manifest_begin(dir, 7, argv, true, NULL, &m) == DPB_OK);
    dpb_error_set(DPB_E_INTERRUPTED, "latency: interrupted");
    T_CHECK(dpb_manifest_end_with(m, DPB_E_INTERRUPTED) == DPB_OK);
    dpb_manifest_free(m);
    j = load_manifest(dir);
    if (j) {
        T_CHECK(strcmp(get(j, "status")->valuestring, "interrupted") == 0);
        const cJSON *r = get(j, "resumed_from");
        T_CHECK(cJSON_IsArray(r) && cJSON_GetArraySize(r) == 1);
        T_CHECK(strcmp(get(cJSON_GetArrayItem(r, 0), "status")->valuestring, "failed") == 0);
        cJSON_Delete(j);
    }
    T_CHECK(dpb_manifest_begin(dir, 7, argv, true, NULL, &m) == DPB_OK);
    dpb_manifest_free(m);
    j = load_manifest(dir);
    if (j) {
        const cJSON *r = get(j, "resumed_from");
        T_CHECK(cJSON_GetArraySize(r) == 2);
        T_CHECK(strcmp(get(cJSON_GetArrayItem(r, 1), "status")->valuestring, "interrupted") == 0);
        cJSON_Delete(j);
    }
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The hashes are what the header documents, and the same for a synth folder
 * and the in-memory synth: model. */
static void test_model_hash_definition(void)
{
    const char *tmp = t_tmpdir();
    char dir[512];
    snprintf(dir, sizeof dir, "%s/llama-tiny", tmp);
    dpb_synth_write_opts wo = {.preset = "llama-tiny", .out_dir = dir, .threads = 1};
    dpb_synth_write_result wr;
    T_CHECK(dpb_synth_write(&wo, &wr) == DPB_OK);
    dpb_checkpoint *folder, *mem;
    dpb_checkpoint_opts co = {.no_weights = true};
    T_CHECK(dpb_checkpoint_open(dir, NULL, &folder) == DPB_OK);
    T_CHECK(dpb_checkpoint_open("synth:llama-tiny", &co, &mem) == DPB_OK);
    dpb_model_hash hf, hm;
    T_CHECK(dpb_model_hash_compute(folder, &hf) == DPB_OK);
    T_CHECK(dpb_model_hash_compute(mem, &hm) == DPB_OK);
    T_CHECKF(strcmp(hf.tensor_index_sha256, hm.tensor_index_sha256) == 0, "%s vs %s", hf.tensor_index_sha256,
             hm.tensor_index_sha256);
    T_CHECKF(strcmp(hf.config_sha256, hm.config_sha256) == 0, "config: %s vs %s", hf.config_sha256, hm.config_sha256);
    T_CHECK(strcmp(hf.model_sha256, hm.model_sha256) == 0);

    /* Recompute by the definition: config.json text, then sorted "NAME\tDTYPE\tD0,D1\n" lines. */
    char path[600], *config;
    size_t clen;
    snprintf(path, sizeof path, "%s/config.json", dir);
    T_CHECK(dpb_file_read(path, 1 << 20, &config, &clen) == DPB_OK);
    char h[65];
    dpb_sha256_hex(config, clen, h);
    T_CHECK(strcmp(h, hf.config_sha256) == 0);
    size_t n = dpb_checkpoint_tensor_count(folder);
    T_CHECK(n == hf.tensors && n > 10);
    char **lines = calloc(n, sizeof *lines);
    for (size_t i = 0; i < n; i++) {
        const dpb_tensor *t = dpb_checkpoint_tensor_at(folder, i);
        lines[i] = malloc(256);
        int w = snprintf(lines[i], 256, "%s\t%s\t", t->name, dpb_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) w += snprintf(lines[i] + w, 256 - (size_t)w, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        snprintf(lines[i] + w, 256 - (size_t)w, "\n");
    }
    qsort(lines, n, sizeof *lines, cmp_str);
    dpb_sha256 ci, ca;
    uint8_t dg[32];
    dpb_sha256_init(&ci);
    dpb_sha256_init(&ca);
    dpb_sha256_update(&ca, config, clen);
    for (size_t i = 0; i < n; i++) {
        dpb_sha256_update(&ci, lines[i], strlen(lines[i]));
        dpb_sha256_update(&ca, lines[i], strlen(lines[i]));
        free(lines[i]);
    }
    free(lines);
    free(config);
    dpb_sha256_final(&ci, dg);
    dpb_sha256_to_hex(dg, h);
    T_CHECK(strcmp(h, hf.tensor_index_sha256) == 0);
    dpb_sha256_final(&ca, dg);
    dpb_sha256_to_hex(dg, h);
    T_CHECK(strcmp(h, hf.model_sha256) == 0);

    /* Another architecture hashes differently. */
    dpb_checkpoint *other;
    T_CHECK(dpb_checkpoint_open("synth:qwen3-tiny", &co, &other) == DPB_OK);
    dpb_model_hash ho;
    T_CHECK(dpb_model_hash_compute(other, &ho) == DPB_OK);
    T_CHECK(strcmp(ho.model_sha256, hm.model_sha256) != 0 && strcmp(ho.config_sha256, hm.config_sha256) != 0);
    dpb_checkpoint_close(other);
    dpb_checkpoint_close(folder);
    dpb_checkpoint_close(mem);
}

int main(void)
{
    T_RUN(test_sha256_fips_vectors);
    T_RUN(test_sha256_padding_boundaries);
    T_RUN(test_shell_join);
    T_RUN(test_results_dir);
    T_RUN(test_jsonl_partial_line);
    T_RUN(test_manifest_fields_and_rewrite);
    T_RUN(test_model_hash_definition);
    return t_done();
}
