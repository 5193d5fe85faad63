/* One torch.nn.TransformerEncoderLayer (batch_first), positions 0..len-1 of
 * one example; norm_first picks pre- or post-norm. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/blas.h"
#include "core/mathx.h"
#include "models/backward.h"
#include "models/forward_common.h"

/* GPT-NeoX rotate-half on q and k of every head. */
static void rope(const sl_config *c, const float *table, float *qkv, int T)
{
    int d = c->d_model, dh = c->d_head, half = dh / 2;
    for (int t = 0; t < T; t++) {
        const float *cs = table + (long)t * 2 * half, *sn = cs + half;
        for (int part = 0; part < 2; part++)
            for (int h = 0; h < c->n_heads; h++) {
                float *x = qkv + (long)t * 3 * d + part * d + h * dh;
                for (int i = 0; i < half; i++) {
                    float a = x[i], b = x[i + half];
                    x[i] = a * cs[i] - b * sn[i];
                    x[i + half] = b * cs[i] + a * sn[i];
                }
            }
    }
}

static void activation(int act, float *x, long n)
{
    if (act == ACT_GELU)
        for (long k = 0; k < n; k++) x[k] = sl_gelu(x[k]);
    else
        for (long k = 0; k < n; k++) x[k] = x[k] > 0.0f ? x[k] : 0.0f;
}

static void add(float *h, const float *x, long n)
{
    for (long k = 0; k < n; k++) h[k] += x[k];
}

int sl_tf_layer_forward(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int i,
                        sl_error *err)
{
    const sl_config *c = &m->c;
    const sl_tf_layer *w = &m->tf[i];
    int T = ex->len, d = c->d_model, f = c->d_ff;
    long n = (long)T * d;
    float eps = c->layer_norm_eps;
    int rc = sl_fire(m, hooks, ex, HK_RESID_PRE, i, ws->h, T, d, d, err);
    if (rc) return rc;

    const float *in = ws->h;
    if (c->norm_first) {
        sl_layernorm(ws->h, w->ln1_w, w->ln1_b, eps, T, d, ws->a);
        in = ws->a;
    }
    sl_linear(in, d, T, d, w->qkv_w, w->qkv_b, 3 * d, ws->qkv, 3 * d);
    if (c->positional == POS_ROPE) rope(c, ws->pos_table, ws->qkv, T);
    if ((rc = sl_attention(m, ex, ws, hooks, i, err))) return rc;
    sl_linear(ws->ctx, d, T, d, w->o_w, w->o_b, d, ws->out, d);
    if ((rc = sl_fire(m, hooks, ex, HK_ATTN_OUT, i, ws->out, T, d, d, err))) return rc;
    add(ws->h, ws->out, n);
    if (!c->norm_first) sl_layernorm(ws->h, w->ln1_w, w->ln1_b, eps, T, d, ws->h);

    in = ws->h;
    if (c->norm_first) {
        sl_layernorm(ws->h, w->ln2_w, w->ln2_b, eps, T, d, ws->a);
        in = ws->a;
    }
    sl_linear(in, d, T, d, w->ff1_w, w->ff1_b, f, ws->ff, f);
    activation(c->activation, ws->ff, (long)T * f);
    if ((rc = sl_fire(m, hooks, ex, HK_MLP_HIDDEN, i, ws->ff, T, f, f, err))) return rc;
    sl_linear(ws->ff, f, T, f, w->ff2_w, w->ff2_b, d, ws->out, d);
    if ((rc = sl_fire(m, hooks, ex, HK_MLP_OUT, i, ws->out, T, d, d, err))) return rc;
    add(ws->h, ws->out, n);
    if (!c->norm_first) sl_layernorm(ws->h, w->ln2_w, w->ln2_b, eps, T, d, ws->h);
    return sl_fire(m, hooks, ex, HK_RESID_POST, i, ws->h, T, d, d, err);
}

/* ---- backward ---- */

static void rope_backward(const sl_config *c, const float *table, float *dqkv, int T)
{
    int d = c->d_model, dh = c->d_head, half = dh / 2;
    for (int t = 0; t < T; t++) {
        const float *cs = table + (long)t * 2 * half, *sn = cs + half;
        for (int part = 0; part < 2; part++)
            for (int h = 0; h < c->n_heads; h++) {
                float *x = dqkv + (long)t * 3 * d + part * d + h * dh;
                for (int i = 0; i < half; i++) {
                    float a = x[i], b = x[i + half];
                    x[i] = a * cs[i] + b * sn[i];
                    x[i + half] = b * cs[i] - a * sn[i];
                }
            }
    }
}

static float activation_grad(int act, float x)
{
    if (act == ACT_RELU) return x > 0.0f ? 1.0f : 0.0f;
    /* d/dx x Phi(x) = Phi(x) + x phi(x) */
    float Phi = 0.5f * sl_erfc(-0.70710678118654752f * x);
    return Phi + x * 0.39894228040143268f * sl_exp(-0.5f * x * x);
}

/* Recomputes every head's context from qkv into ctx, one head at a time. */
static void attention_context(const sl_config *c, const sl_example *ex, sl_backward_ws *b, const float *qkv, float *ctx)
{
    int T = ex->len, d = c->d_model, dh = c->d_head;
    for (int h = 0; h < c->n_heads; h++) {
        sl_head_probs(c, ex, qkv, h, b->hq, b->hk, b->hv, b->P);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dh, T, 1.0f, b->P, T, b->hv, dh, 0.0f, ctx + h * dh, d);
    }
}

/* dctx [T, d] to dqkv [T, 3d] through softmax attention, head by head. */
static void attention_backward(const sl_config *c, const sl_example *ex, sl_backward_ws *b, const float *qkv,
                               const float *dctx, float *dqkv)
{
    int T = ex->len, d = c->d_model, dh = c->d_head;
    float scale = 1.0f / sqrtf((float)dh);
    for (int h = 0; h < c->n_heads; h++) {
        sl_head_probs(c, ex, qkv, h, b->hq, b->hk, b->hv, b->P);
        /* dV = P^T dctx ; dP = dctx V^T */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, dh, T, 1.0f, b->P, T, dctx + h * dh, d, 0.0f, b->dv, dh);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, dh, 1.0f, dctx + h * dh, d, b->hv, dh, 0.0f, b->dP, T);
        /* dS = P (dP - rowsum(P dP)) */
        for (int t = 0; t < T; t++) {
            float *p = b->P + (long)t * T, *dp = b->dP + (long)t * T;
            double dot = 0;
            for (int j = 0; j < T; j++) dot += (double)p[j] * dp[j];
            for (int j = 0; j < T; j++) dp[j] = p[j] * (dp[j] - (float)dot);
        }
        /* S = (q scale) k^T: dq = scale dS k, dk = dS^T (q scale) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dh, T, scale, b->dP, T, b->hk, dh, 0.0f, b->dq, dh);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, dh, T, 1.0f, b->dP, T, b->hq, dh, 0.0f, b->dk, dh);
        for (int t = 0; t < T; t++)
            for (int j = 0; j < dh; j++) {
                float *row = dqkv + (long)t * 3 * d + h * dh + j;
                row[0] = b->dq[t * dh + j];
                row[d] = b->dk[t * dh + j];
                row[2 * d] = b->dv[t * dh + j];
            }
    }
}

void sl_tf_layer_backward(const sl_model *m, const sl_example *ex, sl_workspace *ws, int i)
{
    const sl_config *c = &m->c;
    const sl_tf_layer *w = &m->tf[i];
    sl_backward_ws *b = ws->bw;
    int T = ex->len, d = c->d_model, f = c->d_ff;
    long n = (long)T * d;
    float eps = c->layer_norm_eps;
    const float *h_in = b->tape + (size_t)i * ws->max_len * d;
    float *a1 = b->buf[0], *qkv = b->buf[1], *ctx = b->buf[2], *z1 = b->buf[3], *h1 = b->buf[4], *a2 = b->buf[5];
    float *pre = b->buf[6], *z2 = b->buf[7], *dpre = b->buf[8], *da = b->buf[9], *dctx = b->buf[10];
    float *dqkv = b->buf[11], *dres = b->buf[12], *tmp = b->buf[13], *g = b->g;

    /* the block again, keeping what the reverse pass needs */
    const float *in1 = h_in;
    if (c->norm_first) {
        sl_layernorm(h_in, w->ln1_w, w->ln1_b, eps, T, d, a1);
        in1 = a1;
    }
    sl_linear(in1, d, T, d, w->qkv_w, w->qkv_b, 3 * d, qkv, 3 * d);
    if (c->positional == POS_ROPE) rope(c, ws->pos_table, qkv, T);
    attention_context(c, ex, b, qkv, ctx);
    sl_linear(ctx, d, T, d, w->o_w, w->o_b, d, z1, d); /* the attention write */
    for (long k = 0; k < n; k++) z1[k] += h_in[k];     /* z1 = h + attn */
    if (c->norm_first) memcpy(h1, z1, (size_t)n * sizeof *h1);
    else sl_layernorm(z1, w->ln1_w, w->ln1_b, eps, T, d, h1);
    const float *in2 = h1;
    if (c->norm_first) {
        sl_layernorm(h1, w->ln2_w, w->ln2_b, eps, T, d, a2);
        in2 = a2;
    }
    sl_linear(in2, d, T, d, w->ff1_w, w->ff1_b, f, pre, f);
    if (!c->norm_first) { /* z2 = h1 + mlp(h1), the input of norm2 */
        for (long k = 0; k < (long)T * f; k++) tmp[k] = pre[k];
        activation(c->activation, tmp, (long)T * f);
        sl_linear(tmp, f, T, f, w->ff2_w, w->ff2_b, d, z2, d);
        for (long k = 0; k < n; k++) z2[k] += h1[k];
    }

    /* MLP: g is d logit / d block output */
    if (!c->norm_first) { /* h2 = LN2(z2) */
        sl_layernorm_backward(z2, w->ln2_w, eps, T, d, g, dres);
        memcpy(g, dres, (size_t)n * sizeof *g);
    }
    sl_linear_backward(g, d, T, d, w->ff2_w, f, dpre, f, 0.0f);
    for (long k = 0; k < (long)T * f; k++) dpre[k] *= activation_grad(c->activation, pre[k]);
    sl_linear_backward(dpre, f, T, f, w->ff1_w, d, da, d, 0.0f);
    if (c->norm_first) {
        sl_layernorm_backward(h1, w->ln2_w, eps, T, d, da, tmp);
        for (long k = 0; k < n; k++) g[k] += tmp[k]; /* d logit / d h1 */
    } else {
        for (long k = 0; k < n; k++) g[k] += da[k];
        sl_layernorm_backward(z1, w->ln1_w, eps, T, d, g, dres); /* h1 = LN1(z1) */
        memcpy(g, dres, (size_t)n * sizeof *g);
    }

    /* attention: g is now d logit / d z1 (post-norm) or d h1 (pre-norm) */
    sl_linear_backward(g, d, T, d, w->o_w, d, dctx, d, 0.0f);
    attention_backward(c, ex, b, qkv, dctx, dqkv);
    if (c->positional == POS_ROPE) rope_backward(c, ws->pos_table, dqkv, T);
    sl_linear_backward(dqkv, 3 * d, T, 3 * d, w->qkv_w, d, da, d, 0.0f);
    if (c->norm_first) {
        sl_layernorm_backward(h_in, w->ln1_w, eps, T, d, da, tmp);
        for (long k = 0; k < n; k++) g[k] += tmp[k];
    } else {
        for (long k = 0; k < n; k++) g[k] += da[k];
    }
}
