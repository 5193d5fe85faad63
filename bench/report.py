"""Print the issue-2 benchmark table from the JSON that bench/run.sh leaves in a directory.

python3 bench/report.py DIR [--threads T] reads DIR/{transformer,mamba,mamba2}/config.json, DIR/data.h5
and whichever of these exist: seqlens_{transformer,mamba,mamba2}.json (build/bench/bench_sweep),
torch.json and torch_logits.json (torch_sweep.py), sgemm.json (sgemm_peak), fma.json (fma_peak).  It prints Markdown that
can be pasted into bench/README.md.  A missing input shows as "n/a"; a model neither side ran
(bench/run.sh --models) has no row.

FLOP are counted from the configs (formulas in bench/README.md and the shared performance notes):
only the matrix products, the attention and the Mamba scan and mixer arithmetic; embeddings, norms,
pooling and the head (< 1%) are left out, so GFLOP/s is comparable with sgemm's.
"""
import argparse
import datetime
import json
import os
import platform

import h5py
import numpy as np

PASSES = 6
# max|seqlens − PyTorch| / max|PyTorch| over the 48 logits: float32 with different summation orders
# stays near 1e-6; torch_sweep.py holds PyTorch to the same 1e-4 against the float64 reference.
LOGIT_TOLERANCE = 1e-4


# ----------------------------------------------------------------------------- FLOP

def transformer_flop_per_token_layer(c, length):
    """QKV 2·d·3d + out 2·d·d + MLP 2·2·d·d_ff (= 24·d² at d_ff = 4d), attention 4·length·d."""
    d, d_ff = c["d_model"], c["d_ff"]
    return 2 * d * 3 * d + 2 * d * d + 2 * 2 * d * d_ff + 4 * length * d


def mamba_flop_per_token_layer(c):
    """in_proj, x_proj, out_proj, the scan (7 per channel and state: delta·A, exp, decay·s,
    delta·x·B, +, ·C, sum), conv, dt_proj and 8 elementwise per channel (softplus, two SiLUs,
    D·x, the gate product)."""
    d, S, R, K = c["d_model"], c["d_state"], c["dt_rank"], c["d_conv"]
    di = c["expand"] * d
    return (2 * d * 2 * di + 2 * di * (R + 2 * S) + 2 * di * d + 7 * di * S
            + 2 * K * di + 2 * R * di + 8 * di)


def mamba2_flop_per_token_layer(c):
    """in_proj (z, xBC, dt), the conv over xBC, the recurrence (5 per channel and state: decay·S,
    delta·x·B, +, ·C, sum; the decay is per head), out_proj and 8 elementwise per channel (SiLU of
    x and z, delta·x, D·x and its sum, the gate product, the gated norm's square and scale).  The
    chunked SSD does more arithmetic than this; the count is the model's, whatever the path."""
    d, S, G, K, P = c["d_model"], c["d_state"], c["ngroups"], c["d_conv"], c["headdim"]
    di = c["expand"] * d
    xbc = di + 2 * G * S
    return 2 * d * (di + xbc + di // P) + 2 * K * xbc + 5 * di * S + 2 * di * d + 8 * di


def sweep_gflop(config, lengths):
    """FLOP of the 6-pass sweep over examples of these lengths (attention is over valid keys)."""
    per_pass = 0
    for length in lengths:
        if config["arch"] == "transformer":
            per_token = transformer_flop_per_token_layer(config, length)
        elif config["arch"] == "mamba2":
            per_token = mamba2_flop_per_token_layer(config)
        else:
            per_token = mamba_flop_per_token_layer(config)
        per_pass += config["n_layers"] * length * per_token
    return PASSES * per_pass / 1e9


# ----------------------------------------------------------------------------- inputs

def read_json(path):
    """The last JSON object line of a file, or None when the file is missing or holds none."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = [line for line in f if line.lstrip().startswith("{")]
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return None


def read_whole_json(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_lengths(path):
    with h5py.File(path, "r") as f:
        if "lengths" in f:
            return [int(x) for x in f["lengths"][...]]
        tokens = f["tokens"][...]
    # As design.md section 3: a sequence ends after its last non-pad (non-zero) token.
    nonpad = tokens != 0
    return [int(np.nonzero(row)[0][-1]) + 1 if row.any() else 0 for row in nonpad]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ----------------------------------------------------------------------------- comparison

def logit_difference(ours, theirs, n_examples):
    """Max |seqlens − PyTorch| over the 48 logits (pass-major) and a note when their relative
    difference exceeds LOGIT_TOLERANCE; if they agree only when seqlens is read example-major,
    the note says so: that is an ordering bug, not a numerical one."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if a.shape != b.shape:
        return None, f"seqlens printed {a.size} logits, PyTorch {b.size}"
    scale = max(float(np.abs(b).max()), 1e-30)
    diff = float(np.abs(a - b).max())
    if diff / scale <= LOGIT_TOLERANCE:
        return diff, ""
    transposed = a.reshape(n_examples, -1).T.reshape(-1)
    if float(np.abs(transposed - b).max()) / scale <= LOGIT_TOLERANCE:
        return diff, "seqlens' logits match only when read example-major; expected pass-major (8·pass + example)"
    return diff, (f"logits differ: max abs {diff:.2e}, relative {diff / scale:.2e} "
                  f"(limit {LOGIT_TOLERANCE:g} of max |logit| = {scale:.3g})")


def fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def percent(a, b):
    r = ratio(a, b)
    return None if r is None else 100 * r


# ----------------------------------------------------------------------------- report

def model_rows(name, label, gflop, seqlens, torch_s, torch_logits, n_examples, peak):
    """Table rows for one model, and notes about its logits."""
    seqlens_s = seqlens["seconds"] if seqlens else None
    diff, note = (None, "")
    if seqlens and torch_logits and name in torch_logits:
        diff, note = logit_difference(seqlens.get("logits", []), torch_logits[name], n_examples)
    rows = []
    for torch_label, seconds in torch_s:
        seqlens_rate = ratio(gflop, seqlens_s)
        rows.append(
            f"| {label}{torch_label} | {gflop:.1f} | {fmt(seqlens_s, '.3f')} | {fmt(seconds, '.3f')} "
            f"| {fmt(ratio(seconds, seqlens_s), '.2f')} | {fmt(seqlens_rate, '.1f')} "
            f"| {fmt(percent(seqlens_rate, peak), '.0f')} "
            f"| {fmt(ratio(gflop, seconds), '.1f')} | {fmt(diff, '.1e')} |")
    notes = [f"{label}: {note}"] if note else []
    return rows, notes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    d = args.dir

    lengths = read_lengths(os.path.join(d, "data.h5"))
    torch_json = read_json(os.path.join(d, "torch.json"))
    torch_logits = read_whole_json(os.path.join(d, "torch_logits.json")) if torch_json else None
    sgemm = read_json(os.path.join(d, "sgemm.json"))
    peak = sgemm["square_2048"]["gflops"] if sgemm else None

    today = datetime.date.today().isoformat()
    print(f"### {today}, {cpu_name()} ({os.cpu_count()} cores), {args.threads} threads")
    print()
    versions = [f"PyTorch {torch_json['torch_version']}" if torch_json else "PyTorch: not run"]
    if sgemm:
        versions.append(sgemm["openblas_config"].split(" NO_")[0] + f" ({sgemm['openblas_core']})")
    print("; ".join(versions) + f"; N = {len(lengths)}, L = {max(lengths)}, {PASSES} passes.")
    print()
    if sgemm:
        print(f"sgemm (OpenBLAS, {sgemm['threads']} threads, best call): "
              f"2048³ {sgemm['square_2048']['gflops']:.0f} GFLOP/s, "
              f"2048×2048×64 {sgemm['attention_2048x2048x64']['gflops']:.0f} GFLOP/s, "
              f"16384×64×64 {sgemm['projection_16384x64x64']['gflops']:.0f} GFLOP/s "
              f"(medians {sgemm['square_2048']['median_gflops']:.0f} / "
              f"{sgemm['attention_2048x2048x64']['median_gflops']:.0f} / "
              f"{sgemm['projection_16384x64x64']['median_gflops']:.0f}).")
    else:
        print("sgemm: not run.")
    fma = read_json(os.path.join(d, "fma.json"))
    if fma:
        share = f"; sgemm 2048³ reaches {peak / fma['gflops']:.0%} of it" if peak else ""
        print(f"FMA peak (fma_peak, {fma['threads']} threads of {fma['lanes']}-lane FMAs, best run): "
              f"{fma['gflops']:.0f} GFLOP/s{share}.")
    print()
    print("| model | GFLOP (sweep) | seqlens s | PyTorch s | ratio torch/seqlens | seqlens GFLOP/s "
          "| seqlens % of sgemm 2048³ | PyTorch GFLOP/s | max abs Δlogit |")
    print("|---|---|---|---|---|---|---|---|---|")
    notes = []
    for name, label in (("transformer", "Transformer"), ("mamba", "Mamba"), ("mamba2", "Mamba-2")):
        config_path = os.path.join(d, name, "config.json")
        seqlens = read_json(os.path.join(d, f"seqlens_{name}.json"))
        if not os.path.exists(config_path) or (seqlens is None and not (torch_json and f"{name}_s" in torch_json)):
            continue  # neither side ran it
        config = read_whole_json(config_path)
        torch_s = [("", torch_json.get(f"{name}_s") if torch_json else None)]
        if name == "transformer" and torch_json and torch_json.get("transformer_nomask_s"):
            torch_s.append((" (PyTorch without padding mask)", torch_json["transformer_nomask_s"]))
        if name == "mamba" and torch_json and torch_json.get("mamba_loop_s"):
            torch_s.append((" (PyTorch in-step scan)", torch_json["mamba_loop_s"]))
        if name == "mamba2" and torch_json and torch_json.get("mamba2_paths_s"):
            # The first row is the fastest equal path; Hugging Face's CPU path (as its users run
            # it) and the sequential recurrence follow when they are not the fastest.
            paths = torch_json["mamba2_paths_s"]
            torch_s[0] = (f" (PyTorch {torch_json['mamba2_path']}, the fastest)", torch_s[0][1])
            for path, path_label in (("hf-256", " (PyTorch as Hugging Face runs it, chunk 256)"),
                                     ("sequential", " (PyTorch sequential recurrence)")):
                if path in paths and path != torch_json.get("mamba2_path"):
                    torch_s.append((path_label, paths[path]))
        rows, model_notes = model_rows(name, label, sweep_gflop(config, lengths), seqlens, torch_s,
                                       torch_logits, len(lengths), peak)
        print("\n".join(rows))
        notes += model_notes
    print()
    if torch_json:
        labels = (("transformer", "Transformer"), ("mamba", "Mamba"), ("mamba2", "Mamba-2"))
        busy = [f"{fmt(torch_json.get(f'{m}_busy_before'), '.0%')} ({label})" for m, label in labels
                if f"{m}_s" in torch_json]
        fused = ("fused encoder-layer path " + ("taken" if torch_json.get("transformer_fused_path") else "NOT taken")
                 + "; ") if "transformer_s" in torch_json else ""
        print(f"PyTorch: {fused}torch.mm 2048³ {torch_json.get('torch_sgemm_2048_gflops')} GFLOP/s; "
              f"CPUs busy with other work just before timing: {', '.join(busy)}.")
        if torch_json.get("mamba2_paths_s"):
            paths = torch_json["mamba2_paths_s"]
            fastest = torch_json["mamba2_path"]
            ranked = sorted(paths, key=paths.get)
            runner_up = (f", {paths[ranked[1]] / paths[fastest]:.2f}× faster than the next ({ranked[1]})"
                         if len(ranked) > 1 else "")
            print()
            print(f"PyTorch Mamba-2 scan paths (same logits; best of 3 sweeps each): "
                  + ", ".join(f"{p} {paths[p]:.3f} s" for p in ranked)
                  + f". The Mamba-2 row uses the fastest, {fastest} ({torch_json['mamba2_path_label']})"
                  + runner_up + "; float32 against the float64 reference: "
                  + ", ".join(f"{p} {e:.1e}" for p, e in torch_json["mamba2_ref_rel_errs"].items()) + ".")
    for note in notes:
        print(f"WARNING: {note}")


if __name__ == "__main__":
    main()
