#!/bin/bash
# dev/cuda kernel lab: build with nvcc on the GPU machine and run every check
# and timing; ends with one Markdown table on stdout.  From the repo root:
#   bash dev/cuda/run_lab.sh            # full lab (about 1-2 minutes on an H200)
#   bash dev/cuda/run_lab.sh --quick    # small shapes only
# Environment: NVCC (default nvcc), LAB_BUILD (default build/lab),
#   LAB_ARCH (default "-gencode arch=compute_90,code=sm_90").
# Exit status: 0 when every check passed, 1 when one failed, 2 on a CUDA error.
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
# shellcheck disable=SC2086
$NVCC $NVF -Xcompiler -fopenmp -c dev/cuda/lab.cu -o "$B/lab.o" &
p2=$!
wait $p1
wait $p2
# shellcheck disable=SC2086
$NVCC $ARCH "$B/lab.o" "$B/decode_kernels.o" "$B/status.o" -lcublas -lgomp -o "$B/lab"
echo "== built in $(( $(date +%s) - t0 )) s" >&2
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader >&2 || true
fi
echo "== commit $(git describe --always --dirty 2>/dev/null || echo unknown)" >&2
t1=$(date +%s)
set +e
OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} "$B/lab" "$@"
rc=$?
echo "== lab ran in $(( $(date +%s) - t1 )) s, exit $rc" >&2
exit $rc
