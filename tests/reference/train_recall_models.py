"""Train a tiny Transformer, Mamba and Mamba-2 on `seqlens gym --task recall` and look at how they recall.

Run from anywhere (needs bin/seqlens; `make` first):  python3 tests/reference/train_recall_models.py
    --analyse-only   skip training; analyse the models already in tests/trained/{tf,mamba,mamba2}_recall
    --only NAME,...  train only those (the others' files are left as they are)

Writes tests/trained/tf_recall/, tests/trained/mamba_recall/, tests/trained/mamba2_recall/ (config.json + model.safetensors, the
layout of train_gym_models.py, whose training modules, training loop and checks are imported, not
copied) and tests/trained/recall_test.h5.

The task (gym/gym.c): 4 adjacent (key, value) pairs at random even positions, filler elsewhere, the
queried key as the last token; label 1 when that key's value is one of the 4 "high" values.  A model
that only counts high values in the sequence reaches AUC ~0.77 (1 + Bin(3, 1/2) against Bin(3, 1/2)
high values); only a model that binds each value to its key does better.

Question (issue 8): do interchange interventions on these models reproduce the qualitative result of
Arora et al. 2025, "Mechanistic evaluation of Transformers and state space models": a Transformer
retrieves the value by attention from the value position (induction); a Mamba carries key-value
associations in its state, the effect concentrates at the last position, and its short convolution
matters more than its SSM path?  Part 2 below measures, in float64 through seqlens_ref:
  - patching effects, mean over label-flip pairs of (patched - base) / (source - base) logit, at
    embed (= blocks.0.resid_pre), blocks.0.resid_post (= blocks.1.resid_pre) and blocks.1.resid_post,
    at positions -1 .. -L from each example's end (resolved in base and source separately, as
    `seqlens patch` does) and at the queried pair's own positions: "qv" = the base's queried value
    position taking the source's activation at the source's queried value position (role-aligned;
    the two layouts differ), "qv=abs" = the same absolute position in the source, "qk" = the
    queried key position, role-aligned;
  - component ablations (design.md `ablate --component`): Mamba conv -> identity (SiLU kept),
    ssm (y = D x), gate (SiLU(z) -> 1); Transformer attn.out / mlp.out = 0, per layer: AUC drop.
It then runs `bin/seqlens patch` / `ablate --component` on the same pairs and prints both numbers
(a cross-check of the C code, reported but not asserted: the C code may be mid-change).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch
from sklearn.metrics import roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import seqlens_ref as ref  # noqa: E402
import train_gym_models as gym_models  # noqa: E402  (training modules, train(), save/check)

ROOT, OUT, SEQLENS = gym_models.ROOT, gym_models.OUT, gym_models.SEQLENS
VOCAB, LEN = 48, 32
TRAIN = {"n": 20000, "seed": 21}
TEST = {"n": 600, "seed": 22}
VALID = 600
PAIR_SEED = 5

COMMON = {"vocab_size": VOCAB, "d_model": 32, "n_layers": 2, "pad_token_id": 0, "pooling": "last"}
TRANSFORMER = dict(COMMON, arch="transformer", n_heads=2, d_ff=64, norm_first=True, activation="gelu",
                   positional="rope", max_len=LEN, rope_base=10000, final_norm=True, layer_norm_eps=1e-5,
                   causal=False)
MAMBA = dict(COMMON, arch="mamba", d_state=16, d_conv=4, expand=2, dt_rank=2, norm_eps=1e-5)
MAMBA2 = dict(COMMON, arch="mamba2", d_state=16, d_conv=4, expand=2, headdim=16, ngroups=1, norm_eps=1e-5)

# name, config, training settings (train_gym_models.train: Adam, one-cycle cosine schedule, BCE).
MODELS = [
    ("tf_recall", TRANSFORMER, {"seed": 1, "epochs": 20, "lr": 3e-3, "batch": 64, "n_train": 19400}),
    ("mamba_recall", MAMBA, {"seed": 3, "epochs": 2, "lr": 1e-2, "batch": 64, "n_train": 8000}),
    ("mamba2_recall", MAMBA2, {"seed": 4, "epochs": 4, "lr": 1e-2, "batch": 64, "n_train": 8000}),
]


def gym(n, seed, path):
    cmd = [SEQLENS, "gym", "--task", "recall", "--n", str(n), "--len", str(LEN), "--seed", str(seed),
           "--noise", "0.0", "-o", path]
    print("  $ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


# ----------------------------------------------------------------------------- part 1: training

def train_all(test_path, only):
    with tempfile.TemporaryDirectory() as tmp:
        train_path = os.path.join(tmp, "recall_train.h5")
        gym(TRAIN["n"], TRAIN["seed"], train_path)
        full = gym_models.load(train_path)
    n = len(full["labels"])
    valid_set = gym_models.take(full, slice(n - VALID, n))
    summary = {}
    for name, config, settings in MODELS:
        if only and name not in only:
            continue
        train_set = gym_models.take(full, slice(0, min(settings["n_train"], n - VALID)))
        print(f"{name}: training on {len(train_set['labels'])} examples", flush=True)
        t0 = time.time()
        model, history = gym_models.train(config, train_set, valid_set, settings)
        seconds = time.time() - t0
        gym_models.save_model(model, config, os.path.join(OUT, name))
        summary[name] = dict(gym_models.check_model(name, model, test_path), seconds=seconds,
                             epochs=len(history))
    for name, s in summary.items():
        size = sum(os.path.getsize(os.path.join(OUT, name, f)) for f in ("config.json", "model.safetensors"))
        ablations = ", ".join(f"{k} {v:.3f}" for k, v in s["ablate_zero"].items())
        print(f"{name}: test AUC {s['auc']:.4f} (bin/seqlens eval {s['cli_auc']:.6f}), ref vs module rel. err "
              f"{s['rel_err']:.1e}, {s['epochs']} epochs in {s['seconds']:.0f} s, {size} bytes\n"
              f"    AUC with family embedding zeroed: {ablations}\n"
              f"    reversal: Pearson r {s['reverse_r']:.3f}, reversed AUC {s['reverse_auc']:.4f}", flush=True)


# ----------------------------------------------------------------------------- part 2: analysis

def queried_positions(tokens, lengths):
    """Per example: position of the queried pair's value (the token after the last key's earlier copy)."""
    qv = np.empty(len(lengths), dtype=np.int64)
    for e, n in enumerate(lengths.tolist()):
        row = tokens[e, :n].tolist()
        key = row[-1]
        hits = [t for t in range(n - 2) if row[t] == key and t % 2 == 0 and 11 <= row[t + 1] < 19]
        assert len(hits) == 1, f"example {e}: {len(hits)} pairs with the queried key"
        qv[e] = hits[0] + 1
    return qv


def label_flip_pairs(labels, seed):
    """Each example as base, with a seeded source of the other label (design.md `--pairing label-flip`)."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    return np.array([rng.choice(neg if y == 1 else pos) for y in labels.tolist()])


HOOKS = ["embed", "blocks.0.resid_post", "blocks.1.resid_post"]  # embed = blocks.0.resid_pre, etc.


def patched_logits(config, params, tokens, lengths, hook, rows, pos_b, act):
    """Logits of the base examples with `hook` at (rows, pos_b) set to act [len(rows), d]."""
    rows, pos_b = torch.as_tensor(rows), torch.as_tensor(pos_b)
    if hook == "embed":
        token_embed = params["embedding.weight"][tokens].clone()
        if config["arch"] == "transformer" and config["positional"] == "learned":
            act = act - params["pos_embedding.weight"][pos_b]   # run() adds the positional term back
        assert config["arch"] != "transformer" or config["positional"] in ("learned", "rope", "none")
        token_embed[rows, pos_b] = act
        return ref.run(config, params, tokens, lengths, token_embed=token_embed)["logits"].numpy()
    layer = int(hook.split(".")[1])

    def write(i, pre, post):
        if i != layer:
            return post
        post = post.clone()
        post[rows, pos_b] = act
        return post
    return ref.run(config, params, tokens, lengths, block_write=write)["logits"].numpy()


def patching_table(config, params, test, src):
    tokens, lengths = test["tokens"], test["lengths"]
    N = len(lengths)
    base = ref.run(config, params, tokens, lengths)
    source = ref.run(config, params, tokens[src], lengths[src])
    b, s = base["logits"].numpy(), source["logits"].numpy()
    denom = s - b
    usable = np.abs(denom) >= 1e-6
    qv = queried_positions(tokens, lengths)
    L = tokens.shape[1]
    lens = lengths.numpy()
    sites = [(f"{-k}", lens - k, lens[src] - k) for k in range(1, L + 1)]
    sites += [("qv", qv, qv[src]), ("qv=abs", qv, qv), ("qk", qv - 1, qv[src] - 1)]
    table = {}
    for hook in HOOKS:
        for label, pb, ps in sites:
            ok = (pb >= 0) & (ps >= 0) & (pb < lens) & (ps < lens[src]) & usable
            rows = np.flatnonzero(ok)
            if len(rows) == 0:
                table[hook, label] = (float("nan"), 0)
                continue
            act = source[hook][torch.as_tensor(rows), torch.as_tensor(ps[rows])]
            p = patched_logits(config, params, tokens, lengths, hook, rows, pb[rows], act)
            table[hook, label] = (float(np.mean((p[rows] - b[rows]) / denom[rows])), len(rows))
    return table, int((~usable).sum()), N


def mamba_ablated(config, params, tokens, lengths, component, layer):
    """design.md `ablate --component`: conv -> identity (SiLU kept), ssm: y = D x, gate: SiLU(z) -> 1."""
    import torch.nn.functional as F
    d_inner, R, S = config["expand"] * config["d_model"], config["dt_rank"], config["d_state"]
    h = params["embedding.weight"][tokens]
    for i in range(config["n_layers"]):
        p = ref.subset(params, f"layers.{i}.")
        m = ref.subset(p, "mixer.")
        u = ref.rms_norm(h, p["norm.weight"], config["norm_eps"])
        xz = ref.linear(u, m, "in_proj")
        x, z = xz[..., :d_inner], xz[..., d_inner:]
        hit = i == layer
        x = F.silu(x if hit and component == "conv" else ref.causal_depthwise_conv(x, m["conv1d.weight"],
                                                                                 m["conv1d.bias"]))
        dt, B, C = torch.split(ref.linear(x, m, "x_proj"), [R, S, S], dim=-1)
        delta = F.softplus(ref.linear(dt, m, "dt_proj"))
        if hit and component == "ssm":
            y = m["D"] * x
        else:
            y = ref.selective_scan(x, delta, -torch.exp(m["A_log"]), B, C, m["D"])
        gate = torch.ones_like(z) if hit and component == "gate" else F.silu(z)
        h = h + ref.linear(y * gate, m, "out_proj")
    final = ref.rms_norm(h, params["norm_f.weight"], config["norm_eps"])
    return ref.head_logit(ref.pool(final, lengths, config["pooling"]), params).numpy()


def mamba2_ablated(config, params, tokens, lengths, component, layer):
    """The same three switches on Mamba-2 (xBC's conv, the scan term, the gate inside the gated norm):
    make_intervention_fixtures.forward's, whose Mamba-2 switches are checked there against mamba_ssm."""
    import make_intervention_fixtures as interventions
    off = {layer: component} if component else None
    return interventions.forward(config, params, tokens, lengths, mamba_off=off)["logits"].numpy()


def transformer_ablated(config, params, tokens, lengths, component, layer):
    """attn / mlp: blocks.i.attn.out / blocks.i.mlp.out set to 0 (norm_first models only)."""
    assert config["norm_first"]
    eps = config["layer_norm_eps"]
    h = ref.transformer_embed(config, params, tokens)
    for i in range(config["n_layers"]):
        p = ref.subset(params, f"layers.{i}.")
        attn, _ = ref.self_attention(ref.layer_norm(h, p, "norm1", eps), p, config, lengths)
        h = h + (0 * attn if i == layer and component == "attn" else attn)
        _, mlp = ref.feed_forward(ref.layer_norm(h, p, "norm2", eps), p, config["activation"])
        h = h + (0 * mlp if i == layer and component == "mlp" else mlp)
    if config["final_norm"]:
        h = ref.layer_norm(h, params, "norm", eps)
    return ref.head_logit(ref.pool(h, lengths, config["pooling"]), params).numpy()


def component_table(config, params, test):
    tokens, lengths, labels = test["tokens"], test["lengths"], test["labels"].numpy()
    if config["arch"] == "mamba":
        fn, components = mamba_ablated, ("conv", "ssm", "gate")
    elif config["arch"] == "mamba2":
        fn, components = mamba2_ablated, ("conv", "ssm", "gate")
    else:
        fn, components = transformer_ablated, ("attn", "mlp")
    plain = ref.run(config, params, tokens, lengths)["logits"].numpy()
    check = fn(config, params, tokens, lengths, None, -1)
    assert np.abs(check - plain).max() <= 1e-9 * np.abs(plain).max(), "ablation re-statement != run()"
    base_auc = roc_auc_score(labels, plain)
    return base_auc, {(c, i): roc_auc_score(labels, fn(config, params, tokens, lengths, c, i)) - base_auc
                      for c in components for i in range(config["n_layers"])}


def cli_patch(model_dir, test_path, src, tmp):
    """bin/seqlens patch on the same pairs at -1..-8: {(hook, position): effect}; {} if it fails."""
    pairs = os.path.join(tmp, "pairs.txt")
    with open(pairs, "w") as f:
        f.writelines(f"{b} {s}\n" for b, s in enumerate(src.tolist()))
    out = os.path.join(tmp, "patch.json")
    cmd = [SEQLENS, "patch", model_dir, test_path, "--hook", "embed", "blocks.*.resid_post", "--positions",
           ",".join(str(-k) for k in range(1, 9)), "--pairs", pairs, "--bootstrap", "0", "-o", out]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"    (bin/seqlens patch failed: {run.stderr.strip()})")
        return {}
    with open(out) as f:
        return {(r["hook"], str(r["position"])): r["effect"] for r in json.load(f)["results"]}


def cli_components(model_dir, test_path):
    cmd = [SEQLENS, "ablate", model_dir, test_path, "--component", "all", "--layer", "all", "--bootstrap", "0"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"    (bin/seqlens ablate --component failed: {run.stderr.strip()})")
        return {}
    return {(r["component"], r["layer"]): r["delta_auc"] for r in json.loads(run.stdout)["results"]}


def analyse(test_path):
    test = gym_models.load(test_path)
    src = label_flip_pairs(test["labels"].numpy(), PAIR_SEED)
    for name, _, _ in MODELS:
        model_dir = os.path.join(OUT, name)
        config, params = ref.load_model(model_dir)
        t0 = time.time()
        table, n_flat, N = patching_table(config, params, test, src)
        base_auc, comps = component_table(config, params, test)
        with tempfile.TemporaryDirectory() as tmp:
            cli = cli_patch(model_dir, test_path, src, tmp)
        cli_comp = cli_components(model_dir, test_path)
        print(f"\n{name}: test AUC {base_auc:.4f}; {N} label-flip pairs (seed {PAIR_SEED}), {n_flat} left out "
              f"(|source - base| < 1e-6); analysis {time.time() - t0:.0f} s")
        print("  patching effect, mean (patched - base) / (source - base); [C] = bin/seqlens patch, same pairs")
        print(f"  {'position':>8} " + " ".join(f"{h:>26}" for h in HOOKS))
        L = test["tokens"].shape[1]
        shown = [str(-k) for k in range(1, 9)] + ["qv", "qv=abs", "qk"]
        for label in shown:
            cells = []
            for h in HOOKS:
                eff, used = table[h, label]
                c = cli.get((h, label))
                cells.append(f"{eff:+.3f} ({used:3d})" + (f" [C {c:+.3f}]" if c is not None else " " * 11))
            print(f"  {label:>8} " + " ".join(f"{c:>26}" for c in cells))
        far = [max(abs(table[h, str(-k)][0]) for k in range(9, L + 1) if table[h, str(-k)][1] > 0) for h in HOOKS]
        print(f"  {'-9..-' + str(L):>8} " + " ".join(f"{'max |effect| ' + format(m, '.3f'):>26}" for m in far))
        print("  component ablation: AUC change (ablated - baseline); [C] = bin/seqlens ablate --component")
        for (c, i), d in comps.items():
            cc = cli_comp.get((c, i))
            print(f"    {c:>5} layer {i}: {d:+.4f}" + (f"  [C {cc:+.4f}]" if cc is not None else ""))


def main():
    torch.set_num_threads(1)   # these tiny models train ~4x faster on one thread than on two
    if not os.access(SEQLENS, os.X_OK):
        sys.exit(f"{SEQLENS} not found: run make at the repository root first")
    os.makedirs(OUT, exist_ok=True)
    started = time.time()
    test_path = os.path.join(OUT, "recall_test.h5")
    if "--analyse-only" not in sys.argv:
        gym(TEST["n"], TEST["seed"], test_path)
        train_all(test_path, sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None)
    analyse(test_path)
    print(f"total {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
