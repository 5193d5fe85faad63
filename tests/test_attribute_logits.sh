#!/bin/sh
# attribute --method ig --base-logits FILE: each example's logit from
# `seqlens eval -o FILE` instead of a forward pass of its own. The JSON and
# --tokens are byte for byte those without it, on both example models, with
# --examples and with --sample (each sampled example is its own row of a
# file of the whole selection), and on the device (the host grid); analyze's attribute stage names its eval
# stage's scores.h5; a file of other examples, or one whose row of a sampled
# example disagrees, is refused (tests/hostile.sh: exit 2, one line naming
# the file, no output, inputs unchanged).
. tests/shell.sh
. tests/hostile.sh
S=${SEQLENS:-bin/seqlens}
T=${BUILD:-build}/tests/attribute-logits
rm -rf "$T" && mkdir -p "$T"
D=examples/data.h5
R=--examples
run() { "$S" "$@" --threads 2 >/dev/null 2>"$T/err" || { echo "seqlens $*: $(cat "$T/err")" >&2; return 1; }; }
dump() { h5dump "$1" | tail -n +2; } # less the file's name

for m in mamba transformer; do
    M=examples/$m
    run eval $M $D -o "$T/$m-scores.h5"
    run eval $M $D $R 20:90 -o "$T/$m-scores-20-90.h5"
    for sel in "" "$R 20:90" "$R 20:90 --sample 17 --seed 5"; do
        case $sel in "") f=$T/$m-scores.h5 ;; *) f=$T/$m-scores-20-90.h5 ;; esac
        name=$(printf '%s' "$m $sel" | tr -c 'a-z0-9' '-')
        # shellcheck disable=SC2086
        run attribute $M $D --method ig --steps 3 --bootstrap 40 $sel --tokens "$T/$name.h5" -o "$T/$name.json"
        # shellcheck disable=SC2086
        run attribute $M $D --method ig --steps 3 --bootstrap 40 $sel --tokens "$T/$name-given.h5" \
            --base-logits "$f" -o "$T/$name-given.json"
        check "$m ig ${sel:-(all)}: the same JSON with --base-logits" cmp -s "$T/$name.json" "$T/$name-given.json"
        if command -v h5dump >/dev/null 2>&1; then
            dump "$T/$name.h5" >"$T/a.dump"
            dump "$T/$name-given.h5" >"$T/b.dump"
            check "$m ig ${sel:-(all)}: the same --tokens with --base-logits" cmp -s "$T/a.dump" "$T/b.dump"
        fi
    done
done

# the device path (the host grid stand-in): its pass for the inputs' logits
# is skipped as the CPU's is, with the same results
for m in mamba transformer; do
    M=examples/$m
    SEQLENS_TEST_HOST_DEVICE=1 run eval $M $D $R 0:40 --device cuda -o "$T/$m-dev-scores.h5"
    SEQLENS_TEST_HOST_DEVICE=1 run attribute $M $D $R 0:40 --device cuda --method ig --steps 3 --bootstrap 40 \
        -o "$T/$m-dev.json"
    SEQLENS_TEST_HOST_DEVICE=1 run attribute $M $D $R 0:40 --device cuda --method ig --steps 3 --bootstrap 40 \
        --base-logits "$T/$m-dev-scores.h5" -o "$T/$m-dev-given.json"
    check "$m ig on the device: the same JSON with --base-logits" cmp -s "$T/$m-dev.json" "$T/$m-dev-given.json"
done

"$S" analyze examples/mamba $D $R 0:60 --steps 2 --bootstrap 20 --threads 2 -o "$T/an" >/dev/null 2>"$T/an.err"
cmd=$(sed -n '/"name":.*"attribute"/{n;p;}' "$T/an/analyze.json")
check "analyze's attribute stage takes eval's scores: $cmd" \
    sh -c 'case "$1" in *" --base-logits $2 "*) ;; *) exit 1 ;; esac' - "$cmd" "$T/an/scores.h5"

O="$T/out.json"
M=examples/mamba
run eval $M $D $R 21:91 -o "$T/scores-21-91.h5"
hostile "a sample of 20:90 against the scores of 21:91 (same count)" 2 "scores-21-91.h5: example" "$O" \
    "$T/scores-21-91.h5" -- \
    "$S" attribute $M $D --method ig --steps 2 $R 20:90 --sample 17 --base-logits "$T/scores-21-91.h5" -o "$O"
hostile "a sample against the scores of fewer examples" 2 "holds 70 examples" "$O" - -- \
    "$S" attribute $M $D --method ig --steps 2 $R 20:91 --sample 17 --base-logits "$T/mamba-scores-20-90.h5" -o "$O"
hostile "another model's scores" 2 "its logit of example" "$O" - -- \
    "$S" attribute $M $D --method ig --steps 2 --base-logits "$T/transformer-scores.h5" -o "$O"
hostile "--base-logits with grad-input" 2 "--base-logits goes with --method ig" "$O" - -- \
    "$S" attribute $M $D --base-logits "$T/mamba-scores.h5" -o "$O"
summary
