/* The backward pass of one Mamba-2 block (models/mamba2.c) for every
 * backend: from SL_G = d logit / d (block i's output) to d logit / d (its
 * input), in SL_G. Without hooks or knockouts, as attribution runs it.
 * Every backend computes the block again from its input (SL_H_IN): a
 * Mamba-2 block's activations are cheap next to its projections, and the
 * SSD backward keeps or recomputes the states it needs itself. */
#include "models/arch.h"

/* What the block's forward computed that the backward reads; z stays as
 * in_proj wrote it (the gated norm's backward applies SiLU itself). */
static int restore(sl_ops *o, int i, sl_error *err)
{
    const sl_ops_table *t = o->t;
    const sl_config *c = &o->m->c;
    const sl_mamba2_layer *w = &o->m->mamba2[i];
    int d = c->d_model, di = c->d_inner, H = c->nheads, GS = c->ngroups * c->d_state;
    int nxbc = di + 2 * GS, nin = di + nxbc + H;
    sl_view xbc = sl_rows(SL_XBC, nxbc), xpre = sl_rows(SL_XPRE, nxbc);
    int rc = sl_mamba_norm_op(o, sl_rows(SL_H_IN, d), w->norm_w, w->norm_b, sl_rows(SL_A, d), err);
    if (!rc) rc = t->linear(o, sl_rows(SL_A, d), w->in_w, w->in_b, sl_rows(SL_ZXBCDT, nin), err);
    if (!rc) rc = o->g->conv(o, sl_cols(SL_ZXBCDT, di, nxbc, nin), w->conv_w, w->conv_b, c->d_conv, xpre, err);
    if (!rc) rc = o->g->silu(o, xpre, xbc, err);
    if (!rc) rc = t->delta2(o, sl_cols(SL_ZXBCDT, di + nxbc, H, nin), w->dt_bias, c->dt_min, c->dt_max,
                            sl_rows(SL_DELTA, H), err);
    if (!rc)
        rc = t->ssd(o, sl_cols(SL_XBC, 0, di, nxbc), sl_rows(SL_DELTA, H), sl_cols(SL_XBC, di, GS, nxbc),
                    sl_cols(SL_XBC, di + GS, GS, nxbc), w->A, w->D, 0, sl_rows(SL_Y, di), err);
    return rc;
}

int sl_mamba2_block_backward(sl_ops *o, int i, sl_error *err)
{
    const sl_grad_table *g = o->g;
    const sl_config *c = &o->m->c;
    const sl_mamba2_layer *w = &o->m->mamba2[i];
    int d = c->d_model, di = c->d_inner, H = c->nheads, GS = c->ngroups * c->d_state;
    int nxbc = di + 2 * GS, nin = di + nxbc + H;
    sl_view dy = sl_rows(SL_DY, di), dd = sl_rows(SL_DDELTA, H), dxbc = sl_rows(SL_DXBC, nxbc);
    sl_view x = sl_cols(SL_XBC, 0, di, nxbc), B = sl_cols(SL_XBC, di, GS, nxbc), C = sl_cols(SL_XBC, di + GS, GS, nxbc);
    int rc = restore(o, i, err);
    /* out = gated_norm(y, z) W_out^T */
    if (!rc) rc = g->linear_backward(o, sl_rows(SL_G, d), w->out_w, dy, 0, err);
    if (!rc)
        rc = g->gated_norm_backward(o, sl_rows(SL_Y, di), sl_cols(SL_ZXBCDT, 0, di, nin), w->gnorm_w, di / c->ngroups,
                                    c->gated_norm_eps, c->norm_before_gate, dy, dy, sl_cols(SL_DZXBCDT, 0, di, nin), err);
    if (!rc)
        rc = g->ssd_backward(o, x, sl_rows(SL_DELTA, H), B, C, w->A, w->D, dy, sl_cols(SL_DXBC, 0, di, nxbc), dd,
                             sl_cols(SL_DXBC, di, GS, nxbc), sl_cols(SL_DXBC, di + GS, GS, nxbc), err);
    /* xBC = SiLU(conv(in_proj's xBC rows)); delta from in_proj's dt columns */
    if (!rc)
        rc = g->silu_conv_backward(o, sl_rows(SL_XPRE, nxbc), dxbc, w->conv_w, c->d_conv,
                                   sl_cols(SL_DZXBCDT, di, nxbc, nin), err);
    if (!rc)
        rc = g->delta2_backward(o, sl_cols(SL_ZXBCDT, di + nxbc, H, nin), w->dt_bias, c->dt_min, c->dt_max, dd,
                                sl_cols(SL_DZXBCDT, di + nxbc, H, nin), err);
    if (!rc) rc = g->linear_backward(o, sl_rows(SL_DZXBCDT, nin), w->in_w, sl_rows(SL_DA, d), 0, err);
    if (rc) return rc;
    int kind = c->norm == NORM_LAYER ? SL_NORM_LAYER : SL_NORM_RMS;
    return g->norm_backward(o, kind, sl_rows(SL_H_IN, d), w->norm_w, c->norm_eps, sl_rows(SL_DA, d), sl_rows(SL_G, d), 1,
                            err);
}
