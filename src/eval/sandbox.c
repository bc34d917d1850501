/* The HumanEval sandbox (see sandbox.h). */
#include "eval/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/timeutil.h"

const char *const dpb_humaneval_stops[5] = {"\nclass", "\ndef", "\n#", "\nif", "\nprint"};

#define NOBODY 65534

void dpb_sandbox_result_free(dpb_sandbox_result *r)
{
    if (!r) return;
    free(r->output);
    r->output = NULL;
    r->output_len = 0;
}

typedef struct child_ctx {
    int out_w, nonce_r;
    bool userns;
    char uid_map[64], gid_map[64];
    const char *python;
    const char *program;
    size_t program_len;
    struct rlimit cpu, as, nproc, fsize;
} child_ctx;

/* ---------------------------------------------------------------- child side (no malloc, no stdio) */

static void put(const char *s) { ssize_t r = write(2, s, strlen(s)); (void)r; }

static void put_num(long v)
{
    char b[24];
    int i = (int)sizeof b;
    b[--i] = 0;
    bool neg = v < 0;
    unsigned long u = neg ? (unsigned long)-v : (unsigned long)v;
    do { b[--i] = (char)('0' + u % 10); u /= 10; } while (u && i > 1);
    if (neg && i > 0) b[--i] = '-';
    put(b + i);
}

static int die(const char *step)
{
    int e = errno;
    put("dpb-sandbox: setup failed at ");
    put(step);
    put(": errno ");
    put_num(e);
    put("\n");
    _exit(125);
}

static int write_all_fd(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_file(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = write_all_fd(fd, s, strlen(s));
    close(fd);
    return r;
}

/* Binds host path src at new-root path dst read-only; a symlink is copied.
 * Missing sources are skipped unless required. */
static void bind_ro(const char *src, const char *dst, bool required)
{
    struct stat st;
    if (lstat(src, &st) != 0) {
        if (required) die(src);
        return;
    }
    if (S_ISLNK(st.st_mode)) {
        char target[512];
        ssize_t n = readlink(src, target, sizeof target - 1);
        if (n < 0) die(src);
        target[n] = 0;
        if (symlink(target, dst) != 0) die(dst);
        return;
    }
    if (!S_ISDIR(st.st_mode)) return;
    if (mkdir(dst, 0755) != 0) die(dst);
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) != 0) die(src);
    if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0) die(dst);
}

static void bind_dev(const char *name)
{
    char src[64] = "/dev/", dst[64] = "/tmp/dev/";
    strcat(src, name);
    strcat(dst, name);
    int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) die(dst);
    close(fd);
    if (mount(src, dst, NULL, MS_BIND, NULL) != 0) die(src);
}

#if defined(__x86_64__)
#define SB_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SB_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

static void install_seccomp(void)
{
#ifdef SB_AUDIT_ARCH
#define DENY(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)
    const unsigned long ns_flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC |
                                   CLONE_NEWUTS | CLONE_NEWCGROUP;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SB_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1), /* x32 ABI */
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
#endif
        DENY(__NR_socket), DENY(__NR_ptrace), DENY(__NR_mount), DENY(__NR_umount2), DENY(__NR_pivot_root),
        DENY(__NR_chroot), DENY(__NR_unshare), DENY(__NR_setns), DENY(__NR_keyctl), DENY(__NR_add_key),
        DENY(__NR_request_key), DENY(__NR_bpf), DENY(__NR_perf_event_open), DENY(__NR_userfaultfd),
        DENY(__NR_init_module), DENY(__NR_finit_module), DENY(__NR_delete_module), DENY(__NR_kexec_load),
        DENY(__NR_reboot), DENY(__NR_swapon), DENY(__NR_swapoff), DENY(__NR_process_vm_readv),
        DENY(__NR_process_vm_writev), DENY(__NR_open_by_handle_at), DENY(__NR_fsopen), DENY(__NR_fsmount),
        DENY(__NR_move_mount), DENY(__NR_open_tree),
        /* clone3 hides its flags in memory: make libc fall back to clone */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        /* clone with namespace flags */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, (uint32_t)ns_flags, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
#undef DENY
    struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) die("seccomp");
#else
    die("seccomp (no filter for this architecture)");
#endif
}

static int child_main(void *arg)
{
    child_ctx *c = arg;
    if (dup2(c->out_w, 1) < 0 || dup2(c->out_w, 2) < 0 || dup2(c->nonce_r, 3) < 0) _exit(125);
    int dn = open("/dev/null", O_RDONLY);
    if (dn < 0 || dup2(dn, 0) < 0) die("stdin");
    for (int fd = 4; fd < 4096; fd++) close(fd);
    if (c->userns) {
        if (write_file("/proc/self/setgroups", "deny") != 0) die("setgroups deny");
        if (write_file("/proc/self/uid_map", c->uid_map) != 0) die("uid_map");
        if (write_file("/proc/self/gid_map", c->gid_map) != 0) die("gid_map");
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) die("mount private");
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=0755") != 0) die("tmpfs");
    bind_ro("/usr", "/tmp/usr", true);
    bind_ro("/bin", "/tmp/bin", false);
    bind_ro("/sbin", "/tmp/sbin", false);
    bind_ro("/lib", "/tmp/lib", false);
    bind_ro("/lib64", "/tmp/lib64", false);
    bind_ro("/lib32", "/tmp/lib32", false);
    bind_ro("/libx32", "/tmp/libx32", false);
    if (mkdir("/tmp/dev", 0755) != 0) die("mkdir dev");
    bind_dev("null");
    bind_dev("zero");
    bind_dev("urandom");
    if (mkdir("/tmp/tmp", 0755) != 0) die("mkdir tmp");
    if (mount("tmpfs", "/tmp/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777") != 0) die("tmpfs work");
    if (mkdir("/tmp/.old", 0700) != 0) die("mkdir old");
    if (syscall(SYS_pivot_root, "/tmp", "/tmp/.old") != 0) die("pivot_root");
    if (chdir("/") != 0) die("chdir");
    if (umount2("/.old", MNT_DETACH) != 0) die("umount old root");
    if (rmdir("/.old") != 0) die("rmdir old root");
    int pf = open("/tmp/prog.py", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (pf < 0 || write_all_fd(pf, c->program, c->program_len) != 0) die("write program");
    close(pf);
    /* the root of the new tree is read-only to everyone */
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=64m,mode=0755") != 0) die("remount root");
    if (chdir("/tmp") != 0) die("chdir tmp");
    if (!c->userns) {
        if (setgroups(0, NULL) != 0) die("setgroups");
        if (setresgid(NOBODY, NOBODY, NOBODY) != 0) die("setresgid");
        if (setresuid(NOBODY, NOBODY, NOBODY) != 0) die("setresuid");
        if (getuid() != NOBODY || geteuid() != NOBODY) die("uid check");
    }
    /* no capabilities, now or after execve */
    for (int cap = 0; cap <= 63; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    prctl(PR_SET_SECUREBITS, 0x2f /* NOROOT, NO_SETUID_FIXUP and their locks, KEEP_CAPS_LOCKED */, 0, 0, 0);
    if (syscall(SYS_capset, &hdr, data) != 0) die("capset");
    if (setrlimit(RLIMIT_CPU, &c->cpu) != 0 || setrlimit(RLIMIT_AS, &c->as) != 0 ||
        setrlimit(RLIMIT_FSIZE, &c->fsize) != 0)
        die("setrlimit");
    struct rlimit nofile = {64, 64}, core = {0, 0};
    if (setrlimit(RLIMIT_NOFILE, &nofile) != 0 || setrlimit(RLIMIT_CORE, &core) != 0) die("setrlimit");
    if (setrlimit(RLIMIT_NPROC, &c->nproc) != 0) die("setrlimit nproc");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("no_new_privs");
    install_seccomp();
    char *const argv[] = {(char *)c->python, "-I", "-B", "/tmp/prog.py", NULL};
    char *const envp[] = {"PATH=/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8", "PYTHONIOENCODING=utf-8",
                          NULL};
    execve(c->python, argv, envp);
    return die("execve python3");
}

/* ---------------------------------------------------------------- parent side */

dpb_status dpb_sandbox_run_python(const dpb_sandbox_opts *o, const char *program, bool pass_requires_nonce,
                                  dpb_sandbox_result *r)
{
    memset(r, 0, sizeof *r);
    dpb_sandbox_opts d = {0};
    if (!o) o = &d;
    const char *python = o->python ? o->python : "/usr/bin/python3";
    if (access(python, X_OK) != 0)
        return dpb_error_set(DPB_E_UNAVAILABLE, "sandbox: %s is not an executable python3", python);
    size_t max_out = o->max_output ? o->max_output : (1u << 20);
    int wall_ms = o->wall_ms > 0 ? o->wall_ms : 20000;

    uint8_t rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) return dpb_error_set(DPB_E_IO, "sandbox: getrandom failed");
    char nonce[40];
    for (int i = 0; i < 16; i++) snprintf(nonce + 2 * i, 3, "%02x", rnd[i]);

    child_ctx c;
    memset(&c, 0, sizeof c);
    c.userns = geteuid() != 0;
    snprintf(c.uid_map, sizeof c.uid_map, "0 %u 1\n", (unsigned)geteuid());
    snprintf(c.gid_map, sizeof c.gid_map, "0 %u 1\n", (unsigned)getegid());
    c.python = python;
    c.program = program;
    c.program_len = strlen(program);
    rlim_t cpu = (rlim_t)(o->cpu_s > 0 ? o->cpu_s : 4);
    c.cpu = (struct rlimit){cpu, cpu + 1};
    rlim_t as = o->mem_bytes ? o->mem_bytes : (4ull << 30);
    c.as = (struct rlimit){as, as};
    rlim_t np = (rlim_t)(o->max_procs > 0 ? o->max_procs : 64);
    c.nproc = (struct rlimit){np, np};
    rlim_t fs = o->max_file_bytes ? o->max_file_bytes : (16u << 20);
    c.fsize = (struct rlimit){fs, fs};

    int outp[2], np2[2];
    if (pipe2(outp, O_CLOEXEC) != 0) return dpb_error_set(DPB_E_IO, "sandbox: pipe: %s", strerror(errno));
    if (pipe2(np2, O_CLOEXEC) != 0) {
        close(outp[0]);
        close(outp[1]);
        return dpb_error_set(DPB_E_IO, "sandbox: pipe: %s", strerror(errno));
    }
    if (write(np2[1], nonce, 32) != 32) { /* a pipe takes 32 bytes at once */
        close(outp[0]); close(outp[1]); close(np2[0]); close(np2[1]);
        return dpb_error_set(DPB_E_IO, "sandbox: nonce pipe");
    }
    close(np2[1]);
    c.out_w = outp[1];
    c.nonce_r = np2[0];

    size_t stack_size = 1 << 20;
    char *stack = malloc(stack_size);
    char *buf = malloc(max_out + 1);
    if (!stack || !buf) {
        free(stack); free(buf);
        close(outp[0]); close(outp[1]); close(np2[0]);
        return dpb_error_set(DPB_E_NOMEM, "sandbox: out of memory");
    }
    int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
    if (c.userns) flags |= CLONE_NEWUSER;
    uint64_t t0 = dpb_now_ns();
    pid_t pid = clone(child_main, stack + stack_size, flags, &c);
    int clone_errno = errno;
    close(outp[1]);
    close(np2[0]);
    if (pid < 0) {
        free(stack); free(buf);
        close(outp[0]);
        return dpb_error_set(DPB_E_UNAVAILABLE,
                             "sandbox: cannot create %snamespaces (%s); refusing to run model-written code unconfined",
                             c.userns ? "user+" : "", strerror(clone_errno));
    }
    size_t len = 0;
    bool killed = false;
    for (;;) {
        int64_t left = (int64_t)wall_ms - (int64_t)((dpb_now_ns() - t0) / 1000000u);
        if (left <= 0) { r->timed_out = true; break; }
        struct pollfd pfd = {outp[0], POLLIN, 0};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0) { if (errno == EINTR) continue; break; }
        if (pr == 0) { r->timed_out = true; break; }
        char tmp[65536];
        ssize_t n = read(outp[0], tmp, sizeof tmp);
        if (n < 0) { if (errno == EINTR || errno == EAGAIN) continue; break; }
        if (n == 0) break; /* every writer is gone */
        size_t take = (size_t)n;
        if (len + take > max_out) {
            take = max_out - len;
            r->output_limit = true;
        }
        memcpy(buf + len, tmp, take);
        len += take;
        if (r->output_limit) break;
    }
    if (r->timed_out || r->output_limit) { kill(pid, SIGKILL); killed = true; }
    int status = 0;
    /* PID 1 gone: the kernel kills the rest of the namespace */
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    (void)killed;
    close(outp[0]);
    free(stack);
    r->wall_s = (double)(dpb_now_ns() - t0) / 1e9;
    buf[len] = 0;
    r->output = buf;
    r->output_len = len;
    if (WIFEXITED(status)) {
        r->exit_code = WEXITSTATUS(status);
        r->signal = 0;
    } else {
        r->exit_code = -1;
        r->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    if (r->exit_code == 125 && len >= 12 && memcmp(buf, "dpb-sandbox:", 12) == 0) {
        char *nl = memchr(buf, '\n', len);
        int l = nl ? (int)(nl - buf) : (int)len;
        snprintf(r->reason, sizeof r->reason, "sandbox setup failed");
        return dpb_error_set(DPB_E_UNAVAILABLE, "%.*s; refusing to run model-written code unconfined", l, buf);
    }
    r->nonce_seen = memmem(buf, len, nonce, 32) != NULL;
    if (r->timed_out) snprintf(r->reason, sizeof r->reason, "wall-clock limit (%d ms)", wall_ms);
    else if (r->output_limit) snprintf(r->reason, sizeof r->reason, "output limit (%zu bytes)", max_out);
    else if (r->signal)
        snprintf(r->reason, sizeof r->reason, "signal %d%s", r->signal,
                 r->signal == SIGXCPU || r->signal == SIGKILL ? " (CPU limit or killed)" : "");
    else if (r->exit_code != 0) snprintf(r->reason, sizeof r->reason, "exit status %d", r->exit_code);
    else if (pass_requires_nonce && !r->nonce_seen) snprintf(r->reason, sizeof r->reason, "exited before the tests finished (no nonce)");
    else {
        snprintf(r->reason, sizeof r->reason, "passed");
        r->passed = true;
    }
    return DPB_OK;
}

dpb_status dpb_humaneval_check(const dpb_sandbox_opts *o, const dpb_eval_item *it, const char *completion,
                               dpb_sandbox_result *r)
{
    static const char epilogue[] = "\nimport os as _dpb_os\n_dpb_os.write(1, b'\\n' + _dpb_os.read(3, 64) + b'\\n')\n";
    size_t n = strlen(it->question) + strlen(completion) + strlen(it->test) + strlen(it->entry_point) + sizeof epilogue + 32;
    char *prog = malloc(n);
    if (!prog) return dpb_error_set(DPB_E_NOMEM, "sandbox: out of memory");
    /* human-eval's check_program: prompt + completion + "\n" + test + "\n" + f"check({entry_point})" */
    snprintf(prog, n, "%s%s\n%s\ncheck(%s)\n%s", it->question, completion, it->test, it->entry_point, epilogue);
    dpb_status st = dpb_sandbox_run_python(o, prog, true, r);
    free(prog);
    return st;
}
