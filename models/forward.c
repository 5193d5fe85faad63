/* The model-level parts of the forward pass for every backend: the
 * embedding before the blocks, the tail (final norm, pooling, head) after
 * them, and which block an architecture has; with their hook sites. */
#include "models/arch.h"

/* Ablations replace the token part only, scale included: its hook comes
 * before the positional term. */
int sl_arch_embed(sl_ops *o, sl_error *err)
{
    const sl_ops_table *t = o->t;
    const sl_model *m = o->m;
    const sl_config *c = &m->c;
    sl_view h = sl_rows(SL_H, c->d_model);
    int learned = c->positional == POS_LEARNED;
    int rc = t->embed(o, m->emb, sl_embed_scale(c), h, err);
    if (!rc) rc = t->fire(o, HK_EMBED_TOKENS, -1, h, err);
    if (!rc && c->arch == ARCH_TRANSFORMER && (learned || c->positional == POS_SINUSOIDAL))
        rc = t->add_positions(o, learned ? m->pos : NULL, h, err);
    return rc ? rc : t->fire(o, HK_EMBED, -1, h, err);
}

int sl_arch_layer(sl_ops *o, int i, sl_error *err)
{
    switch (o->m->c.arch) {
    case ARCH_MAMBA: return sl_mamba_block(o, i, err);
    case ARCH_MAMBA2: return sl_mamba2_block(o, i, err);
    }
    return sl_tf_block(o, i, err);
}

int sl_arch_layer_backward(sl_ops *o, int i, sl_error *err)
{
    switch (o->m->c.arch) {
    case ARCH_MAMBA: return sl_mamba_block_backward(o, i, err);
    case ARCH_MAMBA2: return sl_mamba2_block_backward(o, i, err);
    }
    return sl_tf_block_backward(o, i, err);
}

int sl_arch_tail(sl_ops *o, sl_error *err)
{
    const sl_ops_table *t = o->t;
    const sl_model *m = o->m;
    const sl_config *c = &m->c;
    int d = c->d_model, rc = SL_OK;
    sl_view h = sl_rows(SL_H, d), a = sl_rows(SL_A, d), fin = h;
    sl_view pooled = sl_rows(SL_POOLED, d), logits = sl_rows(SL_LOGITS, 1);
    if (sl_arch_is_mamba(c->arch)) {
        rc = sl_mamba_norm_op(o, h, m->norm_w, m->norm_b, a, err);
        fin = a;
    } else if (c->final_norm) {
        rc = t->norm(o, SL_NORM_LAYER, h, m->norm_w, m->norm_b, c->layer_norm_eps, a, err);
        fin = a;
    }
    if (!rc) rc = t->fire(o, HK_FINAL, -1, fin, err);
    if (!rc) rc = t->pool(o, c->pooling, fin, pooled, err);
    if (!rc) rc = t->fire(o, HK_POOLED, -1, pooled, err);
    if (!rc) rc = t->head(o, m->head_w, m->head_b, m->head_rows, pooled, logits, err);
    return rc ? rc : t->fire(o, HK_LOGITS, -1, logits, err);
}

int sl_arch_tail_backward(sl_ops *o, sl_error *err)
{
    const sl_model *m = o->m;
    const sl_config *c = &m->c;
    int d = c->d_model;
    sl_view fin_in = sl_rows(SL_H_IN, d), dfin = sl_rows(SL_DA, d), g = sl_rows(SL_G, d);
    int rc = o->g->head_backward(o, m->head_w, m->head_rows, c->pooling, dfin, err);
    if (rc) return rc;
    if (sl_arch_is_mamba(c->arch)) {
        int kind = c->norm == NORM_LAYER ? SL_NORM_LAYER : SL_NORM_RMS;
        return o->g->norm_backward(o, kind, fin_in, m->norm_w, c->norm_eps, dfin, g, 0, err);
    }
    if (c->final_norm)
        return o->g->norm_backward(o, SL_NORM_LAYER, fin_in, m->norm_w, c->layer_norm_eps, dfin, g, 0, err);
    return o->g->copy(o, dfin, g, err);
}
