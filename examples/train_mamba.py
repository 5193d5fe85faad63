"""Train a small mamba_ssm classifier and save it as seqlens reads it: as saved.

    bin/seqlens gym --task count --n 400 --len 64 -o data.h5
    python3 examples/train_mamba.py data.h5 out/mamba
    bin/seqlens info out/mamba
    bin/seqlens verify out/mamba data.h5 --logits out/mamba/logits.npy
    bin/seqlens eval out/mamba data.h5

The model is mamba_ssm's MixerModel (`backbone`, LayerNorm blocks: rms_norm=False is its default)
with a Linear(d, 1) head on the mean of the valid positions. Nothing is renamed for seqlens:
torch.save(model.state_dict()) plus a config.json with the one key the weights cannot tell.
Without a GPU, mamba_ssm's CUDA kernels are absent and its reference (slow) path is used:
the 60 default steps take a few minutes on a CPU (the loss is below 0.1 by step 50).
"""
import json
import os
import sys
import types

import h5py
import numpy as np
import torch
import torch.nn as nn


def import_mixer_model():
    """mamba_ssm's MixerModel; on a CPU-only machine, with its pure-PyTorch reference ops."""
    cpu = not torch.cuda.is_available()
    if cpu:  # a CPU build (MAMBA_SKIP_CUDA_BUILD=TRUE) has no selective_scan_cuda extension
        sys.modules.setdefault("selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
    try:
        from mamba_ssm.models.mixer_seq_simple import MixerModel
    except ImportError as e:
        sys.exit(f"mamba_ssm is not installed ({e}). Install it with\n"
                 "  pip install mamba-ssm causal-conv1d            (GPU)\n"
                 "  MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE MAMBA_SKIP_CUDA_BUILD=TRUE "
                 "CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE pip install --no-build-isolation mamba-ssm causal-conv1d"
                 "   (CPU)")
    if cpu:
        import mamba_ssm.modules.mamba_simple as mamba_simple
        from mamba_ssm.ops.selective_scan_interface import selective_scan_ref
        mamba_simple.selective_scan_fn = selective_scan_ref
        mamba_simple.causal_conv1d_fn = None  # Mamba.forward then uses its nn.Conv1d
    return MixerModel


class Classifier(nn.Module):
    def __init__(self, MixerModel, vocab_size, d_model=32, n_layer=2):
        super().__init__()
        self.backbone = MixerModel(d_model=d_model, n_layer=n_layer, d_intermediate=0,
                                   vocab_size=vocab_size, ssm_cfg={"d_state": 8})
        self.head = nn.Linear(d_model, 1)

    def forward(self, tokens, lengths):  # tokens [B, L], right-padded
        h = self.backbone(tokens)  # causal: padding on the right leaves valid positions alone
        valid = (torch.arange(tokens.shape[1])[None, :] < lengths[:, None]).float().unsqueeze(-1)
        pooled = (h * valid).sum(1) / valid.sum(1)  # mean over valid positions
        return self.head(pooled).squeeze(-1)  # [B]


def load(path):
    with h5py.File(path, "r") as f:
        tokens = torch.from_numpy(f["tokens"][:].astype(np.int64))
        labels = torch.from_numpy(f["labels"][:].astype(np.int64))
        if "lengths" in f:
            lengths = torch.from_numpy(f["lengths"][:].astype(np.int64))
        else:  # design.md 3: a sequence ends after its last non-pad token
            lengths = (tokens != 0).long().cumsum(1).argmax(1) + 1
        vocab = len(f["families/of_token"]) if "families/of_token" in f else int(tokens.max()) + 1
    return tokens, lengths, labels, vocab


def main(data, out, steps=60):
    torch.manual_seed(0)
    tokens, lengths, labels, vocab = load(data)
    model = Classifier(import_mixer_model(), vocab)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(tokens), (32,))
        loss = nn.functional.binary_cross_entropy_with_logits(model(tokens[idx], lengths[idx]), labels[idx].float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 20 == 0:
            print(f"step {step}: loss {loss.item():.3f}")

    os.makedirs(out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(out, "model.pt"))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"pooling": "mean"}, f, indent=2)

    # The logits `seqlens verify` compares with its own: eval mode, float32.
    model.eval()
    with torch.no_grad():
        logits = model(tokens, lengths)
    np.save(os.path.join(out, "logits.npy"), logits.numpy())
    acc = ((logits > 0).long() == labels).float().mean().item()
    print(f"saved {out}/model.pt, config.json, logits.npy (training accuracy {acc:.3f})")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python3 examples/train_mamba.py DATA.h5 OUTDIR [STEPS]")
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
