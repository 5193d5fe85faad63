/* Patching one row of a Transformer's residual on the CPU
 * (models/cpu_tf_patch.h). */
#include "models/cpu_tf_patch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mathx.h"
#include "models/arch.h"
#include "models/attention_tile.h"
#include "models/cpu_ops.h"
#include "models/forward_common.h"

/* A row computed again costs the streaming kernel a block of up to SL_QB
 * queries (sl_attention_rows); past a quarter of the head's blocks, the
 * whole head runs. */
static int redo_limit(const sl_tf_kept *k, int T) { return k->redo_max >= 0 ? k->redo_max : T / (4 * SL_QB); }

size_t sl_tf_kept_bytes(const sl_model *m, int max_len)
{
    const sl_config *c = &m->c;
    size_t L = (size_t)max_len;
    size_t floats = (size_t)c->n_layers * L * (4 * (size_t)c->d_model + (size_t)c->n_heads) + L * c->d_model;
    return floats * sizeof(float) + L * sizeof(int);
}

sl_tf_kept *sl_tf_kept_new(const sl_model *m, int max_len)
{
    const sl_config *c = &m->c;
    size_t nl = (size_t)c->n_layers, L = (size_t)max_len, d = (size_t)c->d_model;
    sl_tf_kept *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    *k = (sl_tf_kept){.n_layers = c->n_layers, .max_len = max_len, .redo_max = -1};
    k->qkv = malloc(nl * L * 3 * d * sizeof(float));
    k->ctx = malloc(nl * L * d * sizeof(float));
    k->lse = malloc(nl * (size_t)c->n_heads * L * sizeof(float));
    k->fin = malloc(L * d * sizeof(float));
    k->redo = malloc(L * sizeof(int));
    if (!k->qkv || !k->ctx || !k->lse || !k->fin || !k->redo) {
        sl_tf_kept_free(k);
        return NULL;
    }
    return k;
}

void sl_tf_kept_free(sl_tf_kept *k)
{
    if (!k) return;
    free(k->qkv), free(k->ctx), free(k->lse), free(k->fin), free(k->redo);
    free(k);
}

int sl_tf_forward_keeping(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks,
                          sl_tf_kept *k, float *logit, sl_error *err)
{
    const sl_config *c = &m->c;
    size_t L = (size_t)k->max_len, d = (size_t)c->d_model, T = (size_t)ex->len;
    int rc = k->max_len == ws->max_len ? sl_forward_check(m, ex, ws, err)
                                        : sl_fail(err, SL_ERUNTIME, "kept attention of %d positions, workspace of %d",
                                                  k->max_len, ws->max_len);
    sl_cpu_ops o = sl_cpu_ops_on(m, ex, ws, hooks, logit);
    if (!rc) rc = sl_arch_embed(&o.ops, err);
    for (int i = 0; !rc && i < c->n_layers; i++) {
        /* the streaming kernel leaves each row's log-sum-exp there as well */
        ws->lse = k->lse + (size_t)i * c->n_heads * L;
        rc = sl_arch_layer(&o.ops, i, err);
        ws->lse = NULL;
        memcpy(k->qkv + (size_t)i * L * 3 * d, ws->qkv, T * 3 * d * sizeof *ws->qkv);
        memcpy(k->ctx + (size_t)i * L * d, ws->ctx, T * d * sizeof *ws->ctx);
    }
    if (!rc) rc = sl_arch_tail(&o.ops, err);
    if (!rc) memcpy(k->fin, c->final_norm ? ws->a : ws->h, T * d * sizeof *k->fin);
    return rc;
}

/* Head h of the context in ws->ctx (the kept one on entry) where ws->qkv
 * is the kept pass's but for row p: each query that sees key p from its
 * kept context and the one key, the rest (query p among them) from all
 * their keys. */
static void update_head(const sl_model *m, const sl_example *ex, sl_workspace *ws, const float *kqkv, const float *lse,
                        int h, int p, int nk, sl_tf_kept *k, sl_tf_row_stats *st)
{
    const sl_config *c = &m->c;
    int d = c->d_model, dh = c->d_head, T = ex->len, n = 0, updated = 0;
    float scale = 1.0f / sqrtf((float)dh);
    const float *kp = kqkv + (size_t)p * 3 * d + d + h * dh, *vp = kp + d;
    const float *kn = ws->qkv + (size_t)p * 3 * d + d + h * dh, *vn = kn + d;
    int seen = !ex->keep || ex->keep[p]; /* key p, dropped or not */
    k->redo[n++] = p;
    for (int t = 0; t < T; t++) {
        if (t == p || !seen || (c->causal && p > t)) continue;
        const float *qt = kqkv + (size_t)t * 3 * d + h * dh;
        float *o = ws->ctx + (size_t)t * d + h * dh, so = 0.0f, sn = 0.0f;
        for (int i = 0; i < dh; i++) {
            float q = qt[i] * scale; /* as the kernels pack q */
            so += q * kp[i];
            sn += q * kn[i];
        }
        float wo = sl_exp(so - lse[t]), wn = sl_exp(sn - lse[t]);
        /* NaN fails both tests and is computed again */
        if (!(wo <= 0.5f) || !(wn <= 1e30f)) {
            k->redo[n++] = t;
            continue;
        }
        float z = 1.0f / (1.0f - wo + wn);
        for (int i = 0; i < dh; i++) o[i] = (o[i] - wo * vp[i] + wn * vn[i]) * z;
        updated++;
    }
    if (n > redo_limit(k, T)) {
        sl_attention_head(m, ex, ws, nk, h, 0);
        if (st) st->heads++, st->recomputed += T;
        return;
    }
    sl_attention_rows(m, ex, ws, nk, h, k->redo, n);
    if (st) st->recomputed += n, st->updated += updated;
}

/* Whether block first_layer of ex can run from k at row `row` (from
 * lowest_row on: -1 where no row is named). */
static int check_block(const sl_model *m, const sl_example *ex, const sl_workspace *ws, const sl_tf_kept *k,
                       int first_layer, int row, int lowest_row, sl_error *err)
{
    const sl_config *c = &m->c;
    int rc = sl_forward_check(m, ex, ws, err);
    if (!rc && (c->arch != ARCH_TRANSFORMER || first_layer < 0 || first_layer >= c->n_layers || row < lowest_row
                || row >= ex->len || k->max_len != ws->max_len))
        rc = sl_fail(err, SL_ERUNTIME, "example %ld: no update of block %d at row %d of %d", ex->index, first_layer,
                     row, ex->len);
    return rc;
}

int sl_tf_forward_row(const sl_model *m, const sl_example *ex, sl_workspace *ws, int first_layer, int row,
                      sl_tf_kept *k, sl_tf_row_stats *stats, float *logit, sl_error *err)
{
    const sl_config *c = &m->c;
    int rc = check_block(m, ex, ws, k, first_layer, row, 0, err);
    if (rc) return rc;
    size_t L = (size_t)k->max_len, d = (size_t)c->d_model, T = (size_t)ex->len;
    const float *kqkv = k->qkv + (size_t)first_layer * L * 3 * d;
    const float *lse = k->lse + (size_t)first_layer * c->n_heads * L;
    /* q, k and v of every row as the whole pass computes them (the rows
     * but `row` the kept pass's bits, `row` the bits a whole pass would
     * give it): a product over one row can round otherwise, and a trained
     * model's sharp attention magnified that to 9e-6 of a logit */
    sl_cpu_ops o = sl_cpu_ops_on(m, ex, ws, NULL, logit);
    rc = sl_tf_block_qkv(&o.ops, first_layer, err);
    if (rc) return rc;
    memcpy(ws->ctx, k->ctx + (size_t)first_layer * L * d, T * d * sizeof *ws->ctx);
    int nk = sl_key_positions(ex, ws->kpos);
    for (int h = 0; h < c->n_heads; h++) update_head(m, ex, ws, kqkv, lse + h * L, h, row, nk, k, stats);
    rc = sl_tf_block_after_attention(&o.ops, first_layer, err);
    return rc ? rc : sl_forward_from(m, ex, ws, NULL, first_layer + 1, logit, err);
}

int sl_tf_forward_suffix(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks,
                         int first_layer, int row0, sl_tf_kept *k, int *fin_rows, float *logit, sl_error *err)
{
    const sl_config *c = &m->c;
    int rc = sl_forward_check(m, ex, ws, err);
    if (!rc && (c->arch != ARCH_TRANSFORMER || !c->causal || first_layer < 0 || first_layer > c->n_layers
                || row0 <= 0 || row0 >= ex->len || k->max_len != ws->max_len))
        rc = sl_fail(err, SL_ERUNTIME, "example %ld: no pass of block %d from position %d of %d", ex->index,
                     first_layer, row0, ex->len);
    if (!rc && sl_tf_pattern_hooked(m, hooks, first_layer))
        rc = sl_fail(err, SL_ERUNTIME, "example %ld: an attention pattern from block %d on is hooked", ex->index,
                     first_layer);
    if (rc) return rc;
    /* the workspace and the example seen from row0: the projections, norms
     * and MLP run on rows row0..len-1 (rotated at their own positions) */
    size_t r = (size_t)row0, d = (size_t)c->d_model, L = (size_t)k->max_len;
    sl_workspace sw = *ws;
    sw.h += r * d, sw.a += r * d, sw.out += r * d, sw.qkv += r * 3 * d, sw.ctx += r * d;
    sw.ff += r * (size_t)c->d_ff;
    if (c->positional == POS_ROPE) sw.pos_table += r * 2 * (size_t)(c->d_head / 2);
    sl_example sx;
    sl_cpu_ops o = sl_cpu_ops_from(m, ex, row0, &sx, &sw, hooks, logit);
    int nk = sl_key_positions(ex, ws->kpos);
    for (int i = first_layer; !rc && i < c->n_layers; i++) {
        rc = sl_tf_block_qkv(&o.ops, i, err);
        if (rc) break;
        /* keys and values before row0 are the kept pass's (causal: those
         * rows have not changed); queries row0.. see them and their own */
        memcpy(ws->qkv, k->qkv + (size_t)i * L * 3 * d, r * 3 * d * sizeof *ws->qkv);
        for (int h = 0; h < c->n_heads; h++) sl_attention_head(m, ex, ws, nk, h, row0);
        rc = sl_tf_block_after_attention(&o.ops, i, err);
    }
    if (rc) {
        *fin_rows = 0;
        return rc;
    }
    /* what the pooling reads before row0: the kept pass's */
    sl_cpu_kept_rows_before(c->final_norm ? ws->a : ws->h, k->fin, (int)d, row0, fin_rows);
    return sl_arch_tail(&o.ops, err);
}

int sl_tf_pattern_hooked(const sl_model *m, const sl_hooks *hooks, int from)
{
    for (int i = from; i < m->c.n_layers; i++)
        if (sl_hooks_on(hooks, sl_model_point(m, HK_ATTN_PATTERN, i))) return 1;
    return 0;
}

int sl_tf_hooks_after_attention(const sl_model *m, const sl_hooks *hooks, int layer)
{
    if (!hooks || hooks->knockout) return 0;
    for (int e = 0; e < hooks->n; e++) {
        const sl_hook_point *p = &m->points[hooks->list[e].point];
        int after = p->kind == HK_ATTN_OUT || p->kind == HK_MLP_HIDDEN || p->kind == HK_MLP_OUT;
        if (p->layer != layer || !after) return 0;
    }
    return hooks->n > 0;
}

int sl_tf_forward_hooked(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks,
                         int first_layer, int row, sl_tf_kept *k, sl_tf_row_stats *stats, float *logit, sl_error *err)
{
    const sl_config *c = &m->c;
    int rc = check_block(m, ex, ws, k, first_layer, row, -1, err);
    if (!rc && !sl_tf_hooks_after_attention(m, hooks, first_layer))
        rc = sl_fail(err, SL_ERUNTIME, "example %ld: hooks of block %d before its attention", ex->index, first_layer);
    if (rc) return rc;
    size_t d = (size_t)c->d_model;
    memcpy(ws->ctx, k->ctx + (size_t)first_layer * k->max_len * d, (size_t)ex->len * d * sizeof *ws->ctx);
    sl_cpu_ops o = sl_cpu_ops_on(m, ex, ws, hooks, logit);
    rc = sl_tf_block_after_attention(&o.ops, first_layer, err);
    if (rc) return rc;
    return row >= 0 && first_layer + 1 < c->n_layers
               ? sl_tf_forward_row(m, ex, ws, first_layer + 1, row, k, stats, logit, err)
               : sl_forward_from(m, ex, ws, NULL, first_layer + 1, logit, err);
}
