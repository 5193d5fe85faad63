/* The CPU's kernels of a Transformer block's backward (the block's steps:
 * models/transformer_grad.c), one example, and where its taped forward
 * keeps what the backward reads (models/backward.h). */
#include <string.h>

#include "core/mathx.h"
#include "core/mathx8.h"
#include "models/backward.h"

void sl_rope_backward(const sl_config *c, const float *table, float *dqkv, int T)
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

/* branch-free so that it vectorises */
void sl_activation_backward(int act, const float *x, float *dx, long n)
{
    if (act == ACT_RELU) {
        for (long k = 0; k < n; k++) dx[k] *= x[k] > 0.0f ? 1.0f : 0.0f;
        return;
    }
    /* d/dx x Phi(x) = Phi(x) + x phi(x) */
    long k0 = 0;
#ifdef SL_HAVE_MATHX8
    /* four vectors at a time, the loop's bits (core/mathx8.h) */
    for (; k0 + 32 <= n; k0 += 32) {
        v8f z[4], g[4];
        for (int u = 0; u < 4; u++) z[u] = v8_load(x + k0 + 8 * u), g[u] = v8_load(dx + k0 + 8 * u);
        sl_gelu_grad8n(z, g, 4);
        for (int u = 0; u < 4; u++) v8_store(dx + k0 + 8 * u, g[u]);
    }
#endif
#pragma omp simd
    for (long k = k0; k < n; k++) {
        float z = x[k], Phi = 0.5f * sl_erfc(-0.70710678118654752f * z);
        dx[k] *= Phi + z * 0.39894228040143268f * sl_exp(-0.5f * z * z);
    }
}

sl_tf_tape sl_tf_tape_at(const sl_model *m, sl_workspace *ws, int i)
{
    const sl_config *c = &m->c;
    sl_backward_ws *b = ws->bw;
    size_t L = (size_t)ws->max_len, d = (size_t)c->d_model;
    /* what the taped forward kept (ws->keep): z1 = h + attn, z2 = h1 + mlp(h1), the MLP's pre-activation */
    float *keep = b->keep_tape + i * L * (2 * d + (size_t)c->d_ff);
    return (sl_tf_tape){b->qkv_tape + i * L * 3 * d, b->ctx_tape + i * L * d, b->lse_tape + i * L * c->n_heads, keep,
                        keep + L * d, keep + 2 * L * d};
}
