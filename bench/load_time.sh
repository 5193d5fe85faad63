#!/bin/sh
# Load time (issue 17): `seqlens info DIR` = the whole load (sl_model_load: find the weights file, read
# and check it, detect the layout, convert every tensor to float32, check for non-finite values, build
# the model's hook table) plus printing, on
#   pt_100k:   a torch.save state_dict of a 104,129-parameter nn.TransformerEncoder classifier
#              (d_model 64, 2 layers, d_ff 256; model.pt 424,656 bytes, F32)
#   st_100mb:  a safetensors file of a 25,252,353-parameter one (d_model 512, 8 layers, d_ff 2048;
#              model.safetensors 101,019,492 bytes, F32)
# both written by PyTorch (bench/load_time.sh makes them with python3 into DIR, default build/bench/load).
# Prints, per file, the best of 5 runs of user+sys CPU seconds and of wall seconds (OMP_NUM_THREADS=1;
# /usr/bin/time's resolution is 10 ms).
# Usage: sh bench/load_time.sh [DIR]      (needs torch and safetensors; run from the repository root)
set -e
S=${SEQLENS:-bin/seqlens}
D=${1:-build/bench/load}
mkdir -p "$D/pt_100k" "$D/st_100mb"
python3 - "$D" <<'PY'
import json, os, sys
import torch, torch.nn as nn
from safetensors.torch import save_file

def model(vocab, d, layers, d_ff):
    m = nn.Module()
    m.embedding = nn.Embedding(vocab, d)
    m.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, d_ff, batch_first=True), layers,
                                      enable_nested_tensor=False)
    m.head = nn.Linear(d, 1)
    return m

cfg = {"n_heads": 4, "norm_first": False, "activation": "relu", "pooling": "mean", "positional": "none"}
torch.manual_seed(0)
root = sys.argv[1]
small = model(64, 64, 2, 256)
torch.save(small.state_dict(), os.path.join(root, "pt_100k", "model.pt"))
big = model(64, 512, 8, 2048)
save_file({k: v.contiguous() for k, v in big.state_dict().items()}, os.path.join(root, "st_100mb", "model.safetensors"))
for name, m in (("pt_100k", small), ("st_100mb", big)):
    json.dump(cfg, open(os.path.join(root, name, "config.json"), "w"))
    print(name, sum(p.numel() for p in m.parameters()), "parameters,",
          os.path.getsize(os.path.join(root, name, "model.pt" if name == "pt_100k" else "model.safetensors")), "bytes")
PY
for name in pt_100k st_100mb; do
    "$S" info "$D/$name" >/dev/null # fails loudly if the file does not load
    best_cpu="" best_wall=""
    for i in 1 2 3 4 5; do
        t=$(OMP_NUM_THREADS=1 /usr/bin/time -f "%U %S %e" "$S" info "$D/$name" 2>&1 >/dev/null | tail -1)
        cpu=$(echo "$t" | awk '{printf "%.3f", $1 + $2}')
        wall=$(echo "$t" | awk '{printf "%.3f", $3}')
        best_cpu=$(printf '%s\n%s\n' "$cpu" "$best_cpu" | grep . | sort -g | head -1)
        best_wall=$(printf '%s\n%s\n' "$wall" "$best_wall" | grep . | sort -g | head -1)
    done
    echo "$name: seqlens info, best of 5: user+sys $best_cpu s, wall $best_wall s"
done
