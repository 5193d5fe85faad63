"""Golden logits for `seqlens ablate --component` and `seqlens patch`
(run: python3 tests/reference/make_intervention_fixtures.py).

For every tests/fixtures/<variant>/ with a config.json, reads the model and data.h5 the way the C
code does (prefix stripped, lengths inferred where /lengths is absent) and writes
intervene_expected.json next to them (one line of compact JSON, float64 values as Python's repr,
which round-trips exactly):

    {"components": [{"component": "conv" | "ssm" | "gate" | "attn" | "mlp", "layer": i,
                     "mode": "zero" | "mean", "logits": [logit per example]}, ...],
     "patch": {"pairs": [[base, source], ...], "hooks": [hook name, ...], "positions": [p, ...],
               "base_logits": [per pair], "source_logits": [per pair],
               "patched": [pair][hook][position] -> logit, or null where the position is not
                          valid in both examples}}

Meanings (design.md section 5):
  components  Mamba, mode "zero" only: "conv" = the causal conv and its bias replaced by the
              identity, SiLU kept (in_x = SiLU(x)); "ssm" = y = D * in_x (scan term removed);
              "gate" = SiLU(z) replaced by 1. Transformer, modes "zero" and "mean": "attn" / "mlp" =
              blocks.i.attn.out / blocks.i.mlp.out (the sublayer's output after its last linear map,
              before the residual add, and for post-norm before the LayerNorm that follows the add)
              set to 0, or to its mean over every valid position of every example of the un-ablated
              run (one d_model vector, float64), at every position. Rows are ordered component,
              then mode, then layer.
  patch       For each pair (base, source), hook and position p: p >= 0 is absolute, p < 0 counts
              from each example's own end (-1 = length - 1), resolved separately in base and source.
              If both resolve to a valid position, the base example is run with that one row of that
              hook replaced by the source's (un-patched) row at its position, everything downstream
              recomputed; the patched logit is stored. Pairs: [b, (b + 1) % N] for b < min(N, 6),
              then [0, 0]. Hooks: embed, blocks.0.resid_post, blocks.<last>.resid_pre, final, and
              blocks.0.mixer.{in_x, gate, out} (Mamba) or blocks.0.attn.out, blocks.0.mlp.{hidden,
              out} (Transformer). `embed` is the input of block 0: token embedding plus the learned
              or sinusoidal positional term of the source's position (rope acts inside attention, at
              the base's position).

The forward pass here is seqlens_ref's, re-assembled from its building blocks with a write at
every hook point (checked bitwise against seqlens_ref.run()); seqlens_ref.py is not changed. Only
intervene_expected.json is written; the other fixture files are read, never rewritten. Exits
non-zero if any self-check fails.
"""
import json
import math
import os
import sys
import time

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seqlens_ref as ref  # noqa: E402
import selfcheck  # noqa: E402

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
OUTPUT = "intervene_expected.json"
MAMBA_COMPONENTS = ("conv", "ssm", "gate")
MAMBA_ARCHS = ("mamba", "mamba2")
TF_COMPONENTS = ("attn", "mlp")
TF_MODES = ("zero", "mean")
POSITIONS = [0, 2, -1, -3, 5]
MAX_PAIRS = 6
TOLERANCE = 1e-10  # relative, float64 against an independent float64 computation
IDENTITY_TOLERANCE = 1e-12  # absolute, for the identities the brief states (self-pair, final at -1)


# ----------------------------------------------------------------------------- loading

def load_variant(variant_dir):
    config, params = ref.load_model(variant_dir)
    tokens, lengths = ref.load_tokens(os.path.join(variant_dir, "data.h5"), config.get("pad_token_id", 0))
    return {"dir": variant_dir, "config": config, "params": params, "tokens": tokens, "lengths": lengths}


# ----------------------------------------------------------------------------- forward with writes

def forward(config, params, tokens, lengths, write=None, mamba_off=None):
    """seqlens_ref.run() with a write at every hook point: write(name, value) -> the value used
    from there on (and recorded as the hook). mamba_off {layer: "conv" | "ssm" | "gate"}: the
    structural Mamba ablations, which no activation write expresses. attn.pattern is read-only
    (its write is not needed here). Without either argument the result is run()'s, bit for bit."""
    tokens = torch.as_tensor(tokens).to(torch.long)
    lengths = torch.as_tensor(lengths).to(torch.long)
    hooks = {}

    def fire(name, value, writable=True):
        if write is not None:
            new = write(name, value)
            if new is not value and not writable:
                raise ValueError(f"{name} cannot be written here")
            value = new
        hooks[name] = value
        return value

    if config["arch"] == "mamba":
        mamba_forward(config, params, tokens, fire, mamba_off or {})
    elif config["arch"] == "mamba2":
        mamba2_forward(config, params, tokens, fire, mamba_off or {})
    elif config["arch"] == "transformer":
        transformer_forward(config, params, tokens, lengths, fire)
    else:
        raise ValueError(f"unknown arch {config['arch']!r}")
    pooled = fire("pooled", ref.pool(hooks["final"], lengths, config["pooling"]))
    fire("logits", ref.head_logit(pooled, params))
    return hooks


def mamba_forward(config, params, tokens, fire, off):
    """seqlens_ref.mamba_forward / mamba_mixer, hook by hook."""
    d_inner = config["expand"] * config["d_model"]
    R, S = config["dt_rank"], config["d_state"]
    h = fire("embed", params["embedding.weight"][tokens])
    for i in range(config["n_layers"]):
        name = f"blocks.{i}."
        p = ref.subset(params, f"layers.{i}.")
        mp = ref.subset(p, "mixer.")
        h = fire(name + "resid_pre", h)
        u = ref.mamba_norm(h, p, "norm", config)
        xz = ref.linear(u, mp, "in_proj")
        x, z = xz[..., :d_inner], xz[..., d_inner:]
        if off.get(i) == "conv":
            x = F.silu(x)  # identity kernel, no bias: SiLU kept
        else:
            x = F.silu(ref.causal_depthwise_conv(x, mp["conv1d.weight"], mp.get("conv1d.bias")))
        x = fire(name + "mixer.in_x", x)
        dt, B, C = torch.split(ref.linear(x, mp, "x_proj"), [R, S, S], dim=-1)
        delta = fire(name + "mixer.delta", F.softplus(ref.linear(dt, mp, "dt_proj")))
        B = fire(name + "mixer.B", B)
        C = fire(name + "mixer.C", C)
        A = -torch.exp(mp["A_log"])
        if off.get(i) == "ssm":
            y = mp["D"] * x  # scan term removed
        else:
            y = ref.selective_scan(x, delta, A, B, C, mp["D"])
        gate = fire(name + "mixer.gate", torch.ones_like(z) if off.get(i) == "gate" else F.silu(z))
        out = fire(name + "mixer.out", ref.linear(y * gate, mp, "out_proj"))
        h = fire(name + "resid_post", h + out)
    fire("final", ref.mamba_norm(h, params, "norm_f", config))


def mamba2_forward(config, params, tokens, fire, off):
    """seqlens_ref.mamba_forward / mamba2_mixer, hook by hook. The switches as design.md section 5
    says for Mamba-2: conv = xBC's causal conv and bias replaced by the identity (SiLU kept), ssm =
    y = D x (scan term removed), gate = SiLU(z) replaced by 1 inside the gated norm."""
    d_inner = config["expand"] * config["d_model"]
    P = config["headdim"]
    H = d_inner // P
    G, S = config["ngroups"], config["d_state"]
    lo, hi = ref.dt_limit(config)
    h = fire("embed", params["embedding.weight"][tokens])
    for i in range(config["n_layers"]):
        name = f"blocks.{i}."
        p = ref.subset(params, f"layers.{i}.")
        mp = ref.subset(p, "mixer.")
        h = fire(name + "resid_pre", h)
        u = ref.mamba_norm(h, p, "norm", config)
        z, xBC, dt = torch.split(ref.linear(u, mp, "in_proj"), [d_inner, d_inner + 2 * G * S, H], dim=-1)
        if off.get(i) == "conv":
            xBC = F.silu(xBC)
        else:
            xBC = F.silu(ref.causal_depthwise_conv(xBC, mp["conv1d.weight"], mp.get("conv1d.bias")))
        x, B, C = torch.split(xBC, [d_inner, G * S, G * S], dim=-1)
        x = fire(name + "mixer.in_x", x)
        delta = fire(name + "mixer.delta", F.softplus(dt + mp["dt_bias"]).clamp(min=lo, max=hi))
        B = fire(name + "mixer.B", B)
        C = fire(name + "mixer.C", C)
        N, L = x.shape[:2]
        D = mp["D"].reshape(H, P) if config.get("D_has_hdim", False) else mp["D"]
        if off.get(i) == "ssm":
            Dx = D[:, None] if D.dim() == 1 else D
            y = (Dx * x.reshape(N, L, H, P)).reshape(N, L, d_inner)
        else:
            y = ref.ssd_scan(x.reshape(N, L, H, P), delta, -torch.exp(mp["A_log"]), B.reshape(N, L, G, S),
                             C.reshape(N, L, G, S), D).reshape(N, L, d_inner)
        y = fire(name + "mixer.y", y)
        gate = fire(name + "mixer.gate", torch.ones_like(z) if off.get(i) == "gate" else F.silu(z))
        if config.get("rmsnorm", True):
            v = gated_norm_with_gate(y, gate, mp["norm.weight"], G, config.get("gated_norm_eps", 1e-5),
                                     config.get("norm_before_gate", False))
        else:
            v = y * gate
        out = fire(name + "mixer.out", ref.linear(v, mp, "out_proj"))
        h = fire(name + "resid_post", h + out)
    fire("final", ref.mamba_norm(h, params, "norm_f", config))


def gated_norm_with_gate(y, gate, weight, ngroups, eps, norm_before_gate):
    """ref.gated_norm with the gate SiLU(z) given (so that the gate hook's value, or the gate
    switch's 1, is what the norm multiplies by)."""
    v = y if norm_before_gate else y * gate
    groups = v.reshape(v.shape[:-1] + (ngroups, v.shape[-1] // ngroups))
    groups = groups * torch.rsqrt(groups.pow(2).mean(dim=-1, keepdim=True) + eps)
    out = groups.reshape(v.shape) * weight
    return out * gate if norm_before_gate else out


def transformer_forward(config, params, tokens, lengths, fire):
    """seqlens_ref.transformer_forward / transformer_block / feed_forward, hook by hook. attn.out
    and mlp.out are the sublayer outputs before the residual add (post-norm: before the add and
    the LayerNorm after it)."""
    eps, norm_first = config["layer_norm_eps"], config["norm_first"]
    h = fire("embed", ref.transformer_embed(config, params, tokens))
    for i in range(config["n_layers"]):
        name = f"blocks.{i}."
        p = ref.subset(params, f"layers.{i}.")
        h = fire(name + "resid_pre", h)
        x = ref.layer_norm(h, p, "norm1", eps) if norm_first else h
        attn_out, pattern = ref.self_attention(x, p, config, lengths)
        fire(name + "attn.pattern", pattern, writable=False)
        attn_out = fire(name + "attn.out", attn_out)
        if norm_first:
            h = h + attn_out
            x = ref.layer_norm(h, p, "norm2", eps)
        else:
            h = ref.layer_norm(h + attn_out, p, "norm1", eps)
            x = h
        pre = ref.linear(x, p, "linear1")
        hidden = fire(name + "mlp.hidden", F.gelu(pre) if config["activation"] == "gelu" else F.relu(pre))
        mlp_out = fire(name + "mlp.out", ref.linear(hidden, p, "linear2"))
        h = h + mlp_out if norm_first else ref.layer_norm(h + mlp_out, p, "norm2", eps)
        h = fire(name + "resid_post", h)
    if config.get("final_norm", False):
        h = ref.layer_norm(h, params, "norm", eps)
    fire("final", h)


def clean_run(v, config=None):
    return forward(config or v["config"], v["params"], v["tokens"], v["lengths"])


# ----------------------------------------------------------------------------- component ablation

def component_rows(config):
    """[(component, mode, layer)] in the order written."""
    n = config["n_layers"]
    if config["arch"] in MAMBA_ARCHS:
        return [(c, "zero", i) for c in MAMBA_COMPONENTS for i in range(n)]
    return [(c, m, i) for c in TF_COMPONENTS for m in TF_MODES for i in range(n)]


def output_means(v, config, clean):
    """Transformer: attn.out and mlp.out of each layer averaged over all valid positions of the
    un-ablated run (one d_model vector each)."""
    valid = ref.valid_mask(v["lengths"], v["tokens"].shape[1])
    return {f"blocks.{i}.{c}.out": clean[f"blocks.{i}.{c}.out"][valid].mean(dim=0)
            for c in TF_COMPONENTS for i in range(config["n_layers"])}


def component_logits(v, config, component, mode, layer, means):
    if component in MAMBA_COMPONENTS:
        return forward(config, v["params"], v["tokens"], v["lengths"], mamba_off={layer: component})["logits"]
    target = f"blocks.{layer}.{component}.out"

    def write(name, value):
        if name != target:
            return value
        return torch.zeros_like(value) if mode == "zero" else means[target].expand_as(value).clone()
    return forward(config, v["params"], v["tokens"], v["lengths"], write=write)["logits"]


def all_components(v, config=None, clean=None):
    config = config or v["config"]
    clean = clean if clean is not None else clean_run(v, config)
    means = output_means(v, config, clean) if config["arch"] == "transformer" else None
    return [{"component": c, "layer": i, "mode": m, "logits": component_logits(v, config, c, m, i, means)}
            for c, m, i in component_rows(config)]


# ----------------------------------------------------------------------------- patching

def patch_hooks(config):
    last = config["n_layers"] - 1
    common = ["embed", "blocks.0.resid_post", f"blocks.{last}.resid_pre", "final"]
    if config["arch"] == "mamba":
        return common + ["blocks.0.mixer.in_x", "blocks.0.mixer.gate", "blocks.0.mixer.out"]
    if config["arch"] == "mamba2":
        return common + ["blocks.0.mixer.in_x", "blocks.0.mixer.delta", "blocks.0.mixer.y", "blocks.0.mixer.gate",
                         "blocks.0.mixer.out"]
    return common + ["blocks.0.attn.out", "blocks.0.mlp.hidden", "blocks.0.mlp.out"]


def patch_pairs(n):
    return [[b, (b + 1) % n] for b in range(min(n, MAX_PAIRS))] + [[0, 0]]


def resolve(position, length):
    """Absolute position, or None when not a valid position of an example of this length."""
    t = position if position >= 0 else length + position
    return t if 0 <= t < length else None


def cells(v, pairs):
    """[(pair index, position index, base, base position, source, source position)] where the
    position is valid in both examples."""
    lengths = v["lengths"].tolist()
    out = []
    for k, (b, s) in enumerate(pairs):
        for q, p in enumerate(POSITIONS):
            bp, sp = resolve(p, lengths[b]), resolve(p, lengths[s])
            if bp is not None and sp is not None:
                out.append((k, q, b, bp, s, sp))
    return out


def patched_run(v, config, clean, hook, items):
    """items [(base, [base positions], source, [source positions])]: one run of a batch holding
    each base once, `hook` rows at the base positions replaced by the clean source rows. Returns
    the run's hooks (logits [len(items)])."""
    bases = torch.tensor([b for b, _, _, _ in items])
    ks, bpos, rows = [], [], []
    for k, (b, bps, s, sps) in enumerate(items):
        ks += [k] * len(bps)
        bpos += list(bps)
        rows.append(clean[hook][s, list(sps)])
    ks, bpos, rows = torch.tensor(ks, dtype=torch.long), torch.tensor(bpos, dtype=torch.long), torch.cat(rows)

    def write(name, value):
        if name != hook:
            return value
        value = value.clone()
        value[ks, bpos] = rows
        return value
    return forward(config, v["params"], v["tokens"][bases], v["lengths"][bases], write=write)


def patch_cells(v, config, clean, hook, todo):
    if not todo:
        return []
    items = [(b, [bp], s, [sp]) for _, _, b, bp, s, sp in todo]
    return patched_run(v, config, clean, hook, items)["logits"].tolist()


def patch_table(v, config=None, clean=None):
    config = config or v["config"]
    clean = clean if clean is not None else clean_run(v, config)
    pairs = patch_pairs(len(v["lengths"]))
    hooks = patch_hooks(config)
    todo = cells(v, pairs)
    patched = [[[None] * len(POSITIONS) for _ in hooks] for _ in pairs]
    for j, hook in enumerate(hooks):
        for (k, q, *_), value in zip(todo, patch_cells(v, config, clean, hook, todo)):
            patched[k][j][q] = value
    logits = clean["logits"]
    return {"pairs": pairs, "hooks": hooks, "positions": list(POSITIONS),
            "base_logits": [float(logits[b]) for b, _ in pairs],
            "source_logits": [float(logits[s]) for _, s in pairs],
            "patched": patched}


# ----------------------------------------------------------------------------- output

def to_json(result):
    return {"components": [dict(row, logits=[float(x) for x in row["logits"].tolist()])
                           for row in result["components"]],
            "patch": result["patch"]}


def write_json(path, result):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(to_json(result), separators=(",", ":"), allow_nan=False))
        f.write("\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- independent pieces

def rel_err(ours, theirs):
    ours, theirs = torch.as_tensor(ours, dtype=ref.DTYPE), torch.as_tensor(theirs, dtype=ref.DTYPE)
    scale = theirs.abs().max().clamp_min(1e-300)
    return float((ours - theirs).abs().max() / scale)


def abs_err(ours, theirs):
    ours, theirs = torch.as_tensor(ours, dtype=ref.DTYPE), torch.as_tensor(theirs, dtype=ref.DTYPE)
    return float((ours - theirs).abs().max()) if ours.numel() else 0.0


def pool_and_head_by_hand(config, params, final, lengths):
    """Per-example pooling loop and the head, [2, d] head as log p1 - log p0 (selfcheck.py)."""
    pooled = []
    for n, length in enumerate(torch.as_tensor(lengths).tolist()):
        rows = final[n, :length]
        pooled.append({"mean": rows.mean(0), "last": rows[-1], "cls": final[n, 0]}[config["pooling"]])
    z = F.linear(torch.stack(pooled), params["head.weight"], params.get("head.bias"))
    if z.shape[1] == 1:
        return z[:, 0]
    logp = F.log_softmax(z, -1)
    return logp[:, 1] - logp[:, 0]


def slow_mixer(h, p, config, off=None, edit=None):
    """selfcheck.mamba_slow_path's layout (nn-style conv1d cut to L, (b d l), einsum scan) with
    the component switches and optional edits {"in_x" | "gate" | "out": f([N, L, D]) -> same}."""
    edit = edit or {}
    L = h.shape[1]
    d_inner = config["expand"] * config["d_model"]
    R, S = config["dt_rank"], config["d_state"]
    u = selfcheck.torch_mamba_norm(h, p, "norm", config)
    xz = F.linear(u, p["mixer.in_proj.weight"], p.get("mixer.in_proj.bias")).transpose(1, 2)
    x, z = xz.chunk(2, dim=1)
    if off == "conv":
        x = F.silu(x)
    else:
        x = F.silu(F.conv1d(x, p["mixer.conv1d.weight"], p.get("mixer.conv1d.bias"),
                            padding=config["d_conv"] - 1, groups=d_inner)[..., :L])
    if "in_x" in edit:
        x = edit["in_x"](x.transpose(1, 2)).transpose(1, 2)
    dt, B, C = torch.split(F.linear(x.transpose(1, 2), p["mixer.x_proj.weight"]), [R, S, S], dim=-1)
    delta = F.softplus(torch.einsum("dr,blr->bdl", p["mixer.dt_proj.weight"], dt) + p["mixer.dt_proj.bias"][:, None])
    A = -torch.exp(p["mixer.A_log"])
    y = x * p["mixer.D"][:, None]
    if off != "ssm":
        deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
        deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B.transpose(1, 2), x)
        state = x.new_zeros(x.shape[0], d_inner, S)
        ys = []
        for t in range(L):
            state = deltaA[:, :, t] * state + deltaB_u[:, :, t]
            ys.append(torch.einsum("bdn,bn->bd", state, C[:, t]))
        y = torch.stack(ys, dim=2) + y
    gate = torch.ones_like(z) if off == "gate" else F.silu(z)
    if "gate" in edit:
        gate = edit["gate"](gate.transpose(1, 2)).transpose(1, 2)
    out = F.linear((y * gate).transpose(1, 2), p["mixer.out_proj.weight"], p.get("mixer.out_proj.bias"))
    if "out" in edit:
        out = edit["out"](out)
    return out


def mamba_independent(config, params, h, lengths, start=0, off=None, edit=None):
    """Logits from the residual h entering block `start`: slow-path mixers, RMS norm and pooling by
    hand. off (layer, component) and edit (for block 0) as in slow_mixer."""
    for i in range(start, config["n_layers"]):
        p = ref.subset(params, f"layers.{i}.")
        h = h + slow_mixer(h, p, config, off[1] if off and off[0] == i else None, edit if i == 0 else None)
    final = selfcheck.torch_mamba_norm(h, params, "norm_f", config)
    return pool_and_head_by_hand(config, params, final, lengths)


def torch_layers(config, params):
    return selfcheck.torch_encoder_layers(config, params)


def torch_independent(config, params, h, lengths, start=0):
    """Logits from the residual h entering block `start`: real nn.TransformerEncoderLayer modules
    (no rope: callers switch it off), padding and causal masks as selfcheck.py, final nn.LayerNorm,
    pooling by hand."""
    key_padding, causal_mask = selfcheck.torch_masks(lengths, h.shape[1], config.get("causal", False))
    with torch.enable_grad():  # torch's reference (non-fused) path, as in selfcheck.py
        for layer in torch_layers(config, params)[start:]:
            h = layer(h, src_mask=causal_mask, src_key_padding_mask=key_padding).detach()
        if config.get("final_norm", False):
            norm = nn.LayerNorm(config["d_model"], eps=config["layer_norm_eps"], dtype=ref.DTYPE)
            norm.load_state_dict(ref.subset(params, "norm."))
            h = norm(h).detach()
    return pool_and_head_by_hand(config, params, h, lengths)


def torch_config(config):
    """torch has no rope: the checks against torch run rope models with rope off (values
    recomputed here, not the ones written), as selfcheck.py and make_ablation_fixtures.py do."""
    if config["arch"] == "transformer" and config["positional"] == "rope":
        return dict(config, positional="none"), " (rope off)"
    return config, ""


# ----------------------------------------------------------------------------- self-checks
# Each returns {what: (error, limit)}.

def check_forward(v, result, clean):
    """The forward pass with writes, writing nothing, is run() bit for bit (every hook); the
    baseline is what make_fixtures.py and make_ablation_fixtures.py stored."""
    theirs = ref.run(v["config"], v["params"], v["tokens"], v["lengths"])
    same = set(theirs) == set(clean) and all(torch.equal(theirs[k], clean[k]) for k in theirs)
    identity = forward(v["config"], v["params"], v["tokens"], v["lengths"], write=lambda name, value: value,
                       mamba_off={})
    same = same and all(torch.equal(identity[k], clean[k]) for k in clean)
    errors = {"forward(no write) == run(), every hook, bitwise": (0.0 if same else math.inf, 0.0)}
    with h5py.File(os.path.join(v["dir"], "expected.h5"), "r") as f:
        stored = torch.from_numpy(f["logits"][...]).to(ref.DTYPE)
        stored_lengths = f["lengths"][...].tolist()
    errors["lengths == expected.h5 /lengths"] = (0.0 if stored_lengths == v["lengths"].tolist() else math.inf, 0.0)
    errors["float32(baseline) == expected.h5 /logits"] = (
        rel_err(clean["logits"].float().to(ref.DTYPE), stored), TOLERANCE)
    path = os.path.join(v["dir"], "ablate_expected.json")
    if os.path.exists(path):
        with open(path) as f:
            errors["baseline == ablate_expected.json baseline"] = (
                rel_err(clean["logits"], json.load(f)["baseline"]), TOLERANCE)
    return errors


def components_by_key(rows):
    return {(r["component"], r["mode"], r["layer"]): r["logits"] for r in rows}


def check_components_via_weights(v, result, clean):
    """Each component ablation == run() on weights that make it happen: conv = identity kernel
    (last tap 1, others 0) and zero bias; ssm = x_proj's C rows zeroed (C = 0: the scan term is
    exactly 0); attn / mlp = out_proj / linear2 weight zeroed, bias 0 or the mean (the hook sits
    before the residual add in both norm placements, so this is exact for post-norm too). gate has
    no weight form: see check_components_independent."""
    config, params = v["config"], v["params"]
    got = components_by_key(result["components"])
    means = output_means(v, config, clean) if config["arch"] == "transformer" else None
    errors = {}
    for (component, mode, layer), ours in got.items():
        mixer = f"layers.{layer}.mixer."
        if component == "conv":
            w = torch.zeros_like(params[mixer + "conv1d.weight"])
            w[:, 0, -1] = 1.0
            changes = {mixer + "conv1d.weight": w, mixer + "conv1d.bias": torch.zeros(w.shape[0], dtype=ref.DTYPE)}
        elif component in ("ssm", "gate") and config["arch"] == "mamba2":
            changes = mamba2_weight_form(config, params, layer, component)
        elif component == "ssm":
            w = params[mixer + "x_proj.weight"].clone()
            w[config["dt_rank"] + config["d_state"]:] = 0.0
            changes = {mixer + "x_proj.weight": w}
        elif component in TF_COMPONENTS:
            lin = f"layers.{layer}." + ("self_attn.out_proj" if component == "attn" else "linear2")
            bias = (torch.zeros(config["d_model"], dtype=ref.DTYPE) if mode == "zero"
                    else means[f"blocks.{layer}.{component}.out"])
            changes = {lin + ".weight": torch.zeros_like(params[lin + ".weight"]), lin + ".bias": bias}
        else:
            continue
        theirs = ref.run(config, dict(params, **changes), v["tokens"], v["lengths"])["logits"]
        errors[f"{component} {mode} layer {layer} == run() on weights"] = (rel_err(ours, theirs), TOLERANCE)
    return errors


def silu_one():
    """z* with SiLU(z*) = z* sigmoid(z*) = 1, by Newton's method in float64 (about 1.2785)."""
    z = torch.tensor(1.3, dtype=ref.DTYPE)
    for _ in range(60):
        s = torch.sigmoid(z)
        z = z - (z * s - 1) / (s + z * s * (1 - s))
    return z


def mamba2_weight_form(config, params, layer, component):
    """Mamba-2's ssm and gate switches as weights: ssm = C's conv channels (weight and bias) zeroed,
    so C = SiLU(0) = 0 and the scan term S_t C_t vanishes (y = D x); gate = in_proj's z rows zeroed
    with bias z* (SiLU(z*) = 1 to float64 rounding), so the gate is 1 everywhere. A bias added
    where the file has none (mamba_ssm's `bias` covers in_proj and out_proj together)."""
    mixer = f"layers.{layer}.mixer."
    d_inner = config["expand"] * config["d_model"]
    GS = config["ngroups"] * config["d_state"]
    if component == "ssm":
        w = params[mixer + "conv1d.weight"].clone()
        b = params.get(mixer + "conv1d.bias", torch.zeros(w.shape[0], dtype=ref.DTYPE)).clone()
        w[d_inner + GS:] = 0.0
        b[d_inner + GS:] = 0.0
        return {mixer + "conv1d.weight": w, mixer + "conv1d.bias": b}
    w = params[mixer + "in_proj.weight"].clone()
    b = params.get(mixer + "in_proj.bias", torch.zeros(w.shape[0], dtype=ref.DTYPE)).clone()
    w[:d_inner] = 0.0
    b[:d_inner] = silu_one()
    out_b = params.get(mixer + "out_proj.bias", torch.zeros(config["d_model"], dtype=ref.DTYPE))
    return {mixer + "in_proj.weight": w, mixer + "in_proj.bias": b, mixer + "out_proj.bias": out_b}


def mamba2_independent(config, params, h, lengths, start=0):
    """Layers start.. of a Mamba-2 as mamba_ssm's own Mamba2 modules (non-fused path, through
    selfcheck_mamba2), the block norms and norm_f as torch modules, pooled by hand."""
    import selfcheck_mamba2  # imports mamba_ssm: only where a Mamba-2 fixture is processed
    with torch.no_grad(), selfcheck_mamba2.float64_kept():
        for i in range(start, config["n_layers"]):
            p = ref.subset(params, f"layers.{i}.")
            u = selfcheck.torch_mamba_norm(h, p, "norm", config)
            h = h + selfcheck_mamba2.mamba_ssm_mixer(config, ref.subset(p, "mixer."))(u)
        final = selfcheck.torch_mamba_norm(h, params, "norm_f", config)
    return pool_and_head_by_hand(config, params, final, lengths)


def check_components_independent(v, result, clean):
    """Mamba: every component (gate included) against the slow-path layout with the same switch.
    Transformer: against torch layers carrying the zeroed / constant-bias weights (rope models with
    rope off, both sides recomputed)."""
    config, params = v["config"], v["params"]
    errors = {}
    if config["arch"] == "mamba":
        for (component, mode, layer), ours in components_by_key(result["components"]).items():
            theirs = mamba_independent(config, params, clean["embed"], v["lengths"], off=(layer, component))
            errors[f"{component} layer {layer} == slow path"] = (rel_err(ours, theirs), TOLERANCE)
        return errors
    if config["arch"] == "mamba2":
        # every switch in its weight form, run by mamba_ssm's own Mamba2 modules
        for (component, mode, layer), ours in components_by_key(result["components"]).items():
            if component == "conv":
                mixer = f"layers.{layer}.mixer."
                w = torch.zeros_like(params[mixer + "conv1d.weight"])
                w[:, 0, -1] = 1.0
                changes = {mixer + "conv1d.weight": w, mixer + "conv1d.bias": torch.zeros(w.shape[0], dtype=ref.DTYPE)}
            else:
                changes = mamba2_weight_form(config, params, layer, component)
            theirs = mamba2_independent(config, dict(params, **changes), clean["embed"], v["lengths"])
            errors[f"{component} layer {layer} == mamba_ssm Mamba2 on weights"] = (rel_err(ours, theirs), TOLERANCE)
        return errors
    config, tag = torch_config(config)
    ours_clean = clean_run(v, config)
    ours = components_by_key(all_components(v, config, ours_clean)) if tag else components_by_key(result["components"])
    means = output_means(v, config, ours_clean)
    for (component, mode, layer), logits in ours.items():
        lin = f"layers.{layer}." + ("self_attn.out_proj" if component == "attn" else "linear2")
        bias = torch.zeros(config["d_model"], dtype=ref.DTYPE) if mode == "zero" else means[f"blocks.{layer}.{component}.out"]
        changed = dict(params, **{lin + ".weight": torch.zeros_like(params[lin + ".weight"]), lin + ".bias": bias})
        theirs = torch_independent(config, changed, ours_clean["embed"], v["lengths"])
        errors[f"{component} {mode} layer {layer} == torch layers{tag}"] = (rel_err(logits, theirs), TOLERANCE)
    return errors


def check_means(v, result, clean):
    """The mean of attn.out / mlp.out rebuilt example by example from the zero-padded hooks."""
    if v["config"]["arch"] != "transformer":
        return {}
    hooks = ref.zero_padding(clean, v["lengths"])
    ours, errors = output_means(v, v["config"], clean), {}
    for name, mean in ours.items():
        total = sum(hooks[name][n, :length].sum(dim=0) for n, length in enumerate(v["lengths"].tolist()))
        errors[f"mean of {name}, per-example loop"] = (rel_err(mean, total / int(v["lengths"].sum())), TOLERANCE)
    return errors


def stored_cells(v, table, hook):
    """[(cell, stored value)] for one hook of the written table."""
    j = table["hooks"].index(hook)
    return [(c, table["patched"][c[0]][j][c[1]]) for c in cells(v, table["pairs"])]


def check_patch_identities(v, result, clean):
    """The self-pair changes nothing; patching `final` follows from the pooling in closed form
    (last: -1 gives the source logit exactly; mean: base + head(source row - base row) / length;
    cls: position 0 gives the source logit, others nothing); a causal model read at position 0 (cls)
    is unchanged by any patch at a later position; nulls exactly where a position is invalid."""
    config, params, table = v["config"], v["params"], result["patch"]
    lengths = v["lengths"].tolist()
    errors = {}
    pairs = table["pairs"]
    k0 = pairs.index([0, 0])
    self_values = [x for row in table["patched"][k0] for x in row if x is not None]
    errors[f"self-pair [0,0]: patched == base ({len(self_values)} cells)"] = (
        abs_err(self_values, [table["base_logits"][k0]] * len(self_values)), IDENTITY_TOLERANCE)

    nulls_ok = all((table["patched"][k][j][q] is None) ==
                   (resolve(p, lengths[b]) is None or resolve(p, lengths[s]) is None)
                   for k, (b, s) in enumerate(pairs) for j in range(len(table["hooks"]))
                   for q, p in enumerate(POSITIONS))
    errors["null exactly where a position is invalid in base or source"] = (0.0 if nulls_ok else math.inf, 0.0)

    final, mode = clean["final"], config["pooling"]
    ours, theirs, at_last = [], [], ([], [])
    for (k, q, b, bp, s, sp), value in stored_cells(v, table, "final"):
        ours.append(value)
        if mode == "mean":
            pooled = clean["pooled"][b] + (final[s, sp] - final[b, bp]) / lengths[b]
            theirs.append(float(ref.head_logit(pooled[None], params)[0]))
        elif (mode == "last" and bp == lengths[b] - 1) or (mode == "cls" and bp == 0):
            theirs.append(float(ref.head_logit(final[s, sp][None], params)[0]))
        else:
            theirs.append(table["base_logits"][k])
        if (mode == "last" and POSITIONS[q] == -1) or (mode == "cls" and POSITIONS[q] == 0):
            at_last[0].append(value)
            at_last[1].append(table["source_logits"][k])
    errors[f"final: closed form for {mode} pooling ({len(ours)} cells)"] = (rel_err(ours, theirs), TOLERANCE)
    if at_last[0]:
        where = "-1 (last pooling)" if mode == "last" else "0 (cls pooling)"
        errors[f"final at {where} == source logit ({len(at_last[0])} pairs)"] = (
            abs_err(*at_last), IDENTITY_TOLERANCE)

    causal = config["arch"] in MAMBA_ARCHS or config.get("causal", False)
    if causal and mode == "cls":
        later = [(value, table["base_logits"][k]) for hook in table["hooks"]
                 for (k, q, b, bp, s, sp), value in stored_cells(v, table, hook) if bp > 0]
        errors[f"causal, cls: patches after position 0 change nothing ({len(later)} cells)"] = (
            abs_err([a for a, _ in later], [b for _, b in later]), IDENTITY_TOLERANCE)
    return errors


def check_same_tensor_hooks(v, result, clean):
    """embed is blocks.0.resid_pre and blocks.i.resid_post is blocks.i+1.resid_pre: patching either
    name gives the same logits, bitwise (the extra names are run here, not stored)."""
    config, table = v["config"], result["patch"]
    last = config["n_layers"] - 1
    todo = cells(v, table["pairs"])
    errors = {}
    for stored, other in (("embed", "blocks.0.resid_pre"), (f"blocks.{last}.resid_pre", f"blocks.{last - 1}.resid_post")):
        if last == 0 and other.startswith("blocks.-1"):
            continue
        ours = [value for _, value in stored_cells(v, table, stored)]
        theirs = patch_cells(v, config, clean, other, todo)
        errors[f"patch {stored} == patch {other}, bitwise"] = (0.0 if ours == theirs else math.inf, 0.0)
    return errors


def check_embed_all_positions(v, result, clean):
    """Not stored. Patching `embed` at every position 0..length(base)-1 with the source's rows
    (source at least as long) == run() on the source's tokens cut to the base's length; with equal
    lengths that is the source's logit (checked when the data holds two examples of equal length)."""
    lengths = v["lengths"].tolist()
    n = len(lengths)
    items = [(b, list(range(lengths[b])), s, list(range(lengths[b])))
             for b in range(n) for s in range(n) if s != b and lengths[s] >= lengths[b]]
    errors = {}
    if not items:
        return errors
    ours = patched_run(v, v["config"], clean, "embed", items)["logits"]
    bases = torch.tensor([b for b, *_ in items])
    sources = torch.tensor([s for _, _, s, _ in items])
    theirs = ref.run(v["config"], v["params"], v["tokens"][sources], v["lengths"][bases])["logits"]
    errors[f"embed at all positions == run(source tokens, base length) ({len(items)} pairs)"] = (
        rel_err(ours, theirs), TOLERANCE)
    equal = [k for k, (b, _, s, _) in enumerate(items) if lengths[b] == lengths[s]]
    if equal:
        errors[f"embed at all positions, equal lengths == source logit ({len(equal)} pairs)"] = (
            abs_err(ours[equal], clean["logits"][sources[equal]]), IDENTITY_TOLERANCE)
    return errors


def independent_patch_logits(config, params, clean, hook, todo, lengths):
    """The patched logits of `todo` computed without forward(): the patched residual (or the
    block-0 edit) handed to the slow-path Mamba or to torch's layers, pooled by hand."""
    bases = torch.tensor([b for _, _, b, _, _, _ in todo])
    ks = torch.arange(len(todo))
    bpos = torch.tensor([bp for _, _, _, bp, _, _ in todo])
    src = clean[hook][[s for *_, s, _ in todo], [sp for *_, sp in todo]]
    blen = lengths[bases]
    last = config["n_layers"] - 1
    residual = {"embed": ("embed", 0), "blocks.0.resid_post": ("blocks.0.resid_post", 1),
                f"blocks.{last}.resid_pre": (f"blocks.{last}.resid_pre", last)}
    if hook in residual:
        h = clean[hook][bases].clone()
        h[ks, bpos] = src
        start = residual[hook][1]
        if config["arch"] == "mamba":
            return mamba_independent(config, params, h, blen, start)
        if config["arch"] == "mamba2":
            return mamba2_independent(config, params, h, blen, start)
        return torch_independent(config, params, h, blen, start)
    if config["arch"] == "mamba":
        def replace(value):
            value = value.clone()
            value[ks, bpos] = src
            return value
        edit = {hook.split(".")[-1]: replace}
        return mamba_independent(config, params, clean["embed"][bases], blen, 0, edit=edit)
    # Transformer, inside block 0: attention is the only thing that mixes positions and it comes
    # first, so the patch changes only row bp of resid_post; rebuild that row with torch's own
    # submodules (norm1, norm2, linear1/activation/linear2) and run torch's layers 1.. from there.
    layer = torch_layers(config, params)[0]
    pre, attn = clean["blocks.0.resid_pre"][bases, bpos], clean["blocks.0.attn.out"][bases, bpos]
    with torch.no_grad():
        if hook == "blocks.0.attn.out":
            attn = src
        h1 = pre + attn if config["norm_first"] else layer.norm1(pre + attn)
        if hook == "blocks.0.mlp.hidden":
            ff = layer.linear2(src)
        elif hook == "blocks.0.mlp.out":
            ff = src
        else:
            ff = layer._ff_block(layer.norm2(h1) if config["norm_first"] else h1)
        row = h1 + ff if config["norm_first"] else layer.norm2(h1 + ff)
    h = clean["blocks.0.resid_post"][bases].clone()
    h[ks, bpos] = row
    return torch_independent(config, params, h, blen, 1)


def check_patch_independent(v, result, clean):
    """Every stored hook but `final` (closed form above): the patched logits against the slow-path
    Mamba or torch's nn.TransformerEncoderLayer from the patched point on (rope models: rope off,
    both sides recomputed)."""
    config, tag = torch_config(v["config"])
    table = result["patch"]
    ours_clean = clean_run(v, config) if tag else clean
    todo = cells(v, table["pairs"])
    errors = {}
    for hook in table["hooks"]:
        if hook == "final":
            continue
        if config["arch"] == "mamba2" and ".mixer." in hook:
            continue  # mamba_ssm's module cannot be edited inside: forward() alone (bitwise run()) covers these
        if tag:
            ours = patch_cells(v, config, ours_clean, hook, todo)
        else:
            ours = [value for _, value in stored_cells(v, table, hook)]
        theirs = independent_patch_logits(config, v["params"], ours_clean, hook, todo, v["lengths"])
        engine = {"mamba": "slow path", "mamba2": "mamba_ssm Mamba2"}.get(config["arch"], "torch layers")
        errors[f"patch {hook} == {engine}{tag} ({len(todo)} cells)"] = (rel_err(ours, theirs), TOLERANCE)
    return errors


def check_written(path, result):
    with open(path) as f:
        back = json.load(f)
    same = back == json.loads(json.dumps(to_json(result)))
    worst = max(rel_err(b["logits"], r["logits"]) for b, r in zip(back["components"], result["components"]))
    return {f"{OUTPUT} read back": (0.0 if same else math.inf, 0.0),
            f"{OUTPUT} components read back (float64)": (worst, 0.0)}


SELF_CHECKS = [check_forward, check_components_via_weights, check_components_independent, check_means,
               check_patch_identities, check_same_tensor_hooks, check_embed_all_positions,
               check_patch_independent]


# ----------------------------------------------------------------------------- driver

def variant_dirs():
    return sorted(os.path.join(FIXTURES, name) for name in os.listdir(FIXTURES)
                  if os.path.isfile(os.path.join(FIXTURES, name, "config.json")))


def summary(v, result, clean):
    base = clean["logits"]
    effects = {}
    for row in result["components"]:
        key = row["component"] + ("" if v["config"]["arch"] in MAMBA_ARCHS else " " + row["mode"])
        effects[key] = max(effects.get(key, 0.0), float((row["logits"] - base).abs().max()))
    table = result["patch"]
    values = [(table["patched"][k][j][q], table["base_logits"][k]) for k in range(len(table["pairs"]))
              for j in range(len(table["hooks"])) for q in range(len(POSITIONS))]
    used = [(x, b) for x, b in values if x is not None]
    moved = max(abs(x - b) for x, b in used)
    return ("max |logit change|: " + ", ".join(f"{k} {x:.3f}" for k, x in effects.items())
            + f"; patch: {len(table['pairs'])} pairs x {len(table['hooks'])} hooks x {len(POSITIONS)} positions, "
            f"{len(used)} cells, {len(values) - len(used)} null, max |patched - base| {moved:.3f}")


def process(variant_dir):
    name = os.path.basename(variant_dir)
    started = time.time()
    v = load_variant(variant_dir)
    clean = clean_run(v)
    result = {"components": all_components(v, clean=clean), "patch": patch_table(v, clean=clean)}
    path = os.path.join(variant_dir, OUTPUT)
    write_json(path, result)
    errors = {}
    for check in SELF_CHECKS:
        errors.update(check(v, result, clean))
    errors.update(check_written(path, result))
    equal = sorted({x for x in v["lengths"].tolist() if v["lengths"].tolist().count(x) > 1})
    print(f"{name}: lengths {v['lengths'].tolist()}, {len(errors)} checks, {os.path.getsize(path)} bytes, "
          f"{time.time() - started:.1f} s")
    failed = []
    for check, (err, limit) in errors.items():
        bad = not err <= limit  # NaN fails too
        print(f"    {check:72s} {err:.2e}{'   <-- FAILED (limit %.0e)' % limit if bad else ''}")
        if bad:
            failed.append(f"{name}: {check}")
    if not equal:
        print("    skipped: embed at all positions with equal lengths (no two examples of equal length)")
    print("    " + summary(v, result, clean))
    return failed


def main():
    # Fixture names on the command line: only those (the others' files are left as they are).
    dirs = [d for d in variant_dirs() if len(sys.argv) < 2 or os.path.basename(d) in sys.argv[1:]]
    if not dirs:
        sys.exit(f"no fixture directory with a config.json under {FIXTURES}")
    started = time.time()
    failed = []
    for variant_dir in dirs:
        failed += process(variant_dir)
    if failed:
        print("SELF-CHECK FAILED:\n  " + "\n  ".join(failed), file=sys.stderr)
        sys.exit(1)
    print(f"{OUTPUT} written for {len(dirs)} variants under {FIXTURES} in {time.time() - started:.1f} s; "
          f"self-checks passed (relative {TOLERANCE:.0e}, identities {IDENTITY_TOLERANCE:.0e} absolute)")


if __name__ == "__main__":
    main()
