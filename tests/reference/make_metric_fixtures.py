"""Golden values for core/metrics.c, core/correlation.c and core/roc.c
(python3 tests/reference/make_metric_fixtures.py): writes tests/fixtures/metrics.json.

AUC comes from sklearn.metrics.roc_auc_score, Pearson and Spearman from scipy.stats. DeLong's
test is computed here from its definition (the O(m·n) placement values of DeLong, DeLong &
Clarke-Pearson 1988), independently of the midrank shortcut the C code uses. The bootstrap
replays seqlens' generator (splitmix64 with Lemire's bounded draw) so that the C code must give
the same interval to rounding.
"""
import json
import math
import os

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from seqlens_rng import SplitMix

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "metrics.json")


def placements(scores, labels):
    """V10 over positives and V01 over negatives, from the definition."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


def delong(a, b, labels):
    a10, a01 = placements(a, labels)
    b10, b01 = placements(b, labels)
    s10 = np.cov(np.vstack([a10, b10]))
    s01 = np.cov(np.vstack([a01, b01]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / len(a10) + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / len(a01)
    diff = b10.mean() - a10.mean()
    z = diff / math.sqrt(var)
    return z, math.erfc(abs(z) / math.sqrt(2))


def bootstrap(a, b, labels, reps, seed):
    rng, n, deltas = SplitMix(seed), len(labels), []
    while len(deltas) < reps:
        idx = np.array([rng.below(n) for _ in range(n)])
        y = labels[idx]
        if y.min() == y.max():
            continue
        deltas.append(roc_auc_score(y, b[idx]) - roc_auc_score(y, a[idx]))
    return np.percentile(deltas, [2.5, 97.5]).tolist()


def case(name, rng, n, ties, corr):
    labels = rng.permutation(np.arange(n) % 2)
    base = rng.standard_normal(n) + 0.8 * labels
    a = base + 0.5 * rng.standard_normal(n)
    b = corr * base + (1 - corr) * rng.standard_normal(n)
    if ties:  # coarse scores: many ties within and across classes
        a, b = np.round(a * 2) / 2, np.round(b * 2) / 2
    a, b = a.astype(np.float32), b.astype(np.float32)
    z, p = delong(a.astype(np.float64), b.astype(np.float64), labels)
    return {
        "name": name, "labels": labels.tolist(), "a": a.tolist(), "b": b.tolist(),
        "auc_a": roc_auc_score(labels, a), "auc_b": roc_auc_score(labels, b),
        "delong_z": z, "delong_p": p,
        "pearson": stats.pearsonr(a.astype(np.float64), b.astype(np.float64))[0],
        "spearman": stats.spearmanr(a, b)[0],
        "bootstrap_reps": 200, "bootstrap_seed": 7, "bootstrap_ci": bootstrap(a, b, labels, 200, 7),
    }


def main():
    rng = np.random.default_rng(20261123)
    cases = [case("continuous", rng, 60, False, 0.7), case("ties", rng, 80, True, 0.5),
             case("small", rng, 9, False, 0.9)]
    with open(OUT, "w") as f:
        json.dump({"source": "tests/reference/make_metric_fixtures.py", "cases": cases}, f, indent=1)
        f.write("\n")
    for c in cases:
        print(f"{c['name']}: auc {c['auc_a']:.4f}/{c['auc_b']:.4f} z {c['delong_z']:.4f} p {c['delong_p']:.4f} "
              f"r {c['pearson']:.4f} rho {c['spearman']:.4f} ci {c['bootstrap_ci']}")


if __name__ == "__main__":
    main()
