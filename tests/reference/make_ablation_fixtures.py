"""Golden logits for `seqlens ablate` (run: python3 tests/reference/make_ablation_fixtures.py).

For every tests/fixtures/<variant>/ with a config.json, reads the model and data.h5 the way the C
code does (prefix stripped, lengths inferred where /lengths is absent, families from
/families/of_token overridden by /families/of_position where that is >= 0) and writes
ablate_expected.json next to them:

    {"baseline": [logit per example],
     "family": {"mean" | "zero" | "pad" (| "skip" on Mamba models): {family name: [logit per example]}},
     "masked_fraction": {family name: fraction of valid positions},
     "layer": {"skip" | "mean": [[logit per example] for each layer]}}

Meanings are design.md section 5 (`ablate`), computed in float64 by seqlens_ref.run() with its
optional interventions (token_embed, keep, block_write, delta_zero). Only ablate_expected.json is
written; the other fixture files are read, never rewritten. A value an existing ablate_expected.json
already holds is kept as it is (torch's float64 kernels differ in the last digits between machines:
see README.md); only what it lacks is added, after checking the old values agree with the new ones.
`make_ablation_fixtures.py NAME...` processes only the named fixtures. Exits non-zero if any
self-check fails.
"""
import json
import math
import os
import sys

import h5py
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seqlens_ref as ref  # noqa: E402
import selfcheck  # noqa: E402

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
FAMILY_MODES = ("mean", "zero", "pad")
MAMBA_ARCHS = ("mamba", "mamba2")
LAYER_MODES = ("skip", "mean")
TOLERANCE = 1e-10  # relative, as selfcheck.py; float64 against float64


# ----------------------------------------------------------------------------- loading

def decode(name):
    # /families/names is variable-length UTF-8 or fixed-length bytes (S8): both read as bytes.
    return name.decode() if isinstance(name, bytes) else str(name)


def load_families(data_path, tokens, lengths):
    """(names [F], family [N,L] long): of_token[token], overridden by of_position where >= 0;
    -1 (no family) at positions >= length so that only valid positions can ever be ablated."""
    with h5py.File(data_path, "r") as f:
        names = [decode(x) for x in f["families/names"][...]]
        of_token = torch.from_numpy(f["families/of_token"][...].astype("int64"))
        of_position = None
        if "of_position" in f["families"]:
            of_position = torch.from_numpy(f["families/of_position"][...].astype("int64"))
    family = of_token[tokens]
    if of_position is not None:
        family = torch.where(of_position >= 0, of_position, family)
    family = torch.where(ref.valid_mask(lengths, tokens.shape[1]), family, -1)
    return names, family, of_position is not None


def load_variant(variant_dir):
    config, params = ref.load_model(variant_dir)
    data_path = os.path.join(variant_dir, "data.h5")
    tokens, lengths = ref.load_tokens(data_path, config.get("pad_token_id", 0))
    names, family, has_of_position = load_families(data_path, tokens, lengths)
    return {"config": config, "params": params, "tokens": tokens, "lengths": lengths,
            "names": names, "family": family, "has_of_position": has_of_position}


# ----------------------------------------------------------------------------- ablations

def logits(v, **interventions):
    return ref.run(v["config"], v["params"], v["tokens"], v["lengths"], **interventions)["logits"]


def token_table(v):
    """The token embeddings as the model adds them: embed_scale * embedding.weight (the C code's
    `embed.tokens`), which `mean`, `zero` and `pad` replace."""
    return v["config"].get("embed_scale", 1.0) * v["params"]["embedding.weight"]


def family_modes(v):
    """The family modes of a fixture: `skip` only where there is a delta to set to 0."""
    return FAMILY_MODES + (("skip",) if v["config"]["arch"] in MAMBA_ARCHS else ())


def family_ablation(v, f, mode):
    """Logits with family f ablated in `mode`; family ids outside the data simply match nothing."""
    if mode == "skip":
        # delta = 0 at the family's valid positions in every layer; the positions dropped from
        # pooling; the tokens themselves unchanged (they still reach the conv of their neighbours)
        hit = v["family"] == f
        return logits(v, keep=~hit, delta_zero=hit)
    emb = token_table(v)
    token_embed = emb[v["tokens"]].clone()  # the token term only: run() adds the positional one
    hit = v["family"] == f  # valid positions of family f (family is -1 beyond each length)
    keep = None
    if mode == "mean":
        # Mean over the family's valid positions in the whole file: frequency-weighted by token.
        if hit.any():
            token_embed[hit] = emb[v["tokens"][hit]].mean(dim=0)
    elif mode == "zero":
        token_embed[hit] = 0.0
    elif mode == "pad":
        token_embed[hit] = emb[v["config"].get("pad_token_id", 0)]
        keep = ~hit  # dropped from keys and pooling (run() also drops positions >= length)
    else:
        raise ValueError(mode)
    return logits(v, token_embed=token_embed, keep=keep)


def masked_fraction(v, f):
    valid = ref.valid_mask(v["lengths"], v["tokens"].shape[1])
    return int((v["family"] == f).sum()) / int(valid.sum())


def mean_writes(v):
    """Per layer, the block's write (resid_post - resid_pre) averaged over all valid positions of
    the unablated run: one d-vector each."""
    hooks = ref.run(v["config"], v["params"], v["tokens"], v["lengths"])
    valid = ref.valid_mask(v["lengths"], v["tokens"].shape[1])
    return [(hooks[f"blocks.{i}.resid_post"] - hooks[f"blocks.{i}.resid_pre"])[valid].mean(dim=0)
            for i in range(v["config"]["n_layers"])]


def layer_ablation(v, layer, mode, writes):
    """Logits with block `layer`'s write removed (skip) or replaced by its mean (mean), at every
    position; the later layers run normally on the result."""
    def block_write(i, pre, post):
        if i != layer:
            return post
        return pre if mode == "skip" else pre + writes[layer]
    return logits(v, block_write=block_write)


def ablate_all(v):
    names, n_layers = v["names"], v["config"]["n_layers"]
    writes = mean_writes(v)
    return {
        "baseline": logits(v),
        "family": {mode: {name: family_ablation(v, f, mode) for f, name in enumerate(names)}
                   for mode in family_modes(v)},
        "masked_fraction": {name: masked_fraction(v, f) for f, name in enumerate(names)},
        "layer": {mode: [layer_ablation(v, i, mode, writes) for i in range(n_layers)]
                  for mode in LAYER_MODES},
    }


def to_json(value):
    """Tensors to lists of Python floats (repr round-trips float64 exactly); NaN is refused."""
    if isinstance(value, torch.Tensor):
        return [float(x) for x in value.tolist()]
    if isinstance(value, dict):
        return {k: to_json(x) for k, x in value.items()}
    if isinstance(value, list):
        return [to_json(x) for x in value]
    return value


def keep_existing(old, new, where, drift):
    """new with every value old already holds put back (old wins), recursively over dicts; the
    largest relative difference between a kept value and its recomputation goes into drift."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {k: keep_existing(old[k], x, f"{where}.{k}", drift) if k in old else x for k, x in new.items()}
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        if new and isinstance(new[0], list):
            return [keep_existing(o, x, f"{where}[{i}]", drift) for i, (o, x) in enumerate(zip(old, new))]
        a, b = torch.tensor(old, dtype=ref.DTYPE), torch.tensor(new, dtype=ref.DTYPE)
        drift[where] = rel_err(a, b) if len(new) else 0.0
        return old
    if isinstance(new, float) and isinstance(old, (int, float)):
        drift[where] = abs(old - new) / max(abs(new), 1e-300)
        return old
    raise SystemExit(f"{where}: the existing file holds a value of another shape")


def write_json(path, result):
    """Writes result, keeping every value an existing file at path holds; returns the largest
    difference between a kept value and its recomputation (float64 rounding between machines)."""
    value, drift = to_json(result), {}
    if os.path.exists(path):
        with open(path) as f:
            value = keep_existing(json.load(f), value, "", drift)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)
    return max(drift.values(), default=0.0)


# ----------------------------------------------------------------------------- degenerate cases

def degenerate_cases(v):
    """Where `pad` leaves a convention to decide (seqlens_ref.pool_kept and self_attention): a valid
    query that sees no key attends to nothing (context 0); mean pooling over no kept position is
    the zero vector; last pooling with none kept reads position 0. [(family, example, what)]"""
    config = v["config"]
    L, causal = v["tokens"].shape[1], config.get("causal", False)
    is_tf = config["arch"] == "transformer"
    valid = ref.valid_mask(v["lengths"], L)
    pooling_note = {"mean": "mean pooling over nothing = 0", "last": "last pooling falls back to position 0"}
    cases = []
    for f, name in enumerate(v["names"]):
        kept = valid & (v["family"] != f)
        for n in range(len(v["lengths"])):
            what = []
            if is_tf:
                # a query t sees a key iff some kept position is visible to it (<= t when causal)
                blind = [t for t in range(int(v["lengths"][n]))
                         if not (kept[n, :t + 1] if causal else kept[n]).any()]
                if blind:
                    what.append(f"queries {blind} see no key")
            if not kept[n].any() and config["pooling"] in pooling_note:
                what.append(pooling_note[config["pooling"]])
            if what:
                cases.append((name, n, "; ".join(what)))
    return cases


# ----------------------------------------------------------------------------- self-checks

def rel_err(ours, theirs):
    scale = theirs.abs().max().clamp_min(1e-300)
    return float((ours - theirs).abs().max() / scale)


def with_params(v, changes):
    """A copy of the variant whose parameters are updated with `changes` (name -> tensor)."""
    return dict(v, params=dict(v["params"], **changes))


def check_nothing_ablated(v, result):
    """The baseline is what make_fixtures.py stored (same files read the same way: expected.h5
    holds float32(logits) and the lengths), and every intervention switched on but doing nothing
    reproduces run()."""
    with h5py.File(os.path.join(v["dir"], "expected.h5"), "r") as f:
        stored = torch.from_numpy(f["logits"][...]).to(ref.DTYPE)
        stored_lengths = f["lengths"][...].tolist()
    if stored_lengths != v["lengths"].tolist():
        raise SystemExit(f"{v['dir']}: lengths {v['lengths'].tolist()} != expected.h5 {stored_lengths}")
    emb = token_table(v)
    valid = ref.valid_mask(v["lengths"], v["tokens"].shape[1])
    hooked = logits(v, token_embed=emb[v["tokens"]], keep=valid, block_write=lambda i, pre, post: post)
    return {"float32(baseline) == expected.h5 /logits": rel_err(result["baseline"].float().to(ref.DTYPE), stored),
            "all interventions as no-ops == run()": rel_err(hooked, result["baseline"])}


def check_empty_family(v, result):
    """A family with no valid position changes nothing, in every mode: an index past the last
    family (never in the data), and any named family that happens to have no valid position."""
    errors = {}
    empty = [(len(v["names"]), "<absent>")]
    empty += [(f, name) for f, name in enumerate(v["names"]) if not (v["family"] == f).any()]
    for f, name in empty:
        for mode in family_modes(v):
            errors[f"empty family {name} {mode} == baseline"] = rel_err(
                family_ablation(v, f, mode), result["baseline"])
    return errors


def applies_zero_via_weights(v):
    # Zeroing embedding rows equals `zero` only when the token embedding is all of the input
    # (no additive positional term; rope acts inside attention) and the family is a function of
    # the token alone (no of_position).
    config = v["config"]
    additive = config["arch"] == "transformer" and config["positional"] in ("learned", "sinusoidal")
    return not additive and not v["has_of_position"]


def check_via_embedding_rows(v, result):
    """`zero` of family f == run() on an embedding matrix whose rows of f's tokens are zero, and
    `mean` == the same rows set to the mean built from token counts (sum_v count_v emb_v / sum_v
    count_v, the C code's route), not from the positions."""
    if not applies_zero_via_weights(v):
        return {}
    with h5py.File(os.path.join(v["dir"], "data.h5"), "r") as f:
        of_token = torch.from_numpy(f["families/of_token"][...].astype("int64"))
    emb = v["params"]["embedding.weight"]
    errors = {}
    for f, name in enumerate(v["names"]):
        rows = of_token == f
        counts = torch.bincount(v["tokens"][v["family"] == f], minlength=emb.shape[0]).to(ref.DTYPE)
        for mode, value in (("zero", 0.0), ("mean", counts @ emb / counts.sum().clamp_min(1))):
            changed = emb.clone()
            changed[rows] = value
            theirs = logits(with_params(v, {"embedding.weight": changed}))
            errors[f"{mode} {name} == embedding rows set"] = rel_err(result["family"][mode][name], theirs)
    return errors


def identity_block_changes(v, i, write=None):
    """Weights that make block i write `write` (a d-vector; None = nothing) at every position:
    the last linear map of each branch zeroed, its bias set to the write. Exact for pre-norm
    Transformers (attn and mlp are added to h) and Mamba (out is added to h), not post-norm."""
    d = v["config"]["d_model"]
    bias = torch.zeros(d, dtype=ref.DTYPE) if write is None else write
    params = v["params"]
    if v["config"]["arch"] in MAMBA_ARCHS:
        # out_proj.bias is optional in the file; the reference applies one whenever it is present,
        # so adding one (zero or the mean write) is how the constant write is carried.
        out = f"layers.{i}.mixer.out_proj"
        return {out + ".weight": torch.zeros_like(params[out + ".weight"]), out + ".bias": bias}
    attn, mlp = f"layers.{i}.self_attn.out_proj", f"layers.{i}.linear2"
    return {attn + ".weight": torch.zeros_like(params[attn + ".weight"]),
            attn + ".bias": torch.zeros(d, dtype=ref.DTYPE),
            mlp + ".weight": torch.zeros_like(params[mlp + ".weight"]),
            mlp + ".bias": bias}


def check_layers_via_weights(v, result):
    """skip / mean of layer i == run() with weights that make the block write nothing / the mean
    write; skipped for post-norm Transformers (LayerNorm after the sum: zero weights are no identity)."""
    if v["config"]["arch"] == "transformer" and not v["config"]["norm_first"]:
        return {}
    errors = {}
    writes = mean_writes(v)
    for i in range(v["config"]["n_layers"]):
        theirs = logits(with_params(v, identity_block_changes(v, i)))
        errors[f"skip layer {i} == identity weights"] = rel_err(result["layer"]["skip"][i], theirs)
        theirs = logits(with_params(v, identity_block_changes(v, i, writes[i])))
        errors[f"mean layer {i} == constant-write weights"] = rel_err(result["layer"]["mean"][i], theirs)
    return errors


def pool_and_head_by_hand(v, final, kept):
    """Per-example loop over the kept positions, as design.md says pooling and the head work."""
    mode, out = v["config"]["pooling"], []
    for n in range(final.shape[0]):
        rows = kept[n].nonzero().flatten().tolist()
        if mode == "cls":
            pooled = final[n, 0]
        elif not rows:
            pooled = torch.zeros(final.shape[-1], dtype=ref.DTYPE) if mode == "mean" else final[n, 0]
        else:
            pooled = final[n, rows].mean(dim=0) if mode == "mean" else final[n, rows[-1]]
        out.append(pooled)
    return ref.head_logit(torch.stack(out), v["params"])


def check_skip_last_layer(v, result):
    """skip of the last layer == final norm, pooling and head applied to the baseline's last
    resid_pre (nothing runs after it): holds for every architecture, post-norm included."""
    config, i = v["config"], v["config"]["n_layers"] - 1
    h = ref.run(config, v["params"], v["tokens"], v["lengths"])[f"blocks.{i}.resid_pre"]
    if config["arch"] in MAMBA_ARCHS:
        h = ref.mamba_norm(h, v["params"], "norm_f", config)
    elif config.get("final_norm", False):
        h = ref.layer_norm(h, v["params"], "norm", config["layer_norm_eps"])
    valid = ref.valid_mask(v["lengths"], v["tokens"].shape[1])
    theirs = pool_and_head_by_hand(v, h, valid)
    return {f"skip last layer {i} == head(resid_pre)": rel_err(result["layer"]["skip"][i], theirs)}


def check_pad_mamba(v, result):
    """Mamba `pad` == run() on tokens with the family's positions set to the pad id, its `final`
    pooled by hand over the kept positions (Mamba has no keys to drop)."""
    if v["config"]["arch"] not in MAMBA_ARCHS:
        return {}
    valid = ref.valid_mask(v["lengths"], v["tokens"].shape[1])
    errors = {}
    for f, name in enumerate(v["names"]):
        hit = v["family"] == f
        tokens = torch.where(hit, v["config"].get("pad_token_id", 0), v["tokens"])
        final = ref.run(v["config"], v["params"], tokens, v["lengths"])["final"]
        theirs = pool_and_head_by_hand(v, final, valid & ~hit)
        errors[f"pad {name} == pad tokens, pooled by hand"] = rel_err(result["family"]["pad"][name], theirs)
    return errors


def check_pad_by_deletion(v, result):
    """Without any positional term and without causal masking a Transformer is permutation-
    equivariant, so dropping positions from keys and mean pooling == deleting them from the
    sequence. Compared on the examples that keep at least one position."""
    config = v["config"]
    if (config["arch"] != "transformer" or config["positional"] != "none" or config.get("causal", False)
            or config["pooling"] != "mean"):
        return {}
    valid = ref.valid_mask(v["lengths"], v["tokens"].shape[1])
    errors = {}
    for f, name in enumerate(v["names"]):
        kept = valid & (v["family"] != f)
        tokens = torch.zeros_like(v["tokens"])
        for n in range(tokens.shape[0]):
            row = v["tokens"][n, kept[n]]
            tokens[n, :len(row)] = row
        lengths = kept.sum(dim=1)
        use = lengths > 0
        theirs = ref.run(config, v["params"], tokens, lengths)["logits"]
        errors[f"pad {name} == positions deleted ({int(use.sum())} examples)"] = rel_err(
            result["family"]["pad"][name][use], theirs[use])
    return errors


def torch_final(v, h, first_layer, keys):
    """Layers first_layer.. as real nn.TransformerEncoderLayer modules (selfcheck.py) from h, keys
    restricted to `keys` [N,L] by src_key_padding_mask, then the final norm: independent of
    seqlens_ref's attention. Queries that see no key come out NaN (torch's convention)."""
    config, params = v["config"], v["params"]
    N, L = keys.shape
    key_padding = torch.zeros(N, L, dtype=ref.DTYPE).masked_fill(~keys, -math.inf)
    causal_mask = None
    if config.get("causal", False):
        causal_mask = torch.zeros(L, L, dtype=ref.DTYPE).masked_fill(
            torch.ones(L, L, dtype=torch.bool).triu(1), -math.inf)
    # grad enabled keeps torch on its reference (non-fused) path, as in selfcheck.py
    with torch.enable_grad():
        for layer in selfcheck.torch_encoder_layers(config, params)[first_layer:]:
            h = layer(h, src_mask=causal_mask, src_key_padding_mask=key_padding).detach()
    if config.get("final_norm", False):
        h = ref.layer_norm(h, params, "norm", config["layer_norm_eps"])
    return h


def check_vs_torch_layers(v, result):
    """Transformers, post-norm included (rope ones with rope off): layer skip / mean of layer
    i == torch's layers i+1.. run on the baseline resid_pre (+ the mean write); family pad == torch
    from the ablated embedding with the family's keys padded out, pooled by hand over kept
    positions, on the examples where every valid query still sees a key."""
    config = v["config"]
    if config["arch"] != "transformer":
        return {}
    tag = ""
    if config["positional"] == "rope":
        # torch has no rope: check the same masking and block writes with rope switched off
        # (values recomputed, not the ones written), as selfcheck.py does for the forward pass.
        config, tag = dict(config, positional="none"), " (rope off)"
        v = dict(v, config=config)
        result = {"layer": {mode: [layer_ablation(v, i, mode, mean_writes(v)) for i in range(config["n_layers"])]
                            for mode in LAYER_MODES},
                  "family": {"pad": {name: family_ablation(v, f, "pad") for f, name in enumerate(v["names"])}}}
    L = v["tokens"].shape[1]
    valid = ref.valid_mask(v["lengths"], L)
    hooks = ref.run(config, v["params"], v["tokens"], v["lengths"])
    writes = mean_writes(v)
    errors = {}
    for i in range(config["n_layers"]):
        pre = hooks[f"blocks.{i}.resid_pre"]
        for mode, h in (("skip", pre), ("mean", pre + writes[i])):
            theirs = pool_and_head_by_hand(v, torch_final(v, h, i + 1, valid), valid)
            errors[f"{mode} layer {i} == torch layers {i + 1}..{tag}"] = rel_err(result["layer"][mode][i], theirs)
    emb = token_table(v)
    for f, name in enumerate(v["names"]):
        hit = v["family"] == f
        kept = valid & ~hit
        token_embed = torch.where(hit[..., None], emb[config.get("pad_token_id", 0)], emb[v["tokens"]])
        h0 = ref.transformer_embed(config, v["params"], v["tokens"], token_embed)
        # every valid query sees a key: causal needs position 0 kept, otherwise any kept position
        use = kept[:, 0] | ~valid[:, 0] if config.get("causal", False) else kept.any(dim=1)
        theirs = pool_and_head_by_hand(v, torch_final(v, h0, 0, kept), kept)
        errors[f"pad {name} == torch, keys padded ({int(use.sum())} ex.){tag}"] = rel_err(
            result["family"]["pad"][name][use], theirs[use])
    return errors


def check_mean_writes(v, result):
    """The mean write of each layer, rebuilt example by example from the valid part of the
    zero-padded hooks (what `capture` stores), against mean_writes()."""
    hooks = ref.zero_padding(ref.run(v["config"], v["params"], v["tokens"], v["lengths"]), v["lengths"])
    ours, errors = mean_writes(v), {}
    for i in range(v["config"]["n_layers"]):
        total, count = torch.zeros(v["config"]["d_model"], dtype=ref.DTYPE), 0
        for n, length in enumerate(v["lengths"].tolist()):
            write = hooks[f"blocks.{i}.resid_post"][n, :length] - hooks[f"blocks.{i}.resid_pre"][n, :length]
            total, count = total + write.sum(dim=0), count + length
        errors[f"mean write of layer {i}, per-example loop"] = rel_err(ours[i], total / count)
    return errors


def check_empty_pooling(v, result):
    """Mean pooling over no kept position is the zero vector: the logit is the head's bias term."""
    if v["config"]["pooling"] != "mean":
        return {}
    valid = ref.valid_mask(v["lengths"], v["tokens"].shape[1])
    head_of_zero = ref.head_logit(torch.zeros(1, v["config"]["d_model"], dtype=ref.DTYPE), v["params"])
    errors = {}
    for f, name in enumerate(v["names"]):
        empty = ~(valid & (v["family"] != f)).any(dim=1)
        if empty.any():
            errors[f"pad {name}: no kept position ({int(empty.sum())} examples) == head(0)"] = rel_err(
                result["family"]["pad"][name][empty], head_of_zero.expand(int(empty.sum())))
    return errors


def check_written(v, path, result):
    """The JSON read back holds the float64 values exactly."""
    with open(path) as f:
        back = json.load(f)
    theirs = torch.tensor(back["baseline"], dtype=ref.DTYPE)
    worst = rel_err(theirs, result["baseline"])
    for mode in family_modes(v):
        for name, value in result["family"][mode].items():
            worst = max(worst, rel_err(torch.tensor(back["family"][mode][name], dtype=ref.DTYPE), value))
    for mode in LAYER_MODES:
        for i, value in enumerate(result["layer"][mode]):
            worst = max(worst, rel_err(torch.tensor(back["layer"][mode][i], dtype=ref.DTYPE), value))
    return {"ablate_expected.json read back": worst}


def skipping_scan(x, delta, A, B, C, D, skipped):
    """Mamba-1's scan, one example and one position at a time, written from design.md's words for
    `skip` rather than from delta = 0: at a skipped position the state is carried over unchanged
    (no decay, no write) and the output reads it; elsewhere the ordinary recurrence."""
    N, L, Di = x.shape
    y = torch.zeros_like(x)
    for n in range(N):
        state = torch.zeros(Di, A.shape[1], dtype=ref.DTYPE)
        for t in range(L):
            if not skipped[n, t]:
                state = torch.exp(delta[n, t, :, None] * A) * state + (delta[n, t] * x[n, t])[:, None] * B[n, t]
            y[n, t] = state @ C[n, t] + D * x[n, t]
    return y


def skipping_mamba_final(v, skipped):
    """The Mamba-1 forward with skipping_scan in every layer: `final` [N,L,d]."""
    import torch.nn.functional as F
    config, params = v["config"], v["params"]
    d_inner, R, S = config["expand"] * config["d_model"], config["dt_rank"], config["d_state"]
    h = params["embedding.weight"][v["tokens"]]
    for i in range(config["n_layers"]):
        p = ref.subset(params, f"layers.{i}.")
        m = ref.subset(p, "mixer.")
        xz = ref.linear(ref.mamba_norm(h, p, "norm", config), m, "in_proj")
        x = F.silu(ref.causal_depthwise_conv(xz[..., :d_inner], m["conv1d.weight"], m.get("conv1d.bias")))
        dt, B, C = torch.split(ref.linear(x, m, "x_proj"), [R, S, S], dim=-1)
        delta = F.softplus(ref.linear(dt, m, "dt_proj"))
        y = skipping_scan(x, delta, -torch.exp(m["A_log"]), B, C, m["D"], skipped)
        h = h + ref.linear(y * F.silu(xz[..., d_inner:]), m, "out_proj")
    return ref.mamba_norm(h, params, "norm_f", config)


def skipping_ssd(x, delta, A, B, C, D, skipped):
    """Mamba-2's recurrence per example, position and head, carrying each head's state [P, S]
    over unchanged at a skipped position: x [N,L,H,P], delta [N,L,H], A [H], B, C [N,L,G,S],
    D [H] or [H,P]."""
    N, L, H, P = x.shape
    G = B.shape[2]
    y = torch.zeros_like(x)
    for n in range(N):
        state = torch.zeros(H, P, B.shape[3], dtype=ref.DTYPE)
        for t in range(L):
            for h in range(H):
                g = h // (H // G)
                if not skipped[n, t]:
                    state[h] = torch.exp(delta[n, t, h] * A[h]) * state[h] + \
                        torch.outer(delta[n, t, h] * x[n, t, h], B[n, t, g])
                d = D[h] if D.dim() == 1 else D[h]
                y[n, t, h] = state[h] @ C[n, t, g] + d * x[n, t, h]
    return y


def skipping_mamba2_final(v, skipped):
    """The Mamba-2 forward with skipping_ssd in every layer: `final` [N,L,d]."""
    import torch.nn.functional as F
    config, params = v["config"], v["params"]
    d_inner, P = config["expand"] * config["d_model"], config["headdim"]
    H, G, S = d_inner // P, config["ngroups"], config["d_state"]
    N, L = v["tokens"].shape
    lo, hi = ref.dt_limit(config)
    h = params["embedding.weight"][v["tokens"]]
    for i in range(config["n_layers"]):
        p = ref.subset(params, f"layers.{i}.")
        m = ref.subset(p, "mixer.")
        z, xBC, dt = torch.split(ref.linear(ref.mamba_norm(h, p, "norm", config), m, "in_proj"),
                                 [d_inner, d_inner + 2 * G * S, H], dim=-1)
        xBC = F.silu(ref.causal_depthwise_conv(xBC, m["conv1d.weight"], m.get("conv1d.bias")))
        x, B, C = torch.split(xBC, [d_inner, G * S, G * S], dim=-1)
        delta = F.softplus(dt + m["dt_bias"]).clamp(min=lo, max=hi)
        D = m["D"].reshape(H, P) if config.get("D_has_hdim", False) else m["D"]
        y = skipping_ssd(x.reshape(N, L, H, P), delta, -torch.exp(m["A_log"]), B.reshape(N, L, G, S),
                         C.reshape(N, L, G, S), D, skipped).reshape(N, L, d_inner)
        if config.get("rmsnorm", True):
            y = ref.gated_norm(y, z, m["norm.weight"], G, config.get("gated_norm_eps", 1e-5),
                               config.get("norm_before_gate", False))
        else:
            y = y * F.silu(z)
        h = h + ref.linear(y, m, "out_proj")
    return ref.mamba_norm(h, params, "norm_f", config)


def check_skip_by_state_loop(v, result):
    """Mamba and Mamba-2 `skip` == the forward whose scan carries the state over at the family's
    positions (skipping_scan, skipping_ssd), pooled by hand over the other valid positions."""
    if v["config"]["arch"] not in MAMBA_ARCHS:
        return {}
    final = skipping_mamba2_final if v["config"]["arch"] == "mamba2" else skipping_mamba_final
    valid = ref.valid_mask(v["lengths"], v["tokens"].shape[1])
    errors = {}
    for f, name in enumerate(v["names"]):
        hit = v["family"] == f
        theirs = pool_and_head_by_hand(v, final(v, hit), valid & ~hit)
        errors[f"skip {name} == state carried over, pooled by hand"] = rel_err(result["family"]["skip"][name], theirs)
    return errors


def check_skip_changes(v, result):
    """`skip` of a family that is present moves some logit (the fixture can tell skip from nothing)."""
    if "skip" not in result["family"]:
        return {}
    moved = max(float((x - result["baseline"]).abs().max()) for x in result["family"]["skip"].values())
    return {"skip moves some logit (0 when it does)": 0.0 if moved > 1e-6 else 1.0}


SELF_CHECKS = [check_nothing_ablated, check_empty_family, check_via_embedding_rows,
               check_layers_via_weights, check_skip_last_layer, check_pad_mamba, check_pad_by_deletion,
               check_vs_torch_layers, check_empty_pooling, check_mean_writes, check_skip_by_state_loop,
               check_skip_changes]


# ----------------------------------------------------------------------------- driver

def variant_dirs():
    return sorted(os.path.join(FIXTURES, name) for name in os.listdir(FIXTURES)
                  if os.path.isfile(os.path.join(FIXTURES, name, "config.json")))


def effect_summary(v, result):
    """One line showing the fixture is not degenerate: the largest logit change per kind."""
    base = result["baseline"]
    parts = []
    for mode in family_modes(v):
        worst = max(float((x - base).abs().max()) for x in result["family"][mode].values())
        parts.append(f"{mode} {worst:.3f}")
    for mode in LAYER_MODES:
        worst = max(float((x - base).abs().max()) for x in result["layer"][mode])
        parts.append(f"layer {mode} {worst:.3f}")
    fractions = " ".join(f"{k}={x:.3f}" for k, x in result["masked_fraction"].items())
    return "max |logit change|: " + ", ".join(parts) + f"; masked_fraction {fractions}"


def process(variant_dir):
    """Write one variant's file; return the names of the failed checks."""
    name = os.path.basename(variant_dir)
    v = dict(load_variant(variant_dir), dir=variant_dir)
    result = ablate_all(v)
    path = os.path.join(variant_dir, "ablate_expected.json")
    errors = {"values kept from the existing file == recomputed": write_json(path, result)}
    for check in SELF_CHECKS:
        errors.update(check(v, result))
    errors.update(check_written(v, path, result))
    print(f"{name}: {len(errors)} checks, {os.path.getsize(path)} bytes")
    failed = []
    for check, err in errors.items():
        bad = not err < TOLERANCE  # NaN fails too
        print(f"    {check:58s} {err:.2e}{'   <-- FAILED' if bad else ''}")
        if bad:
            failed.append(f"{name}: {check}")
    print("    " + effect_summary(v, result))
    for family, n, what in degenerate_cases(v):
        print(f"    convention used: pad {family}, example {n}: {what}")
    return failed


def main():
    dirs = variant_dirs()
    if sys.argv[1:]:
        unknown = [n for n in sys.argv[1:] if os.path.join(FIXTURES, n) not in dirs]
        if unknown:
            sys.exit(f"no fixture directory with a config.json: {', '.join(unknown)}")
        dirs = [os.path.join(FIXTURES, n) for n in sys.argv[1:]]
    if not dirs:
        sys.exit(f"no fixture directory with a config.json under {FIXTURES}")
    failed = []
    for variant_dir in dirs:
        failed += process(variant_dir)
    if failed:
        print("SELF-CHECK FAILED:\n  " + "\n  ".join(failed), file=sys.stderr)
        sys.exit(1)
    print(f"ablate_expected.json written for {len(dirs)} variants under {FIXTURES}; "
          f"self-checks passed (limit {TOLERANCE:.0e})")


if __name__ == "__main__":
    main()
