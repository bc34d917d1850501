/* Engine speed on the CPU: prefill tok/s, decode tok/s and decode GB/s as a
 * fraction of the copy bandwidth measured in the same run.
 *
 * usage: bench_engine [--threads N] [--prompt P] [--gen G] [--dtype bf16|f32] MODEL...
 *   MODEL: a folder or synth:PRESET (default: synth:gpt-oss-1b synth:qwen3-1b synth:llama-1b)
 *
 * Bytes per decode token = weights read for one token (all dense weights;
 * for MoE the non-expert weights plus top_k/E of the expert tensors; the
 * embedding table contributes one row; lm_head all of it) plus the KV cache
 * read by attention at the mean context of the decode phase. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "backend/backend.h"
#include "engine/engine.h"
#include "format/checkpoint.h"
#include "models/spec.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double weight_bytes_per_token(const dpb_model_config *c)
{
    dpb_tensor_specs s;
    if (dpb_model_tensor_specs(c, &s)) return NAN;
    double tot = 0;
    for (size_t i = 0; i < s.n; i++) {
        const dpb_tensor_spec *t = &s.t[i];
        if (t->component == DPB_COMP_EMBED) {
            tot += (double)c->hidden_size * 2;
            if (c->tie_word_embeddings) tot += (double)t->nbytes; /* read again as lm_head */
        } else if (t->per_expert) tot += (double)t->nbytes * (double)c->experts_per_tok / (double)c->num_experts;
        else tot += (double)t->nbytes;
    }
    dpb_tensor_specs_free(&s);
    return tot;
}

/* CPU model and load average, printed with the numbers they qualify. */
static void print_machine(void)
{
    char line[256], model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) snprintf(model, sizeof model, "%s", c + 2);
            model[strcspn(model, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
    double l1 = -1;
    f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l1) != 1) l1 = -1;
        fclose(f);
    }
    printf("cpu: %s, %d logical cpus, load average (1 min) %.2f\n", model, (int)sysconf(_SC_NPROCESSORS_ONLN), l1);
}

int main(int argc, char **argv)
{
    int threads = 0;
    int64_t P = 128, G = 32;
    dpb_engine_dtype dt = DPB_ENGINE_BF16;
    const char *models[16];
    int nm = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--prompt") == 0 && i + 1 < argc) P = atoll(argv[++i]);
        else if (strcmp(argv[i], "--gen") == 0 && i + 1 < argc) G = atoll(argv[++i]);
        else if (strcmp(argv[i], "--dtype") == 0 && i + 1 < argc) dt = strcmp(argv[++i], "f32") == 0 ? DPB_ENGINE_F32 : DPB_ENGINE_BF16;
        else if (argv[i][0] == '-') { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
        else if (nm < 16) models[nm++] = argv[i];
    }
    if (P < 1 || G < 2) { fprintf(stderr, "--prompt >= 1 and --gen >= 2\n"); return 2; }
    if (!nm) {
        models[nm++] = "synth:gpt-oss-1b";
        models[nm++] = "synth:qwen3-1b";
        models[nm++] = "synth:llama-1b";
    }
    print_machine();
    double copy;
    if (dpb_cpu_copy_bandwidth((size_t)512 << 20, 5, &copy)) { fprintf(stderr, "%s\n", dpb_error_message()); return 1; }
    printf("copy bandwidth: %.2f GB/s (STREAM-like copy of 512 MiB, read + write counted, best of 5)\n", copy);
    printf("%-22s %7s %8s %10s %10s %10s %9s %8s %6s\n", "model", "threads", "simd", "prefill/s", "TPOT ms",
           "decode/s", "MB/token", "GB/s", "%copy");
    for (int mi = 0; mi < nm; mi++) {
        dpb_checkpoint *ck;
        if (dpb_checkpoint_open(models[mi], NULL, &ck)) { fprintf(stderr, "%s: %s\n", models[mi], dpb_error_message()); return 1; }
        const dpb_model_config *c = dpb_checkpoint_config(ck);
        dpb_engine_opts o = {0};
        o.threads = threads;
        o.dtype = dt;
        o.max_ctx = P + G;
        dpb_engine *e;
        if (dpb_engine_create(ck, &o, &e)) { fprintf(stderr, "%s: %s\n", models[mi], dpb_error_message()); return 1; }
        int32_t *ids = malloc((size_t)P * sizeof *ids);
        uint64_t x = 12345;
        for (int64_t i = 0; i < P; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            ids[i] = (int32_t)((x >> 33) % (uint64_t)c->vocab_size);
        }
        dpb_gen_request q = {ids, P, G, dpb_sampling_greedy(), true, 0, NULL};
        dpb_gen_result r;
        /* warm-up (page faults of synthetic weights, thread pool) */
        dpb_gen_request qw = q;
        qw.n_prompt = P < 8 ? P : 8;
        qw.max_new = 2;
        if (dpb_engine_generate(e, &qw, 1, &r, NULL, NULL)) { fprintf(stderr, "%s\n", dpb_error_message()); return 1; }
        dpb_gen_result_free(&r);
        if (dpb_engine_generate(e, &q, 1, &r, NULL, NULL)) { fprintf(stderr, "%s\n", dpb_error_message()); return 1; }
        uint64_t *d = malloc((size_t)(r.n - 1) * sizeof *d);
        for (int64_t i = 1; i < r.n; i++) d[i - 1] = r.t_ns[i] - r.t_ns[i - 1];
        qsort(d, (size_t)(r.n - 1), sizeof *d, cmp_u64);
        double tpot = (double)d[(r.n - 1) / 2] / 1e9; /* median */
        double prefill = (double)P / ((double)(r.t_prefill_done_ns - r.t_start_ns) / 1e9);
        double es = dt == DPB_ENGINE_F32 ? 4 : 2;
        double kv = 0, ctx = (double)P + (double)G / 2;
        for (int l = 0; l < (int)c->num_layers; l++) {
            double len = c->sliding_window > 0 && c->layer_sliding[l] && c->sliding_window < ctx ? (double)c->sliding_window : ctx;
            kv += len * 2 * (double)(c->num_kv_heads * c->head_dim) * es;
        }
        double bytes = weight_bytes_per_token(c) + kv;
        dpb_backend *be = dpb_engine_backend(e);
        printf("%-22s %7d %8s %10.1f %10.2f %10.2f %9.1f %8.2f %5.0f%%\n", models[mi], be->threads, be->simd, prefill,
               tpot * 1e3, 1.0 / tpot, bytes / 1e6, bytes / tpot / 1e9, 100 * bytes / tpot / 1e9 / copy);
        fflush(stdout);
        free(d);
        dpb_gen_result_free(&r);
        free(ids);
        dpb_engine_destroy(e);
        dpb_checkpoint_close(ck);
    }
    return 0;
}
