#!/bin/sh
# Checkpoints saved by the real libraries as users save them
# (tests/reference/make_real_checkpoints.py: torch's nn.TransformerEncoder,
# mamba_ssm's MixerModel and MambaLMHeadModel.save_pretrained, Hugging Face's
# MambaModel; issue 20: MambaLMHeadModel and MixerModel with Mamba2 layers,
# Hugging Face's Mamba2Model with n_groups 1 and 2; .pt, .bin and
# .safetensors; F32, F16, BF16): every directory
# under tests/fixtures/checkpoints loads as saved, with no step beyond the
# keys design.md 2.1 requires, and its logits match PyTorch's to 1e-5
# relative. A copy with a wrong pooling, n_heads, embed_scale or norm_first
# is exit 1; a positional that contradicts the pe buffer is exit 2.
# tests/fixtures/user_checkpoints (make_user_variants.py): seventeen more
# variants (pre-norm gelu, sequence-first, bias=False, a Sequential head,
# model.half() as .pth, DataParallel and torch.compile prefixes, causal,
# storages saved on cuda:0, bf16 safetensors, a training checkpoint dict,
# mamba_ssm RMSNorm/residual_in_fp32/non-default sizes, a fused_add_norm
# config, Mamba2 LayerNorm d_conv 2, Hugging Face save_pretrained as
# safetensors and .bin, Mamba2 n_groups 2); user_checkpoints_refused: a
# whole pickled module, the legacy format and a sharded checkpoint, exit 2.
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
check "ten checkpoint directories were found" [ "$n" -eq 10 ]

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
wrong hf_mamba2_pooling $C/hf_mamba2 's/"pooling": "mean"/"pooling": "cls"/'
wrong mamba2_norm_before_gate $C/mamba_ssm_mixer_mamba2 's/"norm_before_gate": true/"norm_before_gate": false/'
wrong mamba2_dt_limit $C/mamba_ssm_mixer_mamba2 's/^    0.2$/    0.02/'
wrong mamba2_pretrained_pooling $C/mamba_ssm_mamba2_pretrained 's/"pooling": "last"/"pooling": "mean"/'

# info names where each Mamba-2 key came from: the tensors, the config, or the product's other factor.
"$S" info $C/mamba_ssm_mixer_mamba2 >"$T/info.txt" 2>&1
check "info mamba_ssm_mixer_mamba2: arch from dt_bias" grep -q "^arch  *mamba2  *inferred from tensor 'backbone.layers.0.mixer.dt_bias'" "$T/info.txt"
check "info: headdim from A_log" grep -q "^headdim  *4 (nheads 4)  *inferred from tensor 'backbone.layers.0.mixer.A_log' \[4\]" "$T/info.txt"
check "info: ngroups from conv1d and d_state" grep -q "^ngroups  *1  *inferred from tensor 'backbone.layers.0.mixer.conv1d.weight' \[24, 1, 4\] (ngroups\*d_state = 4) and d_state" "$T/info.txt"
check "info: D_has_hdim, dt_limit, norm_before_gate" sh -c "grep -q '^D_has_hdim  *true  *inferred' '$T/info.txt' && grep -q '^dt_limit  *\[0, 0.2\]  *config' '$T/info.txt' && grep -q '^norm_before_gate true  *config' '$T/info.txt'"
check "info: every source column lines up, norm_before_gate's too" [ "$(awk '/ config$/ {print index($0, " config")}' "$T/info.txt" | sort -u | wc -l)" -eq 1 ]
check "info: the seven mixer hook points of a layer" sh -c "[ \$(grep -c '^  blocks.0.mixer\.' '$T/info.txt') -eq 7 ] && grep -q '^  blocks.1.mixer.y  *\[N, L, 16\]' '$T/info.txt' && grep -q '^  blocks.1.mixer.delta  *\[N, L, 4\]' '$T/info.txt'"

# Hugging Face n_groups > 1: read with mamba_ssm's grouped gated norm (transformers 5's too); a config
# written by transformers 4 (whose Mamba2 may normalise over all channels) loads with a warning naming it.
rm -rf "$T/hf_v4" && cp -r $C/hf_mamba2_g2_bin_f16 "$T/hf_v4"
sed 's/"transformers_version": "5[^"]*"/"transformers_version": "4.44.0"/' $C/hf_mamba2_g2_bin_f16/config.json >"$T/hf_v4/config.json"
check "hf_v4: the config now says transformers 4.44.0" grep -q '"transformers_version": "4.44.0"' "$T/hf_v4/config.json"
check "hf_v4: verify still exits 0 (same weights)" [ "$(verify_rc "$T/hf_v4" $C/hf_mamba2_g2_bin_f16/data.h5 $C/hf_mamba2_g2_bin_f16/logits.npy)" = 0 ]
check "hf_v4: a warning names the version and the grouped norm" sh -c "grep -q 'transformers 4.44.0' '$T/err.txt' && grep -q 'n_groups 2 groups' '$T/err.txt'"
check "transformers 5's own config: no such warning" sh -c "! '$S' verify $C/hf_mamba2_g2_bin_f16 $C/hf_mamba2_g2_bin_f16/data.h5 --logits $C/hf_mamba2_g2_bin_f16/logits.npy 2>&1 >/dev/null | grep -q transformers"

# More ways users save (tests/reference/make_user_variants.py, issue 17's second pass): every
# directory under tests/fixtures/user_checkpoints loads as saved and matches PyTorch at 1e-5.
U=tests/fixtures/user_checkpoints
n=0
for d in "$U"/*/; do
    d=${d%/}
    n=$((n + 1))
    check "$d: verify against PyTorch's logits at 1e-5: exit 0" [ "$(verify_rc "$d" "$d/data.h5" "$d/logits.npy")" = 0 ]
    check "$d: JSON says ok true over 16 examples" sh -c "grep -q '\"ok\":	true' '$T/out.json' && grep -q '\"n\":	16' '$T/out.json'"
done
check "seventeen user checkpoint directories were found" [ "$n" -eq 17 ]
"$S" info $U/tf_seq_head >"$T/info.txt" 2>&1
check "info tf_seq_head: the head inside nn.Sequential(Dropout, Linear)" grep -q "classifier.1.weight .*head.weight (by role: head)" "$T/info.txt"
"$S" info $U/tf_training_checkpoint >"$T/info.txt" 2>&1
check "info tf_training_checkpoint: the model_state_dict's tensors, not the optimizer's" sh -c "grep -q 'encoder.layers.1.linear2.weight' '$T/info.txt' && ! grep -q exp_avg '$T/info.txt'"
wrong tf_seqfirst_embed_scale $U/tf_seqfirst_nofinal_cls 's/"embed_scale": 2.8[0-9]*/"embed_scale": 1.0/'
wrong tf_prenorm_norm_first $U/tf_prenorm_gelu_learned 's/"norm_first": true/"norm_first": false/'
wrong tf_causal $U/tf_causal_eps 's/"causal": true/"causal": false/'
wrong mamba_ssm_rms_fp32res_pooling $U/mamba_ssm_rms_fp32res 's/"pooling": "last"/"pooling": "mean"/'

# Refused with one line, exit 2, nothing run: torch.save(model) (a pickled class), the legacy
# format, a sharded save_pretrained, an int64 buffer, a 3-class head, mamba_ssm blocks with an MLP.
R=tests/fixtures/user_checkpoints_refused
refused() { # NAME NEEDLE
    rc=0
    "$S" info "$R/$1" >"$T/out.txt" 2>"$T/err.txt" || rc=$?
    check "refused $1: exit 2" [ "$rc" = 2 ]
    check "refused $1: one line: $2" one_line_has "$2"
}
one_line_has() { [ "$(wc -l <"$T/err.txt")" -eq 1 ] && grep -qF -- "$1" "$T/err.txt"; }
refused whole_module "global __main__.TF is not allowed"
refused legacy "legacy format (before torch 1.6, or _use_new_zipfile_serialization=False)"
refused hf_mamba_sharded "a sharded checkpoint (model.safetensors.index.json and its shards)"
refused int64_position_ids "tensor 'position_ids': storage type torch.LongStorage (int64) is not read"
refused three_class_head "missing tensor 'head.weight' [1, 8] = [1 or 2, d_model]; unexpected tensor 'classifier.weight' [3, 8]"
refused mixer_mlp "Mamba blocks with an MLP after the mixer (mamba_ssm's d_intermediate > 0"

# A positional that contradicts the saved pe buffer is refused (exit 2, naming both), not run.
rm -rf "$T/tf_pos" && cp -r $C/tf_encoder_pt "$T/tf_pos"
sed 's/"pooling": "mean"/"pooling": "mean", "positional": "none"/' $C/tf_encoder_pt/config.json >"$T/tf_pos/config.json"
check "positional none beside pos_encoder.pe: exit 2" [ "$(verify_rc "$T/tf_pos" $C/tf_encoder_pt/data.h5 $C/tf_encoder_pt/logits.npy)" = 2 ]
check "positional none: one line naming the key and the tensor" sh -c "[ \$(wc -l <'$T/err.txt') -eq 1 ] && grep -q \"'positional'.*pos_encoder.pe\" '$T/err.txt'"

summary
