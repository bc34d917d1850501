/* Minimal test harness.  Each tests/test_*.c is one program: T_RUN each case,
 * end with `return t_done();`.  It prints "RESULT pass=P fail=F skip=S", which
 * tests/run.sh adds up. */
#ifndef DPB_T_H
#define DPB_T_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int t_pass, t_fail, t_skip, t_case_failed, t_case_skipped;

#define T_CHECK(c)                                                                        \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            t_case_failed = 1;                                                            \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #c);       \
        }                                                                                 \
    } while (0)
#define T_CHECKF(c, ...)                                                                  \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            t_case_failed = 1;                                                            \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #c);       \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)
#define T_SKIP(...)                                                                       \
    do {                                                                                  \
        t_case_skipped = 1;                                                               \
        fprintf(stderr, "SKIP %s: ", __func__);                                           \
        fprintf(stderr, __VA_ARGS__);                                                     \
        fputc('\n', stderr);                                                              \
        return;                                                                           \
    } while (0)
#define T_RUN(fn)                                                                         \
    do {                                                                                  \
        t_case_failed = 0;                                                                \
        t_case_skipped = 0;                                                               \
        fn();                                                                             \
        if (t_case_skipped) t_skip++;                                                     \
        else if (t_case_failed) { t_fail++; fprintf(stderr, "FAIL %s\n", #fn); }          \
        else t_pass++;                                                                    \
    } while (0)

static inline int t_done(void)
{
    printf("RESULT pass=%d fail=%d skip=%d\n", t_pass, t_fail, t_skip);
    return t_fail ? 1 : 0;
}

/* ../shared (or $DPB_SHARED) when present, else NULL: tests that need it skip. */
static inline const char *t_shared(void)
{
    const char *e = getenv("DPB_SHARED");
    if (e && *e) return e;
    return access("../shared/fixtures", R_OK) == 0 ? "../shared" : NULL;
}

/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp). */
static inline const char *t_tmpdir(void)
{
    static char buf[256];
    const char *base = getenv("TMPDIR");
    snprintf(buf, sizeof buf, "%s/dpbtest.XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(buf);
}

#endif
