/* The architectures, written once as calls on the operation table
 * (models/ops.h), for every backend: the embedding, the blocks and the
 * tail (final norm, pooling, head), with their hook sites and the
 * interventions of hooks->knockout. */
#ifndef SL_ARCH_H
#define SL_ARCH_H

#include "models/ops.h"

/* SL_H = the token embedding times embed_scale (hooked as `embed.tokens`),
 * plus the positional term (hooked as `embed`). */
int sl_arch_embed(sl_ops *o, sl_error *err);
/* Block i on SL_H: the model's architecture. */
int sl_arch_layer(sl_ops *o, int i, sl_error *err);
int sl_mamba_block(sl_ops *o, int i, sl_error *err);
int sl_mamba2_block(sl_ops *o, int i, sl_error *err);
int sl_tf_block(sl_ops *o, int i, sl_error *err);
/* sl_tf_block in two parts around its attention (models/cpu_tf_patch.c
 * runs its own between them): block i's q, k, v from its input in SL_H
 * into SL_QKV, rotated; then from the attention's context in SL_CTX, the
 * output projection, the residual and the MLP. */
int sl_tf_block_qkv(sl_ops *o, int i, sl_error *err);
int sl_tf_block_after_attention(sl_ops *o, int i, sl_error *err);
/* From SL_H: the final norm (if any), `final`, pooling, `pooled`, the head
 * into SL_LOGITS, `logits`. */
int sl_arch_tail(sl_ops *o, sl_error *err);
/* From SL_G = d logit / d (block i's output), d logit / d (its input) in
 * SL_G, the model's architecture (models/mamba_grad.c, transformer_grad.c). */
int sl_arch_layer_backward(sl_ops *o, int i, sl_error *err);
int sl_mamba_block_backward(sl_ops *o, int i, sl_error *err);
int sl_mamba2_block_backward(sl_ops *o, int i, sl_error *err);
int sl_tf_block_backward(sl_ops *o, int i, sl_error *err);
/* SL_G = d logit / d (the last block's output), SL_H_IN: through the head,
 * the pooling and the final norm (models/forward.c). */
int sl_arch_tail_backward(sl_ops *o, sl_error *err);
/* The gradient of SL_LOGITS with respect to SL_H (the embedding, or a
 * point on a path to it), o without hooks: the forward pass keeping each
 * block's input on tp, the tail, then the tail's backward and each
 * block's from the last down (models/gradient.c). SL_G ends as d logit /
 * d SL_H, SL_LOGITS as the logit. */
int sl_arch_gradient(sl_ops *o, sl_tape *tp, sl_error *err);
/* Mamba's (and Mamba-2's) block and final norm as config `norm` says: RMSNorm or LayerNorm
 * with its bias, both with norm_eps. */
int sl_mamba_norm_op(sl_ops *o, sl_view x, const float *w, const float *b, sl_view y, sl_error *err);

#endif
