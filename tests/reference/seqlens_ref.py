"""Float64 reference forward pass for seqlens models (design.md sections 2 and 4).

Mamba-1, Mamba-2 and the Transformer.  Given a model directory (config.json + model.safetensors) and a batch of tokens, `run` returns every
hook activation of design.md section 4, computed in float64 from the stored weights (F16/BF16/F32
widen exactly to float64).  It is deliberately plain and slow: it is the ground truth that the C
implementation is tested against, so each step mirrors the formula in design.md line by line.

Usage from Python:
    config, params = load_model("tests/fixtures/mamba_mean_f32")
    tokens, lengths = load_tokens("tests/fixtures/mamba_mean_f32/data.h5")
    hooks = zero_padding(run(config, params, tokens, lengths), lengths)
"""
import json
import math
import os

import torch
import torch.nn.functional as F

DTYPE = torch.float64


# ----------------------------------------------------------------------------- loading

def load_model(model_dir):
    """Read config.json and model.safetensors; return (config, {unprefixed name: float64 tensor})."""
    from safetensors.torch import load_file

    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    tensors = load_file(os.path.join(model_dir, "model.safetensors"))
    return config, strip_prefix(tensors, config.get("prefix", ""))


def strip_prefix(tensors, prefix):
    # The prefix is removed only where present: checkpoints such as MambaLMHeadModel keep the
    # backbone under "backbone." but a classification head at the top level.
    params = {}
    for name, tensor in tensors.items():
        if prefix and name.startswith(prefix):
            name = name[len(prefix):]
        params[name] = tensor.to(DTYPE)
    return params


def effective_lengths(tokens, lengths=None, pad_token_id=0):
    """/lengths when given, else last non-pad position + 1 (0 for an all-pad row)."""
    tokens = torch.as_tensor(tokens)
    if lengths is not None:
        return torch.as_tensor(lengths).to(torch.long)
    positions = torch.arange(1, tokens.shape[1] + 1).expand(tokens.shape)
    return torch.where(tokens != pad_token_id, positions, 0).max(dim=1).values


def load_tokens(data_path, pad_token_id=0):
    """Return (tokens [N,L] long, effective lengths [N] long) from a design.md section 3 file."""
    import h5py

    with h5py.File(data_path, "r") as f:
        tokens = torch.from_numpy(f["tokens"][...].astype("int64"))
        lengths = f["lengths"][...].astype("int64") if "lengths" in f else None
    return tokens, effective_lengths(tokens, lengths, pad_token_id)


def subset(params, prefix):
    """The tensors under `prefix`, with the prefix removed (one layer, one module)."""
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


# ----------------------------------------------------------------------------- shared pieces

def linear(x, params, name):
    # Biases are optional (Mamba in_proj/out_proj, x_proj never has one).
    y = x @ params[name + ".weight"].T
    bias = params.get(name + ".bias")
    return y if bias is None else y + bias


def valid_mask(lengths, L):
    """[N, L] bool: position < length."""
    return torch.arange(L)[None, :] < lengths[:, None]


def pool(final, lengths, mode, keep=None):
    if keep is not None:
        return pool_kept(final, lengths, mode, keep)
    if mode == "mean":
        mask = valid_mask(lengths, final.shape[1]).to(DTYPE)[..., None]
        return (final * mask).sum(dim=1) / lengths[:, None].to(DTYPE)
    if mode == "last":
        return final[torch.arange(final.shape[0]), lengths - 1]
    if mode == "cls":
        return final[:, 0]
    raise ValueError(f"unknown pooling {mode!r}")


def pool_kept(final, lengths, mode, keep):
    """Pooling over the kept valid positions only (`pad` ablation drops positions from pooling).

    No kept position left: mean gives a zero vector and last falls back to position 0 (the same
    conventions as the C code; the result is then the head applied to that).  cls reads position 0
    whether or not it is kept.
    """
    kept = keep & valid_mask(lengths, final.shape[1])
    if mode == "mean":
        total = torch.where(kept[..., None], final, torch.zeros((), dtype=final.dtype)).sum(dim=1)
        return total / kept.sum(dim=1).clamp_min(1)[:, None].to(final.dtype)
    if mode == "last":
        positions = torch.arange(1, final.shape[1] + 1).expand(kept.shape)
        last = (torch.where(kept, positions, 0).max(dim=1).values - 1).clamp_min(0)
        return final[torch.arange(final.shape[0]), last]
    if mode == "cls":
        return final[:, 0]
    raise ValueError(f"unknown pooling {mode!r}")


def head_logit(pooled, params):
    # A [2, d] head is a two-class softmax classifier; its log-odds are z1 - z0.
    z = linear(pooled, params, "head")
    return z[:, 0] if z.shape[1] == 1 else z[:, 1] - z[:, 0]


# ----------------------------------------------------------------------------- Mamba

def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def mamba_norm(x, p, name, config):
    """A Mamba block norm or norm_f: RMSNorm, or with `norm` "layer" LayerNorm (u - mean) *
    rsqrt(var + eps) * w + b with the population variance (mamba_ssm's rms_norm=False)."""
    eps = config.get("norm_eps", 1e-5)
    if config.get("norm", "rms") == "layer":
        return F.layer_norm(x, x.shape[-1:], p[name + ".weight"], p[name + ".bias"], eps)
    return rms_norm(x, p[name + ".weight"], eps)


def causal_depthwise_conv(x, weight, bias):
    """x [N,L,D], weight [D,1,K]: out_t = bias + sum_k weight[:, 0, k] * x_{t-(K-1)+k}, x_{<0} = 0.
    bias None (a conv1d saved without one) is zero."""
    K, L = weight.shape[-1], x.shape[1]
    padded = F.pad(x, (0, 0, K - 1, 0))  # K-1 zeros before position 0 along L
    out = torch.zeros_like(x) if bias is None else bias.expand_as(x).clone()
    for k in range(K):
        out = out + weight[:, 0, k] * padded[:, k:k + L]
    return out


def selective_scan(x, delta, A, B, C, D):
    """s_t = exp(delta_t A) * s_{t-1} + (delta_t x_t) outer B_t;  y_t = s_t C_t + D x_t.

    x, delta [N,L,Di]; A [Di,S]; B, C [N,L,S]; D [Di].  The state starts at zero.
    """
    N, L, Di = x.shape
    state = x.new_zeros(N, Di, A.shape[1])
    ys = []
    for t in range(L):
        decay = torch.exp(delta[:, t, :, None] * A)
        write = (delta[:, t] * x[:, t])[:, :, None] * B[:, t, None, :]
        state = decay * state + write
        ys.append((state * C[:, t, None, :]).sum(dim=-1) + D * x[:, t])
    return torch.stack(ys, dim=1)


def mamba_mixer(u, p, config, delta_zero=None):
    """Mamba-1 slow path on normalised input u [N,L,d]; returns (out, {hook suffix: tensor}).
    delta_zero [N,L] bool: delta set to 0 there (after the hook's softplus, before the scan)."""
    d_inner = config["expand"] * config["d_model"]
    R, S = config["dt_rank"], config["d_state"]
    xz = linear(u, p, "in_proj")
    x, z = xz[..., :d_inner], xz[..., d_inner:]
    x = F.silu(causal_depthwise_conv(x, p["conv1d.weight"], p.get("conv1d.bias")))
    dt, B, C = torch.split(linear(x, p, "x_proj"), [R, S, S], dim=-1)
    # torch's softplus default (beta 1, threshold 20) is what mamba_ssm calls.
    delta = F.softplus(linear(dt, p, "dt_proj"))
    if delta_zero is not None:
        delta = torch.where(delta_zero[..., None], torch.zeros((), dtype=delta.dtype), delta)
    A = -torch.exp(p["A_log"])
    y = selective_scan(x, delta, A, B, C, p["D"])
    gate = F.silu(z)
    out = linear(y * gate, p, "out_proj")
    return out, {"in_x": x, "delta": delta, "B": B, "C": C, "gate": gate, "out": out}


# ----------------------------------------------------------------------------- Mamba-2

def dt_limit(config):
    """design.md 2.4 `dt_limit` [lo, hi] (default [0, inf)); hi may be "inf"."""
    lo, hi = config.get("dt_limit", [0.0, math.inf])
    return float(lo), math.inf if hi in ("inf", "Infinity") else float(hi)


def ssd_scan(x, delta, A, B, C, D):
    """The Mamba-2 recurrence, one position at a time (design.md 2.4).

    x [N,L,H,P]; delta [N,L,H]; A [H]; B, C [N,L,G,S] (head h reads group h // (H/G)); D [H] or
    [H,P] (D_has_hdim).  S_t[h] = exp(delta_t[h] A[h]) S_{t-1}[h] + delta_t[h] x_t[h] (outer) B_t[g],
    y_t[h] = S_t[h] C_t[g] + D[h] x_t[h]; the state [N,H,P,S] starts at zero.
    """
    N, L, H, P = x.shape
    per_group = H // B.shape[2]
    Bh = B.repeat_interleave(per_group, dim=2)  # [N,L,H,S]
    Ch = C.repeat_interleave(per_group, dim=2)
    Dx = D[:, None] if D.dim() == 1 else D
    state = x.new_zeros(N, H, P, B.shape[3])
    ys = []
    for t in range(L):
        decay = torch.exp(delta[:, t] * A)[:, :, None, None]
        write = (delta[:, t, :, None] * x[:, t])[..., None] * Bh[:, t, :, None, :]
        state = decay * state + write
        ys.append((state * Ch[:, t, :, None, :]).sum(dim=-1) + Dx * x[:, t])
    return torch.stack(ys, dim=1)


def gated_norm(y, z, weight, ngroups, eps, norm_before_gate):
    """mamba_ssm's RMSNormGated with group_size d_inner / ngroups: norm_before_gate false gives
    RMSNorm_g(y * SiLU(z)) * w, true gives RMSNorm_g(y) * w * SiLU(z), the mean square taken over
    each group of d_inner / ngroups channels."""
    gate = F.silu(z)
    v = y if norm_before_gate else y * gate
    groups = v.reshape(v.shape[:-1] + (ngroups, v.shape[-1] // ngroups))
    groups = groups * torch.rsqrt(groups.pow(2).mean(dim=-1, keepdim=True) + eps)
    out = groups.reshape(v.shape) * weight
    return out * gate if norm_before_gate else out


def mamba2_mixer(u, p, config, delta_zero=None):
    """Mamba-2 (mamba_ssm's Mamba2, non-fused path) on normalised u [N,L,d]; returns (out, hooks).
    delta_zero [N,L] bool: delta set to 0 there (after softplus and clamp, before the scan)."""
    N, L, _ = u.shape
    d_inner = config["expand"] * config["d_model"]
    P = config["headdim"]
    H = d_inner // P
    G, S = config["ngroups"], config["d_state"]
    z, xBC, dt = torch.split(linear(u, p, "in_proj"), [d_inner, d_inner + 2 * G * S, H], dim=-1)
    xBC = F.silu(causal_depthwise_conv(xBC, p["conv1d.weight"], p.get("conv1d.bias")))
    x, B, C = torch.split(xBC, [d_inner, G * S, G * S], dim=-1)
    lo, hi = dt_limit(config)
    delta = F.softplus(dt + p["dt_bias"]).clamp(min=lo, max=hi)
    if delta_zero is not None:
        delta = torch.where(delta_zero[..., None], torch.zeros((), dtype=delta.dtype), delta)
    A = -torch.exp(p["A_log"])
    D = p["D"].reshape(H, P) if config.get("D_has_hdim", False) else p["D"]
    y = ssd_scan(x.reshape(N, L, H, P), delta, A, B.reshape(N, L, G, S), C.reshape(N, L, G, S), D)
    y = y.reshape(N, L, d_inner)
    gate = F.silu(z)
    if config.get("rmsnorm", True):
        v = gated_norm(y, z, p["norm.weight"], G, config.get("gated_norm_eps", 1e-5),
                       config.get("norm_before_gate", False))
    else:
        v = y * gate
    out = linear(v, p, "out_proj")
    return out, {"in_x": x, "delta": delta, "B": B, "C": C, "y": y, "gate": gate, "out": out}


def mamba_forward(config, params, tokens, token_embed=None, block_write=None, delta_zero=None):
    """Mamba-1 or Mamba-2 (config["arch"]): embedding, blocks of Norm + mixer, norm_f."""
    mixer = mamba2_mixer if config["arch"] == "mamba2" else mamba_mixer
    hooks = {}
    h = params["embedding.weight"][tokens] if token_embed is None else token_embed
    hooks["embed"] = h
    for i in range(config["n_layers"]):
        p = subset(params, f"layers.{i}.")
        hooks[f"blocks.{i}.resid_pre"] = h
        u = mamba_norm(h, p, "norm", config)
        out, mixer_hooks = mixer(u, subset(p, "mixer."), config, delta_zero)
        for name, value in mixer_hooks.items():
            hooks[f"blocks.{i}.mixer.{name}"] = value
        h = h + out
        if block_write is not None:
            h = block_write(i, hooks[f"blocks.{i}.resid_pre"], h)
        hooks[f"blocks.{i}.resid_post"] = h
    hooks["final"] = mamba_norm(h, params, "norm_f", config)
    return hooks


# ----------------------------------------------------------------------------- Transformer

def sinusoidal_table(L, d):
    """PyTorch tutorial table: pe[pos, 2i] = sin(pos 10000^(-2i/d)), pe[pos, 2i+1] = cos(same)."""
    pos = torch.arange(L, dtype=DTYPE)[:, None]
    two_i = torch.arange(0, d, 2, dtype=DTYPE)
    angle = pos * 10000.0 ** (-two_i / d)
    pe = torch.zeros(L, d, dtype=DTYPE)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d // 2])
    return pe


def rope(x, base):
    """GPT-NeoX rotate-half on x [N,H,L,dh]: dims (i, i+dh/2) rotate by pos * base^(-2i/dh)."""
    L, dh = x.shape[-2], x.shape[-1]
    assert dh % 2 == 0, "rope needs an even head dimension"
    half = dh // 2
    inv_freq = base ** (-2.0 * torch.arange(half, dtype=DTYPE) / dh)
    angle = torch.arange(L, dtype=DTYPE)[:, None] * inv_freq  # [L, half]
    cos, sin = torch.cos(angle), torch.sin(angle)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def allowed_keys(lengths, L, causal, keep=None):
    """[N,1,L,L] bool: query i may attend key j (j < length, and j <= i when causal; and keep[j])."""
    keys = valid_mask(lengths, L) if keep is None else valid_mask(lengths, L) & keep
    allowed = keys[:, None, None, :].expand(-1, 1, L, L)
    if causal:
        allowed = allowed & torch.ones(L, L, dtype=torch.bool).tril()
    return allowed


def self_attention(x, p, config, lengths, keep=None):
    N, L, d = x.shape
    H = config["n_heads"]
    dh = d // H
    qkv = x @ p["self_attn.in_proj_weight"].T + p["self_attn.in_proj_bias"]
    q, k, v = (t.reshape(N, L, H, dh).transpose(1, 2) for t in qkv.split(d, dim=-1))
    if config["positional"] == "rope":
        base = config.get("rope_base", 10000.0)
        q, k = rope(q, base), rope(k, base)
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
    allowed = allowed_keys(lengths, L, config.get("causal", False), keep)
    scores = scores.masked_fill(~allowed, -math.inf)
    pattern = torch.softmax(scores, dim=-1)
    if keep is not None:
        # With keys dropped a query may see none (softmax of all -inf is NaN): it then attends
        # to nothing, its context is 0 (the C code's convention).
        pattern = torch.where(allowed.any(dim=-1, keepdim=True), pattern, torch.zeros((), dtype=DTYPE))
    context = (pattern @ v).transpose(1, 2).reshape(N, L, d)
    return linear(context, p, "self_attn.out_proj"), pattern


def feed_forward(x, p, activation):
    pre = linear(x, p, "linear1")
    # "gelu" is the exact erf form, as nn.TransformerEncoderLayer uses.
    hidden = F.gelu(pre) if activation == "gelu" else F.relu(pre)
    return hidden, linear(hidden, p, "linear2")


def layer_norm(x, p, name, eps):
    return F.layer_norm(x, x.shape[-1:], p[name + ".weight"], p[name + ".bias"], eps)


def transformer_block(h, p, config, lengths, keep=None):
    eps = config["layer_norm_eps"]
    if config["norm_first"]:
        attn_out, pattern = self_attention(layer_norm(h, p, "norm1", eps), p, config, lengths, keep)
        h = h + attn_out
        hidden, mlp_out = feed_forward(layer_norm(h, p, "norm2", eps), p, config["activation"])
        h = h + mlp_out
    else:
        attn_out, pattern = self_attention(h, p, config, lengths, keep)
        h = layer_norm(h + attn_out, p, "norm1", eps)
        hidden, mlp_out = feed_forward(h, p, config["activation"])
        h = layer_norm(h + mlp_out, p, "norm2", eps)
    hooks = {"attn.pattern": pattern, "attn.out": attn_out, "mlp.hidden": hidden, "mlp.out": mlp_out}
    return h, hooks


def token_embedding(config, params, tokens):
    """The token term the model adds: embed_scale * embedding(tokens) (embed_scale 1 by default;
    the PyTorch tutorial's sqrt(d_model)); what `embed.tokens` holds and what ablations replace."""
    return config.get("embed_scale", 1.0) * params["embedding.weight"][tokens]


def transformer_embed(config, params, tokens, token_embed=None):
    # token_embed replaces the (scaled) token embedding only; the positional term is added to it.
    h = token_embedding(config, params, tokens) if token_embed is None else token_embed
    L, d = tokens.shape[1], config["d_model"]
    if config["positional"] == "learned":
        h = h + params["pos_embedding.weight"][:L]
    elif config["positional"] == "sinusoidal":
        h = h + sinusoidal_table(L, d)  # the tutorial's sqrt(d) is embed_scale, on the token term only
    return h


def transformer_forward(config, params, tokens, lengths, token_embed=None, keep=None, block_write=None):
    hooks = {}
    h = transformer_embed(config, params, tokens, token_embed)
    hooks["embed"] = h
    for i in range(config["n_layers"]):
        hooks[f"blocks.{i}.resid_pre"] = h
        h, block_hooks = transformer_block(h, subset(params, f"layers.{i}."), config, lengths, keep)
        for name, value in block_hooks.items():
            hooks[f"blocks.{i}.{name}"] = value
        if block_write is not None:
            h = block_write(i, hooks[f"blocks.{i}.resid_pre"], h)
        hooks[f"blocks.{i}.resid_post"] = h
    if config.get("final_norm", False):
        h = layer_norm(h, params, "norm", config["layer_norm_eps"])
    hooks["final"] = h
    return hooks


# ----------------------------------------------------------------------------- entry points

def run(config, params, tokens, lengths, token_embed=None, keep=None, block_write=None, delta_zero=None):
    """All hooks of design.md section 4 in float64, in forward order.

    Positions >= length hold whatever the model computes there; `zero_padding` clears them.
    The optional arguments are the interventions of `ablate` (make_ablation_fixtures.py); left
    at None the forward pass is exactly the one above:
      token_embed  [N,L,d]: used instead of embed_scale * embedding.weight[tokens], before any
                   positional term;
      keep         [N,L] bool: False drops a position from attention keys (Transformer) and from
                   mean/last pooling; it is still computed as a query;
      block_write  f(i, resid_pre, resid_post) -> resid_post of block i, seen by the later layers;
      delta_zero   [N,L] bool (Mamba and Mamba-2): delta (the `mixer.delta` hook) set to 0 at these
                   positions in every layer, the `skip` family ablation (pooling: pass keep too).
    """
    tokens = torch.as_tensor(tokens).to(torch.long)
    lengths = torch.as_tensor(lengths).to(torch.long)
    if config["arch"] in ("mamba", "mamba2"):
        hooks = mamba_forward(config, params, tokens, token_embed, block_write, delta_zero)
    elif config["arch"] == "transformer":
        if delta_zero is not None:
            raise ValueError("delta_zero: a transformer has no delta")
        hooks = transformer_forward(config, params, tokens, lengths, token_embed, keep, block_write)
    else:
        raise ValueError(f"unknown arch {config['arch']!r}")
    hooks["pooled"] = pool(hooks["final"], lengths, config["pooling"], keep)
    hooks["logits"] = head_logit(hooks["pooled"], params)
    return hooks


def zero_padding(hooks, lengths):
    """Zero every position >= length (pattern: query rows and key columns), as `capture` writes."""
    lengths = torch.as_tensor(lengths).to(torch.long)
    out = {}
    for name, value in hooks.items():
        if name in ("pooled", "logits"):
            out[name] = value.clone()
            continue
        if name.endswith("attn.pattern"):  # [N, H, L, L]
            valid = valid_mask(lengths, value.shape[-1])
            keep = valid[:, None, :, None] & valid[:, None, None, :]
        else:  # [N, L, ...]
            valid = valid_mask(lengths, value.shape[1])
            keep = valid.reshape(valid.shape + (1,) * (value.dim() - 2))
        out[name] = torch.where(keep, value, torch.zeros((), dtype=value.dtype))
    return out
