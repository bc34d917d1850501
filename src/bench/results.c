#include "bench/results.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/file.h"
#include "core/json.h"

#define JSONL_MAX_LINE (64u << 20)

static dpb_status dir_is_empty(const char *dir, bool *empty)
{
    DIR *d = opendir(dir);
    if (!d) return dpb_error_set(DPB_E_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    *empty = true;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        *empty = false;
        break;
    }
    closedir(d);
    return DPB_OK;
}

dpb_status dpb_results_dir_open(const char *dir, bool resume, bool *was_empty)
{
    if (!dir || !*dir) return dpb_error_set(DPB_E_ARG, "--out: no folder given");
    bool empty = true;
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return dpb_error_set(DPB_E_ARG, "--out %s: exists and is not a folder", dir);
        dpb_status s = dir_is_empty(dir, &empty);
        if (s) return s;
        if (!empty && !resume)
            return dpb_error_set(DPB_E_ARG,
                                 "--out %s: folder is not empty (add --resume to continue the run in it, or "
                                 "choose a new folder)", dir);
    } else {
        dpb_status s = dpb_dir_create(dir);
        if (s) return dpb_error_prefix(s, "--out");
    }
    if (was_empty) *was_empty = empty;
    return DPB_OK;
}

struct dpb_jsonl {
    int fd;
    char *path;
};

dpb_status dpb_jsonl_open(const char *path, dpb_jsonl **out, size_t *dropped_bytes)
{
    *out = NULL;
    if (dropped_bytes) *dropped_bytes = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd < 0) return dpb_error_set(DPB_E_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return dpb_error_set(DPB_E_IO, "%s: not a regular file", path);
    }
    /* Find the end of the last complete line, reading backwards. */
    off_t size = st.st_size, keep = size;
    if (size > 0) {
        char buf[4096];
        off_t pos = size;
        keep = 0;
        while (pos > 0) {
            size_t n = pos >= (off_t)sizeof buf ? sizeof buf : (size_t)pos;
            pos -= (off_t)n;
            ssize_t r = pread(fd, buf, n, pos);
            if (r != (ssize_t)n) {
                int e = errno;
                close(fd);
                return dpb_error_set(DPB_E_IO, "%s: cannot read: %s", path, r < 0 ? strerror(e) : "short read");
            }
            size_t i = n;
            while (i > 0 && buf[i - 1] != '\n') i--;
            if (i > 0) {
                keep = pos + (off_t)i;
                break;
            }
        }
        if (keep < size) {
            if (ftruncate(fd, keep) != 0 || fsync(fd) != 0) {
                int e = errno;
                close(fd);
                return dpb_error_set(DPB_E_IO, "%s: cannot cut the partial last line: %s", path, strerror(e));
            }
            if (dropped_bytes) *dropped_bytes = (size_t)(size - keep);
        }
    }
    dpb_jsonl *j = calloc(1, sizeof *j);
    char *p = strdup(path);
    if (!j || !p) {
        free(j);
        free(p);
        close(fd);
        return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
    }
    j->fd = fd;
    j->path = p;
    *out = j;
    return DPB_OK;
}

dpb_status dpb_jsonl_append(dpb_jsonl *j, const cJSON *obj)
{
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "%s: cannot format the record", j->path);
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        cJSON_free(s);
        return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", j->path);
    }
    line[n] = '\n';
    line[n + 1] = 0;
    /* One write() per record: O_APPEND puts it at the end in one piece. */
    size_t done = 0;
    dpb_status st = DPB_OK;
    while (done < n + 1) {
        ssize_t w = write(j->fd, line + done, n + 1 - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            st = dpb_error_set(DPB_E_IO, "%s: cannot append: %s", j->path, w < 0 ? strerror(errno) : "no progress");
            break;
        }
        done += (size_t)w;
    }
    if (st == DPB_OK && fdatasync(j->fd) != 0)
        st = dpb_error_set(DPB_E_IO, "%s: cannot sync: %s", j->path, strerror(errno));
    free(line);
    return st;
}

void dpb_jsonl_close(dpb_jsonl *j)
{
    if (!j) return;
    close(j->fd);
    free(j->path);
    free(j);
}

dpb_status dpb_jsonl_read(const char *path, dpb_jsonl_fn fn, void *ctx)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return DPB_OK;
        return dpb_error_set(DPB_E_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    dpb_status st = DPB_OK;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len == 0 || line[len - 1] != '\n') break; /* partial last line: a record that never finished */
        if ((size_t)len > JSONL_MAX_LINE) {
            st = dpb_error_set(DPB_E_RANGE, "%s:%zu: line of %zd bytes is longer than %u", path, lineno, len,
                               JSONL_MAX_LINE);
            break;
        }
        line[--len] = 0;
        if (len == 0) continue;
        char what[600];
        snprintf(what, sizeof what, "%s:%zu", path, lineno);
        cJSON *obj;
        st = dpb_json_parse(line, (size_t)len, what, &obj);
        if (st) break;
        if (!cJSON_IsObject(obj)) {
            cJSON_Delete(obj);
            st = dpb_error_set(DPB_E_FORMAT, "%s: not a JSON object", what);
            break;
        }
        st = fn(obj, lineno, ctx);
        cJSON_Delete(obj);
        if (st) break;
    }
    if (st == DPB_OK && ferror(f)) st = dpb_error_set(DPB_E_IO, "%s: read error", path);
    free(line);
    fclose(f);
    return st;
}
