"""Mamba-2 checks of seqlens_ref.py against the libraries' own modules, on this CPU.

mamba_ssm's `Mamba2` (modules/mamba2.py) runs its non-fused path (use_mem_eff_path=False) with:
  - the CUDA extension stubbed (`selective_scan_cuda`), causal_conv1d absent, so the block's own
    nn.Conv1d does the convolution;
  - `mamba_chunk_scan_combined` (Triton) replaced by `chunk_scan_torch` below: the kernel's contract
    (dt + dt_bias, softplus, clamp to dt_limit, heads reading group h // (H/G), + D x, optional
    * SiLU(z)) around mamba_ssm's own pure-torch chunked SSD, `ssd_minimal_discrete`
    (modules/ssd_minimal.py), which `check_chunked_ssd` checks against the sequential float64 scan;
  - the gated RMSNorm (ops/triton/layernorm_gated.RMSNorm) through mamba_ssm's own `rms_norm_ref`
    with the module's `group_size` (d_ssm / ngroups) and `norm_before_gate`.
Hugging Face's `Mamba2Mixer` (transformers 5.x: its pure-torch fallbacks `mamba2_chunk_scan` and
`causal_conv1d_fn`, chosen when mamba_ssm is hidden while modeling_mamba2 imports; older versions call
that path `torch_forward`) for the configs it can express (D per head, norm_before_gate false,
rmsnorm true, in_proj and out_proj biases both or neither).

Both libraries upcast to float32 in places (`A_log.float()`, `rms_norm_ref`'s upcast, HF's
`.to(torch.float32)`), meant for half-precision inputs; `float64_kept()` makes those conversions
no-ops on float64 tensors while the modules run, so that the comparison is float64 against float64.
"""
import contextlib
import math
import sys
import types

import torch
import torch.nn.functional as F

import seqlens_ref as ref

DTYPE = torch.float64
CHUNK = 8  # small, so that the fixtures' lengths cross several chunks and end inside one


def rel_err(ours, theirs):
    scale = theirs.abs().max().clamp_min(1e-300)
    return float((ours - theirs).abs().max() / scale)


@contextlib.contextmanager
def float64_kept():
    """Tensor.float() and Tensor.to(torch.float32) leave float64 tensors as they are."""
    orig_float, orig_to = torch.Tensor.float, torch.Tensor.to

    def keep_float(self, *args, **kwargs):
        return self if self.dtype == torch.float64 else orig_float(self, *args, **kwargs)

    def keep_to(self, *args, **kwargs):
        if self.dtype == torch.float64:
            args = tuple(torch.float64 if a is torch.float32 else a for a in args)
            if kwargs.get("dtype") is torch.float32:
                kwargs["dtype"] = torch.float64
        return orig_to(self, *args, **kwargs)

    torch.Tensor.float, torch.Tensor.to = keep_float, keep_to
    try:
        yield
    finally:
        torch.Tensor.float, torch.Tensor.to = orig_float, orig_to


# ----------------------------------------------------------------------------- imports

_LIBS = {}


def libs():
    """(mamba_ssm.modules.mamba2, layernorm_gated, ssd_minimal, transformers' modeling_mamba2),
    imported once with the stubs in place."""
    if _LIBS:
        return _LIBS
    sys.modules.setdefault("selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
    import mamba_ssm.modules.mamba2 as m2
    import mamba_ssm.modules.ssd_minimal as ssd_minimal
    import mamba_ssm.ops.triton.layernorm_gated as lng

    assert m2.causal_conv1d_fn is None, "causal_conv1d present: Mamba2 would not use its nn.Conv1d"
    m2.mamba_chunk_scan_combined = chunk_scan_torch
    lng.RMSNorm.forward = gated_norm_ref_forward
    # transformers binds mamba_ssm's Triton kernels when it can import them; hidden while
    # modeling_mamba2 loads, it keeps its own pure-torch functions.
    hidden = {k: sys.modules.get(k) for k in ("mamba_ssm", "causal_conv1d")}
    sys.modules.update({k: None for k in hidden})
    try:
        import transformers.models.mamba2.modeling_mamba2 as hf
    finally:
        for k, v in hidden.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    _LIBS.update(m2=m2, lng=lng, ssd=ssd_minimal, hf=hf)
    return _LIBS


# What the stubs saw during the last module call: the hooks of design.md section 4.
SEEN = {}


def gated_norm_ref_forward(self, x, z=None):
    SEEN["gate"] = F.silu(z)
    return libs()["lng"].rms_norm_ref(x, self.weight, self.bias, z=z, eps=self.eps, group_size=self.group_size,
                                      norm_before_gate=self.norm_before_gate)


def chunked_ssd(x, dt, A, B, C, chunk):
    """mamba_ssm's ssd_minimal_discrete on x [N,L,H,P], dt [N,L,H] (after softplus and clamp), A [H],
    B, C [N,L,G,S]: heads read group h // (H/G); L padded with zeros to a multiple of `chunk`
    (dt = 0 there: nothing is written, and by causality nothing earlier changes)."""
    N, L, H, P = x.shape
    per_group = H // B.shape[2]
    Bh, Ch = B.repeat_interleave(per_group, dim=2), C.repeat_interleave(per_group, dim=2)
    pad = (-L) % chunk
    if pad:
        x, Bh, Ch = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, Bh, Ch))
        dt = F.pad(dt, (0, 0, 0, pad))
    y, _ = libs()["ssd"].ssd_minimal_discrete(x * dt[..., None], A * dt, Bh, Ch, chunk)
    return y[:, :L]


def chunk_scan_torch(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False,
                     dt_limit=(0.0, float("inf")), seq_idx=None, cu_seqlens=None, return_final_states=False,
                     return_varlen_states=False, **unused):
    """mamba_chunk_scan_combined's contract (ops/triton/ssd_combined.py) in torch."""
    assert seq_idx is None and cu_seqlens is None and not return_final_states and not return_varlen_states
    if dt_bias is not None:
        dt = dt + dt_bias
    if dt_softplus:
        dt = F.softplus(dt)
    dt = dt.clamp(min=dt_limit[0], max=dt_limit[1])
    y = chunked_ssd(x, dt, A, B, C, chunk_size)
    if D is not None:
        y = y + x * (D[:, None] if D.dim() == 1 else D)
    SEEN.update(in_x=x.flatten(2), delta=dt, B=B.flatten(2), C=C.flatten(2), y=y.flatten(2))
    if z is not None:
        SEEN["gate"] = F.silu(z).flatten(2)
        y = y * F.silu(z)
    return y


# ----------------------------------------------------------------------------- checks

def layer_inputs(config, params, tokens, lengths):
    hooks = ref.run(config, params, tokens, lengths)
    for i in range(config["n_layers"]):
        p = ref.subset(params, f"layers.{i}.")
        yield i, hooks, ref.mamba_norm(hooks[f"blocks.{i}.resid_pre"], p, "norm", config), ref.subset(p, "mixer.")


def check_chunked_ssd(config, params, tokens, lengths):
    """mamba_ssm's chunked SSD (chunks of CHUNK and of 256) against ref.ssd_scan on each layer's own
    x, delta, B, C from the reference (D = 0)."""
    N, L = tokens.shape
    P, G, S = config["headdim"], config["ngroups"], config["d_state"]
    errors = {}
    for i, hooks, _, p in layer_inputs(config, params, tokens, lengths):
        x = hooks[f"blocks.{i}.mixer.in_x"].reshape(N, L, -1, P)
        B = hooks[f"blocks.{i}.mixer.B"].reshape(N, L, G, S)
        C = hooks[f"blocks.{i}.mixer.C"].reshape(N, L, G, S)
        delta, A = hooks[f"blocks.{i}.mixer.delta"], -torch.exp(p["A_log"])
        sequential = ref.ssd_scan(x, delta, A, B, C, torch.zeros(x.shape[2], dtype=DTYPE))
        for chunk in (CHUNK, 256):
            errors[f"blocks.{i}.ssd chunked({chunk}) vs sequential"] = rel_err(sequential, chunked_ssd(x, delta, A, B, C, chunk))
    return errors


def mamba_ssm_mixer(config, p):
    m2 = libs()["m2"]
    lo, hi = ref.dt_limit(config)
    module = m2.Mamba2(
        config["d_model"], d_state=config["d_state"], d_conv=config["d_conv"], expand=config["expand"],
        headdim=config["headdim"], ngroups=config["ngroups"], D_has_hdim=config.get("D_has_hdim", False),
        rmsnorm=config.get("rmsnorm", True), norm_before_gate=config.get("norm_before_gate", False),
        dt_limit=(lo, hi), bias="in_proj.bias" in p, conv_bias="conv1d.bias" in p, chunk_size=CHUNK,
        use_mem_eff_path=False, dtype=DTYPE)
    module.load_state_dict(p, strict=True)
    if config.get("rmsnorm", True):
        assert module.norm.eps == config.get("gated_norm_eps", 1e-5), "mamba_ssm's gated norm eps is fixed at 1e-5"
    return module.eval()


def check_vs_mamba_ssm(config, params, tokens, lengths):
    """Each layer's mixer as mamba_ssm's Mamba2 module from the same normalised input: every mixer
    hook (at all positions: the block is causal) and resid_post."""
    errors = {}
    for i, hooks, u, p in layer_inputs(config, params, tokens, lengths):
        SEEN.clear()
        with torch.no_grad(), float64_kept():
            out = mamba_ssm_mixer(config, p)(u)
        SEEN["out"] = out
        for name in ("in_x", "delta", "B", "C", "y", "gate", "out"):
            errors[f"mamba_ssm:blocks.{i}.mixer.{name}"] = rel_err(hooks[f"blocks.{i}.mixer.{name}"], SEEN[name])
        errors[f"mamba_ssm:blocks.{i}.resid_post"] = rel_err(hooks[f"blocks.{i}.resid_post"],
                                                              hooks[f"blocks.{i}.resid_pre"] + out)
    return errors


def hf_expressible(config, params):
    biases = {"layers.0.mixer.in_proj.bias" in params, "layers.0.mixer.out_proj.bias" in params}
    return (not config.get("D_has_hdim", False) and not config.get("norm_before_gate", False)
            and config.get("rmsnorm", True) and len(biases) == 1)


def hf_mixer(config, p, layer):
    hf = libs()["hf"]
    from transformers import Mamba2Config

    lo, hi = ref.dt_limit(config)
    d_inner = config["expand"] * config["d_model"]
    cfg = Mamba2Config(
        vocab_size=config["vocab_size"], hidden_size=config["d_model"], num_hidden_layers=config["n_layers"],
        state_size=config["d_state"], expand=config["expand"], conv_kernel=config["d_conv"],
        head_dim=config["headdim"], num_heads=d_inner // config["headdim"], n_groups=config["ngroups"],
        use_bias="in_proj.bias" in p, use_conv_bias="conv1d.bias" in p,
        layer_norm_epsilon=config.get("gated_norm_eps", 1e-5), time_step_limit=(lo, hi), chunk_size=CHUNK)
    module = hf.Mamba2Mixer(cfg, layer_idx=layer).to(DTYPE)
    module.load_state_dict(p, strict=True)
    return module.eval()


def check_vs_hugging_face(config, params, tokens, lengths):
    """Each layer's mixer output as Hugging Face's Mamba2Mixer computes it (no attention mask, no
    cache: its chunked torch scan), and the block norm as its Mamba2RMSNorm where `norm` is rms."""
    errors = {}
    hf = libs()["hf"]
    for i, hooks, u, p in layer_inputs(config, params, tokens, lengths):
        with torch.no_grad(), float64_kept():
            out = hf_mixer(config, p, i)(u)
            if config.get("norm", "rms") == "rms":
                norm = hf.Mamba2RMSNorm(config["d_model"], eps=config.get("norm_eps", 1e-5)).to(DTYPE)
                norm.weight.copy_(params[f"layers.{i}.norm.weight"])
                errors[f"hf:blocks.{i}.norm (Mamba2RMSNorm)"] = rel_err(u, norm(hooks[f"blocks.{i}.resid_pre"]))
        errors[f"hf:blocks.{i}.mixer.out"] = rel_err(hooks[f"blocks.{i}.mixer.out"], out)
    return errors


def check_gated_norm_by_hand(config, params, tokens, lengths):
    """rms_norm_ref with group_size against a per-group Python loop (the grouping itself)."""
    if not config.get("rmsnorm", True):
        return {}
    errors = {}
    G, eps = config["ngroups"], config.get("gated_norm_eps", 1e-5)
    for i, hooks, _, p in layer_inputs(config, params, tokens, lengths):
        y, gate = hooks[f"blocks.{i}.mixer.y"], hooks[f"blocks.{i}.mixer.gate"]
        v = y if config.get("norm_before_gate", False) else y * gate
        size = v.shape[-1] // G
        parts = []
        for g in range(G):
            part = v[..., g * size:(g + 1) * size]
            parts.append(part / torch.sqrt(part.pow(2).mean(-1, keepdim=True) + eps))
        out = torch.cat(parts, -1) * p["norm.weight"]
        if config.get("norm_before_gate", False):
            out = out * gate
        with torch.no_grad():
            theirs = F.linear(out, p["out_proj.weight"], p.get("out_proj.bias"))
        errors[f"blocks.{i}.gated norm by groups (loop)"] = rel_err(hooks[f"blocks.{i}.mixer.out"], theirs)
    return errors


def run_all(config, params, tokens, lengths):
    errors = check_chunked_ssd(config, params, tokens, lengths)
    errors.update(check_gated_norm_by_hand(config, params, tokens, lengths))
    errors.update(check_vs_mamba_ssm(config, params, tokens, lengths))
    if hf_expressible(config, params):
        errors.update(check_vs_hugging_face(config, params, tokens, lengths))
    return errors
