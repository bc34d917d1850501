#include "models/spec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/checked.h"

const char *dpb_component_name(dpb_component c)
{
    static const char *names[DPB_COMP_COUNT] = {"embeddings", "attention", "norms", "router",
                                                "experts", "mlp", "lm_head"};
    return (c >= 0 && c < DPB_COMP_COUNT) ? names[c] : "?";
}

typedef struct builder {
    dpb_tensor_specs *s;
    size_t cap;
    dpb_status st;
} builder;

static void add(builder *b, dpb_component comp, int layer, dpb_dtype dt, dpb_init_kind init, bool per_expert,
                int ndim, const int64_t *shape, const char *fmt, ...) __attribute__((format(printf, 9, 10)));

static void add(builder *b, dpb_component comp, int layer, dpb_dtype dt, dpb_init_kind init, bool per_expert,
                int ndim, const int64_t *shape, const char *fmt, ...)
{
    if (b->st) return;
    if (b->s->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        dpb_tensor_spec *t = realloc(b->s->t, nc * sizeof *t);
        if (!t) { b->st = dpb_error_set(DPB_E_NOMEM, "out of memory"); return; }
        b->s->t = t;
        b->cap = nc;
    }
    dpb_tensor_spec *t = &b->s->t[b->s->n];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->dtype = dt;
    t->ndim = ndim;
    uint64_t elems = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        if (!dpb_mul_u64(elems, (uint64_t)shape[i], &elems)) { b->st = dpb_error_set(DPB_E_RANGE, "%s: size overflows", t->name); return; }
    }
    if (!dpb_mul_u64(elems, dpb_dtype_size(dt), &t->nbytes)) { b->st = dpb_error_set(DPB_E_RANGE, "%s: size overflows", t->name); return; }
    t->params = init == DPB_INIT_MXFP4_BLOCKS ? elems * 2 : init == DPB_INIT_MXFP4_SCALES ? 0 : elems;
    t->component = comp;
    t->layer = layer;
    t->init = init;
    t->per_expert = per_expert;
    b->s->n++;
}


dpb_status dpb_model_tensor_specs(const dpb_model_config *c, dpb_tensor_specs *out)
{
    memset(out, 0, sizeof *out);
    builder b = {out, 0, DPB_OK};
    const int64_t V = c->vocab_size, H = c->hidden_size, I = c->intermediate_size;
    const int64_t q = c->num_heads * c->head_dim, kv = c->num_kv_heads * c->head_dim, E = c->num_experts;
    const dpb_dtype BF = DPB_DT_BF16;

    add(&b, DPB_COMP_EMBED, -1, BF, DPB_INIT_NORMAL, false, 2, (int64_t[]){V, H}, "model.embed_tokens.weight");
    for (int L = 0; L < (int)c->num_layers; L++) {
        const char *p = "model.layers";
        add(&b, DPB_COMP_NORM, L, BF, DPB_INIT_ONES, false, 1, (int64_t[]){H}, "%s.%d.input_layernorm.weight", p, L);
        add(&b, DPB_COMP_NORM, L, BF, DPB_INIT_ONES, false, 1, (int64_t[]){H}, "%s.%d.post_attention_layernorm.weight", p, L);
        add(&b, DPB_COMP_ATTN, L, BF, DPB_INIT_NORMAL, false, 2, (int64_t[]){q, H}, "%s.%d.self_attn.q_proj.weight", p, L);
        add(&b, DPB_COMP_ATTN, L, BF, DPB_INIT_NORMAL, false, 2, (int64_t[]){kv, H}, "%s.%d.self_attn.k_proj.weight", p, L);
        add(&b, DPB_COMP_ATTN, L, BF, DPB_INIT_NORMAL, false, 2, (int64_t[]){kv, H}, "%s.%d.self_attn.v_proj.weight", p, L);
        add(&b, DPB_COMP_ATTN, L, BF, DPB_INIT_NORMAL, false, 2, (int64_t[]){H, q}, "%s.%d.self_attn.o_proj.weight", p, L);
        if (c->attention_bias) {
            add(&b, DPB_COMP_ATTN, L, BF, DPB_INIT_NORMAL, false, 1, (int64_t[]){q}, "%s.%d.self_attn.q_proj.bias", p, L);
            add(&b, DPB_COMP_ATTN, L, BF, DPB_INIT_NORMAL, false, 1, (int64_t[]){kv}, "%s.%d.self_attn.k_proj.bias", p, L);
            add(&b, DPB_COMP_ATTN, L, BF, DPB_INIT_NORMAL, false, 1, (int64_t[]){kv}, "%s.%d.self_attn.v_proj.bias", p, L);
            add(&b, DPB_COMP_ATTN, L, BF, DPB_INIT_NORMAL, false, 1, (int64_t[]){H}, "%s.%d.self_attn.o_proj.bias", p, L);
        }
        if (c->arch == DPB_ARCH_QWEN3) {
            add(&b, DPB_COMP_NORM, L, BF, DPB_INIT_ONES, false, 1, (int64_t[]){c->head_dim}, "%s.%d.self_attn.q_norm.weight", p, L);
            add(&b, DPB_COMP_NORM, L, BF, DPB_INIT_ONES, false, 1, (int64_t[]){c->head_dim}, "%s.%d.self_attn.k_norm.weight", p, L);
        }
        if (c->arch == DPB_ARCH_GPT_OSS) {
            add(&b, DPB_COMP_ATTN, L, BF, DPB_INIT_NORMAL, false, 1, (int64_t[]){c->num_heads}, "%s.%d.self_attn.sinks", p, L);
            add(&b, DPB_COMP_ROUTER, L, BF, DPB_INIT_NORMAL, false, 2, (int64_t[]){E, H}, "%s.%d.mlp.router.weight", p, L);
            add(&b, DPB_COMP_ROUTER, L, BF, DPB_INIT_NORMAL, false, 1, (int64_t[]){E}, "%s.%d.mlp.router.bias", p, L);
            if (c->experts_format == DPB_EXPERTS_MXFP4) {
                add(&b, DPB_COMP_EXPERTS, L, DPB_DT_U8, DPB_INIT_MXFP4_BLOCKS, true, 4, (int64_t[]){E, 2 * I, H / 32, 16},
                    "%s.%d.mlp.experts.gate_up_proj_blocks", p, L);
                add(&b, DPB_COMP_EXPERTS, L, DPB_DT_U8, DPB_INIT_MXFP4_SCALES, true, 3, (int64_t[]){E, 2 * I, H / 32},
                    "%s.%d.mlp.experts.gate_up_proj_scales", p, L);
            } else {
                add(&b, DPB_COMP_EXPERTS, L, BF, DPB_INIT_NORMAL, true, 3, (int64_t[]){E, H, 2 * I},
                    "%s.%d.mlp.experts.gate_up_proj", p, L);
            }
            add(&b, DPB_COMP_EXPERTS, L, BF, DPB_INIT_NORMAL, true, 2, (int64_t[]){E, 2 * I},
                "%s.%d.mlp.experts.gate_up_proj_bias", p, L);
            if (c->experts_format == DPB_EXPERTS_MXFP4) {
                add(&b, DPB_COMP_EXPERTS, L, DPB_DT_U8, DPB_INIT_MXFP4_BLOCKS, true, 4, (int64_t[]){E, H, I / 32, 16},
                    "%s.%d.mlp.experts.down_proj_blocks", p, L);
                add(&b, DPB_COMP_EXPERTS, L, DPB_DT_U8, DPB_INIT_MXFP4_SCALES, true, 3, (int64_t[]){E, H, I / 32},
                    "%s.%d.mlp.experts.down_proj_scales", p, L);
            } else {
                add(&b, DPB_COMP_EXPERTS, L, BF, DPB_INIT_NORMAL, true, 3, (int64_t[]){E, I, H},
                    "%s.%d.mlp.experts.down_proj", p, L);
            }
            add(&b, DPB_COMP_EXPERTS, L, BF, DPB_INIT_NORMAL, true, 2, (int64_t[]){E, H},
                "%s.%d.mlp.experts.down_proj_bias", p, L);
        } else {
            add(&b, DPB_COMP_MLP, L, BF, DPB_INIT_NORMAL, false, 2, (int64_t[]){I, H}, "%s.%d.mlp.gate_proj.weight", p, L);
            add(&b, DPB_COMP_MLP, L, BF, DPB_INIT_NORMAL, false, 2, (int64_t[]){I, H}, "%s.%d.mlp.up_proj.weight", p, L);
            add(&b, DPB_COMP_MLP, L, BF, DPB_INIT_NORMAL, false, 2, (int64_t[]){H, I}, "%s.%d.mlp.down_proj.weight", p, L);
            if (c->mlp_bias) {
                add(&b, DPB_COMP_MLP, L, BF, DPB_INIT_NORMAL, false, 1, (int64_t[]){I}, "%s.%d.mlp.gate_proj.bias", p, L);
                add(&b, DPB_COMP_MLP, L, BF, DPB_INIT_NORMAL, false, 1, (int64_t[]){I}, "%s.%d.mlp.up_proj.bias", p, L);
                add(&b, DPB_COMP_MLP, L, BF, DPB_INIT_NORMAL, false, 1, (int64_t[]){H}, "%s.%d.mlp.down_proj.bias", p, L);
            }
        }
    }
    add(&b, DPB_COMP_NORM, -1, BF, DPB_INIT_ONES, false, 1, (int64_t[]){H}, "model.norm.weight");
    if (!c->tie_word_embeddings)
        add(&b, DPB_COMP_LM_HEAD, -1, BF, DPB_INIT_NORMAL, false, 2, (int64_t[]){V, H}, "lm_head.weight");
    if (b.st) dpb_tensor_specs_free(out);
    return b.st;
}

void dpb_tensor_specs_free(dpb_tensor_specs *s)
{
    free(s->t);
    s->t = NULL;
    s->n = 0;
}

static int cmp_spec_name(const void *a, const void *b)
{
    return strcmp(((const dpb_tensor_spec *)a)->name, ((const dpb_tensor_spec *)b)->name);
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, len - k, "[");
    for (int i = 0; i < ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < len) snprintf(buf + k, len - k, "]");
}

/* Appends to a bounded message; keeps count of what did not fit. */
typedef struct msgbuf { char s[900]; size_t len; int items, dropped; } msgbuf;
static void msg_add(msgbuf *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg_add(msgbuf *m, const char *fmt, ...)
{
    char item[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(item, sizeof item, fmt, ap);
    va_end(ap);
    size_t n = strlen(item);
    if (m->len + n + 3 < sizeof m->s - 40) {
        m->len += (size_t)snprintf(m->s + m->len, sizeof m->s - m->len, "%s%s", m->items ? "; " : "", item);
        m->items++;
    } else m->dropped++;
}

dpb_status dpb_model_bind_check(const dpb_model_config *cfg, const dpb_tensor_desc *found, size_t n, const char *what)
{
    dpb_tensor_specs specs;
    dpb_status st = dpb_model_tensor_specs(cfg, &specs);
    if (st) return st;
    qsort(specs.t, specs.n, sizeof *specs.t, cmp_spec_name);
    char *seen = calloc(specs.n ? specs.n : 1, 1);
    if (!seen) { dpb_tensor_specs_free(&specs); return dpb_error_set(DPB_E_NOMEM, "out of memory"); }
    msgbuf m = {{0}, 0, 0, 0};
    int problems = 0;
    for (size_t i = 0; i < n; i++) {
        dpb_tensor_spec key;
        snprintf(key.name, sizeof key.name, "%s", found[i].name);
        dpb_tensor_spec *s = strlen(found[i].name) < sizeof key.name
                                 ? bsearch(&key, specs.t, specs.n, sizeof *specs.t, cmp_spec_name) : NULL;
        if (!s) {
            problems++;
            msg_add(&m, "unexpected tensor '%.120s'", found[i].name);
            continue;
        }
        seen[s - specs.t] = 1;
        bool shape_ok = s->ndim == found[i].ndim;
        for (int d = 0; shape_ok && d < s->ndim; d++) shape_ok = s->shape[d] == found[i].shape[d];
        if (!shape_ok || s->dtype != found[i].dtype) {
            char want[96], got[96];
            shape_str(want, sizeof want, s->ndim, s->shape);
            shape_str(got, sizeof got, found[i].ndim, found[i].shape);
            problems++;
            msg_add(&m, "tensor '%s' is %s %s, expected %s %s", s->name, dpb_dtype_name(found[i].dtype), got,
                    dpb_dtype_name(s->dtype), want);
        }
    }
    for (size_t i = 0; i < specs.n; i++) {
        if (!seen[i]) {
            problems++;
            msg_add(&m, "missing tensor '%s'", specs.t[i].name);
        }
    }
    if (problems) {
        if (m.dropped) snprintf(m.s + m.len, sizeof m.s - m.len, "; and %d more", m.dropped);
        st = dpb_error_set(DPB_E_FORMAT, "%s: %d tensor problem%s for %s: %s", what, problems, problems > 1 ? "s" : "",
                           dpb_arch_name(cfg->arch), m.s);
    }
    free(seen);
    dpb_tensor_specs_free(&specs);
    return st;
}
