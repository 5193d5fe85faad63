"""Train a small nn.TransformerEncoder classifier and save it as seqlens reads it: as saved.

    bin/seqlens gym --task count --n 400 --len 64 -o data.h5
    python3 examples/train_transformer.py data.h5 out/tf
    bin/seqlens info out/tf
    bin/seqlens verify out/tf data.h5 --logits out/tf/logits.npy
    bin/seqlens eval out/tf data.h5

The model is the PyTorch tutorial's shape (embedding * sqrt(d_model), a sinusoidal `pe` buffer,
nn.TransformerEncoder with a final LayerNorm) with a Linear(d, 2) classifier on the mean of the
valid positions. Nothing is renamed for seqlens: torch.save(model.state_dict()) plus a config.json
with the five keys the weights cannot tell (design.md 2.1).
"""
import json
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.1, max_len=512):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):  # [L, B, d]
        return self.dropout(x + self.pe[: x.size(0)])


class Classifier(nn.Module):
    def __init__(self, vocab_size, d_model=32, nhead=4, d_hid=64, nlayers=2, dropout=0.1):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.pos_encoder = PositionalEncoding(d_model, dropout)
        layer = nn.TransformerEncoderLayer(d_model, nhead, d_hid, dropout)
        self.encoder = nn.TransformerEncoder(layer, nlayers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.classifier = nn.Linear(d_model, 2)

    def forward(self, tokens, lengths):  # tokens [B, L], right-padded
        pad = torch.arange(tokens.shape[1])[None, :] >= lengths[:, None]
        x = self.pos_encoder(self.embedding(tokens.t()) * math.sqrt(self.d_model))
        h = self.encoder(x, src_key_padding_mask=pad).transpose(0, 1)  # [B, L, d]
        valid = (~pad).float().unsqueeze(-1)
        pooled = (h * valid).sum(1) / valid.sum(1)  # mean over valid positions
        return self.classifier(pooled)  # [B, 2]


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


def main(data, out, steps=300):
    torch.manual_seed(0)
    tokens, lengths, labels, vocab = load(data)
    model = Classifier(vocab)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(tokens), (32,))
        loss = nn.functional.cross_entropy(model(tokens[idx], lengths[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"step {step}: loss {loss.item():.3f}")

    os.makedirs(out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(out, "model.pt"))
    config = {"n_heads": 4, "norm_first": False, "activation": "relu", "pooling": "mean",
              "embed_scale": math.sqrt(model.d_model)}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    # The logits `seqlens verify` compares with its own: eval mode, float32.
    model.eval()
    with torch.no_grad():
        logits = model(tokens, lengths)
    np.save(os.path.join(out, "logits.npy"), logits.numpy())
    acc = (logits.argmax(1) == labels).float().mean().item()
    print(f"saved {out}/model.pt, config.json, logits.npy (training accuracy {acc:.3f})")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python3 examples/train_transformer.py DATA.h5 OUTDIR [STEPS]")
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
