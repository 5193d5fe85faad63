/* The batched forward pass on a device: its memory, the batch's rows
 * (begin, finish) and prefix reuse. What each layer computes is the
 * architectures' (models/arch.h: embed, blocks, tail), run on the device's
 * operations (cuda/device_ops.c) over all rows of a batch at once. Plain
 * C: every line of it runs in the CPU tests on the host grid. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/device_internal.h"
#include "models/arch.h"

/* A host weight pointer's counterpart on the device. Mamba-2's A, which
 * the load computes, is found by its layer wherever the load keeps it. */
const float *sl_dm_weight(const sl_dev_model *dm, const float *p)
{
    const sl_model *m = dm->m;
    const sl_config *c = &m->c;
    if (!p) return NULL;
    if (c->arch == ARCH_MAMBA2) {
        for (int i = 0; i < c->n_layers; i++)
            if (p >= m->mamba2[i].A && p < m->mamba2[i].A + c->nheads)
                return dm->A_t + (size_t)i * c->nheads + (p - m->mamba2[i].A);
    } else if (p >= m->A_t_storage && m->A_t_storage
               && p < m->A_t_storage + (size_t)c->n_layers * c->d_inner * c->d_state) {
        return dm->A_t + (p - m->A_t_storage);
    }
    return dm->w + (p - m->weights);
}

int sl_dm_ssd_chunk(int L)
{
    int K = (int)ceil(sqrt((L > 0 ? L : 1) / 3.0));
    return K > 0 ? K : 1;
}

/* Floats of Mamba-2's SSD backward per example of up to L positions. */
static double ssd_backward_floats(const sl_config *c, int L)
{
    int K = sl_dm_ssd_chunk(L), chunks = (L + K - 1) / K;
    return (double)c->d_state * c->d_inner * (chunks + 3.0 * K + 1) + (double)K * c->d_inner;
}

int sl_dm_alloc(sl_dev_model *dm, void **p, size_t bytes, sl_error *err)
{
    return dm->dev.alloc(dm->dev.ctx, bytes, p, err);
}

int sl_dev_batch_for(const sl_config *c, int L, int backward, double budget)
{
    double per_row = 3.0 * c->d_model; /* h, a, out */
    double GS = (double)c->ngroups * c->d_state, nin = 2.0 * c->d_inner + 2 * GS + c->nheads;
    if (c->arch == ARCH_MAMBA) per_row += 5.0 * c->d_inner + c->dt_rank + 2.0 * c->d_state;
    else if (c->arch == ARCH_MAMBA2) per_row += nin + (c->d_inner + 2 * GS) + c->nheads + c->d_inner; /* zxbcdt, xbc, delta, y */
    else per_row += 4.0 * c->d_model + c->d_ff;
    if (backward) { /* device_backward.c: 14 wide rows, the tape and five [d] rows, the scan's states and shares */
        double wide = c->arch == ARCH_MAMBA ? 2.0 * c->d_inner + c->dt_rank + 2.0 * c->d_state
                      : c->arch == ARCH_MAMBA2 ? nin : c->d_ff;
        if (wide < 3.0 * c->d_model) wide = 3.0 * c->d_model;
        per_row += 14 * wide + (c->n_layers + 6.0) * c->d_model;
        if (c->arch == ARCH_MAMBA) per_row += 3.0 * c->d_state * c->d_inner;
        else if (c->arch == ARCH_MAMBA2) per_row += ssd_backward_floats(c, L) / (L > 0 ? L : 1);
        else per_row += 2.0 * c->n_heads;
    }
    double b = budget / (per_row * 4.0 * (L > 0 ? L : 1));
    return b < 1 ? 1 : b > 256 ? 256 : (int)b;
}

sl_dev_model *sl_dev_model_new(const sl_model *m, const sl_device *dev, int max_batch, int L, sl_error *err)
{
    const sl_config *c = &m->c;
    if (c->arch == ARCH_MAMBA && c->d_state > SL_MAX_STATE) {
        sl_fail(err, SL_EINPUT, "--device cuda: d_state %d exceeds the scan kernel's %d", c->d_state, SL_MAX_STATE);
        dev->close(dev->ctx);
        return NULL;
    }
    if (c->arch == ARCH_MAMBA2 && c->d_state > SL_MAX_SSD_STATE) {
        sl_fail(err, SL_EINPUT, "--device cuda: d_state %d exceeds the Mamba-2 SSD kernel's %d (use --device cpu)",
                c->d_state, SL_MAX_SSD_STATE);
        dev->close(dev->ctx);
        return NULL;
    }
    if (c->arch == ARCH_TRANSFORMER && c->d_head > SL_MAX_HEAD) {
        sl_fail(err, SL_EINPUT, "--device cuda: d_head %d exceeds the attention kernel's %d", c->d_head, SL_MAX_HEAD);
        dev->close(dev->ctx);
        return NULL;
    }
    sl_dev_model *dm = calloc(1, sizeof *dm);
    if (!dm) {
        sl_fail(err, SL_ERUNTIME, "out of memory");
        dev->close(dev->ctx);
        return NULL;
    }
    dm->m = m;
    dm->dev = *dev;
    dm->max_batch = max_batch;
    dm->L = L;
    size_t R = (size_t)max_batch * L, d = c->d_model, f = 4;
    size_t at = c->arch == ARCH_MAMBA ? (size_t)c->n_layers * c->d_inner * c->d_state
                : c->arch == ARCH_MAMBA2 ? (size_t)c->n_layers * c->nheads : 0;
    long table = sl_pos_table_size(c, L);
    int rc = sl_dm_alloc(dm, (void **)&dm->w, m->n_params * f, err);
    if (!rc) rc = dm->dev.put(dm->dev.ctx, dm->w, m->weights, m->n_params * f, err);
    if (!rc && at) rc = sl_dm_alloc(dm, (void **)&dm->A_t, at * f, err);
    if (!rc && c->arch == ARCH_MAMBA) rc = dm->dev.put(dm->dev.ctx, dm->A_t, m->A_t_storage, at * f, err);
    for (int i = 0; !rc && c->arch == ARCH_MAMBA2 && i < c->n_layers; i++) /* each layer's A, where the load keeps it */
        rc = dm->dev.put(dm->dev.ctx, dm->A_t + (size_t)i * c->nheads, m->mamba2[i].A, (size_t)c->nheads * f, err);
    if (!rc && table) {
        float *host = malloc((size_t)table * f);
        if (!host) rc = sl_fail(err, SL_ERUNTIME, "out of memory for a position table");
        if (host) sl_pos_table(c, L, host);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->pos, (size_t)table * f, err);
        if (!rc) rc = dm->dev.put(dm->dev.ctx, dm->pos, host, (size_t)table * f, err);
        free(host);
    }
    if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->tokens, R * sizeof(int32_t), err);
    if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->keep, R, err);
    if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->len, (size_t)max_batch * sizeof(int32_t), err);
    if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->h, R * d * f, err);
    if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->a, R * d * f, err);
    if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->out, R * d * f, err);
    if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->pooled, (size_t)max_batch * d * f, err);
    if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->logits, (size_t)max_batch * f, err);
    int widest = 1;
    for (int p = 0; p < m->n_points; p++)
        if (m->points[p].width > widest) widest = m->points[p].width;
    if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->mask, R, err);
    if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->row, (size_t)widest * f, err);
    if (c->arch == ARCH_MAMBA) {
        size_t di = c->d_inner, nx = (size_t)c->dt_rank + 2 * c->d_state;
        if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->xz, R * 2 * di * f, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->xc, R * di * f, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->xdbl, R * nx * f, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->delta, R * di * f, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->y, R * di * f, err);
    } else if (c->arch == ARCH_MAMBA2) {
        size_t di = c->d_inner, nxbc = di + 2 * (size_t)c->ngroups * c->d_state, H = c->nheads;
        if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->zxbcdt, R * (di + nxbc + H) * f, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->xbc, R * nxbc * f, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->delta, R * H * f, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->y, R * di * f, err);
    } else {
        if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->qkv, R * 3 * d * f, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->ctx, R * d * f, err);
        if (!rc) rc = sl_dm_alloc(dm, (void **)&dm->ff, R * (size_t)c->d_ff * f, err);
    }
    if (!rc && !(dm->keep_host = malloc(R))) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    if (!rc && (!(dm->hooked = calloc((size_t)m->n_points, sizeof *dm->hooked))
                || !(dm->hooked_floats = calloc((size_t)m->n_points, sizeof *dm->hooked_floats))))
        rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    if (!rc) memset(dm->keep_host, 1, R);
    if (rc) {
        sl_dev_model_free(dm);
        return NULL;
    }
    return dm;
}

void sl_dev_model_free(sl_dev_model *dm)
{
    if (!dm) return;
    void *bufs[] = {dm->w,  dm->A_t, dm->pos, dm->tokens, dm->keep,  dm->len, dm->h,   dm->a,   dm->out,
                    dm->pooled, dm->logits, dm->xz, dm->xc, dm->xdbl, dm->delta, dm->y, dm->qkv, dm->ctx,
                    dm->ff, dm->pattern, dm->mask, dm->row, dm->cache, dm->zxbcdt, dm->xbc};
    sl_dm_bw_free(dm);
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) dm->dev.release(dm->dev.ctx, bufs[i]);
    dm->dev.close(dm->dev.ctx);
    free(dm->keep_host);
    free(dm->stage);
    for (int p = 0; dm->hooked && p < dm->m->n_points; p++) free(dm->hooked[p]);
    free(dm->hooked);
    free(dm->hooked_floats);
    free(dm);
}


/* ---- one batch ---- */

int sl_dm_launch(batch_run *r, int kernel, sl_kargs a, sl_error *err)
{
    a.bt = r->bt;
    return r->dm->dev.launch(r->dm->dev.ctx, kernel, &a, err);
}

/* y[rows, out] (row stride ldy) = x[rows, in] (stride ldx) . W^T + b, as sl_linear. */
int sl_dm_linear(batch_run *r, const float *x, int ldx, int in, const float *w, const float *b, int out, float *y,
                  int ldy, sl_error *err)
{
    sl_gemm_req rq = {.transA = SL_GEMM_N, .transB = SL_GEMM_T, .M = (int)r->rows, .N = out, .K = in, .alpha = 1.0f,
                      .beta = 0.0f, .A = x, .B = sl_dm_weight(r->dm, w), .C = y, .lda = ldx, .ldb = in, .ldc = ldy, .batch = 1};
    int rc = r->dm->dev.gemm(r->dm->dev.ctx, &rq, err);
    if (!rc && b) rc = sl_dm_launch(r, SK_BIAS, (sl_kargs){.y = y, .b = sl_dm_weight(r->dm, b), .cols = out, .ld = ldy}, err);
    return rc;
}

/* Host room for n values copied off the device. */
int sl_dm_stage(sl_dev_model *dm, size_t n, sl_error *err)
{
    if (n <= dm->stage_floats) return SL_OK;
    float *s = realloc(dm->stage, n * sizeof *s);
    if (!s) return sl_fail(err, SL_ERUNTIME, "out of memory for %zu values copied from the device", n);
    dm->stage = s;
    dm->stage_floats = n;
    return SL_OK;
}

int sl_dm_embed(batch_run *r, sl_error *err) { return sl_arch_embed(&r->ops, err); }

int sl_dm_tail(batch_run *r, sl_error *err) { return sl_arch_tail(&r->ops, err); }

/* Checks the batch and copies its tokens, keep mask and lengths over. */
int sl_dm_begin(sl_dev_model *dm, const sl_batch *b, const sl_hooks *hooks, batch_run *r, sl_error *err)
{
    const sl_config *c = &dm->m->c;
    int cnt = b->count, ldt = b->L;
    const int32_t *tokens = b->tokens, *lengths = b->lengths;
    const uint8_t *keep = b->keep;
    if (cnt < 1 || cnt > dm->max_batch || ldt > dm->L)
        return sl_fail(err, SL_ERUNTIME, "device batch of %d x %d outside the model's %d x %d", cnt, ldt,
                       dm->max_batch, dm->L);
    int Lb = 1;
    for (int e = 0; e < cnt; e++) {
        int len = lengths[e];
        if (len < 1 || len > ldt)
            return sl_fail(err, SL_ERUNTIME, "example %ld: length %d outside 1..%d", sl_batch_index(b, e), len, ldt);
        if (c->arch == ARCH_TRANSFORMER && c->positional == POS_LEARNED && len > c->max_len)
            return sl_fail(err, SL_EINPUT, "example %ld: length %d exceeds max_len %d of the learned positions",
                           sl_batch_index(b, e), len, c->max_len);
        if (len > Lb) Lb = len;
    }
    *r = (batch_run){.ops = sl_dm_ops(dm, hooks), .dm = dm, .tokens = tokens, .lengths = lengths, .batch = b, .ldt = ldt,
                     .rows = (long)cnt * Lb};
    r->bt = (sl_kbatch){.B = cnt, .Lb = Lb, .ldt = ldt, .len = dm->len, .tokens = dm->tokens, .keep = dm->keep};
    size_t slots = (size_t)cnt * ldt;
    int rc = dm->dev.put(dm->dev.ctx, dm->tokens, tokens, slots * sizeof *tokens, err);
    if (!rc) rc = dm->dev.put(dm->dev.ctx, dm->keep, keep ? keep : dm->keep_host, slots, err);
    return rc ? rc : dm->dev.put(dm->dev.ctx, dm->len, lengths, (size_t)cnt * sizeof *lengths, err);
}

int sl_dm_layer(batch_run *r, int i, sl_error *err)
{
    return sl_arch_layer(&r->ops, i, err);
}

int sl_dm_layers_from(batch_run *r, int first_layer, sl_error *err)
{
    int rc = SL_OK;
    for (int i = first_layer; !rc && i < r->dm->m->c.n_layers; i++) rc = sl_dm_layer(r, i, err);
    return rc;
}

int sl_dm_finish(batch_run *r, float *logits, sl_error *err)
{
    int rc = sl_dm_tail(r, err);
    return rc ? rc : r->dm->dev.get(r->dm->dev.ctx, logits, r->dm->logits, (size_t)r->bt.B * sizeof *logits, err);
}

int sl_dev_forward(sl_dev_model *dm, const sl_batch *b, const sl_hooks *hooks, float *logits, sl_error *err)
{
    batch_run r;
    int rc = sl_dm_begin(dm, b, hooks, &r, err);
    if (!rc) rc = sl_dm_embed(&r, err);
    if (!rc) rc = sl_dm_layers_from(&r, 0, err);
    return rc ? rc : sl_dm_finish(&r, logits, err);
}

/* The residual kept at restore point k: its place in the cache. */
float *sl_dm_kept(const sl_dev_model *dm, int k)
{
    return dm->cache + (size_t)k * dm->max_batch * dm->L * dm->m->c.d_model;
}

int sl_dev_forward_variants(sl_dev_model *dm, const sl_batch *b, const sl_variant *v, int n, sl_variant_edit edit,
                            void *user, float *base, float *out, long ld_out, sl_error *err)
{
    int cnt = b->count;
    const int32_t *lengths = b->lengths;
    const sl_config *c = &dm->m->c;
    int nl = c->n_layers, d = c->d_model, rc = SL_OK;
    if (!dm->cache)
        rc = sl_dm_alloc(dm, (void **)&dm->cache, (size_t)(nl + 1) * dm->max_batch * dm->L * d * sizeof(float), err);
    batch_run r;
    if (!rc) rc = sl_dm_begin(dm, b, NULL, &r, err);
    if (rc) return rc;
    long values = r.rows * d;
    rc = sl_dm_embed(&r, err);
    for (int i = 0; !rc && i <= nl; i++) {
        rc = sl_dm_launch(&r, SK_COPY, (sl_kargs){.x = dm->h, .y = sl_dm_kept(dm, i), .n = values}, err);
        if (!rc && i < nl) rc = sl_dm_layer(&r, i, err);
    }
    if (!rc) rc = sl_dm_finish(&r, base, err);
    for (int k = 0; !rc && k < n; k++) {
        if (v[k].restore < 0 || v[k].restore > nl || v[k].start < v[k].restore || v[k].start > nl)
            return sl_fail(err, SL_ERUNTIME, "variant %d: restore %d, start %d outside 0..%d", k, v[k].restore,
                           v[k].start, nl);
        rc = sl_dm_launch(&r, SK_COPY, (sl_kargs){.x = sl_dm_kept(dm, v[k].restore), .y = dm->h, .n = values}, err);
        if (!rc && edit) {
            rc = sl_dm_stage(dm, (size_t)values, err);
            if (!rc) rc = dm->dev.get(dm->dev.ctx, dm->stage, dm->h, (size_t)values * sizeof(float), err);
            for (int e = 0; !rc && e < cnt; e++) edit(user, k, e, dm->stage + (size_t)e * r.bt.Lb * d, lengths[e]);
            if (!rc) rc = dm->dev.put(dm->dev.ctx, dm->h, dm->stage, (size_t)values * sizeof(float), err);
        }
        r.ops.hooks = v[k].hooks;
        if (!rc) rc = sl_dm_layers_from(&r, v[k].start, err);
        if (!rc) rc = sl_dm_finish(&r, out + k * ld_out, err);
    }
    return rc;
}
