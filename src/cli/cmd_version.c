#include <stdio.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "backend/cuda/cuda_probe.h"
#include "cli/cli.h"
#include "core/version.h"

int dpb_cmd_version(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: deploybench version [--json]\n\n"
                   "Prints the version, the commit it was built from and the compiled backends.\n"
                   "--json  one JSON object: version, commit, backends [{name, compiled, available, detail}]\n");
            return 0;
        } else return dpb_cli_usage_error("version", "unknown option '%s'", argv[i]);
    }
    dpb_cuda_info ci;
    dpb_status cst = dpb_cuda_probe(&ci);
    char detail[256];
    if (cst == DPB_OK)
        snprintf(detail, sizeof detail, "%d device(s), device 0: %s, sm_%d%d, driver %d, runtime %d",
                 ci.device_count, ci.name, ci.cc_major, ci.cc_minor, ci.driver_version, ci.runtime_version);
    else snprintf(detail, sizeof detail, "%s", dpb_error_message());
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "version", DPB_VERSION);
        cJSON_AddStringToObject(o, "commit", dpb_build_commit());
        cJSON *b = cJSON_AddArrayToObject(o, "backends");
        cJSON *cpu = cJSON_CreateObject();
        cJSON_AddStringToObject(cpu, "name", "cpu");
        cJSON_AddBoolToObject(cpu, "compiled", 1);
        cJSON_AddBoolToObject(cpu, "available", 1);
        cJSON_AddStringToObject(cpu, "detail", "reference and default backend");
        cJSON_AddItemToArray(b, cpu);
        cJSON *cu = cJSON_CreateObject();
        cJSON_AddStringToObject(cu, "name", "cuda");
        cJSON_AddBoolToObject(cu, "compiled", ci.compiled);
        cJSON_AddBoolToObject(cu, "available", cst == DPB_OK);
        cJSON_AddStringToObject(cu, "detail", detail);
        cJSON_AddItemToArray(b, cu);
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
    } else {
        printf("deploybench %s (commit %s)\n", DPB_VERSION, dpb_build_commit());
        printf("backends: cpu (available); cuda (%s: %s)\n", ci.compiled ? "compiled" : "not compiled", detail);
    }
    return 0;
}
