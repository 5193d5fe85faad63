"""Cross-check of `seqlens probe` against scikit-learn (python3 tests/reference/make_probe_fixtures.py).

For the trained gym Transformer on count (mean pooling, so the pooled site is the mean of each
layer's resid_post over valid positions), fits sklearn's LogisticRegression(solver="liblinear")
with the C that seqlens chose, on the same standardised features and the same 70/30 split (read
from seqlens' own probe output: the split is seeded by splitmix64 in core/rng.h, replayed here),
and writes tests/trained/probe_expected.json with sklearn's test accuracy and AUC per layer.
Needs bin/seqlens (make) and scikit-learn.
"""
import json
import os
import subprocess
import tempfile

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from seqlens_rng import SplitMix

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODEL, DATA = "tests/trained/tf_count", "tests/trained/count_test.h5"


def split(n, seed):
    """probes/linear.c sl_split without /split: a seeded permutation, the first 70% train."""
    perm, rng = list(range(n)), SplitMix(seed)
    for i in range(n - 1, 0, -1):
        j = rng.below(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    is_test = np.zeros(n, dtype=bool)
    is_test[perm[int(round(0.7 * n)):]] = True
    return is_test


def main():
    seqlens = os.path.join(ROOT, "bin", "seqlens")
    with tempfile.TemporaryDirectory() as tmp:
        probe, acts = os.path.join(tmp, "probe.json"), os.path.join(tmp, "acts.h5")
        subprocess.run([seqlens, "probe", MODEL, DATA, "--seed", "0", "-o", probe], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        subprocess.run([seqlens, "capture", MODEL, DATA, "--hook", "blocks.*.resid_post", "--reduce", "mean",
                        "-o", acts], check=True, cwd=ROOT)
        ours = json.load(open(probe))
        with h5py.File(acts, "r") as f:
            labels = f["labels"][...]
            feats = {row["layer"]: f[f"blocks.{row['layer']}.resid_post"][...].astype(np.float64) for row in ours["layers"]}
    is_test = split(len(labels), 0)
    out = []
    for row in ours["layers"]:
        x = feats[row["layer"]]
        mean, sd = x[~is_test].mean(0), x[~is_test].std(0, ddof=1)
        x = (x - mean) / np.where(sd > 0, sd, 1)
        clf = LogisticRegression(solver="liblinear", C=row["C"], tol=0.01).fit(x[~is_test], labels[~is_test])
        score = clf.decision_function(x[is_test])
        out.append({"layer": row["layer"], "C": row["C"], "test_accuracy": float(((score > 0) == labels[is_test]).mean()),
                    "test_auc": float(roc_auc_score(labels[is_test], score)), "n_test": int(is_test.sum())})
        print(f"layer {row['layer']}: C {row['C']:g}: sklearn accuracy {out[-1]['test_accuracy']:.4f} AUC "
              f"{out[-1]['test_auc']:.4f}; seqlens {row['test_accuracy']:.4f} / {row['test_auc']:.4f}")
    with open(os.path.join(ROOT, "tests", "trained", "probe_expected.json"), "w") as f:
        json.dump({"model": MODEL, "data": DATA, "seed": 0, "site": "pooled", "layers": out}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
