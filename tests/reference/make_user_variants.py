"""More checkpoints saved the way users write their models (issue 17, second pass: design.md 2.0-2.4).

make_real_checkpoints.py covers the table of issue 17; this script saves the variants people write
next to it, each into OUT/<name>/ in the same form (weights as saved, config.json with only what
design.md 2.1 requires, data.h5, logits.npy of the model's own output in eval mode):

Transformer (torch.nn.TransformerEncoder, real layers):
  tf_prenorm_gelu_learned   norm_first, gelu, batch_first, final norm, d_ff 24, learned positions
                            nn.Embedding named `position_embeddings`, Linear(d, 1) head, pooling last
  tf_seqfirst_nofinal_cls   batch_first=False, no final norm, the tutorial's PositionalEncoding kept
                            batch-first ([1, max_len, d] buffer), embed_scale sqrt(d), cls pooling
  tf_nobias                 bias=False everywhere (TransformerEncoderLayer(bias=False), torch >= 2.1),
                            its LayerNorms without bias, head without bias
  tf_seq_head               classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(d, 2))
  tf_half_pth               model.half(), saved as `classifier.pth`
  tf_dataparallel           nn.DataParallel's `module.` prefix (the state_dict of the wrapper)
  tf_compiled               torch.compile's `_orig_mod.` prefix
  tf_causal_eps             causal mask, layer_norm_eps 1e-6, relu, d_ff 40
  tf_cuda_saved             tensors whose storages say location 'cuda:0' (a GPU user's save)
  tf_bf16_safetensors       bf16 weights via safetensors.torch.save_file
Mamba (mamba_ssm, real modules; CPU slow path as in make_real_checkpoints.py):
  mamba_ssm_rms_fp32res     MixerModel rms_norm=True, residual_in_fp32, d_state 8, d_conv 3, expand 3,
                            dt_rank 3, conv_bias False, bias True
  mamba_ssm_pretrained_fused MambaLMHeadModel(fused_add_norm=True, rms_norm=True, residual_in_fp32)
                            saved config as a GPU user has it, ssm_cfg d_state 4 d_conv 2 expand 4
  mamba_ssm_mamba2_ln_d2    MixerModel with Mamba2 layers, rms_norm False, d_conv 2, expand 3, headdim 4,
                            d_state 6, ngroups 3 (config.json gives d_state)
Hugging Face (transformers' own PreTrainedModel.save_pretrained of a classifier subclass):
  hf_mamba_pretrained       MambaPreTrainedModel subclass, save_pretrained (safetensors),
                            use_conv_bias False, use_bias True, time_step_rank 3, layer_norm_epsilon 1e-6
  hf_mamba_pretrained_bin   the same with safe_serialization=False, which transformers 5.24 ignores: it
                            writes model.safetensors all the same (a pytorch_model.bin as HF's older
                            versions wrote it: checkpoints/hf_mamba_bin_f16, make_real_checkpoints.py)
  hf_mamba2_pretrained      Mamba2PreTrainedModel subclass, save_pretrained, n_groups 2
  tf_training_checkpoint    PyTorch's tutorial's general checkpoint: torch.save({"epoch", "model_state_dict",
                            "optimizer_state_dict" (Adam), "loss"}, "checkpoint.pth")
Refused, exit 2 with one line (OUT_REFUSED/<name>/): whole_module (torch.save(model): pickles the class),
legacy (_use_new_zipfile_serialization=False), hf_mamba_sharded (save_pretrained with a small
max_shard_size: model.safetensors.index.json + two shards; seqlens reads one weights file);
group `refused`: int64_position_ids (a persistent int64 buffer beside learned positions), three_class_head
(Linear(d, 3): seqlens reads binary classifiers), mixer_mlp (MixerModel with d_intermediate > 0).

Run from the repository root (about 4 min on a shared CPU):
  python3 tests/reference/make_user_variants.py tests/fixtures/user_checkpoints tests/fixtures/user_checkpoints_refused [GROUP...]
(groups: transformer, mamba, hf, refused; none: all)
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_real_checkpoints as mrc  # noqa: E402  (stubs mamba_ssm's CUDA imports)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

transformers = mrc.transformers
V, L, N = mrc.V, mrc.L, mrc.N
pool = mrc.pool


def outdir(root, name):
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    return d


def finish(root, name, model, data, config_extra=None, families=False):
    mrc.OUT = root
    mrc.finish(name, model, *data, families=families, config_extra=config_extra)


def sd(model):
    return {k: v.contiguous() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------- Transformer

class TF(nn.Module):
    """A user's encoder classifier; the options are the ways people write one."""

    def __init__(self, d=8, nhead=2, d_ff=16, nlayers=2, norm_first=False, activation="relu", batch_first=True,
                 final_norm=True, pos="none", embed_scale=1.0, pooling="mean", head_rows=2, bias=True,
                 seq_head=False, causal=False, eps=1e-5, max_len=16):
        super().__init__()
        self.d, self.batch_first, self.pos, self.embed_scale = d, batch_first, pos, embed_scale
        self.pooling, self.causal = pooling, causal
        self.tok = nn.Embedding(V, d)
        if pos == "learned":
            self.position_embeddings = nn.Embedding(max_len, d)
        elif pos == "sin_bf":
            position = torch.arange(max_len).unsqueeze(1)
            div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
            pe = torch.zeros(1, max_len, d)
            pe[0, :, 0::2] = torch.sin(position * div)
            pe[0, :, 1::2] = torch.cos(position * div)
            self.register_buffer("pe", pe)
        kw = {} if bias else {"bias": False}
        layer = nn.TransformerEncoderLayer(d, nhead, d_ff, 0.1, activation=activation, batch_first=batch_first,
                                           norm_first=norm_first, layer_norm_eps=eps, **kw)
        norm = nn.LayerNorm(d, eps=eps, **kw) if final_norm else None
        self.encoder = nn.TransformerEncoder(layer, nlayers, norm=norm, enable_nested_tensor=False)
        lin = nn.Linear(d, head_rows, bias=bias)
        self.classifier = nn.Sequential(nn.Dropout(0.1), lin) if seq_head else lin

    def forward(self, tokens, lengths):
        x = self.tok(tokens) * self.embed_scale
        n, l = tokens.shape
        if self.pos == "learned":
            x = x + self.position_embeddings(torch.arange(l))[None]
        elif self.pos == "sin_bf":
            x = x + self.pe[:, :l]
        pad = torch.arange(l)[None, :] >= lengths[:, None]
        mask = nn.Transformer.generate_square_subsequent_mask(l) if self.causal else None
        if self.batch_first:
            h = self.encoder(x, mask=mask, src_key_padding_mask=pad, is_causal=self.causal)
        else:
            h = self.encoder(x.transpose(0, 1), mask=mask, src_key_padding_mask=pad, is_causal=self.causal).transpose(0, 1)
        z = self.classifier(pool(h, lengths, self.pooling))
        return z.squeeze(-1) if z.shape[-1] == 1 else z


def tf_cfg(m, norm_first, activation):
    c = {"n_heads": 2, "norm_first": norm_first, "activation": activation, "pooling": m.pooling}
    if m.embed_scale != 1.0:
        c["embed_scale"] = m.embed_scale
    if m.causal:
        c["causal"] = True
    if m.pos == "none":
        c["positional"] = "none"  # design.md 2.1: shapes cannot tell "none" from "rope"
    return c


def transformer_variants(root, refused, data):
    def make(seed, **kw):
        torch.manual_seed(seed)
        m = TF(**kw)
        mrc.train(m, seed=seed)
        return m

    m = make(11, norm_first=True, activation="gelu", d_ff=24, pos="learned", pooling="last", head_rows=1)
    d = outdir(root, "tf_prenorm_gelu_learned")
    torch.save(m.state_dict(), os.path.join(d, "model.pt"))
    finish(root, "tf_prenorm_gelu_learned", m, data, tf_cfg(m, True, "gelu"))

    m = make(12, batch_first=False, final_norm=False, pos="sin_bf", embed_scale=math.sqrt(8), pooling="cls")
    d = outdir(root, "tf_seqfirst_nofinal_cls")
    torch.save(m.state_dict(), os.path.join(d, "model.pt"))
    finish(root, "tf_seqfirst_nofinal_cls", m, data, tf_cfg(m, False, "relu"))

    m = make(13, bias=False, norm_first=True, activation="gelu")
    d = outdir(root, "tf_nobias")
    torch.save(m.state_dict(), os.path.join(d, "model.pt"))
    finish(root, "tf_nobias", m, data, tf_cfg(m, True, "gelu"))

    m = make(14, seq_head=True)
    d = outdir(root, "tf_seq_head")
    torch.save(m.state_dict(), os.path.join(d, "model.pt"))
    finish(root, "tf_seq_head", m, data, tf_cfg(m, False, "relu"))

    m = make(15, pos="learned", activation="gelu")
    d = outdir(root, "tf_half_pth")
    m.half()
    torch.save(m.state_dict(), os.path.join(d, "classifier.pth"))
    finish(root, "tf_half_pth", m.float(), data, tf_cfg(m, False, "gelu"))

    m = make(16)
    d = outdir(root, "tf_dataparallel")
    torch.save(nn.DataParallel(m).state_dict(), os.path.join(d, "model.pt"))
    finish(root, "tf_dataparallel", m, data, tf_cfg(m, False, "relu"))

    m = make(17)
    d = outdir(root, "tf_compiled")
    torch.save(torch.compile(m).state_dict(), os.path.join(d, "model.pt"))
    finish(root, "tf_compiled", m, data, tf_cfg(m, False, "relu"))

    m = make(18, causal=True, eps=1e-6, d_ff=40, pooling="last")
    d = outdir(root, "tf_causal_eps")
    torch.save(m.state_dict(), os.path.join(d, "model.pt"))
    cfg = tf_cfg(m, False, "relu")
    cfg["layer_norm_eps"] = 1e-6
    finish(root, "tf_causal_eps", m, data, cfg)

    # A GPU user's save: every storage's location is 'cuda:0' in data.pkl.
    m = make(19, norm_first=True)
    d = outdir(root, "tf_cuda_saved")
    tag = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(m.state_dict(), os.path.join(d, "model.pt"))
    finally:
        torch.serialization.location_tag = tag
    assert b"cuda:0" in open(os.path.join(d, "model.pt"), "rb").read()
    finish(root, "tf_cuda_saved", m, data, tf_cfg(m, True, "relu"))

    m = make(20, pos="learned").to(torch.bfloat16)
    d = outdir(root, "tf_bf16_safetensors")
    save_file(sd(m), os.path.join(d, "model.safetensors"))
    finish(root, "tf_bf16_safetensors", m.float(), data, tf_cfg(m, False, "relu"))

    # Refused: the whole module (pickled class), the legacy format, a training checkpoint dict.
    m = make(21)
    d = outdir(refused, "whole_module")
    torch.save(m, os.path.join(d, "model.pt"))
    json.dump(tf_cfg(m, False, "relu"), open(os.path.join(d, "config.json"), "w"))
    d = outdir(refused, "legacy")
    torch.save(m.state_dict(), os.path.join(d, "model.pt"), _use_new_zipfile_serialization=False)
    json.dump(tf_cfg(m, False, "relu"), open(os.path.join(d, "config.json"), "w"))

    # PyTorch's tutorial "Saving and loading a general checkpoint": the state_dict inside a dict with
    # the epoch, the optimizer's state_dict and the loss (read: the one entry that is a state_dict).
    torch.manual_seed(22)
    m = TF(pos="learned", norm_first=True)
    tokens, lengths, labels = mrc.make_data(64, 122)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    m.train()
    for epoch in range(30):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(mrc.logit(m(tokens, lengths)), labels.float())
        loss.backward()
        opt.step()
    m.eval()
    d = outdir(root, "tf_training_checkpoint")
    torch.save({"epoch": epoch, "model_state_dict": m.state_dict(), "optimizer_state_dict": opt.state_dict(),
                "loss": loss.item()}, os.path.join(d, "checkpoint.pth"))
    finish(root, "tf_training_checkpoint", m, data, tf_cfg(m, True, "relu"))


# ----------------------------------------------------------------------------- mamba_ssm

class MixerClassifier(nn.Module):
    def __init__(self, ssm_cfg, rms_norm, residual_in_fp32, d_model=8, pooling="mean"):
        super().__init__()
        self.backbone = mrc.MixerModel(d_model=d_model, n_layer=2, d_intermediate=0, vocab_size=V, ssm_cfg=ssm_cfg,
                                       rms_norm=rms_norm, residual_in_fp32=residual_in_fp32)
        self.head = nn.Linear(d_model, 2)
        self.pooling = pooling

    def forward(self, tokens, lengths):
        return self.head(pool(self.backbone(tokens), lengths, self.pooling))


def mamba_variants(root, refused, data):
    torch.manual_seed(31)
    m = MixerClassifier({"d_state": 8, "d_conv": 3, "expand": 3, "dt_rank": 3, "conv_bias": False, "bias": True},
                        rms_norm=True, residual_in_fp32=True, pooling="last")
    mrc.train(m, seed=31)
    d = outdir(root, "mamba_ssm_rms_fp32res")
    torch.save(m.state_dict(), os.path.join(d, "model.pt"))
    finish(root, "mamba_ssm_rms_fp32res", m, data, {"pooling": "last"})

    # A GPU user's MambaLMHeadModel: fused_add_norm True in the saved config (the default of
    # MambaConfig); run here with the unfused path, which computes the same function.
    torch.manual_seed(32)
    config = mrc.MambaConfig(d_model=8, n_layer=2, vocab_size=V, ssm_cfg={"d_state": 4, "d_conv": 2, "expand": 4},
                             rms_norm=True, residual_in_fp32=True, fused_add_norm=True, tie_embeddings=False)
    lm = mrc.MambaLMHeadModel(config)
    lm.backbone.fused_add_norm = False
    for layer in lm.backbone.layers:
        layer.fused_add_norm = False
    lm.lm_head = nn.Linear(8, 2)
    wrapped = mrc.LastLogits(lm)
    mrc.train(wrapped, seed=32)
    d = outdir(root, "mamba_ssm_pretrained_fused")
    lm.save_pretrained(d)
    assert json.load(open(os.path.join(d, "config.json")))["fused_add_norm"] is True
    finish(root, "mamba_ssm_pretrained_fused", wrapped, data, {"pooling": "last"})

    mrc.mamba2_libs()
    torch.manual_seed(33)
    m = MixerClassifier({"layer": "Mamba2", "d_state": 6, "d_conv": 2, "expand": 3, "headdim": 4, "ngroups": 3},
                        rms_norm=False, residual_in_fp32=False)
    mrc.non_fused(m.backbone)
    mrc.train(m, seed=33)
    d = outdir(root, "mamba_ssm_mamba2_ln_d2")
    torch.save(m.state_dict(), os.path.join(d, "model.pt"))
    finish(root, "mamba_ssm_mamba2_ln_d2", m, data, {"pooling": "mean", "d_state": 6})


# ----------------------------------------------------------------------------- Hugging Face

def hf_classes():
    class HFMambaForClassification(transformers.MambaPreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.backbone = transformers.MambaModel(config)
            self.score = nn.Linear(config.hidden_size, 2)
            self.post_init()

        def forward(self, tokens, lengths):
            h = self.backbone(input_ids=tokens).last_hidden_state
            return self.score(pool(h, lengths, "mean"))

    class HFMamba2ForClassification(transformers.Mamba2PreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.backbone = transformers.Mamba2Model(config)
            self.score = nn.Linear(config.hidden_size, 1)
            self.post_init()

        def forward(self, tokens, lengths):
            h = self.backbone(input_ids=tokens).last_hidden_state
            return self.score(pool(h, lengths, "last")).squeeze(-1)

    return HFMambaForClassification, HFMamba2ForClassification


def hf_variants(root, refused, data):
    mrc.mamba2_libs()
    Mamba, Mamba2 = hf_classes()
    torch.manual_seed(41)
    config = transformers.MambaConfig(vocab_size=V, hidden_size=8, state_size=4, num_hidden_layers=2, conv_kernel=3,
                                      expand=2, use_conv_bias=False, use_bias=True, time_step_rank=3,
                                      layer_norm_epsilon=1e-6)
    m = Mamba(config)
    mrc.train(m, seed=41)
    d = outdir(root, "hf_mamba_pretrained")
    m.save_pretrained(d)
    finish(root, "hf_mamba_pretrained", m, data, {"pooling": "mean"})
    d = outdir(root, "hf_mamba_pretrained_bin")
    m.save_pretrained(d, safe_serialization=False)
    finish(root, "hf_mamba_pretrained_bin", m, data, {"pooling": "mean"})
    d = outdir(refused, "hf_mamba_sharded")
    m.save_pretrained(d, max_shard_size="4KB")
    finish(refused, "hf_mamba_sharded", m, data, {"pooling": "mean"})

    torch.manual_seed(42)
    config = transformers.Mamba2Config(vocab_size=V, hidden_size=16, state_size=4, num_hidden_layers=2, expand=2,
                                       head_dim=8, num_heads=4, conv_kernel=3, chunk_size=8, n_groups=2)
    m = Mamba2(config)
    mrc.train(m, seed=42)
    d = outdir(root, "hf_mamba2_pretrained")
    m.save_pretrained(d)
    finish(root, "hf_mamba2_pretrained", m, data, {"pooling": "last"})


class PosIdsTF(TF):
    """HF-style: learned positions with a persistent int64 `position_ids` buffer beside them."""

    def __init__(self):
        super().__init__(pos="learned")
        self.register_buffer("position_ids", torch.arange(16).expand((1, -1)))


class MixerMLP(nn.Module):
    """mamba_ssm's MixerModel with d_intermediate > 0: an MLP (norm2, mlp.fc1/fc2) after each mixer."""

    def __init__(self):
        super().__init__()
        self.backbone = mrc.MixerModel(d_model=8, n_layer=2, d_intermediate=16, vocab_size=V)
        self.head = nn.Linear(8, 1)


def refused_variants(root, refused, data):
    """Saved as users save them, but outside design.md: refused with one line naming the tensor."""
    torch.manual_seed(51)
    for name, m, cfg in (
            ("int64_position_ids", PosIdsTF(), {"n_heads": 2, "norm_first": False, "activation": "relu", "pooling": "mean"}),
            ("three_class_head", TF(head_rows=3),
             {"n_heads": 2, "norm_first": False, "activation": "relu", "pooling": "mean", "positional": "none"}),
            ("mixer_mlp", MixerMLP(), {"pooling": "mean"})):
        d = outdir(refused, name)
        torch.save(m.state_dict(), os.path.join(d, "model.pt"))
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))


def main():
    root, refused = sys.argv[1], sys.argv[2]
    torch.use_deterministic_algorithms(True)
    data = mrc.make_data(N, 1)
    groups = {"transformer": transformer_variants, "mamba": mamba_variants, "hf": hf_variants,
              "refused": refused_variants}
    only = sys.argv[3:]
    for name, make in groups.items():
        if not only or name in only:
            make(root, refused, data)


if __name__ == "__main__":
    main()
