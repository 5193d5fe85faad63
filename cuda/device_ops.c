/* The device backend's operations (models/ops.h), each on all rows of a
 * batch at once: a GEMM or a kernel launch (cuda/batch_kernels.h), and the
 * hooks handed each example's rows on the host. Plain C: every line of it
 * runs in the CPU tests on the host grid. */
#include <stdlib.h>

#include "cuda/device_internal.h"

static batch_run *run(sl_ops *o) { return (batch_run *)o; }

/* Where view v begins in the batch's device memory. */
static float *at(sl_ops *o, sl_view v)
{
    sl_dev_model *dm = run(o)->dm;
    float *base = NULL;
    switch (v.buf) {
    case SL_H: base = dm->h; break;
    case SL_A: base = dm->a; break;
    case SL_OUT: base = dm->out; break;
    case SL_XZ: base = dm->xz; break;
    case SL_XC: base = dm->xc; break;
    case SL_XDBL: base = dm->xdbl; break;
    case SL_DELTA: base = dm->delta; break;
    case SL_Y: case SL_YG: base = dm->y; break;
    case SL_QKV: base = dm->qkv; break;
    case SL_CTX: base = dm->ctx; break;
    case SL_FF: base = dm->ff; break;
    case SL_ZXBCDT: base = dm->zxbcdt; break;
    case SL_XBC: base = dm->xbc; break;
    case SL_POOLED: base = dm->pooled; break;
    case SL_LOGITS: base = dm->logits; break;
    default: base = sl_dm_bw_at(run(o), v.buf); break;
    }
    return base + v.off;
}

static const float *weight(sl_ops *o, const float *w) { return sl_dm_weight(run(o)->dm, w); }

float *sl_dm_at(sl_ops *o, sl_view v) { return at(o, v); }

/* 1 when every hook at point id is a row replacement (core/hooks.h), which
 * the device carries out without copying the activation out and back. */
static int replaces_only(const sl_hooks *h, int id)
{
    int any = 0;
    for (int i = 0; i < h->n; i++)
        if (h->list[i].point == id) {
            if (!h->list[i].replace) return 0;
            any = 1;
        }
    return any;
}

static int replace_on_device(batch_run *r, int id, float *data, int cols, int ld, sl_error *err)
{
    sl_dev_model *dm = r->dm;
    const sl_hooks *h = r->ops.hooks;
    int rc = SL_OK;
    for (int i = 0; !rc && i < h->n; i++) {
        if (h->list[i].point != id) continue;
        const sl_row_replace *rep = h->list[i].replace;
        long ldm = rep->ld < r->ldt ? rep->ld : r->ldt;
        /* the mask's rows as the batch sees them: [B][ldm] */
        for (int e = 0; !rc && e < r->bt.B; e++)
            rc = dm->dev.put(dm->dev.ctx, dm->mask + (long)e * ldm, rep->mask + (long)e * rep->ld, (size_t)ldm, err);
        if (!rc && rep->row) rc = dm->dev.put(dm->dev.ctx, dm->row, rep->row, (size_t)cols * sizeof(float), err);
        if (!rc) rc = sl_dm_launch(r, SK_REPLACE, (sl_kargs){.y = data, .x = rep->row ? dm->row : NULL, .cols = cols,
                                                       .ld = ld, .mask = dm->mask, .ldm = ldm}, err);
    }
    return rc;
}

/* The hooks of (kind, layer) on a device activation: each example's block
 * is [Lb rows of ld] at stride Lb * ld ([H][len][len] at H * Lb * Lb for
 * the pattern, one row for pooled and logits), of which the first len rows
 * and cols columns are the example's, as the CPU core hands them over. */
static int fire_at(batch_run *r, int kind, int layer, float *data, int cols, int ld, sl_error *err)
{
    sl_dev_model *dm = r->dm;
    const sl_model *m = dm->m;
    int id = sl_model_point(m, kind, layer);
    if (!sl_hooks_on(r->ops.hooks, id)) return SL_OK;
    const sl_hook_point *pt = &m->points[id];
    if (kind != HK_ATTN_PATTERN && !pt->per_example && replaces_only(r->ops.hooks, id))
        return replace_on_device(r, id, data, cols, ld, err);
    int B = r->bt.B, Lb = r->bt.Lb, H = m->c.n_heads;
    size_t stride = kind == HK_ATTN_PATTERN ? (size_t)H * Lb * Lb : pt->per_example ? (size_t)ld : (size_t)Lb * ld;
    /* to the last value used: a view at an offset into wider rows (B, C in
     * x_proj's output) ends ld - cols values before the buffer does */
    size_t n = stride * B - (kind == HK_ATTN_PATTERN ? 0 : (size_t)(ld - cols));
    if (n > dm->hooked_floats[id]) {
        float *buf = realloc(dm->hooked[id], n * sizeof *buf);
        if (!buf) return sl_fail(err, SL_ERUNTIME, "out of memory for %zu hooked values", n);
        dm->hooked[id] = buf;
        dm->hooked_floats[id] = n;
    }
    float *stage = dm->hooked[id];
    int rc = dm->dev.get(dm->dev.ctx, stage, data, n * sizeof(float), err);
    for (int e = 0; !rc && e < B; e++) {
        int len = r->lengths[e];
        sl_hook_event ev = {
            .point = pt, .id = id, .example = sl_batch_index(r->batch, e), .slot = e, .len = len, .heads = H,
            .tokens = r->tokens + (long)e * r->ldt, .data = stage + e * stride,
            .rows = pt->per_example ? 1 : len, .cols = cols, .ld = ld,
        };
        if (kind == HK_ATTN_PATTERN) ev.rows = H * len, ev.cols = len, ev.ld = len;
        rc = sl_hooks_fire(r->ops.hooks, &ev, err);
    }
    return rc ? rc : dm->dev.put(dm->dev.ctx, data, stage, n * sizeof(float), err);
}

static int fire(sl_ops *o, int kind, int layer, sl_view v, sl_error *err)
{
    return fire_at(run(o), kind, layer, at(o, v), v.cols, v.ld, err);
}

static int norm(sl_ops *o, int kind, sl_view x, const float *w, const float *b, float eps, sl_view y, sl_error *err)
{
    int layer = kind == SL_NORM_LAYER;
    return sl_dm_launch(run(o), layer ? SK_LAYERNORM : SK_RMSNORM,
                        (sl_kargs){.x = at(o, x), .w = weight(o, w), .b = layer ? weight(o, b) : NULL, .y = at(o, y),
                                   .d = x.cols, .eps = eps}, err);
}

static int linear(sl_ops *o, sl_view x, const float *w, const float *b, sl_view y, sl_error *err)
{
    return sl_dm_linear(run(o), at(o, x), x.ld, x.cols, w, b, y.cols, at(o, y), y.ld, err);
}

static int conv_silu(sl_ops *o, sl_view x, const float *w, const float *b, int K, int identity, sl_view y,
                     sl_error *err)
{
    return sl_dm_launch(run(o), SK_CONV, (sl_kargs){.x = at(o, x), .ld = x.ld, .di = x.cols, .K = K, .w = weight(o, w),
                                                    .b = weight(o, b), .flag = identity, .y = at(o, y)}, err);
}

/* The elementwise kernels take whole rows (cols == ld). */
static int softplus(sl_ops *o, sl_view y, sl_error *err)
{
    return sl_dm_launch(run(o), SK_SOFTPLUS, (sl_kargs){.y = at(o, y), .n = run(o)->rows * y.cols}, err);
}

static int scan(sl_ops *o, sl_view x, sl_view delta, sl_view B, const float *A_t, const float *D, int ablated,
                sl_view y, sl_error *err)
{
    return sl_dm_launch(run(o), SK_SCAN, (sl_kargs){.x = at(o, x), .b = at(o, delta), .w = at(o, B) - B.off,
                                                    .ldb = B.ld, .boff = B.off, .coff = B.off + B.cols, .di = x.cols,
                                                    .S = B.cols, .A_t = weight(o, A_t), .D = weight(o, D),
                                                    .flag = ablated, .y = at(o, y)}, err);
}

/* SK_GATE: y rows of z.cols values, and out is y (Mamba's y, gated in
 * place; Mamba-2 only activates z, its own columns of in_proj's rows). */
static int gate(sl_ops *o, int step, int ablated, sl_view z, sl_view y, sl_view out, sl_error *err)
{
    (void)out;
    static const int flag[] = {[SL_OP_GATE_BOTH] = SL_GATE_BOTH, [SL_OP_GATE_ACTIVATE] = SL_GATE_ACTIVATE,
                               [SL_OP_GATE_MULTIPLY] = SL_GATE_MULTIPLY};
    return sl_dm_launch(run(o), SK_GATE, (sl_kargs){.y = at(o, y), .y2 = at(o, z), .ld = z.ld, .di = z.cols,
                                                    .K = ablated, .flag = flag[step]}, err);
}

/* ---- Mamba-2 (cuda/mamba2_kernels.h) ---- */

static int delta2(sl_ops *o, sl_view dt, const float *bias, float lo, float hi, sl_view delta, sl_error *err)
{
    return sl_dm_launch(run(o), SK_DELTA2, (sl_kargs){.x = at(o, dt), .ldx = dt.ld, .b = weight(o, bias), .lo = lo,
                                                      .hi = hi, .y = at(o, delta), .ldy = delta.ld, .heads = dt.cols},
                        err);
}

sl_k_ssd_in sl_dm_ssd_in(sl_ops *o, sl_view x, sl_view delta, sl_view B, sl_view C, const float *A, const float *D)
{
    const sl_config *c = &o->m->c;
    return (sl_k_ssd_in){.x = at(o, x), .ldx = x.ld, .delta = at(o, delta), .ldd = delta.ld, .B = at(o, B),
                         .C = at(o, C), .ldbc = B.ld, .A = weight(o, A), .D = weight(o, D), .H = c->nheads,
                         .P = c->headdim, .G = c->ngroups, .S = c->d_state, .D_ch = c->D_has_hdim};
}

static int ssd(sl_ops *o, sl_view x, sl_view delta, sl_view B, sl_view C, const float *A, const float *D, int ablated,
               sl_view y, sl_error *err)
{
    if (C.ld != B.ld) return sl_fail(err, SL_ERUNTIME, "device ssd: B and C in rows of %d and %d values", B.ld, C.ld);
    return sl_dm_launch(run(o), sl_ssd_kernel(o->m->c.d_state, 0), (sl_kargs){.ssd = sl_dm_ssd_in(o, x, delta, B, C, A, D), .flag = ablated,
                                                   .y = at(o, y), .ldy = y.ld}, err);
}

static int gated_norm(sl_ops *o, sl_view y, sl_view g, const float *w, int group, float eps, int before, sl_view out,
                      sl_error *err)
{
    return sl_dm_launch(run(o), SK_GATED_NORM, (sl_kargs){.x = at(o, y), .ldx = y.ld, .z = at(o, g), .ldz = g.ld,
                                                          .w = weight(o, w), .cols = group, .d = y.cols, .eps = eps,
                                                          .flag = before, .y = at(o, out), .ldy = out.ld}, err);
}

static int add(sl_ops *o, sl_view x, sl_view y, sl_error *err)
{
    return sl_dm_launch(run(o), SK_ADD, (sl_kargs){.y = at(o, y), .x = at(o, x), .n = run(o)->rows * y.cols}, err);
}

/* softmax(q k^T / sqrt(d_head)) v from qkv into ctx: streamed, or through
 * the stored pattern when a hook wants to see (or rewrite) it. */
static int attention(sl_ops *o, int i, sl_error *err)
{
    batch_run *r = run(o);
    sl_dev_model *dm = r->dm;
    const sl_config *c = &dm->m->c;
    sl_kargs a = {.x = dm->qkv, .y = dm->ctx, .d = c->d_model, .dh = c->d_head, .heads = c->n_heads,
                  .causal = c->causal};
    if (!sl_hooks_on(r->ops.hooks, sl_model_point(dm->m, HK_ATTN_PATTERN, i))) return sl_dm_launch(r, SK_ATTENTION, a, err);
    if (!dm->pattern) {
        size_t n = (size_t)dm->max_batch * c->n_heads * dm->L * dm->L;
        int rc = sl_dm_alloc(dm, (void **)&dm->pattern, n * sizeof(float), err);
        if (rc) return rc;
    }
    a.y2 = dm->pattern;
    int rc = sl_dm_launch(r, SK_PROBS, a, err);
    if (!rc) rc = fire_at(r, HK_ATTN_PATTERN, i, dm->pattern, 0, 0, err);
    return rc ? rc : sl_dm_launch(r, SK_APPLY, a, err);
}

static int rope(sl_ops *o, sl_error *err)
{
    const sl_config *c = &o->m->c;
    return sl_dm_launch(run(o), SK_ROPE, (sl_kargs){.y = run(o)->dm->qkv, .x = run(o)->dm->pos, .d = c->d_model,
                                                    .dh = c->d_head, .heads = c->n_heads}, err);
}

static int activation(sl_ops *o, int act, sl_view y, sl_error *err)
{
    return sl_dm_launch(run(o), SK_ACTIVATION, (sl_kargs){.y = at(o, y), .n = run(o)->rows * y.cols,
                                                          .flag = act == ACT_GELU}, err);
}

/* The device's backward recomputes what it needs (cuda/device_backward.c). */
static int keep(sl_ops *o, int what, sl_view v, sl_error *err)
{
    (void)o, (void)what, (void)v, (void)err;
    return SL_OK;
}

static int embed(sl_ops *o, const float *emb, float scale, sl_view y, sl_error *err)
{
    return sl_dm_launch(run(o), SK_EMBED, (sl_kargs){.x = weight(o, emb), .y = at(o, y), .d = y.cols, .alpha = scale},
                        err);
}

static int add_positions(sl_ops *o, const float *learned, sl_view y, sl_error *err)
{
    const float *pe = learned ? weight(o, learned) : run(o)->dm->pos;
    return sl_dm_launch(run(o), SK_ADD_POS, (sl_kargs){.x = pe, .y = at(o, y), .d = y.cols}, err);
}

static int pool(sl_ops *o, int pooling, sl_view x, sl_view y, sl_error *err)
{
    return sl_dm_launch(run(o), SK_POOL, (sl_kargs){.x = at(o, x), .y = at(o, y), .d = x.cols, .flag = pooling}, err);
}

static int head(sl_ops *o, const float *w, const float *b, int rows, sl_view x, sl_view y, sl_error *err)
{
    return sl_dm_launch(run(o), SK_HEAD, (sl_kargs){.x = at(o, x), .w = weight(o, w), .b = weight(o, b), .d = x.cols,
                                                    .flag = rows, .y = at(o, y)}, err);
}

static const sl_ops_table device_table = {
    .fire = fire, .norm = norm, .linear = linear, .conv_silu = conv_silu, .softplus = softplus, .scan = scan,
    .gate = gate, .add = add, .rope = rope, .attention = attention, .activation = activation, .keep = keep,
    .embed = embed, .add_positions = add_positions, .pool = pool, .head = head, .delta2 = delta2, .ssd = ssd,
    .gated_norm = gated_norm,
};

sl_ops sl_dm_ops(const sl_dev_model *dm, const sl_hooks *hooks)
{
    return (sl_ops){.t = &device_table, .g = &sl_dm_grad_table, .m = dm->m, .hooks = hooks};
}
