/* One Mamba-1 block (mamba_ssm's slow path), positions 0..len-1 of one
 * example. Layouts are position-major; the scan state is [d_state, d_inner]
 * so that its inner loop runs across channels and vectorises. */
#include <string.h>

#include "core/blas.h"
#include "core/mathx.h"
#include "core/simd.h"
#include "models/backward.h"
#include "models/forward_common.h"

/* Causal depthwise conv with d_conv-1 zeros on the left, then SiLU. */
static void conv_silu(const float *x, int ldx, int T, int di, int K, const float *w, const float *b, float *out)
{
    for (int t = 0; t < T; t++) {
        float *o = out + (long)t * di;
        for (int c = 0; c < di; c++) o[c] = b ? b[c] : 0.0f;
        for (int k = 0; k < K; k++) {
            int src = t - (K - 1) + k;
            if (src < 0) continue;
            const float *xs = x + (long)src * ldx;
            for (int c = 0; c < di; c++) o[c] += w[c * K + k] * xs[c];
        }
        for (int c = 0; c < di; c++) o[c] = sl_silu(o[c]);
    }
}

/* The conv ablated: an identity kernel without bias, SiLU kept. */
static void silu_only(const float *x, int ldx, int T, int di, float *out)
{
    for (int t = 0; t < T; t++)
        for (int c = 0; c < di; c++) out[(long)t * di + c] = sl_silu(x[(long)t * ldx + c]);
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

    unsigned off = hooks && hooks->mamba_off ? hooks->mamba_off[i] : 0;
    sl_mamba_norm(c, ws->h, w->norm_w, w->norm_b, T, ws->a);
    sl_linear(ws->a, d, T, d, w->in_w, w->in_b, 2 * di, ws->xz, 2 * di);
    if (off & SL_OFF_CONV) silu_only(ws->xz, 2 * di, T, di, ws->xc);
    else conv_silu(ws->xz, 2 * di, T, di, c->d_conv, w->conv_w, w->conv_b, ws->xc);
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_IN_X, i, ws->xc, T, di, di, err))) return rc;

    sl_linear(ws->xc, di, T, di, w->xproj_w, NULL, nx, ws->xdbl, nx);
    sl_linear(ws->xdbl, nx, T, R, w->dt_w, w->dt_b, di, ws->delta, di);
    for (long k = 0; k < (long)T * di; k++) ws->delta[k] = sl_softplus(ws->delta[k]);
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_DELTA, i, ws->delta, T, di, di, err))) return rc;
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_B, i, ws->xdbl + R, T, S, nx, err))) return rc;
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_C, i, ws->xdbl + R + S, T, S, nx, err))) return rc;

    if (off & SL_OFF_SSM)
        for (long k = 0; k < (long)T * di; k++) ws->y[k] = w->D[k % di] * ws->xc[k];
    else selective_scan(ws->xc, ws->delta, ws->xdbl, nx, R, R + S, T, di, S, w->A_t, w->D, ws->state, ws->y);

    float *gate = ws->xz + di; /* z, turned into SiLU(z) in place */
    for (int t = 0; t < T; t++)
        for (int k = 0; k < di; k++)
            gate[(long)t * 2 * di + k] = off & SL_OFF_GATE ? 1.0f : sl_silu(gate[(long)t * 2 * di + k]);
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_GATE, i, gate, T, di, 2 * di, err))) return rc;
    for (int t = 0; t < T; t++)
        for (int k = 0; k < di; k++) ws->y[(long)t * di + k] *= gate[(long)t * 2 * di + k];

    sl_linear(ws->y, di, T, di, w->out_w, w->out_b, d, ws->out, d);
    if ((rc = sl_fire(m, hooks, ex, HK_MIXER_OUT, i, ws->out, T, d, d, err))) return rc;
    for (long k = 0; k < (long)T * d; k++) ws->h[k] += ws->out[k];
    return sl_fire(m, hooks, ex, HK_RESID_POST, i, ws->h, T, d, d, err);
}

/* ---- backward ---- */

static float silu_grad(float x)
{
    float s = 1.0f / (1.0f + sl_exp(-x));
    return s * (1.0f + x * (1.0f - s));
}

void sl_mamba_layer_backward(const sl_model *m, const sl_example *ex, sl_workspace *ws, int i)
{
    const sl_config *c = &m->c;
    const sl_mamba_layer *w = &m->mamba[i];
    sl_backward_ws *b = ws->bw;
    int T = ex->len, d = c->d_model, di = c->d_inner, S = c->d_state, R = c->dt_rank, nx = R + 2 * S, K = c->d_conv;
    long n = (long)T * d;
    const float *h_in = b->tape + (size_t)i * ws->max_len * d;
    float *u = b->buf[0], *xz = b->buf[1], *xpre = b->buf[2], *xc = b->buf[3], *xdbl = b->buf[4], *dpre = b->buf[5];
    float *delta = b->buf[6], *y = b->buf[7], *dyg = b->buf[8], *dxz = b->buf[9], *ds = b->dstate, *dx = b->buf[11];
    float *dd = b->buf[12], *dxdbl = b->buf[13], *g = b->g;

    /* the block again, the scan keeping every state */
    sl_mamba_norm(c, h_in, w->norm_w, w->norm_b, T, u);
    sl_linear(u, d, T, d, w->in_w, w->in_b, 2 * di, xz, 2 * di);
    for (int t = 0; t < T; t++)
        for (int ch = 0; ch < di; ch++) {
            float s = w->conv_b ? w->conv_b[ch] : 0.0f;
            for (int k = 0; k < K; k++) {
                int src = t - (K - 1) + k;
                if (src >= 0) s += w->conv_w[ch * K + k] * xz[(long)src * 2 * di + ch];
            }
            xpre[(long)t * di + ch] = s;
            xc[(long)t * di + ch] = sl_silu(s);
        }
    sl_linear(xc, di, T, di, w->xproj_w, NULL, nx, xdbl, nx);
    sl_linear(xdbl, nx, T, R, w->dt_w, w->dt_b, di, dpre, di);
    for (long k = 0; k < (long)T * di; k++) delta[k] = sl_softplus(dpre[k]);
    float *st = b->states;
    for (int t = 0; t < T; t++) {
        const float *Bt = xdbl + (long)t * nx + R, *Ct = Bt + S;
        float *s = st + (size_t)t * S * di;
        const float *sp = t ? s - (size_t)S * di : NULL;
        for (int ch = 0; ch < di; ch++) y[(long)t * di + ch] = w->D[ch] * xc[(long)t * di + ch];
        for (int q = 0; q < S; q++)
            for (int ch = 0; ch < di; ch++) {
                float dl = delta[(long)t * di + ch];
                float v = sl_exp(dl * w->A_t[(long)q * di + ch]) * (sp ? sp[(long)q * di + ch] : 0.0f)
                        + dl * xc[(long)t * di + ch] * Bt[q];
                s[(long)q * di + ch] = v;
                y[(long)t * di + ch] += v * Ct[q];
            }
    }

    /* out = (y * SiLU(z)) W_out^T */
    sl_linear_backward(g, d, T, d, w->out_w, di, dyg, di, 0.0f);
    for (int t = 0; t < T; t++)
        for (int ch = 0; ch < di; ch++) {
            float z = xz[(long)t * 2 * di + di + ch], gy = dyg[(long)t * di + ch];
            dxz[(long)t * 2 * di + di + ch] = gy * y[(long)t * di + ch] * silu_grad(z);
            dyg[(long)t * di + ch] = gy * sl_silu(z); /* now d logit / d y */
        }

    /* the scan, in reverse: ds is d logit / d s_t, carried to s_{t-1} */
    memset(ds, 0, (size_t)S * di * sizeof *ds);
    memset(dx, 0, (size_t)T * di * sizeof *dx);
    memset(dd, 0, (size_t)T * di * sizeof *dd);
    memset(dxdbl, 0, (size_t)T * nx * sizeof *dxdbl);
    for (int t = T - 1; t >= 0; t--) {
        const float *Bt = xdbl + (long)t * nx + R, *Ct = Bt + S, *s = st + (size_t)t * S * di;
        const float *sp = t ? s - (size_t)S * di : NULL;
        const float *dy = dyg + (long)t * di, *xt = xc + (long)t * di, *dl = delta + (long)t * di;
        float *dBt = dxdbl + (long)t * nx + R, *dCt = dBt + S;
        for (int ch = 0; ch < di; ch++) dx[(long)t * di + ch] += w->D[ch] * dy[ch];
        for (int q = 0; q < S; q++) {
            double dB = 0, dC = 0;
            for (int ch = 0; ch < di; ch++) {
                float A = w->A_t[(long)q * di + ch], a = sl_exp(dl[ch] * A);
                float *g_s = &ds[(long)q * di + ch];
                *g_s += dy[ch] * Ct[q];
                dC += (double)dy[ch] * s[(long)q * di + ch];
                float prev = sp ? sp[(long)q * di + ch] : 0.0f;
                dd[(long)t * di + ch] += *g_s * (prev * a * A + xt[ch] * Bt[q]);
                dx[(long)t * di + ch] += *g_s * dl[ch] * Bt[q];
                dB += (double)*g_s * dl[ch] * xt[ch];
                *g_s *= a;
            }
            dBt[q] += (float)dB;
            dCt[q] += (float)dC;
        }
    }
    /* delta = softplus(dt W_dt^T + b): softplus' is the logistic function */
    for (long k = 0; k < (long)T * di; k++) dd[k] *= dpre[k] > 20.0f ? 1.0f : 1.0f / (1.0f + sl_exp(-dpre[k]));
    sl_linear_backward(dd, di, T, di, w->dt_w, R, dxdbl, nx, 1.0f);
    /* xdbl = xc W_x^T, added to the scan's own use of xc */
    sl_linear_backward(dxdbl, nx, T, nx, w->xproj_w, di, dx, di, 1.0f);
    for (long k = 0; k < (long)T * di; k++) dx[k] *= silu_grad(xpre[k]);
    /* the causal conv, transposed */
    for (int t = 0; t < T; t++)
        for (int ch = 0; ch < di; ch++) {
            float s = 0;
            for (int k = 0; k < K; k++) {
                int out = t + (K - 1) - k;
                if (out < T) s += w->conv_w[ch * K + k] * dx[(long)out * di + ch];
            }
            dxz[(long)t * 2 * di + ch] = s;
        }
    sl_linear_backward(dxz, 2 * di, T, 2 * di, w->in_w, d, u, d, 0.0f); /* u now holds d logit / d normed input */
    sl_mamba_norm_backward(c, h_in, w->norm_w, T, u, xdbl);
    for (long k = 0; k < n; k++) g[k] += xdbl[k];
}
