#!/bin/sh
# bench/compare_builds.sh [BASE] [--threads T]: the seqlens side of bench/run.sh (the 6-pass
# family-ablation sweep and integrated gradients, 16 steps, both bench models) timed with the
# current build and with the binaries built from commit BASE (default: the one
# tests/same_as_before.sh builds, which must have run once), alternating runs, best of 3 each.
# Prints one line per workload: seconds now, seconds before, and now / before. Needs bench/data/
# (written by bench/run.sh). A refactor should stay within 5% (issue 19). REPS=N: best of N.
set -u
cd "$(dirname "$0")/.." || exit 1
BASE=366682b28dd0b1a85e99d21b77d16c1d07da8612
THREADS=2
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) THREADS=$2; shift 2 ;;
        *) BASE=$(git rev-parse --verify -q "$1^{commit}") || { echo "compare_builds.sh: $1 is not a commit" >&2; exit 2; }; shift ;;
    esac
done
OLD=${BUILD:-build}/same-as-before/$BASE
[ -d bench/data/ig ] || { echo "compare_builds.sh: bench/data/ is missing: run bench/run.sh once" >&2; exit 1; }
[ -x "$OLD/bin/seqlens" ] || { echo "compare_builds.sh: no $OLD/bin/seqlens: run make same-as-before first" >&2; exit 1; }
make -s CUDA=0 MPI=0 bin/seqlens build/bench/bench_sweep >&2 || exit 1
env -u MAKEFLAGS -u MAKELEVEL make -s -C "$OLD" CUDA=0 MPI=0 build/bench/bench_sweep >&2 || exit 1
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
secs() { # the wall seconds of a command, its output discarded
    s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "compare_builds.sh: failed: $*" >&2; return 1; }
    e=$(date +%s.%N); echo "$e - $s" | bc
}
best() { # workload, then the command with @SEQLENS@ / @SWEEP@ for the binaries
    name=$1; shift
    bn=999999 bo=999999
    for rep in $(seq ${REPS:-3}); do
        for side in new old; do
            if [ $side = new ]; then S=bin/seqlens W=build/bench/bench_sweep; else S=$OLD/bin/seqlens W=$OLD/build/bench/bench_sweep; fi
            cmd=$(echo "$*" | sed "s#@SEQLENS@#$S#; s#@SWEEP@#$W#; s#@OUT@#$T/$side.json#")
            rm -f "$T/$side.json"
            t=$(secs sh -c "$cmd") || exit 1
            if [ $side = new ]; then bn=$(echo "if ($t < $bn) $t else $bn" | bc); else bo=$(echo "if ($t < $bo) $t else $bo" | bc); fi
        done
    done
    printf '%-24s now %6.2f s   before %6.2f s   now/before %.3f\n' "$name" "$bn" "$bo" "$(echo "$bn / $bo" | bc -l)"
}
for m in transformer mamba; do
    best "sweep $m" "@SWEEP@ bench/data/$m bench/data/data.h5 --threads $THREADS --passes 6"
    best "ig $m" "@SEQLENS@ attribute bench/data/ig/$m bench/data/ig/data.h5 --method ig --steps 16 --baseline pad --threads $THREADS -o @OUT@"
done
