#!/bin/sh
# seqlens verify (design.md section 2.3) and datasets without /families
# (section 3): logits files in every format, written by seqlens itself and
# by PyTorch (tests/reference/make_verify_fixtures.py), match; a perturbed
# file, or a model loaded with a wrong config key, is exit 1 with the hint;
# malformed files are exit 2 with one line; analyze --verify stops on a
# mismatch. A dataset with only /tokens and /labels runs every command that
# does not need families, the others refuse naming /families, and analyze
# skips them and says so in the report. Needs hdf5-tools (h5dump, h5copy).
. tests/shell.sh
. tests/hostile.sh
S=${SEQLENS:-bin/seqlens}
T=${BUILD:-build}/tests/ver
rm -rf "$T" && mkdir -p "$T"
M=examples/transformer
D=examples/data.h5
F=tests/fixtures/tf_pre_relu_learned

if ! command -v h5dump >/dev/null || ! command -v h5copy >/dev/null; then
    echo "skipped: needs h5dump and h5copy (hdf5-tools)"
    summary
    exit
fi

# One octal-escaped byte.
byte() { printf "\\$(printf %03o "$1")"; }
# npy OUT HEADER RAW [MAJOR]: numpy's format, the dict HEADER and the bytes
# of the file RAW, as np.save lays them out.
npy() {
    h="$2
"
    n=$(printf %s "$h" | wc -c)
    major=${4:-1}
    {
        printf '\223NUMPY'
        byte "$major"
        byte 0
        byte $((n % 256))
        byte $((n / 256 % 256))
        if [ "$major" != 1 ]; then byte $((n / 65536 % 256)) && byte $((n / 16777216)); fi
        printf %s "$h"
        cat "$3"
    } >"$1"
}
# ok/fail: verify's exit status and the "ok" of its JSON
verify_rc() {
    "$S" verify "$@" >"$T/out.json" 2>"$T/err.txt"
    echo $?
}

# --- seqlens's own logits, in each format ---
"$S" eval $M $D -o "$T/scores.h5" >/dev/null
h5dump -d /logits -b LE -o "$T/raw.bin" "$T/scores.h5" >/dev/null
od -An -v -tf4 -w4 "$T/raw.bin" >"$T/logits.txt"
npy "$T/logits.npy" "{'descr': '<f4', 'fortran_order': False, 'shape': (400,), }" "$T/raw.bin"
npy "$T/logits_v2.npy" "{'descr': '<f4', 'fortran_order': False, 'shape': (400, 1), }" "$T/raw.bin" 2
for f in scores.h5 logits.txt logits.npy logits_v2.npy; do
    check "verify against its own logits ($f): exit 0" [ "$(verify_rc $M $D --logits "$T/$f")" = 0 ]
    check "verify $f: n 400 and ok true" sh -c "grep -q '\"n\":	400' '$T/out.json' && grep -q '\"ok\":	true' '$T/out.json'"
done
check "JSON has max_abs_error, max_rel_error and 5 worst" sh -c "grep -q max_abs_error '$T/out.json' && grep -q max_rel_error '$T/out.json' && [ \$(grep -c '\"example\"' '$T/out.json') -eq 5 ]"

# --- PyTorch's files (np.save: [n] float32, [n, 2] float64, version 3.0 [n, 1]) ---
for f in logits.npy logits_2class.npy logits_v3.npy expected.h5; do
    check "verify against PyTorch's $f: exit 0" [ "$(verify_rc $F $F/data.h5 --logits $F/$f)" = 0 ]
done
"$S" verify $F $F/data.h5 --logits $F/logits_2class.npy -o "$T/v.json" >/dev/null 2>&1
check "verify -o writes the JSON file" grep -q '"ok":	true' "$T/v.json"

# --- a mismatch: exit 1, one line with the keys to check, JSON still written ---
awk 'NR == 7 { $1 = $1 + 1 } { print }' "$T/logits.txt" >"$T/off.txt"
check "a logit off by 1: exit 1" [ "$(verify_rc $M $D --logits "$T/off.txt")" = 1 ]
check "the mismatch is one line naming the usual keys" sh -c "[ \$(wc -l <'$T/err.txt') -eq 1 ] && grep -q 'embed_scale, n_heads, positional, norm_first and pooling' '$T/err.txt'"
check "the mismatch names the worst example (6)" grep -q 'example 6:' "$T/err.txt"
check "the mismatch's JSON says ok false" grep -q '"ok":	false' "$T/out.json"
awk 'NR == 3 { $1 = $1 * 1.001 } { print }' "$T/logits.txt" >"$T/near.txt"
check "off by 1e-3 relative: exit 1 at the default tolerance" [ "$(verify_rc $M $D --logits "$T/near.txt")" = 1 ]
check "off by 1e-3 relative: exit 0 with --tolerance 1e-2" [ "$(verify_rc $M $D --logits "$T/near.txt" --tolerance 1e-2)" = 0 ]
check "--examples: the file covers exactly them" [ "$(verify_rc $M $D --logits "$T/logits.npy" --examples 0:400)" = 0 ]
head -n 50 "$T/logits.txt" >"$T/head50.txt"
check "a file of 50 logits: the first 50 examples" [ "$(verify_rc $M $D --logits "$T/head50.txt")" = 0 ]
tail -n 50 "$T/logits.txt" >"$T/tail50.txt"
check "the last 50 logits: --examples 350:400" [ "$(verify_rc $M $D --logits "$T/tail50.txt" --examples 350:400)" = 0 ]
check "the last 50 logits as the first 50: exit 1" [ "$(verify_rc $M $D --logits "$T/tail50.txt")" = 1 ]

# --- a model loaded with a wrong key: exit 1, not a silent pass ---
wrong() { # NAME FIXTURE SED: a copy of FIXTURE with config.json edited by SED
    rm -rf "$T/$1" && mkdir -p "$T/$1" && cp "$2/model.safetensors" "$T/$1/"
    sed "$3" "$2/config.json" >"$T/$1/config.json"
}
wrong heads $F 's/"n_heads": 2/"n_heads": 1/'
wrong pool $F 's/"pooling": "last"/"pooling": "mean"/'
wrong norm $F 's/"norm_first": true/"norm_first": false/'
wrong scale $F 's/"causal": false/"causal": false, "embed_scale": 2.8284271/'
wrong pos tests/fixtures/tf_dh32_sin 's/"positional": "sinusoidal"/"positional": "none"/'
for w in heads pool norm scale; do
    check "wrong $w: the config differs from the fixture's" sh -c "! cmp -s '$T/$w/config.json' $F/config.json"
    check "wrong $w: verify exits 1" [ "$(verify_rc "$T/$w" $F/data.h5 --logits $F/logits.npy)" = 1 ]
done
check "wrong positional: the config differs" sh -c "! cmp -s '$T/pos/config.json' tests/fixtures/tf_dh32_sin/config.json"
check "wrong positional: verify exits 1" [ "$(verify_rc "$T/pos" tests/fixtures/tf_dh32_sin/data.h5 --logits tests/fixtures/tf_dh32_sin/expected.h5)" = 1 ]

# --- analyze --verify: stops before writing anything on a mismatch ---
"$S" analyze $M $D -o "$T/an_bad" --verify "$T/off.txt" >/dev/null 2>"$T/an_err.txt"
check "analyze --verify with a mismatch: exit 1" [ $? -eq 1 ]
check "analyze --verify with a mismatch: one line with the keys" sh -c "[ \$(wc -l <'$T/an_err.txt') -eq 1 ] && grep -q embed_scale '$T/an_err.txt'"
check "analyze --verify with a mismatch: no DIR" [ ! -e "$T/an_bad" ]

# --- malformed logits files: exit 2, one line naming the file ---
x() { # NAME HEADER [MAJOR]: a .npy around the 400 float32 logits
    npy "$T/$1.npy" "$2" "$T/raw.bin" "${3:-1}"
}
x magic "{}" && printf 'XNUMPY' | dd of="$T/magic.npy" conv=notrunc 2>/dev/null
x v4 "{'descr': '<f4', 'fortran_order': False, 'shape': (400,), }" 4
x big "{'descr': '>f4', 'fortran_order': False, 'shape': (400,), }"
x int "{'descr': '<i4', 'fortran_order': False, 'shape': (400,), }"
x cols3 "{'descr': '<f4', 'fortran_order': False, 'shape': (200, 3), }"
x rank3 "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 2, 2), }"
x scalar "{'descr': '<f4', 'fortran_order': False, 'shape': (), }"
x fortran "{'descr': '<f4', 'fortran_order': True, 'shape': (200, 2), }"
x short "{'descr': '<f4', 'fortran_order': False, 'shape': (401,), }"
x long "{'descr': '<f4', 'fortran_order': False, 'shape': (399,), }"
x huge "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }"
x key "{'descr': '<f4', 'fortran_order': False, 'shape': (400,), 'extra': 1}"
x twice "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (400,), }"
x lacks "{'descr': '<f4', 'shape': (400,), }"
x unterminated "{'descr': '<f4, 'fortran_order': False, 'shape': (400,), }"
x code "{'descr': __import__('os').system('true'), 'fortran_order': False, 'shape': (400,), }"
x nested "{'descr': '<f4', 'fortran_order': False, 'shape': ((400,),), }"
x tail "{'descr': '<f4', 'fortran_order': False, 'shape': (400,), } x"
x noclose "{'descr': '<f4', 'fortran_order': False, 'shape': (400,"
# a header length past the end of the file, and past numpy's own limit
{ printf '\223NUMPY\001\000\377\377'; printf "{'descr': '<f4'}"; } >"$T/hlen.npy"
{ printf '\223NUMPY\002\000\000\000\000\020'; printf "{}"; } >"$T/hlen2.npy"
printf '\223NUMPY\001' >"$T/trunc.npy"
# a NaN among the values: the raw bytes with one float replaced
cp "$T/raw.bin" "$T/nan.bin" && printf '\000\000\300\177' | dd of="$T/nan.bin" bs=4 seek=9 conv=notrunc 2>/dev/null
npy "$T/nan.npy" "{'descr': '<f4', 'fortran_order': False, 'shape': (400,), }" "$T/nan.bin"
for c in "magic:no \\x93NUMPY magic" "v4:format version 4.0" "big:'>f4'" "int:'<i4'" "cols3:shape [n], [n, 1] or [n, 2]" \
    "rank3:shape [n], [n, 1] or [n, 2]" "scalar:shape [n], [n, 1] or [n, 2]" "fortran:Fortran order" \
    "short:the file holds" "long:the file holds" "huge:cannot read the value of 'shape'" "key:unexpected key 'extra'" \
    "twice:appears twice" "lacks:lacks 'fortran_order'" "unterminated:.npy header" "code:cannot read the value of 'descr'" \
    "nested:cannot read the value of 'shape'" "tail:text after the dict" "noclose:cannot read the value of 'shape'" \
    "hlen:ends inside its header" "hlen2:.npy header of" "trunc:not a .npy file" "nan:is NaN"; do
    name=${c%%:*} needle=${c#*:}
    hostile ".npy $name" 2 "$needle" "$T/o.json" "$T/$name.npy" -- "$S" verify $M $D --logits "$T/$name.npy" -o "$T/o.json"
done
# text files
printf '1.5\nabc\n' >"$T/word.txt"
printf '1.5\n\n2.5\n' >"$T/blank.txt"
printf '1.5\ninf\n' >"$T/inf.txt"
printf '1.5 2.5\n' >"$T/two.txt"
: >"$T/empty.txt"
printf '1.5\r\n\r\n2\n' >"$T/crlf.txt"
for c in "word:line 2 is not one number" "blank:line 2 is not one number" "inf:is infinite" "two:line 1 is not one number" \
    "empty:no logits" "crlf:line 2 is not one number"; do
    name=${c%%:*} needle=${c#*:}
    hostile "text $name" 2 "$needle" - "$T/$name.txt" -- "$S" verify $M $D --logits "$T/$name.txt"
done
seq 1 401 >"$T/n401.txt"
hostile "401 logits for 400 examples" 2 "more than the 400 examples" - - -- "$S" verify $M $D --logits "$T/n401.txt"
hostile "400 logits for --examples 0:10" 2 "--examples 0:10 selects 10" - - -- "$S" verify $M $D --logits "$T/logits.txt" --examples 0:10
hostile "an .h5 without /logits" 2 "no dataset /logits" - - -- "$S" verify $M $D --logits $D
cp "$T/logits.txt" "$T/text.h5"
hostile "text named .h5" 2 "text.h5: not an HDF5 file" - - -- "$S" verify $M $D --logits "$T/text.h5"
hostile "a directory as --logits" 2 "is a directory" - - -- "$S" verify $M $D --logits "$T"
mkfifo "$T/fifo.npy"
HOSTILE_SECONDS=10 hostile "a FIFO as --logits" 2 "fifo.npy: is a FIFO" - - -- "$S" verify $M $D --logits "$T/fifo.npy"
hostile "no --logits" 2 "--logits FILE is required" - - -- "$S" verify $M $D
hostile "--tolerance nan" 2 "--tolerance 'nan'" - - -- "$S" verify $M $D --logits "$T/logits.txt" --tolerance nan
hostile "-o onto the logits file" 2 "logits.txt" - "$T/logits.txt" -- "$S" verify $M $D --logits "$T/logits.txt" -o "$T/logits.txt"

# --- datasets without /families ---
h5copy -i $D -o "$T/nf.h5" -s /tokens -d /tokens && h5copy -i $D -o "$T/nf.h5" -s /labels -d /labels
h5copy -i $D -o "$T/tok.h5" -s /tokens -d /tokens
check "verify needs only /tokens" [ "$(verify_rc $M "$T/tok.h5" --logits "$T/logits.txt")" = 0 ]
hostile "eval needs /labels" 2 "missing dataset /labels" - - -- "$S" eval $M "$T/tok.h5"
N="$T/nf.h5"
for c in "eval $M $N" "capture $M $N --hook blocks.0.resid_post -o $T/acts.h5" "reverse-test $M $N" \
    "probe $M $N --layer 0" "patch $M $N --hook blocks.0.resid_post --n-pairs 4 --bootstrap 10" \
    "compare $M examples/mamba $N" "ablate $M $N --layer all --bootstrap 10" "verify $M $N --logits $T/logits.txt"; do
    # shellcheck disable=SC2086
    "$S" $c >/dev/null 2>"$T/nf_err.txt"
    rc=$?
    check "without /families: $c (exit $rc: $(head -c 200 "$T/nf_err.txt"))" [ $rc -eq 0 ]
done
hostile "without /families: ablate --family" 2 "has no /families, which ablate --family needs" - - -- "$S" ablate $M $N --family all
hostile "without /families: inspect" 2 "has no /families, which inspect" - - -- "$S" inspect $M $N
hostile "without /families: attribute" 2 "has no /families, which attribute" - - -- "$S" attribute $M $N
hostile "without /families: baseline" 2 "baseline's bag of families needs /families" - - -- "$S" baseline $N
"$S" analyze $M $N -o "$T/an" --verify "$T/head50.txt" --examples 0:50 --steps 2 --bootstrap 10 >/dev/null 2>"$T/an.log"
check "analyze without /families (and --verify): exit 0 ($(tail -n 1 "$T/an.log"))" [ $? -eq 0 ]
check "analyze says which stages it skipped" [ "$(grep -c 'skipped: the dataset has no /families' "$T/an.log")" -eq 4 ]
for s in baseline ablate-family inspect attribute; do
    check "report.html: $s was skipped, with the reason" grep -q "$s was skipped: the dataset has no /families" "$T/an/report.html"
done
check "analyze.json records the skipped stages" [ "$(grep -c '"status":	"skipped"' "$T/an/analyze.json")" -eq 4 ]
check "analyze.json records the verification" grep -q '"verify":' "$T/an/analyze.json"
check "the report's performance section says the logits match" grep -q "logits match your PyTorch logits on 50 examples to max relative error .* (tolerance 0.0001)" "$T/an/report.html"
check "no result of a skipped stage" sh -c "[ ! -e '$T/an/baseline.json' ] && [ ! -e '$T/an/inspect.json' ]"
check "the other stages ran" sh -c "[ -s '$T/an/eval.json' ] && [ -s '$T/an/ablate-layer.json' ] && [ -s '$T/an/patch.json' ]"
"$S" analyze $M $N -o "$T/an" --steps 2 --bootstrap 10 --examples 0:50 >/dev/null 2>"$T/an2.log"
check "analyze again resumes: exit 0" [ $? -eq 0 ]
check "analyze again keeps the finished stages" [ "$(grep -c 'done earlier, kept' "$T/an2.log")" -eq 6 ]
check "a run without --verify drops the verify entry" sh -c "! grep -q '\"verify\":' '$T/an/analyze.json'"
check "... and the report's verify line" sh -c "! grep -q 'your PyTorch logits' '$T/an/report.html'"
hostile "analyze --tolerance without --verify" 2 "seqlens analyze: --tolerance needs --verify" "$T/an_tol" - -- "$S" analyze $M $N -o "$T/an_tol" --tolerance 1e-3
summary
