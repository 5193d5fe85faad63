#!/usr/bin/env bash
# bench/run.sh [--threads T] [--models LIST] [--n N --len L]   (default 2 threads, all three models)
#
# The benchmarks of issues 2, 18 and 20 in one command: builds seqlens, build/bench/bench_sweep,
# build/bench/sgemm_peak and build/bench/fma_peak, writes the models and data into bench/data/, times
# the 6-pass family-ablation sweep in seqlens and in PyTorch on the same model, data and thread count,
# measures the sgemm and FMA peaks, then times integrated gradients (16 steps) in seqlens and in Captum
# on the models and data in bench/data/ig/, and prints a Markdown table for each.  --models (a
# comma-separated subset of transformer,mamba,mamba2) benchmarks only those.  --n and --len change the data (default
# 8 x 2,048 for the sweep, 8 x 1,024 for integrated gradients; --len sets both): a quick check that
# everything runs, e.g. --n 2 --len 256; the benchmark's numbers are at the defaults.  See bench/README.md.
#
# Every part that can run does: a missing bench_sweep, Captum or a PyTorch failure is reported and
# the rest still runs.  Exit status: 0 when every part ran, 1 when one failed, 2 on bad usage.
# PYTHON=... picks the interpreter (default python3).

set -u
cd "$(dirname "$0")/.." || exit 1

THREADS=2
MODELS=transformer,mamba,mamba2
SIZES=() IG_LEN=1024   # make_bench_models.py's --n/--len for the sweep; IG's length
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) THREADS="${2:-}"; shift 2 || { echo "run.sh: --threads needs a value" >&2; exit 2; } ;;
        --threads=*) THREADS="${1#--threads=}"; shift ;;
        --models) MODELS="${2:-}"; shift 2 || { echo "run.sh: --models needs a value" >&2; exit 2; } ;;
        --models=*) MODELS="${1#--models=}"; shift ;;
        --n|--len)
            case "${2:-}" in ''|*[!0-9]*|0) echo "run.sh: $1: expected a positive integer, got '${2:-}'" >&2; exit 2 ;; esac
            SIZES+=("$1" "$2")
            if [ "$1" = --len ]; then IG_LEN="$2"; fi
            shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument '$1' (usage: bench/run.sh [--threads T] [--models LIST] [--n N] [--len L])" >&2; exit 2 ;;
    esac
done
case "$THREADS" in
    ''|*[!0-9]*|0) echo "run.sh: --threads: expected a positive integer, got '$THREADS'" >&2; exit 2 ;;
esac
for model in ${MODELS//,/ }; do
    case "$model" in
        transformer|mamba|mamba2) ;;
        *) echo "run.sh: --models: a comma-separated subset of transformer,mamba,mamba2, not '$MODELS'" >&2; exit 2 ;;
    esac
done
[ -n "${MODELS//,/}" ] || { echo "run.sh: --models: empty" >&2; exit 2; }

PY="${PYTHON:-python3}"
DATA=bench/data
BIN=build/bench
FAILED=0
say() { printf '\n== %s\n' "$*" >&2; }
fail() { printf 'run.sh: %s\n' "$*" >&2; FAILED=1; }

# --- Python: the models, the data and the PyTorch side all need it.
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "run.sh: '$PY' not found: the benchmark needs Python 3 with torch, safetensors, h5py and numpy" >&2
    exit 1
fi
if ! "$PY" -c 'import torch, safetensors, h5py, numpy' 2>/dev/null; then
    missing=$("$PY" -c 'import importlib.util as u; print(" ".join(m for m in ("torch","safetensors","h5py","numpy") if u.find_spec(m) is None))' 2>/dev/null)
    echo "run.sh: $PY cannot import: ${missing:-torch/safetensors/h5py/numpy}." >&2
    echo "        Install them (pip install torch safetensors h5py numpy) or set PYTHON=..." >&2
    exit 1
fi

# --- Build.  seqlens first: bench_sweep links its library.  The CPU build (CUDA=0 MPI=0): where nvcc
# is found a plain `make` builds into build-cuda/, and $BIN/bench_sweep would have no rule.
MAKE_CPU="make -s CUDA=0 MPI=0"
say "building seqlens ($MAKE_CPU)"
SEQLENS_OK=1   # the sweep's seqlens side (bench_sweep)
CLI_OK=1       # bin/seqlens, for integrated gradients
if ! $MAKE_CPU >&2; then
    fail "'$MAKE_CPU' failed at the repository root: the seqlens side is skipped"
    SEQLENS_OK=0 CLI_OK=0
fi
if [ "$SEQLENS_OK" = 1 ]; then
    if [ ! -f bench/bench_sweep.c ]; then
        fail "bench/bench_sweep.c does not exist yet: the seqlens side is skipped"
        SEQLENS_OK=0
    elif ! $MAKE_CPU "$BIN/bench_sweep" >&2; then
        fail "'$MAKE_CPU $BIN/bench_sweep' failed (is its Makefile rule there?): the seqlens side is skipped"
        SEQLENS_OK=0
    fi
fi
mkdir -p "$BIN"
if ! cc -O2 -D_GNU_SOURCE -I. -o "$BIN/sgemm_peak" bench/sgemm_peak.c core/blas.c -lopenblas; then
    fail "could not build $BIN/sgemm_peak (needs libopenblas-dev): no sgemm peak"
fi
if ! cc -O3 -march=native -ffp-contract=fast -fopenmp -o "$BIN/fma_peak" bench/fma_peak.c; then
    fail "could not build $BIN/fma_peak: no FMA peak"
fi

# --- Models and data (seeded: the same files every time).  Old results must not reach the table.
say "writing models and data to $DATA/"
rm -f "$DATA"/seqlens_*.json "$DATA"/torch.json "$DATA"/torch_logits.json "$DATA"/sgemm.json "$DATA"/fma.json
if ! "$PY" bench/make_bench_models.py "$DATA" ${SIZES[@]+"${SIZES[@]}"} >&2; then
    echo "run.sh: bench/make_bench_models.py failed; nothing to benchmark" >&2
    exit 1
fi

# Two cores: a busy machine (a build, another benchmark) slows the multi-threaded runs many times.
# Percent of all CPUs busy over one second while this script sleeps (Linux /proc/stat).
busy_percent() {
    a=$(head -n 1 /proc/stat 2>/dev/null) || { echo 0; return; }
    sleep 1
    b=$(head -n 1 /proc/stat)
    printf '%s\n%s\n' "$a" "$b" | awk '{ t = 0; for (i = 2; i <= NF; i++) t += $i; tot[NR] = t; idle[NR] = $5 + $6 }
        END { dt = tot[2] - tot[1]; if (dt <= 0) print 0; else printf "%d\n", 100 * (1 - (idle[2] - idle[1]) / dt) }'
}
busy=$(busy_percent)
if [ "$busy" -gt 10 ]; then
    echo "run.sh: WARNING: other processes keep ${busy}% of the CPUs busy: the timings below will be pessimistic" >&2
fi

# --- seqlens: one JSON line {"seconds", "passes", "logits"} per model.
if [ "$SEQLENS_OK" = 1 ]; then
    for model in ${MODELS//,/ }; do
        say "seqlens: $model sweep"
        out="$DATA/seqlens_$model.json"
        if "$BIN/bench_sweep" "$DATA/$model" "$DATA/data.h5" --threads "$THREADS" --passes 6 > "$out.tmp"; then
            grep '^[[:space:]]*{' "$out.tmp" | tail -n 1 > "$out"
            [ -s "$out" ] || fail "$BIN/bench_sweep ($model) printed no JSON line"
        else
            fail "$BIN/bench_sweep ($model) exited with status $?"
        fi
        rm -f "$out.tmp"
    done
fi

# --- PyTorch: checks its models against the float64 reference, then times them.
say "PyTorch: checking against tests/reference/seqlens_ref.py, then timing"
"$PY" bench/torch_sweep.py "$DATA" --threads "$THREADS" --models "$MODELS" > "$DATA/torch.json"
status=$?
if [ "$status" != 0 ]; then
    fail "bench/torch_sweep.py exited with status $status (see its message above): no PyTorch timings"
    rm -f "$DATA/torch.json"
fi

# --- The machine's sgemm peak at the same thread count.
if [ -x "$BIN/sgemm_peak" ]; then
    say "sgemm peak"
    "$BIN/sgemm_peak" --threads "$THREADS" > "$DATA/sgemm.json" || fail "$BIN/sgemm_peak failed"
fi
if [ -x "$BIN/fma_peak" ]; then
    say "FMA peak"
    "$BIN/fma_peak" --threads "$THREADS" > "$DATA/fma.json" || fail "$BIN/fma_peak failed"
fi

say "results (Markdown, for bench/README.md)"
"$PY" bench/report.py "$DATA" --threads "$THREADS" || fail "bench/report.py failed"

# --- Integrated gradients (issues 18, 20): the rotary Transformer, the Mamba and the Mamba-2, N 8 x
# L 1,024, 16 steps.
IG="$DATA/ig"
say "integrated gradients: writing models and data to $IG/"
rm -f "$IG"/seqlens_ig.json "$IG"/seqlens_ig_*.json "$IG"/seqlens_ig_*.h5 "$IG"/torch_ig.json "$IG"/torch_ig_attr.h5
if "$PY" bench/make_bench_models.py "$IG" ${SIZES[@]+"${SIZES[@]}"} --len "$IG_LEN" --rope 1 >&2; then
    if [ "$CLI_OK" = 1 ]; then
        say "seqlens: attribute --method ig --steps 16: $MODELS"
        "$PY" bench/seqlens_ig.py "$IG" --threads "$THREADS" --models "$MODELS" > "$IG/seqlens_ig.json" ||
            { fail "bench/seqlens_ig.py failed (see its message above): no seqlens IG timings"; rm -f "$IG/seqlens_ig.json"; }
    else
        fail "seqlens was not built: the seqlens side of integrated gradients is skipped"
    fi
    if "$PY" -c 'import captum' 2>/dev/null; then
        say "PyTorch: Captum IntegratedGradients (checking against tests/reference/seqlens_ref.py, then timing)"
        "$PY" bench/torch_ig.py "$IG" --threads "$THREADS" --models "$MODELS" > "$IG/torch_ig.json" ||
            { fail "bench/torch_ig.py failed (see its message above): no Captum timings"; rm -f "$IG/torch_ig.json"; }
    else
        fail "$PY cannot import captum (pip install captum): the PyTorch side of integrated gradients is skipped"
    fi
    say "integrated gradients: results (Markdown, for bench/README.md)"
    echo
    "$PY" bench/ig_report.py "$IG" || fail "bench/ig_report.py: a side is missing or the attributions disagree"
else
    fail "bench/make_bench_models.py failed for $IG: integrated gradients not benchmarked"
fi
exit "$FAILED"
