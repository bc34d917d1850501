/* Command-line front end: one function per subcommand, each returning a
 * process exit code (tools/deploybench.c's main returns it). */
#ifndef DPB_CLI_H
#define DPB_CLI_H

#include "core/status.h"

typedef struct dpb_cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
} dpb_cli_command;

int dpb_cli_main(int argc, char **argv);

/* Prints "deploybench CMD: message" for the current error and returns the exit code for st. */
int dpb_cli_fail(const char *cmd, dpb_status st);
/* Prints a usage error naming the command and returns 2. */
int dpb_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Rewrites "--foo_bar" options as "--foo-bar" in place (the reference study's spellings). */
void dpb_cli_normalize_args(int argc, char **argv);
/* Checks a --backend value (cpu, ref, cuda); prints a usage error and returns 2
 * when it is none of them, else returns 0. */
int dpb_cli_check_backend(const char *cmd, const char *value);
/* Parses a whole decimal integer in [min, max]; else an error naming opt. */
dpb_status dpb_cli_parse_i64(const char *opt, const char *s, long long min, long long max, long long *out);
dpb_status dpb_cli_parse_double(const char *opt, const char *s, double min, double max, double *out);

/* Subcommands. */
int dpb_cmd_version(int argc, char **argv);
int dpb_cmd_quickstart(int argc, char **argv);
int dpb_cmd_synth(int argc, char **argv);
int dpb_cmd_inspect(int argc, char **argv);
int dpb_cmd_serve(int argc, char **argv);
int dpb_cmd_load(int argc, char **argv);
int dpb_cmd_generate(int argc, char **argv);
int dpb_cmd_logits(int argc, char **argv);
int dpb_cmd_telemetry(int argc, char **argv);
int dpb_cmd_tokenize(int argc, char **argv);
int dpb_cmd_detokenize(int argc, char **argv);
int dpb_cmd_latency(int argc, char **argv);
int dpb_cmd_memory(int argc, char **argv);
int dpb_cmd_energy(int argc, char **argv);
int dpb_cmd_unify(int argc, char **argv);
int dpb_cmd_ape(int argc, char **argv);
int dpb_cmd_ablate(int argc, char **argv);
int dpb_cmd_eval(int argc, char **argv);
int dpb_cmd_safety(int argc, char **argv);
int dpb_cmd_study(int argc, char **argv);
int dpb_cmd_report(int argc, char **argv);

#endif
