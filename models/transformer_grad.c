/* The backward pass of one Transformer block (models/transformer.c) for
 * every backend: from SL_G = d logit / d (block i's output) to d logit /
 * d (its input), in SL_G. Without hooks, as attribution runs it. What it
 * reads of the forward (qkv, the context, the attention's log-sum-exps, the
 * residual after each half, the MLP's pre-activation) is on the backend's
 * tape (the CPU) or computed again from the block's input (the device). */
#include "models/arch.h"

/* h1 is the residual after the attention's half: SL_ATTN_RESID pre-norm,
 * its norm in SL_H post-norm (read only here). */
static int restore(sl_ops *o, int i, sl_error *err)
{
    const sl_ops_table *t = o->t;
    const sl_config *c = &o->m->c;
    const sl_tf_layer *w = &o->m->tf[i];
    int d = c->d_model, f = c->d_ff, pre = c->norm_first;
    float eps = c->layer_norm_eps;
    sl_view h_in = sl_rows(SL_H_IN, d), a = sl_rows(SL_A, d), z1 = sl_rows(SL_ATTN_RESID, d);
    sl_view h1 = pre ? z1 : sl_rows(SL_H, d), z2 = sl_rows(SL_MLP_RESID, d), ffpre = sl_rows(SL_FF_PRE, f);
    sl_view ff = sl_rows(SL_FF, f);
    if (o->taped) return SL_OK;
    int rc = pre ? t->norm(o, SL_NORM_LAYER, h_in, w->ln1_w, w->ln1_b, eps, a, err) : SL_OK;
    if (!rc) rc = t->linear(o, pre ? a : h_in, w->qkv_w, w->qkv_b, sl_rows(SL_QKV, 3 * d), err);
    if (!rc && c->positional == POS_ROPE) rc = t->rope(o, err);
    if (!rc) rc = o->g->attention_keep(o, i, err);
    if (!rc) rc = t->linear(o, sl_rows(SL_CTX, d), w->o_w, w->o_b, z1, err);
    if (!rc) rc = t->add(o, h_in, z1, err);
    if (!rc && !pre) rc = t->norm(o, SL_NORM_LAYER, z1, w->ln1_w, w->ln1_b, eps, h1, err);
    if (!rc && pre) rc = t->norm(o, SL_NORM_LAYER, h1, w->ln2_w, w->ln2_b, eps, a, err);
    if (!rc) rc = t->linear(o, pre ? a : h1, w->ff1_w, w->ff1_b, ffpre, err);
    if (!pre) { /* z2 = h1 + mlp(h1), the input of norm2 */
        if (!rc) rc = o->g->copy(o, ffpre, ff, err);
        if (!rc) rc = t->activation(o, c->activation, ff, err);
        if (!rc) rc = t->linear(o, ff, w->ff2_w, w->ff2_b, z2, err);
        if (!rc) rc = t->add(o, h1, z2, err);
    }
    return rc;
}

int sl_tf_block_backward(sl_ops *o, int i, sl_error *err)
{
    const sl_ops_table *t = o->t;
    const sl_config *c = &o->m->c;
    const sl_tf_layer *w = &o->m->tf[i];
    int d = c->d_model, f = c->d_ff, pre = c->norm_first;
    float eps = c->layer_norm_eps;
    sl_view g = sl_rows(SL_G, d), da = sl_rows(SL_DA, d), dff = sl_rows(SL_DFF, f), z1 = sl_rows(SL_ATTN_RESID, d);
    int rc = restore(o, i, err);
    /* the MLP: g is d logit / d (block output) */
    if (!rc && !pre) rc = o->g->norm_backward(o, SL_NORM_LAYER, sl_rows(SL_MLP_RESID, d), w->ln2_w, eps, g, g, 0, err);
    if (!rc) rc = o->g->linear_backward(o, g, w->ff2_w, dff, 0, err);
    if (!rc) rc = o->g->activation_backward(o, c->activation, sl_rows(SL_FF_PRE, f), dff, err);
    if (!rc) rc = o->g->linear_backward(o, dff, w->ff1_w, da, 0, err);
    if (pre) { /* d logit / d h1 */
        if (!rc) rc = o->g->norm_backward(o, SL_NORM_LAYER, z1, w->ln2_w, eps, da, g, 1, err);
    } else { /* h1 = LN1(z1) */
        if (!rc) rc = t->add(o, da, g, err);
        if (!rc) rc = o->g->norm_backward(o, SL_NORM_LAYER, z1, w->ln1_w, eps, g, g, 0, err);
    }
    /* the attention: g is now d logit / d z1 (post-norm) or d h1 (pre-norm) */
    if (!rc) rc = o->g->linear_backward(o, g, w->o_w, sl_rows(SL_DCTX, d), 0, err);
    if (!rc) rc = o->g->attention_backward(o, i, err);
    if (!rc && c->positional == POS_ROPE) rc = o->g->rope_backward(o, err);
    if (!rc) rc = o->g->linear_backward(o, sl_rows(SL_DQKV, 3 * d), w->qkv_w, da, 0, err);
    if (rc) return rc;
    return pre ? o->g->norm_backward(o, SL_NORM_LAYER, sl_rows(SL_H_IN, d), w->ln1_w, eps, da, g, 1, err)
               : t->add(o, da, g, err);
}
