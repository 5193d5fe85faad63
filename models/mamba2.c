/* One Mamba-2 block (mamba_ssm's Mamba2, its non-fused path; design.md
 * section 2.4) for every backend: what it computes, where its hooks fire
 * and where the knockouts of ablate --component (hooks->knockout, SL_OFF_*)
 * apply: conv on xBC's conv, ssm on the scan term, gate on SiLU(z) inside
 * the gated norm. */
#include "models/arch.h"

int sl_mamba2_block(sl_ops *o, int i, sl_error *err)
{
    const sl_ops_table *t = o->t;
    const sl_config *c = &o->m->c;
    const sl_mamba2_layer *w = &o->m->mamba2[i];
    int d = c->d_model, di = c->d_inner, H = c->nheads, GS = c->ngroups * c->d_state;
    int nxbc = di + 2 * GS, nin = di + nxbc + H;
    unsigned off = o->hooks && o->hooks->knockout ? o->hooks->knockout[i] : 0;
    sl_view h = sl_rows(SL_H, d), a = sl_rows(SL_A, d), out = sl_rows(SL_OUT, d);
    sl_view z = sl_cols(SL_ZXBCDT, 0, di, nin), xbc_in = sl_cols(SL_ZXBCDT, di, nxbc, nin);
    sl_view dt = sl_cols(SL_ZXBCDT, di + nxbc, H, nin), delta = sl_rows(SL_DELTA, H);
    sl_view xbc = sl_rows(SL_XBC, nxbc), x = sl_cols(SL_XBC, 0, di, nxbc);
    sl_view B = sl_cols(SL_XBC, di, GS, nxbc), C = sl_cols(SL_XBC, di + GS, GS, nxbc);
    sl_view y = sl_rows(SL_Y, di), yg = sl_rows(SL_YG, di);
    int rc = t->fire(o, HK_RESID_PRE, i, h, err);
    if (!rc) rc = sl_mamba_norm_op(o, h, w->norm_w, w->norm_b, a, err);
    if (!rc) rc = t->linear(o, a, w->in_w, w->in_b, sl_rows(SL_ZXBCDT, nin), err);
    if (!rc) rc = t->conv_silu(o, xbc_in, w->conv_w, w->conv_b, c->d_conv, !!(off & SL_OFF_CONV), xbc, err);
    if (!rc) rc = t->fire(o, HK_MIXER_IN_X, i, x, err);
    if (!rc) rc = t->delta2(o, dt, w->dt_bias, c->dt_min, c->dt_max, delta, err);
    if (!rc) rc = t->fire(o, HK_MIXER_DELTA, i, delta, err);
    if (!rc) rc = t->fire(o, HK_MIXER_B, i, B, err);
    if (!rc) rc = t->fire(o, HK_MIXER_C, i, C, err);
    if (!rc) rc = t->ssd(o, x, delta, B, C, w->A, w->D, !!(off & SL_OFF_SSM), y, err);
    if (!rc) rc = t->fire(o, HK_MIXER_Y, i, y, err);
    /* the gate always formed (the gated norm reads it): z = SiLU(z) in place */
    if (!rc) rc = t->gate(o, SL_OP_GATE_ACTIVATE, !!(off & SL_OFF_GATE), z, z, z, err);
    if (!rc) rc = t->fire(o, HK_MIXER_GATE, i, z, err);
    if (!rc) rc = t->gated_norm(o, y, z, w->gnorm_w, di / c->ngroups, c->gated_norm_eps, c->norm_before_gate, yg, err);
    if (!rc) rc = t->linear(o, yg, w->out_w, w->out_b, out, err);
    if (!rc) rc = t->fire(o, HK_MIXER_OUT, i, out, err);
    if (!rc) rc = t->add(o, out, h, err);
    return rc ? rc : t->fire(o, HK_RESID_POST, i, h, err);
}
