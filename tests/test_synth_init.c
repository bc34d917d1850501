/* synth --init hf|scaled: the spread of each tensor, folder == in-memory
 * bytes under each init, and bad values refused with the option named. */
#include "t.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "format/checkpoint.h"
#include "format/dtype.h"
#include "models/spec.h"
#include "synth/synth.h"

static const dpb_tensor *find(const dpb_checkpoint *ck, const char *name)
{
    for (size_t i = 0; i < dpb_checkpoint_tensor_count(ck); i++) {
        const dpb_tensor *t = dpb_checkpoint_tensor_at(ck, i);
        if (strcmp(t->name, name) == 0) return t;
    }
    return NULL;
}

/* std of a bf16 tensor's values */
static double bf16_std(const dpb_tensor *t)
{
    size_t n = t->nbytes / 2;
    double s = 0, s2 = 0;
    const uint16_t *v = t->data;
    for (size_t i = 0; i < n; i++) {
        double x = dpb_bf16_to_f32(v[i]);
        s += x;
        s2 += x * x;
    }
    double m = s / (double)n;
    return sqrt(s2 / (double)n - m * m);
}

/* std of the dequantized weights of an MXFP4 blocks tensor with its scales */
static double mxfp4_std(const dpb_tensor *blocks, const dpb_tensor *scales, int *e8m0)
{
    static const double fp4[16] = {0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6};
    const uint8_t *b = blocks->data, *s = scales->data;
    *e8m0 = s[0];
    for (size_t i = 1; i < scales->nbytes; i++)
        if (s[i] != s[0]) *e8m0 = -1; /* one scale per tensor */
    double s2 = 0;
    for (size_t i = 0; i < blocks->nbytes; i++) s2 += fp4[b[i] & 15] * fp4[b[i] & 15] + fp4[b[i] >> 4] * fp4[b[i] >> 4];
    return sqrt(s2 / (2.0 * (double)blocks->nbytes)) * ldexp(1.0, s[0] - 127);
}

typedef struct expect {
    const char *name;
    double std; /* nominal */
} expect;

static void check_stds(const char *spec, const expect *ex, size_t n)
{
    dpb_checkpoint *ck = NULL;
    T_CHECKF(dpb_checkpoint_open(spec, NULL, &ck) == DPB_OK, "%s: %s", spec, dpb_error_message());
    if (!ck) return;
    for (size_t i = 0; i < n; i++) {
        const dpb_tensor *t = find(ck, ex[i].name);
        T_CHECKF(t != NULL, "%s: %s missing", spec, ex[i].name);
        if (!t) continue;
        double got = bf16_std(t);
        if (t->nbytes < 512) continue; /* too few values to estimate (sinks: one per head); nominal below */
        if (ex[i].std == 0) T_CHECKF(got == 0, "%s %s: std %g, want 0 (ones)", spec, ex[i].name, got);
        else T_CHECKF(fabs(got / ex[i].std - 1) < 0.05, "%s %s: std %.5f, want %.5f", spec, ex[i].name, got, ex[i].std);
    }
    /* the nominal spread the library reports agrees with the table above */
    dpb_tensor_specs specs;
    const dpb_model_config *cfg = dpb_checkpoint_config(ck);
    dpb_synth_init init = strstr(spec, "scaled") ? DPB_SYNTH_INIT_SCALED : DPB_SYNTH_INIT_HF;
    T_CHECK(dpb_model_tensor_specs(cfg, &specs) == DPB_OK);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < specs.n; k++)
            if (strcmp(specs.t[k].name, ex[i].name) == 0)
                T_CHECKF(fabs(dpb_synth_tensor_std(&specs.t[k], cfg, init) - ex[i].std) < 1e-12, "%s %s: nominal %g, want %g",
                         spec, ex[i].name, dpb_synth_tensor_std(&specs.t[k], cfg, init), ex[i].std);
    dpb_tensor_specs_free(&specs);
    dpb_checkpoint_close(ck);
}

static void test_dense_stds(void)
{
    /* qwen3-tiny: hidden 128, 4 heads x 32 (q width 128), intermediate 256, 4 layers */
    const expect hf[] = {{"model.embed_tokens.weight", 0.02}, {"model.layers.1.self_attn.q_proj.weight", 0.02},
                         {"model.layers.1.self_attn.o_proj.weight", 0.02}, {"model.layers.1.mlp.down_proj.weight", 0.02},
                         {"lm_head.weight", 0.02}, {"model.layers.1.input_layernorm.weight", 0}};
    check_stds("synth:qwen3-tiny", hf, sizeof hf / sizeof hf[0]);
    check_stds("synth:qwen3-tiny:hf", hf, sizeof hf / sizeof hf[0]);
    const double res = 1 / sqrt(8.0); /* 1 / sqrt(2 x 4 layers) */
    const expect sc[] = {{"model.embed_tokens.weight", 1.0},
                         {"model.layers.1.self_attn.q_proj.weight", 1 / sqrt(128.0)},
                         {"model.layers.1.self_attn.k_proj.weight", 1 / sqrt(128.0)},
                         {"model.layers.1.self_attn.o_proj.weight", res / sqrt(128.0)},
                         {"model.layers.1.mlp.gate_proj.weight", 1 / sqrt(128.0)},
                         {"model.layers.1.mlp.down_proj.weight", res / sqrt(256.0)},
                         {"lm_head.weight", 1 / sqrt(128.0)},
                         {"model.layers.1.input_layernorm.weight", 0}};
    check_stds("synth:qwen3-tiny:scaled", sc, sizeof sc / sizeof sc[0]);
    check_stds("synth:qwen3-tiny:5:scaled", sc, sizeof sc / sizeof sc[0]);
}

static void test_gpt_oss_stds(void)
{
    /* gpt-oss-tiny: hidden 128, intermediate 128, 4 layers, 8 experts, MXFP4 */
    const double res = 1 / sqrt(8.0);
    const expect sc[] = {{"model.layers.2.self_attn.q_proj.weight", 1 / sqrt(128.0)},
                         {"model.layers.2.self_attn.q_proj.bias", 0.02},
                         {"model.layers.2.self_attn.sinks", 0.02},
                         {"model.layers.2.self_attn.o_proj.weight", res / sqrt(128.0)},
                         {"model.layers.2.mlp.router.weight", 1 / sqrt(128.0)},
                         {"model.layers.2.mlp.experts.down_proj_bias", 0.02},
                         {"model.layers.2.mlp.experts.gate_up_proj_bias", 0.02},
                         {"model.layers.2.mlp.router.bias", 0.02}};
    check_stds("synth:gpt-oss-tiny:scaled", sc, sizeof sc / sizeof sc[0]);
    /* MXFP4 scales: hf 2^-7 (byte 120); scaled the power of two nearest 1/sqrt(fan_in)/2.926:
     * gate_up 1/sqrt(128)/2.926 = 2^-5.05 -> 122; down 1/sqrt(128)/sqrt(8)/2.926 = 2^-6.55 -> 120 */
    const struct { const char *spec; int gate_up, down; } cases[] = {
        {"synth:gpt-oss-tiny", 120, 120}, {"synth:gpt-oss-tiny:scaled", 122, 120}};
    for (size_t k = 0; k < 2; k++) {
        dpb_checkpoint *ck = NULL;
        T_CHECKF(dpb_checkpoint_open(cases[k].spec, NULL, &ck) == DPB_OK, "%s", dpb_error_message());
        if (!ck) continue;
        const char *names[2][2] = {{"model.layers.0.mlp.experts.gate_up_proj_blocks", "model.layers.0.mlp.experts.gate_up_proj_scales"},
                                   {"model.layers.0.mlp.experts.down_proj_blocks", "model.layers.0.mlp.experts.down_proj_scales"}};
        for (int w = 0; w < 2; w++) {
            const dpb_tensor *b = find(ck, names[w][0]), *s = find(ck, names[w][1]);
            T_CHECK(b && s);
            if (!b || !s) continue;
            int e = 0;
            double sd = mxfp4_std(b, s, &e);
            int want = w ? cases[k].down : cases[k].gate_up;
            T_CHECKF(e == want, "%s %s: E8M0 %d, want %d", cases[k].spec, names[w][1], e, want);
            double nominal = 2.9261749776799064 * ldexp(1.0, want - 127);
            T_CHECKF(fabs(sd / nominal - 1) < 0.02, "%s %s: std %.5f, want %.5f", cases[k].spec, names[w][0], sd, nominal);
        }
        dpb_checkpoint_close(ck);
    }
    /* bf16 experts: fan-in is dim 1 of [E, in, out] */
    const expect bf[] = {{"model.layers.0.mlp.experts.gate_up_proj", 1 / sqrt(128.0)},
                         {"model.layers.0.mlp.experts.down_proj", res / sqrt(128.0)}};
    dpb_checkpoint_opts co = {.experts_format = DPB_EXPERTS_BF16};
    dpb_checkpoint *ck = NULL;
    T_CHECKF(dpb_checkpoint_open("synth:gpt-oss-tiny:scaled", &co, &ck) == DPB_OK, "%s", dpb_error_message());
    for (size_t i = 0; ck && i < 2; i++) {
        const dpb_tensor *t = find(ck, bf[i].name);
        T_CHECKF(t && fabs(bf16_std(t) / bf[i].std - 1) < 0.05, "%s: std %g, want %g", bf[i].name, t ? bf16_std(t) : -1.0, bf[i].std);
    }
    dpb_checkpoint_close(ck);
}

/* The hf init is byte for byte what synth wrote before --init existed: a
 * digest of synth:qwen3-tiny:0 and synth:gpt-oss-tiny:7 recorded at main 3a9eda7. */
#define DIGEST_QWEN3_TINY_0 0x7334b4f87296fe83ull
#define DIGEST_GPT_OSS_TINY_7 0x06797a7746edd376ull

static uint64_t digest(const char *spec)
{
    dpb_checkpoint *ck = NULL;
    if (dpb_checkpoint_open(spec, NULL, &ck) != DPB_OK) return 0;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < dpb_checkpoint_tensor_count(ck); i++) {
        const dpb_tensor *t = dpb_checkpoint_tensor_at(ck, i);
        for (const char *c = t->name; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
        for (size_t k = 0; k < t->nbytes; k++) h = (h ^ ((const uint8_t *)t->data)[k]) * 0x100000001b3ull;
    }
    dpb_checkpoint_close(ck);
    return h;
}

static void test_hf_unchanged(void)
{
    uint64_t a = digest("synth:qwen3-tiny"), b = digest("synth:gpt-oss-tiny:7");
    T_CHECKF(a == DIGEST_QWEN3_TINY_0, "synth:qwen3-tiny digest %016llx", (unsigned long long)a);
    T_CHECKF(b == DIGEST_GPT_OSS_TINY_7, "synth:gpt-oss-tiny:7 digest %016llx", (unsigned long long)b);
    T_CHECK(digest("synth:qwen3-tiny:0:hf") == a);
    T_CHECK(digest("synth:qwen3-tiny:scaled") != a);
}

/* A folder written with --init equals synth:PRESET:SEED:INIT in memory, and
 * the fill rules an engine places equal both. */
static dpb_status host_place(void *ctx, const dpb_fill_rule *r, uint64_t bytes, const void **out)
{
    void ***mem = ctx;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) return dpb_error_set(DPB_E_NOMEM, "oom");
    dpb_synth_fill_rule(r, 0, bytes, p);
    **mem = p;
    (*mem)++;
    *out = p;
    return DPB_OK;
}

static void test_folder_equals_memory(void)
{
    char tmpl[] = "/tmp/dpb-synth-init-XXXXXX";
    char *dir = mkdtemp(tmpl);
    T_CHECK(dir != NULL);
    if (!dir) return;
    const struct { const char *preset; uint64_t seed; dpb_synth_init init; const char *spec; } cases[] = {
        {"qwen3-tiny", 0, DPB_SYNTH_INIT_SCALED, "synth:qwen3-tiny:scaled"},
        {"gpt-oss-tiny", 7, DPB_SYNTH_INIT_SCALED, "synth:gpt-oss-tiny:7:scaled"},
        {"llama-tiny", 3, DPB_SYNTH_INIT_HF, "synth:llama-tiny:3:hf"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char out[256];
        snprintf(out, sizeof out, "%s/%s", dir, cases[k].preset);
        dpb_synth_write_opts o = {.preset = cases[k].preset, .out_dir = out, .seed = cases[k].seed, .init = (int)cases[k].init,
                                  .threads = 2};
        dpb_synth_write_result wr;
        T_CHECKF(dpb_synth_write(&o, &wr) == DPB_OK, "%s", dpb_error_message());
        dpb_checkpoint *file = NULL, *mem = NULL, *lazy = NULL, *placed = NULL;
        T_CHECKF(dpb_checkpoint_open(out, NULL, &file) == DPB_OK, "%s", dpb_error_message());
        T_CHECKF(dpb_checkpoint_open(cases[k].spec, NULL, &mem) == DPB_OK, "%s", dpb_error_message());
        dpb_synth_set_deferred(true);
        T_CHECK(dpb_checkpoint_open(cases[k].spec, NULL, &lazy) == DPB_OK);
        dpb_synth_set_deferred(false);
        void *blocks[4096], **next = blocks;
        if (lazy) T_CHECK(dpb_synth_placed(lazy, host_place, &next, &placed) == DPB_OK);
        if (file && mem && placed) {
            size_t n = dpb_checkpoint_tensor_count(mem), same_file = 0, same_placed = 0;
            T_CHECK(dpb_checkpoint_tensor_count(file) == n && dpb_checkpoint_tensor_count(placed) == n);
            for (size_t i = 0; i < n; i++) {
                const dpb_tensor *m = dpb_checkpoint_tensor_at(mem, i);
                const dpb_tensor *f = find(file, m->name), *p = find(placed, m->name);
                same_file += f && f->nbytes == m->nbytes && memcmp(f->data, m->data, m->nbytes) == 0;
                same_placed += p && p->nbytes == m->nbytes && memcmp(p->data, m->data, m->nbytes) == 0;
            }
            T_CHECKF(same_file == n, "%s: %zu of %zu tensors of the folder identical", cases[k].spec, same_file, n);
            T_CHECKF(same_placed == n, "%s: %zu of %zu placed tensors identical", cases[k].spec, same_placed, n);
        }
        for (void **p = blocks; p < next; p++) free(*p);
        dpb_checkpoint_close(placed);
        dpb_checkpoint_close(lazy);
        dpb_checkpoint_close(mem);
        dpb_checkpoint_close(file);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    T_CHECK(system(cmd) == 0);
}

static void test_bad_values(void)
{
    dpb_synth_init init = DPB_SYNTH_INIT_SCALED;
    T_CHECK(dpb_synth_init_parse("hf", &init) == DPB_OK && init == DPB_SYNTH_INIT_HF);
    T_CHECK(dpb_synth_init_parse("scaled", &init) == DPB_OK && init == DPB_SYNTH_INIT_SCALED);
    T_CHECK(dpb_synth_init_parse("Scaled", &init) != DPB_OK);
    T_CHECK(strstr(dpb_error_message(), "init 'Scaled': expected hf or scaled") != NULL);
    T_CHECK(dpb_synth_init_parse(NULL, &init) != DPB_OK);
    const struct { const char *spec, *msg; } bad[] = {
        {"synth:qwen3-tiny:foo", "init 'foo': expected hf or scaled"},
        {"synth:qwen3-tiny:scaled:3", "the seed must be a whole number, before the init"},
        {"synth:qwen3-tiny:1:2", "the seed must be a whole number, before the init"},
        {"synth:qwen3-tiny:scaled:hf", "init 'hf': expected hf or scaled"},
        {"synth:qwen3-tiny:", "expected synth:PRESET[:SEED][:INIT]"},
        {"synth:qwen3-tiny:3:", "expected synth:PRESET[:SEED][:INIT]"},
        {"synth:qwen3-tiny:-1", "the seed must be a whole number"},
        {"synth:qwen3-tiny:12x", "the seed must be a whole number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dpb_checkpoint *ck = NULL;
        dpb_status st = dpb_checkpoint_open(bad[i].spec, NULL, &ck);
        T_CHECKF(st != DPB_OK && ck == NULL, "%s accepted", bad[i].spec);
        T_CHECKF(st != DPB_OK && strstr(dpb_error_message(), bad[i].msg) && strstr(dpb_error_message(), bad[i].spec),
                 "%s: '%s'", bad[i].spec, dpb_error_message());
    }
    dpb_synth_write_opts o = {.preset = "qwen3-tiny", .out_dir = "/nonexistent/x", .init = 7};
    dpb_synth_write_result wr;
    T_CHECK(dpb_synth_write(&o, &wr) != DPB_OK && strstr(dpb_error_message(), "init 7"));
}

int main(void)
{
    T_RUN(test_dense_stds);
    T_RUN(test_gpt_oss_stds);
    T_RUN(test_hf_unchanged);
    T_RUN(test_folder_equals_memory);
    T_RUN(test_bad_values);
    return t_done();
}
