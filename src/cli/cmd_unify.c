/* deploybench unify / ape: the study's cross-model tables from results folders. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/unify.h"
#include "cli/cli.h"

static void usage(FILE *f, const char *cmd)
{
    if (strcmp(cmd, "unify") == 0)
        fprintf(f,
                "usage: deploybench unify --results DIR [DIR...] [--results DIR...] --out DIR\n\n"
                "Reads results folders written by latency, memory and energy (each with its manifest.json)\n"
                "and writes unified_latency_comparison.csv, unified_memory_comparison.csv and\n"
                "unified_energy_comparison.csv into --out: the reference study's columns first (filled from\n"
                "our measurements where an equivalent exists, else \"unavailable: <why>\"), then ours.\n"
                "docs/STUDY.md says which of ours fills each of the study's columns.\n\n"
                "  --results DIR  a results folder (repeat, or list several after it)\n"
                "  --out DIR      where the CSVs go (created)\n");
    else
        fprintf(f,
                "usage: deploybench ape --results DIR [DIR...] [--results DIR...] --out DIR\n\n"
                "Active Parameter Efficiency as the reference study defines it: metric / active parameters\n"
                "in billions, for decode throughput (and the study's prefill-included TPOT_tokps), 1000/TTFT\n"
                "and tokens per watt, plus decode tok/s per GB of peak memory. One row per latency cell at\n"
                "batch 1, joined with memory and energy rows of the same model and context. Active\n"
                "parameters come from each model's checkpoint (inspect's count), never a table.\n"
                "Writes ape_analysis.csv and ape_analysis.json into --out.\n\n"
                "  --results DIR  a results folder (repeat, or list several after it)\n"
                "  --out DIR      where the files go (created)\n");
}

static int run(int argc, char **argv, const char *cmd)
{
    static const struct option opts[] = {{"results", required_argument, 0, 'r'},
                                         {"out", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
    if (!dirs) return dpb_cli_fail(cmd, dpb_error_set(DPB_E_NOMEM, "out of memory"));
    size_t n = 0;
    const char *out = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': dirs[n++] = optarg; break;
        case 'o': out = optarg; break;
        case 'h': usage(stdout, cmd); free(dirs); return 0;
        case ':': free(dirs); return dpb_cli_usage_error(cmd, "%s needs a value", argv[optind - 1]);
        default: free(dirs); return dpb_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    for (int i = optind; i < argc; i++) dirs[n++] = argv[i];
    if (n == 0) {
        free(dirs);
        return dpb_cli_usage_error(cmd, "--results DIR is required");
    }
    if (!out) {
        free(dirs);
        return dpb_cli_usage_error(cmd, "--out DIR is required");
    }
    dpb_study_rows rows;
    dpb_status st = dpb_study_rows_load(dirs, n, &rows);
    free(dirs);
    if (st) return dpb_cli_fail(cmd, st);
    if (strcmp(cmd, "unify") == 0) {
        st = dpb_unify_write(&rows, out);
        if (!st)
            printf("unify: %d latency, %d memory, %d energy rows -> %s/unified_{latency,memory,energy}_comparison.csv\n",
                   cJSON_GetArraySize(rows.latency), cJSON_GetArraySize(rows.memory), cJSON_GetArraySize(rows.energy),
                   out);
    } else {
        cJSON *ape = NULL;
        st = dpb_ape_compute(&rows, &ape);
        if (!st) st = dpb_ape_write(ape, out);
        if (!st) printf("ape: %d rows -> %s/ape_analysis.{csv,json}\n", cJSON_GetArraySize(ape), out);
        cJSON_Delete(ape);
    }
    dpb_study_rows_free(&rows);
    return st ? dpb_cli_fail(cmd, st) : 0;
}

int dpb_cmd_unify(int argc, char **argv) { return run(argc, argv, "unify"); }
int dpb_cmd_ape(int argc, char **argv) { return run(argc, argv, "ape"); }
