#!/bin/sh
# Under MPI, every sharded command writes the JSON one process writes, byte
# for byte: bin/seqlens-mpi alone against `mpirun -np 2` of it, both
# example models, with seeds (the bootstrap and the pair draws). capture's
# merged HDF5 holds the same values. A rank that fails makes the job fail
# with its message and leaves no output. Skipped (0 checks) without mpirun
# or bin/seqlens-mpi (make builds it where mpicc is installed).
. tests/shell.sh
P=${SEQLENS_MPI:-bin/seqlens-mpi}
T=${BUILD:-build}/tests/mpi
if ! command -v mpirun >/dev/null 2>&1 || [ ! -x "$P" ]; then
    echo "skipped: no mpirun or no $P (install libopenmpi-dev openmpi-bin, then make)"
    summary
    exit 0
fi
rm -rf "$T" && mkdir -p "$T"
# Open MPI refuses root unless told; two ranks on however few cores
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN="mpirun --oversubscribe -np 2"
D=examples/data.h5
same() { # name, then the command's arguments (JSON to -o)
    name=$1
    shift
    "$P" "$@" --threads 1 -o "$T/$name.1.json" >/dev/null 2>"$T/$name.1.err"
    a=$?
    $MPIRUN "$P" "$@" --threads 1 -o "$T/$name.2.json" >/dev/null 2>"$T/$name.2.err"
    b=$?
    check "$name ran with 1 and 2 ranks" [ $a -eq 0 -a $b -eq 0 ]
    check "$name: byte-identical JSON with 1 and 2 ranks" cmp -s "$T/$name.1.json" "$T/$name.2.json"
}
for m in transformer mamba; do
    M=examples/$m
    "$P" eval $M $D --threads 1 >"$T/$m-eval.1.json"
    $MPIRUN "$P" eval $M $D --threads 1 >"$T/$m-eval.2.json"
    check "$m eval: identical with 1 and 2 ranks, printed once" cmp -s "$T/$m-eval.1.json" "$T/$m-eval.2.json"
    same $m-family ablate $M $D --family all --bootstrap 200 --seed 3
    same $m-resample ablate $M $D --family all --mode resample --bootstrap 50 --seed 3
    same $m-layer ablate $M $D --layer all --mode mean --bootstrap 50 --seed 3
    same $m-component ablate $M $D --component all --mode mean --bootstrap 50 --seed 3
    same $m-reverse reverse-test $M $D --seed 3
    same $m-inspect inspect $M $D
    same $m-attribute attribute $M $D --method ig --steps 4
    same $m-patch patch $M $D --hook 'blocks.*.resid_pre' final --positions 0,3,-1,-2 --n-pairs 40 --bootstrap 50 --seed 3
    # an uneven split (101 examples) and a range that does not start at 0
    same $m-range ablate $M $D --family all --bootstrap 20 --seed 5 --examples 17:118
    # the baseline from eval's scores (every rank reads the file): the JSON without it
    "$P" eval $M $D --threads 1 --examples 17:118 -o "$T/$m-scores.h5" >/dev/null
    same $m-range-given ablate $M $D --family all --bootstrap 20 --seed 5 --examples 17:118 --base-logits "$T/$m-scores.h5"
    check "$m ablate --base-logits: the JSON without it" cmp -s "$T/$m-range.1.json" "$T/$m-range-given.2.json"
    same $m-reverse-given reverse-test $M $D --seed 3 --examples 17:118 --base-logits "$T/$m-scores.h5"
    same $m-reverse-range reverse-test $M $D --seed 3 --examples 17:118
    check "$m reverse-test --base-logits: the JSON without it" cmp -s "$T/$m-reverse-range.1.json" "$T/$m-reverse-given.2.json"
    same $m-attribute-range attribute $M $D --method ig --steps 4 --examples 17:118
    same $m-attribute-given attribute $M $D --method ig --steps 4 --examples 17:118 --base-logits "$T/$m-scores.h5"
    check "$m attribute --base-logits: the JSON without it" cmp -s "$T/$m-attribute-range.1.json" "$T/$m-attribute-given.2.json"
done
# and against the plain build (bin/seqlens, no MPI linked) where that is what make test runs
S=${SEQLENS:-bin/seqlens}
if [ "$(basename "$S")" = seqlens ]; then
    "$S" ablate examples/mamba $D --family all --bootstrap 200 --seed 3 --threads 1 -o "$T/plain.json" >/dev/null
    check "plain bin/seqlens writes the same JSON as 2 ranks" cmp -s "$T/plain.json" "$T/mamba-family.2.json"
    "$S" inspect examples/transformer $D --threads 1 -o "$T/plain-inspect.json" >/dev/null
    check "plain bin/seqlens inspect: the same JSON as 2 ranks" cmp -s "$T/plain-inspect.json" "$T/transformer-inspect.2.json"
fi
same compare compare examples/transformer examples/mamba $D
# a non-sharded command runs on rank 0 alone, once
"$P" baseline $D --seed 3 -o "$T/baseline.1.json" >/dev/null
$MPIRUN "$P" baseline $D --seed 3 -o "$T/baseline.2.json" >/dev/null
check "baseline (rank 0 alone): identical" cmp -s "$T/baseline.1.json" "$T/baseline.2.json"

# analyze: stages in-process under MPI; the same results, resume, refusal
A="analyze examples/mamba $D --steps 2 --bootstrap 20 --threads 1"
"$P" $A -o "$T/an1" >/dev/null 2>&1
$MPIRUN "$P" $A -o "$T/an2" >/dev/null 2>&1
check "analyze ran with 2 ranks" [ -f "$T/an2/report.html" ]
for f in eval ablate-family ablate-skip ablate-layer ablate-component reverse inspect attribute probe patch baseline; do
    check "analyze $f.json: identical with 1 and 2 ranks" cmp -s "$T/an1/$f.json" "$T/an2/$f.json"
done
check "analyze under MPI resumes: every stage kept" [ "$($MPIRUN "$P" $A -o "$T/an2" 2>&1 | grep -c 'done earlier, kept')" = 11 ]
$MPIRUN "$P" $A --seed 9 -o "$T/an2" >/dev/null 2>"$T/an-other.err"
rc=$?
check "analyze under MPI refuses a directory of other inputs (exit $rc)" [ $rc -eq 2 ]
check "  ... saying so once" [ "$(grep -c 'other inputs' "$T/an-other.err")" = 1 ]

# capture: the merged file holds what one process writes
H="--hook blocks.*.resid_post pooled --examples 3:60 --threads 1"
"$P" capture examples/mamba $D $H -o "$T/acts.1.h5" >/dev/null 2>&1
$MPIRUN "$P" capture examples/mamba $D $H -o "$T/acts.2.h5" >/dev/null 2>&1
check "capture ran with 2 ranks" [ -f "$T/acts.2.h5" ]
if command -v h5dump >/dev/null 2>&1; then
    h5dump "$T/acts.1.h5" | tail -n +2 >"$T/acts.1.txt"
    h5dump "$T/acts.2.h5" | tail -n +2 >"$T/acts.2.txt"
    check "capture: the same datasets and values with 1 and 2 ranks" cmp -s "$T/acts.1.txt" "$T/acts.2.txt"
else
    check "capture: the same file size with 1 and 2 ranks" [ "$(wc -c <"$T/acts.1.h5")" = "$(wc -c <"$T/acts.2.h5")" ]
fi
check "capture: no part files left" sh -c "! ls '$T'/acts.2.h5.part* >/dev/null 2>&1"
"$P" capture examples/mamba $D --hook pooled --dtype f16 --threads 1 -o "$T/f16.1.h5" >/dev/null 2>&1
$MPIRUN "$P" capture examples/mamba $D --hook pooled --dtype f16 --threads 1 -o "$T/f16.2.h5" >/dev/null 2>&1
if command -v h5dump >/dev/null 2>&1; then
    check "capture --dtype f16: identical with 1 and 2 ranks" sh -c "h5dump '$T/f16.1.h5' | tail -n +2 >'$T/f16.1.txt'; h5dump '$T/f16.2.h5' | tail -n +2 | cmp -s - '$T/f16.1.txt'"
fi

# scripts/analyze-runs.sh -m: each run's analyze under the launcher
SEQLENS=$P sh scripts/analyze-runs.sh -o "$T/batch" -m "$MPIRUN" -a "--steps 2 --bootstrap 20 --threads 1" $D examples/mamba >/dev/null 2>&1
check "analyze-runs -m 'mpirun ...' exits 0" [ $? -eq 0 ]
check "analyze-runs -m: the run's results equal one process's" cmp -s "$T/an1/ablate-family.json" "$T/batch/runs/mamba/ablate-family.json"

# the plain build under mpirun refuses to run as two copies of one command
$MPIRUN "${SEQLENS:-bin/seqlens}" eval examples/mamba $D >/dev/null 2>"$T/plain-mpirun.err"
check "a build without MPI under mpirun -np 2 fails" [ $? -eq 2 ]
check "  ... saying to run bin/seqlens-mpi" grep -q "built without MPI.*seqlens-mpi" "$T/plain-mpirun.err"

# a failing rank: rank 1 cannot create its part of the capture
mkdir -p "$T/bad.h5.part1.tmp"
$MPIRUN "$P" capture examples/mamba $D --hook pooled --threads 1 -o "$T/bad.h5" >/dev/null 2>"$T/bad.err"
rc=$?
check "a failing rank fails the job" [ $rc -ne 0 ]
check "the failing rank's message, once" [ "$(grep -c 'seqlens: rank 1 of 2: .*bad.h5.part1.tmp: cannot create' "$T/bad.err")" = 1 ]
rmdir "$T/bad.h5.part1.tmp"
check "no output left by the failed job" sh -c "! ls '$T'/bad.h5* >/dev/null 2>&1"
# bad input: exit 2 and one line from rank 0
$MPIRUN "$P" ablate examples/mamba $D --family nosuch -o "$T/nosuch.json" >/dev/null 2>"$T/nosuch.err"
rc=$?
check "bad input under MPI exits 2 (was $rc)" [ $rc -eq 2 ]
check "bad input: one line naming the option" [ "$(grep -c -- "--family 'nosuch'" "$T/nosuch.err")" = 1 ]
check "bad input: no output file" [ ! -e "$T/nosuch.json" ]
summary
