#!/bin/bash
# The CUDA backend's self-check (dev/cuda/backend_check.c), from the repo root.
#
# On the development machine (nvcc, the Debian libraries), build and stage:
#   bash dev/cuda/run_backend_check.sh --build-only
#     -> build/backend_check, copied to .devcarry/backend_check with the
#        non-CUDA shared libraries it needs in .devcarry/lib
# On the GPU machine (carry .devcarry), run:
#   bash dev/cuda/run_backend_check.sh                 # ops, fixtures, gpt-oss-20b speed (ctx 128, 2048)
#   bash dev/cuda/run_backend_check.sh --skip-ops --speed none
#   bash dev/cuda/run_backend_check.sh --skip-ops --skip-fixtures --speed synth:qwen3-32b --layers 8
# It uses .devcarry/backend_check when present (LD_LIBRARY_PATH gets
# .devcarry/lib), else builds from source (needs nvcc and the -dev packages).
# Options after the script name go to backend_check (see the comment at the
# top of dev/cuda/backend_check.c).
# Fixtures: $DPB_FIXTURES, else the first of .devcarry/fixtures,
# .devcarry/shared/fixtures, ../shared/fixtures that exists.
# BC_SANITIZE=1 runs under compute-sanitizer memcheck (slow: add
# --skip-fixtures --speed none).
# The log goes to $OUT/backend_check.log when $OUT is set, else build/.
# Exit status: that of backend_check (0 = every check passed).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build
NVCC=${NVCC:-nvcc}
t0=$(date +%s)

build() {
    echo "== build (make -j$(nproc), $NVCC)" >&2
    make -j"$(nproc)" "$B/libdeploybench.a" >&2
    local cuda_home=${CUDA_HOME:-$(dirname "$(dirname "$(command -v "$NVCC")")")}
    local pkg
    pkg=$(pkg-config --cflags --libs libcjson libpcre2-8 libutf8proc zlib 2>/dev/null || echo "-lcjson -lpcre2-8 -lutf8proc -lz")
    # shellcheck disable=SC2086
    gcc -std=c17 -O2 -g -Wall -Wextra -Werror -Wno-unused-function -D_GNU_SOURCE -Isrc -Idev/cuda -DDPB_HAVE_CUDA=1 \
        -I"$cuda_home/include" -fopenmp -pthread dev/cuda/backend_check.c "$B/libdeploybench.a" -o "$B/backend_check" \
        $pkg -L"$cuda_home/lib64" -Wl,-rpath,"$cuda_home/lib64" -lcublasLt -lcublas -lcudart -lstdc++ -lrt -ldl -lm
    echo "== built $B/backend_check in $(( $(date +%s) - t0 )) s; commit $(git describe --always --dirty 2>/dev/null || echo unknown)" >&2
}

if [ "${1:-}" = "--build-only" ]; then
    build
    mkdir -p .devcarry/lib
    cp "$B/backend_check" .devcarry/backend_check
    for l in $(ldd "$B/backend_check" | awk '/cjson|pcre2|utf8proc/ {print $3}'); do cp -L "$l" .devcarry/lib/; done
    echo "== staged .devcarry/backend_check and .devcarry/lib ($(du -sh .devcarry | cut -f1) in .devcarry)" >&2
    exit 0
fi

BIN=${BACKEND_CHECK:-}
if [ -z "$BIN" ] && [ -x .devcarry/backend_check ]; then
    BIN=.devcarry/backend_check
    export LD_LIBRARY_PATH=$PWD/.devcarry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    # cuBLAS / cudart come from the machine's CUDA toolkit
    if command -v "$NVCC" >/dev/null; then
        ch=$(dirname "$(dirname "$(command -v "$NVCC")")")
        export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$ch/lib64:$ch/lib
    fi
fi
if [ -z "$BIN" ]; then
    build
    BIN=$B/backend_check
fi
echo "== $BIN" >&2
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2 || true
fi
if [ -z "${DPB_FIXTURES:-}" ]; then
    for d in .devcarry/fixtures .devcarry/shared/fixtures ../shared/fixtures; do
        if [ -d "$d" ]; then export DPB_FIXTURES=$d; break; fi
    done
fi
R=${OUT:-$B}
mkdir -p "$R"
PRE=()
if [ "${BC_SANITIZE:-0}" = 1 ]; then PRE=(compute-sanitizer --tool memcheck --error-exitcode 3); fi
set +e
OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} "${PRE[@]}" "$BIN" "$@" 2>&1 | tee "$R/backend_check.log"
rc=${PIPESTATUS[0]}
set -e
echo "== backend_check exit $rc after $(( $(date +%s) - t0 )) s; log: $R/backend_check.log" >&2
exit "$rc"
