/* One Mamba-1 block (mamba_ssm's slow path), positions 0..len-1 of one
 * example. Layouts are position-major; the scan state is [d_state, d_inner]
 * so that its inner loop runs across channels and vectorises. */
#include <string.h>

#include "core/blas.h"
#include "core/mathx.h"
#include "core/simd.h"
#include "models/forward_common.h"

/* Causal depthwise conv with d_conv-1 zeros on the left, then SiLU. */
static void conv_silu(const float *x, int ldx, int T, int di, int K, const float *w, const float *b, float *out)
{
    for (int t = 0; t < T; t++) {
        float *o = out + (long)t * di;
        for (int c = 0; c < di; c++) o[c] = b[c];
        for (int k = 0; k < K; k++) {
            int src = t - (K - 1) + k;
            if (src < 0) continue;
            const float *xs = x + (long)src * ldx;
            for (int c = 0; c < di; c++) o[c] += w[c * K + k] * xs[c];
        }
        for (int c = 0; c < di; c++) o[c] = sl_silu(o[c]);
    }
}

/* s_t = exp(delta_t A) s_{t-1} + delta_t x_t B_t ; y_t = s_t . C_t + D x_t.
 * Eight channels at a time (the lanes), all d_state states of them in turn,
 * so y stays in a register and delta_t x_t is formed once. */
static void scan_v8(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T, int di,
                    int S, const float *A_t, const float *D, float *state, float *y)
{
    memset(state, 0, (size_t)S * di * sizeof *state);
    for (int t = 0; t < T; t++) {
        const float *xt = x + (long)t * di, *dt = delta + (long)t * di;
        const float *Bt = xdbl + (long)t * ldb + boff, *Ct = xdbl + (long)t * ldb + coff;
        for (int c = 0; c < di; c += 8) {
            v8f d8 = v8_load(dt + c), x8 = v8_load(xt + c), dx = d8 * x8, y8 = v8_load(D + c) * x8;
            for (int n = 0; n < S; n++) {
                float *sp = state + (long)n * di + c;
                v8f arg = d8 * v8_load(A_t + (long)n * di + c), a;
                for (int k = 0; k < 8; k++) a[k] = sl_exp_nonpos(arg[k]);
                v8f s8 = a * v8_load(sp) + dx * v8_set1(Bt[n]);
                v8_store(sp, s8);
                y8 += s8 * v8_set1(Ct[n]);
            }
            v8_store(y + (long)t * di + c, y8);
        }
    }
}

/* Any d_inner: the same recurrence with plain loops across channels. */
static void scan_any(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T, int di,
                     int S, const float *A_t, const float *D, float *state, float *y)
{
    memset(state, 0, (size_t)S * di * sizeof *state);
    for (int t = 0; t < T; t++) {
        const float *xt = x + (long)t * di, *dt = delta + (long)t * di;
        const float *Bt = xdbl + (long)t * ldb + boff, *Ct = xdbl + (long)t * ldb + coff;
        float *yt = y + (long)t * di;
        for (int c = 0; c < di; c++) yt[c] = D[c] * xt[c];
        for (int n = 0; n < S; n++) {
            float *s = state + (long)n * di;
            const float *An = A_t + (long)n * di;
            float bn = Bt[n], cn = Ct[n];
            for (int c = 0; c < di; c++) {
                s[c] = sl_exp(dt[c] * An[c]) * s[c] + dt[c] * xt[c] * bn;
                yt[c] += s[c] * cn;
            }
        }
    }
}

static void selective_scan(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T,
                           int di, int S, const float *A_t, const float *D, float *state, float *y)
{
    if (di % 8 == 0) scan_v8(x, delta, xdbl, ldb, boff, coff, T, di, S, A_t, D, state, y);
    else scan_any(x, delta, xdbl, ldb, boff, coff, T, di, S, A_t, D, state, y);
}

int sl_mamba_layer_forward(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int i,
                           sl_error *err)
{
    const sl_config *c = &m->c;
    const sl_mamba_layer *w = &m->mamba[i];
    int T = ex->len, d = c->d_model, di = c->d_inner, S = c->d_state, R = c->dt_rank, nx = R + 2 * S;
    int rc = sl_fire(m, hooks, ex, HK_RESID_PRE, i, ws->h, T, d, d, err);
    if (rc) return rc;

    sl_rmsnorm(ws->h, w->norm_w, c->norm_eps, T, d, ws->a);
    sl_linear(ws->a, d, T, d, w->in_w, w->in_b, 2 * di, ws->xz, 2 * di);
    conv_silu(ws->xz, 2 * di, T, di, c->d_conv, w->conv_w, w->conv_b, ws->xc);
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_IN_X, i, ws->xc, T, di, di, err))) return rc;

    sl_linear(ws->xc, di, T, di, w->xproj_w, NULL, nx, ws->xdbl, nx);
    sl_linear(ws->xdbl, nx, T, R, w->dt_w, w->dt_b, di, ws->delta, di);
    for (long k = 0; k < (long)T * di; k++) ws->delta[k] = sl_softplus(ws->delta[k]);
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_DELTA, i, ws->delta, T, di, di, err))) return rc;
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_B, i, ws->xdbl + R, T, S, nx, err))) return rc;
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_C, i, ws->xdbl + R + S, T, S, nx, err))) return rc;

    selective_scan(ws->xc, ws->delta, ws->xdbl, nx, R, R + S, T, di, S, w->A_t, w->D, ws->state, ws->y);

    float *gate = ws->xz + di; /* z, turned into SiLU(z) in place */
    for (int t = 0; t < T; t++)
        for (int k = 0; k < di; k++) gate[(long)t * 2 * di + k] = sl_silu(gate[(long)t * 2 * di + k]);
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_GATE, i, gate, T, di, 2 * di, err))) return rc;
    for (int t = 0; t < T; t++)
        for (int k = 0; k < di; k++) ws->y[(long)t * di + k] *= gate[(long)t * 2 * di + k];

    sl_linear(ws->y, di, T, di, w->out_w, w->out_b, d, ws->out, d);
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_OUT, i, ws->out, T, d, d, err))) return rc;
    for (long k = 0; k < (long)T * d; k++) ws->h[k] += ws->out[k];
    return sl_fire(m, hooks, ex, HK_RESID_POST, i, ws->h, T, d, d, err);
}
