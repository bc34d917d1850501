#include "telemetry/rapl.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "telemetry/host.h"

const char *dpb_rapl_kind_name(dpb_rapl_kind k) { return k == DPB_RAPL_DRAM ? "dram" : "package"; }

uint64_t dpb_rapl_delta_uj(uint64_t before, uint64_t after, uint64_t max_range_uj)
{
    if (after >= before) return after - before;
    /* The counter passed max_range_uj and restarted from 0. */
    if (max_range_uj >= before) return (max_range_uj - before) + after;
    return after; /* no usable range: count from the restart */
}

static dpb_status parse_u64(const char *path, const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    while (*end == '\n' || *end == ' ') end++;
    if (errno || end == text || *end || text[0] == '-')
        return dpb_error_set(DPB_E_FORMAT, "%s: '%.40s' is not a counter", path, text);
    *out = v;
    return DPB_OK;
}

dpb_status dpb_rapl_read(const dpb_rapl *r, int i, uint64_t *uj)
{
    if (!r || i < 0 || i >= r->n) return dpb_error_set(DPB_E_ARG, "RAPL: no domain %d", i);
    char buf[64];
    dpb_status st = dpb_read_text(r->d[i].energy_path, buf, sizeof buf);
    if (st) return st;
    return parse_u64(r->d[i].energy_path, buf, uj);
}

static int zone_cmp(const void *a, const void *b)
{
    return strcmp(((const dpb_rapl_domain *)a)->zone, ((const dpb_rapl_domain *)b)->zone);
}

dpb_status dpb_rapl_open(dpb_rapl **out)
{
    *out = NULL;
    const char *root = getenv("DPB_POWERCAP_ROOT");
    if (!root || !*root) root = DPB_POWERCAP_DEFAULT_ROOT;
    DIR *dir = opendir(root);
    if (!dir) {
        int e = errno;
        if (e == ENOENT)
            return dpb_error_set(DPB_E_UNAVAILABLE,
                                 "RAPL unavailable: %s does not exist (no powercap driver: a virtual machine, "
                                 "or a CPU or kernel without intel_rapl)", root);
        return dpb_error_set(DPB_E_UNAVAILABLE, "RAPL unavailable: cannot open %s: %s", root, strerror(e));
    }
    dpb_rapl *r = calloc(1, sizeof *r);
    if (!r) {
        closedir(dir);
        return dpb_error_set(DPB_E_NOMEM, "RAPL: out of memory");
    }
    snprintf(r->root, sizeof r->root, "%s", root);
    char first_err[600] = "";
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        /* intel-rapl:N and intel-rapl:N:M; not intel-rapl-mmio or the bare control type. */
        if (strncmp(de->d_name, "intel-rapl:", 11) != 0) continue;
        char path[600], name[64];
        snprintf(path, sizeof path, "%s/%s/name", root, de->d_name);
        if (dpb_read_text(path, name, sizeof name) != DPB_OK) continue;
        name[strcspn(name, "\n")] = 0;
        dpb_rapl_kind kind;
        if (strncmp(name, "package", 7) == 0) kind = DPB_RAPL_PACKAGE;
        else if (strcmp(name, "dram") == 0) kind = DPB_RAPL_DRAM;
        else continue;
        if (r->n == DPB_RAPL_MAX_DOMAINS) break;
        dpb_rapl_domain *d = &r->d[r->n];
        memset(d, 0, sizeof *d);
        snprintf(d->zone, sizeof d->zone, "%s", de->d_name);
        snprintf(d->name, sizeof d->name, "%s", name);
        d->kind = kind;
        snprintf(d->energy_path, sizeof d->energy_path, "%s/%s/energy_uj", root, de->d_name);
        char buf[64];
        snprintf(path, sizeof path, "%s/%s/max_energy_range_uj", root, de->d_name);
        if (dpb_read_text(path, buf, sizeof buf) == DPB_OK) {
            uint64_t v;
            if (parse_u64(path, buf, &v) == DPB_OK) d->max_range_uj = v;
        }
        if (dpb_read_text(d->energy_path, buf, sizeof buf) != DPB_OK) {
            if (!first_err[0]) snprintf(first_err, sizeof first_err, "%s", dpb_error_message());
            continue;
        }
        uint64_t v;
        if (parse_u64(d->energy_path, buf, &v) != DPB_OK) {
            if (!first_err[0]) snprintf(first_err, sizeof first_err, "%s", dpb_error_message());
            continue;
        }
        r->n++;
    }
    closedir(dir);
    if (r->n == 0) {
        dpb_status st;
        if (first_err[0])
            st = dpb_error_set(DPB_E_UNAVAILABLE, "RAPL unavailable: %s%s", first_err,
                               strstr(first_err, "ermission") ? " (energy_uj is readable only by root since "
                                                               "Linux 5.10)" : "");
        else
            st = dpb_error_set(DPB_E_UNAVAILABLE, "RAPL unavailable: no package or dram domain under %s", root);
        free(r);
        return st;
    }
    qsort(r->d, (size_t)r->n, sizeof r->d[0], zone_cmp);
    *out = r;
    return DPB_OK;
}

void dpb_rapl_close(dpb_rapl *r) { free(r); }
