/* One Mamba-1 block (mamba_ssm's slow path), positions 0..len-1 of one
 * example. Layouts are position-major; the scan state is [d_state, d_inner]
 * so that its inner loop runs across channels and vectorises. */
#include <string.h>

#include "core/blas.h"
#include "core/mathx.h"
#include "core/simd.h"
#include "models/backward.h"
#include "models/forward_common.h"
#include "models/mamba_scan.h"

void sl_mamba_conv(const float *x, int ldx, int T, int di, int K, const float *w, const float *b, float *out)
{
    for (int c0 = 0; c0 < di; c0 += 8 * SL_CONV_VECS) {
        int nv = (di - c0 + 7) / 8 < SL_CONV_VECS ? (di - c0 + 7) / 8 : SL_CONV_VECS;
        v8f wk[64 * SL_CONV_VECS], b8[SL_CONV_VECS];
        for (int v = 0; v < nv; v++) {
            sl_conv_taps(w, K, c0 + 8 * v, di, wk + v * K);
            b8[v] = b ? sl_load_lanes(b, c0 + 8 * v, di) : v8_set1(0.0f);
        }
        for (int t = 0; t < T; t++)
            for (int v = 0, c = c0; v < nv; v++, c += 8) {
                v8f o = b8[v];
                for (int k = t < K - 1 ? K - 1 - t : 0; k < K; k++)
                    o += wk[v * K + k] * sl_load_lanes(x + (long)(t - (K - 1) + k) * ldx, c, di);
                sl_store_lanes(out + (long)t * di, c, di, o);
            }
    }
}

/* Causal depthwise conv with d_conv-1 zeros on the left, then SiLU. */
static void conv_silu(const float *x, int ldx, int T, int di, int K, const float *w, const float *b, float *out)
{
    sl_mamba_conv(x, ldx, T, di, K, w, b, out);
    for (long k = 0; k < (long)T * di; k++) out[k] = sl_silu(out[k]);
}

/* The conv ablated: an identity kernel without bias, SiLU kept. */
static void silu_only(const float *x, int ldx, int T, int di, float *out)
{
    for (int t = 0; t < T; t++)
        for (int c = 0; c < di; c++) out[(long)t * di + c] = sl_silu(x[(long)t * ldx + c]);
}

/* After position t, the state a backward pass restarts chunk (t + 1) / C
 * from (sl_mamba_tape.ckpt); chunk 0 starts from zeros. */
static void checkpoint(const float *state, int t, int T, long plane, float *ckpt)
{
    if (ckpt && (t + 1) % SL_SCAN_CHUNK == 0 && t + 1 < T)
        memcpy(ckpt + (long)(t + 1) / SL_SCAN_CHUNK * plane, state, (size_t)plane * sizeof *state);
}

/* s_t = exp(delta_t A) s_{t-1} + delta_t x_t B_t ; y_t = s_t . C_t + D x_t.
 * Eight channels at a time (the lanes), all d_state states of them in turn,
 * so y stays in a register and delta_t x_t is formed once. */
static void scan_v8(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T, int di,
                    int S, const float *A_t, const float *D, float *state, float *y, float *ckpt)
{
    memset(state, 0, (size_t)S * di * sizeof *state);
    for (int t = 0; t < T; t++) {
        const float *xt = x + (long)t * di, *dt = delta + (long)t * di;
        const float *Bt = xdbl + (long)t * ldb + boff, *Ct = xdbl + (long)t * ldb + coff;
        for (int c = 0; c < di; c += 8) {
            v8f d8 = v8_load(dt + c), x8 = v8_load(xt + c), dx = d8 * x8, y8 = v8_load(D + c) * x8;
            for (int n = 0; n < S; n++) {
                float *sp = state + (long)n * di + c;
                v8f s8 = sl_scan_decay(d8, A_t + (long)n * di + c) * v8_load(sp) + dx * v8_set1(Bt[n]);
                v8_store(sp, s8);
                y8 += s8 * v8_set1(Ct[n]);
            }
            v8_store(y + (long)t * di + c, y8);
        }
        checkpoint(state, t, T, (long)S * di, ckpt);
    }
}

/* Any d_inner: the same recurrence with plain loops across channels. */
static void scan_any(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T, int di,
                     int S, const float *A_t, const float *D, float *state, float *y, float *ckpt)
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
        checkpoint(state, t, T, (long)S * di, ckpt);
    }
}

static void selective_scan(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T,
                           int di, int S, const float *A_t, const float *D, float *state, float *y, float *ckpt)
{
    if (di % 8 == 0) scan_v8(x, delta, xdbl, ldb, boff, coff, T, di, S, A_t, D, state, y, ckpt);
    else scan_any(x, delta, xdbl, ldb, boff, coff, T, di, S, A_t, D, state, y, ckpt);
}

/* The block; with a tape (the gradient's forward pass: no hooks), its
 * activations go to the tape instead of the workspace, z is kept and the
 * gated y goes to ws->y, so that the backward pass need not run it again. */
static int block(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int i,
                 const sl_mamba_tape *tp, sl_error *err)
{
    const sl_config *c = &m->c;
    const sl_mamba_layer *w = &m->mamba[i];
    int T = ex->len, d = c->d_model, di = c->d_inner, S = c->d_state, R = c->dt_rank, nx = R + 2 * S;
    float *xz = tp ? tp->xz : ws->xz, *xc = tp ? tp->xc : ws->xc, *xdbl = tp ? tp->xdbl : ws->xdbl;
    float *y = tp ? tp->y : ws->y;
    int rc = sl_fire(m, hooks, ex, HK_RESID_PRE, i, ws->h, T, d, d, err);
    if (rc) return rc;

    unsigned off = hooks && hooks->knockout ? hooks->knockout[i] : 0;
    sl_mamba_norm(c, ws->h, w->norm_w, w->norm_b, T, ws->a);
    sl_linear(ws->a, d, T, d, w->in_w, w->in_b, 2 * di, xz, 2 * di);
    if (off & SL_OFF_CONV) silu_only(xz, 2 * di, T, di, xc);
    else conv_silu(xz, 2 * di, T, di, c->d_conv, w->conv_w, w->conv_b, xc);
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_IN_X, i, xc, T, di, di, err))) return rc;

    sl_linear(xc, di, T, di, w->xproj_w, NULL, nx, xdbl, nx);
    sl_linear(xdbl, nx, T, R, w->dt_w, w->dt_b, di, ws->delta, di);
    for (long k = 0; k < (long)T * di; k++) ws->delta[k] = sl_softplus(ws->delta[k]);
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_DELTA, i, ws->delta, T, di, di, err))) return rc;
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_B, i, xdbl + R, T, S, nx, err))) return rc;
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_C, i, xdbl + R + S, T, S, nx, err))) return rc;

    if (off & SL_OFF_SSM)
        for (long k = 0; k < (long)T * di; k++) y[k] = w->D[k % di] * xc[k];
    else selective_scan(xc, ws->delta, xdbl, nx, R, R + S, T, di, S, w->A_t, w->D, ws->state, y, tp ? tp->ckpt : NULL);

    if (tp) {
        for (int t = 0; t < T; t++)
            for (int k = 0; k < di; k++)
                ws->y[(long)t * di + k] = y[(long)t * di + k] * sl_silu(xz[(long)t * 2 * di + di + k]);
    } else {
        float *gate = xz + di; /* z, turned into SiLU(z) in place */
        for (int t = 0; t < T; t++)
            for (int k = 0; k < di; k++)
                gate[(long)t * 2 * di + k] = off & SL_OFF_GATE ? 1.0f : sl_silu(gate[(long)t * 2 * di + k]);
        if ((rc = sl_fire(m, hooks, ex, HK_MIXER_GATE, i, gate, T, di, 2 * di, err))) return rc;
        for (int t = 0; t < T; t++)
            for (int k = 0; k < di; k++) y[(long)t * di + k] *= gate[(long)t * 2 * di + k];
    }

    sl_linear(ws->y, di, T, di, w->out_w, w->out_b, d, ws->out, d);
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_OUT, i, ws->out, T, d, d, err))) return rc;
    for (long k = 0; k < (long)T * d; k++) ws->h[k] += ws->out[k];
    return sl_fire(m, hooks, ex, HK_RESID_POST, i, ws->h, T, d, d, err);
}

int sl_mamba_layer_forward(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int i,
                           sl_error *err)
{
    return block(m, ex, ws, hooks, i, NULL, err);
}

int sl_mamba_layer_forward_taped(const sl_model *m, const sl_example *ex, sl_workspace *ws, int i, sl_error *err)
{
    sl_mamba_tape tp = sl_mamba_tape_at(m, ws, i);
    return block(m, ex, ws, NULL, i, &tp, err);
}
