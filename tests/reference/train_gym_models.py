"""Train five tiny models on `seqlens gym` data and write them under tests/trained/ (design.md §2, §3).

Run from anywhere (needs bin/seqlens; `make` first):  python3 tests/reference/train_gym_models.py

The models are real, trained checkpoints with a known planted truth, so the analysis commands can be
tested on something less arbitrary than random weights:
  tf_count     Transformer, no positional term, mean pooling: a bag-of-tokens model by construction
  tf_order     Transformer, rope, mean pooling: must read token order
  mamba_count  Mamba, mean pooling
  mamba_order  Mamba, last pooling: a causal model reading order
  mamba2_count Mamba-2 (headdim 8, 4 heads, d_state 8, one group), mean pooling
`--only NAME,...` trains only those (the others' files are left as they are).
The training modules below are float32 torch re-statements of seqlens_ref.py, with parameter names
equal to the safetensors names, so `state_dict()` is saved as is.  After training, every model is
re-read from disk and run through seqlens_ref.run (float64); its logits must match the training
module's to 1e-4 relative, and every number printed is computed from those float64 logits.
Finally `bin/seqlens eval` is run on each saved model and its AUC must match Python's to 1e-4.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from sklearn.metrics import roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import seqlens_ref as ref  # noqa: E402

SEQLENS = os.path.join(ROOT, "bin", "seqlens")
OUT = os.path.join(ROOT, "tests", "trained")
VOCAB, LEN = 48, 64

COMMON = {"vocab_size": VOCAB, "d_model": 16, "n_layers": 2, "pad_token_id": 0}
TRANSFORMER = dict(COMMON, arch="transformer", n_heads=2, d_ff=32, norm_first=True, activation="gelu",
                   positional="none", max_len=LEN, rope_base=10000, final_norm=True, layer_norm_eps=1e-5,
                   causal=False, pooling="mean")
MAMBA = dict(COMMON, arch="mamba", d_state=8, d_conv=4, expand=2, dt_rank=1, norm_eps=1e-5, pooling="mean")
MAMBA2 = dict(COMMON, arch="mamba2", d_state=8, d_conv=4, expand=2, headdim=8, ngroups=1, norm_eps=1e-5,
              pooling="mean")

# name, task, config, training settings.  Short fixed schedules (about 3 minutes in all on 2 cores) that
# reach the Bayes-optimal AUC within a few epochs.  tf_order uses rope rather than learned positions:
# with learned positions it needed ~9 epochs to reach 0.994 validation AUC, with rope 2 epochs for 1.0.
MODELS = [
    ("tf_count", "count", dict(TRANSFORMER), {"seed": 1, "epochs": 3, "lr": 3e-3, "batch": 64}),
    ("tf_order", "order", dict(TRANSFORMER, positional="rope"), {"seed": 2, "epochs": 4, "lr": 3e-3, "batch": 64}),
    ("mamba_count", "count", dict(MAMBA), {"seed": 3, "epochs": 4, "lr": 1e-2, "batch": 128}),
    ("mamba_order", "order", dict(MAMBA, pooling="last"), {"seed": 4, "epochs": 4, "lr": 1e-2, "batch": 128}),
    ("mamba2_count", "count", dict(MAMBA2), {"seed": 5, "epochs": 4, "lr": 1e-2, "batch": 128}),
]
TRAIN = {"n": 6000, "seed": 11}
TEST = {"n": 400, "seed": 12}
VALID = 600      # the last examples of the training file, held out to follow training (the test set is not)


# ----------------------------------------------------------------------------- data

def gym(task, n, seed, path):
    subprocess.run([SEQLENS, "gym", "--task", task, "--n", str(n), "--len", str(LEN), "--seed", str(seed),
                    "--noise", "0.0", "-o", path], check=True, stdout=subprocess.DEVNULL)


def load(path):
    """tokens [N,L] long, lengths [N] long, labels [N] float, file attributes."""
    with h5py.File(path, "r") as f:
        tokens = torch.from_numpy(f["tokens"][...].astype(np.int64))
        lengths = torch.from_numpy(f["lengths"][...].astype(np.int64))
        labels = torch.from_numpy(f["labels"][...].astype(np.float32))
        attrs = {k: (v.decode() if isinstance(v, bytes) else v.item()) for k, v in f.attrs.items()}
        names = [s.decode() if isinstance(s, bytes) else s for s in f["families/names"][...]]
        of_token = f["families/of_token"][...]
    return {"tokens": tokens, "lengths": lengths, "labels": labels, "attrs": attrs,
            "families": names, "of_token": of_token}


def take(data, rows):
    return {k: (v[rows] if k in ("tokens", "lengths", "labels") else v) for k, v in data.items()}


# ----------------------------------------------------------------------------- training modules
# Same formulas as seqlens_ref.py, float32, batched; attribute names = safetensors names.

def pool(h, lengths, mode):
    valid = (torch.arange(h.shape[1])[None, :] < lengths[:, None]).to(h.dtype)[..., None]
    if mode == "mean":
        return (h * valid).sum(1) / lengths[:, None].to(h.dtype)
    return h[torch.arange(h.shape[0]), lengths - 1]  # last


class SelfAttention(nn.Module):
    """nn.MultiheadAttention's parameter layout; keys >= length masked out; optional rope."""

    def __init__(self, d, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d))
        self.out_proj = nn.Linear(d, d)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x, lengths, config):
        N, L, d = x.shape
        H = self.n_heads
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = (t.reshape(N, L, H, d // H).transpose(1, 2) for t in qkv.split(d, dim=-1))
        if config["positional"] == "rope":
            q, k = rope(q, config["rope_base"]), rope(k, config["rope_base"])
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // H)
        allowed = (torch.arange(L)[None, :] < lengths[:, None])[:, None, None, :]
        if config["causal"]:
            allowed = allowed & torch.ones(L, L, dtype=torch.bool).tril()
        pattern = torch.softmax(scores.masked_fill(~allowed, -math.inf), dim=-1)
        return self.out_proj((pattern @ v).transpose(1, 2).reshape(N, L, d))


def rope(x, base):
    L, dh = x.shape[-2], x.shape[-1]
    half = dh // 2
    angle = torch.arange(L, dtype=torch.float32)[:, None] * base ** (-2.0 * torch.arange(half) / dh)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * angle.cos() - x2 * angle.sin(), x2 * angle.cos() + x1 * angle.sin()], dim=-1)


class TransformerLayer(nn.Module):
    """nn.TransformerEncoderLayer's names (self_attn, linear1/2, norm1/2); dropout-free."""

    def __init__(self, config):
        super().__init__()
        d, eps = config["d_model"], config["layer_norm_eps"]
        self.self_attn = SelfAttention(d, config["n_heads"])
        self.linear1, self.linear2 = nn.Linear(d, config["d_ff"]), nn.Linear(config["d_ff"], d)
        self.norm1, self.norm2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.act = F.gelu if config["activation"] == "gelu" else F.relu

    def forward(self, h, lengths, config):
        ff = lambda x: self.linear2(self.act(self.linear1(x)))  # noqa: E731
        if config["norm_first"]:
            h = h + self.self_attn(self.norm1(h), lengths, config)
            return h + ff(self.norm2(h))
        h = self.norm1(h + self.self_attn(h, lengths, config))
        return self.norm2(h + ff(h))


class Transformer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        d = config["d_model"]
        self.embedding = nn.Embedding(config["vocab_size"], d)
        if config["positional"] == "learned":
            self.pos_embedding = nn.Embedding(config["max_len"], d)
            nn.init.normal_(self.pos_embedding.weight, std=0.5)
        self.layers = nn.ModuleList(TransformerLayer(config) for _ in range(config["n_layers"]))
        if config["final_norm"]:
            self.norm = nn.LayerNorm(d, eps=config["layer_norm_eps"])
        self.head = nn.Linear(d, 1)

    def forward(self, tokens, lengths):
        h = self.embedding(tokens)
        if self.config["positional"] == "learned":
            h = h + self.pos_embedding.weight[: tokens.shape[1]]
        assert self.config["positional"] in ("none", "learned", "rope")
        for layer in self.layers:
            h = layer(h, lengths, self.config)
        if self.config["final_norm"]:
            h = self.norm(h)
        return self.head(pool(h, lengths, self.config["pooling"]))[:, 0]


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MambaMixer(nn.Module):
    """Mamba-1 slow path with mamba_ssm's names and its initialisation of A_log, D and dt."""

    def __init__(self, config):
        super().__init__()
        d, S, R, K = config["d_model"], config["d_state"], config["dt_rank"], config["d_conv"]
        Di = config["expand"] * d
        self.Di, self.S, self.R = Di, S, R
        self.in_proj = nn.Linear(d, 2 * Di, bias=False)
        self.conv1d = nn.Conv1d(Di, Di, K, groups=Di, padding=K - 1)
        self.x_proj = nn.Linear(Di, R + 2 * S, bias=False)
        self.dt_proj = nn.Linear(R, Di)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, S + 1, dtype=torch.float32)).repeat(Di, 1))
        self.D = nn.Parameter(torch.ones(Di))
        self.out_proj = nn.Linear(Di, d, bias=False)
        # dt initialised log-uniform in [1e-3, 1e-1] through the inverse softplus, as mamba_ssm does.
        nn.init.uniform_(self.dt_proj.weight, -R ** -0.5, R ** -0.5)
        dt = torch.exp(torch.rand(Di) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def forward(self, u):
        L = u.shape[1]
        x, z = self.in_proj(u).split(self.Di, dim=-1)
        # Conv1d padding K-1 on both sides; keeping the first L outputs makes it causal.
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :L].transpose(1, 2))
        dt, B, C = self.x_proj(x).split([self.R, self.S, self.S], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log)
        decay = torch.exp(delta[..., None] * A)              # [N,L,Di,S], computed once for all t
        write = (delta * x)[..., None] * B[:, :, None, :]    # [N,L,Di,S]
        state, ys = torch.zeros_like(decay[:, 0]), []
        for t in range(L):
            state = decay[:, t] * state + write[:, t]
            ys.append((state * C[:, t, None, :]).sum(-1))
        y = torch.stack(ys, dim=1) + self.D * x
        return self.out_proj(y * F.silu(z))


class Mamba2Mixer(nn.Module):
    """Mamba-2 (mamba_ssm's Mamba2, its non-fused path; design.md 2.4) with mamba_ssm's names and its
    initialisation of A_log, dt_bias and D; ngroups groups of B and C, the grouped gated RMSNorm
    (norm_before_gate false), no dt_limit, the SSD as a plain recurrence (these models are tiny)."""

    def __init__(self, config):
        super().__init__()
        d, S, K, P, G = config["d_model"], config["d_state"], config["d_conv"], config["headdim"], config["ngroups"]
        Di = config["expand"] * d
        H = Di // P
        self.Di, self.S, self.P, self.G, self.H, self.eps = Di, S, P, G, H, 1e-5
        conv_dim = Di + 2 * G * S
        self.in_proj = nn.Linear(d, 2 * Di + 2 * G * S + H, bias=False)
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, K, groups=conv_dim, padding=K - 1)
        dt = torch.exp(torch.rand(H) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(H).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(H))
        self.norm = nn.Module()
        self.norm.weight = nn.Parameter(torch.ones(Di))
        self.out_proj = nn.Linear(Di, d, bias=False)

    def forward(self, u):
        N, L, _ = u.shape
        Di, S, P, G, H = self.Di, self.S, self.P, self.G, self.H
        z, xBC, dt = self.in_proj(u).split([Di, Di + 2 * G * S, H], dim=-1)
        xBC = F.silu(self.conv1d(xBC.transpose(1, 2))[..., :L].transpose(1, 2))
        x, B, C = xBC.split([Di, G * S, G * S], dim=-1)
        delta = F.softplus(dt + self.dt_bias)                              # [N,L,H]
        decay = torch.exp(delta * -torch.exp(self.A_log))                  # [N,L,H]
        x = x.reshape(N, L, H, P)
        B = B.reshape(N, L, G, S).repeat_interleave(H // G, dim=2)         # head h reads group h // (H/G)
        C = C.reshape(N, L, G, S).repeat_interleave(H // G, dim=2)
        write = (delta[..., None] * x)[..., None] * B[:, :, :, None, :]    # [N,L,H,P,S]
        state, ys = torch.zeros_like(write[:, 0]), []
        for t in range(L):
            state = decay[:, t, :, None, None] * state + write[:, t]
            ys.append((state * C[:, t, :, None, :]).sum(-1))
        y = (torch.stack(ys, dim=1) + self.D[:, None] * x).reshape(N, L, Di)
        v = (y * F.silu(z)).reshape(N, L, G, Di // G)
        v = (v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + self.eps)).reshape(N, L, Di) * self.norm.weight
        return self.out_proj(v)


class MambaLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.norm = RMSNorm(config["d_model"], config["norm_eps"])
        self.mixer = (Mamba2Mixer if config["arch"] == "mamba2" else MambaMixer)(config)

    def forward(self, h):
        return h + self.mixer(self.norm(h))


class Mamba(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config["vocab_size"], config["d_model"])
        self.layers = nn.ModuleList(MambaLayer(config) for _ in range(config["n_layers"]))
        self.norm_f = RMSNorm(config["d_model"], config["norm_eps"])
        self.head = nn.Linear(config["d_model"], 1)

    def forward(self, tokens, lengths):
        h = self.embedding(tokens)
        for layer in self.layers:
            h = layer(h)
        return self.head(pool(self.norm_f(h), lengths, self.config["pooling"]))[:, 0]


# ----------------------------------------------------------------------------- training

def predict(model, data, batch=200):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(data["tokens"][i:i + batch], data["lengths"][i:i + batch])
                          for i in range(0, len(data["labels"]), batch)])


def train(config, train_set, valid_set, settings):
    """Adam on BCE-with-logits for a fixed number of epochs; prints the held-out AUC per epoch."""
    torch.manual_seed(settings["seed"])
    model = (Transformer if config["arch"] == "transformer" else Mamba)(config)
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    n = len(train_set["labels"])
    batch = settings["batch"]
    steps = settings["epochs"] * math.ceil(n / batch)
    # Cosine decay: a high rate finds the solution fast, a low one settles it.
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings["lr"], total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(settings["seed"])
    history = []
    for epoch in range(settings["epochs"]):
        model.train()
        for rows in torch.randperm(n, generator=gen).split(batch):
            logits = model(train_set["tokens"][rows], train_set["lengths"][rows])
            loss = F.binary_cross_entropy_with_logits(logits, train_set["labels"][rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        auc = roc_auc_score(valid_set["labels"], predict(model, valid_set))
        history.append(auc)
        print(f"    epoch {epoch + 1}: last batch loss {loss.item():.4f}, validation AUC {auc:.4f}", flush=True)
    return model, history


# ----------------------------------------------------------------------------- saving and checking

def save_model(model, config, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


def ref_logits(config, params, tokens, lengths, token_embed=None):
    return ref.run(config, params, tokens, lengths, token_embed=token_embed)["logits"].numpy()


def family_ablations(config, params, test):
    """AUC with the token embedding rows of each family set to zero (design.md `ablate --mode zero`)."""
    out = {}
    for index, name in enumerate(test["families"]):
        emb = params["embedding.weight"].clone()
        emb[torch.from_numpy(np.flatnonzero(test["of_token"] == index))] = 0
        logits = ref_logits(config, params, test["tokens"], test["lengths"], emb[test["tokens"]])
        out[name] = roc_auc_score(test["labels"], logits)
    return out


def reversed_valid(tokens, lengths):
    out = tokens.clone()
    for i, n in enumerate(lengths.tolist()):
        out[i, :n] = tokens[i, :n].flip(0)
    return out


def seqlens_eval(model_dir, data_path):
    run = subprocess.run([SEQLENS, "eval", model_dir, data_path], check=True, capture_output=True, text=True)
    return json.loads(run.stdout)["auc"]


def check_model(name, model, test_path):
    """Reload from disk; float64 reference vs float32 module; report AUCs, ablations, reversal."""
    model_dir = os.path.join(OUT, name)
    config, params = ref.load_model(model_dir)
    test = load(test_path)
    logits = ref_logits(config, params, test["tokens"], test["lengths"])
    ours = predict(model, test).double().numpy()
    rel = np.abs(ours - logits).max() / np.abs(logits).max()
    assert rel < 1e-4, f"{name}: training module vs seqlens_ref logits differ by {rel:.2e} relative"
    auc = roc_auc_score(test["labels"], logits)
    rev = ref_logits(config, params, reversed_valid(test["tokens"], test["lengths"]), test["lengths"])
    r = np.corrcoef(logits, rev)[0, 1]
    cli_auc = seqlens_eval(model_dir, test_path)
    assert abs(cli_auc - auc) < 1e-4, f"{name}: bin/seqlens eval AUC {cli_auc} vs Python {auc}"
    return {"auc": auc, "rel_err": rel, "ablate_zero": family_ablations(config, params, test),
            "reverse_r": r, "reverse_auc": roc_auc_score(test["labels"], rev), "cli_auc": cli_auc}


def bayes_empirical(test):
    """AUC of the Bayes score on this file: count of `a` (count) or a-before-b (order)."""
    tokens, lengths = test["tokens"], test["lengths"]
    if test["attrs"]["task"] == "count":
        score = (tokens == 1).sum(1).double()
    else:
        score = ((tokens == 1).int().argmax(1) < (tokens == 2).int().argmax(1)).double()
    return roc_auc_score(test["labels"], score)


# ----------------------------------------------------------------------------- main

def make_data(tmp):
    """Per task: training file in tmp, test file copied to tests/trained/<task>_test.h5."""
    paths = {}
    for task in ("count", "order"):
        train_path = os.path.join(tmp, f"{task}_train.h5")
        gym(task, TRAIN["n"], TRAIN["seed"], train_path)
        test_path = os.path.join(OUT, f"{task}_test.h5")
        gym(task, TEST["n"], TEST["seed"], os.path.join(tmp, f"{task}_test.h5"))
        shutil.copyfile(os.path.join(tmp, f"{task}_test.h5"), test_path)
        paths[task] = (train_path, test_path)
    return paths


def main():
    torch.set_num_threads(2)
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    if not os.access(SEQLENS, os.X_OK):
        sys.exit(f"{SEQLENS} not found: run make at the repository root first")
    os.makedirs(OUT, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_data(tmp)
        data = {task: load(train) for task, (train, _) in paths.items()}
    summary = {}
    for name, task, config, settings in MODELS:
        if only and name not in only:
            continue
        full = data[task]
        n = len(full["labels"])
        train_set, valid_set = take(full, slice(0, n - VALID)), take(full, slice(n - VALID, n))
        bayes = full["attrs"]["bayes_auc"]
        print(f"{name}: training ({task}, Bayes-optimal AUC {bayes:.4f})", flush=True)
        t0 = time.time()
        model, history = train(config, train_set, valid_set, settings)
        seconds = time.time() - t0
        save_model(model, config, os.path.join(OUT, name))
        summary[name] = dict(check_model(name, model, paths[task][1]), seconds=seconds, epochs=len(history))
    print_summary(summary, paths)
    print(f"total {time.time() - started:.0f} s")


def print_summary(summary, paths):
    for task, (_, test_path) in paths.items():
        test = load(test_path)
        print(f"{task} test set: Bayes AUC {test['attrs']['bayes_auc']:.4f} (model), "
              f"{bayes_empirical(test):.4f} (Bayes score on these 400 examples)")
    for name, s in summary.items():
        ablations = ", ".join(f"{k} {v:.3f}" for k, v in s["ablate_zero"].items())
        size = sum(os.path.getsize(os.path.join(OUT, name, f)) for f in ("config.json", "model.safetensors"))
        print(f"{name}: test AUC {s['auc']:.4f} (bin/seqlens eval {s['cli_auc']:.6f}), "
              f"ref vs module rel. err {s['rel_err']:.1e}, {s['epochs']} epochs in {s['seconds']:.0f} s, "
              f"{size} bytes\n    AUC with family embedding zeroed: {ablations}\n"
              f"    reversal: Pearson r {s['reverse_r']:.3f}, reversed AUC {s['reverse_auc']:.4f}")


if __name__ == "__main__":
    main()
