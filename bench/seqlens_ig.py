"""The seqlens side of the integrated-gradients benchmark (python3 bench/seqlens_ig.py OUTDIR --threads T).

For each model in OUTDIR (written by `make_bench_models.py OUTDIR --len 1024 --rope 1`), times

    bin/seqlens attribute OUTDIR/MODEL OUTDIR/data.h5 --method ig --steps 16 --baseline pad
        --threads T --tokens OUTDIR/seqlens_ig_MODEL.h5 -o OUTDIR/seqlens_ig_MODEL.json

(one untimed warm-up run, then the best of --reps, default 3, wall time of the whole command) and,
in the same breath, `bin/seqlens eval OUTDIR/MODEL OUTDIR/data.h5 --threads T` (best of --reps),
so that the cost can be read as a multiple of one forward pass, which holds up better than seconds
on a shared machine.  The signed per-token attributions stay in OUTDIR/seqlens_ig_MODEL.h5
(/attribution [N, L]) for bench/ig_report.py to compare with Captum's.  Prints one JSON line
{"transformer_s", "transformer_eval_s", "mamba_s", "mamba_eval_s", "mamba2_s", ...}; progress on
stderr.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

STEPS = 16


def log(message):
    print(message, file=sys.stderr, flush=True)


def best_time(command, reps, outputs=()):
    """Best wall time of `reps` runs after one warm-up; the outputs are removed before each run."""
    best = math.inf
    for rep in range(reps + 1):
        for path in outputs:
            if os.path.exists(path):
                os.remove(path)
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"seqlens_ig.py: `{' '.join(command)}` exited with status {done.returncode}:\n"
                             f"{done.stderr.strip()}")
        if rep > 0:
            best = min(best, seconds)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", help="directory written by make_bench_models.py --rope 1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3, help="timed runs after the warm-up (best is kept)")
    parser.add_argument("--bin", default="bin/seqlens", help="the seqlens binary (default bin/seqlens)")
    parser.add_argument("--models", default="transformer,mamba,mamba2", help="comma-separated subset")
    args = parser.parse_args()
    models = args.models.split(",")
    if args.threads < 1 or args.reps < 1 or any(m not in ("transformer", "mamba", "mamba2") for m in models):
        parser.error("--threads and --reps must be >= 1, --models a subset of transformer,mamba,mamba2")
    data = os.path.join(args.outdir, "data.h5")
    for needed in [args.bin, data] + [os.path.join(args.outdir, m, "config.json") for m in models]:
        if not os.path.exists(needed):
            parser.exit(2, f"seqlens_ig.py: {needed} not found\n")

    threads = ["--threads", str(args.threads)]
    result = {"steps": STEPS, "threads": args.threads}
    for name in models:
        model = os.path.join(args.outdir, name)
        tokens = os.path.join(args.outdir, f"seqlens_ig_{name}.h5")
        report = os.path.join(args.outdir, f"seqlens_ig_{name}.json")
        attribute = [args.bin, "attribute", model, data, "--method", "ig", "--steps", str(STEPS),
                     "--baseline", "pad", *threads, "--tokens", tokens, "-o", report]
        result[f"{name}_eval_s"] = best_time([args.bin, "eval", model, data, *threads], args.reps)
        result[f"{name}_s"] = best_time(attribute, args.reps, (tokens, report))
        log(f"{name}: seqlens attribute --method ig --steps {STEPS}, best of {args.reps}: "
            f"{result[f'{name}_s']:.3f} s; eval {result[f'{name}_eval_s']:.3f} s")
        result[f"{name}_command"] = " ".join(attribute)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
