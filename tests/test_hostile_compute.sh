#!/bin/sh
# Hostile inputs to the computing commands (issue 16, classes 2, 5, 7, 8):
# list options that overflowed fixed buffers or divided by zero, integers
# that strtol would have bent (' -3', '+3', '3x', overflow), models whose
# logits or activations are NaN or infinite (which hung probe and let eval
# report a wrong accuracy), a Mamba whose padded width is smaller than its
# state (the backward pass wrote past a buffer), and the messages that must
# name the file or model at fault. Each case is checked by `hostile`
# (tests/hostile.sh): exit code, one stderr line naming the culprit, no
# output, inputs unchanged, no signal, bounded time and memory.
. tests/shell.sh
. tests/hostile.sh
S=${SEQLENS:-bin/seqlens}
W=${BUILD:-build}/tests/comp
rm -rf "$W" && mkdir -p "$W"
M=tests/trained/mamba_count
T=tests/trained/tf_count
D=tests/trained/count_test.h5
IN="$M/config.json $M/model.safetensors $D"
OUT=$W/out.json

# poison SRC DST TENSOR BYTES: a copy of model SRC at DST whose TENSOR starts
# with the float32 BYTES (printf escapes, little-endian), its offset read
# from the safetensors header.
poison() {
    rm -rf "$2" && mkdir -p "$2" && cp "$1/config.json" "$1/model.safetensors" "$2/" || return 1
    p_hl=$(od -An -tu8 -N8 "$2/model.safetensors" | tr -d ' ')
    p_off=$(head -c $((8 + p_hl)) "$2/model.safetensors" | tail -c "$p_hl" | tr -d ' \n' |
        sed -n "s/.*\"$3\":{[^}]*\"data_offsets\":\[\([0-9]*\),.*/\1/p")
    [ -n "$p_off" ] || return 1
    printf "$4" | dd of="$2/model.safetensors" bs=1 seek=$((8 + p_hl + p_off)) conv=notrunc 2>/dev/null
}
NAN='\000\000\300\177' INF='\000\000\200\177'
poison $M "$W/m_nan" layers.1.norm.weight "$NAN"
check "a Mamba with a NaN in layer 1's norm" [ $? -eq 0 ]
poison $M "$W/m_inf" head.bias "$INF"
check "a Mamba with an infinite head bias" [ $? -eq 0 ]
poison $T "$W/t_nan" layers.0.norm1.weight "$NAN"
check "a Transformer with a NaN in layer 0's norm" [ $? -eq 0 ]

# --- class 2: lists and sizes -------------------------------------------
many=0
for _ in $(seq 1999); do many="$many,0"; done
hostile "ablate --layer 0 x 2000" 2 "layer 0 is listed twice" $OUT "$IN" -- "$S" ablate $M $D --layer "$many" -o $OUT
hostile "ablate --layer 0,0" 2 "layer 0 is listed twice" $OUT "$IN" -- "$S" ablate $M $D --layer 0,0 -o $OUT
hostile "ablate --layer 0," 2 "--layer '0,'" $OUT "$IN" -- "$S" ablate $M $D --layer 0, -o $OUT
hostile "ablate --layer ''" 2 "--layer ''" $OUT "$IN" -- "$S" ablate $M $D --layer '' -o $OUT
hostile "ablate --layer 2 (of 2)" 2 "layer indices 0..1" $OUT "$IN" -- "$S" ablate $M $D --layer 2 -o $OUT
hostile "ablate --layer -1" 2 "--layer '-1'" $OUT "$IN" -- "$S" ablate $M $D --layer -1 -o $OUT
hostile "ablate --layer ' 1'" 2 "--layer ' 1'" $OUT "$IN" -- "$S" ablate $M $D --layer ' 1' -o $OUT
hostile "ablate --layer 2^64" 2 "--layer '18446744073709551616'" $OUT "$IN" -- \
    "$S" ablate $M $D --layer 18446744073709551616 -o $OUT
hostile "ablate --family key,key" 2 "key is listed twice" $OUT "$IN" -- "$S" ablate $M $D --family key,key -o $OUT
hostile "ablate --component ssm,ssm" 2 "ssm is listed twice" $OUT "$IN" -- \
    "$S" ablate $M $D --component ssm,ssm --layer 0 -o $OUT
hostile "patch --positions ''" 2 "--positions ''" $OUT "$IN" -- \
    "$S" patch $M $D --hook blocks.0.resid_post --positions '' --n-pairs 4 -o $OUT
hostile "patch --positions -1,-1" 2 "-1 is listed twice" $OUT "$IN" -- \
    "$S" patch $M $D --hook blocks.0.resid_post --positions -1,-1 --n-pairs 4 -o $OUT
hostile "patch --positions 64 (width 64)" 2 "[-64, 63]" $OUT "$IN" -- \
    "$S" patch $M $D --hook blocks.0.resid_post --positions 3,64 --n-pairs 4 -o $OUT
long=$(printf '%0200d' 0 | tr 0 a)
hostile "a 200-character --hook" 2 "longer than 95 characters" $OUT "$IN" -- \
    "$S" patch $M $D --hook "$long" -o $OUT
hooks=""
for i in $(seq 65); do hooks="$hooks --hook h$i"; done
# shellcheck disable=SC2086
hostile "65 --hook options" 2 "more than 64 --hook patterns" $OUT "$IN" -- "$S" patch $M $D $hooks -o $OUT
hostile "attribute --steps 1e9" 2 "--steps '1e9'" $OUT "$IN" -- "$S" attribute $M $D --steps 1e9 -o $OUT
hostile "patch --n-pairs 2^64" 2 "--n-pairs" $OUT "$IN" -- \
    "$S" patch $M $D --hook blocks.0.resid_post --n-pairs 18446744073709551616 -o $OUT
hostile "ablate --bootstrap 1e12" 2 "--bootstrap '1000000000000'" $OUT "$IN" -- \
    "$S" ablate $M $D --layer 0 --bootstrap 1000000000000 -o $OUT
hostile "eval --batch 0" 2 "--batch '0'" - "$IN" -- "$S" eval $M $D --batch 0
hostile "eval --batch 2^31" 2 "--batch '2147483648'" - "$IN" -- "$S" eval $M $D --batch 2147483648
hostile "eval --threads 0" 2 "--threads '0'" - "$IN" -- "$S" eval $M $D --threads 0
hostile "eval --threads 100000" 2 "--threads '100000'" - "$IN" -- "$S" eval $M $D --threads 100000
hostile "eval --examples 0:2^70" 2 "--examples" - "$IN" -- "$S" eval $M $D --examples 0:1180591620717411303424

# the largest batch allowed, on 400 examples: buffers sized by the examples
"$S" ablate $M $D --family key --batch 1048576 --bootstrap 0 -o "$W/big.json" >/dev/null 2>&1
check "ablate --batch 1048576 runs (batch buffers bounded by the examples)" [ $? -eq 0 ]

# a Mamba over a padded width of 2 positions: d_state x d_inner (8 x 32)
# is more than 2 x the backward pass's row width (it wrote past it)
if command -v h5import >/dev/null && command -v h5copy >/dev/null; then
    printf '3 5\n5 3\n7 9\n9 7\n3 9\n9 3\n5 7\n7 5\n' >"$W/tiny.txt"
    printf '0 1 0 1 0 1 0 1\n' >"$W/tiny_labels.txt"
    printf 'PATH tokens\nINPUT-CLASS TEXTIN\nRANK 2\nDIMENSION-SIZES 8 2\nOUTPUT-CLASS IN\nOUTPUT-SIZE 32\n' >"$W/tiny.cfg"
    printf 'PATH labels\nINPUT-CLASS TEXTIN\nRANK 1\nDIMENSION-SIZES 8\nOUTPUT-CLASS IN\nOUTPUT-SIZE 32\n' >"$W/tiny_labels.cfg"
    h5import "$W/tiny.txt" -c "$W/tiny.cfg" "$W/tiny_labels.txt" -c "$W/tiny_labels.cfg" -o "$W/tiny.h5" &&
        h5copy -i $D -o "$W/tiny.h5" -s /families -d /families
    check "a dataset of width 2" [ $? -eq 0 ]
    for method in grad-input ig; do
        timeout 60 "$S" attribute $M "$W/tiny.h5" --method $method --steps 4 -o "$W/tiny_$method.json" >/dev/null 2>"$W/err"
        check "attribute --method $method on a Mamba over 2 positions: exit 0, got $? ($(head -c 300 "$W/err"))" [ $? -eq 0 ]
        check "attribute --method $method over 2 positions wrote its JSON" grep -q attribution_share "$W/tiny_$method.json"
    done
else
    echo "skipped: the width-2 Mamba case needs h5import and h5copy (hdf5-tools)"
fi

# --- classes 5 and 7: non-finite logits and activations ------------------
MN="$W/m_nan/config.json $W/m_nan/model.safetensors $D"
hostile "eval, NaN logits" 1 "NaN or infinite logits on 400 of 400 examples" - "$MN" -- "$S" eval "$W/m_nan" $D
hostile "eval -o, NaN logits" 1 "NaN or infinite logits on 400 of 400 examples" "$W/scores.h5" "$MN" -- \
    "$S" eval "$W/m_nan" $D -o "$W/scores.h5"
hostile "eval, infinite logits" 1 "NaN or infinite logits on 400 of 400 examples" - "$D" -- "$S" eval "$W/m_inf" $D
hostile "eval on a Transformer, NaN logits" 1 "NaN or infinite logits on 400 of 400" - "$D" -- "$S" eval "$W/t_nan" $D
hostile "eval --examples 10:20, NaN logits" 1 "on 10 of 10 examples; first: example 10" - "$D" -- \
    "$S" eval "$W/m_nan" $D --examples 10:20
hostile "ablate --layer, NaN logits" 1 "NaN or infinite logits" $OUT "$MN" -- \
    "$S" ablate "$W/m_nan" $D --layer all --bootstrap 10 -o $OUT
hostile "ablate --family, infinite logits" 1 "NaN or infinite logits" $OUT "$D" -- \
    "$S" ablate "$W/m_inf" $D --family all --bootstrap 10 -o $OUT
hostile "reverse-test, NaN logits" 1 "NaN or infinite logits" $OUT "$MN" -- "$S" reverse-test "$W/m_nan" $D -o $OUT
hostile "patch, NaN logits" 1 "NaN or infinite logits on 8 of 8" $OUT "$MN" -- \
    "$S" patch "$W/m_nan" $D --hook blocks.0.resid_post --n-pairs 8 -o $OUT
hostile "attribute, NaN logits" 1 "NaN or infinite logits" $OUT "$MN" -- \
    "$S" attribute "$W/m_nan" $D --examples 0:16 -o $OUT
hostile "compare, NaN activations" 1 "model B, layer 1 (blocks.1.resid_post): 6400 of 6400 values" $OUT "$MN" -- \
    "$S" compare $M "$W/m_nan" $D -o $OUT
hostile "compare, infinite logits" 1 "model A gave NaN or infinite logits on 400 of 400" $OUT "$D" -- \
    "$S" compare "$W/m_inf" $M $D -o $OUT
HOSTILE_SECONDS=30 hostile "probe, NaN activations (it spun in liblinear)" 1 \
    "layer 1 (blocks.1.resid_post): 6400 of 6400 activation values" $OUT "$MN" -- "$S" probe "$W/m_nan" $D -o $OUT
HOSTILE_SECONDS=30 hostile "probe on a Transformer, NaN activations" 1 "layer 0 (blocks.0.resid_post)" $OUT "$D" -- \
    "$S" probe "$W/t_nan" $D --layer 0 -o $OUT
# an infinite head bias leaves the activations finite: probe works, and
# says at the end that the model holds a non-finite weight
"$S" probe "$W/m_inf" $D --layer 0 -o "$W/probe.json" >/dev/null 2>"$W/err"
check "probe with an infinite head bias succeeds" [ $? -eq 0 ]
check "and warns of the weight" grep -q "1 weights are NaN or infinite" "$W/err"

# --- class 7: integers strtoull bent ---------------------------------------
for seed in ' -3' -3 +3 3x '' ' 3' 18446744073709551616 9007199254740993; do
    hostile "--seed '$seed'" 2 "--seed '$seed'" $OUT "$IN" -- "$S" reverse-test $M $D --seed "$seed" -o $OUT
done
hostile "--threads ' 2'" 2 "--threads ' 2'" - "$IN" -- "$S" eval $M $D --threads ' 2'
hostile "--batch +4" 2 "--batch '+4'" - "$IN" -- "$S" eval $M $D --batch +4
hostile "--examples ' 1:5'" 2 "--examples ' 1:5'" - "$IN" -- "$S" eval $M $D --examples ' 1:5'
hostile "a newline in a value" 2 "--threads '1?2'" - "$IN" -- "$S" eval $M $D --threads "1
2"
# each in range, but 2^40 x 64 tokens: written until the disk filled up
hostile "gym --n 2^40 --len 64" 2 "--n 1099511627776 x --len 64" "$W/gym.h5" - -- \
    "$S" gym --task count --n 1099511627776 --len 64 -o "$W/gym.h5"
# 1e-400 is not 0: strtod's underflow (ERANGE) was taken as 0
for noise in nan inf -0.1 ' 0.1' 0.1x 1e-400; do
    hostile "gym --noise '$noise'" 2 "--noise '$noise'" "$W/gym.h5" - -- \
        "$S" gym --task count --n 10 --len 64 --noise "$noise" -o "$W/gym.h5"
done

hostile "verify --tolerance 1e-400" 2 "--tolerance '1e-400'" $OUT "$IN" -- \
    "$S" verify $M $D --logits $D --tolerance 1e-400 -o $OUT

# --- class 8: messages ------------------------------------------------------
hostile "probe, a training split of one class" 2 "$D: the training split holds one class only" $OUT "$IN" -- \
    "$S" probe $M $D --examples 1:3 -o $OUT
hostile "compare, two vocabularies" 2 \
    "model A ($M) has a vocabulary of 48 tokens and model B (tests/fixtures/mamba_mean_f32) one of 11" $OUT "$IN" -- \
    "$S" compare $M tests/fixtures/mamba_mean_f32 $D -o $OUT
# capture of a 2-head pattern over 524288 positions at batch 1: 2 TB a row,
# and no "(try --batch 1)" since the batch already is 1
if command -v h5import >/dev/null && command -v h5copy >/dev/null; then
    awk 'BEGIN { for (e = 0; e < 2; e++) { for (t = 0; t < 524288; t++) printf "%d ", 3 + (t + e) % 5; printf "\n" } }' \
        >"$W/wide.txt"
    printf 'PATH tokens\nINPUT-CLASS TEXTIN\nRANK 2\nDIMENSION-SIZES 2 524288\nOUTPUT-CLASS IN\nOUTPUT-SIZE 32\n' \
        >"$W/wide.cfg"
    printf 'PATH labels\nINPUT-CLASS TEXTIN\nRANK 1\nDIMENSION-SIZES 2\nOUTPUT-CLASS IN\nOUTPUT-SIZE 32\n' >"$W/wide_labels.cfg"
    printf '0 1\n' >"$W/wide_labels.txt"
    h5import "$W/wide.txt" -c "$W/wide.cfg" "$W/wide_labels.txt" -c "$W/wide_labels.cfg" -o "$W/wide.h5" &&
        h5copy -i $D -o "$W/wide.h5" -s /families -d /families
    check "a dataset of width 524288" [ $? -eq 0 ]
    # ASan's allocator would abort on 2 TB rather than return NULL, and
    # warn on stderr (its log goes to a file: a real error still changes
    # the exit status)
    asan="allocator_may_return_null=1:detect_leaks=1:log_path=$W/asan"
    hostile "capture --batch 1 out of memory" 1 "out of memory for a batch of 1 x 549755813888 floats" "$W/cap.h5" \
        "$W/wide.h5" -- env ASAN_OPTIONS=$asan \
        "$S" capture $T "$W/wide.h5" --hook blocks.0.attn.pattern --batch 1 -o "$W/cap.h5"
    cap_err=$(ASAN_OPTIONS=$asan "$S" capture $T "$W/wide.h5" --hook blocks.0.attn.pattern \
        --batch 1 -o "$W/cap.h5" 2>&1 >/dev/null)
    check "no (try --batch 1) at batch 1: $cap_err" [ "${cap_err#*try --batch 1}" = "$cap_err" ]
    rm -f "$W/wide.txt"
fi
summary
