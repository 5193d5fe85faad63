"""The PyTorch side of bench/gpu.sh: the family-ablation sweep on the GPU (python3 bench/torch_gpu_sweep.py OUTDIR).

The models are torch_sweep.py's (nn.TransformerEncoderLayer, whose attention runs through
scaled_dot_product_attention; Mamba with the pure-PyTorch selective scan, one Python step per
position; Mamba-2 with each of torch_mamba2.py's chunked scan paths that loads, those whose logits
agree with the first within 1e-4 timed and the fastest reported, as torch_sweep.py does on the
CPU), moved to the GPU with the data, float32 with TF32 off. Pass 0 is the baseline, pass k
zeroes the token embedding of family k-1, as bench_sweep. Examples go in chunks (--chunk), since
eager attention with a padding mask may store [chunk, heads, L, L]. It also measures the card's
yardsticks: fp32 GEMM FLOP/s (torch.matmul, 8192^3) and device-to-device copy bytes/s (1 GiB).
Prints one JSON line; writes OUTDIR/torch_gpu_logits.json (pass-major, as torch_logits.json).
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_sweep as ts  # noqa: E402  (the models and the data of the CPU benchmark)


class GpuData:
    """ts.Data's fields on the device, for examples [a, b)."""

    def __init__(self, data, a, b, device):
        for name in ("tokens", "valid", "family", "key_padding_mask"):
            setattr(self, name, getattr(data, name)[a:b].to(device))

    def zero_mask(self, pass_index):
        return None if pass_index == 0 else (self.family == pass_index - 1) & self.valid


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def sweep(model, chunks, passes, device):
    with torch.inference_mode():
        out = torch.stack([torch.cat([model(c, c.zero_mask(k)) for c in chunks]) for k in range(passes)])
    sync(device)
    return out


def timed_sweep(model, chunks, passes, reps, device):
    sweep(model, chunks, passes, device)  # warm-up
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        logits = sweep(model, chunks, passes, device)
        best = min(best, time.perf_counter() - start)
    return best, logits


def mamba2_paths(model, chunks, args, result):
    """Each scan path timed (those that load here and agree with the first within 1e-4); the
    fastest's time and logits, every path's time in result["mamba2_paths_s"]."""
    scans = ts.m2.available_scans(args.mamba2_scans.split(","), ts.log)
    if not scans:
        raise SystemExit("torch_gpu_sweep.py: no Mamba-2 scan path loads here")
    seconds, logits, first = {}, {}, None
    for name, scan in scans.items():
        model.set_scan(scan)
        s, out = timed_sweep(model, chunks, args.passes, args.reps, args.device)
        if first is None:
            first = out
        err = ((out - first).abs().max() / first.abs().max().clamp_min(1e-30)).item()
        if not err < 1e-4:
            ts.log(f"mamba2 [{name}]: logits differ from {next(iter(scans))}'s by {err:.2e}; not counted")
            continue
        seconds[name], logits[name] = s, out
        ts.log(f"mamba2 [{name}]: {s:.3f} s")
    fastest = min(seconds, key=seconds.get)
    result["mamba2_path"], result["mamba2_paths_s"] = fastest, seconds
    return seconds[fastest], logits[fastest]


def gemm_flops(device, n=8192, reps=5):
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.matmul(a, b)
    sync(device)
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best


def copy_bytes_per_s(device, gib=1, reps=5):
    a = torch.empty(gib << 28, device=device)  # floats
    b = torch.empty_like(a)
    b.copy_(a)
    sync(device)
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        b.copy_(a)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * a.numel() * 4 / best  # read + write


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--passes", type=int, default=15)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=32)
    parser.add_argument("--mamba-chunk", type=int, default=2000)
    # the chunked SSDs hold [examples, chunks, heads, Q, Q] (hf-256: Q = 256) per layer
    parser.add_argument("--mamba2-chunk", type=int, default=250)
    parser.add_argument("--mamba2-scans", default="chunked-32,chunked-64,ssd_minimal-64,hf-256",
                        help="torch_mamba2.py's scan paths to time (the sequential one is left out: "
                             "one Python step per position)")
    parser.add_argument("--device", default="cuda", help="cpu only to try the script without a GPU")
    parser.add_argument("--yardstick-size", type=int, default=8192, help="n of the n^3 GEMM yardstick")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "torch_gpu_sweep.py: torch sees no CUDA device\n")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    data = ts.Data(os.path.join(args.outdir, "data.h5"))
    n = len(data.tokens)
    result = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu", "torch_version": torch.__version__, "n": n,
              "L": int(data.tokens.shape[1]), "passes": args.passes}
    logits_out = {}
    for name in ("transformer", "mamba", "mamba2"):
        _, model = ts.load_torch_model(os.path.join(args.outdir, name))
        model = model.to(args.device)
        chunk = {"transformer": args.chunk, "mamba": args.mamba_chunk, "mamba2": args.mamba2_chunk}[name]
        chunks = [GpuData(data, a, min(a + chunk, n), args.device) for a in range(0, n, chunk)]
        if name == "mamba2":
            seconds, logits = mamba2_paths(model, chunks, args, result)
        else:
            seconds, logits = timed_sweep(model, chunks, args.passes, args.reps, args.device)
        ts.log(f"{name}: sweep of {args.passes} passes over {n} examples: {seconds:.3f} s")
        result[f"{name}_s"] = seconds
        logits_out[name] = [float(x) for x in logits.flatten().cpu()]
        del chunks, model
        if args.device == "cuda":
            torch.cuda.empty_cache()
    result["gemm_fp32_flops"] = gemm_flops(args.device, args.yardstick_size)
    result["copy_bytes_per_s"] = copy_bytes_per_s(args.device)
    with open(os.path.join(args.outdir, "torch_gpu_logits.json"), "w") as f:
        json.dump(logits_out, f)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
