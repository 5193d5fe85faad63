"""The PyTorch side of the issue-2 benchmark (python3 bench/torch_sweep.py OUTDIR --threads T).

Loads OUTDIR/transformer, OUTDIR/mamba, OUTDIR/mamba2 and OUTDIR/data.h5 (written by
make_bench_models.py; --models picks a subset) into
ordinary float32 PyTorch modules whose state_dict names are the safetensors names, so that
`load_state_dict(strict=True)` proves the layouts agree:
  - Transformer: nn.Embedding + learned positions + 2 × the real nn.TransformerEncoderLayer
    (batch_first, norm_first, gelu, dropout 0) + final nn.LayerNorm + mean pooling + nn.Linear head,
    run in eval mode under torch.inference_mode() with a src_key_padding_mask, as users run it
    (torch then takes its fused inference path for the encoder layers).
  - Mamba: mamba_ssm's Mamba-1 slow path in plain PyTorch (nn.RMSNorm, nn.Conv1d, a scan written
    the way mamba_ssm's selective_scan_ref does it: one Python step per position).
  - Mamba-2: bench/torch_mamba2.py (mamba_ssm's Mamba2 block, non-fused path) on each of its scan
    paths (a sequential recurrence, chunked SSDs, mamba_ssm's ssd_minimal_discrete, Hugging Face's
    mamba2_chunk_scan): each is checked against the reference, timed, and the fastest is the
    benchmark's (`mamba2_s`, `mamba2_path`; every path's time in `mamba2_paths_s`).

Then:
  1. checks the logits of the first --check-passes passes (default 2: the baseline and one ablated
     pass; 6 = all, about a minute more for the Transformer) against tests/reference/seqlens_ref.py
     in float64 (relative error max|ours - ref| / max|ref| < 1e-4), and stops with exit code 1 if not;
  2. times the family-ablation sweep: 6 passes over all N examples in one batch; pass 0 is the
     baseline, pass k zeroes the token embedding (before the positional term) at every valid
     position of family k-1.  One warm-up sweep, then the best of 3.  The Transformer is timed a
     second time without src_key_padding_mask (`transformer_nomask_s`), because torch's fused path
     is about 3x faster without one (its masked softmax is the slow part), and users who have no
     padding often pass none;
  3. prints one JSON line {"transformer_s", "mamba_s", "mamba2_s", "torch_version", "threads", ...}
     on stdout and writes the 48 logits of each sweep to OUTDIR/torch_logits.json, pass-major
     (index 8·pass + example).
Progress goes to stderr.

Timings on 2 cores are only meaningful on an idle machine: with another busy process, torch's
OpenMP threads wait on each other and a sweep can take 10x longer.  The fraction of the CPUs that
other processes kept busy during the second before each timing is part of the JSON (`*_busy_before`).
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

sys.dont_write_bytecode = True  # leave no __pycache__ in tests/reference
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import seqlens_ref as ref  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_mamba2 as m2  # noqa: E402

PASSES = 6
TOLERANCE = 1e-4
TIMED_SWEEPS = 3


def log(message):
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data

class Data:
    """Tokens, lengths and the per-pass ablation masks of design.md section 3's file."""

    def __init__(self, path):
        with h5py.File(path, "r") as f:
            self.tokens = torch.from_numpy(f["tokens"][...].astype("int64"))
            lengths = f["lengths"][...].astype("int64") if "lengths" in f else None
            of_token = torch.from_numpy(f["families/of_token"][...].astype("int64"))
            self.n_families = len(f["families/names"])
            if "families/of_position" in f:
                raise SystemExit(f"{path}: /families/of_position is not supported by this benchmark")
        self.lengths = ref.effective_lengths(self.tokens, lengths)
        N, L = self.tokens.shape
        self.valid = torch.arange(L)[None, :] < self.lengths[:, None]  # [N, L]
        self.family = of_token[self.tokens]  # [N, L], -1 = none
        self.key_padding_mask = ~self.valid  # True = ignore this key, as torch expects

    def zero_mask(self, pass_index):
        """[N, L] bool: the positions whose token embedding pass `pass_index` replaces by zeros."""
        if pass_index == 0:
            return None
        return (self.family == pass_index - 1) & self.valid


def masked_mean(h, valid):
    """Mean over valid positions: h [N, L, d], valid [N, L] -> [N, d]."""
    weights = valid.to(h.dtype)[..., None]
    return (h * weights).sum(dim=1) / weights.sum(dim=1)


def embed_tokens(embedding, tokens, zero_mask):
    h = embedding(tokens)
    return h if zero_mask is None else h.masked_fill(zero_mask[..., None], 0.0)


# ----------------------------------------------------------------------------- Transformer

class TorchTransformer(nn.Module):
    """Attribute names = design.md section 2's tensor names (embedding, pos_embedding, layers.i, norm, head)."""

    def __init__(self, c):
        super().__init__()
        if c["positional"] != "learned" or not c["final_norm"] or c.get("causal", False):
            raise SystemExit("torch_sweep.py builds learned positions + final norm, non-causal only")
        d = c["d_model"]
        self.embedding = nn.Embedding(c["vocab_size"], d)
        self.pos_embedding = nn.Embedding(c["max_len"], d)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, c["n_heads"], c["d_ff"], dropout=0.0,
                                       activation=c["activation"], layer_norm_eps=c["layer_norm_eps"],
                                       batch_first=True, norm_first=c["norm_first"])
            for _ in range(c["n_layers"]))
        self.norm = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        self.head = nn.Linear(d, 1)

    def forward(self, data, zero_mask):
        L = data.tokens.shape[1]
        h = embed_tokens(self.embedding, data.tokens, zero_mask) + self.pos_embedding.weight[:L]
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=data.key_padding_mask)
        return self.head(masked_mean(self.norm(h), data.valid))[:, 0]


# ----------------------------------------------------------------------------- Mamba

def selective_scan(u, delta, A, B, C, D, z, delta_bias):
    """The recurrence with selective_scan_ref's semantics and layout (one Python step per position).

    u, delta, z [b, d, l]; A [d, n]; B, C [b, n, l]; D, delta_bias [d].
    s_t = exp(delta_t A) s_{t-1} + delta_t u_t B_t;  y_t = <s_t, C_t> + D u_t;  out = y SiLU(z).
    """
    delta = F.softplus(delta + delta_bias[:, None])
    decay = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    write = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    state = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        state = decay[:, :, t] * state + write[:, :, t]
        ys.append(torch.einsum("bdn,bn->bd", state, C[:, :, t]))
    y = torch.stack(ys, dim=2) + u * D[:, None]
    return y * F.silu(z)


def loop_scan(u, delta, A, B, C, D, z, delta_bias):
    """torch_sweep.selective_scan's arguments and numbers; exp(delta_t A) formed inside step t.

    u, delta, z [b, d, l]; A [d, n]; B, C [b, n, l]; D, delta_bias [d].  The per-step operands are
    made contiguous [l, b, ...] first, so that each step reads one block."""
    delta = F.softplus(delta + delta_bias[:, None])
    du = (delta * u).permute(2, 0, 1).contiguous()   # [l, b, d]
    dt = delta.permute(2, 0, 1).contiguous()         # [l, b, d]
    Bt = B.permute(2, 0, 1).contiguous()             # [l, b, n]
    Ct = C.permute(2, 0, 1).contiguous()[..., None]  # [l, b, n, 1]
    state = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        state = torch.exp(dt[t, :, :, None] * A) * state + du[t, :, :, None] * Bt[t, :, None, :]
        ys.append(torch.matmul(state, Ct[t])[..., 0])
    y = torch.stack(ys, dim=2) + u * D[:, None]
    return y * F.silu(z)


class MambaMixer(nn.Module):
    """mamba_ssm's Mamba-1 block, slow path (no in_proj/out_proj bias, its default)."""

    def __init__(self, c):
        super().__init__()
        d, S, R, K = c["d_model"], c["d_state"], c["dt_rank"], c["d_conv"]
        d_inner = c["expand"] * d
        self.split = (R, S, S)
        self.in_proj = nn.Linear(d, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, K, groups=d_inner, padding=K - 1)
        self.x_proj = nn.Linear(d_inner, R + 2 * S, bias=False)
        self.dt_proj = nn.Linear(R, d_inner)
        self.A_log = nn.Parameter(torch.empty(d_inner, S))
        self.D = nn.Parameter(torch.empty(d_inner))
        self.out_proj = nn.Linear(d_inner, d, bias=False)

    def forward(self, h):
        L = h.shape[1]
        x, z = self.in_proj(h).transpose(1, 2).chunk(2, dim=1)  # [b, d_inner, l] each
        x = F.silu(self.conv1d(x)[..., :L])  # padding K-1 on both sides; keep the causal part
        dt, B, C = self.x_proj(x.transpose(1, 2)).split(self.split, dim=-1)
        # As mamba_ssm: dt_proj's weight here, its bias inside the scan, before the softplus.
        delta = (dt @ self.dt_proj.weight.T).transpose(1, 2)
        A = -torch.exp(self.A_log)
        y = selective_scan(x, delta, A, B.transpose(1, 2), C.transpose(1, 2), self.D, z, self.dt_proj.bias)
        return self.out_proj(y.transpose(1, 2))


class MambaBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = nn.RMSNorm(c["d_model"], eps=c["norm_eps"])
        self.mixer = MambaMixer(c)

    def forward(self, h):
        return h + self.mixer(self.norm(h))


class TorchMamba(nn.Module):
    """Attribute names = design.md section 2's tensor names (embedding, layers.i, norm_f, head)."""

    def __init__(self, c):
        super().__init__()
        self.embedding = nn.Embedding(c["vocab_size"], c["d_model"])
        self.layers = nn.ModuleList(MambaBlock(c) for _ in range(c["n_layers"]))
        self.norm_f = nn.RMSNorm(c["d_model"], eps=c["norm_eps"])
        self.head = nn.Linear(c["d_model"], 1)

    def forward(self, data, zero_mask):
        h = embed_tokens(self.embedding, data.tokens, zero_mask)
        for layer in self.layers:
            h = layer(h)
        return self.head(masked_mean(self.norm_f(h), data.valid))[:, 0]


# ----------------------------------------------------------------------------- loading

def load_torch_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    if config.get("prefix") or config["pooling"] != "mean":
        raise SystemExit(f"{model_dir}: torch_sweep.py expects no prefix and mean pooling")
    state = load_file(os.path.join(model_dir, "model.safetensors"))
    if config["arch"] == "mamba2":
        model = m2.TorchMamba2(config, state.keys())
    else:
        model = {"transformer": TorchTransformer, "mamba": TorchMamba}[config["arch"]](config)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    return config, model.eval()


# ----------------------------------------------------------------------------- the sweep

def sweep(model, data):
    """The 6 passes; returns the logits [PASSES, N]."""
    with torch.inference_mode():
        return torch.stack([model(data, data.zero_mask(k)) for k in range(PASSES)])


def time_sweep(model, data):
    sweep(model, data)  # warm-up: allocator, thread pool, first-call dispatch
    best = math.inf
    for _ in range(TIMED_SWEEPS):
        start = time.perf_counter()
        logits = sweep(model, data)
        best = min(best, time.perf_counter() - start)
    return best, logits


def reference_sweep(model_dir, data, chunk, passes):
    """The first `passes` passes of the sweep from seqlens_ref.py in float64.  Ablated positions
    read an extra, all-zero embedding row, so the reference's own forward pass is used unchanged."""
    config, params = ref.load_model(model_dir)
    embedding = params["embedding.weight"]
    zero_row = embedding.shape[0]
    params = dict(params)
    params["embedding.weight"] = torch.cat([embedding, embedding.new_zeros(1, embedding.shape[1])])
    logits_per_pass = []
    for k in range(passes):
        mask = data.zero_mask(k)
        tokens = data.tokens if mask is None else data.tokens.masked_fill(mask, zero_row)
        # A few examples at a time: the float64 reference keeps every [L, L] attention pattern.
        logits = [ref.run(config, params, tokens[i:i + chunk], data.lengths[i:i + chunk])["logits"]
                  for i in range(0, len(tokens), chunk)]
        logits_per_pass.append(torch.cat(logits))
    return torch.stack(logits_per_pass)


def rel_err(ours, theirs):
    return float((ours.to(torch.float64) - theirs).abs().max() / theirs.abs().max().clamp_min(1e-300))


def check_against_reference(name, model, model_dir, data, passes):
    start = time.perf_counter()
    chunk = 2 if name == "transformer" else len(data.tokens)
    # The reference is not timed; one thread avoids OpenMP's barrier stalls in its many small ops.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    expected = reference_sweep(model_dir, data, chunk, passes)
    torch.set_num_threads(threads)
    err = rel_err(sweep(model, data)[:passes], expected)
    log(f"{name}: float32 torch vs float64 seqlens_ref over {expected.numel()} logits ({passes} passes): "
        f"rel err {err:.2e} (limit {TOLERANCE:.0e}, {time.perf_counter() - start:.0f} s)")
    if not err < TOLERANCE:
        log(f"torch_sweep.py: {name}: the PyTorch model disagrees with tests/reference/seqlens_ref.py "
            f"(rel err {err:.2e} >= {TOLERANCE:.0e}); not timing it")
        sys.exit(1)
    return err


def time_equal_path(label, model, data, reference_logits):
    """The sweep on another PyTorch path that must give the same logits (else the script stops):
    its best time."""
    seconds, logits = time_sweep(model, data)
    err = rel_err(logits, reference_logits.to(torch.float64))
    if not err < TOLERANCE:
        log(f"torch_sweep.py: {label}: the logits differ (rel err {err:.2e})")
        sys.exit(1)
    log(f"{label}: best of {TIMED_SWEEPS} sweeps: {seconds:.3f} s")
    return seconds


def time_without_padding_mask(model, data, logits_with_mask):
    """The sweep with src_key_padding_mask=None (valid only when nothing is padded, as here)."""
    if not data.valid.all():
        return None
    unmasked = copy.copy(data)
    unmasked.key_padding_mask = None
    # Same numbers up to float32 rounding: only the softmax kernel differs.
    return time_equal_path("transformer without src_key_padding_mask", model, unmasked, logits_with_mask)


def time_loop_scan(model, data, logits_precomputed):
    """The Mamba sweep again with loop_scan, which forms exp(delta A) inside each step: the same
    numbers, and on a CPU often faster than selective_scan_ref's precomputed [b, d, l, n] tensors."""
    global selective_scan
    precomputed = selective_scan
    selective_scan = loop_scan
    try:
        return time_equal_path("mamba with the in-step scan", model, data, logits_precomputed)
    finally:
        selective_scan = precomputed


def mamba2_sweep(model, model_dir, data, passes, scan_names, logits_out):
    """Every Mamba-2 scan path of torch_mamba2.py that loads here: its logits over the first `passes`
    passes against the float64 reference (a path that disagrees is reported and not timed), then
    its sweep timed; all timed paths must give the same 48 logits.  The fastest is the benchmark's:
    its time is `mamba2_s`, its logits go to torch_logits.json."""
    scans = m2.available_scans(scan_names, log)
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as check_against_reference: the reference is not timed
    expected = reference_sweep(model_dir, data, len(data.tokens), passes)
    torch.set_num_threads(threads)
    errors = {}
    for name, scan in scans.items():
        model.set_scan(scan)
        errors[name] = rel_err(sweep(model, data)[:passes], expected)
        log(f"mamba2 [{name}]: float32 torch vs float64 seqlens_ref over {expected.numel()} logits "
            f"({passes} passes): rel err {errors[name]:.2e} (limit {TOLERANCE:.0e})")
    log(f"mamba2: reference checks took {time.perf_counter() - start:.0f} s")
    agree = [name for name in scans if errors[name] < TOLERANCE]
    for name in scans:
        if name not in agree:
            log(f"torch_sweep.py: mamba2 [{name}]: disagrees with tests/reference/seqlens_ref.py "
                f"(rel err {errors[name]:.2e}); not timing it")
    if not agree:
        log("torch_sweep.py: mamba2: no PyTorch path agrees with the reference; not timing it")
        sys.exit(1)
    busy = cpu_busy_fraction()
    seconds, logits = {}, {}
    for name in agree:
        model.set_scan(scans[name])
        seconds[name], logits[name] = time_sweep(model, data)
        log(f"mamba2 [{name}]: best of {TIMED_SWEEPS} sweeps of {PASSES} passes: {seconds[name]:.3f} s")
    first = logits[agree[0]].to(torch.float64)
    for name in agree[1:]:
        err = rel_err(logits[name], first)
        if not err < TOLERANCE:
            log(f"torch_sweep.py: mamba2: paths {agree[0]} and {name} give different logits (rel err {err:.2e})")
            sys.exit(1)
    fastest = min(seconds, key=seconds.get)
    log(f"mamba2: fastest equal path {fastest} ({m2.SCANS[fastest][0]}): {seconds[fastest]:.3f} s")
    logits_out["mamba2"] = [float(x) for x in logits[fastest].flatten()]
    return {"mamba2_s": seconds[fastest], "mamba2_path": fastest, "mamba2_path_label": m2.SCANS[fastest][0],
            "mamba2_paths_s": seconds, "mamba2_ref_rel_err": errors[fastest], "mamba2_ref_rel_errs": errors,
            "mamba2_busy_before": busy}


def uses_fused_encoder_path(model, data):
    """Whether the encoder layers ran torch's fused inference kernel (_transformer_encoder_layer_fwd),
    seen by wrapping it for one pass (outside the timings)."""
    fused = torch._transformer_encoder_layer_fwd
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return fused(*args, **kwargs)

    torch._transformer_encoder_layer_fwd = counting
    try:
        with torch.inference_mode():
            model(data, None)
    finally:
        torch._transformer_encoder_layer_fwd = fused
    return len(calls) == len(model.layers)


def torch_sgemm_gflops(n=2048, reps=5):
    """torch.mm at n³ on the same threads: torch's own BLAS (MKL here), for context."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def cpu_busy_fraction(seconds=1.0):
    """Fraction of all CPUs busy during `seconds` while this process sleeps: the other work on the
    machine (Linux /proc/stat; None elsewhere).  Unlike the load average, our own reference check
    just before does not count."""
    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait
    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return round(1.0 - (idle1 - idle0) / max(total1 - total0, 1), 2)


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", help="directory written by make_bench_models.py")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--check-passes", type=int, default=2,
                        help="passes checked against the float64 reference (1..6, default 2)")
    parser.add_argument("--models", default="transformer,mamba,mamba2", help="comma-separated subset")
    parser.add_argument("--mamba2-scans", default=",".join(m2.SCANS),
                        help=f"the Mamba-2 scan paths to check and time (default all: {','.join(m2.SCANS)})")
    args = parser.parse_args()
    models = args.models.split(",")
    if not models or any(m not in ("transformer", "mamba", "mamba2") for m in models):
        parser.error("--models: a comma-separated subset of transformer,mamba,mamba2")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if not 1 <= args.check_passes <= PASSES:
        parser.error(f"--check-passes must be in 1..{PASSES}")
    for needed in ["data.h5"] + [f"{m}/model.safetensors" for m in models]:
        if not os.path.exists(os.path.join(args.outdir, needed)):
            parser.exit(2, f"torch_sweep.py: {os.path.join(args.outdir, needed)} not found "
                           "(write it with: python3 bench/make_bench_models.py OUTDIR)\n")
    torch.set_num_threads(args.threads)

    data = Data(os.path.join(args.outdir, "data.h5"))
    result = {}
    logits_out = {"order": f"pass-major: index {len(data.tokens)}*pass + example; pass 0 baseline, "
                           "pass k zeroes the token embedding of family k-1"}
    for name in models:
        model_dir = os.path.join(args.outdir, name)
        config, model = load_torch_model(model_dir)
        if name == "mamba2":
            result.update(mamba2_sweep(model, model_dir, data, args.check_passes,
                                       args.mamba2_scans.split(","), logits_out))
            continue
        result[f"{name}_ref_rel_err"] = check_against_reference(name, model, model_dir, data,
                                                                 args.check_passes)
        result[f"{name}_busy_before"] = cpu_busy_fraction()
        seconds, logits = time_sweep(model, data)
        log(f"{name}: best of {TIMED_SWEEPS} sweeps of {PASSES} passes: {seconds:.3f} s")
        result[f"{name}_s"] = seconds
        logits_out[name] = [float(x) for x in logits.flatten()]
        if name == "transformer":
            result["transformer_fused_path"] = uses_fused_encoder_path(model, data)
            result["transformer_nomask_s"] = time_without_padding_mask(model, data, logits)
        else:
            result["mamba_loop_s"] = time_loop_scan(model, data, logits)
    result.update(torch_version=torch.__version__, threads=args.threads,
                  torch_sgemm_2048_gflops=round(torch_sgemm_gflops(), 1))
    with open(os.path.join(args.outdir, "torch_logits.json"), "w") as f:
        json.dump(logits_out, f, indent=1)
        f.write("\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
