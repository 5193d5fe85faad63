/* The CPU backend's backward operations (models/ops.h: sl_grad_table),
 * each on all rows of one example, on the activations its taped forward
 * kept (models/backward.h); the kernels are in mamba_backward.c,
 * mamba_scan_backward.c, transformer_backward.c, attention_backward.c and
 * backward.c. */
#include <string.h>

#include "models/backward.h"
#include "models/cpu_ops.h"
#include "models/ig_path.h"

static sl_cpu_ops *cpu(sl_ops *o) { return (sl_cpu_ops *)o; }

static float *at(sl_ops *o, sl_view v) { return sl_cpu_at(o, v); }

static int rows(sl_ops *o, sl_view v) { return sl_cpu_rows(o, v); }

static int copy(sl_ops *o, sl_view x, sl_view y, sl_error *err)
{
    (void)err;
    memcpy(at(o, y), at(o, x), (size_t)rows(o, y) * y.cols * sizeof(float));
    return SL_OK;
}

static int conv(sl_ops *o, sl_view x, const float *w, const float *b, int K, sl_view y, sl_error *err)
{
    (void)err;
    sl_mamba_conv(at(o, x), x.ld, rows(o, x), x.cols, K, w, b, at(o, y));
    return SL_OK;
}

static int linear_backward(sl_ops *o, sl_view dy, const float *w, sl_view dx, int accumulate, sl_error *err)
{
    (void)err;
    sl_linear_backward(at(o, dy), dy.ld, rows(o, dy), dy.cols, w, dx.cols, at(o, dx), dx.ld, accumulate ? 1.0f : 0.0f);
    return SL_OK;
}

/* In place: into scratch, then copied (or added). */
static int norm_backward(sl_ops *o, int kind, sl_view x, const float *w, float eps, sl_view dy, sl_view dx,
                         int accumulate, sl_error *err)
{
    (void)err;
    int T = rows(o, x), d = x.cols;
    float *g = at(o, dx), *in = at(o, dy);
    float *out = g == in ? cpu(o)->ws->bw->buf[13] : g;
    int acc = accumulate && out == g; /* adding to g as it goes: the same float sums as adding afterwards */
    if (kind == SL_NORM_LAYER) sl_layernorm_backward(at(o, x), w, eps, T, d, in, out, acc);
    else sl_rmsnorm_backward(at(o, x), w, eps, T, d, in, out, acc);
    if (out == g) return SL_OK;
    if (accumulate)
        for (long k = 0; k < (long)T * d; k++) g[k] += out[k];
    else
        memcpy(g, out, (size_t)T * d * sizeof *g);
    return SL_OK;
}

/* z: SiLU(z), with SiLU'(z) at the start of the same rows of the tape's xz
 * (the taped forward's gate) */
static int gate_backward(sl_ops *o, sl_view z, sl_view y, sl_view dy, sl_view dz, sl_error *err)
{
    (void)err;
    sl_mamba_gate_backward_kept(at(o, z), at(o, z) - z.off, z.ld, at(o, y), rows(o, y), y.cols, at(o, dy), at(o, dz),
                                dz.ld);
    return SL_OK;
}

/* dpre: softplus' at it, as the tape kept it (SL_DPRE on the tape) */
static int scan_backward(sl_ops *o, sl_view x, sl_view delta, sl_view dpre, sl_view B, const float *A_t,
                         const float *D, sl_view dy, sl_view dx, sl_view ddelta, sl_view dB, sl_error *err)
{
    (void)err;
    sl_cpu_ops *c = cpu(o);
    sl_mamba_scan_backward(A_t, D, c->tape->ckpt, at(o, x), at(o, delta), at(o, dpre), at(o, B) - B.off, B.ld, B.off,
                           at(o, dy), rows(o, x), x.cols, B.cols, c->ws->bw->chunk, at(o, dx), at(o, ddelta),
                           at(o, dB) - dB.off);
    return SL_OK;
}

static int silu_conv_backward(sl_ops *o, sl_view pre, sl_view dy, const float *w, int K, sl_view dx, sl_error *err)
{
    (void)err;
    /* a Mamba-1 block's tape keeps SiLU' (SL_XPRE on the tape); Mamba-2's pre is the conv, run again */
    const float *p = at(o, pre);
    sl_mamba_silu_conv_backward(cpu(o)->tape ? NULL : p, cpu(o)->tape ? p : NULL, at(o, dy), rows(o, dy), dy.cols, K, w,
                                at(o, dx), dx.ld);
    return SL_OK;
}

static int activation_backward(sl_ops *o, int act, sl_view pre, sl_view dy, sl_error *err)
{
    (void)err;
    sl_activation_backward(act, at(o, pre), at(o, dy), (long)rows(o, dy) * dy.cols);
    return SL_OK;
}

static int attention_backward(sl_ops *o, int layer, sl_error *err)
{
    (void)layer, (void)err;
    sl_cpu_ops *c = cpu(o);
    int d = o->m->c.d_model;
    sl_attention_backward(&o->m->c, c->ex, c->ws, at(o, sl_rows(SL_QKV, 3 * d)), at(o, sl_rows(SL_CTX, d)),
                          c->tf_tape->lse, at(o, sl_rows(SL_DCTX, d)), at(o, sl_rows(SL_DQKV, 3 * d)));
    return SL_OK;
}

static int rope_backward(sl_ops *o, sl_error *err)
{
    (void)err;
    sl_cpu_ops *c = cpu(o);
    sl_rope_backward(&o->m->c, c->ws->pos_table, at(o, sl_rows(SL_DQKV, 3 * o->m->c.d_model)), c->ex->len);
    return SL_OK;
}

/* d_model at most 4096 (sl_gradient checks) */
static int head_backward(sl_ops *o, const float *head_w, int nrows, int pooling, sl_view dx, sl_error *err)
{
    (void)err;
    const sl_example *ex = cpu(o)->ex;
    int d = dx.cols, T = ex->len;
    float hw[4096], *dfin = at(o, dx);
    const float *w = head_w;
    if (nrows == 2) {
        for (int k = 0; k < d && k < 4096; k++) hw[k] = head_w[d + k] - head_w[k];
        w = hw;
    }
    memset(dfin, 0, (size_t)T * d * sizeof *dfin);
    if (pooling == POOL_CLS) {
        memcpy(dfin, w, (size_t)d * sizeof *dfin);
    } else if (pooling == POOL_LAST) {
        int t = T - 1;
        while (ex->keep && t > 0 && !ex->keep[t]) t--;
        memcpy(dfin + (long)t * d, w, (size_t)d * sizeof *dfin);
    } else {
        int kept = 0;
        for (int t = 0; t < T; t++) kept += !ex->keep || ex->keep[t];
        for (int t = 0; t < T; t++)
            if (!ex->keep || ex->keep[t])
                for (int k = 0; k < d; k++) dfin[(long)t * d + k] = w[k] / (kept ? kept : 1);
    }
    return SL_OK;
}

/* Mamba-2's block runs its forward again (models/mamba2_grad.c): its conv's SiLU. */
static int silu(sl_ops *o, sl_view x, sl_view y, sl_error *err)
{
    (void)err;
    sl_mamba_silu(at(o, x), x.ld, rows(o, x), x.cols, at(o, y));
    return SL_OK;
}

static int delta2_backward(sl_ops *o, sl_view dt, const float *bias, float lo, float hi, sl_view ddelta, sl_view ddt,
                           sl_error *err)
{
    (void)err;
    sl_delta2_backward(at(o, dt), dt.ld, rows(o, dt), dt.cols, bias, lo, hi, at(o, ddelta), ddelta.ld, at(o, ddt),
                       ddt.ld);
    return SL_OK;
}

/* From the states the block's ssd kept in ssd_ckpt as the backward ran it
 * again (the CPU tape, models/backward.c, sets it for a Mamba-2 block). */
static int ssd_backward(sl_ops *o, sl_view x, sl_view delta, sl_view B, sl_view C, const float *A, const float *D,
                        sl_view dy, sl_view dx, sl_view ddelta, sl_view dB, sl_view dC, sl_error *err)
{
    sl_cpu_ops *c = cpu(o);
    if (!c->ssd_ckpt) return sl_fail(err, SL_ERUNTIME, "ssd_backward without the states of its forward");
    sl_ssd_in in = sl_cpu_ssd_in(o, x, delta, B, C, A, D);
    sl_ssd_backward(&in, c->ssd_ckpt, at(o, dy), dy.ld, c->ws->bw->chunk, at(o, dx), dx.ld, at(o, ddelta), ddelta.ld,
                    at(o, dB), at(o, dC), dB.ld);
    return SL_OK;
}

static int gated_norm_backward(sl_ops *o, sl_view y, sl_view z, const float *w, int group, float eps, int before,
                               sl_view dout, sl_view dy, sl_view dz, sl_error *err)
{
    (void)err;
    sl_gated_norm_backward(at(o, y), y.ld, at(o, z), z.ld, rows(o, y), y.cols, w, group, eps, before, at(o, dout),
                           dout.ld, at(o, dy), dy.ld, at(o, dz), dz.ld);
    return SL_OK;
}

static int ig_in_proj(sl_ops *o, sl_view h, sl_view xz, sl_error *err)
{
    (void)err;
    sl_ig_path_in_proj(o->m, cpu(o)->ig, at(o, h), rows(o, h), at(o, xz), xz.ld);
    return SL_OK;
}

static int ig_in_proj_backward(sl_ops *o, sl_view h, sl_view dxz, sl_view g, sl_error *err)
{
    (void)err;
    sl_ig_path_in_proj_backward(o->m, cpu(o)->ig, at(o, h), rows(o, h), at(o, g), at(o, dxz), dxz.ld);
    return SL_OK;
}

/* scan_keep and attention_keep are for a backend without a tape. */
const sl_grad_table sl_cpu_grad_table = {
    .copy = copy, .conv = conv, .linear_backward = linear_backward, .norm_backward = norm_backward,
    .gate_backward = gate_backward, .scan_backward = scan_backward, .silu_conv_backward = silu_conv_backward,
    .activation_backward = activation_backward,
    .attention_backward = attention_backward, .rope_backward = rope_backward, .head_backward = head_backward,
    .silu = silu, .delta2_backward = delta2_backward, .ssd_backward = ssd_backward,
    .gated_norm_backward = gated_norm_backward, .ig_in_proj = ig_in_proj, .ig_in_proj_backward = ig_in_proj_backward,
};
