#!/bin/bash
# Attention lab (dev/cuda/attn_lab.cu): prefill, the CUDA-core tiled kernels vs
# the tensor-core kernel (src/backend/cuda/attn_prefill.cu) on gpt-oss-20b,
# Qwen3-32B and Yi-34B shapes; with --decode, the decode attention before and
# after src/backend/cuda/attn_decode.cu (bf16 and FP8 KV, graphs, copy
# bandwidth); checks and timings, Markdown tables last.
# From the repo root.
#
# On the development machine (nvcc, the Debian libraries), build and stage:
#   bash dev/cuda/run_attn_lab.sh --build-only [DIR]
#     -> build/attn_lab, copied to DIR (default .devcarry) with the non-CUDA
#        shared libraries it needs in DIR/lib
# On the GPU machine (carry DIR), run:
#   bash dev/cuda/run_attn_lab.sh [--dir DIR] [--decode] [--quick] [--reps N]
# It uses DIR/attn_lab when present (LD_LIBRARY_PATH gets DIR/lib for it
# alone), else builds from source (needs nvcc and the -dev packages).
# The tables go to $OUT/attn_lab.md and the progress to $OUT/attn_lab.log
# ($OUT when set, else build/).  Exit status: that of attn_lab (0 = every
# check passed, 1 = a check failed, 2 = a CUDA error).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build
NVCC=${NVCC:-nvcc}

build() {
    local t0 cuda_home pkg
    t0=$(date +%s)
    echo "== build (make -j$(nproc), $NVCC)" >&2
    make -j"$(nproc)" "$B/libdeploybench.a" >&2
    cuda_home=${CUDA_HOME:-$(dirname "$(dirname "$(command -v "$NVCC")")")}
    pkg=$(pkg-config --libs libcjson libpcre2-8 libutf8proc zlib libcurl libmicrohttpd 2>/dev/null ||
          echo "-lcjson -lpcre2-8 -lutf8proc -lz -lcurl -lmicrohttpd")
    "$NVCC" -std=c++17 -O3 -Isrc -lineinfo --Werror all-warnings -Xcompiler -Wall,-Wextra \
        -gencode arch=compute_90,code=sm_90 -c dev/cuda/attn_lab.cu -o "$B/attn_lab.o"
    # shellcheck disable=SC2086
    gcc "$B/attn_lab.o" "$B/libdeploybench.a" -o "$B/attn_lab" $pkg -L"$cuda_home/lib64" \
        -Wl,-rpath,"$cuda_home/lib64" -lcublasLt -lcublas -lcudart -lstdc++ -lrt -fopenmp -pthread -ldl -lm
    echo "== built $B/attn_lab in $(( $(date +%s) - t0 )) s; commit $(git describe --always --dirty 2>/dev/null || echo unknown)" >&2
}

if [ "${1:-}" = "--build-only" ]; then
    D=${2:-.devcarry}
    build
    mkdir -p "$D/lib"
    cp "$B/attn_lab" "$D/attn_lab"
    ldd "$B/attn_lab" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' |
        grep -v -E '/(libc|libm|libdl|libpthread|ld-linux[^/]*)\.so|/cuda|libcublas|libcudart' |
        while read -r l; do cp -L "$l" "$D/lib/"; done
    echo "== staged $D/attn_lab and $D/lib ($(du -sh "$D" | cut -f1) in $D)" >&2
    exit 0
fi

D=.devcarry
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) D=$2; shift 2 ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
BIN=$D/attn_lab
LIBS=
if [ -x "$BIN" ]; then
    LIBS=$PWD/$D/lib
else
    build
    BIN=$B/attn_lab
fi
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader >&2 || true
fi
R=${OUT:-$B}
mkdir -p "$R"
set +e
LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$BIN" "${ARGS[@]}" >"$R/attn_lab.md" 2>"$R/attn_lab.log"
rc=$?
set -e
cat "$R/attn_lab.log" >&2
cat "$R/attn_lab.md"
echo "== attn_lab exit $rc; tables: $R/attn_lab.md, log: $R/attn_lab.log" >&2
exit "$rc"
