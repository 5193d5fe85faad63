#!/usr/bin/env bash
# bench/analyze_scale.sh [--n N] [--len L] [--threads T] [--model mamba|mamba2|transformer|both|all] [--layers K] [--dir DIR]
#
# `seqlens analyze` at the user's scale (issue 18): N gym sequences of L tokens (default 500 x 4,096,
# 2 threads).  Writes `seqlens gym --task count --n N --len L --seed 1 -o DIR/data.h5` and d 64 models
# of K layers (default 4; bench/make_bench_models.py's initialisers, the gym's vocabulary, pad token 0),
# then per model times `seqlens eval` three times, runs `seqlens analyze MODEL DIR/data.h5 -o DIR/an-MODEL
# --threads T --force`, times eval three times more, and prints each stage's seconds (from
# DIR/an-MODEL/analyze.json) and the total, also as multiples of one eval pass (the median of the six:
# a single eval varied by 3% within minutes here, and by 16% over the hour of a run, so the evals
# bracket the analyze they divide), as a Markdown table.  --model defaults to mamba (the issue's
# model); mamba2 is bench/make_bench_models.py's Mamba-2 (headdim 16, d_state 64); both is mamba and
# transformer, all adds mamba2; the Transformer's attention makes it many times slower at L 4,096.  DIR defaults to
# bench/data/analyze-NxL.  Exit status: 0 when every run finished, 1 when one failed, 2 on bad usage.
# PYTHON=... picks the interpreter (default python3; needs h5py, numpy, torch, safetensors).

set -u
cd "$(dirname "$0")/.." || exit 1

N=500 LEN=4096 THREADS=2 MODEL=mamba LAYERS=4 DIR=
usage() { echo "usage: bench/analyze_scale.sh [--n N] [--len L] [--threads T] [--model mamba|mamba2|transformer|both|all] [--layers K] [--dir DIR]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || { [ "$1" = -h ] || [ "$1" = --help ] && { sed -n '2,13p' "$0"; exit 0; }; usage; }
    case "$1" in
        --n) N="$2" ;;
        --len) LEN="$2" ;;
        --threads) THREADS="$2" ;;
        --model) MODEL="$2" ;;
        --layers) LAYERS="$2" ;;
        --dir) DIR="$2" ;;
        *) usage ;;
    esac
    shift 2
done
for v in "$N" "$LEN" "$THREADS" "$LAYERS"; do
    case "$v" in ''|*[!0-9]*|0) echo "analyze_scale.sh: expected a positive integer, got '$v'" >&2; usage ;; esac
done
case "$MODEL" in
    mamba|mamba2|transformer) MODELS="$MODEL" ;;
    both) MODELS="mamba transformer" ;;
    all) MODELS="mamba mamba2 transformer" ;;
    *) echo "analyze_scale.sh: --model: mamba, mamba2, transformer, both or all, not '$MODEL'" >&2; usage ;;
esac
DIR="${DIR:-bench/data/analyze-${N}x${LEN}}"
PY="${PYTHON:-python3}"
SEQLENS=bin/seqlens
say() { printf '\n== %s\n' "$*" >&2; }
now() { date +%s.%N; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f\n", b - a }'; }

say "building seqlens (make CUDA=0 MPI=0 $SEQLENS: the CPU build)"
make -s CUDA=0 MPI=0 "$SEQLENS" >&2 || { echo "analyze_scale.sh: 'make CUDA=0 MPI=0 $SEQLENS' failed" >&2; exit 1; }
mkdir -p "$DIR" || exit 1

say "data: $SEQLENS gym --task count --n $N --len $LEN --seed 1 -o $DIR/data.h5"
rm -f "$DIR/data.h5"
"$SEQLENS" gym --task count --n "$N" --len "$LEN" --seed 1 -o "$DIR/data.h5" >&2 || exit 1
# The models' vocabulary and pad token must be the gym's: read them from the file.
VOCAB=$("$PY" -c '
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    if f["families/of_token"][0] != -1:
        sys.exit("token 0 is not the pad (it has a family)")
    print(int(f.attrs["vocab_size"]))' "$DIR/data.h5") || { echo "analyze_scale.sh: cannot read the vocabulary of $DIR/data.h5" >&2; exit 1; }

say "models: d 64, $LAYERS layers, vocabulary $VOCAB"
"$PY" bench/make_bench_models.py "$DIR" --len "$LEN" --layers "$LAYERS" --vocab "$VOCAB" --data 0 >&2 || exit 1

# three timed evals of $1, their seconds on stdout; fails when one does
time_evals() {
    for _ in 1 2 3; do
        t0=$(now)
        "$SEQLENS" eval "$DIR/$1" "$DIR/data.h5" --threads "$THREADS" >&2 || return 1
        printf ' %s' "$(seconds_since "$t0")"
    done
}

FAILED=0
for model in $MODELS; do
    say "$model: one eval pass, the median of six, three timed before analyze and three after ($SEQLENS eval $DIR/$model $DIR/data.h5 --threads $THREADS)"
    if ! before=$(time_evals "$model"); then
        echo "analyze_scale.sh: $model: seqlens eval failed" >&2; FAILED=1; continue
    fi

    say "$model: $SEQLENS analyze $DIR/$model $DIR/data.h5 -o $DIR/an-$model --threads $THREADS --force"
    start=$(now)
    if ! "$SEQLENS" analyze "$DIR/$model" "$DIR/data.h5" -o "$DIR/an-$model" --threads "$THREADS" --force >&2; then
        echo "analyze_scale.sh: $model: seqlens analyze failed (its logs: $DIR/an-$model/logs/)" >&2; FAILED=1; continue
    fi
    wall_s=$(seconds_since "$start")

    if ! after=$(time_evals "$model"); then
        echo "analyze_scale.sh: $model: seqlens eval failed" >&2; FAILED=1; continue
    fi
    say "$model: evals before analyze took$before s, after it$after s"
    eval_s=$(printf '%s\n' $before $after | sort -g | awk '{v[NR] = $1} END { printf "%.3f\n", (v[3] + v[4]) / 2 }')

    say "$model: results (Markdown)"
    "$PY" bench/analyze_table.py "$DIR/an-$model" "$eval_s" "$wall_s" || FAILED=1
    echo
done
exit "$FAILED"
