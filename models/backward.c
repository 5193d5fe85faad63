#include "models/backward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/arch.h"
#include "models/attention_tile.h"
#include "models/cpu_ops.h"

void sl_linear_backward(const float *dy, int ldy, int rows, int out, const float *W, int in, float *dx, int ldx,
                        float beta)
{
    if (rows > 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out, 1.0f, dy, ldy, W, in, beta, dx, ldx);
}

void sl_layernorm_backward(const float *x, const float *w, float eps, int rows, int d, const float *dy, float *dx)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * d, *gr = dy + (long)r * d;
        double mean = 0, var = 0;
        /* in lanes: the sums are double, so their order matters little */
#pragma omp simd reduction(+ : mean)
        for (int i = 0; i < d; i++) mean += xr[i];
        mean /= d;
#pragma omp simd reduction(+ : var)
        for (int i = 0; i < d; i++) var += (xr[i] - mean) * (xr[i] - mean);
        double rstd = 1.0 / sqrt(var / d + eps), m1 = 0, m2 = 0;
#pragma omp simd reduction(+ : m1, m2)
        for (int i = 0; i < d; i++) {
            double g = (double)gr[i] * w[i], xh = (xr[i] - mean) * rstd;
            m1 += g;
            m2 += g * xh;
        }
        m1 /= d;
        m2 /= d;
        for (int i = 0; i < d; i++) {
            double xh = (xr[i] - mean) * rstd;
            dx[(long)r * d + i] = (float)(rstd * ((double)gr[i] * w[i] - m1 - xh * m2));
        }
    }
}

void sl_rmsnorm_backward(const float *x, const float *w, float eps, int rows, int d, const float *dy, float *dx)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * d, *gr = dy + (long)r * d;
        double ss = 0, dot = 0;
        for (int i = 0; i < d; i++) ss += (double)xr[i] * xr[i];
        double rs = 1.0 / sqrt(ss / d + eps);
        for (int i = 0; i < d; i++) dot += (double)gr[i] * w[i] * xr[i];
        for (int i = 0; i < d; i++)
            dx[(long)r * d + i] = (float)(rs * gr[i] * w[i] - xr[i] * rs * rs * rs * dot / d);
    }
}

void sl_backward_ws_free(sl_backward_ws *b)
{
    if (!b) return;
    free(b->tape);
    free(b->g);
    for (int i = 0; i < SL_BW_BUFS; i++) free(b->buf[i]);
    float *tf[] = {b->qkv_tape, b->ctx_tape, b->lse_tape, b->keep_tape, b->vt, b->kr, b->dout, b->dq, b->dk, b->dv, b->rowd, b->tile};
    for (size_t i = 0; i < sizeof tf / sizeof *tf; i++) free(tf[i]);
    free(b->mtape);
    free(b->ckpt);
    free(b->chunk);
    free(b);
}

static sl_backward_ws *backward_ws(const sl_model *m, sl_workspace *ws, sl_error *err)
{
    if (ws->bw) return ws->bw;
    const sl_config *c = &m->c;
    size_t L = (size_t)ws->max_len, d = (size_t)c->d_model, wide = 3 * d;
    if (c->arch == ARCH_MAMBA) {
        size_t mw = 2 * (size_t)c->d_inner + (size_t)c->dt_rank + 2 * (size_t)c->d_state;
        if (mw > wide) wide = mw;
    } else if (c->arch == ARCH_MAMBA2) {
        size_t mw = 2 * (size_t)c->d_inner + 2 * (size_t)c->ngroups * c->d_state + (size_t)c->nheads; /* in_proj's */
        if (mw > wide) wide = mw;
    } else if ((size_t)c->d_ff > wide) {
        wide = (size_t)c->d_ff;
    }
    sl_backward_ws *b = calloc(1, sizeof *b);
    int ok = b && (b->tape = malloc((size_t)(c->n_layers + 1) * L * d * 4)) && (b->g = malloc(L * d * 4));
    for (int i = 0; ok && i < SL_BW_BUFS; i++) ok = (b->buf[i] = calloc(L * wide, 4)) != NULL;
    if (ok && c->arch == ARCH_TRANSFORMER) {
        size_t dh = (size_t)c->d_head, nl = (size_t)c->n_layers;
        ok = (b->qkv_tape = malloc(nl * L * 3 * d * 4)) && (b->ctx_tape = malloc(nl * L * d * 4))
          && (b->lse_tape = malloc(nl * (size_t)c->n_heads * L * 4))
          && (b->keep_tape = malloc(nl * L * (2 * d + (size_t)c->d_ff) * 4)) && (b->vt = malloc((size_t)ws->kt_ld * dh * 4))
          && (b->kr = malloc(L * dh * 4)) && (b->dout = malloc(L * dh * 4)) && (b->dq = malloc(L * dh * 4))
          && (b->dk = malloc(L * dh * 4)) && (b->dv = malloc(L * dh * 4)) && (b->rowd = malloc(L * 4))
          && (b->tile = malloc(2 * SL_QB * SL_KEY_TILE * 4));
    } else if (ok && c->arch == ARCH_MAMBA2) {
        /* one block's kept states at a time: each block's backward runs its forward again */
        size_t scratch = (sl_ssd_scratch_floats(c->nheads, c->headdim, c->ngroups, c->d_state) * 4 + 63) & ~(size_t)63;
        ok = (b->ckpt = malloc(sl_ssd_ckpt_floats(c->nheads, c->headdim, c->d_state, (int)L) * 4))
          && (b->chunk = aligned_alloc(64, scratch));
    } else if (ok) {
        ok = sl_mamba_backward_alloc(c, L, b);
    }
    if (!ok) {
        sl_backward_ws_free(b);
        sl_fail(err, SL_ERUNTIME, "out of memory for the backward pass of %zu positions", L);
        return NULL;
    }
    ws->bw = b;
    return b;
}

int sl_gradient(const sl_model *m, const sl_example *ex, sl_workspace *ws, const float *embed_in, float *logit, float *grad,
                sl_error *err)
{
    if (m->c.d_model > 4096) return sl_fail(err, SL_EINPUT, "gradients: d_model %d above 4096", m->c.d_model);
    sl_backward_ws *b = backward_ws(m, ws, err);
    if (!b) return err->code;
    int nl = m->c.n_layers, d = m->c.d_model, T = ex->len;
    size_t L = (size_t)ws->max_len;
    int rc = sl_forward_taped(m, ex, ws, embed_in, b->tape, logit, err);
    if (rc) return rc;
    sl_cpu_ops tail = sl_cpu_ops_on(m, ex, ws, NULL, NULL);
    tail.h_in = b->tape + (size_t)nl * L * d;
    rc = sl_arch_tail_backward(&tail.ops, err);
    if (rc) return rc;
    if (grad) memcpy(grad + (size_t)nl * T * d, b->g, (size_t)T * d * sizeof *grad);
    for (int i = nl - 1; i >= 0; i--) {
        sl_cpu_ops c = sl_cpu_ops_on(m, ex, ws, NULL, NULL);
        sl_mamba_tape mamba_tape;
        sl_tf_tape tf_tape;
        if (m->c.arch == ARCH_MAMBA) mamba_tape = sl_mamba_tape_at(m, ws, i), c.tape = &mamba_tape;
        else if (m->c.arch == ARCH_MAMBA2) c.ssd_ckpt = b->ckpt;
        else tf_tape = sl_tf_tape_at(m, ws, i), c.tf_tape = &tf_tape;
        c.h_in = b->tape + (size_t)i * L * d;
        rc = sl_arch_layer_backward(&c.ops, i, err);
        if (rc) return rc;
        if (grad) memcpy(grad + (size_t)i * T * d, b->g, (size_t)T * d * sizeof *grad);
    }
    return SL_OK;
}
