#!/usr/bin/env python3
"""transformers timings measured the way the reference study measured them (dev tool).

bf16, eager attention, batch 1, greedy `model.generate`, random prompt ids of each
--prompts length, --gen new tokens (default 128,512,1024,2048 x 64, as the reference).
Per model and prompt length (median of --reps runs after one warm-up):
  TTFT          one forward over the prompt (a fresh KV cache, logits of the last
                position only, as generate's prefill), CUDA-synchronized before and after
  generate(1)   model.generate with max_new_tokens=1: prefill + generate's own overhead
  generate(N)   model.generate with exactly N new tokens (min_new_tokens=N)
  decode tok/s  (N - 1) / (generate(N) - generate(1)): the N - 1 steps after the first token
  tok/s incl. prefill   N / generate(N): the reference study's TPOT-based figure
  peak GiB      torch.cuda.max_memory_allocated() over the generate(N) runs (weights included)
Weights: gpt-oss presets load the `deploybench synth` folder (MXFP4 experts dequantized to
bf16 by transformers, as the reference ran them); dense presets are built from the synth
folder's config.json with the preset's full layer count, random weights initialized
directly on the device (no disk), and their parameter count checked against
`deploybench inspect synth:PRESET`.  --load folder|config chooses for every model.

Run from the repo root through dev/device/common.sh (it sets DPB_BIN, OUT, DPB_WORK):
  bash dev/device/common.sh py dev/device/hf_timing.py [--models gpt-oss-20b,qwen3-32b,yi-34b]
Prints a Markdown table and writes $OUT/hf_timing.json (after every measurement).
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time

import torch

from fullwidth import dpb, free_device, hf_load, log, synth


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(device, fn):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def inspect(preset):
    p = subprocess.run([os.environ["DPB_BIN"], "inspect", f"synth:{preset}", "--json"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, check=True)
    return json.loads(p.stdout)


def build_from_config(preset, device, dtype, work):
    """The preset at full size with random weights made on the device, from synth's config.json."""
    from transformers import AutoConfig, AutoModelForCausalLM
    info = inspect(preset)
    d = os.path.join(work, "cfg")
    synth(preset, d, layers=1)  # the smallest folder that carries the preset's config.json
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    shutil.rmtree(d)
    os.makedirs(d)
    n = info["num_layers"]
    cfg["num_hidden_layers"] = n
    cfg.pop("layer_types", None)  # transformers rebuilds it for the layer count
    if "max_window_layers" in cfg:
        cfg["max_window_layers"] = n
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    config = AutoConfig.from_pretrained(d)
    shutil.rmtree(d)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="eager")
    model.eval()
    where = {str(p.device) for p in model.parameters()}
    if any(not w.startswith(device) for w in where):
        raise RuntimeError(f"{preset}: parameters built on {where}, not {device}")
    params = sum(p.numel() for p in model.parameters())
    if params != info["params_total"]:
        raise RuntimeError(f"{preset}: transformers built {params} parameters, inspect says {info['params_total']}")
    return model, f"from config, random init on {device}, {n} layers, {params:,} params (= inspect)"


def load_model(preset, how, device, dtype, work):
    if how == "config":
        return build_from_config(preset, device, dtype, work)
    d = os.path.join(work, preset)
    synth(preset, d)
    try:
        model, desc = hf_load(d, device, dtype)
    finally:
        shutil.rmtree(d, ignore_errors=True)  # the weights are in memory now: free the disk
    return model, f"synth folder ({desc})"


def measure(model, device, vocab, plen, gen, reps, seed):
    g = torch.Generator().manual_seed(seed + plen)
    ids = torch.randint(0, vocab, (1, plen), generator=g).to(device)
    mask = torch.ones_like(ids)
    kw = dict(attention_mask=mask, do_sample=False, pad_token_id=0)

    def forward():
        with torch.no_grad():
            return model(input_ids=ids, use_cache=True, logits_to_keep=1).logits

    def generate(n):
        return model.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw)

    ttft, g1, gn, peak = [], [], [], 0
    for _ in range(reps):
        ttft.append(timed(device, forward)[0])
        g1.append(timed(device, lambda: generate(1))[0])
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        secs, out = timed(device, lambda: generate(gen))
        if out.shape[1] != plen + gen:
            raise RuntimeError(f"generate returned {out.shape[1] - plen} new tokens, not {gen}")
        gn.append(secs)
        if device == "cuda":
            peak = max(peak, torch.cuda.max_memory_allocated())
    med = statistics.median
    return {"prompt": plen, "gen": gen, "reps": reps, "ttft_s": med(ttft), "generate1_s": med(g1),
            "generate_s": med(gn), "decode_tok_s": (gen - 1) / (med(gn) - med(g1)) if med(gn) > med(g1) else None,
            "tok_s_incl_prefill": gen / med(gn), "peak_gib": peak / 2**30 if device == "cuda" else None,
            "ttft_all_s": ttft, "generate1_all_s": g1, "generate_all_s": gn}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="gpt-oss-20b,qwen3-32b,yi-34b", help="comma list of synth presets")
    ap.add_argument("--prompts", default="128,512,1024,2048", help="prompt lengths (default 128,512,1024,2048)")
    ap.add_argument("--gen", type=int, default=64, help="new tokens per generate (default 64)")
    ap.add_argument("--reps", type=int, default=2, help="timed runs per length, median reported (default 2)")
    ap.add_argument("--load", choices=["auto", "folder", "config"], default="auto",
                    help="auto (default): gpt-oss* from the synth folder, others from config with random weights")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--seed", type=int, default=1234, help="seed of the prompt ids (default 1234)")
    ap.add_argument("--deadline", type=float, default=540,
                    help="seconds after start past which remaining lengths and models are skipped, so one "
                    "10-minute device call ends with results (default 540)")
    ap.add_argument("--json", default=None, help="JSON file (default $OUT/hf_timing.json)")
    args = ap.parse_args()
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    out_json = args.json or os.path.join(os.environ.get("OUT", "."), "hf_timing.json")
    import transformers
    env = {"torch": torch.__version__, "transformers": transformers.__version__,
           "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
           "attn_implementation": "eager", "dtype": args.dtype}
    log(f"torch {env['torch']}, transformers {env['transformers']}, {env['device']}")
    rows, skipped = [], []
    t_start = time.monotonic()

    def save():
        with open(out_json, "w") as f:
            json.dump({"env": env, "args": vars(args), "results": rows, "skipped": skipped}, f, indent=1)

    for preset in args.models.split(","):
        if time.monotonic() - t_start > args.deadline:
            skipped.append(f"{preset}: deadline")
            continue
        how = args.load if args.load != "auto" else ("folder" if preset.startswith("gpt-oss") else "config")
        free_device()
        try:
            t, (model, desc) = timed(args.device, lambda: load_model(preset, how, args.device, dtype,
                                                                     os.environ["DPB_WORK"]))
        except Exception as e:
            log(f"{preset}: LOAD FAILED: {type(e).__name__}: {e}")
            rows.append({"model": preset, "error": f"load: {type(e).__name__}: {e}"})
            save()
            continue
        weights_gib = torch.cuda.memory_allocated() / 2**30 if args.device == "cuda" else None
        log(f"{preset}: {desc}; {t:.1f} s" + (f"; {weights_gib:.1f} GiB allocated" if weights_gib else ""))
        vocab = model.config.vocab_size
        try:  # warm-up: kernels, allocator, generate's first-call setup
            w, _ = timed(args.device, lambda: model.generate(
                torch.zeros(1, 16, dtype=torch.long, device=args.device), max_new_tokens=4, min_new_tokens=4,
                do_sample=False, pad_token_id=0))
            log(f"{preset}: warm-up generate {w:.1f} s")
            for plen in map(int, args.prompts.split(",")):
                if time.monotonic() - t_start > args.deadline:
                    skipped.append(f"{preset} prompt {plen}: deadline")
                    log(f"{preset} prompt {plen}: skipped (deadline {args.deadline:g} s)")
                    continue
                r = measure(model, args.device, vocab, plen, args.gen, args.reps, args.seed)
                r.update(model=preset, loaded_as=desc, load_s=t, weights_gib=weights_gib)
                rows.append(r)
                save()
                dec = f"{r['decode_tok_s']:.1f}" if r["decode_tok_s"] else "—"
                log(f"{preset} prompt {plen}: TTFT {1e3 * r['ttft_s']:.1f} ms, generate({args.gen}) "
                    f"{r['generate_s']:.2f} s, decode {dec} tok/s, incl. prefill {r['tok_s_incl_prefill']:.1f} tok/s"
                    + (f", peak {r['peak_gib']:.1f} GiB" if r["peak_gib"] else ""))
        except Exception as e:
            log(f"{preset}: FAILED: {type(e).__name__}: {e}")
            rows.append({"model": preset, "error": f"{type(e).__name__}: {e}"})
            save()
        del model
        free_device()
    save()

    print()
    print(f"transformers {env['transformers']}, torch {env['torch']}, {env['device']}: {args.dtype}, eager attention, "
          f"batch 1, greedy generate, {args.gen} new tokens, median of {args.reps} after a warm-up.")
    print()
    print("| model | weights | prompt | TTFT ms (forward) | generate(1) ms | generate(%d) s | decode tok/s "
          "| tok/s incl. prefill | peak GiB |" % args.gen)
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | **failed**: {r['error'][:300]} | | | | | | | |")
            continue
        dec = f"{r['decode_tok_s']:.1f}" if r["decode_tok_s"] else "—"
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] else "—"
        print(f"| {r['model']} | {r['loaded_as']} | {r['prompt']} | {1e3 * r['ttft_s']:.1f} | "
              f"{1e3 * r['generate1_s']:.1f} | {r['generate_s']:.2f} | {dec} | {r['tok_s_incl_prefill']:.1f} | {peak} |")
    for s in skipped:
        print(f"skipped: {s}")
    log(f"done; JSON in {out_json}")
    return 0 if rows and not skipped and all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
