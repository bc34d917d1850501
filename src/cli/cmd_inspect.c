#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "cli/cli.h"
#include "format/checkpoint.h"
#include "models/inspect.h"
#include "synth/synth.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deploybench inspect (DIR | synth:PRESET | --preset NAME) [--context N] [--batch B]\n"
            "                           [--gpu-mem GiB] [--layers N] [--experts mxfp4|bf16] [--json]\n\n"
            "Accounts for every byte of a model: parameters total and active per token (MoE: the top-k experts,\n"
            "attention, router, norms and lm_head, not the embedding table; dense: all), bytes by dtype and component,\n"
            "KV-cache bytes per token (layers that grow with context) and fixed (sliding-window layers at full\n"
            "window), KV and total memory at the given context and batch, and whether it fits.\n"
            "A folder is read and its tensors are checked against the architecture first.\n\n"
            "  --context N     tokens per sequence (default 2048)\n"
            "  --batch B       sequences (default 1)\n"
            "  --gpu-mem GiB   device memory to fit in (default 80)\n"
            "  --layers N, --experts FMT   preset overrides, as for synth\n"
            "  --json          one JSON object (keys: architecture, params_total, params_active, weight_bytes,\n"
            "                  kv_bytes_per_token, kv_bytes_fixed, kv_bytes, memory_bytes, fits, ...)\n");
}

static void add_u64(cJSON *o, const char *k, uint64_t v) { cJSON_AddNumberToObject(o, k, (double)v); }

int dpb_cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"preset", required_argument, 0, 'p'}, {"context", required_argument, 0, 'c'},
        {"batch", required_argument, 0, 'b'},  {"gpu-mem", required_argument, 0, 'g'},
        {"layers", required_argument, 0, 'l'}, {"experts", required_argument, 0, 'e'},
        {"json", no_argument, 0, 'J'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *preset = NULL, *model = NULL;
    dpb_inspect_opts io = {2048, 1, 80.0, 2};
    dpb_checkpoint_opts co = {0};
    int json = 0, c;
    long long v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        dpb_status st = DPB_OK;
        switch (c) {
        case 'p': preset = optarg; break;
        case 'c': st = dpb_cli_parse_i64("--context", optarg, 1, 1ll << 26, &v); io.context = v; break;
        case 'b': st = dpb_cli_parse_i64("--batch", optarg, 1, 1 << 20, &v); io.batch = v; break;
        case 'g': st = dpb_cli_parse_double("--gpu-mem", optarg, 0.001, 1e6, &io.gpu_mem_gib); break;
        case 'l': st = dpb_cli_parse_i64("--layers", optarg, 1, 1024, &v); co.layers = v; break;
        case 'e':
            if (strcmp(optarg, "mxfp4") == 0) co.experts_format = DPB_EXPERTS_MXFP4;
            else if (strcmp(optarg, "bf16") == 0) co.experts_format = DPB_EXPERTS_BF16;
            else return dpb_cli_usage_error("inspect", "--experts takes mxfp4 or bf16, not '%s'", optarg);
            break;
        case 'J': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: return dpb_cli_usage_error("inspect", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (st) return dpb_cli_fail("inspect", st);
    }
    if (optind < argc) model = argv[optind++];
    if (optind < argc) return dpb_cli_usage_error("inspect", "unexpected argument '%s'", argv[optind]);
    if (!!preset == !!model) return dpb_cli_usage_error("inspect", "give a model folder, synth:PRESET, or --preset NAME");
    char spec[128];
    if (preset) {
        snprintf(spec, sizeof spec, "synth:%s", preset);
        model = spec;
    }
    if (dpb_synth_is_spec(model)) co.no_weights = true;
    dpb_checkpoint *ck;
    dpb_status st = dpb_checkpoint_open(model, &co, &ck);
    if (st) return dpb_cli_fail("inspect", st);
    const dpb_model_config *cfg = dpb_checkpoint_config(ck);
    size_t n = dpb_checkpoint_tensor_count(ck);
    dpb_tensor_desc *ds = calloc(n ? n : 1, sizeof *ds);
    if (!ds) {
        dpb_checkpoint_close(ck);
        return dpb_cli_fail("inspect", dpb_error_set(DPB_E_NOMEM, "out of memory"));
    }
    for (size_t i = 0; i < n; i++) {
        const dpb_tensor *t = dpb_checkpoint_tensor_at(ck, i);
        ds[i] = (dpb_tensor_desc){t->name, t->dtype, t->ndim, t->shape};
    }
    dpb_inspect_result r;
    st = dpb_inspect_tensors(cfg, ds, n, &io, &r);
    free(ds);
    if (st) {
        dpb_checkpoint_close(ck);
        return dpb_cli_fail("inspect", st);
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "architecture", dpb_arch_name(r.arch));
        cJSON_AddBoolToObject(o, "synthetic", dpb_checkpoint_is_synthetic(ck));
        add_u64(o, "num_layers", (uint64_t)cfg->num_layers);
        add_u64(o, "hidden_size", (uint64_t)cfg->hidden_size);
        add_u64(o, "vocab_size", (uint64_t)cfg->vocab_size);
        if (cfg->num_experts) {
            add_u64(o, "num_experts", (uint64_t)cfg->num_experts);
            add_u64(o, "experts_per_tok", (uint64_t)cfg->experts_per_tok);
            cJSON_AddStringToObject(o, "experts_format", cfg->experts_format == DPB_EXPERTS_MXFP4 ? "mxfp4" : "bf16");
        }
        add_u64(o, "params_total", r.params_total);
        add_u64(o, "params_active", r.params_active);
        add_u64(o, "weight_bytes", r.weight_bytes);
        add_u64(o, "active_weight_bytes_per_token", r.active_weight_bytes);
        cJSON *bd = cJSON_AddObjectToObject(o, "bytes_by_dtype");
        for (int t = 1; t < DPB_DT_COUNT; t++)
            if (r.bytes_by_dtype[t]) add_u64(bd, dpb_dtype_name((dpb_dtype)t), r.bytes_by_dtype[t]);
        cJSON *bc = cJSON_AddObjectToObject(o, "bytes_by_component");
        cJSON *pc = cJSON_AddObjectToObject(o, "params_by_component");
        cJSON *ac = cJSON_AddObjectToObject(o, "params_active_by_component");
        for (int k = 0; k < DPB_COMP_COUNT; k++) {
            if (!r.bytes_by_component[k]) continue;
            add_u64(bc, dpb_component_name((dpb_component)k), r.bytes_by_component[k]);
            add_u64(pc, dpb_component_name((dpb_component)k), r.params_by_component[k]);
            add_u64(ac, dpb_component_name((dpb_component)k), r.active_by_component[k]);
        }
        add_u64(o, "context_tokens", (uint64_t)r.context);
        add_u64(o, "batch", (uint64_t)r.batch);
        add_u64(o, "kv_bytes_per_token", r.kv.bytes_per_token);
        add_u64(o, "kv_bytes_fixed", r.kv.bytes_fixed);
        add_u64(o, "kv_bytes", r.kv.bytes);
        add_u64(o, "activation_bytes_estimate", r.activation_bytes);
        add_u64(o, "memory_bytes", r.memory_bytes);
        add_u64(o, "gpu_mem_bytes", r.gpu_mem_bytes);
        cJSON_AddBoolToObject(o, "fits", r.fits);
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
    } else {
        printf("model            %s%s\n", model, dpb_checkpoint_is_synthetic(ck) ? " (synthetic)" : "");
        printf("architecture     %s, %lld layers, hidden %lld, heads %lld/%lld x %lld, vocab %lld\n",
               dpb_arch_name(r.arch), (long long)cfg->num_layers, (long long)cfg->hidden_size,
               (long long)cfg->num_heads, (long long)cfg->num_kv_heads, (long long)cfg->head_dim,
               (long long)cfg->vocab_size);
        if (cfg->num_experts)
            printf("experts          %lld, top-%lld, %s\n", (long long)cfg->num_experts, (long long)cfg->experts_per_tok,
                   cfg->experts_format == DPB_EXPERTS_MXFP4 ? "MXFP4" : "bf16");
        printf("parameters       %llu total, %llu active per token\n", (unsigned long long)r.params_total,
               (unsigned long long)r.params_active);
        printf("weights          %.3f GB (%.3f GiB); read per token at batch 1: %.3f GB\n", r.weight_bytes / 1e9,
               r.weight_bytes / 1073741824.0, r.active_weight_bytes / 1e9);
        printf("by component     ");
        for (int k = 0; k < DPB_COMP_COUNT; k++)
            if (r.bytes_by_component[k]) printf("%s %.3f GB  ", dpb_component_name((dpb_component)k), r.bytes_by_component[k] / 1e9);
        printf("\nby dtype         ");
        for (int t = 1; t < DPB_DT_COUNT; t++)
            if (r.bytes_by_dtype[t]) printf("%s %.3f GB  ", dpb_dtype_name((dpb_dtype)t), r.bytes_by_dtype[t] / 1e9);
        printf("\nKV cache         %llu B/token (full-attention layers) + %llu B fixed (sliding layers at full window)\n",
               (unsigned long long)r.kv.bytes_per_token, (unsigned long long)r.kv.bytes_fixed);
        printf("at %lld tokens x %lld  KV %.3f GiB, activations ~%.3f GiB, total %.3f GiB of %.1f GiB: %s\n",
               (long long)r.context, (long long)r.batch, r.kv.bytes / 1073741824.0, r.activation_bytes / 1073741824.0,
               r.memory_bytes / 1073741824.0, r.gpu_mem_bytes / 1073741824.0, r.fits ? "fits" : "does NOT fit");
    }
    dpb_checkpoint_close(ck);
    return 0;
}
