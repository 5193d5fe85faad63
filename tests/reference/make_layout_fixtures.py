"""Models saved the ordinary ways, for tests/test_layouts.c (design.md section 2.2).

Each directory under tests/fixtures/layouts/ holds what a user would have after training:
model.safetensors written by safetensors.torch.save_file(model.state_dict()) with the user's own
module names, the config.json their library writes (mamba_ssm's MambaConfig, Hugging Face's
MambaConfig) or only the keys design.md 2.1 requires for a Transformer, plus data.h5 (section 3)
and expected.json {tokens, lengths, logits}: PyTorch's float32 logits on those examples
(logit = z1 - z0 for a two-row head).

Transformers are torch's own nn.TransformerEncoder. mamba_ssm and transformers do not import on
this machine, so the Mamba models are a faithful re-implementation of mamba_ssm's Mamba block slow
path (mamba_simple.Mamba.forward without the fused kernels, selective_scan_ref) under the module
names MixerModel / Hugging Face's MambaModel use; the state dicts carry exactly their names.

Run from the repository root: python3 tests/reference/make_layout_fixtures.py
"""
import json
import math
import os

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = "tests/fixtures/layouts"
V, L, N = 12, 10, 6


# ----------------------------------------------------------------------------- data

def make_data(seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, L + 1, (N,), generator=g)
    tokens = torch.randint(1, V, (N, L), generator=g)
    for i in range(N):
        tokens[i, lengths[i]:] = 0
    labels = torch.randint(0, 2, (N,), generator=g)
    return tokens, lengths, labels


def write(name, model_state, config, logits, tokens, lengths, labels, note=None):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model_state.items()}, os.path.join(d, "model.safetensors"))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with h5py.File(os.path.join(d, "data.h5"), "w") as f:
        f.create_dataset("tokens", data=tokens.numpy().astype(np.int32))
        f.create_dataset("labels", data=labels.numpy().astype(np.int32))
        f.create_dataset("lengths", data=lengths.numpy().astype(np.int32))
        f.create_dataset("families/names", data=np.array([b"none"]), dtype=h5py.string_dtype())
        f.create_dataset("families/of_token", data=np.full(V, -1, dtype=np.int32))
    exp = {"tokens": tokens.tolist(), "lengths": lengths.tolist(), "logits": [float(x) for x in logits]}
    if note:
        exp.update(note)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1)


def pool(h, lengths, mode):
    idx = torch.arange(h.shape[1])
    valid = (idx[None, :] < lengths[:, None]).float()
    if mode == "mean":
        return (h * valid[..., None]).sum(1) / lengths[:, None].float()
    if mode == "last":
        return h[torch.arange(h.shape[0]), lengths - 1]
    return h[:, 0]


def head_logit(z):
    return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z[:, 0]


# ----------------------------------------------------------------------------- Transformers

class PositionalEncoding(nn.Module):
    """The PyTorch tutorial's, with its pe buffer [max_len, 1, d] (sequence-first)."""

    def __init__(self, d, max_len=64):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        pe = torch.zeros(max_len, 1, d)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):  # batch-first x
        return x + self.pe[: x.shape[1], 0][None]


class SinClassifier(nn.Module):
    def __init__(self, d=8, heads=2, ff=16, layers=2, scale=1.0):
        super().__init__()
        self.scale = scale
        self.embed = nn.Embedding(V, d)
        self.pos_encoder = PositionalEncoding(d)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d), enable_nested_tensor=False)
        self.classifier = nn.Linear(d, 2)

    def forward(self, tokens, lengths):
        x = self.pos_encoder(self.embed(tokens) * self.scale)
        pad = torch.arange(tokens.shape[1])[None, :] >= lengths[:, None]
        h = self.encoder(x, src_key_padding_mask=pad)
        return head_logit(self.classifier(pool(h, lengths, "mean")))


class LearnedClassifier(nn.Module):
    def __init__(self, d=8, heads=2, ff=12, layers=2, max_len=16):
        super().__init__()
        self.tok = nn.Embedding(V, d)
        self.pos_emb = nn.Embedding(max_len, d)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation="relu", batch_first=True, norm_first=False)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.fc = nn.Linear(d, 2)

    def forward(self, tokens, lengths):
        x = self.tok(tokens) + self.pos_emb(torch.arange(tokens.shape[1]))[None]
        pad = torch.arange(tokens.shape[1])[None, :] >= lengths[:, None]
        h = self.body(x, src_key_padding_mask=pad)
        return head_logit(self.fc(pool(h, lengths, "last")))


# ----------------------------------------------------------------------------- Mamba

class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Mamba(nn.Module):
    """mamba_ssm/modules/mamba_simple.py Mamba, the reference (non-fused) path."""

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto", conv_bias=True, bias=False):
        super().__init__()
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
        self.d_state = d_state
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1, bias=conv_bias)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A) + 0.1 * torch.randn(self.d_inner, d_state))
        self.D = nn.Parameter(torch.ones(self.d_inner) + 0.1 * torch.randn(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def forward(self, u):  # [B, L, d]
        Lq = u.shape[1]
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :Lq]).transpose(1, 2)
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log)
        s = torch.zeros(u.shape[0], self.d_inner, self.d_state)
        ys = []
        for t in range(Lq):
            s = torch.exp(delta[:, t, :, None] * A) * s + (delta[:, t, :, None] * x[:, t, :, None]) * B[:, t, None, :]
            ys.append((s * C[:, t, None, :]).sum(-1) + self.D * x[:, t])
        y = torch.stack(ys, 1)
        return self.out_proj(y * F.silu(z))


class Block(nn.Module):
    def __init__(self, d, norm, **kw):
        super().__init__()
        self.norm = norm(d)
        self.mixer = Mamba(d, **kw)

    def forward(self, h):
        return h + self.mixer(self.norm(h))


class MixerModel(nn.Module):
    """mamba_ssm/models/mixer_seq_simple.py MixerModel's names; hf=True: Hugging Face MambaModel's."""

    def __init__(self, d, n_layer, vocab, norm, hf=False, **kw):
        super().__init__()
        emb = nn.Embedding(vocab, d)
        if hf:
            self.embeddings = emb
        else:
            self.embedding = emb
        self.layers = nn.ModuleList([Block(d, norm, **kw) for _ in range(n_layer)])
        self.norm_f = norm(d)

    def forward(self, tokens):
        h = (self.embeddings if hasattr(self, "embeddings") else self.embedding)(tokens)
        for layer in self.layers:
            h = layer(h)
        return self.norm_f(h)


class MambaClassifier(nn.Module):
    def __init__(self, backbone, head_name, rows, d, pooling):
        super().__init__()
        self.backbone = backbone
        self.head_name = head_name
        self.pooling = pooling
        setattr(self, head_name, nn.Linear(d, rows))

    def forward(self, tokens, lengths):
        return head_logit(getattr(self, self.head_name)(pool(self.backbone(tokens), lengths, self.pooling)))


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log") or name.endswith(".D"):
                continue
            if "norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))


def logits_of(model, tokens, lengths):
    model.eval()
    with torch.no_grad():
        return model(tokens, lengths)


def main():
    torch.manual_seed(0)
    tokens, lengths, labels = make_data(1)
    d = 8

    # nn.TransformerEncoder classifier: embed, pos_encoder.pe, encoder.layers.*, encoder.norm, classifier [2, d]
    m = SinClassifier(d)
    randomize(m, 2)
    cfg = {"n_heads": 2, "norm_first": True, "activation": "gelu", "pooling": "mean"}
    write("tf_encoder_sin", m.state_dict(), cfg, logits_of(m, tokens, lengths), tokens, lengths, labels)

    # the tutorial's embedding(x) * sqrt(d_model): embed_scale
    m = SinClassifier(d, scale=math.sqrt(d))
    randomize(m, 3)
    cfg = dict(cfg, embed_scale=math.sqrt(d))
    write("tf_encoder_scaled", m.state_dict(), cfg, logits_of(m, tokens, lengths), tokens, lengths, labels,
          {"pending": "embed_scale other than 1 is not supported yet"})

    # learned positions under another name (pos_emb), post-norm, relu, no final norm, head `fc`
    m = LearnedClassifier(d)
    randomize(m, 4)
    cfg = {"n_heads": 2, "norm_first": False, "activation": "relu", "pooling": "last"}
    write("tf_encoder_learned", m.state_dict(), cfg, logits_of(m, tokens, lengths), tokens, lengths, labels)

    # mamba_ssm MixerModel as MambaLMHeadModel builds it (embedding padded to a multiple of 8) + head
    for name, rms in (("mamba_ssm_rms", True), ("mamba_ssm_layernorm", False)):
        norm = RMSNorm if rms else (lambda n: nn.LayerNorm(n, eps=1e-5))
        padded = 16
        m = MambaClassifier(MixerModel(d, 2, padded, norm, d_state=4), "head", 2 if rms else 1, d, "mean")
        randomize(m, 5 if rms else 6)
        cfg = {"d_model": d, "d_intermediate": 0, "n_layer": 2, "vocab_size": V, "ssm_cfg": {"d_state": 4},
               "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": rms, "residual_in_fp32": True,
               "fused_add_norm": True, "pad_vocab_size_multiple": 8, "tie_embeddings": True, "pooling": "mean"}
        note = None if rms else {"pending": "norm \"layer\" (LayerNorm Mamba) is not supported yet"}
        write(name, m.state_dict(), cfg, logits_of(m, tokens, lengths), tokens, lengths, labels, note)

    # Hugging Face MambaModel (backbone.embeddings, MambaRMSNorm) + a one-logit `classifier`
    m = MambaClassifier(MixerModel(d, 2, V, RMSNorm, hf=True, d_state=4, d_conv=3), "classifier", 1, d, "last")
    randomize(m, 7)
    cfg = {"model_type": "mamba", "architectures": ["MambaModel"], "hidden_size": d, "num_hidden_layers": 2,
           "state_size": 4, "conv_kernel": 3, "expand": 2, "time_step_rank": 1, "layer_norm_epsilon": 1e-5,
           "use_bias": False, "use_conv_bias": True, "vocab_size": V, "pad_token_id": 0, "bos_token_id": 0,
           "eos_token_id": 0, "hidden_act": "silu", "residual_in_fp32": True, "pooling": "last"}
    write("hf_mamba", m.state_dict(), cfg, logits_of(m, tokens, lengths), tokens, lengths, labels)


if __name__ == "__main__":
    main()
