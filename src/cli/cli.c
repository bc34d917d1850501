#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/signal.h"
#include "synth/synth.h"

static int cmd_help(int argc, char **argv);

static const dpb_cli_command k_commands[] = {
    {"help", "show this help, or a command's (deploybench help CMD)", cmd_help},
    {"version", "print the version and compiled backends (--json)", dpb_cmd_version},
    {"serve", "OpenAI-compatible server (today: the synthetic calibration engine)", dpb_cmd_serve},
    {"load", "load generator for OpenAI-compatible servers: TTFT/TPOT/ITL under load", dpb_cmd_load},
    {"quickstart", "a first TTFT/TPOT measurement in under a minute (the README's main job)", dpb_cmd_quickstart},
    {"synth", "write a random-weight checkpoint of a preset architecture", dpb_cmd_synth},
    {"inspect", "parameters, bytes by dtype and component, KV cache and memory need", dpb_cmd_inspect},
    {"generate", "generate tokens with the engine; TTFT and decode speed from its own timestamps", dpb_cmd_generate},
    {"logits", "one forward pass: every position's logits to a safetensors file", dpb_cmd_logits},
    {"telemetry", "what GPU/CPU telemetry is available (NVML, RAPL); record a power trace", dpb_cmd_telemetry},
    {"tokenize", "text to token ids with a model's tokenizer; chat templates; exact-length prompts; --bench", dpb_cmd_tokenize},
    {"latency", "the study's latency grid: TTFT, TPOT, ITL, E2E per cell; resumable (--resume)", dpb_cmd_latency},
    {"memory", "weights, KV cache (exact vs analytic), workspace and process memory per context", dpb_cmd_memory},
    {"energy", "energy per prefill and decode: idle baseline, NVML counter vs power integral", dpb_cmd_energy},
    {"unify", "the study's unified latency/memory/energy CSVs across results folders", dpb_cmd_unify},
    {"ape", "Active Parameter Efficiency (metric / active B, from the checkpoint) from results folders", dpb_cmd_ape},
    {"ablate", "the study's ablations: sampling, context, batch, experts per token, KV dtype, sliding window", dpb_cmd_ablate},
    {"detokenize", "token ids to text (streaming-safe UTF-8)", dpb_cmd_detokenize},
    {"eval", "accuracy: MMLU, GSM8K, BBH, HumanEval (sandboxed) as lm-evaluation-harness defines them", dpb_cmd_eval},
    {"study", "the whole reference study with one command: every step, every model, then the report", dpb_cmd_study},
    {"report", "figures, report.html, summary.md and a LaTeX paper from a study folder", dpb_cmd_report},
    {"safety", "refusal, jailbreak and over-refusal rates with the governance table (docs/SAFETY.md)", dpb_cmd_safety},
};
#define N_COMMANDS (sizeof k_commands / sizeof k_commands[0])

static void print_help(FILE *f)
{
    fprintf(f,
            "deploybench: measure how large language models behave in deployment.\n\n"
            "usage: deploybench COMMAND [options]    (deploybench COMMAND --help for details)\n\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-12s %s\n", k_commands[i].name, k_commands[i].summary);
    fprintf(f,
            "\nmodels: a Hugging Face folder (config.json + *.safetensors), or synth:PRESET[:SEED][:INIT]\n"
            "for random weights generated in memory (presets and INIT hf|scaled: deploybench synth --help).\n"
            "exit codes: 0 ok, 2 bad input or usage, 1 other failure, 130 interrupted.\n");
}

static int cmd_help(int argc, char **argv)
{
    if (argc > 1) {
        for (size_t i = 0; i < N_COMMANDS; i++) {
            if (strcmp(argv[1], k_commands[i].name) == 0 && k_commands[i].run != cmd_help) {
                char *args[] = {argv[1], "--help", NULL};
                return k_commands[i].run(2, args);
            }
        }
        return dpb_cli_usage_error("help", "unknown command '%s'", argv[1]);
    }
    print_help(stdout);
    return 0;
}

int dpb_cli_main(int argc, char **argv)
{
    dpb_signal_install();
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) name = "help";
    if (strcmp(name, "--version") == 0) name = "version";
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(name, k_commands[i].name) == 0) {
            dpb_cli_normalize_args(argc - 1, argv + 1);
            return k_commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "deploybench: unknown command '%s' (deploybench help lists them)\n", argv[1]);
    return 2;
}

int dpb_cli_fail(const char *cmd, dpb_status st)
{
    fprintf(stderr, "deploybench %s: %s\n", cmd, dpb_error_message());
    return dpb_status_exit_code(st);
}

int dpb_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "deploybench %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see deploybench %s --help)\n", cmd);
    return 2;
}

void dpb_cli_normalize_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) break;
        if (a[0] != '-' || a[1] != '-') continue;
        for (char *p = a + 2; *p && *p != '='; p++)
            if (*p == '_') *p = '-';
    }
}

dpb_status dpb_cli_parse_i64(const char *opt, const char *s, long long min, long long max, long long *out)
{
    if (!s || !*s) return dpb_error_set(DPB_E_ARG, "%s needs a whole number", opt);
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s)
        return dpb_error_set(DPB_E_ARG, "%s: '%s' is not a whole number", opt, s);
    if (v < min || v > max)
        return dpb_error_set(DPB_E_ARG, "%s: %lld is outside [%lld, %lld]", opt, v, min, max);
    *out = v;
    return DPB_OK;
}

dpb_status dpb_cli_parse_double(const char *opt, const char *s, double min, double max, double *out)
{
    if (!s || !*s) return dpb_error_set(DPB_E_ARG, "%s needs a number", opt);
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v))
        return dpb_error_set(DPB_E_ARG, "%s: '%s' is not a number", opt, s);
    if (v < min || v > max) return dpb_error_set(DPB_E_ARG, "%s: %g is outside [%g, %g]", opt, v, min, max);
    *out = v;
    return DPB_OK;
}

int dpb_cli_check_backend(const char *cmd, const char *value)
{
    if (strcmp(value, "cuda") == 0) {
        /* synth:PRESET weights are generated in device memory by the engine, not in host memory first */
        dpb_synth_set_deferred(true);
        return 0;
    }
    if (strcmp(value, "cpu") == 0 || strcmp(value, "ref") == 0) return 0;
    return dpb_cli_usage_error(cmd, "--backend takes cpu, ref or cuda, not '%s'", value);
}
