"""Mamba-2 in PyTorch for the benchmarks (imported by bench/torch_sweep.py and bench/torch_ig.py).

TorchMamba2 is mamba_ssm's `Mamba2` block (modules/mamba2.py, its non-fused path; design.md 2.4) in
plain float32 PyTorch, with seqlens's tensor names as attribute names so that
`load_state_dict(strict=True)` proves the layout: nn.RMSNorm (or nn.LayerNorm) block norm, in_proj
[z | xBC | dt], a causal depthwise nn.Conv1d over xBC, softplus(dt + dt_bias) clamped to dt_limit,
the SSD scan, + D x, mamba_ssm's grouped gated RMSNorm (norm_before_gate false), out_proj.

mamba_ssm's Mamba2 has no CPU path (its scan is a Triton kernel), so the scan is one of these
interchangeable PyTorch paths, all computing the same recurrence (`SCANS`, chosen per model with
`TorchMamba2.set_scan`):

  sequential      one Python step per position: S_t = exp(delta_t A) S_{t-1} + delta_t x_t (x) B_t,
                  y_t = S_t C_t (as Mamba-1's in-step scan in torch_sweep.py);
  chunked-Q       the chunked SSD ("state space duality") in chunks of Q positions: within a chunk
                  the quadratic, attention-like form (C B^T masked by the decays, times x), across
                  chunks the recurrence on the chunk states; written here with the groups kept
                  (C B^T once per group, not once per head) and batched matmuls;
  ssd_minimal-64  mamba_ssm's own `ssd_minimal_discrete` (modules/ssd_minimal.py, the paper's
                  Listing 1), block_len 64, B and C repeated to the heads (needs mamba_ssm);
  hf-256          Hugging Face's `mamba2_chunk_scan`, the pure-PyTorch path that `Mamba2Mixer` runs
                  on a CPU (transformers 5.x; earlier `torch_forward`), at its default chunk_size
                  256 (needs transformers).

The library paths are imported when their packages import here (mamba_ssm with its CUDA extension
stubbed; transformers with mamba_ssm hidden while it loads, so that it keeps its PyTorch fallback
instead of binding mamba_ssm's Triton kernel); `available_scans()` says which did.
"""
import math
import sys
import types

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------- the scan paths
#
# Every path: x [b, l, h, p], delta [b, l, h] (after softplus and clamp), A [h] (negative),
# B, C [b, l, g, n] (head j reads group j // (h / g)) -> y [b, l, h, p], without the D x term.

def ssd_sequential(x, delta, A, B, C):
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    r = h // g
    # Per-step operands contiguous [l, ...] so that each step reads one block.
    decay = torch.exp(delta * A).view(b, l, g, r).permute(1, 0, 2, 3).contiguous()[..., None, None]  # [l,b,g,r,1,1]
    dx = (x * delta[..., None]).view(b, l, g, r, p).permute(1, 0, 2, 3, 4).contiguous()[..., None]    # [l,b,g,r,p,1]
    Bt = B.permute(1, 0, 2, 3).contiguous()[:, :, :, None, None, :]                                  # [l,b,g,1,1,n]
    Ct = C.permute(1, 0, 2, 3).contiguous()[:, :, :, None, :, None]                                  # [l,b,g,1,n,1]
    state = x.new_zeros(b, g, r, p, n)
    ys = []
    for t in range(l):
        state = decay[t] * state + dx[t] * Bt[t]
        ys.append(torch.matmul(state, Ct[t]))
    return torch.stack(ys, dim=1).view(b, l, h, p)


def ssd_chunked(x, delta, A, B, C, chunk=64):
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    r = h // g
    pad = (-l) % chunk  # zero delta and x past the end: nothing written, outputs cut off
    c = (l + pad) // chunk
    # [b, g, r, c, Q, ...]: groups, heads within the group, chunks, positions within the chunk.
    X = F.pad(x * delta[..., None], (0, 0, 0, 0, 0, pad)).view(b, c, chunk, g, r, p).permute(0, 3, 4, 1, 2, 5)
    a = F.pad(delta * A, (0, 0, 0, pad)).view(b, c, chunk, g, r).permute(0, 3, 4, 1, 2)
    Bc = F.pad(B, (0, 0, 0, 0, 0, pad)).view(b, c, chunk, g, n).permute(0, 3, 1, 2, 4)[:, :, None]
    Cc = F.pad(C, (0, 0, 0, 0, 0, pad)).view(b, c, chunk, g, n).permute(0, 3, 1, 2, 4)[:, :, None]
    acum = torch.cumsum(a, dim=-1)  # log of the decay from the chunk's start to each position
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=x.device).tril()
    # Within the chunk: y_l = sum_{s<=l} exp(acum_l - acum_s) (C_l . B_s) X_s.
    decays = torch.exp((acum[..., :, None] - acum[..., None, :]).masked_fill(~causal, -math.inf))
    y = (torch.matmul(Cc, Bc.transpose(-1, -2)) * decays) @ X
    # Each chunk's own contribution to the state at its end, then the recurrence across chunks.
    written = (X * torch.exp(acum[..., -1:] - acum)[..., None]).transpose(-1, -2) @ Bc  # [b,g,r,c,p,n]
    chunk_decay = torch.exp(acum[..., -1])                                              # [b,g,r,c]
    state = x.new_zeros(b, g, r, p, n)
    before = []
    for k in range(c):
        before.append(state)
        state = chunk_decay[..., k, None, None] * state + written[..., k, :, :]
    # Across chunks: y_l += exp(acum_l) C_l . S(chunk start).
    y = y + (Cc @ torch.stack(before, dim=3).transpose(-1, -2)) * torch.exp(acum)[..., None]
    return y.permute(0, 3, 4, 1, 2, 5).reshape(b, c * chunk, h, p)[:, :l]


def _repeat_groups(t, h):
    return t.repeat_interleave(h // t.shape[2], dim=2)


def _load_ssd_minimal():
    sys.modules.setdefault("selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
    from mamba_ssm.modules.ssd_minimal import ssd_minimal_discrete

    def ssd_minimal(x, delta, A, B, C, block=64):
        l, h = x.shape[1], x.shape[2]
        pad = (-l) % block  # it needs whole blocks
        X = F.pad(x * delta[..., None], (0, 0, 0, 0, 0, pad))
        Ad = F.pad(delta * A, (0, 0, 0, pad))
        Bh = F.pad(_repeat_groups(B, h), (0, 0, 0, 0, 0, pad))
        Ch = F.pad(_repeat_groups(C, h), (0, 0, 0, 0, 0, pad))
        return ssd_minimal_discrete(X, Ad, Bh, Ch, block)[0][:, :l]
    return ssd_minimal


def _load_hf_chunk_scan():
    hidden = {k: sys.modules.get(k) for k in ("mamba_ssm", "causal_conv1d")}
    sys.modules.update({k: None for k in hidden})
    try:
        from transformers.models.mamba2.modeling_mamba2 import mamba2_chunk_scan
    finally:
        for k, v in hidden.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v

    def hf_chunk_scan(x, delta, A, B, C, chunk=256):
        # delta is already softplus'd and clamped: no dt_bias, no softplus, the default [0, inf) limit.
        return mamba2_chunk_scan(x, delta, A, B, C, chunk_size=chunk)
    return hf_chunk_scan


SCANS = {
    "sequential": ("sequential recurrence, one Python step per position", lambda: ssd_sequential),
    "chunked-32": ("chunked SSD, grouped, chunk 32", lambda: lambda *a: ssd_chunked(*a, chunk=32)),
    "chunked-64": ("chunked SSD, grouped, chunk 64", lambda: lambda *a: ssd_chunked(*a, chunk=64)),
    "ssd_minimal-64": ("mamba_ssm's ssd_minimal_discrete, block_len 64", _load_ssd_minimal),
    "hf-256": ("Hugging Face's mamba2_chunk_scan (Mamba2Mixer's CPU path), chunk_size 256", _load_hf_chunk_scan),
}


def available_scans(names=None, log=None):
    """{name: scan function} for the paths that load here, in SCANS's order; `log` hears why one did not."""
    out = {}
    for name in names or SCANS:
        if name not in SCANS:
            raise SystemExit(f"torch_mamba2.py: no scan path '{name}' (known: {', '.join(SCANS)})")
        try:
            out[name] = SCANS[name][1]()
        except Exception as e:  # an optional library missing or failing to import
            if log:
                log(f"mamba2: scan path {name} unavailable ({type(e).__name__}: {e})")
    return out


# ----------------------------------------------------------------------------- the model

class GatedRMSNorm(nn.Module):
    """mamba_ssm's RMSNormGated, norm_before_gate false: RMSNorm over each group of d_inner/ngroups
    channels of y * SiLU(z), times weight."""

    def __init__(self, d_inner, ngroups, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_inner))
        self.ngroups, self.eps = ngroups, eps

    def forward(self, y, z):
        v = (y * F.silu(z)).unflatten(-1, (self.ngroups, -1))
        v = v * torch.rsqrt(v.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return v.flatten(-2) * self.weight


class Mamba2Mixer(nn.Module):
    def __init__(self, c, bias):
        super().__init__()
        d, S, G, K, P = c["d_model"], c["d_state"], c["ngroups"], c["d_conv"], c["headdim"]
        di = c["expand"] * d
        H = di // P
        self.shape = (H, P, G, S)
        self.split = (di, di + 2 * G * S, H)
        lo, hi = c.get("dt_limit", [0.0, math.inf])
        self.dt_limit = (float(lo), math.inf if hi in ("inf", "Infinity") else float(hi))
        self.in_proj = nn.Linear(d, 2 * di + 2 * G * S + H, bias=bias["in_proj"])
        self.conv1d = nn.Conv1d(di + 2 * G * S, di + 2 * G * S, K, groups=di + 2 * G * S, padding=K - 1,
                                bias=bias["conv1d"])
        self.dt_bias = nn.Parameter(torch.empty(H))
        self.A_log = nn.Parameter(torch.empty(H))
        self.D = nn.Parameter(torch.empty(di if c.get("D_has_hdim", False) else H))
        self.norm = GatedRMSNorm(di, G, c.get("gated_norm_eps", 1e-5))
        self.out_proj = nn.Linear(di, d, bias=bias["out_proj"])
        self.scan = ssd_chunked

    def forward(self, h):
        L = h.shape[1]
        H, P, G, S = self.shape
        z, xBC, dt = self.in_proj(h).split(self.split, dim=-1)
        xBC = F.silu(self.conv1d(xBC.transpose(1, 2))[..., :L]).transpose(1, 2)  # causal: left padding kept
        x, B, C = xBC.split((self.split[0], G * S, G * S), dim=-1)
        delta = F.softplus(dt + self.dt_bias).clamp(*self.dt_limit)
        x = x.unflatten(-1, (H, P))
        y = self.scan(x, delta, -torch.exp(self.A_log), B.unflatten(-1, (G, S)), C.unflatten(-1, (G, S)))
        y = y + x * self.D.view(H, -1)
        return self.out_proj(self.norm(y.flatten(-2), z))


class Mamba2Block(nn.Module):
    def __init__(self, c, bias):
        super().__init__()
        d, eps = c["d_model"], c.get("norm_eps", 1e-5)
        self.norm = nn.LayerNorm(d, eps=eps) if c.get("norm", "rms") == "layer" else nn.RMSNorm(d, eps=eps)
        self.mixer = Mamba2Mixer(c, bias)

    def forward(self, h):
        return h + self.mixer(self.norm(h))


class TorchMamba2(nn.Module):
    """Attribute names = design.md section 2's tensor names (embedding, layers.i, norm_f, head).
    `names` (the state dict's keys) says which optional biases exist."""

    def __init__(self, c, names):
        super().__init__()
        if not c.get("rmsnorm", True) or c.get("norm_before_gate", False):
            raise SystemExit("torch_mamba2.py builds the gated norm after the gate (rmsnorm true, "
                             "norm_before_gate false) only")
        bias = {m: f"layers.0.mixer.{m}.bias" in names for m in ("in_proj", "conv1d", "out_proj")}
        d, eps = c["d_model"], c.get("norm_eps", 1e-5)
        self.embedding = nn.Embedding(c["vocab_size"], d)
        self.layers = nn.ModuleList(Mamba2Block(c, bias) for _ in range(c["n_layers"]))
        self.norm_f = nn.LayerNorm(d, eps=eps) if c.get("norm", "rms") == "layer" else nn.RMSNorm(d, eps=eps)
        self.head = nn.Linear(d, 1)

    def set_scan(self, scan):
        for layer in self.layers:
            layer.mixer.scan = scan

    def from_embeds(self, h):
        """The blocks and norm_f from the embedding output h [b, L, d]: [b, L, d] before pooling."""
        for layer in self.layers:
            h = layer(h)
        return self.norm_f(h)

    def forward(self, data, zero_mask):
        """torch_sweep.py's interface: data.tokens [N, L], data.valid [N, L]; zero_mask [N, L] or
        None: the positions whose token embedding is replaced by zeros. Logits [N] (mean pooling)."""
        h = self.embedding(data.tokens)
        if zero_mask is not None:
            h = h.masked_fill(zero_mask[..., None], 0.0)
        weights = data.valid.to(h.dtype)[..., None]
        return self.head((self.from_embeds(h) * weights).sum(dim=1) / weights.sum(dim=1))[:, 0]
