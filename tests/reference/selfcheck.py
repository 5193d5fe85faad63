"""Independent re-computations that the reference in seqlens_ref.py must agree with.

Each check returns {what: max relative error} where relative error = max|ours - theirs| / max|theirs|
over the compared entries; make_fixtures.py fails when any exceeds TOLERANCE.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import seqlens_ref as ref

TOLERANCE = 1e-10
DTYPE = torch.float64


def rel_err(ours, theirs):
    scale = theirs.abs().max().clamp_min(1e-300)
    return float((ours - theirs).abs().max() / scale)


# ----------------------------------------------------------------------------- Transformer

def torch_encoder_layers(config, params):
    """Real nn.TransformerEncoderLayer modules carrying the same (float64) weights."""
    layers = []
    for i in range(config["n_layers"]):
        layer = nn.TransformerEncoderLayer(
            config["d_model"], config["n_heads"], config["d_ff"], dropout=0.0,
            activation=config["activation"], layer_norm_eps=config["layer_norm_eps"],
            batch_first=True, norm_first=config["norm_first"], dtype=DTYPE)
        layer.load_state_dict(ref.subset(params, f"layers.{i}."), strict=True)
        layers.append(layer.eval())
    return layers


def torch_masks(lengths, L, causal):
    # Both masks additive float (-inf = blocked): torch warns about mixing bool and float masks.
    key_padding = torch.zeros(len(lengths), L, dtype=DTYPE)
    key_padding[~ref.valid_mask(lengths, L)] = -math.inf
    causal_mask = None
    if causal:
        causal_mask = torch.zeros(L, L, dtype=DTYPE).masked_fill(
            torch.ones(L, L, dtype=torch.bool).triu(1), -math.inf)
    return key_padding, causal_mask


def check_transformer_vs_torch(config, params, tokens, lengths):
    """Chain torch layers from our `embed` and compare every resid_post and `final` (valid positions).

    Parameters keep requires_grad and grad stays enabled, which keeps torch on its reference
    (non-fused) path; the fused fast path would be a second implementation, not the definition.
    """
    hooks = ref.run(config, params, tokens, lengths)
    valid = ref.valid_mask(lengths, tokens.shape[1])
    key_padding, causal_mask = torch_masks(lengths, tokens.shape[1], config.get("causal", False))
    errors = {}
    h = hooks["embed"]
    with torch.enable_grad():
        for i, layer in enumerate(torch_encoder_layers(config, params)):
            h = layer(h, src_mask=causal_mask, src_key_padding_mask=key_padding).detach()
            errors[f"blocks.{i}.resid_post"] = rel_err(hooks[f"blocks.{i}.resid_post"][valid], h[valid])
    if config.get("final_norm", False):
        norm = nn.LayerNorm(config["d_model"], eps=config["layer_norm_eps"], dtype=DTYPE)
        norm.load_state_dict(ref.subset(params, "norm."))
        h = norm(h).detach()
    errors["final"] = rel_err(hooks["final"][valid], h[valid])
    return errors


def check_sinusoidal(L, d):
    """The PyTorch tutorial's construction (exp/log form of the same table)."""
    position = torch.arange(L, dtype=DTYPE).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d, 2, dtype=DTYPE) * (-math.log(10000.0) / d))
    pe = torch.zeros(L, d, dtype=DTYPE)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return {"sinusoidal_table": rel_err(ref.sinusoidal_table(L, d), pe)}


def check_rope(L, dh, base, seed=0):
    """Rotate-half as complex multiplication: (x_i + i x_{i+dh/2}) * e^{i pos theta_i}."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, L, dh, generator=gen, dtype=DTYPE)
    half = dh // 2
    theta = torch.tensor([base ** (-2.0 * i / dh) for i in range(half)], dtype=DTYPE)
    phase = torch.polar(torch.ones(L, half, dtype=DTYPE), torch.arange(L, dtype=DTYPE)[:, None] * theta)
    rotated = torch.complex(x[..., :half], x[..., half:]) * phase
    expected = torch.cat([rotated.real, rotated.imag], dim=-1)
    return {"rope": rel_err(ref.rope(x, base), expected)}


def check_rope_pattern(config, params, tokens, lengths):
    """Each layer's attention pattern rebuilt from its resid_pre with rope in relative form:
    score(m, n) = Re(sum_i q_i(m) conj(k_i(n)) e^{i (m - n) theta_i}) / sqrt(dh), q_i = q_i + i q_{i+dh/2}."""
    hooks = ref.run(config, params, tokens, lengths)
    N, L = tokens.shape
    d, H = config["d_model"], config["n_heads"]
    dh, half = d // H, d // H // 2
    theta = torch.tensor([config["rope_base"] ** (-2.0 * i / dh) for i in range(half)], dtype=DTYPE)
    offset = torch.arange(L, dtype=DTYPE)[:, None] - torch.arange(L, dtype=DTYPE)[None, :]
    relative = torch.polar(torch.ones(L, L, half, dtype=DTYPE), offset[..., None] * theta)
    errors = {}
    for i in range(config["n_layers"]):
        p = ref.subset(params, f"layers.{i}.")
        x = hooks[f"blocks.{i}.resid_pre"]
        if config["norm_first"]:
            x = F.layer_norm(x, (d,), p["norm1.weight"], p["norm1.bias"], config["layer_norm_eps"])
        q, k, _ = F.linear(x, p["self_attn.in_proj_weight"], p["self_attn.in_proj_bias"]).split(d, -1)
        q, k = (t.reshape(N, L, H, dh).transpose(1, 2) for t in (q, k))
        qc = torch.complex(q[..., :half], q[..., half:])
        kc = torch.complex(k[..., :half], k[..., half:])
        scores = torch.einsum("nhmi,nhki,mki->nhmk", qc, kc.conj(), relative).real / math.sqrt(dh)
        blocked = ~ref.valid_mask(lengths, L)[:, None, None, :]
        if config.get("causal", False):
            blocked = blocked | torch.ones(L, L, dtype=torch.bool).triu(1)
        pattern = torch.softmax(scores.masked_fill(blocked, -math.inf), dim=-1)
        valid = ref.valid_mask(lengths, L)
        errors[f"blocks.{i}.attn.pattern(rope)"] = rel_err(
            hooks[f"blocks.{i}.attn.pattern"].transpose(1, 2)[valid], pattern.transpose(1, 2)[valid])
    return errors


def check_embed_like_tutorial(config, params, tokens, lengths):
    """The PyTorch tutorial's TransformerModel front: nn.Embedding, `* math.sqrt(d_model)`, then
    PositionalEncoding (its exp/log table, dropout 0) or learned positions; only for a config whose
    embed_scale is sqrt(d_model)."""
    d, L = config["d_model"], tokens.shape[1]
    embedding = nn.Embedding(config["vocab_size"], d, dtype=DTYPE)
    embedding.load_state_dict({"weight": params["embedding.weight"]})
    with torch.no_grad():
        src = embedding(tokens) * math.sqrt(d)
        if config["positional"] == "sinusoidal":
            position = torch.arange(L, dtype=DTYPE).unsqueeze(1)
            div_term = torch.exp(torch.arange(0, d, 2, dtype=DTYPE) * (-math.log(10000.0) / d))
            pe = torch.zeros(L, d, dtype=DTYPE)
            pe[:, 0::2] = torch.sin(position * div_term)
            pe[:, 1::2] = torch.cos(position * div_term)
            src = src + pe
        elif config["positional"] == "learned":
            src = src + params["pos_embedding.weight"][:L]
    hooks = ref.run(config, params, tokens, lengths)
    return {"embed(tutorial sqrt(d_model))": rel_err(hooks["embed"], src)}


# ----------------------------------------------------------------------------- Mamba

def scan_like_selective_scan_ref(u, delta, A, B, C, D, z):
    """The recurrence as mamba_ssm's selective_scan_ref lays it out: (batch, dim, L) tensors,
    deltaA = exp(einsum), deltaB_u = einsum, one loop step per position; gate applied at the end."""
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    x = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
    y = torch.stack(ys, dim=2) + u * D[:, None]
    return y * F.silu(z)


def torch_mamba_norm(h, p, name, config):
    """mamba_ssm's block norm: with rms_norm=False a real nn.LayerNorm (its weight and bias), else
    RMSNorm written out as mamba_ssm's rms_norm_ref does."""
    if config.get("norm", "rms") == "layer":
        norm = nn.LayerNorm(config["d_model"], eps=config["norm_eps"], dtype=DTYPE)
        norm.load_state_dict({"weight": p[name + ".weight"], "bias": p[name + ".bias"]})
        with torch.no_grad():
            return norm(h)
    return h / torch.sqrt(h.pow(2).mean(-1, keepdim=True) + config["norm_eps"]) * p[name + ".weight"]


def mamba_slow_path(h, p, config):
    """Mamba.forward's slow path from the residual h [N,L,d]: nn-style conv with padding d_conv-1
    cut to L, dt_proj weight and bias added before softplus, (b d l) layout throughout."""
    L = h.shape[1]
    d_inner = config["expand"] * config["d_model"]
    R, S = config["dt_rank"], config["d_state"]
    u = torch_mamba_norm(h, p, "norm", config)
    xz = F.linear(u, p["mixer.in_proj.weight"], p.get("mixer.in_proj.bias")).transpose(1, 2)
    x, z = xz.chunk(2, dim=1)
    conv = F.conv1d(x, p["mixer.conv1d.weight"], p.get("mixer.conv1d.bias"),
                    padding=config["d_conv"] - 1, groups=d_inner)[..., :L]
    x = F.silu(conv)
    x_dbl = F.linear(x.transpose(1, 2), p["mixer.x_proj.weight"])
    dt, B, C = torch.split(x_dbl, [R, S, S], dim=-1)
    dt = torch.einsum("dr,blr->bdl", p["mixer.dt_proj.weight"], dt)
    delta = F.softplus(dt + p["mixer.dt_proj.bias"][:, None])
    A = -torch.exp(p["mixer.A_log"])
    Bt, Ct = B.transpose(1, 2), C.transpose(1, 2)
    y = scan_like_selective_scan_ref(x, delta, A, Bt, Ct, p["mixer.D"], z)
    out = F.linear(y.transpose(1, 2), p["mixer.out_proj.weight"], p.get("mixer.out_proj.bias"))
    return {"in_x": x.transpose(1, 2), "delta": delta.transpose(1, 2), "B": B, "C": C,
            "gate": F.silu(z).transpose(1, 2), "out": out}


def check_mamba_vs_slow_path(config, params, tokens, lengths):
    """Feed each layer's resid_pre to the slow path; compare every mixer hook at all positions
    (Mamba is causal, so padded positions are well defined too)."""
    hooks = ref.run(config, params, tokens, lengths)
    errors = {}
    for i in range(config["n_layers"]):
        theirs = mamba_slow_path(hooks[f"blocks.{i}.resid_pre"], ref.subset(params, f"layers.{i}."), config)
        for name, value in theirs.items():
            errors[f"blocks.{i}.mixer.{name}"] = rel_err(hooks[f"blocks.{i}.mixer.{name}"], value)
        errors[f"blocks.{i}.resid_post"] = rel_err(
            hooks[f"blocks.{i}.resid_post"], hooks[f"blocks.{i}.resid_pre"] + theirs["out"])
    if config.get("norm", "rms") == "layer":
        last = hooks[f"blocks.{config['n_layers'] - 1}.resid_post"]
        errors["final(nn.LayerNorm norm_f)"] = rel_err(hooks["final"], torch_mamba_norm(last, params, "norm_f", config))
    return errors


def check_mamba2_norms(config, params, tokens, lengths):
    """Mamba-2's block norms and norm_f as mamba_ssm builds them (nn.LayerNorm with rms_norm=False,
    else rms_norm_ref's formula), from each resid_pre: the input the mixer checks start from."""
    hooks = ref.run(config, params, tokens, lengths)
    errors = {}
    for i in range(config["n_layers"]):
        p = ref.subset(params, f"layers.{i}.")
        errors[f"blocks.{i}.norm"] = rel_err(ref.mamba_norm(hooks[f"blocks.{i}.resid_pre"], p, "norm", config),
                                             torch_mamba_norm(hooks[f"blocks.{i}.resid_pre"], p, "norm", config))
    last = hooks[f"blocks.{config['n_layers'] - 1}.resid_post"]
    errors["final(norm_f)"] = rel_err(hooks["final"], torch_mamba_norm(last, params, "norm_f", config))
    return errors


# ----------------------------------------------------------------------------- pooling and head

def check_pooling_and_head(config, params, tokens, lengths):
    """Pool per example with a Python loop; a [2,d] head's logit equals log p1 - log p0."""
    hooks = ref.run(config, params, tokens, lengths)
    final, mode = hooks["final"], config["pooling"]
    pooled = []
    for n, length in enumerate(lengths.tolist()):
        rows = final[n, :length]
        pooled.append({"mean": rows.mean(0), "last": rows[-1], "cls": final[n, 0]}[mode])
    pooled = torch.stack(pooled)
    z = F.linear(pooled, params["head.weight"], params["head.bias"])
    logit = z[:, 0] if z.shape[1] == 1 else (F.log_softmax(z, -1)[:, 1] - F.log_softmax(z, -1)[:, 0])
    return {"pooled": rel_err(hooks["pooled"], pooled), "logits": rel_err(hooks["logits"], logit)}


def run_all(config, params, tokens, lengths):
    """Every check that applies to this config; {check: max relative error}."""
    errors = check_pooling_and_head(config, params, tokens, lengths)
    if config["arch"] == "mamba2":
        import selfcheck_mamba2  # imports mamba_ssm and transformers: only where needed

        errors.update(check_mamba2_norms(config, params, tokens, lengths))
        errors.update(selfcheck_mamba2.run_all(config, params, tokens, lengths))
        return errors
    if config["arch"] == "mamba":
        errors.update(check_mamba_vs_slow_path(config, params, tokens, lengths))
        return errors
    if config.get("embed_scale", 1.0) != 1.0:
        assert config["embed_scale"] == math.sqrt(config["d_model"]), "the check is the tutorial's sqrt(d_model)"
        errors.update(check_embed_like_tutorial(config, params, tokens, lengths))
    if config["positional"] == "sinusoidal":
        errors.update(check_sinusoidal(tokens.shape[1], config["d_model"]))
    if config["positional"] == "rope":
        errors.update(check_rope(tokens.shape[1], config["d_model"] // config["n_heads"],
                                 config["rope_base"]))
        errors.update(check_rope_pattern(config, params, tokens, lengths))
        # torch has no rope: check everything else against torch on the same weights without it.
        config = dict(config, positional="none")
    errors.update(check_transformer_vs_torch(config, params, tokens, lengths))
    # Masking both ways against torch, whichever way the fixture itself is configured.
    flipped = dict(config, causal=not config.get("causal", False))
    tag = "causal" if flipped["causal"] else "noncausal"
    errors.update({f"{tag}:{k}": v for k, v in
                   check_transformer_vs_torch(flipped, params, tokens, lengths).items()})
    return errors
