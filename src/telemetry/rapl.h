/* CPU energy from RAPL (Running Average Power Limit) through the Linux
 * powercap interface: <root>/intel-rapl:N/energy_uj, where <root> is
 * /sys/class/powercap or the environment variable DPB_POWERCAP_ROOT.
 *
 * Domains are chosen by their `name` file: package-N (each CPU socket) and
 * dram.  Counters wrap at max_energy_range_uj; dpb_rapl_delta_uj accounts for
 * one wrap between two readings (read at least every few minutes: a 300 W
 * package wraps a 262 kJ range in about 15 minutes).
 *
 * When the counters cannot be read (no powercap folder in a VM, no RAPL
 * domain, energy_uj readable only by root since Linux 5.10) dpb_rapl_open
 * returns DPB_E_UNAVAILABLE with "RAPL unavailable: <reason>". */
#ifndef DPB_TELEMETRY_RAPL_H
#define DPB_TELEMETRY_RAPL_H

#include <stdbool.h>
#include <stdint.h>
#include "core/status.h"

#define DPB_RAPL_MAX_DOMAINS 16
#define DPB_POWERCAP_DEFAULT_ROOT "/sys/class/powercap"

typedef enum dpb_rapl_kind { DPB_RAPL_PACKAGE = 0, DPB_RAPL_DRAM = 1 } dpb_rapl_kind;

typedef struct dpb_rapl_domain {
    char zone[64];           /* "intel-rapl:0" */
    char name[32];           /* contents of `name`: "package-0", "dram" */
    dpb_rapl_kind kind;
    uint64_t max_range_uj;   /* max_energy_range_uj; 0 when unreadable (no wrap correction) */
    char energy_path[512];
} dpb_rapl_domain;

typedef struct dpb_rapl {
    char root[400];
    int n;
    dpb_rapl_domain d[DPB_RAPL_MAX_DOMAINS];
} dpb_rapl;

/* Finds and test-reads the package and dram domains.  *out is freed with dpb_rapl_close. */
dpb_status dpb_rapl_open(dpb_rapl **out);
void dpb_rapl_close(dpb_rapl *r);
/* Reads domain i's counter in microjoules. */
dpb_status dpb_rapl_read(const dpb_rapl *r, int i, uint64_t *uj);
/* Energy between two readings of a counter that wraps to 0 after max_range_uj. */
uint64_t dpb_rapl_delta_uj(uint64_t before, uint64_t after, uint64_t max_range_uj);
const char *dpb_rapl_kind_name(dpb_rapl_kind k);

#endif
