#!/usr/bin/env python3
"""Load deploybench synth folders with Hugging Face transformers (dev tool).

For each folder: AutoModelForCausalLM.from_pretrained on the GPU in bf16,
count parameters, run one forward pass over random ids, check the logits are
finite, and compare the parameter count with `deploybench inspect --json`.
gpt-oss MXFP4 folders load through transformers' MXFP4 path; when no MXFP4
kernel is available they are dequantized to bf16 (Mxfp4Config(dequantize=True)).
Usage: hf_load.py INSPECT_BIN DIR [DIR ...]
"""
import json, subprocess, sys, time
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

def load(d):
    cfg = AutoConfig.from_pretrained(d)
    kw = dict(dtype=torch.bfloat16, device_map="cuda")
    if getattr(cfg, "quantization_config", None):
        try:
            # transformers itself falls back to dequantizing to bf16 when the
            # `kernels` package is missing (it says so on stderr).
            return AutoModelForCausalLM.from_pretrained(d, **kw), "mxfp4 (transformers' default path)"
        except Exception as e:  # no MXFP4 kernels: dequantize
            print(f"  native MXFP4 load failed ({type(e).__name__}: {str(e)[:160]}); dequantizing", flush=True)
            from transformers import Mxfp4Config
            return AutoModelForCausalLM.from_pretrained(d, quantization_config=Mxfp4Config(dequantize=True), **kw), \
                "mxfp4 -> bf16 (dequantize=True)"
    return AutoModelForCausalLM.from_pretrained(d, **kw), "bf16"

def main():
    inspect_bin, dirs = sys.argv[1], sys.argv[2:]
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.cuda.get_device_name(0)}")
    rows = []
    for d in dirs:
        info = json.loads(subprocess.check_output([inspect_bin, "inspect", d, "--json"]))
        t0 = time.monotonic()
        try:
            model, how = load(d)
        except Exception as e:
            print(f"{d}: LOAD FAILED: {type(e).__name__}: {e}", flush=True)
            rows.append((d, "FAILED", 0, info["params_total"], False, 0.0))
            continue
        secs = time.monotonic() - t0
        # Parameters as deploybench counts them: dequantized experts hold the
        # same count as MXFP4 blocks (2 per byte); scales are not parameters.
        n = sum(p.numel() for p in model.parameters())
        ids = torch.randint(0, model.config.vocab_size, (1, 64), device="cuda")
        with torch.no_grad():
            logits = model(ids).logits.float()
        finite = bool(torch.isfinite(logits).all())
        print(f"{d}: loaded as {how} in {secs:.1f} s; params {n} (inspect {info['params_total']}, "
              f"{'equal' if n == info['params_total'] else 'DIFFERENT'}); logits finite={finite} "
              f"std={logits.std().item():.4f} peak_mem={torch.cuda.max_memory_allocated()/2**30:.1f} GiB", flush=True)
        rows.append((d, how, n, info["params_total"], finite, secs))
        del model
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    print("\n| folder | loaded as | params (torch) | params (inspect) | logits finite | load s |")
    print("|---|---|---|---|---|---|")
    for d, how, n, m, f, s in rows:
        print(f"| {d} | {how} | {n} | {m} | {f} | {s:.1f} |")
    sys.exit(0 if all(r[4] and r[2] == r[3] for r in rows) else 1)

if __name__ == "__main__":
    main()
