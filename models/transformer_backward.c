/* The backward pass of one torch.nn.TransformerEncoderLayer, one example,
 * from what its taped forward kept (models/backward.h). */
#include <string.h>

#include "core/mathx.h"
#include "models/backward.h"

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

/* dx *= act'(x), branch-free so that it vectorises. */
static void activation_backward(int act, const float *x, float *dx, long n)
{
    if (act == ACT_RELU) {
        for (long k = 0; k < n; k++) dx[k] *= x[k] > 0.0f ? 1.0f : 0.0f;
        return;
    }
    /* d/dx x Phi(x) = Phi(x) + x phi(x) */
#pragma omp simd
    for (long k = 0; k < n; k++) {
        float z = x[k], Phi = 0.5f * sl_erfc(-0.70710678118654752f * z);
        dx[k] *= Phi + z * 0.39894228040143268f * sl_exp(-0.5f * z * z);
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
    size_t L = (size_t)ws->max_len;
    const float *h_in = b->tape + i * L * d, *qkv = b->qkv_tape + i * L * 3 * d, *ctx = b->ctx_tape + i * L * d;
    const float *lse = b->lse_tape + i * L * c->n_heads;
    /* what the taped forward kept: z1 = h + attn (h1 = z1 pre-norm, LN1(z1)
     * post-norm), z2 = h1 + mlp(h1) (post-norm), the MLP's pre-activation */
    const float *keep = b->keep_tape + i * L * (2 * (size_t)d + (size_t)f);
    const float *z1 = keep, *h1 = keep, *z2 = keep + L * d, *pre = keep + 2 * L * d;
    float *dpre = b->buf[8], *da = b->buf[9], *dctx = b->buf[10];
    float *dqkv = b->buf[11], *dres = b->buf[12], *tmp = b->buf[13], *g = b->g;

    /* MLP: g is d logit / d block output */
    if (!c->norm_first) { /* h2 = LN2(z2) */
        sl_layernorm_backward(z2, w->ln2_w, eps, T, d, g, dres);
        memcpy(g, dres, (size_t)n * sizeof *g);
    }
    sl_linear_backward(g, d, T, d, w->ff2_w, f, dpre, f, 0.0f);
    activation_backward(c->activation, pre, dpre, (long)T * f);
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
    sl_attention_backward(c, ex, ws, qkv, ctx, lse, dctx, dqkv);
    if (c->positional == POS_ROPE) rope_backward(c, ws->pos_table, dqkv, T);
    sl_linear_backward(dqkv, 3 * d, T, 3 * d, w->qkv_w, d, da, d, 0.0f);
    if (c->norm_first) {
        sl_layernorm_backward(h_in, w->ln1_w, eps, T, d, da, tmp);
        for (long k = 0; k < n; k++) g[k] += tmp[k];
    } else {
        for (long k = 0; k < n; k++) g[k] += da[k];
    }
}
