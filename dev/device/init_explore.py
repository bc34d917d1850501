#!/usr/bin/env python3
"""How well conditioned is a synth initialization? (dev tool, CPU or GPU)

Builds a transformers model of a synth preset's shapes (optionally fewer layers
or a smaller vocabulary), fills it with the distributions of `deploybench synth
--init hf|scaled` (the same distributions as src/synth/synth.c, drawn by torch,
not the same bytes), and measures on a prompt of random ids:

  floor:   transformers bf16 against the same weights in f32: worst / median
           rel_l2 over positions and top-1 agreement (the floor that issue 5's
           bf16-vs-bf16 bound can be met at);
  shares:  per layer, median over positions of ||attention output|| / ||residual
           entering the layer|| and ||MLP or MoE output|| / ||residual entering
           the MLP|| (f32): how much each layer still moves the residual stream;
  router:  per layer, how often each expert is chosen (f32): the effective
           number of experts exp(entropy) and the least / most chosen share;
  controls (f32, against the unchanged f32 logits): one expert of the middle
           layer redrawn with another seed, and the middle layer's o_proj
           redrawn: the rel_l2 and top-1 change a wrong layer causes.

Usage: init_explore.py --preset gpt-oss-20b --layers 2 --vocab 32768 --init scaled
Prints one JSON line (--json FILE also writes it) and a readable summary.
"""
import argparse, json, math, sys, time

import torch

FP4 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])
FP4_STD = math.sqrt(float((FP4 ** 2).mean()))  # 2.926: uniform random codes

PRESETS = {  # the published shapes, as src/synth/presets.c writes them
    "gpt-oss-20b": dict(model_type="gpt_oss", vocab_size=201088, hidden_size=2880, intermediate_size=2880,
                        num_hidden_layers=24, num_attention_heads=64, num_key_value_heads=8, head_dim=64,
                        num_local_experts=32, sliding_window=128),
    "gpt-oss-1b": dict(model_type="gpt_oss", vocab_size=201088, hidden_size=1024, intermediate_size=1024,
                       num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=4, head_dim=64,
                       num_local_experts=32, sliding_window=128),
    "qwen3-32b": dict(model_type="qwen3", vocab_size=151936, hidden_size=5120, intermediate_size=25600,
                      num_hidden_layers=64, num_attention_heads=64, num_key_value_heads=8, head_dim=128),
    "qwen3-1b": dict(model_type="qwen3", vocab_size=151936, hidden_size=2048, intermediate_size=6144,
                     num_hidden_layers=10, num_attention_heads=16, num_key_value_heads=8, head_dim=128),
    "yi-34b": dict(model_type="llama", vocab_size=64000, hidden_size=7168, intermediate_size=20480,
                   num_hidden_layers=60, num_attention_heads=56, num_key_value_heads=8, head_dim=128),
}


def make_config(preset, layers, vocab):
    from transformers import AutoConfig
    p = dict(PRESETS[preset])
    mt = p.pop("model_type")
    if layers:
        p["num_hidden_layers"] = layers
    if vocab:
        p["vocab_size"] = vocab
    L = p["num_hidden_layers"]
    kw = dict(p, tie_word_embeddings=False, attention_bias=False)
    if mt == "gpt_oss":
        kw.update(attention_bias=True, num_experts_per_tok=4, rms_norm_eps=1e-5,
                  layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(L)],
                  rope_parameters=dict(rope_type="yarn", rope_theta=150000.0, factor=32.0, beta_fast=32.0,
                                       beta_slow=1.0, original_max_position_embeddings=4096, truncate=False))
    elif mt == "qwen3":
        kw.update(rms_norm_eps=1e-6, rope_parameters=dict(rope_type="default", rope_theta=1e6))
    else:
        kw.update(rms_norm_eps=1e-5, rope_parameters=dict(rope_type="default", rope_theta=5e6))
    return AutoConfig.for_model(mt, **kw)


def init_std(name, shape, cfg, init):
    """(kind, std) of parameter `name` (transformers' names) under an init; kind: ones|normal|mxfp4."""
    H, L = cfg.hidden_size, cfg.num_hidden_layers
    if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
        return "ones", 1.0
    moe = hasattr(cfg, "num_local_experts")
    if init == "hf" or name.endswith("bias") or name.endswith("sinks"):
        # hf: N(0, 0.02) everywhere (transformers' initializer_range); MXFP4 experts: uniform codes
        # under 2^-7.  Biases and sinks keep N(0, 0.02) in both inits.
        if moe and name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            return "mxfp4", 2.0 ** -7
        return "normal", 0.02
    res = 1.0 / math.sqrt(2 * L)  # GPT-2 / Megatron: residual-branch outputs / sqrt(2 x layers)
    if name.endswith("embed_tokens.weight"):
        return "normal", 1.0
    if name.endswith("lm_head.weight"):
        return "normal", 1.0 / math.sqrt(H)
    if name.endswith("experts.gate_up_proj"):  # [E, H, 2I]: fan-in H
        return "mxfp4", 2.0 ** round(math.log2(1.0 / math.sqrt(H) / FP4_STD))
    if name.endswith("experts.down_proj"):  # [E, I, H]: fan-in I
        return "mxfp4", 2.0 ** round(math.log2(res / math.sqrt(cfg.intermediate_size) / FP4_STD))
    fan_in = shape[-1]
    if name.endswith(("o_proj.weight", "down_proj.weight")):
        return "normal", res / math.sqrt(fan_in)
    return "normal", 1.0 / math.sqrt(fan_in)


def fill(p, kind, std, gen):
    if kind == "ones":
        p.fill_(1.0)
    elif p.dim() == 3:  # experts: one at a time (memory)
        for e in range(p.shape[0]):
            fill(p[e], kind, std, gen)
    elif kind == "mxfp4":
        codes = torch.randint(0, 16, p.shape, generator=gen, dtype=torch.uint8)
        p.copy_(FP4[codes.long()] * std)
    else:
        p.copy_(torch.randn(p.shape, generator=gen) * std)


def init_model(model, cfg, init, seed):
    gen = torch.Generator().manual_seed(seed)
    table = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            kind, std = init_std(name, tuple(p.shape), cfg, init)
            fill(p, kind, std, gen)
            table[name] = (kind, std)
    return table


def compare(a, r, tie=1e-2):
    a, r = a.double(), r.double()
    d = a - r
    rel = d.norm(dim=1) / r.norm(dim=1).clamp_min(1e-30)
    same = a.argmax(1) == r.argmax(1)
    scale = r.abs().amax(1).clamp_min(1e-30)
    r2 = r.topk(2, dim=1).values
    gap = (r2[:, 0] - r2[:, 1]) / scale
    return dict(rel_l2_worst=float(rel.max()), rel_l2_median=float(rel.median()),
                top1=float(same.double().mean()), differ=int((~same).sum()),
                near_ties=int(((~same) & (gap < tie)).sum()))


class Probe:
    """Hooks: per layer attention and MLP shares, router choices."""

    def __init__(self, model):
        self.h = []
        self.share_attn, self.share_mlp, self.router = {}, {}, {}
        for i, layer in enumerate(model.model.layers):
            self.h.append(layer.register_forward_pre_hook(self.pre(i), with_kwargs=True))
            self.h.append(layer.self_attn.register_forward_hook(self.attn(i)))
            self.h.append(layer.post_attention_layernorm.register_forward_pre_hook(self.mid(i)))
            self.h.append(layer.mlp.register_forward_hook(self.mlp(i)))
            if hasattr(layer.mlp, "router"):
                self.h.append(layer.mlp.router.register_forward_hook(self.rt(i)))
        self.res_in, self.res_mid = {}, {}

    def pre(self, i):
        def f(mod, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            self.res_in[i] = x.detach().float()[0].norm(dim=-1)
        return f

    def attn(self, i):
        def f(mod, args, out):
            o = out[0] if isinstance(out, tuple) else out
            self.share_attn[i] = float((o.detach().float()[0].norm(dim=-1) / self.res_in[i]).median())
        return f

    def mid(self, i):
        def f(mod, args):
            self.res_mid[i] = args[0].detach().float()[0].norm(dim=-1)
        return f

    def mlp(self, i):
        def f(mod, args, out):
            o = out[0] if isinstance(out, tuple) else out
            self.share_mlp[i] = float((o.detach().float().reshape(-1, o.shape[-1]).norm(dim=-1) / self.res_mid[i]).median())
        return f

    def rt(self, i):
        def f(mod, args, out):
            idx = out[2].reshape(-1)
            n = mod.num_experts
            c = torch.bincount(idx, minlength=n).double()
            p = c / c.sum()
            ent = float(-(p[p > 0] * p[p > 0].log()).sum())
            self.router[i] = dict(eff_experts=math.exp(ent), min_share=float(p.min()) * n, max_share=float(p.max()) * n,
                                  unused=int((c == 0).sum()), top1_weight=float(out[1][:, 0].float().mean())
                                  if out[1].dim() == 2 else None)
        return f

    def remove(self):
        for h in self.h:
            h.remove()

    def summary(self):
        return dict(share_attn=[round(self.share_attn[i], 4) for i in sorted(self.share_attn)],
                    share_mlp=[round(self.share_mlp[i], 4) for i in sorted(self.share_mlp)],
                    router=[self.router[i] for i in sorted(self.router)])


def forward(model, ids):
    with torch.no_grad():
        return model(input_ids=ids[None], use_cache=False).logits[0].float()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS))
    ap.add_argument("--layers", type=int, help="layer count (default the preset's)")
    ap.add_argument("--vocab", type=int, help="vocabulary (default the preset's)")
    ap.add_argument("--init", default="scaled", choices=["hf", "scaled"])
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-controls", dest="controls", action="store_false")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from transformers import AutoModelForCausalLM
    t0 = time.monotonic()
    cfg = make_config(a.preset, a.layers, a.vocab)
    cfg._attn_implementation = "eager"
    from transformers.initialization import no_init_weights
    with no_init_weights():  # every parameter is filled below
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="eager").eval()
    stamp = lambda what: print(f"[{time.monotonic() - t0:6.1f} s] {what}", file=sys.stderr, flush=True)
    stamp("built")
    table = init_model(model, cfg, a.init, a.seed)
    stamp("initialized")
    ids = torch.randint(0, cfg.vocab_size, (a.tokens,), generator=torch.Generator().manual_seed(1234))
    lb = forward(model, ids)
    tb = time.monotonic() - t0
    stamp("bf16 forward")
    model.float()
    probe = Probe(model)
    lf = forward(model, ids)
    probe.remove()
    stamp("f32 forward")
    res = dict(preset=a.preset, layers=cfg.num_hidden_layers, vocab=cfg.vocab_size, init=a.init, tokens=a.tokens,
               floor=compare(lb, lf), logit_std=float(lf.std()),
               share_attn=[round(probe.share_attn[i], 4) for i in sorted(probe.share_attn)],
               share_mlp=[round(probe.share_mlp[i], 4) for i in sorted(probe.share_mlp)],
               router={i: probe.router[i] for i in sorted(probe.router)},
               stds={k: v for k, v in table.items() if ".layers.0." in k or "layers" not in k})
    if a.controls:
        mid = cfg.num_hidden_layers // 2
        layer = model.model.layers[mid]
        gen = torch.Generator().manual_seed(a.seed + 1)
        with torch.no_grad():
            if hasattr(layer.mlp, "experts"):
                ex = layer.mlp.experts
                # the expert most often chosen in that layer: redraw its weights with another seed
                saved = (ex.gate_up_proj[0].clone(), ex.down_proj[0].clone())
                for nm in ("gate_up_proj", "down_proj"):
                    p = getattr(ex, nm)
                    kind, std = table[f"model.layers.{mid}.mlp.experts.{nm}"]
                    tmp = torch.empty_like(p[0])
                    fill(tmp, kind, std, gen)
                    p[0].copy_(tmp)
                res["control_expert"] = compare(forward(model, ids), lf)
                ex.gate_up_proj[0].copy_(saved[0])
                ex.down_proj[0].copy_(saved[1])
            w = layer.self_attn.o_proj.weight
            saved = w.clone()
            kind, std = table[f"model.layers.{mid}.self_attn.o_proj.weight"]
            fill(w, kind, std, gen)
            res["control_o_proj"] = compare(forward(model, ids), lf)
            w.copy_(saved)
    res["seconds"] = round(time.monotonic() - t0, 1)
    res["seconds_bf16"] = round(tb, 1)
    line = json.dumps(res)
    print(line)
    if a.json:
        with open(a.json, "a") as f:
            f.write(line + "\n")
    fl = res["floor"]
    print(f"# {a.preset} L={res['layers']} V={res['vocab']} init={a.init}: bf16 vs f32 worst rel_l2 {fl['rel_l2_worst']:.2e} "
          f"median {fl['rel_l2_median']:.2e} top-1 {100 * fl['top1']:.1f} % ({fl['differ']} differ, {fl['near_ties']} near ties); "
          f"attn share {min(res['share_attn']):.3f}-{max(res['share_attn']):.3f}, mlp share "
          f"{min(res['share_mlp']):.3f}-{max(res['share_mlp']):.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
