/* One torch.nn.TransformerEncoderLayer (batch_first) for every backend:
 * norm_first picks pre- or post-norm. What it computes and where its hooks
 * fire; how attention runs (streamed, or through the stored pattern that
 * its hook sees) is the backend's. */
#include "models/arch.h"

int sl_tf_block_qkv(sl_ops *o, int i, sl_error *err)
{
    const sl_ops_table *t = o->t;
    const sl_config *c = &o->m->c;
    const sl_tf_layer *w = &o->m->tf[i];
    int d = c->d_model, pre = c->norm_first;
    float eps = c->layer_norm_eps;
    sl_view h = sl_rows(SL_H, d), a = sl_rows(SL_A, d);
    sl_view in = pre ? a : h; /* what each half reads */
    int rc = t->fire(o, HK_RESID_PRE, i, h, err);
    if (!rc && pre) rc = t->norm(o, SL_NORM_LAYER, h, w->ln1_w, w->ln1_b, eps, a, err);
    if (!rc) rc = t->linear(o, in, w->qkv_w, w->qkv_b, sl_rows(SL_QKV, 3 * d), err);
    if (!rc && c->positional == POS_ROPE) rc = t->rope(o, err);
    return rc;
}

int sl_tf_block(sl_ops *o, int i, sl_error *err)
{
    int rc = sl_tf_block_qkv(o, i, err);
    if (!rc) rc = o->t->attention(o, i, err);
    return rc ? rc : sl_tf_block_after_attention(o, i, err);
}

int sl_tf_block_after_attention(sl_ops *o, int i, sl_error *err)
{
    const sl_ops_table *t = o->t;
    const sl_config *c = &o->m->c;
    const sl_tf_layer *w = &o->m->tf[i];
    int d = c->d_model, f = c->d_ff, pre = c->norm_first;
    float eps = c->layer_norm_eps;
    sl_view h = sl_rows(SL_H, d), a = sl_rows(SL_A, d), out = sl_rows(SL_OUT, d), ff = sl_rows(SL_FF, f);
    sl_view in = pre ? a : h;
    int rc = t->linear(o, sl_rows(SL_CTX, d), w->o_w, w->o_b, out, err);
    if (!rc) rc = t->fire(o, HK_ATTN_OUT, i, out, err);
    if (!rc) rc = t->add(o, out, h, err);
    if (!rc) rc = t->keep(o, SL_KEEP_ATTN_RESID, h, err);
    if (!rc && !pre) rc = t->norm(o, SL_NORM_LAYER, h, w->ln1_w, w->ln1_b, eps, h, err);

    if (!rc && pre) rc = t->norm(o, SL_NORM_LAYER, h, w->ln2_w, w->ln2_b, eps, a, err);
    if (!rc) rc = t->linear(o, in, w->ff1_w, w->ff1_b, ff, err);
    if (!rc) rc = t->keep(o, SL_KEEP_MLP_PRE, ff, err);
    if (!rc) rc = t->activation(o, c->activation, ff, err);
    if (!rc) rc = t->fire(o, HK_MLP_HIDDEN, i, ff, err);
    if (!rc) rc = t->linear(o, ff, w->ff2_w, w->ff2_b, out, err);
    if (!rc) rc = t->fire(o, HK_MLP_OUT, i, out, err);
    if (!rc) rc = t->add(o, out, h, err);
    if (!rc && !pre) rc = t->keep(o, SL_KEEP_MLP_RESID, h, err);
    if (!rc && !pre) rc = t->norm(o, SL_NORM_LAYER, h, w->ln2_w, w->ln2_b, eps, h, err);
    return rc ? rc : t->fire(o, HK_RESID_POST, i, h, err);
}
