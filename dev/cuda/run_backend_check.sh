#!/bin/bash
# The CUDA backend's self-check, from the repo root on the GPU machine:
#   bash dev/cuda/run_backend_check.sh                 # ops, fixtures, gpt-oss-20b speed (ctx 128, 2048)
#   bash dev/cuda/run_backend_check.sh --skip-ops --speed none
#   bash dev/cuda/run_backend_check.sh --speed synth:qwen3-32b --layers 8 --skip-ops --skip-fixtures
# Builds build/libdeploybench.a (make, nvcc) and build/backend_check, then
# runs it (options: the comment at the top of dev/cuda/backend_check.c).
# Fixtures: $DPB_FIXTURES, else .devcarry/fixtures when present, else
# ../shared/fixtures.  The log goes to $OUT/backend_check.log when $OUT is
# set (the device tool brings $OUT back), else to build/.
# Exit status: that of backend_check (0 = every check passed).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build
NVCC=${NVCC:-nvcc}
t0=$(date +%s)
echo "== build (make -j$(nproc), $NVCC)" >&2
make -j"$(nproc)" "$B/libdeploybench.a" >&2
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v "$NVCC")")")}
PKG=$(pkg-config --cflags --libs libcjson libpcre2-8 libutf8proc zlib 2>/dev/null || echo "-lcjson -lpcre2-8 -lutf8proc -lz")
# shellcheck disable=SC2086
gcc -std=c17 -O2 -g -Wall -Wextra -Werror -Wno-unused-function -D_GNU_SOURCE -Isrc -Idev/cuda -DDPB_HAVE_CUDA=1 \
    -I"$CUDA_HOME/include" -fopenmp -pthread dev/cuda/backend_check.c "$B/libdeploybench.a" -o "$B/backend_check" \
    $PKG -L"$CUDA_HOME/lib64" -Wl,-rpath,"$CUDA_HOME/lib64" -lcublasLt -lcublas -lcudart -lstdc++ -lrt -ldl -lm
echo "== built in $(( $(date +%s) - t0 )) s; commit $(git describe --always --dirty 2>/dev/null || echo unknown)" >&2
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2 || true
fi
if [ -z "${DPB_FIXTURES:-}" ]; then
    if [ -d .devcarry/fixtures ]; then export DPB_FIXTURES=.devcarry/fixtures; else export DPB_FIXTURES=../shared/fixtures; fi
fi
R=${OUT:-$B}
mkdir -p "$R"
set +e
OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} "$B/backend_check" "$@" 2>&1 | tee "$R/backend_check.log"
rc=${PIPESTATUS[0]}
set -e
echo "== backend_check exit $rc after $(( $(date +%s) - t0 )) s; log: $R/backend_check.log" >&2
exit "$rc"
