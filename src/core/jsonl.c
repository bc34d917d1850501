#include "core/jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct dpb_jsonlog {
    int fd;
    bool fsync_each;
    uint64_t lines;
    char *path;
    char *buf;
    size_t cap;
};

dpb_status dpb_jsonlog_open(const char *path, bool fsync_each, dpb_jsonlog **out)
{
    *out = NULL;
    dpb_jsonlog *w = calloc(1, sizeof *w);
    if (!w) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
    w->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int e = errno;
        free(w);
        return dpb_error_set(DPB_E_IO, "%s: cannot open for appending: %s", path, strerror(e));
    }
    w->path = strdup(path);
    w->fsync_each = fsync_each;
    if (!w->path) {
        close(w->fd);
        free(w);
        return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
    }
    *out = w;
    return DPB_OK;
}

static dpb_status write_all(dpb_jsonlog *w, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return dpb_error_set(DPB_E_IO, "%s: write failed after %llu lines: %s", w->path,
                                 (unsigned long long)w->lines, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    if (w->fsync_each && fsync(w->fd) != 0)
        return dpb_error_set(DPB_E_IO, "%s: fsync failed: %s", w->path, strerror(errno));
    w->lines++;
    return DPB_OK;
}

dpb_status dpb_jsonlog_write_raw(dpb_jsonlog *w, const char *line, size_t len)
{
    if (memchr(line, '\n', len))
        return dpb_error_set(DPB_E_ARG, "%s: a JSONL record may not contain a newline", w->path);
    if (len + 2 > w->cap) {
        size_t cap = len + 2 > 2 * w->cap ? len + 2 : 2 * w->cap;
        char *nb = realloc(w->buf, cap);
        if (!nb) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory for a %zu-byte line", w->path, len);
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf, line, len);
    w->buf[len] = '\n';
    return write_all(w, w->buf, len + 1);
}

dpb_status dpb_jsonlog_write(dpb_jsonlog *w, const cJSON *obj)
{
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "%s: cannot serialize a record", w->path);
    dpb_status st = dpb_jsonlog_write_raw(w, s, strlen(s));
    cJSON_free(s);
    return st;
}

uint64_t dpb_jsonlog_lines(const dpb_jsonlog *w) { return w->lines; }
const char *dpb_jsonlog_path(const dpb_jsonlog *w) { return w->path; }

dpb_status dpb_jsonlog_close(dpb_jsonlog *w)
{
    if (!w) return DPB_OK;
    dpb_status st = DPB_OK;
    if (close(w->fd) != 0) st = dpb_error_set(DPB_E_IO, "%s: close failed: %s", w->path, strerror(errno));
    free(w->path);
    free(w->buf);
    free(w);
    return st;
}

dpb_status dpb_jsonlog_repair(const char *path, uint64_t *complete_lines, uint64_t *removed_bytes)
{
    if (complete_lines) *complete_lines = 0;
    if (removed_bytes) *removed_bytes = 0;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return DPB_OK;
        return dpb_error_set(DPB_E_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    char buf[65536];
    uint64_t off = 0, last_nl_end = 0, lines = 0;
    for (;;) {
        ssize_t k = read(fd, buf, sizeof buf);
        if (k < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            return dpb_error_set(DPB_E_IO, "%s: read failed: %s", path, strerror(e));
        }
        if (k == 0) break;
        for (ssize_t i = 0; i < k; i++)
            if (buf[i] == '\n') {
                lines++;
                last_nl_end = off + (uint64_t)i + 1;
            }
        off += (uint64_t)k;
    }
    if (off != last_nl_end && ftruncate(fd, (off_t)last_nl_end) != 0) {
        int e = errno;
        close(fd);
        return dpb_error_set(DPB_E_IO, "%s: cannot cut the torn last line: %s", path, strerror(e));
    }
    close(fd);
    if (complete_lines) *complete_lines = lines;
    if (removed_bytes) *removed_bytes = off - last_nl_end;
    return DPB_OK;
}
