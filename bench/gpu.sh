#!/bin/sh
# One command on a machine with a GPU (make gpu-check): builds the CUDA
# backend, runs the device-vs-CPU parity checks on every fixture and hook
# (build-cuda/bench/gpu_parity, fp32, TF32 off, relative error <= 1e-4)
# and every command on the examples with --device cuda against --device cpu
# (tests/test_device_cli.c), then the seed-scale benchmark: N = 2,000, L = 4,096, d_model 64, 2 layers,
# baseline + 14 family ablations, seqlens --device cuda against PyTorch on
# the same card (Mamba-2 against the fastest of bench/torch_mamba2.py's chunked scans). The benchmark needs python3 with torch, safetensors, h5py
# and numpy; without them it is reported as not run. Prints Markdown for
# bench/README.md; exit 1 when any part failed or did not run.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PATH=$PATH:/usr/local/cuda/bin
export PATH
status=0
sh scripts/install-deps.sh >/dev/null 2>&1 || echo "(install-deps.sh failed; building with what is installed)"
if ! make -j"$(nproc)" CUDA=1 bin/seqlens build-cuda/bench/gpu_parity build-cuda/bench/bench_sweep \
    build-cuda/tests/test_device_cli >build-gpu.log 2>&1; then
    tail -n 20 build-gpu.log
    exit 1
fi
echo "## GPU run of $(date -u +%Y-%m-%d) on $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
echo
echo "### Parity (build-cuda/bench/gpu_parity)"
echo
build-cuda/bench/gpu_parity >build-gpu-parity.log 2>&1 || status=1
grep -E "^device:|FAIL" build-gpu-parity.log | head -n 20 | sed 's/^/    /'
echo "    $(tail -n 1 build-gpu-parity.log)"
echo
echo "### Every command, --device cuda against --device cpu (build-cuda/tests/test_device_cli --real-device)"
echo
SEQLENS=bin/seqlens build-cuda/tests/test_device_cli --real-device >build-gpu-cli.log 2>&1 || status=1
grep -E "FAIL" build-gpu-cli.log | head -n 20 | sed 's/^/    /'
echo "    $(tail -n 1 build-gpu-cli.log)"
echo
out=bench/data/gpu
mkdir -p "$out"
if ! "$PY" -c "import torch, safetensors, h5py, numpy" 2>/dev/null; then
    echo "### Benchmark: not run ($PY lacks torch, safetensors, h5py or numpy)"
    exit 1
fi
"$PY" bench/make_bench_models.py "$out" --n 2000 --len 4096 --families 14 >&2 || exit 1
for arch in transformer mamba mamba2; do
    build-cuda/bench/bench_sweep "$out/$arch" "$out/data.h5" --device cuda --passes 15 --reps 2 >"$out/seqlens_$arch.json" || status=1
done
"$PY" bench/torch_gpu_sweep.py "$out" --passes 15 >"$out/torch_gpu.json" || status=1
"$PY" bench/gpu_report.py "$out" || status=1
exit $status
