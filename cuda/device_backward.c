/* The backward pass on the device, for attribution, over all rows of a
 * batch: its buffers, its tape (each block's input, in the prefix-reuse
 * cache) and the integrated-gradients path. The driving loop (the taped
 * forward, the tail, the blocks from the last down) is models/gradient.c's,
 * each block's backward models/mamba_grad.c's, mamba2_grad.c's and
 * transformer_grad.c's, on the operations of device_grad_ops.c: each block
 * runs again from its kept input, keeping its internals, then in reverse.
 * Only d logit / d embedding is kept: it is all attribution uses. Plain C:
 * it runs in the CPU tests on the host grid. */
#include <stdlib.h>
#include <string.h>

#include "cuda/device_internal.h"
#include "models/arch.h"

void sl_dm_bw_free(sl_dev_model *dm)
{
    struct sl_dev_bw *b = dm->bw;
    if (!b) return;
    float *all[] = {b->states, b->dBp, b->dCp, b->ck, b->ds, b->dp, b->lse, b->Dt, b->g, b->x, b->base, b->path, b->acc,
                    b->attr};
    for (int i = 0; i < SL_DM_BW_BUFS; i++)
        if (b->buf[i]) dm->dev.release(dm->dev.ctx, b->buf[i]);
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i]) dm->dev.release(dm->dev.ctx, all[i]);
    free(b);
    dm->bw = NULL;
}

static size_t row_width(const sl_config *c)
{
    size_t wide = 3 * (size_t)c->d_model;
    size_t m = c->arch == ARCH_MAMBA    ? 2 * (size_t)c->d_inner + c->dt_rank + 2 * (size_t)c->d_state
               : c->arch == ARCH_MAMBA2 ? 2 * (size_t)c->d_inner + 2 * (size_t)c->ngroups * c->d_state + c->nheads
                                        : (size_t)c->d_ff;
    return m > wide ? m : wide;
}

static int bw_alloc(sl_dev_model *dm, sl_error *err)
{
    if (dm->bw) return SL_OK;
    const sl_config *c = &dm->m->c;
    struct sl_dev_bw *b = calloc(1, sizeof *b);
    if (!b) return sl_fail(err, SL_ERUNTIME, "out of memory");
    dm->bw = b;
    size_t R = (size_t)dm->max_batch * dm->L, d = c->d_model, f = sizeof(float), wide = row_width(c);
    int rc = dm->cache ? SL_OK
                       : sl_dm_alloc(dm, (void **)&dm->cache, (size_t)(c->n_layers + 1) * R * d * f, err);
    for (int i = 0; !rc && i < SL_DM_BW_BUFS; i++) rc = sl_dm_alloc(dm, (void **)&b->buf[i], R * wide * f, err);
    if (c->arch == ARCH_MAMBA) {
        size_t st = R * c->d_state * c->d_inner * f;
        if (!rc) rc = sl_dm_alloc(dm, (void **)&b->states, st, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&b->dBp, st, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&b->dCp, st, err);
    } else if (c->arch == ARCH_MAMBA2) { /* the SSD's chunks (cuda/mamba2_kernels.h) */
        int K = b->chunk = sl_dm_ssd_chunk(dm->L), chunks = (dm->L + K - 1) / K;
        size_t B = dm->max_batch, state = (size_t)c->d_state * c->d_inner * f;
        if (!rc) rc = sl_dm_alloc(dm, (void **)&b->ck, B * chunks * state, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&b->states, B * K * state, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&b->dBp, B * K * state, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&b->dCp, B * K * state, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&b->ds, B * state, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&b->dp, B * K * c->d_inner * f, err);
    } else {
        if (!rc) rc = sl_dm_alloc(dm, (void **)&b->lse, R * c->n_heads * f, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&b->Dt, R * c->n_heads * f, err);
    }
    float **rowsd[] = {&b->g, &b->x, &b->base, &b->path, &b->acc};
    for (size_t i = 0; !rc && i < sizeof rowsd / sizeof *rowsd; i++) rc = sl_dm_alloc(dm, (void **)rowsd[i], R * d * f, err);
    if (!rc) rc = sl_dm_alloc(dm, (void **)&b->attr, R * f, err);
    return rc;
}

int sl_dm_linear_backward(batch_run *r, const float *x, int ldx, int K, const float *w, int N, float *y, int ldy,
                          float beta, sl_error *err)
{
    sl_gemm_req rq = {.transA = SL_GEMM_N, .transB = SL_GEMM_N, .M = (int)r->rows, .N = N, .K = K, .alpha = 1.0f,
                      .beta = beta, .A = x, .B = sl_dm_weight(r->dm, w), .C = y, .lda = ldx, .ldb = N, .ldc = ldy,
                      .batch = 1};
    return r->dm->dev.gemm(r->dm->dev.ctx, &rq, err);
}

static int copy(batch_run *r, const float *x, float *y, long n, sl_error *err)
{
    return sl_dm_launch(r, SK_COPY, (sl_kargs){.x = x, .y = y, .n = n}, err);
}

/* Where SL_H_IN, the gradients and what the backward keeps (models/ops.h)
 * lie in the batch's device memory, for device_ops.c; NULL for any other
 * buffer. */
float *sl_dm_bw_at(const batch_run *r, int buf)
{
    struct sl_dev_bw *b = r->dm->bw;
    switch (buf) {
    case SL_H_IN: return sl_dm_kept(r->dm, r->layer);
    case SL_G: return b->g;
    case SL_DA: return b->buf[0];
    case SL_XPRE: return b->buf[2];
    case SL_DPRE: return b->buf[5];
    case SL_DY: return b->buf[8];
    case SL_DXZ: case SL_DZXBCDT: return b->buf[9]; /* Mamba-1's, Mamba-2's */
    case SL_DX: case SL_DXBC: return b->buf[10];
    case SL_DDELTA: return b->buf[11];
    case SL_DXDBL: return b->buf[12];
    case SL_DFF: return b->buf[1];
    case SL_DCTX: return b->buf[3];
    case SL_DQKV: return b->buf[4];
    case SL_ATTN_RESID: return b->buf[6];
    case SL_MLP_RESID: return b->buf[7];
    case SL_FF_PRE: return b->buf[13];
    }
    return NULL;
}

/* Only the logits, from embed_in: no tape. */
static int forward_from(batch_run *r, const float *embed_in, sl_error *err)
{
    int rc = copy(r, embed_in, r->dm->h, r->rows * r->dm->m->c.d_model, err);
    if (!rc) rc = sl_dm_layers_from(r, 0, err);
    return rc ? rc : sl_dm_tail(r, err);
}

/* The device's tape (models/ops.h: sl_tape): each block's input in the
 * prefix-reuse cache, SL_H_IN block r->layer's there; nothing else is
 * kept, each block's backward runs its operations again. */
static int point_at(sl_tape *tp, sl_ops *o, int i, sl_error *err)
{
    (void)tp, (void)err;
    ((batch_run *)o)->layer = i;
    return SL_OK;
}

static void forward_end(sl_tape *tp, sl_ops *o, int i) { (void)tp, (void)o, (void)i; }

static int backward_end(sl_tape *tp, sl_ops *o, int i, sl_error *err)
{
    (void)tp, (void)o, (void)i, (void)err;
    return SL_OK;
}

static const sl_tape_ops dev_tape = {point_at, forward_end, point_at, backward_end};

/* bw->g = d logit / d embed_in, the logits left in dm->logits. */
static int gradient(batch_run *r, const float *embed_in, sl_error *err)
{
    sl_tape tape = {&dev_tape};
    int rc = copy(r, embed_in, r->dm->h, r->rows * r->dm->m->c.d_model, err);
    return rc ? rc : sl_arch_gradient(&r->ops, &tape, err);
}

static int logits_out(batch_run *r, float *host, sl_error *err)
{
    sl_dev_model *dm = r->dm;
    return host ? dm->dev.get(dm->dev.ctx, host, dm->logits, (size_t)r->bt.B * sizeof *host, err) : SL_OK;
}

int sl_dev_attribute(sl_dev_model *dm, const sl_batch *bt, int steps, const int32_t *pad_tokens, int zero_baseline,
                     float *attr, float *logits, float *base_logits, sl_error *err)
{
    int cnt = bt->count, ldt = bt->L;
    const int32_t *tokens = bt->tokens, *lengths = bt->lengths;
    batch_run r;
    int rc = bw_alloc(dm, err);
    if (!rc) rc = sl_dm_begin(dm, bt, NULL, &r, err);
    if (rc) return rc;
    struct sl_dev_bw *b = dm->bw;
    long n = r.rows * dm->m->c.d_model;
    rc = sl_dm_embed(&r, err);
    if (!rc) rc = copy(&r, dm->h, b->x, n, err);
    if (!rc && steps == 0) { /* gradient x input */
        rc = gradient(&r, b->x, err);
        if (!rc) rc = logits_out(&r, logits, err);
        if (!rc) rc = copy(&r, b->g, b->acc, n, err);
        if (!rc) rc = sl_dm_launch(&r, SK_MUL, (sl_kargs){.y = b->acc, .x = b->x, .n = n}, err);
    } else if (!rc) { /* integrated gradients, the midpoint rule from the baseline */
        if (zero_baseline) {
            rc = sl_dm_launch(&r, SK_ZERO, (sl_kargs){.y = b->base, .n = n}, err);
        } else {
            size_t slots = (size_t)cnt * ldt * sizeof *tokens;
            rc = dm->dev.put(dm->dev.ctx, dm->tokens, pad_tokens, slots, err);
            if (!rc) rc = sl_dm_embed(&r, err);
            if (!rc) rc = copy(&r, dm->h, b->base, n, err);
            if (!rc) rc = dm->dev.put(dm->dev.ctx, dm->tokens, tokens, slots, err);
        }
        if (!rc) rc = forward_from(&r, b->base, err);
        if (!rc) rc = logits_out(&r, base_logits, err);
        /* logits NULL: the caller holds them already (sl_path.logits_given) */
        if (!rc && logits) rc = forward_from(&r, b->x, err);
        if (!rc) rc = logits_out(&r, logits, err);
        if (!rc) rc = sl_dm_launch(&r, SK_ZERO, (sl_kargs){.y = b->acc, .n = n}, err);
        for (int s = 0; !rc && s < steps; s++) {
            rc = sl_dm_launch(&r, SK_LERP, (sl_kargs){.y = b->path, .x = b->x, .b = b->base,
                                                      .alpha = (s + 0.5f) / steps, .n = n}, err);
            if (!rc) rc = gradient(&r, b->path, err);
            if (!rc) rc = sl_dm_launch(&r, SK_ADD, (sl_kargs){.y = b->acc, .x = b->g, .n = n}, err);
        }
        if (!rc) rc = sl_dm_launch(&r, SK_IG_SCALE, (sl_kargs){.y = b->acc, .x = b->x, .b = b->base, .K = steps,
                                                               .n = n}, err);
    }
    /* each position's attribution: its row of acc summed */
    if (!rc) rc = sl_dm_launch(&r, SK_ROWSUM, (sl_kargs){.x = b->acc, .y = b->attr, .d = dm->m->c.d_model}, err);
    if (!rc) rc = sl_dm_stage(dm, (size_t)r.rows, err);
    if (!rc) rc = dm->dev.get(dm->dev.ctx, dm->stage, b->attr, (size_t)r.rows * sizeof(float), err);
    for (int e = 0; !rc && e < cnt; e++)
        memcpy(attr + (long)e * ldt, dm->stage + (long)e * r.bt.Lb, (size_t)lengths[e] * sizeof *attr);
    return rc;
}
