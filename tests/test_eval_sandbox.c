/* The HumanEval sandbox: canonical solutions pass, wrong ones fail, and each
 * hostile completion is contained and scored as a failure. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include "t.h"
#include "core/timeutil.h"
#include "eval/sandbox.h"

static dpb_eval_item k_add = {.question = "def add(a, b):\n    \"\"\"Adds.\"\"\"\n", .entry_point = "add",
                              .test = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"};

static int g_unavailable;

/* Runs a completion of add(); skips the case when the sandbox cannot be built here. */
#define RUN_ADD(completion, r)                                                                      \
    do {                                                                                            \
        if (access("/usr/bin/python3", X_OK) != 0) T_SKIP("/usr/bin/python3 is absent");           \
        dpb_status st_ = dpb_humaneval_check(NULL, &k_add, (completion), (r));                      \
        if (st_ == DPB_E_UNAVAILABLE) {                                                             \
            g_unavailable = 1;                                                                      \
            T_SKIP("sandbox unavailable here (fails closed): %s", dpb_error_message());              \
        }                                                                                           \
        T_CHECK(st_ == DPB_OK);                                                                     \
    } while (0)

static void test_correct_passes(void)
{
    dpb_sandbox_result r;
    RUN_ADD("    return a + b\n", &r);
    T_CHECKF(r.passed, "reason %s output %s", r.reason, r.output);
    T_CHECK(r.nonce_seen);
    dpb_sandbox_result_free(&r);
}

static void test_empty_and_wrong_fail(void)
{
    dpb_sandbox_result r;
    RUN_ADD("", &r);
    T_CHECK(!r.passed);
    T_CHECK(r.exit_code != 0);
    dpb_sandbox_result_free(&r);
    RUN_ADD("    return a - b\n", &r);
    T_CHECK(!r.passed);
    T_CHECK(strstr(r.output, "AssertionError") != NULL);
    dpb_sandbox_result_free(&r);
    RUN_ADD("    return a +\n", &r); /* syntax error */
    T_CHECK(!r.passed && strstr(r.output, "SyntaxError") != NULL);
    dpb_sandbox_result_free(&r);
}

static void test_runs_unprivileged(void)
{
    dpb_sandbox_result r;
    RUN_ADD("    import os\n    assert os.getuid() != 0 or not os.path.exists('/etc/passwd')\n"
            "    assert not os.path.exists('/home') and not os.path.exists('/root') and not os.path.exists('/proc/1/environ')\n"
            "    assert os.getcwd() == '/tmp'\n    return a + b\n", &r);
    T_CHECKF(r.passed, "reason %s output %s", r.reason, r.output);
    dpb_sandbox_result_free(&r);
}

static void test_fork_bomb(void)
{
    dpb_sandbox_result r;
    uint64_t t0 = dpb_now_ns();
    RUN_ADD("    import os\n    while True:\n        os.fork()\n", &r);
    double s = (double)(dpb_now_ns() - t0) / 1e9;
    T_CHECK(!r.passed);
    T_CHECKF(s < 30, "took %.1f s", s);
    dpb_sandbox_result_free(&r);
}

static void test_rm_home_and_outside_writes(void)
{
    const char *dir = t_tmpdir();
    T_CHECK(dir != NULL);
    if (!dir) return;
    char canary[512], file[600], pwned[600], comp[2048];
    snprintf(canary, sizeof canary, "%s/canary", dir);
    snprintf(file, sizeof file, "%s/keep.txt", canary);
    snprintf(pwned, sizeof pwned, "%s/pwned", dir);
    mkdir(canary, 0777);
    chmod(dir, 0777);
    chmod(canary, 0777);
    FILE *f = fopen(file, "w");
    if (f) { fputs("keep", f); fclose(f); }
    chmod(file, 0666);
    snprintf(comp, sizeof comp,
             "    import os, shutil, subprocess\n"
             "    subprocess.run(['rm', '-rf', os.path.expanduser('~')])\n"
             "    shutil.rmtree('%s')\n"
             "    open('%s', 'w').write('x')\n"
             "    return a + b\n",
             canary, pwned);
    dpb_sandbox_result r;
    RUN_ADD(comp, &r);
    T_CHECK(!r.passed);
    T_CHECK(access(file, R_OK) == 0);
    T_CHECK(access(pwned, F_OK) != 0);
    dpb_sandbox_result_free(&r);
    /* writes to world-writable host folders land in the sandbox's own tmpfs */
    RUN_ADD("    for p in ['/tmp/dpb_sandbox_escape', '/var/tmp/dpb_sandbox_escape', '/dev/shm/dpb_sandbox_escape', "
            "'/usr/dpb_sandbox_escape', '/dpb_sandbox_escape']:\n"
            "        try:\n            open(p, 'w').write('x')\n        except OSError:\n            pass\n"
            "    open('/usr/lib/dpb_sandbox_escape', 'w')\n    return a + b\n", &r);
    T_CHECK(!r.passed);
    T_CHECK(access("/tmp/dpb_sandbox_escape", F_OK) != 0);
    T_CHECK(access("/var/tmp/dpb_sandbox_escape", F_OK) != 0);
    T_CHECK(access("/dev/shm/dpb_sandbox_escape", F_OK) != 0);
    T_CHECK(access("/usr/dpb_sandbox_escape", F_OK) != 0);
    T_CHECK(access("/dpb_sandbox_escape", F_OK) != 0);
    T_CHECK(access("/usr/lib/dpb_sandbox_escape", F_OK) != 0);
    dpb_sandbox_result_free(&r);
    unlink(file);
    rmdir(canary);
    rmdir(dir);
}

static void test_socket(void)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    T_CHECK(ls >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    T_CHECK(bind(ls, (struct sockaddr *)&a, sizeof a) == 0 && listen(ls, 4) == 0);
    getsockname(ls, (struct sockaddr *)&a, &al);
    char comp[512];
    snprintf(comp, sizeof comp,
             "    import socket\n    s = socket.create_connection(('127.0.0.1', %d), timeout=2)\n"
             "    s.sendall(b'leak')\n    return a + b\n",
             ntohs(a.sin_port));
    dpb_sandbox_result r;
    RUN_ADD(comp, &r);
    T_CHECK(!r.passed);
    T_CHECK(strstr(r.output, "PermissionError") || strstr(r.output, "OSError"));
    int c = accept(ls, NULL, NULL);
    T_CHECK(c < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    if (c >= 0) close(c);
    close(ls);
    dpb_sandbox_result_free(&r);
}

static void test_infinite_loop(void)
{
    dpb_sandbox_result r;
    uint64_t t0 = dpb_now_ns();
    RUN_ADD("    while True:\n        pass\n", &r);
    double s = (double)(dpb_now_ns() - t0) / 1e9;
    T_CHECK(!r.passed);
    T_CHECK(r.signal != 0 || r.timed_out);
    T_CHECKF(s < 25, "took %.1f s", s);
    dpb_sandbox_result_free(&r);
    dpb_sandbox_opts o = {.wall_ms = 1500};
    if (g_unavailable) return;
    T_CHECK(dpb_humaneval_check(&o, &k_add, "    import time\n    time.sleep(60)\n", &r) == DPB_OK);
    T_CHECK(!r.passed && r.timed_out);
    T_CHECK(r.wall_s < 5);
    dpb_sandbox_result_free(&r);
}

static void test_huge_output(void)
{
    dpb_sandbox_result r;
    /* 1 GiB in 1 MiB writes: the output cap (1 MiB) is hit within milliseconds,
     * not after building a 1 GiB string (which a busy machine's CPU limit may
     * end first). */
    RUN_ADD("    import sys\n    for _ in range(1024):\n        sys.stdout.write('x' * (1 << 20))\n    return a + b\n", &r);
    T_CHECK(!r.passed);
    T_CHECK(r.output_limit);
    T_CHECK(r.output_len <= (1u << 20));
    dpb_sandbox_result_free(&r);
}

static void test_early_exit(void)
{
    dpb_sandbox_result r;
    RUN_ADD("    import os\n    os._exit(0)\n", &r);
    T_CHECK(!r.passed);
    T_CHECK(r.exit_code == 0 && !r.nonce_seen);
    dpb_sandbox_result_free(&r);
    RUN_ADD("    import sys\n    print('0123456789abcdef0123456789abcdef')\n    sys.exit(0)\n", &r);
    T_CHECK(!r.passed);
    dpb_sandbox_result_free(&r);
}

static void test_shadow(void)
{
    dpb_sandbox_result r;
    RUN_ADD("    print(open('/etc/shadow').read())\n    return a + b\n", &r);
    T_CHECK(!r.passed);
    T_CHECK(strstr(r.output, "root:") == NULL);
    dpb_sandbox_result_free(&r);
}

static void test_canonical_sample(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared is absent");
    if (g_unavailable) T_SKIP("sandbox unavailable here");
    char p[1024];
    snprintf(p, sizeof p, "%s/data/humaneval/HumanEval.jsonl.gz", sh);
    dpb_eval_set s = {0};
    T_CHECK(dpb_eval_humaneval_load(p, &s) == DPB_OK);
    /* every 8th problem (21 of 164); DPB_EVAL_FULL=1 runs all 164 */
    size_t step = getenv("DPB_EVAL_FULL") ? 1 : 8, ran = 0, passed = 0;
    for (size_t i = 0; i < s.n; i += step) {
        dpb_sandbox_result r;
        T_CHECK(dpb_humaneval_check(NULL, &s.items[i], s.items[i].canonical, &r) == DPB_OK);
        ran++;
        if (r.passed) passed++;
        else fprintf(stderr, "  %s: %s\n%.400s\n", s.items[i].task_id, r.reason, r.output ? r.output : "");
        dpb_sandbox_result_free(&r);
        if (i == 0) { /* the empty completion fails on a real problem */
            T_CHECK(dpb_humaneval_check(NULL, &s.items[i], "", &r) == DPB_OK);
            T_CHECK(!r.passed);
            dpb_sandbox_result_free(&r);
        }
    }
    fprintf(stderr, "  canonical: %zu/%zu passed\n", passed, ran);
    T_CHECK(ran > 0 && passed == ran);
    dpb_eval_set_free(&s);
}

int main(void)
{
    T_RUN(test_correct_passes);
    T_RUN(test_empty_and_wrong_fail);
    T_RUN(test_runs_unprivileged);
    T_RUN(test_fork_bomb);
    T_RUN(test_rm_home_and_outside_writes);
    T_RUN(test_socket);
    T_RUN(test_infinite_loop);
    T_RUN(test_huge_output);
    T_RUN(test_early_exit);
    T_RUN(test_shadow);
    T_RUN(test_canonical_sample);
    return t_done();
}
