#!/bin/sh
# bench/grad_ab.sh A B MODEL DATA [ROUNDS] [REPS]
#
# An A/B of two builds of build/bench/grad_time (copy each build's binary
# aside first) on one example's gradient: ROUNDS (default 20) alternations of
# A then B, each run the best of REPS (default 5) gradients. Prints each
# binary's best, lower quartile and median over the rounds, and in how many
# rounds B was the faster. A shared host runs in phases (here the same
# gradient took 44 ms in some minutes and 58-62 ms in others), so one pair
# of runs says little; the best and the quartile over many alternations, and
# the count of rounds won, hold still. Check that both lines' logit and
# grad_sum agree: if they differ, the two builds do not give the same bits.
set -eu
if [ $# -lt 4 ]; then
    echo "usage: bench/grad_ab.sh A B MODEL DATA [ROUNDS] [REPS]" >&2
    exit 2
fi
A=$1 B=$2 MODEL=$3 DATA=$4 ROUNDS=${5:-20} REPS=${6:-5}
best() { "$1" "$MODEL" "$DATA" --reps "$REPS" | sed 's/.*"best_ms": \([0-9.]*\).*/\1/'; }
"$A" "$MODEL" "$DATA" --reps 1
"$B" "$MODEL" "$DATA" --reps 1
i=0
while [ "$i" -lt "$ROUNDS" ]; do
    echo "$(best "$A") $(best "$B")"
    i=$((i + 1))
done | awk '
    { a[NR] = $1; b[NR] = $2; if ($2 < $1) won++ }
    function sort(x, n,   i, j, t) {
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && x[j - 1] > x[j]; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
    }
    END {
        sort(a, NR); sort(b, NR)
        q = int(NR / 4) + 1; m = int((NR + 1) / 2)
        printf "A: best %.2f ms, lower quartile %.2f, median %.2f\n", a[1], a[q], a[m]
        printf "B: best %.2f ms, lower quartile %.2f, median %.2f\n", b[1], b[q], b[m]
        printf "B faster in %d of %d rounds\n", won, NR
    }'
