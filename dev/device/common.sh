#!/bin/bash
# Shared pieces of the device scripts (dev/device/*.sh).
#
# On the development machine, stage the binary for a device call:
#   make -j2 build/deploybench && bash dev/device/common.sh stage
# copies build/deploybench to .devcarry/deploybench and the shared libraries it
# needs into .devcarry/lib -- all but the C library itself (libc, libm, libdl,
# libpthread, the loader) and CUDA's (cuBLAS, cudart: the device machine has
# them at the path the binary's rpath names).  Carry `.devcarry` in the call.
#
# In a device script:  . "$(dirname "$0")/common.sh"; dpb_env
# sets
#   DPB_BIN  an executable that runs deploybench with .devcarry/lib on its
#            LD_LIBRARY_PATH: a wrapper, so that python (torch) started by the
#            same script keeps the machine's own libstdc++ and friends;
#            default .devcarry/deploybench, else build/deploybench
#   PY       python3 with torch and transformers (override: PY=/path/python)
#   OUT      result folder ($OUT of the device call; default build/devout)
#   DPB_WORK a fresh scratch folder for model folders (under $TMPDIR or
#            /tmp), removed when the script exits
# and prints the machine (GPU, driver, CPU, disk) once.
# dpb_elapsed prints seconds since dpb_env.
# dpb_py SCRIPT.py ARGS runs a python script with that environment, its output
# also in $OUT/SCRIPT.log and its Markdown table rows in $OUT/SCRIPT.md; returns
# the script's exit status.  From the repo root, in one line:
#   bash dev/device/common.sh py dev/device/hf_timing.py --models gpt-oss-20b

dpb_stage() {
    local src=${1:-build/deploybench}
    [ -x "$src" ] || { echo "common.sh stage: $src is missing: run make build/deploybench" >&2; return 1; }
    mkdir -p .devcarry/lib
    cp "$src" .devcarry/deploybench
    ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' |
        grep -v -E '/(libc|libm|libdl|libpthread|ld-linux[^/]*)\.so|/cuda' |
        while read -r l; do cp -L "$l" .devcarry/lib/; done
    echo "staged .devcarry/deploybench ($(git describe --always --dirty 2>/dev/null)) and $(find .devcarry/lib -type f | wc -l)" \
         "libraries; .devcarry holds $(du -sh .devcarry | cut -f1) (a call carries 64 MiB)" >&2
}

dpb_env() {
    DPB_T0=$(date +%s)
    local real lib
    if [ -n "${DPB_REAL_BIN:-}" ]; then real=$DPB_REAL_BIN
    elif [ -x .devcarry/deploybench ]; then real=$PWD/.devcarry/deploybench
    else real=$PWD/build/deploybench
    fi
    [ -x "$real" ] || { echo "common.sh: no deploybench binary ($real): stage one with 'bash dev/device/common.sh stage'" >&2; return 1; }
    lib=$(dirname "$real")/lib
    export OUT=${OUT:-$PWD/build/devout}
    export PY=${PY:-python3}
    mkdir -p "$OUT"
    DPB_WORK=$(mktemp -d "${TMPDIR:-/tmp}/dpb-work.XXXXXX") || return 1
    export DPB_WORK
    export DPB_BIN=$DPB_WORK/deploybench
    # shellcheck disable=SC2016  # $LD_LIBRARY_PATH and $@ expand when the wrapper runs
    printf '#!/bin/sh\nexport LD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\nexec "%s" "$@"\n' "$lib" "$real" > "$DPB_BIN"
    chmod +x "$DPB_BIN"
    trap 'rm -rf "$DPB_WORK"' EXIT
    date -u
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader || true
    fi
    lscpu | grep -E 'Model name|^CPU\(s\)' | tr -s ' '
    df -h "$DPB_WORK" | tail -1
    "$DPB_BIN" version || return 1
    "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())' || return 1
}

dpb_elapsed() { echo "== $* (+$(( $(date +%s) - DPB_T0 )) s)"; }

dpb_py() {
    local script=$1 name rc
    shift
    name=$(basename "$script" .py)
    dpb_elapsed "$name $*"
    # transformers' progress bars and per-call generation warnings only
    PYTHONUNBUFFERED=1 "$PY" "$script" "$@" 2>&1 |
        grep --line-buffered -v -E 'Loading weights|Loading checkpoint shards|^\s*$' | tee "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    grep -E '^\|' "$OUT/$name.log" > "$OUT/$name.md"
    dpb_elapsed "$name exit $rc"
    return "$rc"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    cd "$(dirname "$0")/../.."
    case "${1:-}" in
        stage) shift; dpb_stage "$@" ;;
        py) shift; set +e; dpb_env || exit 2; dpb_py "$@"; exit $? ;;
        *) echo "usage: bash dev/device/common.sh stage [BINARY] | py SCRIPT.py [ARGS]   (or source it)" >&2; exit 2 ;;
    esac
fi
