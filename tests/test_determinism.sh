#!/bin/sh
# The same command with the same seed writes byte-identical JSON whatever
# the thread count and batch size: every JSON-writing command, both
# example models, 1 thread x batch 1 against 2 threads x batch 5.
. tests/shell.sh
S=${SEQLENS:-bin/seqlens}
T=${BUILD:-build}/tests/determinism
rm -rf "$T" && mkdir -p "$T"
D=examples/data.h5
same() { # name, then the command's arguments (JSON to stdout or -o)
    name=$1
    shift
    "$S" "$@" --threads 1 --batch 1 -o "$T/$name.1.json" >/dev/null 2>&1
    a=$?
    "$S" "$@" --threads 2 --batch 5 -o "$T/$name.2.json" >/dev/null 2>&1
    b=$?
    check "$name ran on 1 and 2 threads" [ $a -eq 0 -a $b -eq 0 ]
    check "$name: byte-identical JSON on 1 and 2 threads" cmp -s "$T/$name.1.json" "$T/$name.2.json"
}
for m in transformer mamba; do
    M=examples/$m
    "$S" eval $M $D --threads 1 --batch 1 >"$T/$m-eval.1.json"
    "$S" eval $M $D --threads 2 --batch 5 >"$T/$m-eval.2.json"
    check "$m eval: identical on 1 and 2 threads" cmp -s "$T/$m-eval.1.json" "$T/$m-eval.2.json"
    same $m-family ablate $M $D --family all --bootstrap 200 --seed 3
    same $m-resample ablate $M $D --family all --mode resample --bootstrap 50 --seed 3
    same $m-layer ablate $M $D --layer all --mode mean --bootstrap 50 --seed 3
    same $m-reverse reverse-test $M $D --seed 3
    same $m-inspect inspect $M $D
    same $m-attribute attribute $M $D --method ig --steps 4
    same $m-probe probe $M $D --layer all --seed 3
    same $m-component ablate $M $D --component all --mode mean --bootstrap 50 --seed 3
    same $m-patch patch $M $D --hook 'blocks.*.resid_pre' final --positions 0,3,-1,-2 --n-pairs 40 --bootstrap 50 --seed 3
done
same compare compare examples/transformer examples/mamba $D
"$S" baseline $D --seed 3 -o "$T/baseline.1.json" >/dev/null
"$S" baseline $D --seed 3 -o "$T/baseline.2.json" >/dev/null
check "baseline: identical twice" cmp -s "$T/baseline.1.json" "$T/baseline.2.json"
# and a different seed does change what is seeded
"$S" ablate examples/mamba $D --family all --bootstrap 200 --seed 4 -o "$T/seed4.json" >/dev/null
check "another seed gives other bootstrap intervals" sh -c "! cmp -s '$T/seed4.json' '$T/mamba-family.1.json'"
summary
