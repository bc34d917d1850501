#include "core/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

dpb_status dpb_file_map_open(const char *path, dpb_file_map *out)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dpb_error_set(DPB_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return dpb_error_set(DPB_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return dpb_error_set(DPB_E_IO, "%s: not a regular file", path);
    }
    out->size = (uint64_t)st.st_size;
    if (out->size > 0) {
        void *p = mmap(NULL, (size_t)out->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return dpb_error_set(DPB_E_IO, "%s: cannot map %llu bytes: %s", path,
                                 (unsigned long long)out->size, strerror(e));
        }
        out->data = p;
    }
    close(fd);
    out->path = strdup(path);
    if (!out->path) {
        dpb_file_map_close(out);
        return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
    }
    return DPB_OK;
}

void dpb_file_map_close(dpb_file_map *m)
{
    if (m->data) munmap((void *)m->data, (size_t)m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}

dpb_status dpb_file_read(const char *path, size_t max_bytes, char **out, size_t *out_len)
{
    *out = NULL;
    if (out_len) *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return dpb_error_set(DPB_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return dpb_error_set(DPB_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
        fclose(f);
        return dpb_error_set(DPB_E_RANGE, "%s: file is %lld bytes, more than the %zu allowed", path,
                             (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return dpb_error_set(DPB_E_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        free(buf);
        return dpb_error_set(DPB_E_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    buf[n] = 0;
    *out = buf;
    if (out_len) *out_len = n;
    return DPB_OK;
}

dpb_status dpb_file_write(const char *path, const void *data, size_t len)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
    snprintf(tmp, plen + 16, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        dpb_status st = dpb_error_set(DPB_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    size_t put = len ? fwrite(data, 1, len, f) : 0;
    int bad = (put != len) | (fflush(f) != 0) | (fsync(fileno(f)) != 0);
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        dpb_status st = dpb_error_set(DPB_E_IO, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return DPB_OK;
}

dpb_status dpb_file_write_text_in(const char *dir, const char *name, const char *text)
{
    char *path;
    dpb_status st = dpb_path_join(dir, name, &path);
    if (st) return st;
    st = dpb_file_write(path, text, strlen(text));
    free(path);
    return st;
}

int dpb_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int dpb_dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

dpb_status dpb_dir_create(const char *path)
{
    char *p = strdup(path);
    if (!p) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                dpb_status st = dpb_error_set(DPB_E_IO, "%s: cannot create directory: %s", p, strerror(errno));
                free(p);
                return st;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    if (!dpb_dir_exists(path)) return dpb_error_set(DPB_E_IO, "%s: exists and is not a directory", path);
    return DPB_OK;
}

dpb_status dpb_path_join(const char *dir, const char *name, char **out)
{
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    memcpy(s, dir, a);
    size_t k = a;
    if (k > 0 && s[k - 1] != '/') s[k++] = '/';
    memcpy(s + k, name, b + 1);
    *out = s;
    return DPB_OK;
}

dpb_status dpb_file_copy(const char *src, const char *dst)
{
    dpb_file_map m;
    dpb_status st = dpb_file_map_open(src, &m);
    if (st) return st;
    st = dpb_file_write(dst, m.data ? (const void *)m.data : "", (size_t)m.size);
    dpb_file_map_close(&m);
    return st;
}
