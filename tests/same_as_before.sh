#!/bin/sh
# Every output of bin/seqlens byte for byte against the binary built from
# BASE, a commit whose outputs are the expected ones (`make same-as-before`,
# not part of make test): each JSON-writing command on the three example
# models, on the CPU and with --device cuda on the host grid stand-in,
# the HDF5 files (through h5dump), analyze's directory and report page,
# summarize's, every usage text, and bad usage (its stderr and exit
# status). Each case runs both binaries in the same place, so that paths
# written into the outputs are equal; the outputs, stdout, stderr and exit
# status are compared file by file.
#
# The old binary is built once per commit, from `git archive BASE`, under
# $BUILD/same-as-before/COMMIT/ (a rerun only checks it is up to date), in
# the flavour (cpu or cuda) that bin/seqlens was built in.
. tests/shell.sh
S=${SEQLENS:-bin/seqlens}
# 536984a: a Mamba-1's inspect retention on eight lanes without AVX-512,
# checked against 2aa4657 on an AMD EPYC (Zen 3, AVX2) to differ only in
# the Mamba-1 example's 3 inspect cases (inspect, inspect --sample,
# analyze's inspect.json), at most 3.9e-8 relative (mean_retention and
# memory_length); on AVX-512 the sixteen-lane path is unchanged.
# 2aa4657: patching a Transformer takes the attention of the first block
# whose input changed from the base pass's (models/cpu_tf_patch.c, from
# 2cb3200 on), checked against 2bce20f on an Intel Xeon (AVX-512) to differ
# only in the Transformer example's 3 patch cases (patch, patch --pairing
# random, analyze's patch.json and its figure's script), by at most 2e-7 in
# an effect (1.8e-5 relative: effects are ratios of logit differences);
# every --device cuda case (whole blocks there) equal.
# 2bce20f: a Transformer's inspect statistics and its attention pattern's
# softmax in vector lanes (entropy through sl_log), checked against 61a2538
# on an Intel Xeon (AVX-512) to differ only in the Transformer example's 4
# cases that run the pattern path: inspect, inspect --sample, capture with
# attn.pattern among its hooks, analyze's inspect.json and its figures; by
# at most 3.8e-8 relative in inspect's means and 3e-7 of the largest value
# in the captured patterns, activations and logits (the final norm's
# output, which divides by a row's spread, 2.9e-6); 94d18e6 (patch's finer
# restarts) had given every output of 61a2538 bit for bit.
# 61a2538: integrated gradients on a Mamba-1 through block 0's products
# (models/ig_path.c), checked against d6004ca on an Intel Xeon (AVX-512) to
# differ only in the Mamba-1 example's 3 IG cases (attribute, attribute
# --sample, analyze's attribute.json and the report and figures made of
# it), at most 8e-7 relative (1.1e-6 in completeness errors, differences
# of nearly equal numbers); grad-input and every --device cuda case equal.
# d6004ca: the causal conv's taps as explicit FMAs. 2c16acc does not build
# without AVX-512 (fixed in 869788c); d6004ca was checked on an AMD EPYC
# (Zen 3, AVX2), built there with 390bf25, to differ only in the Mamba and
# Mamba-2 examples' outputs, by float rounding (at most 1.8e-7 relative in
# attributions; more only in differences of nearly equal numbers: patch
# effects, completeness errors, verify's worst examples), GCC's Zen tuning
# having left the 8-lane conv unfused. On AVX-512 the conv was fused
# already.
# 2c16acc: inspect's retention through the scan's exp on sixteen lanes,
# checked against b464af6 to differ only in the Mamba-1 example's 3 inspect
# cases (analyze's among them), at most 1.6e-7 relative. b464af6: the
# Mamba-1 gradient's softplus' kept from the forward's exp (u / (1 + u) at
# or below 0), checked against 363b864 to differ only in the 4 attribute
# cases of the Mamba-1 example (IG and grad-input), at most 1.5e-8
# relative. 363b864: the Mamba-1 scan's exp on AVX-512 as 2^x in 10
# instructions (9b7e9df), checked against 0bb8d4a (issue 20's outputs) to
# differ only in the 15 cases of the Mamba-1 example, from the 6th
# significant digit on; 0bb8d4a was checked against 366682b (before issue
# 19) in the same way
BASE=${BASE:-536984a343b7f85075ae49d35296ae8dc405464b}
B=${BUILD:-build}
T=$B/tests/same-as-before
R=$T/out # where both binaries write, then moved to $T/old/NAME or $T/new/NAME
D=examples/data.h5
stop() { # why nothing was compared
    check "$1" false
    summary
    exit 1
}
if ! commit=$(git rev-parse --verify -q "$BASE^{commit}" 2>/dev/null); then
    stop "BASE=$BASE is not in this clone's history (a shallow clone? git fetch --unshallow): nothing compared"
fi
[ -x "$S" ] || stop "$S, the binary compared, is not built (make bin/seqlens)"
short=$(git rev-parse --short "$commit")
O=$B/same-as-before/$commit
OLD=$O/bin/seqlens
[ "$(cat bin/.flavor 2>/dev/null)" = cuda ] && cuda=1 || cuda=0
if [ ! -f "$O/.extracted" ]; then
    rm -rf "$O" && mkdir -p "$O" && git archive "$commit" | tar -x -C "$O" && touch "$O/.extracted"
fi
# a make of its own: nothing of ours (BUILD, or MAKEFLAGS and MAKELEVEL
# when make same-as-before runs this) may reach it
if ! (unset BUILD MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
    make -C "$O" CUDA=$cuda MPI=0 -j"${JOBS:-2}" bin/seqlens) >"$O.log" 2>&1; then
    tail -n 20 "$O.log" >&2
    stop "the binary of $BASE does not build (log: $O.log)"
fi
echo "comparing $S with $OLD ($(git log -1 --format='%h %s' "$commit" | cut -c1-60))"

rm -rf "$T" && mkdir -p "$T/old" "$T/new"
if command -v h5dump >/dev/null 2>&1; then h5=1; else
    h5=0
    echo "skipped: the HDF5 outputs (no h5dump: install hdf5-tools)"
fi

# Outputs that legitimately differ from run to run, rewritten before the
# comparison; nothing else is touched:
# - analyze's stage timings: "seconds" in analyze.json, the seconds column
#   of report.html's stage table, the times in its progress lines (stderr)
# - report.html's "written YYYY-MM-DD HH:MM UTC"
# - HDF5 files carry their objects' creation times: compared as h5dump's
#   text, less its first line (the file's name)
# - info's columns, widened for norm_before_gate since BASE: its stdout is
#   compared with each run of spaces as one
# and one interface added since BASE, whose results are the same bits:
# - --base-logits FILE (ablate --family, reverse-test, attribute: eval's
#   logits instead of a pass of their own): analyze's stage commands name it
#   (analyze.json, report.html) and the three commands' --help describe it
#   (the paragraph from "  --base-logits" through its lines indented by
#   four); both are taken out, so that every result is still compared with
#   BASE's
edit() { # a file, then sed's arguments: the file rewritten in place
    e_file=$1
    shift
    sed "$@" "$e_file" >"$e_file.tmp" && mv "$e_file.tmp" "$e_file"
}
normalise() { # a directory of one run's outputs ($name: its case)
    find "$1" -type f | while read -r f; do
        case $f in
        *.h5)
            [ $h5 = 1 ] && h5dump "$f" | tail -n +2 >"$f.h5dump"
            rm -f "$f"
            ;;
        */analyze.json) edit "$f" -E -e 's/^(\t*"seconds":\t).*$/\1S/' -e 's/ --base-logits [^ "]*//' ;;
        */stdout)
            case $name in *-info) edit "$f" -e 's/  */ /g' ;; esac
            case $name in ablate-help | reverse-test-help | attribute-help)
                awk '/^  --base-logits /{skip = 1; next} skip && /^    /{next} {skip = 0; print}' "$f" >"$f.tmp" &&
                    mv "$f.tmp" "$f" ;;
            esac
            ;;
        */report.html)
            edit "$f" -E -e 's/ --base-logits [^ "<]*//g' \
                -e 's/written [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} UTC/written T/' \
                -e '/<td><code>seqlens /s|</code></td><td class="num">[^<]*</td>|</code></td><td class="num">S</td>|'
            ;;
        */stderr) edit "$f" -E '/^\[[0-9]+\/[0-9]+\] /s/[0-9]+\.[0-9] s|[0-9]+m[0-9]{2}s/T/g' ;;
        esac
    done
}
run_as() { # old or new, the binary, the case's name, then the arguments
    side=$1 bin=$2 name=$3
    shift 3
    rm -rf "$R" && mkdir -p "$R"
    "$bin" "$@" >"$R/stdout" 2>"$R/stderr" </dev/null
    echo $? >"$R/status"
    normalise "$R"
    mv "$R" "$T/$side/$name"
}
same() { # the case's name, then the arguments (outputs under $R)
    name=$1
    shift
    run_as old "$OLD" "$name" "$@"
    run_as new "$S" "$name" "$@"
    if diff -r "$T/old/$name" "$T/new/$name" >"$T/$name.diff" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $name differs from $short's: seqlens $*" >&2
        head -n 20 "$T/$name.diff" | cut -c1-300 >&2
    fi
}
# a case that must have run (exit 0): a failure in both is no comparison
ran() { check "$1 exited 0" [ "$(cat "$T/new/$1/status")" = 0 ]; }
same_ok() {
    same "$@"
    ran "$1"
}

# verify's input: logits both binaries read
mkdir -p "$T/in"
"$S" eval examples/mamba $D -o "$T/in/mamba-logits.h5" >/dev/null

for m in transformer mamba mamba2; do
    M=examples/$m
    same_ok $m-info info $M
    same_ok $m-eval eval $M $D
    same_ok $m-eval-scores eval $M $D --examples 20:300 -o "$R/scores.h5"
    same_ok $m-family ablate $M $D --family all --bootstrap 200 --seed 3 -o "$R/out.json"
    same_ok $m-family-zero ablate $M $D --family marker,key --mode zero --bootstrap 0 -o "$R/out.json"
    same_ok $m-family-pad ablate $M $D --family all --mode pad --bootstrap 50 --seed 3 -o "$R/out.json"
    same_ok $m-resample ablate $M $D --family all --mode resample --bootstrap 50 --seed 3 -o "$R/out.json"
    same_ok $m-layer ablate $M $D --layer all --mode mean --bootstrap 50 --seed 3 -o "$R/out.json"
    same_ok $m-layer-skip ablate $M $D --layer all --bootstrap 50 --seed 3
    same_ok $m-component ablate $M $D --component all --mode mean --bootstrap 50 --seed 3 -o "$R/out.json"
    same_ok $m-component-zero ablate $M $D --component all --layer 1 --mode zero --bootstrap 50 --seed 3 \
        -o "$R/out.json"
    same_ok $m-reverse reverse-test $M $D --seed 3 --scores "$R/reverse.h5" -o "$R/out.json"
    same_ok $m-inspect inspect $M $D -o "$R/out.json"
    same_ok $m-inspect-sample inspect $M $D --sample 100 --seed 5
    same_ok $m-attribute-ig attribute $M $D --method ig --steps 4 -o "$R/out.json"
    same_ok $m-attribute-grad attribute $M $D --method grad-input --baseline zero --bootstrap 50 --seed 3 \
        --tokens "$R/attr.h5" -o "$R/out.json"
    same_ok $m-attribute-sample attribute $M $D --method ig --steps 4 --sample 120 --seed 2 -o "$R/out.json"
    same_ok $m-probe probe $M $D --layer all --seed 3 -o "$R/out.json"
    same_ok $m-probe-tokens probe $M $D --layer 1 --site tokens --seed 3 --examples 0:200 -o "$R/out.json"
    same_ok $m-patch patch $M $D --hook 'blocks.*.resid_pre' final --positions 0,3,-1,-2 --n-pairs 40 \
        --bootstrap 50 --seed 3 -o "$R/out.json"
    same_ok $m-patch-random patch $M $D --hook 'blocks.1.*' --positions last --pairing random --n-pairs 30 \
        --bootstrap 50 --seed 4 -o "$R/out.json"
    same_ok $m-capture capture $M $D --hook 'blocks.*.*' 'blocks.*.*.*' embed.tokens embed final pooled \
        --examples 0:40 -o "$R/acts.h5"
    same_ok $m-capture-mean capture $M $D --hook 'blocks.0.*' --reduce mean --dtype f16 -o "$R/acts.h5"
done
for m in mamba mamba2; do
    same_ok $m-family-skip ablate examples/$m $D --family all --mode skip --bootstrap 50 --seed 3 -o "$R/out.json"
done
same_ok verify verify examples/mamba $D --logits "$T/in/mamba-logits.h5" -o "$R/out.json"
same_ok compare compare examples/transformer examples/mamba $D -o "$R/out.json"
same_ok compare-mamba2 compare examples/mamba examples/mamba2 $D -o "$R/out.json"
same_ok baseline baseline $D --seed 3 -o "$R/out.json"
same_ok gym gym --task order --n 200 --len 32 --seed 7 --noise 0.05 -o "$R/gym.h5"

# --device cuda on the host grid stand-in (tests/test_device_cli.c): slower
# than the CPU path, so on 160 examples
export SEQLENS_TEST_HOST_DEVICE=1
for m in transformer mamba mamba2; do
    M=examples/$m
    X="--examples 0:160 --device cuda"
    same_ok $m-dev-eval eval $M $D $X
    same_ok $m-dev-family ablate $M $D --family all --bootstrap 50 --seed 3 $X -o "$R/out.json"
    same_ok $m-dev-layer ablate $M $D --layer all --mode mean --bootstrap 50 --seed 3 $X -o "$R/out.json"
    same_ok $m-dev-component ablate $M $D --component all --mode mean --bootstrap 50 --seed 3 $X -o "$R/out.json"
    same_ok $m-dev-patch patch $M $D --hook 'blocks.*.resid_pre' final --positions 0,3,-1,-2 --n-pairs 40 \
        --bootstrap 50 --seed 3 $X -o "$R/out.json"
    same_ok $m-dev-attribute-ig attribute $M $D --method ig --steps 4 $X -o "$R/out.json"
    same_ok $m-dev-attribute-grad attribute $M $D --method grad-input $X -o "$R/out.json"
done
unset SEQLENS_TEST_HOST_DEVICE

# analyze end to end: every stage's JSON, analyze.json, report.html and its
# figures
for m in mamba transformer mamba2; do
    same_ok $m-analyze analyze examples/$m $D --examples 0:160 --steps 4 --bootstrap 50 -o "$R/an"
done
# summarize's input: two directories as the new binary writes them (the
# ones above are normalised), read by both
for m in mamba transformer; do
    "$S" analyze examples/$m $D --examples 0:160 --steps 4 --bootstrap 50 -o "$T/in/$m" >/dev/null 2>&1
done
same_ok summarize summarize "$T/in/mamba" "$T/in/transformer" -o "$R/summary"

# usage: the top level, every command's --help, and bad usage of each
same top-usage
same top-help --help
same top-h -h
same top-help-word help
same top-version --version
same top-unknown no-such-command
for c in info verify eval capture reverse-test ablate patch baseline inspect compare probe attribute analyze \
    report summarize gym; do
    same $c-help $c --help
    same $c-no-args $c
    same $c-bad-option $c --no-such-option
    case $c in attribute | analyze) foreign=--family ;; *) foreign=--steps ;; esac
    same $c-foreign-option $c examples/mamba $D $foreign 4
done
same bad-examples eval examples/mamba $D --examples 5:1
same bad-model eval examples/no-such-model $D
same bad-mode ablate examples/mamba $D --family all --mode bogus
same bad-family ablate examples/mamba $D --family nosuch
same bad-repeat ablate examples/mamba $D --family marker,marker
same bad-method attribute examples/mamba $D --method bogus
same bad-hook patch examples/mamba $D --hook 'nothing.*'
same bad-positions patch examples/transformer $D --hook final --positions x
same missing-value probe examples/mamba $D --seed
same bad-device eval examples/mamba $D --device tpu
summary
