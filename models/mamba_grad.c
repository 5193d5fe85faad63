/* The backward pass of one Mamba-1 block (models/mamba.c) for every
 * backend: from SL_G = d logit / d (block i's output) to d logit / d (its
 * input), in SL_G. Without hooks or knockouts, as attribution runs it. What
 * it reads of the forward is on the backend's tape (the CPU keeps every
 * activation it reads, and the scan's states every SL_SCAN_CHUNK
 * positions) or computed again from the block's input (the device, keeping
 * every state). Along integrated gradients' path (sl_ops.ig_path), block
 * 0's backward ends at ig_in_proj_backward, which takes in_proj's and the
 * norm's place and gives the attributions, not SL_G. */
#include "models/arch.h"

/* What the block's forward computed that the backward reads, where no
 * tape kept it. */
static int restore(sl_ops *o, int i, sl_error *err)
{
    if (o->taped) return SL_OK;
    const sl_ops_table *t = o->t;
    const sl_config *c = &o->m->c;
    const sl_mamba_layer *w = &o->m->mamba[i];
    int d = c->d_model, di = c->d_inner, S = c->d_state, R = c->dt_rank, nx = R + 2 * S;
    sl_view xz = sl_rows(SL_XZ, 2 * di), x = sl_cols(SL_XZ, 0, di, 2 * di), xpre = sl_rows(SL_XPRE, di);
    sl_view xc = sl_rows(SL_XC, di), xdbl = sl_rows(SL_XDBL, nx), delta = sl_rows(SL_DELTA, di);
    sl_view dpre = sl_rows(SL_DPRE, di);
    int rc = sl_mamba_norm_op(o, sl_rows(SL_H_IN, d), w->norm_w, w->norm_b, sl_rows(SL_A, d), err);
    if (!rc) rc = t->linear(o, sl_rows(SL_A, d), w->in_w, w->in_b, xz, err);
    if (!rc) rc = o->g->conv(o, x, w->conv_w, w->conv_b, c->d_conv, xpre, err);
    if (!rc) rc = o->g->silu(o, xpre, xc, err);
    if (!rc) rc = t->linear(o, xc, w->xproj_w, NULL, xdbl, err);
    if (!rc) rc = t->linear(o, sl_cols(SL_XDBL, 0, R, nx), w->dt_w, w->dt_b, dpre, err);
    if (!rc) rc = o->g->copy(o, dpre, delta, err);
    if (!rc) rc = t->softplus(o, delta, err);
    if (!rc) rc = o->g->scan_keep(o, xc, delta, sl_cols(SL_XDBL, R, S, nx), w->A_t, w->D, sl_rows(SL_Y, di), err);
    return rc;
}

int sl_mamba_block_backward(sl_ops *o, int i, sl_error *err)
{
    const sl_config *c = &o->m->c;
    const sl_mamba_layer *w = &o->m->mamba[i];
    int d = c->d_model, di = c->d_inner, S = c->d_state, R = c->dt_rank, nx = R + 2 * S;
    sl_view g = sl_rows(SL_G, d), dy = sl_rows(SL_DY, di), dx = sl_rows(SL_DX, di), dd = sl_rows(SL_DDELTA, di);
    sl_view dxdbl = sl_rows(SL_DXDBL, nx), da = sl_rows(SL_DA, d), dxz = sl_rows(SL_DXZ, 2 * di);
    int rc = restore(o, i, err);
    /* out = (y * SiLU(z)) W_out^T */
    if (!rc) rc = o->g->linear_backward(o, g, w->out_w, dy, 0, err);
    if (!rc) rc = o->g->gate_backward(o, sl_cols(SL_XZ, di, di, 2 * di), sl_rows(SL_Y, di), dy,
                                   sl_cols(SL_DXZ, di, di, 2 * di), err);
    /* delta = softplus(dt W_dt^T + b): dd is d logit / d (dt W_dt^T + b) */
    if (!rc) rc = o->g->scan_backward(o, sl_rows(SL_XC, di), sl_rows(SL_DELTA, di), sl_rows(SL_DPRE, di),
                                   sl_cols(SL_XDBL, R, S, nx), w->A_t, w->D, dy, dx, dd, sl_cols(SL_DXDBL, R, S, nx), err);
    /* xdbl = xc W_x^T, added to the scan's own use of xc; xc = SiLU(conv(x)) */
    if (!rc) rc = o->g->linear_backward(o, dd, w->dt_w, sl_cols(SL_DXDBL, 0, R, nx), 0, err);
    if (!rc) rc = o->g->linear_backward(o, dxdbl, w->xproj_w, dx, 1, err);
    if (!rc)
        rc = o->g->silu_conv_backward(o, sl_rows(SL_XPRE, di), dx, w->conv_w, c->d_conv, sl_cols(SL_DXZ, 0, di, 2 * di),
                                      err);
    if (!rc && o->ig_path && i == 0) return o->g->ig_in_proj_backward(o, sl_rows(SL_H_IN, d), dxz, g, err);
    if (!rc) rc = o->g->linear_backward(o, dxz, w->in_w, da, 0, err);
    if (rc) return rc;
    int kind = c->norm == NORM_LAYER ? SL_NORM_LAYER : SL_NORM_RMS;
    return o->g->norm_backward(o, kind, sl_rows(SL_H_IN, d), w->norm_w, c->norm_eps, da, g, 1, err);
}
