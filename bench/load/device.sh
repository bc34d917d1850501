#!/bin/bash
# Issue 7 on a quiet many-core machine (the GPU host's CPUs; no GPU used):
# the load generator's accuracy and one-core ceiling against the synthetic
# server, client pinned to core 0, server on cores 1-8.  Run from the repo root
# with the binary and its libraries in .devcarry/ (the binary now needs
# libcurl and libmicrohttpd at run time):
#   mkdir -p .devcarry/lib && cp build/deploybench .devcarry/ &&
#   ldd build/deploybench | awk '/=> \//{print $3}' | grep -vE '/libc\.so|/libm\.so|/ld-linux|/libpthread|/libdl' |
#       xargs -I{} cp -L {} .devcarry/lib/
# Output under $OUT (default /tmp/out): ceil/ (ceiling.csv, reqs.csv, host.txt, every run's folder).
export LD_LIBRARY_PATH=$PWD/.devcarry/lib:${LD_LIBRARY_PATH:-}
export DPB_BIN=${DPB_BIN:-$PWD/.devcarry/deploybench}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
date -u; lscpu | grep -E 'Model name|^CPU\(s\)'; cat /proc/loadavg
"$DPB_BIN" version
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "fd limit: $(ulimit -n)"
sh bench/load/ceiling.sh "$OUT/ceil" 0 1-8 8
echo "== ceiling.csv"; cat "$OUT/ceil/ceiling.csv"
echo "== reqs.csv"; cat "$OUT/ceil/reqs.csv"
