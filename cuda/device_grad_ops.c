/* The device backend's backward operations (models/ops.h: sl_grad_table),
 * each on all rows of a batch: the forward's activations computed again
 * (the scan keeping every state, the attention its log-sum-exps), then a
 * GEMM or a launch (cuda/backward_kernels.h) per step; the buffers are
 * device_backward.c's. Plain C: it runs in the CPU tests on the host grid. */
#include "cuda/device_internal.h"

static batch_run *run(sl_ops *o) { return (batch_run *)o; }

static float *at(sl_ops *o, sl_view v) { return sl_dm_at(o, v); }

static const float *weight(sl_ops *o, const float *w) { return sl_dm_weight(run(o)->dm, w); }

static int copy(sl_ops *o, sl_view x, sl_view y, sl_error *err)
{
    return sl_dm_launch(run(o), SK_COPY, (sl_kargs){.x = at(o, x), .y = at(o, y), .n = run(o)->rows * y.cols}, err);
}

static int silu(sl_ops *o, sl_view x, sl_view y, sl_error *err)
{
    return sl_dm_launch(run(o), SK_SILU, (sl_kargs){.x = at(o, x), .y = at(o, y), .n = run(o)->rows * y.cols}, err);
}

/* The scan's arguments as SK_SCAN's; its states are dm->bw->states. */
static sl_kargs scan_args(sl_ops *o, sl_view x, sl_view delta, sl_view B, const float *A_t, const float *D)
{
    return (sl_kargs){.x = at(o, x), .b = at(o, delta), .w = at(o, B) - B.off, .ldb = B.ld, .boff = B.off,
                      .coff = B.off + B.cols, .di = x.cols, .S = B.cols, .A_t = weight(o, A_t), .D = weight(o, D)};
}

static int scan_keep(sl_ops *o, sl_view x, sl_view delta, sl_view B, const float *A_t, const float *D, sl_view y,
                     sl_error *err)
{
    sl_kargs a = scan_args(o, x, delta, B, A_t, D);
    a.y = at(o, y), a.dx = run(o)->dm->bw->states;
    return sl_dm_launch(run(o), SK_SCAN_KEEP, a, err);
}

/* The attention's arguments over qkv; its log-sum-exps are dm->bw->lse. */
static sl_kargs attention_args(sl_ops *o)
{
    const sl_config *c = &o->m->c;
    return (sl_kargs){.x = at(o, sl_rows(SL_QKV, 3 * c->d_model)), .d = c->d_model, .dh = c->d_head,
                      .heads = c->n_heads, .causal = c->causal};
}

static int attention_keep(sl_ops *o, int layer, sl_error *err)
{
    (void)layer;
    sl_kargs a = attention_args(o);
    a.y = at(o, sl_rows(SL_CTX, o->m->c.d_model));
    int rc = sl_dm_launch(run(o), SK_ATTENTION, a, err);
    a.y = run(o)->dm->bw->lse;
    return rc ? rc : sl_dm_launch(run(o), SK_LSE, a, err);
}

static int conv(sl_ops *o, sl_view x, const float *w, const float *b, int K, sl_view y, sl_error *err)
{
    return sl_dm_launch(run(o), SK_CONV_PRE, (sl_kargs){.x = at(o, x), .ld = x.ld, .di = x.cols, .K = K,
                                                        .w = weight(o, w), .b = weight(o, b), .y = at(o, y)}, err);
}

static int linear_backward(sl_ops *o, sl_view dy, const float *w, sl_view dx, int accumulate, sl_error *err)
{
    return sl_dm_linear_backward(run(o), at(o, dy), dy.ld, dy.cols, w, dx.cols, at(o, dx), dx.ld,
                                 accumulate ? 1.0f : 0.0f, err);
}

static int norm_backward(sl_ops *o, int kind, sl_view x, const float *w, float eps, sl_view dy, sl_view dx,
                         int accumulate, sl_error *err)
{
    return sl_dm_launch(run(o), kind == SL_NORM_LAYER ? SK_LAYERNORM_BW : SK_RMSNORM_BW,
                        (sl_kargs){.x = at(o, x), .w = weight(o, w), .eps = eps, .d = x.cols, .dy = at(o, dy),
                                   .y = at(o, dx), .flag = accumulate}, err);
}

/* SK_GATE_BW: z and dz in rows of z.ld, y and dy whole rows of z.cols. */
static int gate_backward(sl_ops *o, sl_view z, sl_view y, sl_view dy, sl_view dz, sl_error *err)
{
    if (dz.ld != z.ld) return sl_fail(err, SL_ERUNTIME, "device gate_backward: z and dz in rows of %d and %d", z.ld, dz.ld);
    return sl_dm_launch(run(o), SK_GATE_BW, (sl_kargs){.x = at(o, z), .ld = z.ld, .di = z.cols, .dx = at(o, dy),
                                                       .states = at(o, y), .y = at(o, dz)}, err);
}

/* The reverse scan keeps each channel's share of dB and dC, summed over
 * the channels after it (SK_SCAN_BW_REDUCE, which writes every column of
 * dxdbl: 0 in dt's); then d delta becomes d dpre (SK_SOFTPLUS_BW). */
static int scan_backward(sl_ops *o, sl_view x, sl_view delta, sl_view dpre, sl_view B, const float *A_t,
                         const float *D, sl_view dy, sl_view dx, sl_view ddelta, sl_view dB, sl_error *err)
{
    batch_run *r = run(o);
    struct sl_dev_bw *b = r->dm->bw;
    sl_kargs a = scan_args(o, x, delta, B, A_t, D);
    a.states = b->states, a.dy = at(o, dy), a.dx = at(o, dx), a.dd = at(o, ddelta), a.dBp = b->dBp, a.dCp = b->dCp;
    int rc = sl_dm_launch(r, SK_SCAN_BW, a, err);
    if (!rc)
        rc = sl_dm_launch(r, SK_SCAN_BW_REDUCE, (sl_kargs){.dBp = b->dBp, .dCp = b->dCp, .di = x.cols, .S = B.cols,
                                                          .boff = dB.off, .cols = dB.ld, .y = at(o, dB) - dB.off,
                                                          .ldb = dB.ld}, err);
    return rc ? rc : sl_dm_launch(r, SK_SOFTPLUS_BW, (sl_kargs){.x = at(o, dpre), .y = at(o, ddelta),
                                                                .n = r->rows * ddelta.cols}, err);
}

/* SK_SILU_BW on dy in place, then SK_CONV_BW, which writes dx's dy.cols
 * columns in rows of dx.ld. */
static int silu_conv_backward(sl_ops *o, sl_view pre, sl_view dy, const float *w, int K, sl_view dx, sl_error *err)
{
    int rc = sl_dm_launch(run(o), SK_SILU_BW, (sl_kargs){.x = at(o, pre), .y = at(o, dy), .n = run(o)->rows * dy.cols},
                          err);
    return rc ? rc : sl_dm_launch(run(o), SK_CONV_BW, (sl_kargs){.dy = at(o, dy), .di = dy.cols, .K = K,
                                                                 .w = weight(o, w), .y = at(o, dx), .ld = dx.ld}, err);
}

static int activation_backward(sl_ops *o, int act, sl_view pre, sl_view dy, sl_error *err)
{
    return sl_dm_launch(run(o), SK_ACTIVATION_BW, (sl_kargs){.x = at(o, pre), .y = at(o, dy),
                                                             .n = run(o)->rows * dy.cols, .flag = act == ACT_GELU},
                        err);
}

/* Each query's rowsum(d context * context) per head (SK_ATTN_D), then dq
 * per query and dk, dv per key. */
static int attention_backward(sl_ops *o, int layer, sl_error *err)
{
    (void)layer;
    batch_run *r = run(o);
    struct sl_dev_bw *b = r->dm->bw;
    const sl_config *c = &o->m->c;
    int d = c->d_model;
    sl_kargs a = attention_args(o);
    a.y = b->lse, a.lse = b->lse, a.Dt = b->Dt;
    a.dy = at(o, sl_rows(SL_DCTX, d)), a.dx = at(o, sl_rows(SL_DQKV, 3 * d));
    int rc = sl_dm_launch(r, SK_ATTN_D, (sl_kargs){.dy = a.dy, .w = at(o, sl_rows(SL_CTX, d)), .y = b->Dt, .d = d,
                                                   .dh = c->d_head, .heads = c->n_heads}, err);
    if (!rc) rc = sl_dm_launch(r, SK_ATTN_DQ, a, err);
    return rc ? rc : sl_dm_launch(r, SK_ATTN_DKV, a, err);
}

static int rope_backward(sl_ops *o, sl_error *err)
{
    const sl_config *c = &o->m->c;
    return sl_dm_launch(run(o), SK_ROPE, (sl_kargs){.y = at(o, sl_rows(SL_DQKV, 3 * c->d_model)), .x = run(o)->dm->pos,
                                                    .d = c->d_model, .dh = c->d_head, .heads = c->n_heads, .flag = 1},
                        err);
}

static int head_backward(sl_ops *o, const float *w, int rows, int pooling, sl_view dx, sl_error *err)
{
    return sl_dm_launch(run(o), SK_TAIL_BW, (sl_kargs){.w = weight(o, w), .flag = rows, .K = pooling, .d = dx.cols,
                                                       .y = at(o, dx)}, err);
}

/* ---- Mamba-2 (cuda/mamba2_kernels.h) ---- */

static int delta2_backward(sl_ops *o, sl_view dt, const float *bias, float lo, float hi, sl_view ddelta, sl_view ddt,
                           sl_error *err)
{
    return sl_dm_launch(run(o), SK_DELTA2_BW, (sl_kargs){.x = at(o, dt), .ldx = dt.ld, .b = weight(o, bias), .lo = lo,
                                                         .hi = hi, .dy = at(o, ddelta), .lddy = ddelta.ld,
                                                         .y = at(o, ddt), .ldy = ddt.ld, .heads = dt.cols}, err);
}

/* The states again at every chunk's start, then chunk by chunk from the
 * last: the chunk in reverse, then its ddelta, dB and dC rows summed
 * (cuda/mamba2_kernels.h says why; the memory is dm->bw's). */
static int ssd_backward(sl_ops *o, sl_view x, sl_view delta, sl_view B, sl_view C, const float *A, const float *D,
                        sl_view dy, sl_view dx, sl_view ddelta, sl_view dB, sl_view dC, sl_error *err)
{
    batch_run *r = run(o);
    struct sl_dev_bw *b = r->dm->bw;
    if (C.ld != B.ld || dC.ld != dB.ld)
        return sl_fail(err, SL_ERUNTIME, "device ssd_backward: B, C (or dB, dC) in rows of different widths");
    sl_kargs a = {.ssd = sl_dm_ssd_in(o, x, delta, B, C, A, D),
                  .sbw = {.ck = b->ck, .st = b->states, .ds = b->ds, .dp = b->dp, .dBp = b->dBp, .dCp = b->dCp,
                          .K = b->chunk},
                  .dy = at(o, dy), .lddy = dy.ld, .dx = at(o, dx), .lddx = dx.ld, .dd = at(o, ddelta),
                  .lddd = ddelta.ld, .dB = at(o, dB), .dC = at(o, dC), .lddbc = dB.ld};
    long ds_values = (long)r->bt.B * a.ssd.S * a.ssd.H * a.ssd.P;
    int rc = sl_dm_launch(r, sl_ssd_kernel(a.ssd.S, 1), a, err);
    if (!rc) rc = sl_dm_launch(r, SK_ZERO, (sl_kargs){.y = b->ds, .n = ds_values}, err);
    for (int c = (r->bt.Lb + b->chunk - 1) / b->chunk - 1; !rc && c >= 0; c--) {
        a.sbw.c = c;
        rc = sl_dm_launch(r, SK_SSD_BW, a, err);
        if (!rc) rc = sl_dm_launch(r, SK_SSD_BW_REDUCE, a, err);
    }
    return rc;
}

static int gated_norm_backward(sl_ops *o, sl_view y, sl_view z, const float *w, int group, float eps, int before,
                               sl_view dout, sl_view dy, sl_view dz, sl_error *err)
{
    return sl_dm_launch(run(o), SK_GATED_NORM_BW,
                        (sl_kargs){.x = at(o, y), .ldx = y.ld, .z = at(o, z), .ldz = z.ld, .w = weight(o, w),
                                   .cols = group, .d = y.cols, .eps = eps, .flag = before, .dy = at(o, dout),
                                   .lddy = dout.ld, .y = at(o, dy), .ldy = dy.ld, .dx = at(o, dz), .lddx = dz.ld},
                        err);
}

const sl_grad_table sl_dm_grad_table = {
    .copy = copy, .silu = silu, .scan_keep = scan_keep, .conv = conv, .linear_backward = linear_backward,
    .norm_backward = norm_backward, .gate_backward = gate_backward, .scan_backward = scan_backward,
    .silu_conv_backward = silu_conv_backward,
    .attention_keep = attention_keep, .activation_backward = activation_backward,
    .attention_backward = attention_backward, .rope_backward = rope_backward, .head_backward = head_backward,
    .delta2_backward = delta2_backward, .ssd_backward = ssd_backward, .gated_norm_backward = gated_norm_backward,
};
