/* Model folders: fixtures, sharded folders built here, and the errors of
 * broken folders. */
#include "t.h"
#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>
#include "core/file.h"
#include "format/checkpoint_impl.h"
#include "format/safetensors.h"

static const char *k_fixtures[] = {"gpt-oss-tiny-bf16", "gpt-oss-tiny-mxfp4", "qwen3-tiny", "llama-tiny"};
static const size_t k_counts[] = {71, 79, 47, 39};

static void test_fixtures_open(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared absent: fixtures not available");
    for (size_t f = 0; f < 4; f++) {
        char dir[512], path[600];
        snprintf(dir, sizeof dir, "%s/fixtures/%s", sh, k_fixtures[f]);
        dpb_checkpoint *ck = NULL;
        dpb_status st = dpb_checkpoint_open(dir, NULL, &ck);
        T_CHECKF(st == DPB_OK, "%s: %s", k_fixtures[f], dpb_error_message());
        if (st) continue;
        T_CHECKF(dpb_checkpoint_tensor_count(ck) == k_counts[f], "%s: %zu tensors", k_fixtures[f],
                 dpb_checkpoint_tensor_count(ck));
        const dpb_tensor *t = dpb_checkpoint_get(ck, "model.embed_tokens.weight");
        T_CHECK(t && t->ndim == 2 && t->shape[0] == 512 && t->shape[1] == 128 && t->dtype == DPB_DT_BF16);
        t = dpb_checkpoint_get(ck, "model.layers.0.self_attn.q_proj.weight");
        T_CHECK(t && t->ndim == 2 && t->shape[0] == 128 && t->shape[1] == 128);
        t = dpb_checkpoint_get(ck, "model.layers.3.self_attn.k_proj.weight");
        T_CHECK(t && t->ndim == 2 && t->shape[0] == 64 && t->shape[1] == 128);
        /* Weight bytes = file size - 8 - header length. */
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        dpb_safetensors_file sf;
        T_CHECK(dpb_safetensors_open(path, &sf) == DPB_OK);
        T_CHECKF(dpb_checkpoint_weight_bytes(ck) == sf.map.size - sf.hdr.data_offset, "%s: %llu vs %llu",
                 k_fixtures[f], (unsigned long long)dpb_checkpoint_weight_bytes(ck),
                 (unsigned long long)(sf.map.size - sf.hdr.data_offset));
        dpb_safetensors_close(&sf);
        T_CHECK(dpb_checkpoint_config(ck)->hidden_size == 128);
        if (f == 0) {
            t = dpb_checkpoint_get(ck, "model.layers.0.mlp.experts.gate_up_proj");
            T_CHECK(t && t->dtype == DPB_DT_BF16 && t->ndim == 3 && t->shape[0] == 8 && t->shape[1] == 128 &&
                    t->shape[2] == 256);
            T_CHECK(dpb_checkpoint_get(ck, "model.layers.0.mlp.experts.gate_up_proj_blocks") == NULL);
        } else if (f == 1) {
            t = dpb_checkpoint_get(ck, "model.layers.0.mlp.experts.gate_up_proj_blocks");
            T_CHECK(t && t->dtype == DPB_DT_U8 && t->ndim == 4 && t->shape[0] == 8 && t->shape[1] == 256 &&
                    t->shape[2] == 4 && t->shape[3] == 16 && t->nbytes == 8 * 256 * 4 * 16);
            t = dpb_checkpoint_get(ck, "model.layers.0.mlp.experts.down_proj_scales");
            T_CHECK(t && t->dtype == DPB_DT_U8 && t->ndim == 3 && t->shape[1] == 128 && t->shape[2] == 4);
            T_CHECK(dpb_checkpoint_get(ck, "model.layers.0.mlp.experts.gate_up_proj") == NULL);
        }
        /* Tensors are sorted by name. */
        for (size_t i = 1; i < dpb_checkpoint_tensor_count(ck); i++)
            T_CHECK(strcmp(dpb_checkpoint_tensor_at(ck, i - 1)->name, dpb_checkpoint_tensor_at(ck, i)->name) < 0);
        T_CHECK(!dpb_checkpoint_is_synthetic(ck) && strcmp(dpb_checkpoint_dir(ck), dir) == 0);
        dpb_checkpoint_close(ck);
    }
}

static char g_tmp[256];
static char g_src[512]; /* llama-tiny folder */

static void put_text(const char *dir, const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    T_CHECKF(dpb_file_write(path, text, strlen(text)) == DPB_OK, "%s", dpb_error_message());
}

/* A fresh folder g_tmp/name holding llama-tiny's config.json (edited by edit when given). */
static void make_dir(const char *name, char *dir, size_t cap, const char *from, const char *to)
{
    snprintf(dir, cap, "%s/%s", g_tmp, name);
    T_CHECK(dpb_dir_create(dir) == DPB_OK);
    char path[600], *text = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", g_src);
    T_CHECK(dpb_file_read(path, 1 << 20, &text, &len) == DPB_OK);
    if (from) {
        char *at = strstr(text, from);
        T_CHECKF(at != NULL, "config lacks '%s'", from);
        if (at) {
            size_t fl = strlen(from), tl = strlen(to);
            char *n = malloc(len + tl + 1);
            memcpy(n, text, (size_t)(at - text));
            memcpy(n + (at - text), to, tl);
            strcpy(n + (at - text) + tl, at + fl);
            free(text);
            text = n;
        }
    }
    put_text(dir, "config.json", text);
    free(text);
}

/* The source tensors, as writer entries. */
typedef struct src_tensors {
    dpb_safetensors_file f;
    dpb_st_write_entry *e;
    const void **data;
    size_t n;
} src_tensors;

static bool load_src(src_tensors *s)
{
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", g_src);
    if (dpb_safetensors_open(path, &s->f) != DPB_OK) return false;
    s->n = s->f.hdr.count;
    s->e = calloc(s->n + 1, sizeof *s->e);
    s->data = calloc(s->n + 1, sizeof *s->data);
    for (size_t i = 0; i < s->n; i++) {
        const dpb_st_entry *x = &s->f.hdr.entries[i];
        s->e[i] = (dpb_st_write_entry){x->name, x->dtype, x->ndim, x->shape};
        s->data[i] = dpb_safetensors_data(&s->f, x);
    }
    return true;
}

static void free_src(src_tensors *s)
{
    free(s->e);
    free(s->data);
    dpb_safetensors_close(&s->f);
}

enum shard_fault { SH_OK, SH_MISSING_SHARD, SH_ABSENT_TENSOR, SH_WRONG_SHARD, SH_SLASH, SH_TWO_SHARDS, SH_UNLISTED };

/* Two shards (even- and odd-numbered tensors) and an index, with one fault. */
static void build_sharded(const char *dir, enum shard_fault fault)
{
    src_tensors s;
    if (!load_src(&s)) {
        T_CHECKF(0, "%s", dpb_error_message());
        return;
    }
    static const char *shard[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (int k = 0; k < 2; k++) {
        dpb_st_write_entry *e = calloc(s.n + 1, sizeof *e);
        const void **d = calloc(s.n + 1, sizeof *d);
        size_t m = 0;
        for (size_t i = 0; i < s.n; i++)
            if ((int)(i % 2) == k || (fault == SH_TWO_SHARDS && i == 0)) {
                e[m] = s.e[i];
                d[m++] = s.data[i];
            }
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, shard[k]);
        T_CHECKF(dpb_safetensors_write(path, e, d, m) == DPB_OK, "%s", dpb_error_message());
        free(e);
        free(d);
    }
    size_t cap = 64 * (s.n + 4) + 4096, len = 0;
    char *j = malloc(cap);
    len += (size_t)snprintf(j + len, cap - len, "{\n  \"metadata\": {\"total_size\": 1},\n  \"weight_map\": {\n");
    for (size_t i = 0; i < s.n; i++) {
        const char *sh = shard[i % 2];
        if (fault == SH_UNLISTED && i == 3) continue;
        if (fault == SH_MISSING_SHARD && i == 5) sh = "model-00003-of-00002.safetensors";
        if (fault == SH_WRONG_SHARD && i == 5) sh = shard[0];
        if (fault == SH_SLASH && i == 5) sh = "sub/model-00002-of-00002.safetensors";
        len += (size_t)snprintf(j + len, cap - len, "    \"%s\": \"%s\",\n", s.e[i].name, sh);
    }
    if (fault == SH_ABSENT_TENSOR)
        len += (size_t)snprintf(j + len, cap - len, "    \"model.layers.9.mlp.up_proj.weight\": \"%s\",\n", shard[1]);
    len -= 2; /* drop the last ",\n" */
    snprintf(j + len, cap - len, "\n  }\n}\n");
    put_text(dir, "model.safetensors.index.json", j);
    free(j);
    free_src(&s);
}

static dpb_status open_expect(const char *dir, dpb_status want, const char *n1, const char *n2, const char *n3)
{
    dpb_checkpoint *ck = NULL;
    dpb_error_clear();
    dpb_status st = dpb_checkpoint_open(dir, NULL, &ck);
    const char *m = dpb_error_message();
    if (getenv("T_VERBOSE")) fprintf(stderr, "%s -> %s\n", dpb_status_name(st), st ? m : "ok");
    T_CHECKF(st == want, "%s: status %s, want %s (%s)", dir, dpb_status_name(st), dpb_status_name(want), m);
    if (st == DPB_OK) {
        dpb_checkpoint_close(ck);
        return st;
    }
    T_CHECK(ck == NULL);
    T_CHECKF(dpb_status_exit_code(st) == 2, "exit code %d", dpb_status_exit_code(st));
    T_CHECKF(!n1 || strstr(m, n1), "message '%s' lacks '%s'", m, n1);
    T_CHECKF(!n2 || strstr(m, n2), "message '%s' lacks '%s'", m, n2);
    T_CHECKF(!n3 || strstr(m, n3), "message '%s' lacks '%s'", m, n3);
    T_CHECKF(strchr(m, '\n') == NULL, "message '%s' is not one line", m);
    return st;
}

static void test_sharded_ok(void)
{
    if (!*g_src) T_SKIP("../shared absent: llama-tiny not available");
    char dir[512];
    make_dir("sharded", dir, sizeof dir, NULL, NULL);
    build_sharded(dir, SH_OK);
    dpb_checkpoint *ck = NULL;
    dpb_status st = dpb_checkpoint_open(dir, NULL, &ck);
    T_CHECKF(st == DPB_OK, "%s", dpb_error_message());
    if (st) return;
    T_CHECK(dpb_checkpoint_tensor_count(ck) == 39);
    const dpb_tensor *a = dpb_checkpoint_tensor_at(ck, 0), *b = dpb_checkpoint_tensor_at(ck, 1);
    T_CHECK(a && b && strcmp(a->name, b->name) < 0);
    T_CHECK(dpb_checkpoint_tensor_at(ck, 39) == NULL);
    /* Tensors come from both shards, with the bytes of the source. */
    src_tensors s;
    T_CHECK(load_src(&s));
    int in[2] = {0, 0};
    uint64_t sum = 0;
    for (size_t i = 0; i < s.n; i++) {
        const dpb_tensor *t;
        T_CHECK(dpb_checkpoint_find(ck, s.e[i].name, &t) == DPB_OK);
        if (!t) continue;
        in[strstr(t->file, "00002-of") != NULL]++;
        T_CHECK(t->nbytes == s.f.hdr.entries[i].end - s.f.hdr.entries[i].begin);
        T_CHECK(memcmp(t->data, s.data[i], t->nbytes) == 0);
        sum += t->nbytes;
    }
    T_CHECK(in[0] == 20 && in[1] == 19);
    T_CHECK(dpb_checkpoint_weight_bytes(ck) == sum);
    /* = file sizes minus prefixes */
    uint64_t files = 0;
    for (int k = 1; k <= 2; k++) {
        char path[600];
        snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, k);
        dpb_safetensors_file f;
        T_CHECK(dpb_safetensors_open(path, &f) == DPB_OK);
        files += f.map.size - f.hdr.data_offset;
        dpb_safetensors_close(&f);
    }
    T_CHECK(files == sum);
    const dpb_tensor *t;
    T_CHECK(dpb_checkpoint_find(ck, "nope", &t) == DPB_E_FORMAT && t == NULL);
    T_CHECK(strstr(dpb_error_message(), "'nope'") != NULL);
    T_CHECK(dpb_checkpoint_tokenizer_path(ck) == NULL);
    free_src(&s);
    dpb_checkpoint_close(ck);
}

static void test_sharded_faults(void)
{
    if (!*g_src) T_SKIP("../shared absent: llama-tiny not available");
    char dir[512];
    make_dir("missing_shard", dir, sizeof dir, NULL, NULL);
    build_sharded(dir, SH_MISSING_SHARD);
    open_expect(dir, DPB_E_FORMAT, "model.safetensors.index.json", "shard 'model-00003-of-00002.safetensors'",
                "does not exist");
    make_dir("absent_tensor", dir, sizeof dir, NULL, NULL);
    build_sharded(dir, SH_ABSENT_TENSOR);
    open_expect(dir, DPB_E_FORMAT, "model.safetensors.index.json", "tensor 'model.layers.9.mlp.up_proj.weight'",
                "shard 'model-00002-of-00002.safetensors'");
    make_dir("wrong_shard", dir, sizeof dir, NULL, NULL);
    build_sharded(dir, SH_WRONG_SHARD);
    open_expect(dir, DPB_E_FORMAT, "model.safetensors.index.json", "listed in shard 'model-00001-of-00002.safetensors'",
                "stored in 'model-00002-of-00002.safetensors'");
    make_dir("slash", dir, sizeof dir, NULL, NULL);
    build_sharded(dir, SH_SLASH);
    open_expect(dir, DPB_E_FORMAT, "model.safetensors.index.json", "sub/model-00002-of-00002.safetensors",
                "not a plain file name");
    make_dir("two_shards", dir, sizeof dir, NULL, NULL);
    build_sharded(dir, SH_TWO_SHARDS);
    open_expect(dir, DPB_E_FORMAT, "is in both model-00001-of-00002.safetensors and model-00002-of-00002.safetensors",
                dir, NULL);
    make_dir("unlisted", dir, sizeof dir, NULL, NULL);
    build_sharded(dir, SH_UNLISTED);
    open_expect(dir, DPB_E_FORMAT, "model.safetensors.index.json", "in shard 'model-00002-of-00002.safetensors'",
                "is not listed in the index");
    make_dir("empty_index", dir, sizeof dir, NULL, NULL);
    put_text(dir, "model.safetensors.index.json", "{\"metadata\":{},\"weight_map\":{}}");
    open_expect(dir, DPB_E_FORMAT, "model.safetensors.index.json", "weight_map lists no tensors", NULL);
    /* A broken shard: its own error, naming the shard's path. */
    make_dir("broken_shard", dir, sizeof dir, NULL, NULL);
    build_sharded(dir, SH_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    FILE *f = fopen(path, "ab");
    fputs("xx", f);
    fclose(f);
    open_expect(dir, DPB_E_FORMAT, path, "2 trailing bytes", NULL);
}

static void test_config_errors(void)
{
    if (!*g_src) T_SKIP("../shared absent: llama-tiny not available");
    char dir[512];
    make_dir("heads", dir, sizeof dir, "\"num_attention_heads\": 4,", "\"num_attention_heads\": 3,");
    /* Drop head_dim so that heads must divide the width. */
    char path[600], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", dir);
    T_CHECK(dpb_file_read(path, 1 << 20, &text, &len) == DPB_OK);
    char *hd = strstr(text, "\"head_dim\": 32,");
    if (hd) memset(hd, ' ', strlen("\"head_dim\": 32,"));
    put_text(dir, "config.json", text);
    free(text);
    open_expect(dir, DPB_E_FORMAT, "config.json", "num_attention_heads (3) does not divide hidden_size (128)", NULL);

    make_dir("noconfig", dir, sizeof dir, NULL, NULL);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    open_expect(dir, DPB_E_FORMAT, dir, "config.json is missing", NULL);

    make_dir("noweights", dir, sizeof dir, NULL, NULL);
    open_expect(dir, DPB_E_FORMAT, dir, "neither model.safetensors nor model.safetensors.index.json", NULL);

    snprintf(path, sizeof path, "%s/does-not-exist", g_tmp);
    open_expect(path, DPB_E_ARG, path, "not a folder", NULL);

    make_dir("badgen", dir, sizeof dir, NULL, NULL);
    put_text(dir, "generation_config.json", "{\"temperature\": \"hot\"}");
    open_expect(dir, DPB_E_FORMAT, "generation_config.json", "temperature", NULL);

    make_dir("badtok", dir, sizeof dir, NULL, NULL);
    put_text(dir, "tokenizer_config.json", "{\"bos_token\": 5}");
    open_expect(dir, DPB_E_FORMAT, "tokenizer_config.json", "bos_token", NULL);
}

/* A single model.safetensors with one tensor removed, one reshaped and one added. */
static void test_binding_errors(void)
{
    if (!*g_src) T_SKIP("../shared absent: llama-tiny not available");
    char dir[512], path[600];
    make_dir("binding", dir, sizeof dir, NULL, NULL);
    src_tensors s;
    T_CHECK(load_src(&s));
    size_t m = 0;
    int64_t shape[2] = {64, 256};
    static const uint8_t extra[16];
    for (size_t i = 0; i < s.n; i++) {
        if (strcmp(s.e[i].name, "model.layers.1.mlp.down_proj.weight") == 0) continue;
        s.e[m] = s.e[i];
        s.data[m] = s.data[i];
        if (strcmp(s.e[m].name, "model.layers.2.mlp.gate_proj.weight") == 0) s.e[m].shape = shape; /* 256x128 -> 64x256 */
        m++;
    }
    s.e[m] = (dpb_st_write_entry){"model.layers.0.mlp.extra.weight", DPB_DT_BF16, 1, (const int64_t[]){8}};
    s.data[m++] = extra;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    T_CHECKF(dpb_safetensors_write(path, s.e, s.data, m) == DPB_OK, "%s", dpb_error_message());
    free_src(&s);
    open_expect(dir, DPB_E_FORMAT, "missing tensor 'model.layers.1.mlp.down_proj.weight'",
                "tensor 'model.layers.2.mlp.gate_proj.weight' is BF16 [64, 256]",
                "unexpected tensor 'model.layers.0.mlp.extra.weight'");
    T_CHECK(strstr(dpb_error_message(), dir) != NULL && strstr(dpb_error_message(), "3 tensor problems") != NULL);
}

static void test_generation_and_tokenizer(void)
{
    if (!*g_src) T_SKIP("../shared absent: llama-tiny not available");
    char dir[512], path[600];
    make_dir("gen", dir, sizeof dir, NULL, NULL);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    char src[600], abs_src[PATH_MAX];
    snprintf(src, sizeof src, "%s/model.safetensors", g_src);
    T_CHECK(realpath(src, abs_src) != NULL && symlink(abs_src, path) == 0);
    /* No generation_config.json: defaults from config.json. */
    dpb_checkpoint *ck;
    T_CHECKF(dpb_checkpoint_open_dir(dir, NULL, &ck) == DPB_OK, "%s", dpb_error_message());
    if (ck) {
        const dpb_generation_config *g = dpb_checkpoint_generation(ck);
        T_CHECK(!g->present && g->n_eos == 1 && g->eos_ids[0] == 2 && g->bos_token_id == 1 && g->temperature == 1.0);
        dpb_checkpoint_close(ck);
    }
    put_text(dir, "generation_config.json", "{\"eos_token_id\": [2, 7], \"do_sample\": true, \"temperature\": 0.6}");
    put_text(dir, "tokenizer_config.json", "{\"bos_token\": \"<s>\", \"chat_template\": \"{{ x }}\"}");
    put_text(dir, "tokenizer.model", "x");
    T_CHECKF(dpb_checkpoint_open(dir, NULL, &ck) == DPB_OK, "%s", dpb_error_message());
    if (ck) {
        const dpb_generation_config *g = dpb_checkpoint_generation(ck);
        T_CHECK(g->present && g->n_eos == 2 && g->eos_ids[1] == 7 && g->do_sample && g->temperature == 0.6);
        T_CHECK(g->bos_token_id == 1); /* from config.json */
        const char *tp = dpb_checkpoint_tokenizer_path(ck);
        T_CHECK(tp && strstr(tp, "/gen/tokenizer.model"));
        dpb_checkpoint_close(ck);
    }
    put_text(dir, "tokenizer.json", "{}");
    char tokdir[512];
    snprintf(tokdir, sizeof tokdir, "%s/tok", g_tmp);
    T_CHECK(dpb_dir_create(tokdir) == DPB_OK);
    put_text(tokdir, "b.tiktoken", "x");
    put_text(tokdir, "a.tiktoken", "x");
    dpb_checkpoint_opts o = {.tokenizer = tokdir};
    T_CHECKF(dpb_checkpoint_open(dir, &o, &ck) == DPB_OK, "%s", dpb_error_message());
    if (ck) {
        const char *tp = dpb_checkpoint_tokenizer_path(ck);
        T_CHECKF(tp && strstr(tp, "/tok/a.tiktoken"), "%s", tp ? tp : "NULL");
        dpb_checkpoint_close(ck);
    }
    T_CHECK(dpb_checkpoint_open(dir, NULL, &ck) == DPB_OK);
    if (ck) {
        T_CHECK(strstr(dpb_checkpoint_tokenizer_path(ck), "/gen/tokenizer.json") != NULL);
        dpb_checkpoint_close(ck);
    }
    char *out;
    snprintf(path, sizeof path, "%s/tok/a.tiktoken", g_tmp);
    T_CHECK(dpb_checkpoint_resolve_tokenizer(path, &out) == DPB_OK && strcmp(out, path) == 0);
    free(out);
    snprintf(path, sizeof path, "%s/nothing-here", g_tmp);
    T_CHECK(dpb_checkpoint_resolve_tokenizer(path, &out) == DPB_E_ARG && out == NULL);
    T_CHECK(strstr(dpb_error_message(), "--tokenizer") && strstr(dpb_error_message(), path));
    T_CHECK(dpb_checkpoint_resolve_tokenizer(g_tmp, &out) == DPB_E_ARG);
    T_CHECK(strstr(dpb_error_message(), "no tokenizer.json") != NULL);
    o.tokenizer = path;
    T_CHECK(dpb_checkpoint_open(dir, &o, &ck) == DPB_E_ARG && ck == NULL);
}

static void test_synth_dispatch(void)
{
    dpb_checkpoint *ck = (dpb_checkpoint *)1;
    dpb_status st = dpb_checkpoint_open("synth:no-such-preset", NULL, &ck);
    T_CHECK(st != DPB_OK && ck == NULL);
    T_CHECK(strstr(dpb_error_message(), "no-such-preset") != NULL);
}

int main(void)
{
    const char *d = t_tmpdir();
    if (!d) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_tmp, sizeof g_tmp, "%s", d);
    const char *sh = t_shared();
    if (sh) snprintf(g_src, sizeof g_src, "%s/fixtures/llama-tiny", sh);
    T_RUN(test_fixtures_open);
    T_RUN(test_sharded_ok);
    T_RUN(test_sharded_faults);
    T_RUN(test_config_errors);
    T_RUN(test_binding_errors);
    T_RUN(test_generation_and_tokenizer);
    T_RUN(test_synth_dispatch);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return t_done();
}
