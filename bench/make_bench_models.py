"""Write the models and data of the issue-2 benchmark (python3 bench/make_bench_models.py OUTDIR).

OUTDIR/transformer/, OUTDIR/mamba/ and OUTDIR/mamba2/ (each config.json and model.safetensors) and
OUTDIR/data.h5, in the formats of design.md sections 2 and 3: N = 8 sequences of L = 2,048 tokens
(all full length), vocabulary 64, 5 token families over tokens 1..63, balanced labels.  Weights are
float32, drawn with tests/reference/make_fixtures.py's initialisers from a fixed seed, so a rerun
writes the same numbers.  The weights are random: the benchmark measures speed and agreement, not
accuracy.
"""
import json
import os
import sys

import h5py
import numpy as np
import torch
from safetensors.torch import save_file

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference")
sys.path.insert(0, REFERENCE)
import make_fixtures as mf  # noqa: E402  (its initialisers: nn.Linear ranges, mamba_ssm's dt init)

SEED = 2024
N, L, VOCAB, D_MODEL = 8, 2048, 64, 64
FAMILY_NAMES = ["fam_a", "fam_b", "fam_c", "fam_d", "fam_e"]

COMMON = {"vocab_size": VOCAB, "d_model": D_MODEL, "n_layers": 2, "pad_token_id": 0, "pooling": "mean"}
TRANSFORMER = {"arch": "transformer", **COMMON, "n_heads": 4, "d_ff": 256, "norm_first": True,
               "activation": "gelu", "positional": "learned", "max_len": L, "final_norm": True,
               "layer_norm_eps": 1e-5, "causal": False}
MAMBA = {"arch": "mamba", **COMMON, "d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": 4,
         "norm_eps": 1e-5}
# mamba_ssm's Mamba2 block as a small classifier would set it: headdim 16 (8 heads of d_inner 128),
# one group, and d_state 64 rather than the language models' 128 (Mamba-2's point is a larger state
# than Mamba-1's 16 at little extra cost); the other keys at mamba_ssm's defaults (no in_proj or
# out_proj bias, a conv bias, D per head, the gated RMSNorm after the gate, dt_limit [0, inf)).
MAMBA2 = {"arch": "mamba2", **COMMON, "d_state": 64, "d_conv": 4, "expand": 2, "headdim": 16,
          "ngroups": 1, "norm": "rms", "norm_eps": 1e-5}


# ----------------------------------------------------------------------------- weights

def head_params(rng, d):
    return {"head.weight": mf.linear_weight(rng, 1, d), "head.bias": mf.small_bias(rng, 1)}


def transformer_params(rng, config):
    d, d_ff = config["d_model"], config["d_ff"]
    p = {"embedding.weight": rng.standard_normal((config["vocab_size"], d))}
    if config["positional"] == "learned":
        # Smaller than the token embedding so that token identity, which the ablation removes,
        # dominates the input.
        p["pos_embedding.weight"] = 0.3 * rng.standard_normal((config["max_len"], d))
    for i in range(config["n_layers"]):
        in_proj = mf.linear_weight(rng, 3 * d, d)
        in_proj[: 2 * d] *= 3.0  # as in the fixtures: attention patterns far from uniform
        layer = {
            "self_attn.in_proj_weight": in_proj,
            "self_attn.in_proj_bias": mf.small_bias(rng, 3 * d),
            "self_attn.out_proj.weight": mf.linear_weight(rng, d, d),
            "self_attn.out_proj.bias": mf.small_bias(rng, d),
            "linear1.weight": mf.linear_weight(rng, d_ff, d),
            "linear1.bias": mf.small_bias(rng, d_ff),
            "linear2.weight": mf.linear_weight(rng, d, d_ff),
            "linear2.bias": mf.small_bias(rng, d),
            "norm1.weight": mf.norm_weight(rng, d), "norm1.bias": mf.small_bias(rng, d),
            "norm2.weight": mf.norm_weight(rng, d), "norm2.bias": mf.small_bias(rng, d),
        }
        p.update({f"layers.{i}.{k}": v for k, v in layer.items()})
    p["norm.weight"], p["norm.bias"] = mf.norm_weight(rng, d), mf.small_bias(rng, d)
    p.update(head_params(rng, d))
    return p


def mamba_params(rng, config):
    """mamba_ssm's Mamba-1 layout without in_proj/out_proj biases (its default)."""
    d, S, R, K = config["d_model"], config["d_state"], config["dt_rank"], config["d_conv"]
    d_inner = config["expand"] * d
    p = {"embedding.weight": rng.standard_normal((config["vocab_size"], d))}
    for i in range(config["n_layers"]):
        mixer = {
            "in_proj.weight": mf.linear_weight(rng, 2 * d_inner, d),
            "conv1d.weight": mf.uniform(rng, (d_inner, 1, K), 0.5),
            "conv1d.bias": mf.small_bias(rng, d_inner),
            # The fixtures' widened B, C and dt ranges keep the scan term a sizeable part of the
            # output, so that a wrong scan shows up in the logits the C side is compared on.
            "x_proj.weight": mf.x_proj_weight(rng, R, S, d_inner),
            "dt_proj.weight": mf.uniform(rng, (d_inner, R), 6.0 / np.sqrt(R)),
            "dt_proj.bias": mf.dt_bias(rng, d_inner),
            # mamba_ssm's S4D-real init A = -(1..S), jittered so that channels differ.
            "A_log": np.log(np.tile(np.arange(1, S + 1, dtype=np.float64), (d_inner, 1)))
                     + 0.05 * rng.standard_normal((d_inner, S)),
            "D": 1.0 + 0.1 * rng.standard_normal(d_inner),
            "out_proj.weight": mf.linear_weight(rng, d, d_inner),
        }
        p[f"layers.{i}.norm.weight"] = mf.norm_weight(rng, d)
        p.update({f"layers.{i}.mixer.{k}": v for k, v in mixer.items()})
    p["norm_f.weight"] = mf.norm_weight(rng, d)
    p.update(head_params(rng, d))
    return p


def mamba2_params(rng, config):
    """mamba_ssm's Mamba2 layout (design.md 2.4) with its defaults: no in_proj/out_proj bias,
    a conv bias, D [nheads], the gated norm's weight."""
    d, S, G, K, P = config["d_model"], config["d_state"], config["ngroups"], config["d_conv"], config["headdim"]
    d_inner = config["expand"] * d
    H = d_inner // P
    p = {"embedding.weight": rng.standard_normal((config["vocab_size"], d))}
    for i in range(config["n_layers"]):
        in_proj = mf.linear_weight(rng, 2 * d_inner + 2 * G * S + H, d)  # rows z, x, B, C, dt
        # As for Mamba-1's x_proj (and the Mamba-2 fixtures): larger B, C and dt rows make the scan
        # term a large share of y, not hidden under D x, so a wrong scan shows in the logits.
        in_proj[2 * d_inner:2 * d_inner + 2 * G * S] *= 6.0
        in_proj[2 * d_inner + 2 * G * S:] *= 4.0
        mixer = {
            "in_proj.weight": in_proj,
            "conv1d.weight": mf.uniform(rng, (d_inner + 2 * G * S, 1, K), 0.5),
            "conv1d.bias": mf.small_bias(rng, d_inner + 2 * G * S),
            "dt_bias": mf.dt_bias(rng, H),
            "A_log": np.log(rng.uniform(1, 16, size=H)),  # mamba_ssm's A_init_range (1, 16)
            "D": 1.0 + 0.1 * rng.standard_normal(H),
            "norm.weight": mf.norm_weight(rng, d_inner),
            "out_proj.weight": mf.linear_weight(rng, d, d_inner),
        }
        p[f"layers.{i}.norm.weight"] = mf.norm_weight(rng, d)
        p.update({f"layers.{i}.mixer.{k}": v for k, v in mixer.items()})
    p["norm_f.weight"] = mf.norm_weight(rng, d)
    p.update(head_params(rng, d))
    return p


def save_model(out_dir, config, params):
    os.makedirs(out_dir, exist_ok=True)
    tensors = {name: torch.from_numpy(np.asarray(value)).to(torch.float32).contiguous()
               for name, value in sorted(params.items())}
    save_file(tensors, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


# ----------------------------------------------------------------------------- data

def of_token():
    """Token 0 is pad (family -1); tokens 1..63 go round-robin to the 5 families (13/13/13/12/12)."""
    table = np.full(VOCAB, -1, dtype=np.int64)
    table[1:] = (np.arange(1, VOCAB) - 1) % len(FAMILY_NAMES)
    return table


def write_data(path, rng):
    tokens = rng.integers(1, VOCAB, size=(N, L))  # no pad: every position is valid
    labels = rng.permutation(np.repeat([0, 1], N // 2))
    with h5py.File(path, "w") as f:
        f.create_dataset("tokens", data=tokens.astype(np.int32))
        f.create_dataset("labels", data=labels.astype(np.int32))
        f.create_dataset("lengths", data=np.full(N, L, dtype=np.int32))
        f.create_dataset("families/names", data=np.array(FAMILY_NAMES, dtype=object),
                         dtype=h5py.string_dtype())
        f.create_dataset("families/of_token", data=of_token())


def main(argv):
    """OUTDIR [--n N --len L --families F --layers K --rope 0|1 --vocab V --data 0|1]: the sizes
    default to the CPU benchmark's; bench/gpu.sh asks for the seed's scale (2,000 x 4,096, 14
    families); the integrated-gradients benchmark for rotary positions (--rope 1), the user-scale one
    (bench/analyze_scale.sh) for 4 layers, the gym's vocabulary of 48 and no data.h5 (--data 0: it
    uses a gym file)."""
    global N, L, FAMILY_NAMES, VOCAB
    args = argv[1:]
    sizes = {"--n": N, "--len": L, "--families": len(FAMILY_NAMES), "--layers": 2, "--rope": 0,
             "--vocab": VOCAB, "--data": 1}
    while len(args) >= 3 and args[1] in sizes:
        sizes[args[1]] = int(args[2])
        del args[1:3]
    if (len(args) != 1 or args[0].startswith("-") or min(sizes.values()) < 0
            or min(sizes["--n"], sizes["--len"]) < 1 or sizes["--vocab"] < sizes["--families"] + 1):
        print("usage: python3 bench/make_bench_models.py OUTDIR [--n N] [--len L] [--families F] [--layers K]"
              " [--rope 0|1] [--vocab V] [--data 0|1]  (V > F: token 0 is the pad)", file=sys.stderr)
        return 2
    N, L, VOCAB = sizes["--n"], sizes["--len"], sizes["--vocab"]
    for config in (COMMON, TRANSFORMER, MAMBA, MAMBA2):
        config["vocab_size"], config["n_layers"] = VOCAB, sizes["--layers"]
    if sizes["--rope"]:
        TRANSFORMER["positional"] = "rope"
    FAMILY_NAMES = [f"fam_{i}" for i in range(sizes["--families"])] if sizes["--families"] != 5 else FAMILY_NAMES
    TRANSFORMER["max_len"] = L
    out = args[0]
    os.makedirs(out, exist_ok=True)
    # One generator per file, so that changing one model leaves the others' numbers alone.
    save_model(os.path.join(out, "transformer"), TRANSFORMER,
               transformer_params(np.random.default_rng([SEED, 1]), TRANSFORMER))
    save_model(os.path.join(out, "mamba"), MAMBA, mamba_params(np.random.default_rng([SEED, 2]), MAMBA))
    save_model(os.path.join(out, "mamba2"), MAMBA2, mamba2_params(np.random.default_rng([SEED, 4]), MAMBA2))
    if not sizes["--data"]:
        print(f"wrote {out}/transformer, {out}/mamba and {out}/mamba2 (vocab {VOCAB}, max_len {L})")
        return 0
    write_data(os.path.join(out, "data.h5"), np.random.default_rng([SEED, 3]))
    print(f"wrote {out}/transformer, {out}/mamba, {out}/mamba2 and {out}/data.h5 (N={N}, L={L}, vocab {VOCAB})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
