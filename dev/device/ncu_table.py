#!/usr/bin/env python3
"""Per-kernel table of an ncu CSV (ncu --csv --metrics gpu__time_duration.sum ...), as Markdown.

    python3 dev/device/ncu_table.py FILE.csv [TOP]

Kernels are grouped by name (template arguments kept, parameters dropped), sorted by total time; durations
in microseconds whatever unit ncu printed (ns/nsecond, us/usecond, ms/msecond)."""
import collections
import csv
import sys

SCALE = {'ns': 1e-3, 'nsecond': 1e-3, 'us': 1.0, 'usecond': 1.0, 'ms': 1e3, 'msecond': 1e3}


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    rows = [r for r in csv.reader(l for l in open(path) if l.startswith('"'))]
    if not rows:
        print('no ncu rows in ' + path)
        return
    h = rows[0]
    ki, vi, ui = h.index('Kernel Name'), h.index('Metric Value'), h.index('Metric Unit')
    agg = collections.defaultdict(lambda: [0, 0.0])
    tot = 0.0
    for r in rows[1:]:
        v = float(r[vi].replace(',', '')) * SCALE.get(r[ui], 1.0)
        k = r[ki].split('(')[0][:70]
        agg[k][0] += 1
        agg[k][1] += v
        tot += v
    print(f"{len(rows) - 1} kernels, {tot:.1f} us in all")
    print("| kernel | calls | total us | avg us | share |\n|---|---|---|---|---|")
    for k, (n, t) in sorted(agg.items(), key=lambda x: -x[1][1])[:top]:
        print(f"| {k} | {n} | {t:.1f} | {t / n:.2f} | {100 * t / tot:.1f} % |")


if __name__ == '__main__':
    main()
