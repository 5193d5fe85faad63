#!/bin/sh
# --base-logits FILE through the command line: ablate --family (every mode
# analyze runs, and with --examples) and reverse-test (JSON and --scores)
# write byte for byte what they write without it, from the file that
# `seqlens eval -o FILE` wrote; analyze's family and reverse stages name
# its eval stage's scores.h5, and each of their recorded commands run by
# hand without the option gives the stage's file; and a file that is not
# eval's scores of the same examples of the same model, or the option where
# it does not apply, is refused (tests/hostile.sh: exit 2, one line naming
# the file, no output, inputs unchanged).
. tests/shell.sh
. tests/hostile.sh
S=${SEQLENS:-bin/seqlens}
T=${BUILD:-build}/tests/base-logits-cli
rm -rf "$T" && mkdir -p "$T"
M=examples/mamba
D=examples/data.h5
R=--examples
run() { "$S" "$@" --threads 1 >/dev/null 2>"$T/err" || { echo "seqlens $*: $(cat "$T/err")" >&2; return 1; }; }

run eval $M $D -o "$T/scores.h5"
run eval $M $D $R 17:118 -o "$T/scores-17-118.h5"
for mode in mean skip pad; do
    run ablate $M $D --family all --mode $mode --bootstrap 100 --seed 3 -o "$T/$mode.json"
    run ablate $M $D --family all --mode $mode --bootstrap 100 --seed 3 --base-logits "$T/scores.h5" -o "$T/$mode-given.json"
    check "ablate --family all --mode $mode: the same JSON with --base-logits" cmp -s "$T/$mode.json" "$T/$mode-given.json"
done
run ablate $M $D --family marker,sep $R 17:118 --bootstrap 50 -o "$T/range.json"
run ablate $M $D --family marker,sep $R 17:118 --bootstrap 50 --base-logits "$T/scores-17-118.h5" -o "$T/range-given.json"
check "ablate --examples 17:118: the same JSON with that range's scores" cmp -s "$T/range.json" "$T/range-given.json"
run reverse-test $M $D --seed 4 --scores "$T/rev.h5" -o "$T/rev.json"
run reverse-test $M $D --seed 4 --scores "$T/rev-given.h5" --base-logits "$T/scores.h5" -o "$T/rev-given.json"
check "reverse-test: the same JSON with --base-logits" cmp -s "$T/rev.json" "$T/rev-given.json"
if command -v h5dump >/dev/null 2>&1; then
    h5dump "$T/rev.h5" | tail -n +2 >"$T/rev.dump"
    h5dump "$T/rev-given.h5" | tail -n +2 >"$T/rev-given.dump"
    check "reverse-test --scores: the same logits with --base-logits" cmp -s "$T/rev.dump" "$T/rev-given.dump"
fi

# analyze: the stages that take the baseline name DIR/scores.h5, and each
# command as recorded, run by hand without it, gives the stage's result
"$S" analyze $M $D $R 0:120 --steps 2 --bootstrap 50 --threads 1 -o "$T/an" >/dev/null 2>"$T/an.err"
check "analyze ran ($(tail -n 1 "$T/an.err"))" [ -f "$T/an/report.html" ]
for stage in ablate-family ablate-skip reverse; do
    cmd=$(sed -n "/\"name\":.*\"$stage\"/{n;p;}" "$T/an/analyze.json" | sed -E 's/^[^:]*:[[:space:]]*"(.*)",?$/\1/')
    check "analyze's $stage command takes --base-logits $T/an/scores.h5: '$cmd'" \
        sh -c 'case "$1" in *" --base-logits $2 "*) ;; *) exit 1 ;; esac' - "$cmd" "$T/an/scores.h5"
    # by hand, without the option, into another file
    out=$(printf '%s\n' "$cmd" | sed -E 's/.* -o ([^ ]*).*/\1/')
    plain=$(printf '%s\n' "$cmd" | sed -E -e 's/^seqlens //' -e "s# --base-logits [^ ]*##" -e "s# --scores [^ ]*# --scores $T/hand.h5#" \
        -e "s# -o [^ ]*# -o $T/hand.json#")
    # shellcheck disable=SC2086
    "$S" $plain >/dev/null 2>&1
    check "analyze's $stage: the same JSON as its command without --base-logits" cmp -s "$out" "$T/hand.json"
done

# refused: exit 2, one line naming the file, nothing written
O="$T/out.json"
printf 'not hdf5\n' >"$T/text.h5"
run eval examples/transformer $D -o "$T/transformer.h5"
hostile "scores of other examples" 2 "scores-17-118.h5" "$O" "$T/scores-17-118.h5" -- \
    "$S" ablate $M $D --family all --base-logits "$T/scores-17-118.h5" -o "$O"
hostile "scores of a range for all examples (reverse-test)" 2 "scores-17-118.h5" "$O" "$T/scores-17-118.h5" -- \
    "$S" reverse-test $M $D --base-logits "$T/scores-17-118.h5" -o "$O"
hostile "scores of a range for the range shifted by one" 2 "scores-17-118.h5: example 18 has" "$O" "$T/scores-17-118.h5" -- \
    "$S" ablate $M $D $R 18:119 --family all --base-logits "$T/scores-17-118.h5" -o "$O"
hostile "scores of another model" 2 "transformer.h5: its logit of example 0" "$O" "$T/transformer.h5" -- \
    "$S" ablate $M $D --family all --base-logits "$T/transformer.h5" -o "$O"
hostile "reverse-test's scores file (no /logits)" 2 "rev.h5: no dataset /logits" "$O" "$T/rev.h5" -- \
    "$S" reverse-test $M $D --base-logits "$T/rev.h5" -o "$O"
hostile "the dataset as scores" 2 "data.h5: no dataset /logits" "$O" $D -- \
    "$S" ablate $M $D --family all --base-logits $D -o "$O"
hostile "a text file" 2 "text.h5: not an HDF5 file" "$O" "$T/text.h5" -- \
    "$S" ablate $M $D --family all --base-logits "$T/text.h5" -o "$O"
hostile "a missing file" 2 "missing.h5" "$O" - -- "$S" ablate $M $D --family all --base-logits "$T/missing.h5" -o "$O"
# (no -o: an output inside an input directory is refused first)
hostile "a directory" 2 "$T: is a directory" - - -- "$S" reverse-test $M $D --base-logits "$T"
hostile "-o over the scores file" 2 "refusing to overwrite an input" - "$T/scores.h5" -- \
    "$S" ablate $M $D --family all --base-logits "$T/scores.h5" -o "$T/scores.h5"
hostile "--base-logits with --layer" 2 "--base-logits goes with --family" "$O" - -- \
    "$S" ablate $M $D --layer all --base-logits "$T/scores.h5" -o "$O"
hostile "--base-logits with --component" 2 "--base-logits goes with --family" "$O" - -- \
    "$S" ablate $M $D --component all --base-logits "$T/scores.h5" -o "$O"
hostile "--base-logits on eval" 2 "unknown option --base-logits" - - -- \
    "$S" eval $M $D --base-logits "$T/scores.h5"
summary
