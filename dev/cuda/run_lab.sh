#!/bin/bash
# dev/cuda kernel lab: build with nvcc on the GPU machine and run every check
# and timing; ends with one Markdown table on stdout.  From the repo root:
#   bash dev/cuda/run_lab.sh            # full lab (build ~1 min + run ~1 min, estimated)
#   bash dev/cuda/run_lab.sh --quick    # small shapes only
#   bash dev/cuda/run_lab.sh --only moe,attn --seed 7   # a subset, a fixed seed
#   LAB_SANITIZE=1 bash dev/cuda/run_lab.sh --quick     # under compute-sanitizer
# Environment: NVCC (default nvcc), LAB_BUILD (default build/lab),
#   LAB_ARCH (default "-gencode arch=compute_90,code=sm_90").
# Exit status: 0 when every check passed, 1 when one failed, 2 on a CUDA error,
# 3 when compute-sanitizer found an error.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${LAB_BUILD:-build/lab}
NVCC=${NVCC:-nvcc}
ARCH=${LAB_ARCH:-"-gencode arch=compute_90,code=sm_90"}
mkdir -p "$B"
echo "== build ($NVCC, $ARCH) in $B" >&2
t0=$(date +%s)
NVF="-std=c++17 -O3 -Isrc -lineinfo --Werror all-warnings -Xcompiler -Wall,-Wextra $ARCH"
gcc -std=c17 -O2 -D_GNU_SOURCE -Isrc -c src/core/status.c -o "$B/status.o"
# shellcheck disable=SC2086
$NVCC $NVF -c src/backend/cuda/decode_kernels.cu -o "$B/decode_kernels.o" &
p1=$!
# the grouped MoE's wgmma kernels: sm_90a (the Makefile's flags for this file)
# shellcheck disable=SC2086
$NVCC ${NVF/$ARCH/} -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=compute_80 \
    -c src/backend/cuda/moe_wgmma.cu -o "$B/moe_wgmma.o" &
p3=$!
# shellcheck disable=SC2086
$NVCC $NVF -Xcompiler -fopenmp -c dev/cuda/lab.cu -o "$B/lab.o" &
p2=$!
wait $p1
wait $p2
wait $p3
# shellcheck disable=SC2086
$NVCC $ARCH "$B/lab.o" "$B/decode_kernels.o" "$B/moe_wgmma.o" "$B/status.o" -lcublas -lgomp -o "$B/lab"
echo "== built in $(( $(date +%s) - t0 )) s" >&2
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader >&2 || true
fi
echo "== commit $(git describe --always --dirty 2>/dev/null || echo unknown)" >&2
# The table goes to $R/cuda_lab.md and the progress log (seed, per-row lines,
# errors) to $R/cuda_lab.log, R = $OUT when set (the device tool brings $OUT
# back), else the build folder; the table is printed last.
R=${OUT:-$B}
mkdir -p "$R"
t1=$(date +%s)
set +e
# LAB_SANITIZE=1 runs the lab under compute-sanitizer memcheck (slow: use
# with --quick; works where the runtime allows it, see the device notes)
PRE=()
if [ "${LAB_SANITIZE:-0}" = 1 ]; then PRE=(compute-sanitizer --tool memcheck --error-exitcode 3); fi
OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} "${PRE[@]}" "$B/lab" "$@" >"$R/cuda_lab.md" 2>"$R/cuda_lab.log"
rc=$?
set -e
head -n 2 "$R/cuda_lab.log" >&2
if [ $rc -ge 2 ]; then tail -n 20 "$R/cuda_lab.log" >&2; fi
cat "$R/cuda_lab.md"
echo "== lab ran in $(( $(date +%s) - t1 )) s, exit $rc; table: $R/cuda_lab.md, log: $R/cuda_lab.log" >&2
exit $rc
