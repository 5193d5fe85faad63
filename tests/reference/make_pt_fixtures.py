"""Writes tests/fixtures/pt/: existing fixtures' weights re-saved with
torch.save, the way users save a state_dict, for tests/test_ptfile.c.

Each directory holds the original fixture's config.json and one weights file
whose tensors are bit for bit the original model.safetensors' (so seqlens
must load exactly the same float32 weights from it):

  tf_pt        model.pt           F32 state_dict (an OrderedDict, with _metadata)
  tf_bin       pytorch_model.bin  the same, the name save_pretrained uses
  tf_f16_pth   model.pth          F16 (tf_pre_gelu_sin_f16's tensors)
  tf_bf16_pt   weights.pt         BF16 (tf_post_relu_rope_causal_bf16's)
  tf_views_pt  model.pt           non-contiguous views (transposed twice, a
                                  strided slice), two tensors sharing one
                                  storage at an offset, nn.Parameter-wrapped
                                  tensors, a plain dict
  mamba_pt     model.pt           mamba_mean_f32 saved from real modules'
                                  state_dict() (nn.Parameter everywhere)

Run from the repository root: python3 tests/reference/make_pt_fixtures.py
(torch and safetensors; seeded, reproducible; a second run rewrites the same
tensors, though torch.save's zip stamps a fresh serialization id).
"""
import collections
import os
import shutil

import torch
from safetensors.torch import load_file

FIX = "tests/fixtures"
OUT = os.path.join(FIX, "pt")


def original(name):
    return load_file(os.path.join(FIX, name, "model.safetensors"))


def write(dirname, source, filename, state_dict):
    d = os.path.join(OUT, dirname)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    shutil.copy(os.path.join(FIX, source, "config.json"), d)
    torch.save(state_dict, os.path.join(d, filename))
    # the file must hold exactly the original tensors
    back = torch.load(os.path.join(d, filename), weights_only=True)
    want = original(source)
    assert set(back) == set(want), (dirname, set(back) ^ set(want))
    for k, v in want.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), (dirname, k)


def as_module_state(tensors):
    """An OrderedDict with torch's _metadata, as Module.state_dict() returns."""
    sd = collections.OrderedDict(sorted(tensors.items()))
    sd._metadata = collections.OrderedDict({"": {"version": 1}})
    return sd


def views(tensors):
    """The same values through the layouts torch.save keeps as they are."""
    t = dict(tensors)
    # transposed twice: a [16, 8] view of an [8, 16] storage, strides (1, 16)
    w = t["layers.0.linear1.weight"]
    t["layers.0.linear1.weight"] = w.t().contiguous().t()
    # a strided slice: every other row of a buffer twice as tall
    w = t["layers.1.linear2.weight"]
    big = torch.zeros(2 * w.shape[0], w.shape[1])
    big[::2] = w
    t["layers.1.linear2.weight"] = big[::2]
    # one storage, two tensors, the second at an offset
    a, b = t["layers.0.norm1.weight"], t["layers.0.self_attn.in_proj_weight"]
    flat = torch.cat([a.flatten(), b.flatten()])
    t["layers.0.norm1.weight"] = flat[: a.numel()].view(a.shape)
    t["layers.0.self_attn.in_proj_weight"] = flat[a.numel():].view(b.shape)
    assert not t["layers.0.linear1.weight"].is_contiguous()
    assert t["layers.0.self_attn.in_proj_weight"].storage_offset() == a.numel()
    # nn.Parameter-wrapped entries (_rebuild_parameter)
    for k in ("embedding.weight", "head.weight", "head.bias"):
        t[k] = torch.nn.Parameter(t[k], requires_grad=(k != "head.bias"))
    return t  # a plain dict, no _metadata


class Mixer(torch.nn.Module):
    """mamba_mean_f32's parameters under seqlens's own names, as
    nn.Parameters of real modules: what model.state_dict() saves."""

    def __init__(self, tensors):
        super().__init__()
        for k, v in sorted(tensors.items()):
            *path, leaf = k.split(".")
            mod = self
            for p in path:
                if not hasattr(mod, p):
                    mod.add_module(p, torch.nn.Module())
                mod = getattr(mod, p)
            mod.register_parameter(leaf, torch.nn.Parameter(v.clone()))


def main():
    torch.manual_seed(0)
    f32 = original("tf_pre_relu_learned")
    write("tf_pt", "tf_pre_relu_learned", "model.pt", as_module_state(f32))
    write("tf_bin", "tf_pre_relu_learned", "pytorch_model.bin", as_module_state(f32))
    write("tf_f16_pth", "tf_pre_gelu_sin_f16", "model.pth", as_module_state(original("tf_pre_gelu_sin_f16")))
    write("tf_bf16_pt", "tf_post_relu_rope_causal_bf16", "weights.pt",
          as_module_state(original("tf_post_relu_rope_causal_bf16")))
    write("tf_views_pt", "tf_pre_relu_learned", "model.pt", views(f32))
    write("mamba_pt", "mamba_mean_f32", "model.pt", Mixer(original("mamba_mean_f32")).state_dict())
    print("wrote", ", ".join(sorted(os.listdir(OUT))), "under", OUT)


if __name__ == "__main__":
    main()
