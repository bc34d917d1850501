/* Random-weight checkpoints.
 *
 * Every weight is a pure function of (seed, tensor name, 8-byte word index):
 * word w of tensor t is mix64(key(seed, name) + w * golden).  bf16 normals
 * come from a 65536-entry table of N(0, 0.02) quantiles indexed by 16 random
 * bits, so generation costs a table lookup per weight; MXFP4 blocks are random
 * bytes (uniform FP4 codes, std 2.93) under the E8M0 scale 2^-7, giving the
 * same std (~0.023) as the bf16 weights. */
#include "synth/synth.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/checked.h"
#include "core/file.h"
#include "core/json.h"
#include "core/progress.h"
#include "core/signal.h"
#include "core/timeutil.h"
#include "format/checkpoint_impl.h"
#include "format/safetensors.h"
#include "models/spec.h"
#include "tokenizer/tokenizer.h"

#define SYNTH_STD 0.02      /* init hf: every bf16 matrix and vector */
#define MXFP4_SCALE_E8M0 120 /* init hf: 2^(120-127) = 1/128 */
#define FP4_STD 2.9261749776799064 /* uniform random E2M1 codes: sqrt(mean of the 16 squared values) = sqrt(8.5625) */

/* N(0,1) quantiles at (32768 + i + 0.5) / 65536, i < 32768 (the upper half;
 * the lower half is their negation). */
static double g_quantile[32768];
static pthread_once_t g_quantile_once = PTHREAD_ONCE_INIT;

/* Quantile of N(0,1) at p in (0, 1) by bisection on erfc (exact to double). */
static double normal_quantile(double p)
{
    double lo = -9.0, hi = 9.0;
    for (int i = 0; i < 64; i++) {
        double mid = 0.5 * (lo + hi);
        double cdf = 0.5 * erfc(-mid / sqrt(2.0));
        if (cdf < p) lo = mid; else hi = mid;
    }
    return 0.5 * (lo + hi);
}

static void build_quantiles(void)
{
    for (int i = 0; i < 32768; i++) g_quantile[i] = normal_quantile((32768.0 + i + 0.5) / 65536.0);
}

/* bf16 tables of N(0, std^2) quantiles, one per distinct std, built on first
 * use and kept for the life of the process (fill rules point at them). */
#define MAX_TABLES 64
typedef struct normal_table {
    double std;
    uint16_t v[65536];
} normal_table;
static normal_table *g_tables[MAX_TABLES];
static int g_ntables;
static pthread_mutex_t g_tables_mu = PTHREAD_MUTEX_INITIALIZER;

static dpb_status table_for(double std, const uint16_t **out)
{
    pthread_once(&g_quantile_once, build_quantiles);
    pthread_mutex_lock(&g_tables_mu);
    const uint16_t *found = NULL;
    for (int i = 0; i < g_ntables && !found; i++)
        if (g_tables[i]->std == std) found = g_tables[i]->v;
    if (!found && g_ntables < MAX_TABLES) {
        normal_table *t = malloc(sizeof *t);
        if (t) {
            t->std = std;
            for (int i = 0; i < 32768; i++) {
                double q = g_quantile[i] * std;
                t->v[32768 + i] = dpb_f32_to_bf16((float)q);
                t->v[32767 - i] = dpb_f32_to_bf16((float)-q);
            }
            g_tables[g_ntables++] = t;
            found = t->v;
        }
    }
    int full = g_ntables >= MAX_TABLES;
    pthread_mutex_unlock(&g_tables_mu);
    *out = found;
    if (!found)
        return full ? dpb_error_set(DPB_E_RANGE, "synth: more than %d distinct weight spreads", MAX_TABLES)
                    : dpb_error_set(DPB_E_NOMEM, "out of memory");
    return DPB_OK;
}

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t tensor_key(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a over the name */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    return mix64(h ^ mix64(seed + 0x9e3779b97f4a7c15ull));
}

dpb_status dpb_synth_init_parse(const char *s, dpb_synth_init *out)
{
    if (s && strcmp(s, "hf") == 0) *out = DPB_SYNTH_INIT_HF;
    else if (s && strcmp(s, "scaled") == 0) *out = DPB_SYNTH_INIT_SCALED;
    else return dpb_error_set(DPB_E_ARG, "init '%s': expected hf or scaled", s ? s : "");
    return DPB_OK;
}

const char *dpb_synth_init_name(dpb_synth_init init) { return init == DPB_SYNTH_INIT_SCALED ? "scaled" : "hf"; }

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The spread of tensor t under init: for bf16 normals the std, for MXFP4
 * scales the E8M0 byte (std of the weights = FP4_STD * 2^(byte - 127)).
 *
 * hf: N(0, 0.02) everywhere (transformers' initializer_range), MXFP4 experts
 *     uniform codes under 2^-7 (std 0.0229).
 * scaled (standard practice for a well-conditioned pre-norm transformer):
 *   - matrices: fan-in scaling, std = 1 / sqrt(fan_in) (LeCun; gain 1), fan_in
 *     the input width (the last dim of a [out, in] Linear; dim 1 of gpt-oss's
 *     bf16 experts, stored [E, in, out]);
 *   - residual-branch outputs (o_proj, down_proj, experts' down): also divided
 *     by sqrt(2 x layers) (GPT-2, Megatron-LM), layers = the model's count;
 *   - token embedding N(0, 1): the residual stream starts at unit RMS, the
 *     scale the RMSNorms hand every sublayer (PaLM, T5);
 *   - lm_head 1 / sqrt(hidden) (fan-in): logits of unit spread;
 *   - biases and gpt-oss attention sinks keep N(0, 0.02);
 *   - MXFP4 experts: the E8M0 scale is the power of two nearest (in log2) to
 *     the std above divided by FP4_STD.
 * Norm weights are 1 and zeros 0 under both. */
static void tensor_spread(const dpb_tensor_spec *t, const dpb_model_config *cfg, dpb_synth_init init, double *std, int *e8m0)
{
    *std = SYNTH_STD;
    *e8m0 = MXFP4_SCALE_E8M0;
    if (init != DPB_SYNTH_INIT_SCALED) return;
    const char *n = t->name;
    double layers = cfg->num_layers > 0 ? (double)cfg->num_layers : 1.0;
    double res = 1.0 / sqrt(2.0 * layers);
    if (t->init == DPB_INIT_MXFP4_SCALES) {
        bool down = strstr(n, "down_proj") != NULL;
        double fan_in = (double)(down ? cfg->intermediate_size : cfg->hidden_size);
        double target = (down ? res : 1.0) / sqrt(fan_in > 0 ? fan_in : 1.0);
        long e = 127 + lround(log2(target / FP4_STD));
        *e8m0 = (int)(e < 1 ? 1 : e > 254 ? 254 : e);
        return;
    }
    if (t->init != DPB_INIT_NORMAL) return;
    if (ends_with(n, "bias") || ends_with(n, ".sinks") || t->ndim < 2) return; /* .bias, experts' _bias */
    if (strcmp(n, "model.embed_tokens.weight") == 0) { *std = 1.0; return; }
    int64_t fan_in = t->per_expert ? t->shape[1] : t->shape[t->ndim - 1];
    if (fan_in < 1) fan_in = 1;
    *std = 1.0 / sqrt((double)fan_in);
    if (ends_with(n, "o_proj.weight") || ends_with(n, "down_proj.weight") || ends_with(n, "experts.down_proj"))
        *std *= res;
}

double dpb_synth_tensor_std(const dpb_tensor_spec *t, const dpb_model_config *cfg, dpb_synth_init init)
{
    double std;
    int e8m0;
    tensor_spread(t, cfg, init, &std, &e8m0);
    switch (t->init) {
    case DPB_INIT_ONES:
    case DPB_INIT_ZEROS: return 0.0;
    case DPB_INIT_MXFP4_SCALES:
    case DPB_INIT_MXFP4_BLOCKS: {
        if (t->init == DPB_INIT_MXFP4_BLOCKS) {
            /* the blocks' spread is set by their scales tensor */
            dpb_tensor_spec s = *t;
            s.init = DPB_INIT_MXFP4_SCALES;
            tensor_spread(&s, cfg, init, &std, &e8m0);
        }
        return FP4_STD * ldexp(1.0, e8m0 - 127);
    }
    case DPB_INIT_NORMAL:
    default: return std;
    }
}

dpb_status dpb_synth_tensor_rule(const dpb_tensor_spec *t, const dpb_model_config *cfg, dpb_synth_init init,
                                 uint64_t seed, dpb_fill_rule *r)
{
    double std;
    int e8m0;
    tensor_spread(t, cfg, init, &std, &e8m0);
    memset(r, 0, sizeof *r);
    switch (t->init) {
    case DPB_INIT_ONES: r->kind = DPB_FILL_CONST; r->word = 0x3f803f803f803f80ull; break;
    case DPB_INIT_ZEROS: r->kind = DPB_FILL_CONST; r->word = 0; break;
    case DPB_INIT_MXFP4_SCALES: r->kind = DPB_FILL_CONST; r->word = 0x0101010101010101ull * (uint64_t)e8m0; break;
    case DPB_INIT_MXFP4_BLOCKS: r->kind = DPB_FILL_HASH; r->key = tensor_key(seed, t->name); break;
    case DPB_INIT_NORMAL:
    default: {
        r->kind = DPB_FILL_NORMAL;
        r->key = tensor_key(seed, t->name);
        dpb_status st = table_for(std, &r->table);
        if (st) return dpb_error_prefix(st, "synth: tensor %s", t->name);
        break;
    }
    }
    return DPB_OK;
}

void dpb_synth_fill(const dpb_tensor_spec *t, uint64_t seed, uint64_t off, uint64_t n, void *dst)
{
    /* init hf; cfg is only read by init scaled */
    static const dpb_model_config none;
    dpb_fill_rule r;
    if (dpb_synth_tensor_rule(t, &none, DPB_SYNTH_INIT_HF, seed, &r) != DPB_OK) {
        memset(dst, 0, (size_t)n);
        return;
    }
    dpb_synth_fill_rule(&r, off, n, dst);
}

bool dpb_synth_is_spec(const char *spec) { return spec && strncmp(spec, "synth:", 6) == 0; }

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const dpb_tensor *)a)->name, ((const dpb_tensor *)b)->name);
}

static _Atomic bool g_deferred;
void dpb_synth_set_deferred(bool on) { g_deferred = on; }
bool dpb_synth_deferred(void) { return g_deferred; }

dpb_status dpb_synth_placed(const dpb_checkpoint *src, dpb_synth_place_fn place, void *ctx, dpb_checkpoint **out)
{
    *out = NULL;
    if (!src->synthetic) return dpb_error_set(DPB_E_ARG, "synth: not a synthetic checkpoint");
    dpb_tensor_specs specs = {0};
    dpb_status st = dpb_model_tensor_specs(&src->cfg, &specs);
    if (st) return st;
    dpb_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) { dpb_tensor_specs_free(&specs); return dpb_error_set(DPB_E_NOMEM, "out of memory"); }
    ck->cfg = src->cfg;
    ck->gen = src->gen;
    ck->synthetic = true;
    ck->synth_seed = src->synth_seed;
    ck->synth_init = src->synth_init;
    ck->synth_preset = strdup(src->synth_preset ? src->synth_preset : "synth");
    ck->tensors = calloc(specs.n ? specs.n : 1, sizeof *ck->tensors);
    ck->names = calloc(specs.n ? specs.n : 1, sizeof *ck->names);
    if (!ck->synth_preset || !ck->tensors || !ck->names) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto fail; }
    for (size_t i = 0; i < specs.n; i++) {
        dpb_tensor *t = &ck->tensors[i];
        ck->n_tensors = i + 1;
        if (!(ck->names[i] = strdup(specs.t[i].name))) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto fail; }
        t->name = ck->names[i];
        t->dtype = specs.t[i].dtype;
        t->ndim = specs.t[i].ndim;
        for (int d = 0; d < t->ndim; d++) t->shape[d] = specs.t[i].shape[d];
        t->nbytes = specs.t[i].nbytes;
        dpb_fill_rule r;
        if ((st = dpb_synth_tensor_rule(&specs.t[i], &src->cfg, (dpb_synth_init)src->synth_init, src->synth_seed, &r)))
            goto fail;
        const void *p = NULL;
        if ((st = place(ctx, &r, t->nbytes, &p))) { st = dpb_error_prefix(st, "synth: tensor %s", t->name); goto fail; }
        t->data = p;
    }
    qsort(ck->tensors, ck->n_tensors, sizeof *ck->tensors, cmp_tensor);
    dpb_tensor_specs_free(&specs);
    *out = ck;
    return DPB_OK;
fail:
    dpb_tensor_specs_free(&specs);
    dpb_checkpoint_close(ck);
    return st;
}

void dpb_synth_fill_rule(const dpb_fill_rule *r, uint64_t off, uint64_t n, void *dst)
{
    uint8_t *d = dst;
    uint64_t w0 = off / 8, nw = n / 8;
    for (uint64_t i = 0; i <= nw; i++) {
        uint64_t w = w0 + i, v;
        if (i == nw && n % 8 == 0) break;
        if (r->kind == DPB_FILL_CONST) v = r->word;
        else {
            uint64_t h = mix64(r->key + w * 0x9e3779b97f4a7c15ull);
            v = r->kind == DPB_FILL_HASH ? h
                : (uint64_t)r->table[h & 0xffff] | (uint64_t)r->table[(h >> 16) & 0xffff] << 16 |
                      (uint64_t)r->table[(h >> 32) & 0xffff] << 32 | (uint64_t)r->table[h >> 48] << 48;
        }
        memcpy(d + 8 * i, &v, i == nw ? (size_t)(n % 8) : 8);
    }
}

/* "synth:PRESET[:SEED][:INIT]": SEED a whole number, INIT hf or scaled. */
static dpb_status parse_spec(const char *spec, char *preset, size_t plen, uint64_t *seed, dpb_synth_init *init)
{
    const char *p = spec + 6;
    const char *colon = strchr(p, ':');
    size_t n = colon ? (size_t)(colon - p) : strlen(p);
    if (n == 0 || n >= plen)
        return dpb_error_set(DPB_E_ARG, "'%s': expected synth:PRESET[:SEED][:INIT]", spec);
    memcpy(preset, p, n);
    preset[n] = 0;
    *seed = DPB_SYNTH_DEFAULT_SEED;
    *init = DPB_SYNTH_INIT_HF;
    bool have_seed = false, have_init = false;
    while (colon) {
        const char *f = colon + 1;
        colon = strchr(f, ':');
        size_t k = colon ? (size_t)(colon - f) : strlen(f);
        char field[32];
        if (k == 0 || k >= sizeof field)
            return dpb_error_set(DPB_E_ARG, "'%s': expected synth:PRESET[:SEED][:INIT] (SEED a whole number, INIT hf or scaled)", spec);
        memcpy(field, f, k);
        field[k] = 0;
        if (field[0] >= '0' && field[0] <= '9' && !have_seed && !have_init) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(field, &end, 10);
            if (errno || *end) return dpb_error_set(DPB_E_ARG, "'%s': the seed must be a whole number", spec);
            *seed = v;
            have_seed = true;
        } else if (!have_init && (strcmp(field, "hf") == 0 || strcmp(field, "scaled") == 0)) {
            dpb_synth_init_parse(field, init);
            have_init = true;
        } else if (field[0] == '-' || (field[0] >= '0' && field[0] <= '9')) {
            return dpb_error_set(DPB_E_ARG, "'%s': the seed must be a whole number, before the init", spec);
        } else {
            return dpb_error_set(DPB_E_ARG, "'%s': init '%s': expected hf or scaled, after an optional whole-number seed "
                                "(synth:PRESET[:SEED][:INIT])", spec, field);
        }
    }
    return DPB_OK;
}

static bool is_tiny(const char *preset) { return strstr(preset, "-tiny") != NULL; }

/* Sizes cfg's vocabulary to the tokenizer: tiny presets take its size, the
 * others grow to it if it is larger (their published vocabularies are padded). */

static dpb_status size_vocab(const char *preset, const char *tok_path, dpb_model_config *cfg)
{
    dpb_tokenizer *tok;
    dpb_status st = dpb_tokenizer_load(tok_path, &tok);
    if (st) return st;
    int64_t n = (int64_t)dpb_tokenizer_vocab_size(tok);
    dpb_tokenizer_free(tok);
    if (n <= 0 || n > (1 << 24)) return dpb_error_set(DPB_E_FORMAT, "%s: vocabulary of %lld tokens", tok_path, (long long)n);
    if (is_tiny(preset) || n > cfg->vocab_size) cfg->vocab_size = n;
    int k = 0;
    for (int i = 0; i < cfg->n_eos; i++) if (cfg->eos_ids[i] < cfg->vocab_size) cfg->eos_ids[k++] = cfg->eos_ids[i];
    cfg->n_eos = k;
    if (cfg->bos_token_id >= cfg->vocab_size) cfg->bos_token_id = -1;
    if (cfg->pad_token_id >= cfg->vocab_size) cfg->pad_token_id = -1;
    return DPB_OK;
}

static void preset_generation(const char *preset, const dpb_model_config *cfg, dpb_generation_config *g)
{
    dpb_generation_config_default(cfg, g);
    if (strncmp(preset, "gpt-oss-", 8) == 0 && cfg->vocab_size > 200012) {
        g->bos_token_id = 199998;
        g->n_eos = 3;
        g->eos_ids[0] = 200002;
        g->eos_ids[1] = 199999;
        g->eos_ids[2] = 200012;
        g->pad_token_id = 199999;
    } else if (strncmp(preset, "qwen3-", 6) == 0 && cfg->vocab_size > 151645) {
        g->n_eos = 2;
        g->eos_ids[0] = 151645;
        g->eos_ids[1] = 151643;
        g->pad_token_id = 151643;
        g->do_sample = true;
        g->temperature = 0.6;
        g->top_k = 20;
        g->top_p = 0.95;
    }
}



dpb_status dpb_synth_open(const char *spec, const dpb_checkpoint_opts *opts, dpb_checkpoint **out)
{
    *out = NULL;
    char preset[64];
    uint64_t seed = DPB_SYNTH_DEFAULT_SEED;
    dpb_synth_init init = DPB_SYNTH_INIT_HF;
    dpb_status st = parse_spec(spec, preset, sizeof preset, &seed, &init);
    if (st) return st;
    dpb_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    dpb_tensor_specs specs = {0};
    st = dpb_synth_preset_config(preset, opts ? opts->layers : 0, opts ? opts->experts_format : 0, &ck->cfg);
    if (st) goto fail;
    if (opts && opts->tokenizer) {
        st = dpb_checkpoint_resolve_tokenizer(opts->tokenizer, &ck->tokenizer_path);
        if (st) goto fail;
        st = size_vocab(preset, ck->tokenizer_path, &ck->cfg);
        if (st) goto fail;
    }
    preset_generation(preset, &ck->cfg, &ck->gen);
    ck->synthetic = true;
    ck->synth_preset = strdup(preset);
    ck->synth_seed = seed;
    ck->synth_init = (int)init;
    st = dpb_model_tensor_specs(&ck->cfg, &specs);
    if (st) goto fail;
    ck->tensors = calloc(specs.n, sizeof *ck->tensors);
    ck->names = calloc(specs.n, sizeof *ck->names);
    uint64_t *offs = calloc(specs.n, sizeof *offs);
    if (!ck->tensors || !ck->names || !offs || !ck->synth_preset) {
        free(offs);
        st = dpb_error_set(DPB_E_NOMEM, "out of memory");
        goto fail;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < specs.n; i++) {
        offs[i] = total;
        uint64_t padded = (specs.t[i].nbytes + 63) & ~63ull;
        if (!dpb_add_u64(total, padded, &total)) { free(offs); st = dpb_error_set(DPB_E_RANGE, "%s: too large", spec); goto fail; }
    }
    if (!(opts && opts->no_weights) && !g_deferred) {
        dpb_fill_rule *rules = calloc(specs.n ? specs.n : 1, sizeof *rules);
        if (!rules) { free(offs); st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto fail; }
        for (size_t i = 0; i < specs.n && !st; i++) st = dpb_synth_tensor_rule(&specs.t[i], &ck->cfg, init, seed, &rules[i]);
        if (st) { free(rules); free(offs); goto fail; }
        if (total > (uint64_t)SIZE_MAX || posix_memalign(&ck->arena, 64, (size_t)(total ? total : 64)) != 0) {
            free(offs);
            free(rules);
            st = dpb_error_set(DPB_E_NOMEM, "%s: cannot allocate %.2f GB for the weights", spec, total / 1e9);
            goto fail;
        }
        ck->arena_bytes = (size_t)total;
        /* Fill in 4 MiB pieces across threads. */
        const uint64_t piece = 4u << 20;
        uint64_t npieces = 0;
        for (size_t i = 0; i < specs.n; i++) npieces += (specs.t[i].nbytes + piece - 1) / piece;
        uint64_t *pt = malloc(npieces * 2 * sizeof *pt);
        if (!pt) { free(offs); free(rules); st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto fail; }
        uint64_t k = 0;
        for (size_t i = 0; i < specs.n; i++)
            for (uint64_t o = 0; o < specs.t[i].nbytes; o += piece) { pt[2 * k] = i; pt[2 * k + 1] = o; k++; }
        #pragma omp parallel for schedule(dynamic, 1)
        for (uint64_t j = 0; j < npieces; j++) {
            const dpb_tensor_spec *t = &specs.t[pt[2 * j]];
            uint64_t o = pt[2 * j + 1], n = t->nbytes - o < piece ? t->nbytes - o : piece;
            dpb_synth_fill_rule(&rules[pt[2 * j]], o, n, (uint8_t *)ck->arena + offs[pt[2 * j]] + o);
        }
        free(pt);
        free(rules);
    }
    for (size_t i = 0; i < specs.n; i++) {
        dpb_tensor *t = &ck->tensors[i];
        ck->names[i] = strdup(specs.t[i].name);
        if (!ck->names[i]) { free(offs); st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto fail; }
        t->name = ck->names[i];
        t->dtype = specs.t[i].dtype;
        t->ndim = specs.t[i].ndim;
        for (int d = 0; d < t->ndim; d++) t->shape[d] = specs.t[i].shape[d];
        t->nbytes = specs.t[i].nbytes;
        t->data = ck->arena ? (const uint8_t *)ck->arena + offs[i] : NULL;
    }
    ck->n_tensors = specs.n;
    free(offs);
    qsort(ck->tensors, ck->n_tensors, sizeof *ck->tensors, cmp_tensor);
    dpb_tensor_specs_free(&specs);
    *out = ck;
    return DPB_OK;
fail:
    dpb_tensor_specs_free(&specs);
    dpb_checkpoint_close(ck);
    return st;
}

/* ---- writing a folder ---- */

typedef struct shard_plan {
    size_t first, count;       /* tensor range in spec order */
    uint64_t data_bytes, prefix_len;
    uint8_t *prefix;
    uint64_t *offsets;         /* per tensor in this shard */
    char name[64];
    int fd;
} shard_plan;

typedef struct work_item {
    size_t shard, tensor;      /* tensor index in spec order */
    uint64_t off, n;
} work_item;

static dpb_status write_generation_config(const char *dir, const dpb_generation_config *g)
{
    cJSON *o = cJSON_CreateObject();
    if (g->bos_token_id >= 0) cJSON_AddNumberToObject(o, "bos_token_id", (double)g->bos_token_id);
    cJSON_AddBoolToObject(o, "do_sample", g->do_sample);
    if (g->n_eos == 1) cJSON_AddNumberToObject(o, "eos_token_id", (double)g->eos_ids[0]);
    else if (g->n_eos > 1) {
        cJSON *a = cJSON_AddArrayToObject(o, "eos_token_id");
        for (int i = 0; i < g->n_eos; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)g->eos_ids[i]));
    }
    if (g->pad_token_id >= 0) cJSON_AddNumberToObject(o, "pad_token_id", (double)g->pad_token_id);
    if (g->do_sample) {
        cJSON_AddNumberToObject(o, "temperature", g->temperature);
        if (g->top_k) cJSON_AddNumberToObject(o, "top_k", (double)g->top_k);
        cJSON_AddNumberToObject(o, "top_p", g->top_p);
    }
    cJSON_AddStringToObject(o, "transformers_version", "4.55.0");
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    dpb_status st = dpb_file_write_text_in(dir, "generation_config.json", s);
    cJSON_free(s);
    return st;
}

static dpb_status copy_tokenizer_files(const char *tok_path, const char *out_dir)
{
    /* Copy the tokenizer file and its neighbours that describe it. */
    char *dir = strdup(tok_path);
    if (!dir) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : tok_path;
    if (slash) *slash = 0; else strcpy(dir, ".");
    const char *names[] = {base, "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"};
    dpb_status st = DPB_OK;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !st; i++) {
        if (i > 0 && strcmp(names[i], base) == 0) continue;
        char *src = NULL, *dst = NULL;
        st = dpb_path_join(dir, names[i], &src);
        if (!st) st = dpb_path_join(out_dir, names[i], &dst);
        if (!st && (i == 0 || dpb_file_exists(src))) st = dpb_file_copy(src, dst);
        free(src);
        free(dst);
    }
    free(dir);
    return st;
}

dpb_status dpb_synth_write(const dpb_synth_write_opts *o, dpb_synth_write_result *res)
{
    memset(res, 0, sizeof *res);
    uint64_t t0 = dpb_now_ns();
    if (o->init != DPB_SYNTH_INIT_HF && o->init != DPB_SYNTH_INIT_SCALED)
        return dpb_error_set(DPB_E_ARG, "synth: init %d: expected hf (0) or scaled (1)", o->init);
    dpb_model_config cfg;
    dpb_status st = dpb_synth_preset_config(o->preset, o->layers, o->experts_format, &cfg);
    if (st) return st;
    char *tok_path = NULL;
    if (o->tokenizer) {
        st = dpb_checkpoint_resolve_tokenizer(o->tokenizer, &tok_path);
        if (!st) st = size_vocab(o->preset, tok_path, &cfg);
        if (st) { free(tok_path); return st; }
    }
    dpb_generation_config gen;
    preset_generation(o->preset, &cfg, &gen);
    st = dpb_dir_create(o->out_dir);
    if (st) { free(tok_path); return st; }

    dpb_tensor_specs specs;
    st = dpb_model_tensor_specs(&cfg, &specs);
    if (st) { free(tok_path); return st; }
    dpb_fill_rule *rules = calloc(specs.n ? specs.n : 1, sizeof *rules);
    if (!rules) { free(tok_path); dpb_tensor_specs_free(&specs); return dpb_error_set(DPB_E_NOMEM, "out of memory"); }
    for (size_t i = 0; i < specs.n && !st; i++)
        st = dpb_synth_tensor_rule(&specs.t[i], &cfg, (dpb_synth_init)o->init, o->seed, &rules[i]);
    if (st) { free(rules); free(tok_path); dpb_tensor_specs_free(&specs); return st; }
    uint64_t max_shard = o->max_shard_bytes ? o->max_shard_bytes : 5000000000ull;

    /* Plan shards: consecutive tensors up to max_shard bytes each. */
    shard_plan *shards = calloc(specs.n, sizeof *shards);
    size_t nsh = 0;
    work_item *items = NULL;
    size_t nitems = 0, capitems = 0;
    if (!shards) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < specs.n; i++) {
        if (nsh == 0 || (shards[nsh - 1].data_bytes + specs.t[i].nbytes > max_shard && shards[nsh - 1].count > 0)) {
            shards[nsh].first = i;
            shards[nsh].fd = -1;
            nsh++;
        }
        shards[nsh - 1].count++;
        shards[nsh - 1].data_bytes += specs.t[i].nbytes;
    }
    uint64_t total_data = 0;
    for (size_t s = 0; s < nsh; s++) {
        shard_plan *sp = &shards[s];
        if (nsh == 1) snprintf(sp->name, sizeof sp->name, "model.safetensors");
        else snprintf(sp->name, sizeof sp->name, "model-%05zu-of-%05zu.safetensors", s + 1, nsh);
        dpb_st_write_entry *we = calloc(sp->count, sizeof *we);
        sp->offsets = calloc(sp->count, sizeof *sp->offsets);
        if (!we || !sp->offsets) { free(we); st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto done; }
        for (size_t k = 0; k < sp->count; k++) {
            const dpb_tensor_spec *t = &specs.t[sp->first + k];
            we[k] = (dpb_st_write_entry){t->name, t->dtype, t->ndim, t->shape};
        }
        const char *mk[] = {"format"}, *mv[] = {"pt"};
        size_t plen;
        st = dpb_safetensors_header_build(we, sp->count, mk, mv, 1, &sp->prefix, &plen, sp->offsets);
        free(we);
        if (st) goto done;
        sp->prefix_len = plen;
        total_data += sp->data_bytes;
    }

    /* Work items of <= 64 MiB, shard by shard. */
    const uint64_t piece = 64u << 20;
    for (size_t s = 0; s < nsh; s++) {
        for (size_t k = 0; k < shards[s].count; k++) {
            const dpb_tensor_spec *t = &specs.t[shards[s].first + k];
            for (uint64_t off = 0; off < t->nbytes; off += piece) {
                if (nitems == capitems) {
                    capitems = capitems ? capitems * 2 : 1024;
                    work_item *ni = realloc(items, capitems * sizeof *items);
                    if (!ni) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto done; }
                    items = ni;
                }
                items[nitems++] = (work_item){s, shards[s].first + k, off, t->nbytes - off < piece ? t->nbytes - off : piece};
            }
        }
    }

    /* Create files (as NAME.partial), write headers, size them. */
    for (size_t s = 0; s < nsh; s++) {
        char tmpname[80], *path;
        snprintf(tmpname, sizeof tmpname, "%s.partial", shards[s].name);
        st = dpb_path_join(o->out_dir, tmpname, &path);
        if (st) goto done;
        shards[s].fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (shards[s].fd < 0) {
            st = dpb_error_set(DPB_E_IO, "%s: cannot create: %s", path, strerror(errno));
            free(path);
            goto done;
        }
        uint64_t fsize = shards[s].prefix_len + shards[s].data_bytes;
        if (pwrite(shards[s].fd, shards[s].prefix, shards[s].prefix_len, 0) != (ssize_t)shards[s].prefix_len ||
            ftruncate(shards[s].fd, (off_t)fsize) != 0) {
            st = dpb_error_set(DPB_E_IO, "%s: cannot write: %s", path, strerror(errno));
            free(path);
            goto done;
        }
        free(path);
    }

    dpb_progress prog;
    dpb_progress_start(&prog, "synth", total_data, "B");
    uint64_t written = 0;
    volatile int failed = 0;
    int fail_errno = 0;
    size_t fail_shard = 0;
    int nthreads = o->threads > 0 ? o->threads : omp_get_max_threads();
    #pragma omp parallel num_threads(nthreads)
    {
        uint8_t *buf = malloc(piece);
        #pragma omp for schedule(dynamic, 1)
        for (size_t j = 0; j < nitems; j++) {
            if (failed || !buf || dpb_interrupted()) {
                if (!buf) failed = 1;
                continue;
            }
            const work_item *w = &items[j];
            const shard_plan *sp = &shards[w->shard];
            dpb_synth_fill_rule(&rules[w->tensor], w->off, w->n, buf);
            uint64_t pos = sp->prefix_len + sp->offsets[w->tensor - sp->first] + w->off;
            uint64_t done_bytes = 0;
            while (done_bytes < w->n) {
                ssize_t r = pwrite(sp->fd, buf + done_bytes, (size_t)(w->n - done_bytes), (off_t)(pos + done_bytes));
                if (r <= 0) {
                    #pragma omp critical(synth_fail)
                    { failed = 1; fail_errno = errno; fail_shard = w->shard; }
                    break;
                }
                done_bytes += (uint64_t)r;
            }
            #pragma omp critical(synth_progress)
            {
                written += w->n;
                dpb_progress_update(&prog, written);
            }
        }
        free(buf);
    }
    dpb_progress_finish(&prog);
    if (dpb_interrupted()) { st = dpb_error_set(DPB_E_INTERRUPTED, "synth: interrupted; partial files removed"); goto done; }
    if (failed) {
        st = fail_errno ? dpb_error_set(DPB_E_IO, "%s/%s: write failed: %s", o->out_dir, shards[fail_shard].name,
                                        strerror(fail_errno))
                        : dpb_error_set(DPB_E_NOMEM, "synth: out of memory for write buffers");
        goto done;
    }
    for (size_t s = 0; s < nsh; s++) {
        char tmpname[80], *from = NULL, *to = NULL;
        snprintf(tmpname, sizeof tmpname, "%s.partial", shards[s].name);
        if (fsync(shards[s].fd) != 0 || close(shards[s].fd) != 0) {
            shards[s].fd = -1;
            st = dpb_error_set(DPB_E_IO, "%s/%s: cannot finish writing: %s", o->out_dir, shards[s].name, strerror(errno));
            goto done;
        }
        shards[s].fd = -1;
        st = dpb_path_join(o->out_dir, tmpname, &from);
        if (!st) st = dpb_path_join(o->out_dir, shards[s].name, &to);
        if (!st && rename(from, to) != 0) st = dpb_error_set(DPB_E_IO, "%s: cannot rename: %s", to, strerror(errno));
        free(from);
        free(to);
        if (st) goto done;
        res->bytes_written += shards[s].prefix_len + shards[s].data_bytes;
    }
    res->shards = (int)nsh;
    if (nsh > 1) {
        cJSON *ix = cJSON_CreateObject();
        cJSON *meta = cJSON_AddObjectToObject(ix, "metadata");
        cJSON_AddNumberToObject(meta, "total_size", (double)total_data);
        cJSON *wm = cJSON_AddObjectToObject(ix, "weight_map");
        for (size_t s = 0; s < nsh; s++)
            for (size_t k = 0; k < shards[s].count; k++)
                cJSON_AddStringToObject(wm, specs.t[shards[s].first + k].name, shards[s].name);
        char *txt = cJSON_Print(ix);
        cJSON_Delete(ix);
        if (!txt) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto done; }
        st = dpb_file_write_text_in(o->out_dir, "model.safetensors.index.json", txt);
        cJSON_free(txt);
        if (st) goto done;
    }
    char *cfg_json;
    st = dpb_config_to_json(&cfg, &cfg_json);
    if (st) goto done;
    st = dpb_file_write_text_in(o->out_dir, "config.json", cfg_json);
    free(cfg_json);
    if (!st) st = write_generation_config(o->out_dir, &gen);
    if (!st && tok_path) st = copy_tokenizer_files(tok_path, o->out_dir);
    res->seconds = (double)(dpb_now_ns() - t0) / 1e9;
done:
    for (size_t s = 0; shards && s < nsh; s++) {
        if (shards[s].fd >= 0) {
            close(shards[s].fd);
            char tmpname[80], *path;
            snprintf(tmpname, sizeof tmpname, "%s.partial", shards[s].name);
            if (dpb_path_join(o->out_dir, tmpname, &path) == DPB_OK) { unlink(path); free(path); }
        }
        free(shards[s].prefix);
        free(shards[s].offsets);
    }
    free(shards);
    free(items);
    free(rules);
    free(tok_path);
    dpb_tensor_specs_free(&specs);
    return st;
}
