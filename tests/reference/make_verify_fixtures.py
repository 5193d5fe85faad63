"""Logits files as PyTorch users write them, for `seqlens verify`
(python3 tests/reference/make_verify_fixtures.py): writes into
tests/fixtures/tf_pre_relu_learned/ the reference logits of its expected.h5
(float64 torch, seqlens_ref.py) the way a user saves a model's output:

- logits.npy: np.save of a float32 torch tensor's .numpy(), shape [n];
- logits_2class.npy: a two-class head's output [n, 2] in float64 (z1 - z0 is
  the logit; z0 is an arbitrary offset per example), np.save;
- logits_v3.npy: shape [n, 1] float32 written as .npy format version 3.0
  (numpy's writer, np.lib.format.write_array), which numpy uses for headers
  that are not Latin-1 or are longer than 65535 bytes.

Deterministic: the same files byte for byte on every run.
"""
import os

import h5py
import numpy as np
import torch

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tf_pre_relu_learned")

with h5py.File(os.path.join(DIR, "expected.h5"), "r") as f:
    ref = torch.from_numpy(np.asarray(f["logits"], dtype=np.float64))

# what the README shows: the model's output, detached, as numpy
np.save(os.path.join(DIR, "logits.npy"), ref.float().detach().numpy())

offset = torch.linspace(-1.5, 2.0, ref.shape[0], dtype=torch.float64)
two = torch.stack([offset, offset + ref], dim=1)
np.save(os.path.join(DIR, "logits_2class.npy"), two.detach().numpy())

with open(os.path.join(DIR, "logits_v3.npy"), "wb") as out:
    np.lib.format.write_array(out, ref.float().reshape(-1, 1).numpy(), version=(3, 0))

for name in ("logits.npy", "logits_2class.npy", "logits_v3.npy"):
    back = np.load(os.path.join(DIR, name))
    z = back[:, 1] - back[:, 0] if back.ndim == 2 and back.shape[1] == 2 else back.reshape(-1)
    assert np.max(np.abs(z - ref.numpy())) <= 1e-6 * max(1.0, float(np.max(np.abs(ref.numpy())))), name
    print(name, back.dtype, back.shape)
