"""Checkpoints saved by the REAL libraries, the way users save them (issue 17, design.md section 2).

Each directory under tests/fixtures/checkpoints/<name>/ holds exactly what a user has after training
and what they hand to `seqlens verify DIR DIR/data.h5 --logits DIR/logits.npy`:
  - the weights file as the library or torch.save wrote it (nothing renamed, nothing deleted),
  - config.json: the library's own config where it writes one, plus only the keys design.md 2.1
    says shapes cannot tell (Mamba: `pooling`; Transformer: n_heads, norm_first, activation,
    pooling, embed_scale),
  - data.h5 (design.md section 3; /families only in some, to cover both),
  - logits.npy: the model's own output on data.h5's tokens, in eval mode, float32, with np.save
    ([N] for a one-row head, [N, 2] for a two-row head: verify takes z1 - z0).
Weights are made non-trivial by a few Adam steps on a toy counting task.

Modules are the real ones: torch.nn.TransformerEncoder, mamba_ssm's MixerModel / MambaLMHeadModel
(mamba_ssm 2.x installed with MAMBA_SKIP_CUDA_BUILD=TRUE; its CPU slow path is used: the
selective_scan_cuda extension is stubbed out and the fused scan replaced by mamba_ssm's own
selective_scan_ref, causal_conv1d's kernel is absent so Mamba.forward uses its nn.Conv1d, and the
Triton RMSNorm's forward is mamba_ssm's rms_norm_ref) and Hugging Face transformers' MambaModel
(its pure-torch path on CPU).

mamba_ssm_pretrained: MambaLMHeadModel is a language model ([vocab, d] lm_head tied to the
embedding). A classifier user keeps the class for its save_pretrained and replaces the head:
MambaConfig(..., tie_embeddings=False), model.lm_head = nn.Linear(d, 2), trains on the lm_head
output at the last valid position, and calls model.save_pretrained(dir) (config.json =
MambaConfig.__dict__, pytorch_model.bin = torch.save(state_dict)); the vocab is padded to a
multiple of 8 as MambaLMHeadModel does. fused_add_norm=False because the fused Triton add+norm
needs a GPU; it changes no tensor name or value.

Mamba-2 (issue 20, group `mamba2`): mamba_ssm_mamba2_pretrained (MambaLMHeadModel with ssm_cfg {"layer": "Mamba2",
d_state 8, headdim 8, ngroups 2}, save_pretrained, lm_head replaced by Linear(d, 2)), mamba_ssm_mixer_mamba2 (a user
module on MixerModel with Mamba2 layers, LayerNorm blocks, D per channel, norm_before_gate, dt_limit, biases; model.pt
and a config.json of {pooling, d_state, norm_before_gate, dt_limit}), hf_mamba2 (Mamba2Model, n_groups 1,
safetensors) and hf_mamba2_g2_bin_f16 (n_groups 2, use_bias, time_step_limit (0, 0.3), F16 pytorch_model.bin).
Mamba2 runs its non-fused path here: use_mem_eff_path set False on the modules (not in the saved ssm_cfg), the
Triton chunked scan and gated norm replaced as in selfcheck_mamba2.py by mamba_ssm's own pure-torch
ssd_minimal_discrete and rms_norm_ref (group_size kept); transformers' Mamba2 uses its pure-torch functions.

Run from the repository root: python3 tests/reference/make_real_checkpoints.py [GROUP...] (groups: transformer,
mamba_ssm, hf, mamba2; none: all, then the layouts check)
"""
import json
import math
import os
import sys
import types

import h5py
import numpy as np
import torch
import torch.nn as nn

# ---- mamba_ssm on CPU: stub the CUDA extension before import, then route to the reference ops.
sys.modules.setdefault("selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
import mamba_ssm  # noqa: E402
import mamba_ssm.modules.mamba_simple as mamba_simple  # noqa: E402
from mamba_ssm.models.config_mamba import MambaConfig  # noqa: E402
from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel, MixerModel  # noqa: E402
from mamba_ssm.ops.selective_scan_interface import selective_scan_ref  # noqa: E402
from mamba_ssm.ops.triton import layer_norm as mamba_ln  # noqa: E402

assert mamba_simple.causal_conv1d_fn is None, "causal_conv1d kernel present: the slow path would not be used"
mamba_simple.selective_scan_fn = selective_scan_ref
mamba_ln.RMSNorm.forward = lambda self, x, residual=None, prenorm=False, residual_in_fp32=False: \
    mamba_ln.rms_norm_ref(x, self.weight, self.bias, residual=residual, eps=self.eps, prenorm=prenorm)

# transformers binds its Mamba kernels to mamba_ssm's CUDA ones when mamba_ssm imports; hidden from
# it while modeling_mamba loads, it binds its own pure-torch reference (what a CPU user runs).
_hidden = {k: sys.modules.get(k) for k in ("mamba_ssm", "causal_conv1d")}
sys.modules.update({k: None for k in _hidden})
import transformers  # noqa: E402
import transformers.models.mamba.modeling_mamba  # noqa: E402,F401
sys.modules.update(_hidden)
from safetensors.torch import save_file  # noqa: E402

OUT = "tests/fixtures/checkpoints"
V, L, N = 12, 10, 16


# ----------------------------------------------------------------------------- data

def make_data(n, seed):
    """Toy counting task: label 1 when token 1 occurs more often than token 2."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, L + 1, (n,), generator=g)
    tokens = torch.randint(1, V, (n, L), generator=g)
    for i in range(n):
        tokens[i, lengths[i]:] = 0
    labels = ((tokens == 1).sum(1) > (tokens == 2).sum(1)).long()
    return tokens, lengths, labels


def pool(h, lengths, mode):
    """design.md 2.4: mean over valid positions, last valid position, or position 0."""
    valid = (torch.arange(h.shape[1])[None, :] < lengths[:, None]).to(h.dtype)
    if mode == "mean":
        return (h * valid[..., None]).sum(1) / lengths[:, None].to(h.dtype)
    if mode == "last":
        return h[torch.arange(h.shape[0]), lengths - 1]
    return h[:, 0]


def logit(z):
    return z[:, 1] - z[:, 0] if z.dim() == 2 and z.shape[1] == 2 else z.reshape(-1)


def train(model, steps=30, seed=0):
    tokens, lengths, labels = make_data(64, 100 + seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(logit(model(tokens, lengths)), labels.float())
        loss.backward()
        opt.step()
    model.eval()


def write_data(d, tokens, lengths, labels, families):
    with h5py.File(os.path.join(d, "data.h5"), "w") as f:
        f.create_dataset("tokens", data=tokens.numpy().astype(np.int32))
        f.create_dataset("labels", data=labels.numpy().astype(np.int32))
        f.create_dataset("lengths", data=lengths.numpy().astype(np.int32))
        if families:
            f.create_dataset("families/names", data=np.array([b"one", b"two"]), dtype=h5py.string_dtype())
            of_token = np.full(V, -1, dtype=np.int32)
            of_token[1], of_token[2] = 0, 1
            f.create_dataset("families/of_token", data=of_token)


def finish(name, model, tokens, lengths, labels, families=False, config_extra=None):
    """data.h5 and logits.npy (the model's raw output, as a user would np.save it); the caller has
    written the weights and config.json the library's way. config_extra: keys the user adds."""
    d = os.path.join(OUT, name)
    write_data(d, tokens, lengths, labels, families)
    with torch.no_grad():
        out = model(tokens, lengths).float()
    np.save(os.path.join(d, "logits.npy"), out.numpy())
    if config_extra:
        path = os.path.join(d, "config.json")
        cfg = json.load(open(path)) if os.path.exists(path) else {}
        cfg.update(config_extra)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)


def outdir(name):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    return d


# ----------------------------------------------------------------------------- nn.TransformerEncoder

class PositionalEncoding(nn.Module):
    """The PyTorch tutorial's (sequence-first, pe buffer [max_len, 1, d])."""

    def __init__(self, d_model, dropout=0.1, max_len=256):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):
        return self.dropout(x + self.pe[: x.size(0)])


class TransformerClassifier(nn.Module):
    def __init__(self, ntoken, d_model=16, nhead=2, d_hid=32, nlayers=2, dropout=0.1):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(ntoken, d_model)
        self.pos_encoder = PositionalEncoding(d_model, dropout)
        layer = nn.TransformerEncoderLayer(d_model, nhead, d_hid, dropout)
        self.encoder = nn.TransformerEncoder(layer, nlayers, norm=nn.LayerNorm(d_model))
        self.classifier = nn.Linear(d_model, 2)

    def forward(self, tokens, lengths):
        x = self.embedding(tokens.t()) * math.sqrt(self.d_model)  # [L, B, d]
        x = self.pos_encoder(x)
        pad = torch.arange(tokens.shape[1])[None, :] >= lengths[:, None]
        h = self.encoder(x, src_key_padding_mask=pad).transpose(0, 1)
        return self.classifier(pool(h, lengths, "mean"))


def transformer_fixtures(tokens, lengths, labels):
    torch.manual_seed(1)
    model = TransformerClassifier(V)
    train(model, seed=1)
    cfg = {"n_heads": 2, "norm_first": False, "activation": "relu", "pooling": "mean",
           "embed_scale": math.sqrt(16)}

    d = outdir("tf_encoder_pt")
    torch.save(model.state_dict(), os.path.join(d, "model.pt"))
    finish("tf_encoder_pt", model, tokens, lengths, labels, families=True, config_extra=cfg)

    # The same model kept in bfloat16 (model.to(torch.bfloat16)); its logits are those of the saved
    # bf16 weights evaluated in float32, which is what seqlens computes after converting them.
    d = outdir("tf_encoder_pt_bf16")
    half = model.to(torch.bfloat16)
    torch.save(half.state_dict(), os.path.join(d, "model.pt"))
    finish("tf_encoder_pt_bf16", half.float(), tokens, lengths, labels, config_extra=cfg)


# ----------------------------------------------------------------------------- mamba_ssm

class MambaClassifier(nn.Module):
    """A user's classifier on mamba_ssm's MixerModel (rms_norm=False by default: LayerNorm Mamba)."""

    def __init__(self, d_model=8, n_layer=2, vocab_size=V):
        super().__init__()
        self.backbone = MixerModel(d_model=d_model, n_layer=n_layer, d_intermediate=0, vocab_size=vocab_size)
        self.head = nn.Linear(d_model, 1)

    def forward(self, tokens, lengths):
        return self.head(pool(self.backbone(tokens), lengths, "mean")).squeeze(-1)


class LastLogits(nn.Module):
    """How the MambaLMHeadModel user reads a class score: lm_head output at the last valid token."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, tokens, lengths):
        return pool(self.lm(tokens).logits, lengths, "last")


def mamba_ssm_fixtures(tokens, lengths, labels):
    torch.manual_seed(2)
    model = MambaClassifier()
    train(model, seed=2)
    d = outdir("mamba_ssm_mixer_ln")
    torch.save(model.state_dict(), os.path.join(d, "model.pt"))
    finish("mamba_ssm_mixer_ln", model, tokens, lengths, labels, families=True,
           config_extra={"pooling": "mean"})

    torch.manual_seed(3)
    config = MambaConfig(d_model=8, n_layer=2, vocab_size=V, ssm_cfg={"d_state": 4},
                         fused_add_norm=False, tie_embeddings=False)
    lm = MambaLMHeadModel(config)
    lm.lm_head = nn.Linear(8, 2)
    wrapped = LastLogits(lm)
    train(wrapped, seed=3)
    d = outdir("mamba_ssm_pretrained")
    lm.save_pretrained(d)
    finish("mamba_ssm_pretrained", wrapped, tokens, lengths, labels, config_extra={"pooling": "last"})


# ----------------------------------------------------------------------------- Hugging Face

class HFMambaClassifier(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.backbone = transformers.MambaModel(config)
        self.classifier = nn.Linear(config.hidden_size, 2)

    def forward(self, tokens, lengths):
        h = self.backbone(input_ids=tokens).last_hidden_state
        return self.classifier(pool(h, lengths, "mean"))


def hf_fixtures(tokens, lengths, labels):
    torch.manual_seed(4)
    config = transformers.MambaConfig(vocab_size=V, hidden_size=8, state_size=4, num_hidden_layers=2,
                                      conv_kernel=3, expand=2)
    model = HFMambaClassifier(config)
    train(model, seed=4)

    # save_pretrained's files: config.json (config.to_json_string) and model.safetensors of the
    # module's state_dict; the user adds "pooling".
    for name, fmt in (("hf_mamba", "safetensors"), ("hf_mamba_bin_f16", "bin")):
        d = outdir(name)
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(config.to_json_string())
        if fmt == "safetensors":
            save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                      os.path.join(d, "model.safetensors"))
            finish(name, model, tokens, lengths, labels, config_extra={"pooling": "mean"})
        else:  # kept in float16 and saved with torch.save as pytorch_model.bin
            half = HFMambaClassifier(config)
            half.load_state_dict(model.state_dict())
            half.half()
            torch.save(half.state_dict(), os.path.join(d, "pytorch_model.bin"))
            half.float().eval()
            finish(name, half, tokens, lengths, labels, config_extra={"pooling": "mean"})


# ----------------------------------------------------------------------------- Mamba-2 (issue 20)

def mamba2_libs():
    """mamba_ssm's Mamba2 and transformers' Mamba2 on this CPU, as selfcheck_mamba2.py sets them up:
    mamba_chunk_scan_combined (Triton) replaced by its contract around mamba_ssm's own pure-torch
    ssd_minimal_discrete, the gated norm through mamba_ssm's rms_norm_ref with its group_size, and
    transformers' modeling_mamba2 imported with mamba_ssm hidden (its pure-torch functions)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import selfcheck_mamba2
    return selfcheck_mamba2.libs()


def non_fused(backbone):
    """Mamba2.forward's non-fused path (use_mem_eff_path=False): the fused one is a Triton kernel.
    Set on the modules, not in ssm_cfg, so that the saved config is what a GPU user writes."""
    for layer in backbone.layers:
        layer.mixer.use_mem_eff_path = False
    return backbone


class Mamba2Classifier(nn.Module):
    """A user's classifier on mamba_ssm's MixerModel with Mamba2 layers (LayerNorm blocks)."""

    def __init__(self, ssm_cfg, d_model=8, n_layer=2, vocab_size=V):
        super().__init__()
        self.backbone = non_fused(MixerModel(d_model=d_model, n_layer=n_layer, d_intermediate=0, vocab_size=vocab_size,
                                             ssm_cfg=ssm_cfg))
        self.head = nn.Linear(d_model, 1)

    def forward(self, tokens, lengths):
        return self.head(pool(self.backbone(tokens), lengths, "mean")).squeeze(-1)


class HFMamba2Classifier(nn.Module):
    def __init__(self, config, pooling):
        super().__init__()
        self.backbone = transformers.Mamba2Model(config)
        self.classifier = nn.Linear(config.hidden_size, 2)
        self.pooling = pooling

    def forward(self, tokens, lengths):
        h = self.backbone(input_ids=tokens).last_hidden_state
        return self.classifier(pool(h, lengths, self.pooling))


def mamba2_fixtures(tokens, lengths, labels):
    mamba2_libs()

    # MambaLMHeadModel with Mamba2 layers, its lm_head a 2-class head, save_pretrained
    torch.manual_seed(5)
    config = MambaConfig(d_model=16, n_layer=2, vocab_size=V,
                         ssm_cfg={"layer": "Mamba2", "d_state": 8, "headdim": 8, "ngroups": 2},
                         fused_add_norm=False, tie_embeddings=False)
    lm = MambaLMHeadModel(config)
    non_fused(lm.backbone)
    lm.lm_head = nn.Linear(16, 2)
    wrapped = LastLogits(lm)
    train(wrapped, seed=5)
    d = outdir("mamba_ssm_mamba2_pretrained")
    lm.save_pretrained(d)
    finish("mamba_ssm_mamba2_pretrained", wrapped, tokens, lengths, labels, config_extra={"pooling": "last"})

    # MixerModel (LayerNorm blocks) in the user's own module, torch.save: config.json holds only what
    # the tensors cannot tell (pooling, d_state, and the block's norm_before_gate and dt_limit).
    torch.manual_seed(6)
    model = Mamba2Classifier({"layer": "Mamba2", "d_state": 4, "headdim": 4, "D_has_hdim": True,
                              "norm_before_gate": True, "dt_limit": (0.0, 0.2), "bias": True})
    train(model, seed=6)
    d = outdir("mamba_ssm_mixer_mamba2")
    torch.save(model.state_dict(), os.path.join(d, "model.pt"))
    finish("mamba_ssm_mixer_mamba2", model, tokens, lengths, labels, families=True,
           config_extra={"pooling": "mean", "d_state": 4, "norm_before_gate": True, "dt_limit": [0.0, 0.2]})

    # Hugging Face Mamba2Model + a classifier: ngroups 1 as safetensors; ngroups 2 with biases and a
    # time_step_limit, kept in float16 as pytorch_model.bin
    for name, seed, kwargs, pooling in (
            ("hf_mamba2", 7, {"n_groups": 1}, "mean"),
            ("hf_mamba2_g2_bin_f16", 8, {"n_groups": 2, "use_bias": True, "time_step_limit": (0.0, 0.3)}, "last")):
        torch.manual_seed(seed)
        config = transformers.Mamba2Config(vocab_size=V, hidden_size=16, state_size=8, num_hidden_layers=2, expand=2,
                                           head_dim=8, num_heads=4, conv_kernel=4, chunk_size=8, **kwargs)
        model = HFMamba2Classifier(config, pooling)
        train(model, seed=seed)
        d = outdir(name)
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(config.to_json_string())
        if name == "hf_mamba2":
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(d, "model.safetensors"))
            finish(name, model.eval(), tokens, lengths, labels, config_extra={"pooling": pooling})
        else:
            half = HFMamba2Classifier(config, pooling)
            half.load_state_dict(model.state_dict())
            half.half()
            torch.save(half.state_dict(), os.path.join(d, "pytorch_model.bin"))
            half.float().eval()
            finish(name, half, tokens, lengths, labels, config_extra={"pooling": pooling})


def check_layout_fixtures():
    """tests/fixtures/layouts/ was written (make_layout_fixtures.py) by a re-implementation of the
    Mamba block because mamba_ssm was not installed then: its saved weights, loaded strictly into
    the real MixerModel / Hugging Face MambaModel, must give its expected logits."""
    from safetensors.torch import load_file
    worst = 0.0
    for name in ("mamba_ssm_rms", "mamba_ssm_layernorm", "hf_mamba"):
        d = os.path.join("tests/fixtures/layouts", name)
        cfg = json.load(open(os.path.join(d, "config.json")))
        exp = json.load(open(os.path.join(d, "expected.json")))
        state = load_file(os.path.join(d, "model.safetensors"))
        head = [k for k in state if not k.startswith("backbone.")][0].split(".")[0]
        rows = state[head + ".weight"].shape[0]
        if name == "hf_mamba":
            backbone = transformers.MambaModel(transformers.MambaConfig(**{k: v for k, v in cfg.items() if k != "pooling"}))
            run = lambda t: backbone(input_ids=t).last_hidden_state  # noqa: E731
        else:
            vocab = state["backbone.embedding.weight"].shape[0]
            backbone = MixerModel(d_model=cfg["d_model"], n_layer=cfg["n_layer"], d_intermediate=0, vocab_size=vocab,
                                  ssm_cfg=cfg["ssm_cfg"], rms_norm=cfg["rms_norm"])
            run = backbone
        user = nn.Module()
        user.backbone = backbone
        setattr(user, head, nn.Linear(cfg.get("d_model", cfg.get("hidden_size")), rows))
        user.load_state_dict(state, strict=True)
        user.eval()
        tokens, lengths = torch.tensor(exp["tokens"]), torch.tensor(exp["lengths"])
        with torch.no_grad():
            got = logit(getattr(user, head)(pool(run(tokens), lengths, cfg["pooling"])))
        want = torch.tensor(exp["logits"])
        rel = ((got - want).abs().max() / want.abs().max()).item()
        print(f"layouts/{name}: real module vs the re-implementation's expected logits: {rel:.2e} relative")
        worst = max(worst, rel)
    assert worst < 1e-5, "tests/fixtures/layouts disagrees with the real modules"


def main():
    print("torch", torch.__version__, "mamba_ssm", mamba_ssm.__version__, "transformers", transformers.__version__)
    torch.use_deterministic_algorithms(True)
    tokens, lengths, labels = make_data(N, 1)
    # Groups named on the command line: only those (the other directories are left as they are).
    groups = {"transformer": transformer_fixtures, "mamba_ssm": mamba_ssm_fixtures, "hf": hf_fixtures,
              "mamba2": mamba2_fixtures}
    only = sys.argv[1:]
    if set(only) - set(groups):
        sys.exit(f"unknown groups {sorted(set(only) - set(groups))}; known: {sorted(groups)}")
    for name, make in groups.items():
        if not only or name in only:
            make(tokens, lengths, labels)
    if not only:
        check_layout_fixtures()


if __name__ == "__main__":
    main()
