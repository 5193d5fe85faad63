"""The integrated-gradients table (python3 bench/ig_report.py DIR), from what bench/run.sh leaves in DIR:
seqlens_ig.json and seqlens_ig_{transformer,mamba,mamba2}.h5 (bench/seqlens_ig.py), torch_ig.json and
torch_ig_attr.h5 (bench/torch_ig.py).  Either side may be missing: its columns then say so.

Agreement: the signed per-token attributions [N, L] of the two sides, max |seqlens - Captum| /
max |Captum|.  Exit status 1 when a side is missing or the two disagree by more than 1e-3.
"""
import json
import os
import sys

import h5py
import numpy as np

MODELS = ("transformer", "mamba", "mamba2")
LABELS = {"transformer": "Transformer (rope)", "mamba": "Mamba", "mamba2": "Mamba-2"}
AGREEMENT = 1e-3


def read_json(path):
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


def agreement(directory, name):
    """max |seqlens - Captum| / max |Captum| over the [N, L] attributions, or None."""
    try:
        with h5py.File(os.path.join(directory, "torch_ig_attr.h5"), "r") as f:
            theirs = f[name][...].astype(np.float64)
        with h5py.File(os.path.join(directory, f"seqlens_ig_{name}.h5"), "r") as f:
            ours = f["attribution"][...].astype(np.float64)
    except (OSError, KeyError):
        return None
    if ours.shape != theirs.shape:
        return float("inf")
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-300))


def main(argv):
    if len(argv) != 2:
        print("usage: python3 bench/ig_report.py DIR", file=sys.stderr)
        return 2
    directory = argv[1]
    ours, theirs = read_json(os.path.join(directory, "seqlens_ig.json")), read_json(os.path.join(directory, "torch_ig.json"))
    ok = ours is not None and theirs is not None
    if theirs:
        print(f"Captum {theirs['captum_version']}, PyTorch {theirs['torch_version']}; N = {theirs['n']}, "
              f"L = {theirs['len']}, {theirs['steps']} steps (riemann_middle), {theirs['threads']} threads; "
              f"Captum called {'once per example' if theirs['batch'] == 'one' else 'once for all examples'}, "
              f"internal_batch_size {theirs['internal_batch_size']}.")
        print()
    print("| model | seqlens IG s | seqlens eval s | IG as eval passes | PyTorch (Captum) s | ratio PyTorch/seqlens "
          "| max abs Δattribution / max abs attribution |")
    print("|---|---|---|---|---|---|---|")
    for name in MODELS:
        s = ours.get(f"{name}_s") if ours else None
        e = ours.get(f"{name}_eval_s") if ours else None
        t = theirs.get(f"{name}_s") if theirs else None
        diff = agreement(directory, name)
        if s is None and t is None:
            continue
        if diff is None or diff > AGREEMENT:
            ok = False
        cells = [f"{s:.3f}" if s else "did not run", f"{e:.3f}" if e else "—",
                 f"{s / e:.1f}" if s and e else "—", f"{t:.3f}" if t else "did not run",
                 f"{t / s:.2f}" if s and t else "—",
                 "—" if diff is None else f"{diff:.1e}" + (" **DISAGREE**" if diff > AGREEMENT else "")]
        label = LABELS[name]
        if name == "mamba2" and theirs and theirs.get("mamba2_path"):
            label += f" (PyTorch {theirs['mamba2_path']})"
        print(f"| {label} | " + " | ".join(cells) + " |")
    if theirs:
        notes = [f"{n}: float32 model vs float64 reference {theirs[f'{n}_ref_rel_err']:.1e}, IG completeness "
                 f"(midpoint rule) {theirs[f'{n}_completeness_rel']:.1e}, CPUs busy just before timing "
                 f"{100 * (theirs.get(f'{n}_busy_before') or 0):.0f}%"
                 for n in MODELS if f"{n}_s" in theirs]
        print()
        print("PyTorch side: " + "; ".join(notes) + ".")
        if theirs.get("mamba2_paths_one_example_s"):
            paths = theirs["mamba2_paths_one_example_s"]
            print()
            print("PyTorch Mamba-2 scan paths under autograd, Captum IG of example 0 (best of 2): "
                  + ", ".join(f"{p} {paths[p]:.3f} s" for p in sorted(paths, key=paths.get))
                  + f"; the table's row uses the fastest, {theirs['mamba2_path']} ({theirs['mamba2_path_label']}).")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
