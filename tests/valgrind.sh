#!/bin/sh
# Every command once under valgrind's memcheck on a small slice of the
# example: no invalid read or write, no use of uninitialised memory, no
# memory definitely lost. analyze is traced into its stage processes
# (gnuplot and the shell are not ours and are skipped).
. tests/shell.sh
S=${SEQLENS:-bin/seqlens}
T=${BUILD:-build}/tests/valgrind
rm -rf "$T" && mkdir -p "$T"
D=examples/data.h5
E="--examples 0:40"
vg() { # name, then the seqlens arguments
    name=$1
    shift
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
        --trace-children=yes --trace-children-skip='*gnuplot*,*/sh' "$S" "$@" >"$T/$name.out" 2>"$T/$name.vg"
    st=$?
    check "valgrind: $name (exit $st, log $T/$name.vg)" [ $st -ne 99 ]
    check "$name succeeded under valgrind" [ $st -eq 0 ]
}
for m in transformer mamba; do
    M=examples/$m
    vg $m-info info $M
    vg $m-eval eval $M $D $E --threads 2 -o "$T/$m-scores.h5"
    vg $m-verify verify $M $D $E --logits "$T/$m-scores.h5"
    vg $m-capture capture $M $D $E --hook 'blocks.0.*' 'blocks.1.*' --dtype f16 -o "$T/$m-acts.h5"
    vg $m-ablate-family ablate $M $D $E --family all --mode pad --bootstrap 20 -o "$T/$m-family.json"
    vg $m-ablate-layer ablate $M $D $E --layer all --mode mean --bootstrap 20 -o "$T/$m-layer.json"
    vg $m-reverse reverse-test $M $D $E --scores "$T/$m-rev.h5" -o "$T/$m-reverse.json"
    vg $m-inspect inspect $M $D $E -o "$T/$m-inspect.json"
    vg $m-attribute attribute $M $D $E --method ig --steps 2 --tokens "$T/$m-tok.h5" -o "$T/$m-attr.json"
    vg $m-probe probe $M $D $E --layer all --site tokens -o "$T/$m-probe.json"
done
# weights as torch.save wrote them (the restricted unpickler, libzip), and
# a layout found by role under a mamba_ssm-style config
vg pt-eval eval tests/fixtures/pt/tf_pt tests/fixtures/tf_pre_relu_learned/data.h5
vg layout-info info tests/fixtures/layouts/hf_mamba
vg layout-eval eval tests/fixtures/layouts/mamba_ssm_rms tests/fixtures/layouts/mamba_ssm_rms/data.h5
vg compare compare examples/transformer examples/mamba $D $E -o "$T/compare.json"
vg baseline baseline $D -o "$T/baseline.json"
vg gym gym --task recall --n 50 --len 32 -o "$T/gym.h5"
vg analyze analyze examples/mamba $D $E --steps 2 --bootstrap 20 -o "$T/analyze"
vg summarize summarize "$T/analyze" -o "$T/summary"
valgrind -q --error-exitcode=99 "$S" eval examples/nowhere $D >/dev/null 2>"$T/bad.vg"
check "bad input under valgrind: exit 2, no memory error" [ $? -eq 2 ]
summary
