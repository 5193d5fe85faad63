#!/bin/sh
# Checkpoints saved by the real libraries as users save them
# (tests/reference/make_real_checkpoints.py: torch's nn.TransformerEncoder,
# mamba_ssm's MixerModel and MambaLMHeadModel.save_pretrained, Hugging Face's
# MambaModel; .pt, .bin and .safetensors; F32, F16, BF16): every directory
# under tests/fixtures/checkpoints loads as saved, with no step beyond the
# keys design.md 2.1 requires, and its logits match PyTorch's to 1e-5
# relative. A copy with a wrong pooling, n_heads, embed_scale or norm_first
# is exit 1; a positional that contradicts the pe buffer is exit 2.
. tests/shell.sh
S=${SEQLENS:-bin/seqlens}
T=${BUILD:-build}/tests/real
C=tests/fixtures/checkpoints
rm -rf "$T" && mkdir -p "$T"

verify_rc() { # DIR DATA LOGITS: verify's exit status at 1e-5, its JSON in $T/out.json
    "$S" verify "$1" "$2" --logits "$3" --tolerance 1e-5 >"$T/out.json" 2>"$T/err.txt"
    echo $?
}

n=0
for d in "$C"/*/; do
    d=${d%/}
    n=$((n + 1))
    check "$d: verify against PyTorch's logits at 1e-5: exit 0" [ "$(verify_rc "$d" "$d/data.h5" "$d/logits.npy")" = 0 ]
    check "$d: JSON says ok true over 16 examples" sh -c "grep -q '\"ok\":	true' '$T/out.json' && grep -q '\"n\":	16' '$T/out.json'"
done
check "six checkpoint directories were found" [ "$n" -eq 6 ]

# wrong NAME FIXTURE SED: a copy of FIXTURE (weights as saved) with config.json edited by SED;
# verify must exit 1 (loads, but the logits differ).
wrong() {
    rm -rf "$T/$1" && cp -r "$2" "$T/$1"
    sed "$3" "$2/config.json" >"$T/$1/config.json"
    check "wrong $1: the config differs from the fixture's" sh -c "! cmp -s '$T/$1/config.json' '$2/config.json'"
    check "wrong $1: verify exits 1" [ "$(verify_rc "$T/$1" "$2/data.h5" "$2/logits.npy")" = 1 ]
    check "wrong $1: one line naming the usual keys" sh -c "[ \$(wc -l <'$T/err.txt') -eq 1 ] && grep -q embed_scale '$T/err.txt'"
}
wrong mamba_ssm_pooling $C/mamba_ssm_mixer_ln 's/"pooling": "mean"/"pooling": "last"/'
wrong mamba_ssm_pretrained_pooling $C/mamba_ssm_pretrained 's/"pooling": "last"/"pooling": "mean"/'
wrong hf_pooling $C/hf_mamba 's/"pooling": "mean"/"pooling": "cls"/'
wrong tf_pooling $C/tf_encoder_pt 's/"pooling": "mean"/"pooling": "last"/'
wrong tf_n_heads $C/tf_encoder_pt 's/"n_heads": 2/"n_heads": 4/'
wrong tf_embed_scale $C/tf_encoder_pt 's/"embed_scale": 4.0/"embed_scale": 1.0/'
wrong tf_norm_first $C/tf_encoder_pt 's/"norm_first": false/"norm_first": true/'

# A positional that contradicts the saved pe buffer is refused (exit 2, naming both), not run.
rm -rf "$T/tf_pos" && cp -r $C/tf_encoder_pt "$T/tf_pos"
sed 's/"pooling": "mean"/"pooling": "mean", "positional": "none"/' $C/tf_encoder_pt/config.json >"$T/tf_pos/config.json"
check "positional none beside pos_encoder.pe: exit 2" [ "$(verify_rc "$T/tf_pos" $C/tf_encoder_pt/data.h5 $C/tf_encoder_pt/logits.npy)" = 2 ]
check "positional none: one line naming the key and the tensor" sh -c "[ \$(wc -l <'$T/err.txt') -eq 1 ] && grep -q \"'positional'.*pos_encoder.pe\" '$T/err.txt'"

summary
