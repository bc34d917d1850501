#!/bin/bash
# Issue 2 on the GPU machine: synth write speed (with raw disk speed in the same
# run) and transformers loading synth folders.  Run from the repo root with the
# binary and its libraries in .devcarry/.
export LD_LIBRARY_PATH=$PWD/.devcarry/lib:$LD_LIBRARY_PATH
B=$PWD/.devcarry/deploybench
M=${M:-/tmp/m}
OUT=${OUT:-/tmp/out}
mkdir -p $M $OUT
date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
lscpu | grep -E 'Model name|^CPU\(s\)'; df -h $M | tail -1
$B version
echo "== raw disk write (dd, 4 GiB, O_DIRECT)"; dd if=/dev/zero of=$M/dd.bin bs=64M count=64 oflag=direct 2>&1 | tail -1; rm -f $M/dd.bin
echo "== synth gpt-oss-20b"; $B synth --preset gpt-oss-20b --out $M/gpt-oss-20b
du -sb $M/gpt-oss-20b; ls -la $M/gpt-oss-20b
$B inspect $M/gpt-oss-20b --json > $OUT/inspect_gpt-oss-20b.json && grep -E 'params_total|params_active|weight_bytes"|kv_bytes_per_token|kv_bytes_fixed' $OUT/inspect_gpt-oss-20b.json
for p in gpt-oss-tiny qwen3-tiny llama-tiny; do $B synth --preset $p --out $M/$p; done
$B synth --preset gpt-oss-tiny --experts bf16 --out $M/gpt-oss-tiny-bf16
$B synth --preset qwen3-32b --layers 4 --out $M/qwen3-32b-l4
$B synth --preset yi-34b --layers 4 --out $M/yi-34b-l4
echo "== transformers"
PYTHONUNBUFFERED=1 python3 dev/device/hf_load.py $B $M/gpt-oss-tiny $M/gpt-oss-tiny-bf16 $M/qwen3-tiny $M/llama-tiny \
    $M/qwen3-32b-l4 $M/yi-34b-l4 $M/gpt-oss-20b 2>&1 | grep -v Warning | tee $OUT/hf_load.txt
