"""Golden logits for `seqlens ablate` (run: python3 tests/reference/make_ablation_fixtures.py).

For every tests/fixtures/<variant>/ with a config.json, reads the model and data.h5 the way the C
code does (prefix stripped, lengths inferred where /lengths is absent, families from
/families/of_token overridden by /families/of_position where that is >= 0) and writes
ablate_expected.json next to them:

    {"baseline": [logit per example],
     "family": {"mean" | "zero" | "pad": {family name: [logit per example]}},
     "masked_fraction": {family name: fraction of valid positions},
     "layer": {"skip" | "mean": [[logit per example] for each layer]}}

Meanings are design.md section 5 (`ablate`), computed in float64 by seqlens_ref.run() with its
optional interventions (token_embed, keep, block_write). Only ablate_expected.json is written;
the other fixture files are read, never rewritten. Exits non-zero if any self-check fails.
"""
import json
import os
import sys

import h5py
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seqlens_ref as ref  # noqa: E402

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
FAMILY_MODES = ("mean", "zero", "pad")
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


def family_ablation(v, f, mode):
    """Logits with family f ablated in `mode`; family ids outside the data simply match nothing."""
    emb = v["params"]["embedding.weight"]
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
                   for mode in FAMILY_MODES},
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


def write_json(path, result):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(to_json(result), f, indent=1, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- degenerate cases

def degenerate_cases(v):
    """Where `pad` leaves a convention to decide (see seqlens_ref.pool_kept / self_attention):
    examples with no kept valid position, and valid queries that see no key. [(family, example, what)]"""
    L, causal = v["tokens"].shape[1], v["config"].get("causal", False)
    valid = ref.valid_mask(v["lengths"], L)
    cases = []
    for f, name in enumerate(v["names"]):
        kept = valid & (v["family"] != f)
        for n in range(len(v["lengths"])):
            if not kept[n].any():
                cases.append((name, n, "no kept position (pooling, and no key for any query)"))
            elif v["config"]["arch"] == "transformer" and causal:
                # a causal query t sees a key iff some kept position <= t
                blind = [t for t in range(int(v["lengths"][n])) if not kept[n, :t + 1].any()]
                if blind:
                    cases.append((name, n, f"causal queries {blind} see no key"))
    return cases


# ----------------------------------------------------------------------------- self-checks

def rel_err(ours, theirs):
    scale = theirs.abs().max().clamp_min(1e-300)
    return float((ours - theirs).abs().max() / scale)


def with_params(v, changes):
    """A copy of the variant whose parameters are updated with `changes` (name -> tensor)."""
    return dict(v, params=dict(v["params"], **changes))


def check_nothing_ablated(v, result):
    """Every intervention switched on but doing nothing reproduces run() as the fixtures use it."""
    emb = v["params"]["embedding.weight"]
    valid = ref.valid_mask(v["lengths"], v["tokens"].shape[1])
    plain = logits(v)
    hooked = logits(v, token_embed=emb[v["tokens"]], keep=valid, block_write=lambda i, pre, post: post)
    return {"baseline == run()": rel_err(result["baseline"], plain),
            "all interventions as no-ops == run()": rel_err(hooked, plain)}


def check_empty_family(v, result):
    """A family with no valid position changes nothing, in every mode: an index past the last
    family (never in the data), and any named family that happens to have no valid position."""
    errors = {}
    empty = [(len(v["names"]), "<absent>")]
    empty += [(f, name) for f, name in enumerate(v["names"]) if not (v["family"] == f).any()]
    for f, name in empty:
        for mode in FAMILY_MODES:
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


def check_zero_via_embedding(v, result):
    """`zero` of family f == run() on an embedding matrix whose rows of f's tokens are zero."""
    if not applies_zero_via_weights(v):
        return {}
    with h5py.File(os.path.join(v["dir"], "data.h5"), "r") as f:
        of_token = torch.from_numpy(f["families/of_token"][...].astype("int64"))
    errors = {}
    for f, name in enumerate(v["names"]):
        emb = v["params"]["embedding.weight"].clone()
        emb[of_token == f] = 0.0
        theirs = logits(with_params(v, {"embedding.weight": emb}))
        errors[f"zero {name} == zeroed embedding rows"] = rel_err(result["family"]["zero"][name], theirs)
    return errors


def identity_block_changes(v, i, write=None):
    """Weights that make block i write `write` (a d-vector; None = nothing) at every position:
    the last linear map of each branch zeroed, its bias set to the write. Exact for pre-norm
    Transformers (attn and mlp are added to h) and Mamba (out is added to h), not post-norm."""
    d = v["config"]["d_model"]
    bias = torch.zeros(d, dtype=ref.DTYPE) if write is None else write
    params = v["params"]
    if v["config"]["arch"] == "mamba":
        out = f"layers.{i}.mixer.out_proj"
        if write is not None and out + ".bias" not in params:
            return None  # no bias to carry the mean write
        changes = {out + ".weight": torch.zeros_like(params[out + ".weight"])}
        if out + ".bias" in params:
            changes[out + ".bias"] = bias
        return changes
    attn, mlp = f"layers.{i}.self_attn.out_proj", f"layers.{i}.linear2"
    return {attn + ".weight": torch.zeros_like(params[attn + ".weight"]),
            attn + ".bias": torch.zeros(d, dtype=ref.DTYPE),
            mlp + ".weight": torch.zeros_like(params[mlp + ".weight"]),
            mlp + ".bias": bias}


def check_layers_via_weights(v, result):
    """skip (and, where a bias can carry it, mean) of layer i == run() with weights that make the
    block write nothing (or the mean write); skipped for post-norm Transformers."""
    if v["config"]["arch"] == "transformer" and not v["config"]["norm_first"]:
        return {}
    errors = {}
    writes = mean_writes(v)
    for i in range(v["config"]["n_layers"]):
        theirs = logits(with_params(v, identity_block_changes(v, i)))
        errors[f"skip layer {i} == identity weights"] = rel_err(result["layer"]["skip"][i], theirs)
        changes = identity_block_changes(v, i, writes[i])
        if changes is not None:
            theirs = logits(with_params(v, changes))
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
    if config["arch"] == "mamba":
        h = ref.rms_norm(h, v["params"]["norm_f.weight"], config["norm_eps"])
    elif config.get("final_norm", False):
        h = ref.layer_norm(h, v["params"], "norm", config["layer_norm_eps"])
    valid = ref.valid_mask(v["lengths"], v["tokens"].shape[1])
    theirs = pool_and_head_by_hand(v, h, valid)
    return {f"skip last layer {i} == head(resid_pre)": rel_err(result["layer"]["skip"][i], theirs)}


def check_pad_mamba(v, result):
    """Mamba `pad` == run() on tokens with the family's positions set to the pad id, its `final`
    pooled by hand over the kept positions (Mamba has no keys to drop)."""
    if v["config"]["arch"] != "mamba":
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


def check_written(path, result):
    """The JSON read back holds the float64 values exactly."""
    with open(path) as f:
        back = json.load(f)
    theirs = torch.tensor(back["baseline"], dtype=ref.DTYPE)
    worst = rel_err(theirs, result["baseline"])
    for mode in FAMILY_MODES:
        for name, value in result["family"][mode].items():
            worst = max(worst, rel_err(torch.tensor(back["family"][mode][name], dtype=ref.DTYPE), value))
    for mode in LAYER_MODES:
        for i, value in enumerate(result["layer"][mode]):
            worst = max(worst, rel_err(torch.tensor(back["layer"][mode][i], dtype=ref.DTYPE), value))
    return {"ablate_expected.json read back": worst}


SELF_CHECKS = [check_nothing_ablated, check_empty_family, check_zero_via_embedding,
               check_layers_via_weights, check_skip_last_layer, check_pad_mamba, check_pad_by_deletion]


# ----------------------------------------------------------------------------- driver

def variant_dirs():
    return sorted(os.path.join(FIXTURES, name) for name in os.listdir(FIXTURES)
                  if os.path.isfile(os.path.join(FIXTURES, name, "config.json")))


def effect_summary(v, result):
    """One line showing the fixture is not degenerate: the largest logit change per kind."""
    base = result["baseline"]
    parts = []
    for mode in FAMILY_MODES:
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
    write_json(path, result)
    errors = {}
    for check in SELF_CHECKS:
        errors.update(check(v, result))
    errors.update(check_written(path, result))
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
