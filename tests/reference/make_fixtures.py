"""Write the golden fixtures under tests/fixtures/<variant>/ (run: python3 tests/reference/make_fixtures.py).

Each variant directory holds config.json, model.safetensors, data.h5 and expected.h5 (see README.md).
Everything is seeded, so a rerun reproduces the same files.  The expected activations are computed by
seqlens_ref.py in float64 from the weights as saved (after rounding to F16/BF16), and every
self-check in selfcheck.py must pass, or the script exits non-zero.
"""
import json
import math
import os
import sys
import zlib

import h5py
import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seqlens_ref as ref  # noqa: E402
import selfcheck  # noqa: E402
import contextlib  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
TORCH_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}

# Shared sizes: small enough that all fixtures stay well under 1 MB.
N, L = 4, 12
LENGTHS = [12, 7, 1, 10]  # a full-length and a length-1 example
VOCAB, D_MODEL = 11, 8
COMMON = {"vocab_size": VOCAB, "d_model": D_MODEL, "pad_token_id": 0}
TRANSFORMER = {"arch": "transformer", "n_heads": 2, "d_ff": 16, "max_len": 16, "rope_base": 10000,
               "layer_norm_eps": 1e-5}
MAMBA = {"arch": "mamba", "d_state": 4, "expand": 2, "d_conv": 4, "dt_rank": 2, "norm_eps": 1e-5}

# Families by token id: 0 (pad) and 10 belong to none.
FAMILY_NAMES = ["motif_a", "motif_b", "filler"]
OF_TOKEN = [-1, 0, 0, 0, 1, 1, 1, 2, 2, 2, -1]

# config: the config.json keys beyond COMMON; model: how the weights are drawn and saved;
# data: the dtypes and optional datasets of data.h5.
VARIANTS = [
    {"name": "tf_post_gelu_none",
     "config": dict(TRANSFORMER, n_layers=2, pooling="mean", norm_first=False, activation="gelu",
                    positional="none", final_norm=False, causal=False),
     "model": {"dtype": "F32", "head_rows": 1},
     "data": {"tokens": "int64", "labels": "int64", "lengths": "int64", "of_token": "int64",
              "names": "vlen", "pad_inside": True}},
    {"name": "tf_pre_relu_learned",
     "config": dict(TRANSFORMER, n_layers=2, pooling="last", norm_first=True, activation="relu",
                    positional="learned", final_norm=True, causal=False),
     "model": {"dtype": "F32", "head_rows": 2},
     "data": {"tokens": "int32", "labels": "int8", "lengths": "int32", "of_token": "int32",
              "names": "vlen", "of_position": True}},
    {"name": "tf_pre_gelu_sin_f16",
     "config": dict(TRANSFORMER, n_layers=2, pooling="cls", norm_first=True, activation="gelu",
                    positional="sinusoidal", final_norm=True, causal=False),
     "model": {"dtype": "F16", "head_rows": 1},
     "data": {"tokens": "uint16", "labels": "int32", "lengths": "int32", "of_token": "int16",
              "names": "vlen", "concepts": True}},
    {"name": "tf_post_relu_rope_causal_bf16",
     "config": dict(TRANSFORMER, n_layers=2, pooling="mean", norm_first=False, activation="relu",
                    positional="rope", final_norm=False, causal=True, prefix="encoder."),
     "model": {"dtype": "BF16", "head_rows": 1},
     "data": {"tokens": "int64", "labels": "int64", "lengths": "int64", "of_token": "int64",
              "names": "S8"}},
    {"name": "mamba_mean_f32",
     "config": dict(MAMBA, n_layers=2, pooling="mean"),
     "model": {"dtype": "F32", "head_rows": 1, "proj_bias": False},
     "data": {"tokens": "int32", "labels": "int32", "lengths": "int32", "of_token": "int64",
              "names": "vlen"}},
    {"name": "mamba_last_bias_2logit_f16",
     "config": dict(MAMBA, n_layers=2, pooling="last", prefix="backbone."),
     "model": {"dtype": "F16", "head_rows": 2, "proj_bias": True},
     "data": {"tokens": "int64", "labels": "int64", "lengths": "int64", "of_token": "int64",
              "names": "vlen"}},
    {"name": "mamba_cls_bf16",
     "config": dict(MAMBA, n_layers=3, pooling="cls"),
     "model": {"dtype": "BF16", "head_rows": 1, "proj_bias": False},
     "data": {"tokens": "uint16", "labels": "int32", "lengths": None, "of_token": "int64",
              "names": "vlen"}},
]

# Longer sequences and wider heads for the C kernels' fast paths: attention specialised for
# d_head 8, 16 and 32, more than one 256-key tile, query blocks of 4 with a ragged end. Their
# [N, H, L, L] patterns are left out of expected.h5 where L is long (megabytes of random floats);
# the short fixtures check the materialised pattern.
LONG = {"N": 3, "L": 272, "LENGTHS": [272, 261, 19], "D_MODEL": 16}
VARIANTS += [
    {"name": "tf_long_dh16_rope_causal",
     "shape": LONG, "omit": ["attn.pattern"],
     "config": dict(TRANSFORMER, n_layers=2, n_heads=1, max_len=272, pooling="mean", norm_first=True,
                    activation="gelu", positional="rope", final_norm=True, causal=True),
     "model": {"dtype": "F32", "head_rows": 1},
     "data": {"tokens": "int32", "labels": "int32", "lengths": "int32", "of_token": "int32",
              "names": "vlen"}},
    {"name": "tf_long_dh8_learned",
     "shape": dict(LONG, LENGTHS=[270, 257, 3]), "omit": ["attn.pattern"],
     "config": dict(TRANSFORMER, n_layers=2, n_heads=2, max_len=272, pooling="last", norm_first=False,
                    activation="relu", positional="learned", final_norm=False, causal=False),
     "model": {"dtype": "F32", "head_rows": 1},
     "data": {"tokens": "int32", "labels": "int32", "lengths": "int32", "of_token": "int32",
              "names": "vlen"}},
    {"name": "tf_dh32_sin",
     "shape": {"N": 3, "L": 40, "LENGTHS": [40, 33, 5], "D_MODEL": 32},
     "config": dict(TRANSFORMER, n_layers=2, n_heads=1, d_ff=32, max_len=40, pooling="mean",
                    norm_first=True, activation="gelu", positional="sinusoidal", final_norm=True,
                    causal=False),
     "model": {"dtype": "F32", "head_rows": 1},
     "data": {"tokens": "int64", "labels": "int64", "lengths": "int64", "of_token": "int64",
              "names": "vlen"}},
]

# The model variants users save (issue 17): mamba_ssm's default LayerNorm blocks (rms_norm=False,
# norm and norm_f with bias, under "backbone."), conv1d without bias (conv_bias=False), and the
# PyTorch tutorial's `embedding(x) * math.sqrt(d_model)` on a post-norm relu encoder.
VARIANTS += [
    {"name": "mamba_layer_mean_f32",
     "config": dict(MAMBA, n_layers=2, pooling="mean", norm="layer"),
     "model": {"dtype": "F32", "head_rows": 1, "proj_bias": False},
     "data": {"tokens": "int32", "labels": "int32", "lengths": "int32", "of_token": "int32",
              "names": "vlen"}},
    {"name": "mamba_layer_noconvb_last_2logit_f16",
     "config": dict(MAMBA, n_layers=2, pooling="last", norm="layer", prefix="backbone."),
     "model": {"dtype": "F16", "head_rows": 2, "proj_bias": True, "conv_bias": False},
     "data": {"tokens": "int64", "labels": "int64", "lengths": "int64", "of_token": "int64",
              "names": "vlen"}},
    # d_inner 20: the scan's last vector of 8 channels half empty; 75 positions: the backward's
    # chunks of 32 (a length of exactly two chunks, and one just past a chunk).
    {"name": "mamba_long_odd_f32",
     "shape": {"N": 3, "L": 75, "LENGTHS": [75, 64, 33], "D_MODEL": 10},
     "config": dict(MAMBA, n_layers=2, pooling="mean"),
     "model": {"dtype": "F32", "head_rows": 1, "proj_bias": False},
     "data": {"tokens": "int32", "labels": "int32", "lengths": "int32", "of_token": "int32",
              "names": "vlen"}},
    {"name": "mamba_noconvb_mean_f32",
     "config": dict(MAMBA, n_layers=2, pooling="mean"),
     "model": {"dtype": "F32", "head_rows": 1, "proj_bias": False, "conv_bias": False},
     "data": {"tokens": "int32", "labels": "int32", "lengths": "int32", "of_token": "int32",
              "names": "vlen"}},
    {"name": "tf_scaled_post_relu_sin",
     "config": dict(TRANSFORMER, n_layers=2, pooling="mean", norm_first=False, activation="relu",
                    positional="sinusoidal", final_norm=False, causal=False,
                    embed_scale=math.sqrt(D_MODEL)),
     "model": {"dtype": "F32", "head_rows": 1},
     "data": {"tokens": "int32", "labels": "int32", "lengths": "int32", "of_token": "int32",
              "names": "vlen"}},
]


@contextlib.contextmanager
def variant_shape(shape):
    """The module-level sizes, set for one variant (most use the defaults above)."""
    global N, L, LENGTHS, D_MODEL
    saved = (N, L, LENGTHS, D_MODEL)
    N, L, LENGTHS, D_MODEL = (shape.get("N", N), shape.get("L", L), shape.get("LENGTHS", LENGTHS),
                              shape.get("D_MODEL", D_MODEL))
    COMMON["d_model"] = D_MODEL
    try:
        yield
    finally:
        N, L, LENGTHS, D_MODEL = saved
        COMMON["d_model"] = D_MODEL


# ----------------------------------------------------------------------------- weights

def uniform(rng, shape, bound):
    return rng.uniform(-bound, bound, size=shape)


def linear_weight(rng, fan_out, fan_in, scale=1.0):
    # nn.Linear's default range, optionally widened to make activations less uniform.
    return uniform(rng, (fan_out, fan_in), scale / np.sqrt(fan_in))


def small_bias(rng, n):
    return 0.1 * rng.standard_normal(n)


def norm_weight(rng, n):
    return 1.0 + 0.1 * rng.standard_normal(n)


def head_params(rng, rows):
    return {"head.weight": linear_weight(rng, rows, D_MODEL), "head.bias": small_bias(rng, rows)}


def transformer_params(rng, config, head_rows):
    d, d_ff = config["d_model"], config["d_ff"]
    p = {"embedding.weight": rng.standard_normal((VOCAB, d))}
    if config["positional"] == "learned":
        p["pos_embedding.weight"] = rng.standard_normal((config["max_len"], d))
    for i in range(config["n_layers"]):
        in_proj = linear_weight(rng, 3 * d, d)
        in_proj[: 2 * d] *= 3.0  # larger q, k so that attention patterns are far from uniform
        layer = {
            "self_attn.in_proj_weight": in_proj,
            "self_attn.in_proj_bias": small_bias(rng, 3 * d),
            "self_attn.out_proj.weight": linear_weight(rng, d, d),
            "self_attn.out_proj.bias": small_bias(rng, d),
            "linear1.weight": linear_weight(rng, d_ff, d),
            "linear1.bias": small_bias(rng, d_ff),
            "linear2.weight": linear_weight(rng, d, d_ff),
            "linear2.bias": small_bias(rng, d),
            "norm1.weight": norm_weight(rng, d), "norm1.bias": small_bias(rng, d),
            "norm2.weight": norm_weight(rng, d), "norm2.bias": small_bias(rng, d),
        }
        p.update({f"layers.{i}.{k}": v for k, v in layer.items()})
    if config["final_norm"]:
        p["norm.weight"], p["norm.bias"] = norm_weight(rng, d), small_bias(rng, d)
    p.update(head_params(rng, head_rows))
    return p


def dt_bias(rng, d_inner, dt_min=0.001, dt_max=0.1):
    # mamba_ssm's init: dt log-uniform in [dt_min, dt_max], bias = softplus^-1(dt).
    dt = np.exp(rng.uniform(np.log(dt_min), np.log(dt_max), size=d_inner))
    return dt + np.log(-np.expm1(-dt))


def x_proj_weight(rng, dt_rank, d_state, d_inner):
    # With nn.Linear's range the scan term s_t.C_t is ~0.1% of D*x over 12 tokens, so a broken
    # scan would hide inside the tolerance; larger B, C (and dt) rows make it 10-200% of D*x.
    w = linear_weight(rng, dt_rank + 2 * d_state, d_inner)
    w[:dt_rank] *= 3.0
    w[dt_rank:] *= 8.0
    return w


def mamba_params(rng, config, head_rows, proj_bias, conv_bias=True):
    d, S, R, K = config["d_model"], config["d_state"], config["dt_rank"], config["d_conv"]
    d_inner = config["expand"] * d
    p = {"embedding.weight": rng.standard_normal((VOCAB, d))}
    for i in range(config["n_layers"]):
        mixer = {
            "in_proj.weight": linear_weight(rng, 2 * d_inner, d),
            "conv1d.weight": uniform(rng, (d_inner, 1, K), 0.5),
            "conv1d.bias": small_bias(rng, d_inner),
            "x_proj.weight": x_proj_weight(rng, R, S, d_inner),
            # 6x mamba_ssm's range: delta then varies 4-30x per channel across tokens.
            "dt_proj.weight": uniform(rng, (d_inner, R), 6.0 / np.sqrt(R)),
            "dt_proj.bias": dt_bias(rng, d_inner),
            "A_log": np.log(np.tile(np.arange(1, S + 1, dtype=np.float64), (d_inner, 1)))
                     + 0.05 * rng.standard_normal((d_inner, S)),
            "D": 1.0 + 0.1 * rng.standard_normal(d_inner),
            "out_proj.weight": linear_weight(rng, d, d_inner),
        }
        if proj_bias:
            mixer["in_proj.bias"] = small_bias(rng, 2 * d_inner)
            mixer["out_proj.bias"] = small_bias(rng, d)
        if not conv_bias:  # drawn all the same, so that the other tensors stay as they were
            del mixer["conv1d.bias"]
        p[f"layers.{i}.norm.weight"] = norm_weight(rng, d)
        if config.get("norm") == "layer":
            p[f"layers.{i}.norm.bias"] = small_bias(rng, d)
        p.update({f"layers.{i}.mixer.{k}": v for k, v in mixer.items()})
    p["norm_f.weight"] = norm_weight(rng, d)
    if config.get("norm") == "layer":
        p["norm_f.bias"] = small_bias(rng, d)
    p.update(head_params(rng, head_rows))
    return p


def save_model(out_dir, config, params, dtype):
    """config.json plus model.safetensors in `dtype`, names under config's prefix (head excepted)."""
    prefix = config.get("prefix", "")
    tensors = {}
    for name, value in sorted(params.items()):
        saved_name = name if name.startswith("head.") else prefix + name
        tensors[saved_name] = torch.from_numpy(np.asarray(value)).to(TORCH_DTYPES[dtype]).contiguous()
    save_file(tensors, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


# ----------------------------------------------------------------------------- data

def make_tokens(rng, pad_inside):
    """Right-padded tokens; valid tokens are 1..VOCAB-1 so that inferred lengths are exact."""
    tokens = np.zeros((N, L), dtype=np.int64)
    for n, length in enumerate(LENGTHS):
        tokens[n, :length] = rng.integers(1, VOCAB, size=length)
    if pad_inside:
        # A pad id inside the valid part: /lengths, not the token id, decides what is valid.
        tokens[0, 3] = 0
        tokens[3, 5] = 0
    return tokens


def family_names(kind, extra=()):
    names = FAMILY_NAMES + list(extra)
    if kind == "S8":
        return np.array(names, dtype="S8")
    return np.array(names, dtype=object)


def write_data(path, rng, spec):
    tokens = make_tokens(rng, spec.get("pad_inside", False))
    labels = rng.permutation(sorted(n % 2 for n in range(N)))
    lengths = np.array(LENGTHS)
    with h5py.File(path, "w") as f:
        f.create_dataset("tokens", data=tokens.astype(spec["tokens"]))
        f.create_dataset("labels", data=labels.astype(spec["labels"]))
        if spec["lengths"]:
            f.create_dataset("lengths", data=lengths.astype(spec["lengths"]))
        extra = ["slot"] if spec.get("of_position") else []
        names = family_names(spec["names"], extra)
        f.create_dataset("families/names", data=names,
                         dtype=h5py.string_dtype() if spec["names"] == "vlen" else names.dtype)
        f.create_dataset("families/of_token", data=np.array(OF_TOKEN, dtype=spec["of_token"]))
        if spec.get("of_position"):
            f.create_dataset("families/of_position", data=of_position(len(FAMILY_NAMES)))
        if spec.get("concepts"):
            write_concepts(f, tokens, lengths)
    return tokens, labels, lengths


def of_position(slot_family):
    # Position 2 is a "slot" family whatever token sits there; position 5 is forced to motif_b.
    table = np.full((N, L), -1, dtype=np.int32)
    for n, length in enumerate(LENGTHS):
        if length > 2:
            table[n, 2] = slot_family
        if length > 5:
            table[n, 5] = 1
    return table


def write_concepts(f, tokens, lengths):
    of_token = np.array(OF_TOKEN)
    valid = np.arange(L)[None, :] < lengths[:, None]
    parity = ((of_token[tokens] == 0) & valid).sum(axis=1) % 2
    tokpos = np.where(valid, np.arange(L)[None, :] % 2, 0)
    f.create_dataset("concepts/parity", data=parity.astype(np.int64))
    f.create_dataset("concepts/tokpos", data=tokpos.astype(np.int32))
    f.create_dataset("split", data=np.array([0, 0, 0, 1], dtype=np.int8))


def write_expected(path, hooks, labels, lengths):
    with h5py.File(path, "w") as f:
        f.attrs["source"] = "tests/reference/seqlens_ref.py, float64, cast to float32"
        for name, value in hooks.items():
            f.create_dataset(name, data=value.numpy().astype(np.float32))
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.int32))
        f.create_dataset("lengths", data=np.asarray(lengths, dtype=np.int32))


# ----------------------------------------------------------------------------- per variant

def seed_of(name):
    # Stable across runs and Python versions (unlike hash()).
    return zlib.crc32(name.encode())


def ordered_config(keys):
    # Common keys first (design.md section 2 order), then the architecture's own.
    head = {"arch": keys["arch"], **COMMON, "n_layers": keys["n_layers"], "pooling": keys["pooling"]}
    return dict(head, **{k: v for k, v in keys.items() if k not in head})


def build_variant(variant):
    with variant_shape(variant.get("shape", {})):
        return build_variant_shaped(variant)


def build_variant_shaped(variant):
    name = variant["name"]
    out_dir = os.path.join(FIXTURES, name)
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed_of(name))
    config = ordered_config(variant["config"])
    model = variant["model"]
    if config["arch"] == "mamba":
        params = mamba_params(rng, config, model["head_rows"], model["proj_bias"], model.get("conv_bias", True))
    else:
        params = transformer_params(rng, config, model["head_rows"])
    save_model(out_dir, config, params, model["dtype"])
    write_data(os.path.join(out_dir, "data.h5"), rng, variant["data"])

    # Everything below reads the files back, as the C code will: rounded weights, stripped
    # prefix, lengths inferred where /lengths is absent.
    config, params = ref.load_model(out_dir)
    tokens, lengths = ref.load_tokens(os.path.join(out_dir, "data.h5"))
    assert lengths.tolist() == LENGTHS, (name, lengths)
    with h5py.File(os.path.join(out_dir, "data.h5"), "r") as f:
        labels = f["labels"][...]
    hooks = ref.zero_padding(ref.run(config, params, tokens, lengths), lengths)
    omit = variant.get("omit", [])
    written = {k: v for k, v in hooks.items() if not any(o in k for o in omit)}
    write_expected(os.path.join(out_dir, "expected.h5"), written, labels, lengths)

    errors = selfcheck.run_all(config, params, tokens, lengths)
    return config, hooks, errors, check_written(out_dir, written, lengths)


def check_written(out_dir, hooks, lengths):
    """expected.h5 holds the hooks (float32-rounded) and exact zeros beyond each length;
    returns the largest relative difference from the float64 hooks."""
    worst = 0.0
    with h5py.File(os.path.join(out_dir, "expected.h5"), "r") as f:
        for name, value in hooks.items():
            stored = torch.from_numpy(f[name][...]).to(torch.float64)
            worst = max(worst, selfcheck.rel_err(stored, value))
            if name not in ("pooled", "logits"):
                keep = ref.zero_padding({name: torch.ones_like(stored)}, lengths)[name] > 0
                assert not stored[~keep].any(), f"{out_dir}: {name} not zero beyond length"
    return worst


def describe(config, hooks, lengths):
    """One line of numbers showing that the fixture is not degenerate."""
    parts = ["logits " + " ".join(f"{x:+.4f}" for x in hooks["logits"].tolist())]
    valid = ref.valid_mask(lengths, hooks["embed"].shape[1])
    if config["arch"] == "mamba":
        delta = hooks["blocks.0.mixer.delta"][valid]
        parts.append(f"delta[0] {delta.min():.2e}..{delta.max():.2e}")
    else:
        p = hooks["blocks.0.attn.pattern"].transpose(1, 2)[valid]  # [valid queries, H, L]
        entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(-1).mean()
        parts.append(f"mean attn entropy[0] {entropy:.3f} nats, max prob {p.max():.3f}")
    return "; ".join(parts)


def report(name, errors, limit):
    """Print one line per check; return the names of those at or above `limit`."""
    worst = max(errors, key=errors.get)
    print(f"{name}: {len(errors)} checks, max rel err {errors[worst]:.2e} ({worst}), limit {limit:.0e}")
    failed = []
    for check, err in errors.items():
        mark = "" if err < limit else "   <-- FAILED"
        print(f"    {check:44s} {err:.2e}{mark}")
        if err >= limit:
            failed.append(f"{name}: {check}")
    return failed


def main():
    # Names on the command line: write only those variants (the others are left as they are).
    only = set(sys.argv[1:])
    unknown = only - {v["name"] for v in VARIANTS}
    if unknown:
        sys.exit(f"unknown variants: {sorted(unknown)}")
    variants = [v for v in VARIANTS if not only or v["name"] in only]
    failed = []
    for variant in variants:
        config, hooks, errors, written_err = build_variant(variant)
        failed += report(variant["name"], errors, selfcheck.TOLERANCE)
        # float32 storage of float64 values: only the rounding of the write is expected here.
        print(f"    expected.h5 vs float64 (float32 rounding)    {written_err:.2e}")
        if written_err >= 1e-6:
            failed.append(f"{variant['name']}: expected.h5 differs from the reference")
        with variant_shape(variant.get("shape", {})):
            print("    " + describe(config, hooks, torch.tensor(LENGTHS)))
    if failed:
        print("SELF-CHECK FAILED:\n  " + "\n  ".join(failed), file=sys.stderr)
        sys.exit(1)
    print(f"all {len(variants)} variants written to {os.path.normpath(FIXTURES)}; self-checks passed")


if __name__ == "__main__":
    main()
