/* A sandbox for model-written Python (HumanEval), one process per sample.
 *
 * Each run clone()s a child into new PID, mount, network, IPC and UTS
 * namespaces (plus a user namespace when not root).  The child builds a new
 * root on a fresh tmpfs holding only read-only binds of /usr, /bin, /lib*
 * and /sbin (no /etc, /home, /root, /proc), pivots into it, writes the
 * program to /tmp/prog.py (the tmpfs, 64 MiB), drops privileges (root:
 * uid/gid 65534 and no groups; everyone: empty capability sets and bounding
 * set, no_new_privs), sets rlimits (CPU, address space, processes, file size,
 * open files, no core), installs a seccomp filter (no sockets, ptrace,
 * mounts, namespaces, keyrings, bpf, perf, module loading), and execs
 * python3.  The network namespace has only a down loopback.  The child is
 * PID 1 of its namespace, so killing it (wall-clock limit, output limit)
 * kills every process it started.
 *
 * A test passes only when the program exits 0 after printing a random nonce
 * that the harness appends after check(): a completion that exits early
 * (os._exit(0)) cannot print it.
 *
 * Fail closed: when the namespaces cannot be created, or any setup step in
 * the child fails, the run returns DPB_E_UNAVAILABLE and nothing is executed
 * unconfined. */
#ifndef DPB_EVAL_SANDBOX_H
#define DPB_EVAL_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/status.h"
#include "eval/eval.h"

typedef struct dpb_sandbox_opts {
    const char *python;       /* NULL: /usr/bin/python3 (must live under a bound folder) */
    int cpu_s;                /* RLIMIT_CPU; 0: 4 */
    uint64_t mem_bytes;       /* RLIMIT_AS; 0: 4 GiB */
    int max_procs;            /* RLIMIT_NPROC; 0: 64 */
    uint64_t max_file_bytes;  /* RLIMIT_FSIZE; 0: 16 MiB */
    int wall_ms;              /* wall-clock limit; 0: 20,000 */
    size_t max_output;        /* stdout+stderr bytes; more kills the run; 0: 1 MiB */
} dpb_sandbox_opts;

typedef struct dpb_sandbox_result {
    bool passed;          /* exit 0, the nonce printed, no limit hit */
    bool nonce_seen;
    bool timed_out;       /* wall-clock limit */
    bool output_limit;    /* more than max_output bytes */
    int exit_code;        /* -1 when killed by a signal */
    int signal;           /* 0 when it exited */
    double wall_s;
    char *output;         /* the first bytes of stdout+stderr (owned, NUL-terminated) */
    size_t output_len;
    char reason[96];      /* "passed", "exit status 1", "signal 24 (CPU limit)", ... */
} dpb_sandbox_result;

void dpb_sandbox_result_free(dpb_sandbox_result *r);

/* Runs program (Python source) in the sandbox.  The nonce is readable by the
 * program on fd 3; pass_requires_nonce makes a pass need it on stdout. */
dpb_status dpb_sandbox_run_python(const dpb_sandbox_opts *o, const char *program, bool pass_requires_nonce,
                                  dpb_sandbox_result *r);

/* HumanEval: prompt + completion + test + check(entry_point) + the nonce. */
dpb_status dpb_humaneval_check(const dpb_sandbox_opts *o, const dpb_eval_item *it, const char *completion,
                               dpb_sandbox_result *r);

/* lm-eval's HumanEval stop sequences ("\nclass", "\ndef", "\n#", "\nif", "\nprint"). */
extern const char *const dpb_humaneval_stops[5];

#endif
