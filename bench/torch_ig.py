"""The PyTorch side of the integrated-gradients benchmark (python3 bench/torch_ig.py OUTDIR --threads T).

OUTDIR is written by `python3 bench/make_bench_models.py OUTDIR --len 1024 --rope 1`: a rotary
Transformer, a Mamba and a Mamba-2 (d 64, 2 layers) and N = 8 sequences.  What a PyTorch user runs for
`seqlens attribute MODEL DATA --method ig --steps 16 --baseline pad`:

    IntegratedGradients(forward_fn, multiply_by_inputs=True).attribute(
        embeds, baselines=pad_embeds, n_steps=16, method="riemann_middle", internal_batch_size=16)

on the embedding output (token embedding; rotary positions add no positional term), the baseline
being the embedding of an all-pad sequence (token 0), the attribution summed over d per token.
The models, float32, loaded with load_state_dict(strict=True), weights frozen (requires_grad off:
Captum differentiates with respect to the input only):
  - Transformer ("Captum + SDPA"): nn.Linear, nn.LayerNorm, F.scaled_dot_product_attention on q
    and k rotated GPT-NeoX style (rotate-half, as seqlens' models/transformer.c `rope`), pre-norm,
    exact GELU, final LayerNorm, mean pooling.  torch's nn.TransformerEncoderLayer has no hook for
    rotary positions, so the block is written out; its attention is the same SDPA call.
  - Mamba: bench/torch_sweep.py's modules (imported, not copied) with a loop scan that forms
    exp(delta A) inside each step instead of materialising it as [b, d, l, n] first: the same
    numbers and the faster of the two under autograd (the [b, d, l, n] tensors and their gradients
    are what the precomputing scan spends its time on).
  - Mamba-2: bench/torch_mamba2.py's model on the fastest of its scan paths under autograd: each
    path of --mamba2-scans (default all but the sequential one, which is tens of times slower under
    autograd; bench/README.md) is checked against the reference and timed on one example's IG
    (best of 2 after a warm-up), and the fastest runs the benchmark (`mamba2_path`; each path's
    time in `mamba2_paths_one_example_s`).
--batch one (default) runs Captum once per example: the 16 steps of that example are one batch of
16 sequences (internal_batch_size 16), and each example is cut to its length, so padding needs no
mask.  --batch all gives Captum all N examples at once: the same batches of 16 sequences (2 steps
of the 8 examples), with key and pooling masks when there is padding.  On the full-length benchmark
data the two took the same time within this machine's noise; on padded data `one` does less work.

Steps:
  1. checks the float32 models' logits against tests/reference/seqlens_ref.py in float64
     (relative error < 1e-4), and stops with exit code 1 if not;
  2. one untimed warm-up (the first example's IG), then the best of --reps (default 3) full runs;
  3. checks completeness (sum of attributions = logit(x) - logit(baseline), up to the midpoint
     rule's error, reported, not enforced);
  4. writes the per-token attributions [N, L] to OUTDIR/torch_ig_attr.h5 (one dataset per model)
     and prints one JSON line {"transformer_s", "mamba_s", ...} on stdout; progress on stderr.
"""
import argparse
import json
import math
import os
import sys
import time

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F
import captum
from captum.attr import IntegratedGradients
from safetensors.torch import load_file

sys.dont_write_bytecode = True  # leave no __pycache__ in bench/ or tests/reference
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_sweep as ts  # noqa: E402  (its Mamba modules, data, loading and timing helpers)
import torch_mamba2 as m2  # noqa: E402

ref = ts.ref
STEPS = 16
INTERNAL_BATCH = 16
TOLERANCE = 1e-4


# ----------------------------------------------------------------------------- Transformer

def rope_tables(L, dh, base):
    """cos, sin [L, dh/2] of GPT-NeoX rotary positions, computed in float64 as seqlens does."""
    inv_freq = base ** (-2.0 * torch.arange(dh // 2, dtype=torch.float64) / dh)
    angle = torch.arange(L, dtype=torch.float64)[:, None] * inv_freq
    return torch.cos(angle).float(), torch.sin(angle).float()


def rotate(x, cos, sin):
    """Rotate-half on x [b, h, L, dh]: dims (i, i + dh/2) turn by the position's angle i."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class RopeSelfAttention(nn.Module):
    """nn.MultiheadAttention's parameter layout (in_proj_weight/bias, out_proj) with rotary q, k."""

    def __init__(self, d, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * d))
        self.out_proj = nn.Linear(d, d)

    def forward(self, x, cos, sin, key_mask):
        b, L, d = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias) \
            .view(b, L, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        context = F.scaled_dot_product_attention(rotate(q, cos, sin), rotate(k, cos, sin), v,
                                                 attn_mask=key_mask)
        return self.out_proj(context.transpose(1, 2).reshape(b, L, d))


class RopeBlock(nn.Module):
    """Pre-norm encoder layer with nn.TransformerEncoderLayer's tensor names."""

    def __init__(self, c):
        super().__init__()
        d, eps = c["d_model"], c["layer_norm_eps"]
        self.self_attn = RopeSelfAttention(d, c["n_heads"])
        self.norm1, self.norm2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.linear1, self.linear2 = nn.Linear(d, c["d_ff"]), nn.Linear(c["d_ff"], d)
        self.activation = F.gelu if c["activation"] == "gelu" else F.relu  # exact (erf) GELU

    def forward(self, h, cos, sin, key_mask):
        h = h + self.self_attn(self.norm1(h), cos, sin, key_mask)
        return h + self.linear2(self.activation(self.linear1(self.norm2(h))))


class RopeTransformer(nn.Module):
    """Attribute names = design.md section 2's tensor names (embedding, layers.i, norm, head)."""

    def __init__(self, c):
        super().__init__()
        if c["positional"] != "rope" or not c["norm_first"] or not c["final_norm"] or c.get("causal", False):
            raise SystemExit("torch_ig.py builds rotary, pre-norm, final-norm, non-causal Transformers only "
                             "(write the models with make_bench_models.py --rope 1)")
        d = c["d_model"]
        self.base = c.get("rope_base", 10000.0)
        self.d_head = d // c["n_heads"]
        self.embedding = nn.Embedding(c["vocab_size"], d)
        self.layers = nn.ModuleList(RopeBlock(c) for _ in range(c["n_layers"]))
        self.norm = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        self.head = nn.Linear(d, 1)

    def from_embeds(self, h, valid=None):
        """h [b, L, d] (the embedding output) -> logits [b]; valid [b, L] or None (all valid)."""
        cos, sin = rope_tables(h.shape[1], self.d_head, self.base)
        key_mask = None if valid is None else valid[:, None, None, :]
        for layer in self.layers:
            h = layer(h, cos, sin, key_mask)
        return self.head(pool(self.norm(h), valid))[:, 0]


# ----------------------------------------------------------------------------- Mamba

# torch_sweep.MambaMixer.forward calls the module-level selective_scan: under autograd the in-step
# scan is the faster of the two equal ones (torch_sweep.py times both for the sweep).
ts.selective_scan = ts.loop_scan


def mamba_from_embeds(model, h, valid=None):
    """ts.TorchMamba from its embedding output: h [b, L, d] -> logits [b]."""
    for layer in model.layers:
        h = layer(h)
    return model.head(pool(model.norm_f(h), valid))[:, 0]


# ----------------------------------------------------------------------------- IG

def pool(h, valid):
    return h.mean(dim=1) if valid is None else ts.masked_mean(h, valid)


def load(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    if config["arch"] == "transformer":
        model = RopeTransformer(config)
        state = load_file(os.path.join(model_dir, "model.safetensors"))
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        forward = model.from_embeds
    elif config["arch"] == "mamba2":
        config, model = ts.load_torch_model(model_dir)

        def forward(h, valid=None):
            return model.head(pool(model.from_embeds(h), valid))[:, 0]
    else:
        config, model = ts.load_torch_model(model_dir)

        def forward(h, valid=None):
            return mamba_from_embeds(model, h, valid)
    if config.get("pad_token_id", 0) != 0:
        raise SystemExit(f"{model_dir}: the benchmark's baseline is token 0; pad_token_id is {config['pad_token_id']}")
    if config.get("embed_scale", 1.0) != 1.0:
        raise SystemExit(f"{model_dir}: embed_scale is not supported by this benchmark")
    model.eval().requires_grad_(False)
    return config, model, forward


def integrated_gradients(forward, embedding, data, batch, examples):
    """Signed attributions per token [len(examples), L] (0 beyond each length): Captum's IG on the
    embedding output, summed over d."""
    ig = IntegratedGradients(forward, multiply_by_inputs=True)
    options = dict(n_steps=STEPS, method="riemann_middle", internal_batch_size=INTERNAL_BATCH)
    tokens = data.tokens[examples]
    out = torch.zeros(tokens.shape)
    if batch == "one":
        for i, n in enumerate(data.lengths[examples].tolist()):
            x = embedding(tokens[i:i + 1, :n])
            attribution = ig.attribute(x, baselines=embedding(torch.zeros_like(tokens[i:i + 1, :n])), **options)
            out[i, :n] = attribution.sum(dim=-1)[0]
        return out
    valid = data.valid[examples]
    mask = None if valid.all() else valid  # Captum repeats it with the steps
    attribution = ig.attribute(embedding(tokens), baselines=embedding(torch.zeros_like(tokens)),
                               additional_forward_args=(mask,), **options)
    return attribution.sum(dim=-1) * valid


def reference_logits(name, model_dir, data):
    """seqlens_ref.py's float64 logits of the model on the data."""
    config, params = ref.load_model(model_dir)
    chunk = 2 if name == "transformer" else len(data.tokens)  # the reference keeps [L, L] patterns
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the reference's many small ops: OpenMP barriers only slow it down
    expected = torch.cat([ref.run(config, params, data.tokens[i:i + chunk], data.lengths[i:i + chunk])["logits"]
                          for i in range(0, len(data.tokens), chunk)])
    torch.set_num_threads(threads)
    return expected


def check_against_reference(name, forward, embedding, model_dir, data, expected=None):
    """The float32 model's logits against seqlens_ref.py's float64 forward pass."""
    if expected is None:
        expected = reference_logits(name, model_dir, data)
    with torch.no_grad():
        ours = forward(embedding(data.tokens), None if data.valid.all() else data.valid)
    err = ts.rel_err(ours, expected)
    ts.log(f"{name}: float32 model vs float64 seqlens_ref over {len(expected)} logits: rel err {err:.2e}")
    if not err < TOLERANCE:
        ts.log(f"torch_ig.py: {name}: the PyTorch model disagrees with tests/reference/seqlens_ref.py "
            f"(rel err {err:.2e} >= {TOLERANCE:.0e}); not timing it")
        sys.exit(1)
    return err


def pick_mamba2_scan(model, forward, data, model_dir, scan_names):
    """Each Mamba-2 scan path checked against the reference, then timed on the first example's IG
    (best of 2 after one untimed run, on that path); the model is left on the fastest."""
    scans = m2.available_scans(scan_names, ts.log)
    if not scans:
        raise SystemExit("torch_ig.py: mamba2: none of the scan paths loads here")
    expected = reference_logits("mamba2", model_dir, data)
    errors, seconds = {}, {}
    for name, scan in scans.items():
        model.set_scan(scan)
        errors[name] = check_against_reference(f"mamba2 [{name}]", forward, model.embedding, model_dir, data, expected)
        integrated_gradients(forward, model.embedding, data, "one", slice(0, 1))  # warm-up
        seconds[name] = math.inf
        for _ in range(2):
            start = time.perf_counter()
            integrated_gradients(forward, model.embedding, data, "one", slice(0, 1))
            seconds[name] = min(seconds[name], time.perf_counter() - start)
        ts.log(f"mamba2 [{name}]: Captum IG of example 0: {seconds[name]:.3f} s")
    fastest = min(seconds, key=seconds.get)
    model.set_scan(scans[fastest])
    ts.log(f"mamba2: fastest path under autograd: {fastest} ({m2.SCANS[fastest][0]})")
    return {"mamba2_path": fastest, "mamba2_path_label": m2.SCANS[fastest][0],
            "mamba2_paths_one_example_s": seconds, "mamba2_ref_rel_err": errors[fastest]}


def completeness(forward, embedding, data, attribution):
    """max over examples of |sum of attributions - (logit(x) - logit(baseline))| / |that difference|:
    the midpoint rule's error at 16 steps (a few percent), not a check of correctness."""
    mask = None if data.valid.all() else data.valid
    with torch.no_grad():
        gap = forward(embedding(data.tokens), mask) - forward(embedding(torch.zeros_like(data.tokens)), mask)
    return float(((attribution.sum(dim=1) - gap).abs() / gap.abs().clamp_min(1e-12)).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", help="directory written by make_bench_models.py --rope 1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3, help="timed runs after the warm-up (best is kept)")
    parser.add_argument("--batch", choices=("one", "all"), default="one",
                        help="Captum once per example (default) or once for all N")
    parser.add_argument("--models", default="transformer,mamba,mamba2", help="comma-separated subset")
    parser.add_argument("--mamba2-scans", default=",".join(n for n in m2.SCANS if n != "sequential"),
                        help="the Mamba-2 scan paths to try (default all but sequential; known: "
                             f"{','.join(m2.SCANS)})")
    args = parser.parse_args()
    models = args.models.split(",")
    if (args.threads < 1 or args.reps < 1 or not models
            or any(m not in ("transformer", "mamba", "mamba2") for m in models)):
        parser.error("--threads and --reps must be >= 1, --models a subset of transformer,mamba,mamba2")
    for needed in ["data.h5"] + [f"{m}/model.safetensors" for m in models]:
        if not os.path.exists(os.path.join(args.outdir, needed)):
            parser.exit(2, f"torch_ig.py: {os.path.join(args.outdir, needed)} not found "
                           "(write it with: python3 bench/make_bench_models.py OUTDIR --len 1024 --rope 1)\n")
    torch.set_num_threads(args.threads)

    data = ts.Data(os.path.join(args.outdir, "data.h5"))
    everything = slice(0, len(data.tokens))
    result = {"batch": args.batch, "steps": STEPS, "internal_batch_size": INTERNAL_BATCH,
              "n": len(data.tokens), "len": data.tokens.shape[1]}
    attributions = {}
    for name in models:
        model_dir = os.path.join(args.outdir, name)
        config, model, forward = load(model_dir)
        if name == "mamba2":
            result.update(pick_mamba2_scan(model, forward, data, model_dir, args.mamba2_scans.split(",")))
        else:
            result[f"{name}_ref_rel_err"] = check_against_reference(name, forward, model.embedding, model_dir, data)
        result[f"{name}_busy_before"] = ts.cpu_busy_fraction()
        integrated_gradients(forward, model.embedding, data, "one", slice(0, 1))  # warm-up
        best = math.inf
        for _ in range(args.reps):
            start = time.perf_counter()
            attribution = integrated_gradients(forward, model.embedding, data, args.batch, everything)
            best = min(best, time.perf_counter() - start)
        ts.log(f"{name}: Captum IG, {STEPS} steps, batch {args.batch}, best of {args.reps}: {best:.3f} s")
        result[f"{name}_s"] = best
        result[f"{name}_completeness_rel"] = completeness(forward, model.embedding, data, attribution)
        attributions[name] = attribution
    with h5py.File(os.path.join(args.outdir, "torch_ig_attr.h5"), "w") as f:
        for name, attribution in attributions.items():
            f.create_dataset(name, data=attribution.numpy())
    result.update(torch_version=torch.__version__, captum_version=captum.__version__, threads=args.threads)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
