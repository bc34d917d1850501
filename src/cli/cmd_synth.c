#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "cli/cli.h"
#include "synth/synth.h"

static void usage(FILE *f)
{
    int n;
    const dpb_preset *p = dpb_synth_presets(&n);
    fprintf(f,
            "usage: deploybench synth --preset NAME --out DIR [--seed N] [--init hf|scaled] [--experts mxfp4|bf16]\n"
            "                         [--layers N] [--tokenizer DIR|FILE] [--shard-gb G] [--threads N]\n\n"
            "Writes a Hugging Face model folder (config.json, safetensors shards of at most 5 GB with an index,\n"
            "generation_config.json) with the architecture and size of a preset and random weights in bf16 (norms 1;\n"
            "gpt-oss experts MXFP4 by default). Speed, memory and energy do not depend on weight values. The\n"
            "weights are a pure function of (seed, init, tensor name, position): the same on every machine and\n"
            "thread count, and equal to synth:PRESET[:SEED][:INIT] models generated in memory by any command\n"
            "that takes --model (e.g. synth:qwen3-32b:0:scaled).\n\n"
            "  --preset NAME      architecture and size (below)\n"
            "  --out DIR          folder to write (created)\n"
            "  --seed N           random seed (default 0)\n"
            "  --init hf|scaled   how the weights are spread (docs/CHECKPOINTS.md):\n"
            "                     hf (default): N(0, 0.02) for every matrix and bias, as transformers initializes,\n"
            "                       MXFP4 experts uniform FP4 codes under the scale 2^-7 (std 0.023); at full width\n"
            "                       and depth such a model is chaotic (two bf16 roundings of it disagree)\n"
            "                     scaled: matrices N(0, 1/fan_in), residual outputs (o_proj, down_proj, experts'\n"
            "                       down) also / sqrt(2 x layers), embedding N(0, 1), lm_head N(0, 1/hidden),\n"
            "                       biases and sinks N(0, 0.02), MXFP4 scales the nearest power of two: a\n"
            "                       well-conditioned random model, for checking logits against another engine\n"
            "  --experts FMT      gpt-oss experts: mxfp4 (default, as published) or bf16\n"
            "  --layers N         keep the preset's widths with N layers (full-width kernels, small files)\n"
            "  --tokenizer PATH   copy a tokenizer (folder or tokenizer.json) in and size the vocabulary to it;\n"
            "                     without it the folder has no tokenizer and text features say so\n"
            "  --shard-gb G       largest shard in GB (default 5)\n"
            "  --threads N        writer threads (default: all cores)\n\npresets:\n");
    for (int i = 0; i < n; i++) fprintf(f, "  %-14s %s\n", p[i].name, p[i].description);
}

int dpb_cmd_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"preset", required_argument, 0, 'p'}, {"out", required_argument, 0, 'o'},
        {"seed", required_argument, 0, 's'},   {"experts", required_argument, 0, 'e'},
        {"layers", required_argument, 0, 'l'}, {"tokenizer", required_argument, 0, 't'},
        {"shard-gb", required_argument, 0, 'g'}, {"threads", required_argument, 0, 'j'},
        {"init", required_argument, 0, 'i'},   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    dpb_synth_write_opts o = {0};
    long long v;
    double d;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        dpb_status st = DPB_OK;
        switch (c) {
        case 'p': o.preset = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 's': st = dpb_cli_parse_i64("--seed", optarg, 0, INT64_MAX, &v); o.seed = (uint64_t)v; break;
        case 'l': st = dpb_cli_parse_i64("--layers", optarg, 1, 1024, &v); o.layers = v; break;
        case 'j': st = dpb_cli_parse_i64("--threads", optarg, 1, 4096, &v); o.threads = (int)v; break;
        case 't': o.tokenizer = optarg; break;
        case 'i': {
            dpb_synth_init init;
            if (dpb_synth_init_parse(optarg, &init)) return dpb_cli_usage_error("synth", "--init takes hf or scaled, not '%s'", optarg);
            o.init = (int)init;
            break;
        }
        case 'g':
            st = dpb_cli_parse_double("--shard-gb", optarg, 0.001, 1000, &d);
            o.max_shard_bytes = (uint64_t)(d * 1e9);
            break;
        case 'e':
            if (strcmp(optarg, "mxfp4") == 0) o.experts_format = DPB_EXPERTS_MXFP4;
            else if (strcmp(optarg, "bf16") == 0) o.experts_format = DPB_EXPERTS_BF16;
            else return dpb_cli_usage_error("synth", "--experts takes mxfp4 or bf16, not '%s'", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default:
            return dpb_cli_usage_error("synth", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (st) return dpb_cli_fail("synth", st);
    }
    if (optind < argc) return dpb_cli_usage_error("synth", "unexpected argument '%s'", argv[optind]);
    if (!o.preset) return dpb_cli_usage_error("synth", "--preset is required");
    if (!o.out_dir) return dpb_cli_usage_error("synth", "--out is required");
    dpb_synth_write_result res;
    dpb_status st = dpb_synth_write(&o, &res);
    if (st) return dpb_cli_fail("synth", st);
    printf("wrote %s: %s (init %s), %d shard%s, %.3f GB in %.2f s (%.2f GB/s)\n", o.out_dir, o.preset,
           dpb_synth_init_name((dpb_synth_init)o.init), res.shards,
           res.shards > 1 ? "s" : "", res.bytes_written / 1e9, res.seconds,
           res.seconds > 0 ? res.bytes_written / 1e9 / res.seconds : 0.0);
    return 0;
}
