#include "cli/cli.h"
#include <stdio.h>
int dpb_cmd_load(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "todo\n"); return 1; }
