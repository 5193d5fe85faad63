/* One Mamba-1 block (mamba_ssm's slow path) for every backend: what it
 * computes, where its hooks fire and where the knockouts of ablate
 * --component (hooks->knockout, SL_OFF_*) apply. */
#include "models/arch.h"

int sl_mamba_norm_op(sl_ops *o, sl_view x, const float *w, const float *b, sl_view y, sl_error *err)
{
    const sl_config *c = &o->m->c;
    return o->t->norm(o, c->norm == NORM_LAYER ? SL_NORM_LAYER : SL_NORM_RMS, x, w, b, c->norm_eps, y, err);
}

int sl_mamba_block(sl_ops *o, int i, sl_error *err)
{
    const sl_ops_table *t = o->t;
    const sl_config *c = &o->m->c;
    const sl_mamba_layer *w = &o->m->mamba[i];
    int d = c->d_model, di = c->d_inner, S = c->d_state, R = c->dt_rank, nx = R + 2 * S;
    unsigned off = o->hooks && o->hooks->knockout ? o->hooks->knockout[i] : 0;
    sl_view h = sl_rows(SL_H, d), a = sl_rows(SL_A, d), out = sl_rows(SL_OUT, d), xc = sl_rows(SL_XC, di);
    sl_view delta = sl_rows(SL_DELTA, di), y = sl_rows(SL_Y, di), xdbl = sl_rows(SL_XDBL, nx);
    sl_view x = sl_cols(SL_XZ, 0, di, 2 * di), z = sl_cols(SL_XZ, di, di, 2 * di);
    sl_view B = sl_cols(SL_XDBL, R, S, nx), C = sl_cols(SL_XDBL, R + S, S, nx);
    int rc = t->fire(o, HK_RESID_PRE, i, h, err);
    if (o->ig_path && i == 0) {
        if (!rc) rc = o->g->ig_in_proj(o, h, sl_rows(SL_XZ, 2 * di), err);
    } else {
        if (!rc) rc = sl_mamba_norm_op(o, h, w->norm_w, w->norm_b, a, err);
        if (!rc) rc = t->linear(o, a, w->in_w, w->in_b, sl_rows(SL_XZ, 2 * di), err);
    }
    if (!rc) rc = t->conv_silu(o, x, w->conv_w, w->conv_b, c->d_conv, !!(off & SL_OFF_CONV), xc, err);
    if (!rc) rc = t->fire(o, HK_MIXER_IN_X, i, xc, err);

    if (!rc) rc = t->linear(o, xc, w->xproj_w, NULL, xdbl, err);
    if (!rc) rc = t->linear(o, sl_cols(SL_XDBL, 0, R, nx), w->dt_w, w->dt_b, delta, err);
    if (!rc) rc = t->softplus(o, delta, err);
    if (!rc) rc = t->fire(o, HK_MIXER_DELTA, i, delta, err);
    if (!rc) rc = t->fire(o, HK_MIXER_B, i, B, err);
    if (!rc) rc = t->fire(o, HK_MIXER_C, i, C, err);
    if (!rc) rc = t->scan(o, xc, delta, B, w->A_t, w->D, !!(off & SL_OFF_SSM), y, err);

    /* the gate in two steps only where its hook is there to see it */
    int gated = !!(off & SL_OFF_GATE), yg = SL_OP_GATE_BOTH;
    sl_view out_in = sl_rows(SL_YG, di);
    if (sl_hooks_on(o->hooks, sl_model_point(o->m, HK_MIXER_GATE, i))) {
        if (!rc) rc = t->gate(o, SL_OP_GATE_ACTIVATE, gated, z, y, out_in, err);
        if (!rc) rc = t->fire(o, HK_MIXER_GATE, i, z, err);
        yg = SL_OP_GATE_MULTIPLY;
    }
    if (!rc) rc = t->gate(o, yg, gated, z, y, out_in, err);

    if (!rc) rc = t->linear(o, out_in, w->out_w, w->out_b, out, err);
    if (!rc) rc = t->fire(o, HK_MIXER_OUT, i, out, err);
    if (!rc) rc = t->add(o, out, h, err);
    return rc ? rc : t->fire(o, HK_RESID_POST, i, h, err);
}
