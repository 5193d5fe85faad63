"""Golden gradients (run: python3 tests/reference/make_grad_fixtures.py [VARIANT...], about 5 s on a CPU).

For every tests/fixtures/<variant>/ with a config.json, reads the model and data.h5 the way the C
code does (prefix stripped, lengths inferred where /lengths is absent) and writes grad_expected.h5
next to them: the gradient of each example's own logit with respect to that example's activations
at the residual-stream hooks

    embed, blocks.<i>.resid_pre, blocks.<i>.resid_post (every layer i), final, pooled

one float32 dataset per hook, same name and shape as in expected.h5 ([N, L, d]; pooled [N, d]),
zeros at positions >= length, plus /logits [N] float32 (equal to expected.h5 /logits).

Computed with torch autograd in float64 through seqlens_ref.run() itself, unmodified: the token
embedding is passed in through run()'s optional `token_embed` as a leaf that requires grad (embed =
token embedding + positional term, so d logit / d embed = d logit / d token_embed exactly) and every
other hook tensor keeps its gradient with retain_grad().  Examples do not interact, so the gradient
of the sum of the logits is each example's own gradient.  Other fixture files are read, never
rewritten.  Exits non-zero if any self-check fails:
  - run() with the leaf token_embed returns exactly (torch.equal) the default run()'s hooks, and
    float32(logits) equals expected.h5 /logits;
  - per-example backward (logits[n] alone) equals the summed backward;
  - central finite differences in float64 on random coordinates of embed (valid positions and
    positions >= length) agree with autograd to 1e-6 relative;
  - grad w.r.t. pooled is head.weight[0] (1-row head) or head.weight[1] - head.weight[0] (2-row);
  - gradients at positions >= length are exactly 0 before they are zeroed (all variants: Mamba and
    causal models by causality, non-causal Transformers because padded keys are masked and padded
    queries never reach the pooled vector);
  - grad_expected.h5 read back: float32 rounding only and exact zeros beyond each length.
"""
import os
import sys
import zlib

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seqlens_ref as ref  # noqa: E402

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
FD_TOLERANCE = 1e-6      # relative, finite differences against autograd
FD_STEP = 1e-3           # step h of the fourth-order central difference on one embed coordinate
FD_VALID, FD_PAD = 8, 2  # coordinates per variant at valid positions and at positions >= length
EXACT_TOLERANCE = 1e-12  # relative, float64 against float64 (pooled grad, per-example backward)
SEED = 20240607


def hook_names(config):
    names = ["embed"]
    for i in range(config["n_layers"]):
        names += [f"blocks.{i}.resid_pre", f"blocks.{i}.resid_post"]
    return names + ["final", "pooled"]


def rel_err(ours, theirs):
    scale = theirs.abs().max().item()
    diff = (ours - theirs).abs().max().item()
    return diff / scale if scale > 0 else diff


def forward(v, token_embed=None):
    return ref.run(v["config"], v["params"], v["tokens"], v["lengths"], token_embed=token_embed)


def gradients(v, select=None):
    """{hook: float64 grad} of logits.sum() (or logits[select]), and the float64 logits."""
    leaf = ref.token_embedding(v["config"], v["params"], v["tokens"]).clone().requires_grad_(True)
    hooks = forward(v, leaf)
    names = hook_names(v["config"])
    for name in names:
        if hooks[name] is not leaf:
            hooks[name].retain_grad()
    target = hooks["logits"].sum() if select is None else hooks["logits"][select]
    target.backward()
    grads = {}
    for name in names:
        g = hooks[name].grad
        grads[name] = torch.zeros_like(hooks[name]) if g is None else g.detach().clone()
    return grads, hooks["logits"].detach(), hooks


def logit_with_embed(v, token_embed, n):
    with torch.no_grad():
        return forward(v, token_embed)["logits"][n].item()


def finite_differences(v, grad_embed, rng):
    """Worst relative error over FD_VALID + FD_PAD random embed coordinates.

    Relative to max(|autograd|, 1e-3 * max |autograd| of that example's embed gradient) so that a
    coordinate whose gradient happens to be near 0 is judged on the example's scale."""
    base = ref.token_embedding(v["config"], v["params"], v["tokens"]).clone()
    N, L, d = base.shape
    lengths = v["lengths"].tolist()
    picks = []
    while len(picks) < FD_VALID:
        n = int(rng.integers(N))
        pick = (n, int(rng.integers(lengths[n])), int(rng.integers(d)))
        if pick not in picks:
            picks.append(pick)
    padded = [n for n in range(N) if lengths[n] < L]
    for _ in range(FD_PAD if padded else 0):
        n = padded[int(rng.integers(len(padded)))]
        picks.append((n, int(rng.integers(lengths[n], L)), int(rng.integers(d))))

    def shifted(n, t, j, step):
        x = base.clone()
        x[n, t, j] += step
        return logit_with_embed(v, x, n)

    worst, rows = 0.0, []
    for n, t, j in picks:
        h = FD_STEP
        # (8 (f(h) - f(-h)) - (f(2h) - f(-2h))) / 12h: truncation O(h^4), rounding O(eps / h).
        fd = (8 * (shifted(n, t, j, h) - shifted(n, t, j, -h))
              - (shifted(n, t, j, 2 * h) - shifted(n, t, j, -2 * h))) / (12 * h)
        ad = grad_embed[n, t, j].item()
        floor = 1e-3 * grad_embed[n].abs().max().item()
        err = abs(fd - ad) / max(abs(ad), floor, 1e-300)
        worst = max(worst, err)
        rows.append((n, t, j, ad, fd, err))
    return worst, rows


def head_direction(params):
    w = params["head.weight"]
    return w[0] if w.shape[0] == 1 else w[1] - w[0]


def pad_max(grads, lengths):
    """Largest |grad| at positions >= length over the [N, L, d] hooks."""
    worst = 0.0
    for name, g in grads.items():
        if name == "pooled":
            continue
        invalid = ~ref.valid_mask(lengths, g.shape[1])
        if invalid.any():
            worst = max(worst, g[invalid].abs().max().item())
    return worst


def write_grads(path, grads, logits):
    with h5py.File(path, "w") as f:
        f.attrs["source"] = ("tests/reference/make_grad_fixtures.py: d logit_n / d hook_n, "
                             "float64 autograd through seqlens_ref.run(), cast to float32")
        for name, value in grads.items():
            f.create_dataset(name, data=value.numpy().astype(np.float32))
        f.create_dataset("logits", data=logits.numpy().astype(np.float32))


def check_written(path, grads, logits, lengths):
    worst = 0.0
    with h5py.File(path, "r") as f:
        assert sorted(f.keys()) == sorted(list(grads) + ["logits"]), f"{path}: unexpected datasets"
        for name, value in list(grads.items()) + [("logits", logits)]:
            stored = torch.from_numpy(f[name][...]).to(torch.float64)
            assert stored.shape == value.shape, (path, name, stored.shape, value.shape)
            worst = max(worst, rel_err(stored, value))
            if name not in ("pooled", "logits"):
                invalid = ~ref.valid_mask(lengths, stored.shape[1])
                assert not stored[invalid].any(), f"{path}: {name} not zero beyond length"
    return worst


def process(variant_dir, rng):
    name = os.path.basename(variant_dir)
    config, params = ref.load_model(variant_dir)
    tokens, lengths = ref.load_tokens(os.path.join(variant_dir, "data.h5"), config.get("pad_token_id", 0))
    v = {"config": config, "params": params, "tokens": tokens, "lengths": lengths}
    failed, numbers = [], {}

    grads, logits, hooks = gradients(v)

    # run() with the leaf token embedding is the default run(), bit for bit.
    default = forward(v)
    same = all(torch.equal(default[k], hooks[k].detach()) for k in default)
    numbers["run() unchanged with leaf token_embed"] = 0.0 if same else 1.0
    if not same:
        failed.append(f"{name}: run(token_embed=leaf) differs from run()")
    with h5py.File(os.path.join(variant_dir, "expected.h5"), "r") as f:
        expected_logits = f["logits"][...]
    if not np.array_equal(logits.numpy().astype(np.float32), expected_logits):
        failed.append(f"{name}: logits differ from expected.h5 /logits")

    # Each example's own backward equals the summed one.
    worst = 0.0
    for n in range(tokens.shape[0]):
        own, _, _ = gradients(v, select=n)
        for hook in grads:
            worst = max(worst, rel_err(own[hook][n], grads[hook][n]))
    numbers["per-example backward vs summed"] = worst
    if worst >= EXACT_TOLERANCE:
        failed.append(f"{name}: per-example gradients differ from the summed ones ({worst:.2e})")

    # Finite differences on embed.
    fd_worst, fd_rows = finite_differences(v, grads["embed"], rng)
    numbers["finite differences on embed"] = fd_worst
    if fd_worst >= FD_TOLERANCE:
        failed.append(f"{name}: finite differences disagree ({fd_worst:.2e})")

    # Pooled gradient is the head direction.
    direction = head_direction(params).expand_as(grads["pooled"])
    pooled_err = rel_err(grads["pooled"], direction)
    numbers["grad pooled vs head direction"] = pooled_err
    if pooled_err >= EXACT_TOLERANCE:
        failed.append(f"{name}: grad pooled is not the head direction ({pooled_err:.2e})")

    # Exact zeros beyond each length before zeroing.
    pad = pad_max(grads, lengths)
    numbers["max |grad| at positions >= length"] = pad
    if pad != 0.0:
        failed.append(f"{name}: nonzero gradient at positions >= length ({pad:.2e})")

    written = ref.zero_padding(grads, lengths)
    path = os.path.join(variant_dir, "grad_expected.h5")
    write_grads(path, written, logits)
    numbers["grad_expected.h5 vs float64 (float32)"] = check_written(path, written, logits, lengths)
    if numbers["grad_expected.h5 vs float64 (float32)"] >= 1e-6:
        failed.append(f"{name}: grad_expected.h5 differs from the float64 gradients")

    causal = config["arch"] in ("mamba", "mamba2") or config.get("causal", False)
    print(f"{name} ({config['arch']}, pooling {config['pooling']}, "
          f"{'causal' if causal else 'non-causal'}, head rows {params['head.weight'].shape[0]}, "
          f"lengths {lengths.tolist()} of {tokens.shape[1]}): {os.path.getsize(path)} bytes")
    for check, value in numbers.items():
        print(f"    {check:44s} {value:.2e}")
    for n, t, j, ad, fd, err in fd_rows:
        where = "valid" if t < lengths[n] else "pad"
        print(f"      fd embed[{n},{t},{j}] ({where}) autograd {ad:+.10e} fd {fd:+.10e} rel {err:.1e}")
    embed_norm = written["embed"].flatten(1).norm(dim=1)
    print("    |grad embed| per example " + " ".join(f"{x:.3e}" for x in embed_norm.tolist()))
    return failed


def main():
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    variants = sorted(d for d in os.listdir(FIXTURES)
                      if os.path.isfile(os.path.join(FIXTURES, d, "config.json")))
    # Names on the command line: only those (the other files are left as they are).
    only = set(sys.argv[1:])
    if only - set(variants):
        sys.exit(f"unknown variants: {sorted(only - set(variants))}")
    variants = [v for v in variants if not only or v in only]
    failed = []
    for name in variants:
        # One generator per variant: adding a fixture does not move the others' picks.
        rng = np.random.default_rng([SEED, zlib.crc32(name.encode())])
        failed += process(os.path.join(FIXTURES, name), rng)
    if failed:
        print("SELF-CHECK FAILED:\n  " + "\n  ".join(failed), file=sys.stderr)
        sys.exit(1)
    print(f"grad_expected.h5 written for {len(variants)} variants in {FIXTURES}; self-checks passed")


if __name__ == "__main__":
    main()
