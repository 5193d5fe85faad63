#!/bin/sh
# The scaling of a family-ablation sweep from 1 to 2 MPI ranks on one
# machine, one thread per rank (so that ranks do not share cores):
#   bench/mpi_scaling.sh [MODEL] [DATA]
# defaults: tests/trained/mamba_count on gym count data, N=2000 x 1024
# tokens (made once into /tmp). Prints each run's wall time (best of
# REPEAT, default 2) and the speed-up; the JSONs must be identical.
# Needs bin/seqlens-mpi (make, where mpicc is installed).
set -eu
cd "$(dirname "$0")/.."
P=bin/seqlens-mpi
MODEL=${1:-tests/trained/mamba_count}
DATA=${2:-/tmp/count2k.h5}
REPEAT=${REPEAT:-2}
ARGS=${ARGS:---family all --mode zero --bootstrap 200 --seed 1}
[ -x "$P" ] || make -j2 bin/seqlens-mpi >/dev/null
[ -f "$DATA" ] || bin/seqlens-mpi gym --task count --n 2000 --len 1024 --seed 5 -o "$DATA" >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$(mktemp -d)
best() { # the best wall time of REPEAT runs of the command
    b=""
    for i in $(seq "$REPEAT"); do
        s=$(date +%s.%N)
        "$@" >/dev/null
        e=$(date +%s.%N)
        t=$(echo "$e - $s" | bc)
        if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
    done
    echo "$b"
}
# shellcheck disable=SC2086
t1=$(best "$P" ablate "$MODEL" "$DATA" $ARGS --threads 1 -o "$out/1.json")
# shellcheck disable=SC2086
t2=$(best mpirun --oversubscribe -np 2 "$P" ablate "$MODEL" "$DATA" $ARGS --threads 1 -o "$out/2.json")
cmp -s "$out/1.json" "$out/2.json" && same=yes || same=NO
echo "command: seqlens ablate $MODEL $DATA $ARGS --threads 1"
printf "1 process x 1 thread: %.2f s\n2 ranks x 1 thread:   %.2f s\nspeed-up: %.2fx  (JSON identical: %s)\n" \
    "$t1" "$t2" "$(echo "$t1 / $t2" | bc -l)" "$same"
rm -rf "$out"
