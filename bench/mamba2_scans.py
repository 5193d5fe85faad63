"""The Mamba-2 scan paths of bench/torch_mamba2.py alone (python3 bench/mamba2_scans.py [--threads T]).

Why the benchmarks' Mamba-2 runs on the path it runs: each scan path, on random inputs of the bench
model's shapes (8 heads of headdim 16, one group, d_state 64; delta from softplus of N(-2, 1), A in
-[1, 7.4]), is
  - checked against a float64 sequential scan (max |y - y64| / max |y64|, must be < 1e-4), then
  - timed forward under torch.inference_mode() on the sweep's shape (8 sequences of 2,048: one
    layer of one pass of bench/torch_sweep.py's sweep) and
  - timed forward + backward (the gradient of sum(y^2) with respect to x, delta, B and C) on
    integrated gradients' shape (16 sequences of 1,024: one layer of one Captum batch of
    bench/torch_ig.py).
Best of --reps (default 3) after one warm-up; wall time, and the process's CPU time beside it (which
holds up better on a shared machine).  --skip-sequential-backward leaves out the sequential path's
backward, which takes tens of seconds.  Prints a Markdown table.
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_mamba2 as m2  # noqa: E402

HEADS, HEADDIM, GROUPS, STATE = 8, 16, 1, 64
TOLERANCE = 1e-4


def inputs(batch, length, seed, grad=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, HEADS, HEADDIM, generator=g)
    delta = F.softplus(torch.randn(batch, length, HEADS, generator=g) - 2)
    A = -torch.exp(2 * torch.rand(HEADS, generator=g))
    B = torch.randn(batch, length, GROUPS, STATE, generator=g)
    C = torch.randn(batch, length, GROUPS, STATE, generator=g)
    if grad:
        for t in (x, delta, B, C):
            t.requires_grad_(True)
    return x, delta, A, B, C


def best_of(fn, reps):
    fn()  # warm-up
    wall = cpu = math.inf
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scans", default=",".join(m2.SCANS), help=f"subset of {','.join(m2.SCANS)}")
    parser.add_argument("--skip-sequential-backward", action="store_true")
    args = parser.parse_args()
    if args.threads < 1 or args.reps < 1:
        parser.error("--threads and --reps must be >= 1")
    torch.set_num_threads(args.threads)
    scans = m2.available_scans(args.scans.split(","), lambda m: print(m, file=sys.stderr))

    sweep_in = inputs(8, 2048, 1)
    with torch.inference_mode():
        expected = m2.ssd_sequential(*[t.double() for t in sweep_in])
    ig_in = inputs(16, 1024, 2, grad=True)

    print(f"PyTorch {torch.__version__}, {args.threads} threads; heads {HEADS} x headdim {HEADDIM}, "
          f"{GROUPS} group, d_state {STATE}; best of {args.reps}, seconds wall (CPU).")
    print()
    print("| scan path | rel err vs float64 | forward, 8 x 2,048 | forward + backward, 16 x 1,024 |")
    print("|---|---|---|---|")
    for name, scan in scans.items():
        with torch.inference_mode():
            err = float((scan(*sweep_in).double() - expected).abs().max() / expected.abs().max())
            fwd = best_of(lambda: scan(*sweep_in), args.reps)

        def forward_backward():
            torch.autograd.grad(scan(*ig_in).square().sum(), [ig_in[0], ig_in[1], ig_in[3], ig_in[4]])
        if name == "sequential" and args.skip_sequential_backward:
            bwd = "skipped"
        else:
            w, c = best_of(forward_backward, args.reps)
            bwd = f"{w:.3f} ({c:.3f})"
        flag = "" if err < TOLERANCE else " **DISAGREES**"
        print(f"| {name} ({m2.SCANS[name][0]}) | {err:.1e}{flag} | {fwd[0]:.3f} ({fwd[1]:.3f}) | {bwd} |", flush=True)


if __name__ == "__main__":
    main()
