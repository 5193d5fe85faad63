/* One torch.nn.TransformerEncoderLayer (batch_first), positions 0..len-1 of
 * one example; norm_first picks pre- or post-norm. */
#include <math.h>

#include "core/blas.h"
#include "core/mathx.h"
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
