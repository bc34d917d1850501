/* deploybench: the command-line program.  All work happens in the library. */
#include "cli/cli.h"

int main(int argc, char **argv) { return dpb_cli_main(argc, argv); }
