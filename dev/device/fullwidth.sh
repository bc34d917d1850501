#!/bin/bash
# Full-width check against transformers (issue 5), on the GPU machine, from the repo root:
#   bash dev/device/fullwidth.sh                 # gpt-oss-20b in full, qwen3-32b and yi-34b with 4 layers
#   bash dev/device/fullwidth.sh --models qwen3-32b:4
# Options go to dev/device/fullwidth.py (see its --help). Needs .devcarry/deploybench
# (stage it with `bash dev/device/common.sh stage`) or build/deploybench, and python3
# with torch + transformers (PY=... to choose another). Results: $OUT/fullwidth.{md,json,log}.
# On the development machine (CPU, tiny presets):
#   PY=/path/venv/bin/python bash dev/device/fullwidth.sh --backend cpu --models gpt-oss-tiny,qwen3-tiny,llama-tiny
set -uo pipefail
cd "$(dirname "$0")/../.."
. dev/device/common.sh
dpb_env || exit 2
dpb_py dev/device/fullwidth.py "$@"
