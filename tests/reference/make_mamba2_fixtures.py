"""Write the Mamba-2 golden fixtures under tests/fixtures/mamba2_<variant>/ (issue 20).

Run from anywhere: python3 tests/reference/make_mamba2_fixtures.py [VARIANT...] (about 10 s), then
python3 tests/reference/make_grad_fixtures.py <the same names> for their grad_expected.h5.

Same format as make_fixtures.py's (config.json in seqlens's own keys, model.safetensors, data.h5,
expected.h5 with every hook of design.md section 4 in float32, zeros beyond each length), from the
same helpers. The expected values come from seqlens_ref.py in float64 from the files as written; the
script exits non-zero unless every self-check passes: selfcheck.py's pooling/head and norms, and
selfcheck_mamba2.py's comparisons with mamba_ssm's Mamba2 (non-fused path, its chunked SSD, its
rms_norm_ref with group_size) and Hugging Face's Mamba2Mixer where the config is one it can express.

Between them the variants cover: ngroups 1, 2 and 4; headdim 4, 8, 16 and 64; expand 1, 2 and 4; D per head and per channel
(D_has_hdim); RMSNorm and LayerNorm block norms; F32, F16 and BF16 weights; mean, last and cls pooling;
lengths shorter than the padded width (and inferred where /lengths is absent); dt_limit (both ends, and
only an upper one); in_proj/out_proj biases present and absent, conv1d bias absent once;
norm_before_gate true once; rmsnorm false (no gated norm) once; a [2, d] head; a `prefix`.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402
import seqlens_ref as ref  # noqa: E402
import selfcheck  # noqa: E402

MAMBA2 = {"arch": "mamba2", "d_conv": 4, "expand": 2, "norm_eps": 1e-5}
DATA = {"tokens": "int32", "labels": "int32", "lengths": "int32", "of_token": "int32", "names": "vlen"}

# config: seqlens's keys beyond vocab_size/d_model/pad_token_id; model: how weights are drawn/saved.
VARIANTS = [
    {"name": "mamba2_g1_h8_mean_f32",
     "shape": {"D_MODEL": 16},
     "config": dict(MAMBA2, n_layers=2, pooling="mean", d_state=8, ngroups=1, headdim=8),
     "model": {"dtype": "F32", "head_rows": 1, "proj_bias": False},
     "data": DATA},
    {"name": "mamba2_g2_h16_layer_last_hdimD_f16",
     "shape": {"D_MODEL": 16},
     "config": dict(MAMBA2, n_layers=2, pooling="last", d_state=4, ngroups=2, headdim=16, norm="layer",
                    D_has_hdim=True, prefix="backbone."),
     "model": {"dtype": "F16", "head_rows": 2, "proj_bias": True},
     "data": dict(DATA, tokens="int64", labels="int64", lengths="int64")},
    {"name": "mamba2_h64_mean_dtlimit_nbg_f32",
     "shape": {"N": 3, "L": 12, "LENGTHS": [12, 9, 4], "D_MODEL": 16},
     "config": dict(MAMBA2, n_layers=2, pooling="mean", d_state=8, ngroups=1, headdim=64, expand=4,
                    dt_limit=[0.004, 0.15], norm_before_gate=True),
     "model": {"dtype": "F32", "head_rows": 1, "proj_bias": False},
     "data": DATA},
    # cls pooling: only position 0 reaches the logit (its gradients are zero elsewhere), so the
    # smallest of the models.
    {"name": "mamba2_g2_h8_cls_nogatednorm_noconvb_bf16",
     "shape": {"D_MODEL": 8},
     "config": dict(MAMBA2, n_layers=2, pooling="cls", d_state=4, ngroups=2, headdim=8, rmsnorm=False),
     "model": {"dtype": "BF16", "head_rows": 1, "proj_bias": False, "conv_bias": False},
     "data": dict(DATA, tokens="uint16", lengths=None)},
    # 40 positions: several of a chunked scan's chunks, lengths ending inside one.
    {"name": "mamba2_long_g4_h4_bias_f32",
     "shape": {"N": 3, "L": 40, "LENGTHS": [40, 33, 5], "D_MODEL": 16},
     "config": dict(MAMBA2, n_layers=2, pooling="mean", d_state=4, ngroups=4, headdim=4, expand=1, dt_limit=[0.0, 0.05],
                    norm="rms"),
     "model": {"dtype": "F32", "head_rows": 1, "proj_bias": True},
     "data": DATA},
]


def mamba2_params(rng, config, head_rows, proj_bias, conv_bias=True):
    d, S, G, K, P = config["d_model"], config["d_state"], config["ngroups"], config["d_conv"], config["headdim"]
    di = config["expand"] * d
    H = di // P
    p = {"embedding.weight": rng.standard_normal((mf.VOCAB, d))}
    for i in range(config["n_layers"]):
        in_proj = mf.linear_weight(rng, 2 * di + 2 * G * S + H, d)
        # As for Mamba-1's x_proj: larger B, C and dt rows make the scan term a large share of
        # y (not hidden under D x) and delta vary across tokens.
        in_proj[2 * di:2 * di + 2 * G * S] *= 6.0
        in_proj[2 * di + 2 * G * S:] *= 4.0
        mixer = {
            "in_proj.weight": in_proj,
            "conv1d.weight": mf.uniform(rng, (di + 2 * G * S, 1, K), 0.5),
            "conv1d.bias": mf.small_bias(rng, di + 2 * G * S),
            "dt_bias": mf.dt_bias(rng, H),
            # mamba_ssm's A_init_range (1, 16), one value per head
            "A_log": np.log(rng.uniform(1, 16, size=H)),
            "D": 1.0 + 0.1 * rng.standard_normal(di if config.get("D_has_hdim") else H),
            "norm.weight": mf.norm_weight(rng, di),
            "out_proj.weight": mf.linear_weight(rng, d, di),
        }
        if proj_bias:
            mixer["in_proj.bias"] = mf.small_bias(rng, 2 * di + 2 * G * S + H)
            mixer["out_proj.bias"] = mf.small_bias(rng, d)
        if not conv_bias:
            del mixer["conv1d.bias"]
        if not config.get("rmsnorm", True):
            del mixer["norm.weight"]
        p[f"layers.{i}.norm.weight"] = mf.norm_weight(rng, d)
        if config.get("norm") == "layer":
            p[f"layers.{i}.norm.bias"] = mf.small_bias(rng, d)
        p.update({f"layers.{i}.mixer.{k}": v for k, v in mixer.items()})
    p["norm_f.weight"] = mf.norm_weight(rng, d)
    if config.get("norm") == "layer":
        p["norm_f.bias"] = mf.small_bias(rng, d)
    p.update(mf.head_params(rng, head_rows))
    return p


def build(variant):
    name = variant["name"]
    out_dir = os.path.join(mf.FIXTURES, name)
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(mf.seed_of(name))
    config = mf.ordered_config(variant["config"])
    model = variant["model"]
    params = mamba2_params(rng, config, model["head_rows"], model["proj_bias"], model.get("conv_bias", True))
    mf.save_model(out_dir, config, params, model["dtype"])
    mf.write_data(os.path.join(out_dir, "data.h5"), rng, variant["data"])

    config, params = ref.load_model(out_dir)
    tokens, lengths = ref.load_tokens(os.path.join(out_dir, "data.h5"))
    assert lengths.tolist() == mf.LENGTHS, (name, lengths)
    import h5py

    with h5py.File(os.path.join(out_dir, "data.h5"), "r") as f:
        labels = f["labels"][...]
    hooks = ref.zero_padding(ref.run(config, params, tokens, lengths), lengths)
    mf.write_expected(os.path.join(out_dir, "expected.h5"), hooks, labels, lengths)
    errors = selfcheck.run_all(config, params, tokens, lengths)
    return config, params, hooks, errors, mf.check_written(out_dir, hooks, lengths), lengths


def describe(config, params, hooks, lengths):
    """Numbers showing the fixture is not degenerate: delta's range (and how much dt_limit clamps),
    the scan term's share of y, the logits."""
    valid = ref.valid_mask(lengths, hooks["embed"].shape[1])
    parts = ["logits " + " ".join(f"{x:+.4f}" for x in hooks["logits"].tolist())]
    for i in range(config["n_layers"]):
        delta = hooks[f"blocks.{i}.mixer.delta"][valid]
        lo, hi = ref.dt_limit(config)
        clamped = ((delta == lo) | (delta == hi)).double().mean().item()
        x, y = hooks[f"blocks.{i}.mixer.in_x"], hooks[f"blocks.{i}.mixer.y"]
        D = params[f"layers.{i}.mixer.D"]
        Dx = x * (D if D.shape[0] == x.shape[-1] else D.repeat_interleave(config["headdim"]))
        share = (y - Dx)[valid].norm() / Dx[valid].norm()
        parts.append(f"delta[{i}] {delta.min():.2e}..{delta.max():.2e} (clamped {clamped:.0%})")
        parts.append(f"|scan term|/|D x|[{i}] {share:.2f}")
    return "; ".join(parts)


def main():
    only = set(sys.argv[1:])
    unknown = only - {v["name"] for v in VARIANTS}
    if unknown:
        sys.exit(f"unknown variants: {sorted(unknown)}")
    torch.set_num_threads(1)
    failed = []
    for variant in [v for v in VARIANTS if not only or v["name"] in only]:
        with mf.variant_shape(variant.get("shape", {})):
            config, params, hooks, errors, written_err, lengths = build(variant)
            failed += mf.report(variant["name"], errors, selfcheck.TOLERANCE)
            print(f"    expected.h5 vs float64 (float32 rounding)    {written_err:.2e}")
            if written_err >= 1e-6:
                failed.append(f"{variant['name']}: expected.h5 differs from the reference")
            print("    " + describe(config, params, hooks, lengths))
    if failed:
        print("SELF-CHECK FAILED:\n  " + "\n  ".join(failed), file=sys.stderr)
        sys.exit(1)
    print("Mamba-2 fixtures written; self-checks passed")


if __name__ == "__main__":
    main()
