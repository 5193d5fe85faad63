"""Golden values for `seqlens inspect` (python3 tests/reference/make_inspect_fixtures.py).

Computed with numpy from each fixture's expected.h5 (the PyTorch reference's activations) and
data.h5 (families: /families/of_token, overridden by /families/of_position where >= 0), by the
definitions of design.md section 5, independently of the C code. Writes
tests/fixtures/<variant>/inspect_expected.json; fixtures whose expected.h5 has no attention
pattern (the long ones) are skipped for the Transformer. `make_inspect_fixtures.py NAME...` writes
only the named fixtures.

Mamba-2 (delta [nheads] per position, x [d_inner] = [nheads, headdim], B [ngroups, d_state], head h
reading group h // (nheads / ngroups), A [nheads]) adds per-head arrays to each family row:
mean_delta_per_head (delta_h), mean_gate_per_head (SiLU(z) over the head's channels),
mean_write_per_head (|delta_h x_c| over the head's channels, times ||B_g||), mean_retention_per_head
(exp(delta_h A_h)) and memory_length_per_head (-1/ln of that head's mean retention); the design's
scalars are the means over heads (= over channels, each channel taking its head's delta).
"""
import json
import os

import h5py
import numpy as np
from safetensors.torch import load_file

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def families(data):
    with h5py.File(data, "r") as f:
        tokens = f["tokens"][...].astype(np.int64)
        fam = f["families/of_token"][...][tokens]
        if "families/of_position" in f:
            pos = f["families/of_position"][...]
            fam = np.where(pos >= 0, pos, fam)
        names = [n.decode() if isinstance(n, bytes) else n for n in f["families/names"][...]]
    return fam, names


def a_matrix(model_dir, config, layer):
    tensors = load_file(os.path.join(model_dir, "model.safetensors"))
    prefix = config.get("prefix", "")
    a_log = tensors[prefix + f"layers.{layer}.mixer.A_log"].double().numpy()  # as stored, BF16 included
    return -np.exp(a_log)  # [d_inner, d_state]


def a_heads(model_dir, config, layer):
    """Mamba-2's A = -exp(A_log) [nheads], from the file as stored."""
    tensors = load_file(os.path.join(model_dir, "model.safetensors"))
    names = [n for n in tensors if n.endswith(f"layers.{layer}.mixer.A_log")]
    assert len(names) == 1, names
    return -np.exp(tensors[names[0]].double().numpy())


def mamba2_rows(exp, fam, names, lengths, model_dir, config, layer):
    delta = exp[f"blocks.{layer}.mixer.delta"][...].astype(np.float64)  # [N, L, H]
    x = exp[f"blocks.{layer}.mixer.in_x"][...].astype(np.float64)  # [N, L, H * P]
    b = exp[f"blocks.{layer}.mixer.B"][...].astype(np.float64)  # [N, L, G * S]
    gate = exp[f"blocks.{layer}.mixer.gate"][...].astype(np.float64)
    a = a_heads(model_dir, config, layer)
    H = delta.shape[-1]
    P = x.shape[-1] // H
    G = config.get("ngroups", config.get("n_groups", 1))
    S = b.shape[-1] // G
    group = np.arange(H) // (H // G)
    rows = []
    for f, name in enumerate(names):
        sel = [(e, t) for e in range(len(lengths)) for t in range(lengths[e]) if fam[e, t] == f]
        if not sel:
            continue
        d = np.array([delta[e, t] for e, t in sel])  # [n, H]
        xs = np.array([x[e, t] for e, t in sel]).reshape(len(sel), H, P)
        g = np.array([gate[e, t] for e, t in sel]).reshape(len(sel), H, P).mean(axis=2)  # [n, H]
        bnorm = np.linalg.norm(np.array([b[e, t] for e, t in sel]).reshape(len(sel), G, S), axis=2)  # [n, G]
        write = (np.abs(d[:, :, None] * xs).mean(axis=2)) * bnorm[:, group]  # [n, H]
        retention = np.exp(d * a[None])  # [n, H]
        r_head = retention.mean(axis=0)
        r = r_head.mean()
        rows.append({"family": name, "mean_delta": d.mean(), "mean_gate": g.mean(), "mean_write": write.mean(),
                     "mean_retention": r, "memory_length": -1 / np.log(r),
                     "mean_delta_per_head": d.mean(axis=0).tolist(), "mean_gate_per_head": g.mean(axis=0).tolist(),
                     "mean_write_per_head": write.mean(axis=0).tolist(),
                     "mean_retention_per_head": r_head.tolist(),
                     "memory_length_per_head": (-1 / np.log(r_head)).tolist()})
    return rows


def mamba_rows(exp, fam, names, lengths, model_dir, config, layer):
    delta = exp[f"blocks.{layer}.mixer.delta"][...].astype(np.float64)
    x = exp[f"blocks.{layer}.mixer.in_x"][...].astype(np.float64)
    b = exp[f"blocks.{layer}.mixer.B"][...].astype(np.float64)
    gate = exp[f"blocks.{layer}.mixer.gate"][...].astype(np.float64)
    a = a_matrix(model_dir, config, layer)
    rows = []
    for f, name in enumerate(names):
        sel = [(e, t) for e in range(len(lengths)) for t in range(lengths[e]) if fam[e, t] == f]
        if not sel:
            continue
        d = np.array([delta[e, t] for e, t in sel])
        retention = np.exp(d[:, :, None] * a[None]).mean(axis=(1, 2))
        write = np.abs(d * np.array([x[e, t] for e, t in sel])) * np.linalg.norm([b[e, t] for e, t in sel], axis=1)[:, None]
        r = retention.mean()
        rows.append({"family": name, "mean_delta": d.mean(), "mean_gate": np.mean([gate[e, t].mean() for e, t in sel]),
                     "mean_write": write.mean(), "mean_retention": r, "memory_length": -1 / np.log(r)})
    return rows


def transformer_rows(exp, fam, names, lengths, config, layer):
    pattern = exp[f"blocks.{layer}.attn.pattern"][...].astype(np.float64)  # [N, H, L, L]
    heads = pattern.shape[1]
    mass = np.zeros((len(names), heads))
    share = np.zeros(len(names))
    entropy, distance, queries = np.zeros(heads), np.zeros(heads), 0
    for e, n in enumerate(lengths):
        for q in range(n):
            visible = q + 1 if config.get("causal") else n
            keys = fam[e, :visible]
            for f in range(len(names)):
                share[f] += (keys == f).sum() / visible
                mass[f] += pattern[e, :, q, :n][:, fam[e, :n] == f].sum(axis=1)
            p = pattern[e, :, q, :n]
            entropy += -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(axis=1)
            distance += (p * np.abs(q - np.arange(n))).sum(axis=1)
            queries += 1
    rows = []
    for f, name in enumerate(names):
        if share[f] == 0:
            continue
        m = mass[f].sum() / (queries * heads)
        s = share[f] / queries
        rows.append({"family": name, "attention_mass": m, "token_share": s, "ratio": m / s,
                     "attention_mass_per_head": (mass[f] / queries).tolist()})
    head_rows = [{"head": h, "entropy": entropy[h] / queries, "mean_distance": distance[h] / queries} for h in range(heads)]
    return rows, head_rows


def main():
    import sys
    for name in sys.argv[1:] or sorted(os.listdir(FIXTURES)):
        model_dir = os.path.join(FIXTURES, name)
        if not os.path.exists(os.path.join(model_dir, "config.json")):
            continue
        config = json.load(open(os.path.join(model_dir, "config.json")))
        fam, names = families(os.path.join(model_dir, "data.h5"))
        with h5py.File(os.path.join(model_dir, "expected.h5"), "r") as exp:
            lengths = exp["lengths"][...].tolist()
            if config["arch"] == "transformer" and "blocks.0.attn.pattern" not in exp:
                print(f"{name}: no attention pattern in expected.h5, skipped")
                continue
            layers = []
            for i in range(config["n_layers"]):
                if config["arch"] == "mamba2":
                    layers.append({"layer": i, "families": mamba2_rows(exp, fam, names, lengths, model_dir, config, i)})
                elif config["arch"] == "mamba":
                    layers.append({"layer": i, "families": mamba_rows(exp, fam, names, lengths, model_dir, config, i)})
                else:
                    rows, heads = transformer_rows(exp, fam, names, lengths, config, i)
                    layers.append({"layer": i, "families": rows, "heads": heads})
        with open(os.path.join(model_dir, "inspect_expected.json"), "w") as f:
            json.dump({"layers": layers}, f, indent=1, default=float)
            f.write("\n")
        print(f"{name}: {len(layers)} layers written")


if __name__ == "__main__":
    main()
