#!/bin/bash
# synth:PRESET:SEED:scaled filled on the GPU (deferred fill, one table per std) against the folder
# `deploybench synth --init scaled` writes: deploybench logits --backend cuda on both must agree.
# Device call: DPB_REAL_BIN=/path/deploybench bash dev/device/fillcheck.sh  (BACKEND=cpu, SPECS="..." to change)
B=${DPB_REAL_BIN:?}; export LD_LIBRARY_PATH=$(dirname "$B")/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
W=$(mktemp -d /tmp/fillcheck.XXXXXX); trap 'rm -rf "$W"' EXIT
python3 -c "
import torch; from safetensors.torch import save_file
save_file({'input_ids': torch.randint(0, 512, (64,), generator=torch.Generator().manual_seed(7))}, '$W/in.safetensors')"
for spec in ${SPECS:-qwen3-tiny:0:scaled gpt-oss-tiny:7:scaled llama-tiny:3:scaled gpt-oss-20b:0:scaled gpt-oss-20b:0:hf}; do
  IFS=: read -r p s i <<<"$spec"
  t0=$SECONDS
  "$B" synth --preset "$p" --seed "$s" --init "$i" --out "$W/m" >/dev/null || { echo "$spec: synth failed"; continue; }
  "$B" logits --model "$W/m" --input "$W/in.safetensors" --out "$W/a.safetensors" --backend ${BACKEND:-cuda} --dtype bf16 2>"$W/e1" || { echo "$spec: folder logits failed: $(tail -1 $W/e1)"; }
  "$B" logits --model "synth:$spec" --input "$W/in.safetensors" --out "$W/b.safetensors" --backend ${BACKEND:-cuda} --dtype bf16 2>"$W/e2" || { echo "$spec: in-memory logits failed: $(tail -1 $W/e2)"; }
  python3 -c "
from safetensors.torch import load_file
a=load_file('$W/a.safetensors')['logits']; b=load_file('$W/b.safetensors')['logits']
print('| synth:$spec | folder vs in-memory (GPU fill), cuda bf16 logits | max |diff| %.3g | %s |' % ((a-b).abs().max().item(), 'identical' if bool((a==b).all()) else 'DIFFERENT'))"
  rm -rf "$W/m" "$W/a.safetensors" "$W/b.safetensors"
  echo "  ($spec: $((SECONDS - t0)) s)"
done
