#include "ablation/patch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dist.h"
#include "core/metrics.h"
#include "core/rng.h"
#include "models/run.h"

int sl_patchable(const sl_model *m, int point)
{
    const sl_hook_point *p = &m->points[point];
    return !p->per_example && p->kind != HK_ATTN_PATTERN && p->kind != HK_EMBED_TOKENS;
}

/* Residual-stream points are patched by editing the kept residual and
 * restarting at the block that reads it; the rest by a write hook. */
static int residual_index(const sl_model *m, int point)
{
    const sl_hook_point *p = &m->points[point];
    if (p->kind == HK_EMBED) return 0;
    if (p->kind == HK_RESID_PRE) return p->layer;
    if (p->kind == HK_RESID_POST) return p->layer + 1;
    return -1;
}

/* The layer whose forward pass fires a non-residual point (final: the tail). */
static int start_layer(const sl_model *m, int point)
{
    const sl_hook_point *p = &m->points[point];
    return p->layer < 0 ? m->c.n_layers : p->layer;
}

typedef struct patch_job patch_job;

typedef struct {
    float *src; /* [n_points][L * width] the source's activations */
} patch_slot;

typedef struct {
    patch_job *job;
    int h;
} point_ctx;

struct patch_job {
    const sl_model *m;
    const sl_patch_opts *o;
    int L, d, nl;
    size_t src_stride;
    patch_slot *th; /* per batch slot */
    point_ctx *ctx;
};

static int capture_source(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    const point_ctx *c = user;
    const patch_job *j = c->job;
    float *dst = j->th[ev->slot].src + (size_t)c->h * j->src_stride;
    for (int t = 0; t < ev->rows; t++) memcpy(dst + (size_t)t * ev->cols, ev->data + (long)t * ev->ld, (size_t)ev->cols * sizeof *dst);
    return SL_OK;
}

static int resolve(int pos, int len) { return pos >= 0 ? (pos < len ? pos : -1) : (len + pos >= 0 ? len + pos : -1); }

/* ---- a batch of pairs at a time, on the backend ---- */

/* Variant k of a batch is (point k / n_positions, position k %
 * n_positions); the slot's source length says which source row it takes. */
typedef struct {
    patch_job *job;
    int k;
    const int32_t *src_len; /* [batch] */
} variant_ctx;

static const float *source_row(const patch_job *j, int k, int slot, int blen, int slen, int *pb)
{
    const sl_patch_opts *o = j->o;
    int p = k / o->n_positions, q = k % o->n_positions, ps = resolve(o->positions[q], slen);
    *pb = resolve(o->positions[q], blen);
    if (*pb < 0 || ps < 0) return NULL;
    return j->th[slot].src + (size_t)p * j->src_stride + (size_t)ps * j->m->points[o->points[p]].width;
}

/* The first position variant k changes in a slot: the base's position
 * (len when the cell is skipped, so that nothing runs for it). */
static int first_row(const void *user, int slot, int len)
{
    const variant_ctx *v = user;
    int pb;
    return source_row(v->job, v->k, slot, len, v->src_len[slot], &pb) ? pb : len;
}

/* A residual point: the kept residual edited before the restart. */
static void edit_residual(void *user, int k, int slot, float *h, int len)
{
    const variant_ctx *v = user; /* the first of the array: k picks */
    const patch_job *j = v->job;
    int pb;
    if (residual_index(j->m, j->o->points[k / j->o->n_positions]) < 0) return;
    const float *row = source_row(j, k, slot, len, v->src_len[slot], &pb);
    if (row) memcpy(h + (size_t)pb * j->d, row, (size_t)j->d * sizeof *h);
}

/* Any other point: a write hook in the block that fires it. */
static int write_variant(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    const variant_ctx *v = user;
    int pb;
    const float *row = source_row(v->job, v->k, ev->slot, ev->len, v->src_len[ev->slot], &pb);
    if (row) memcpy(ev->data + (long)pb * ev->ld, row, (size_t)ev->cols * sizeof *ev->data);
    return SL_OK;
}

/* n <= the backend's batch of pairs: the sources with their activations
 * captured, then the bases, keeping their residuals, with one variant per
 * (point, position). Cells whose position is not valid in both are NaN. */
static int run_pairs(patch_job *j, sl_backend *be, int n, const int32_t *btok, const int32_t *blen, const long *bidx,
                     const int32_t *stok, const int32_t *slen, const long *sidx, const sl_hooks *capture,
                     const sl_variant *v, variant_ctx *vc, float *base, float *source, float *vlogits, float *patched,
                     sl_error *err)
{
    const sl_patch_opts *o = j->o;
    long cells = (long)o->n_points * o->n_positions;
    for (long k = 0; k < cells; k++) vc[k].src_len = slen;
    sl_batch sb = {.count = n, .L = j->L, .tokens = (int32_t *)stok, .lengths = slen, .index = sidx};
    sl_batch bb = {.count = n, .L = j->L, .tokens = (int32_t *)btok, .lengths = blen, .index = bidx};
    int rc = be->ops->forward(be, &sb, capture, source, err);
    if (!rc) rc = be->ops->variants(be, &bb, v, (int)cells, edit_residual, vc, base, vlogits, n, err);
    for (int e = 0; !rc && e < n; e++)
        for (long k = 0; k < cells; k++) {
            int pb;
            patched[(size_t)e * cells + k] = source_row(j, (int)k, e, blen[e], slen[e], &pb) ? vlogits[k * n + e] : NAN;
        }
    return rc;
}

/* The variants and write hooks of run_pairs, and its scratch. */
typedef struct {
    sl_variant *v;
    variant_ctx *vc;
    sl_hooks *hooks;
    int32_t *btok, *stok, *blen, *slen;
    long *bidx, *sidx;
    float *vlogits;
    long cells;
} pair_plan;

static int plan_pairs(patch_job *j, int B, pair_plan *dp, sl_error *err)
{
    const sl_patch_opts *o = j->o;
    const sl_model *m = j->m;
    long cells = (long)o->n_points * o->n_positions, c = cells ? cells : 1;
    dp->cells = cells;
    dp->v = calloc((size_t)c, sizeof *dp->v);
    dp->vc = calloc((size_t)c, sizeof *dp->vc);
    dp->hooks = calloc((size_t)c, sizeof *dp->hooks);
    dp->btok = malloc((size_t)B * j->L * sizeof *dp->btok);
    dp->stok = malloc((size_t)B * j->L * sizeof *dp->stok);
    dp->blen = malloc((size_t)B * sizeof *dp->blen);
    dp->slen = malloc((size_t)B * sizeof *dp->slen);
    dp->bidx = malloc((size_t)B * sizeof *dp->bidx);
    dp->sidx = malloc((size_t)B * sizeof *dp->sidx);
    dp->vlogits = malloc((size_t)c * B * sizeof *dp->vlogits);
    if (!dp->v || !dp->vc || !dp->hooks || !dp->btok || !dp->stok || !dp->blen || !dp->slen || !dp->bidx || !dp->sidx
        || !dp->vlogits)
        return sl_fail(err, SL_ERUNTIME, "out of memory for %ld patch variants", cells);
    int rc = SL_OK;
    for (long k = 0; !rc && k < cells; k++) {
        int point = o->points[k / o->n_positions], r = residual_index(m, point);
        int from = r >= 0 ? r : start_layer(m, point);
        dp->vc[k] = (variant_ctx){j, (int)k, NULL};
        rc = sl_hooks_init(&dp->hooks[k], m->n_points, err);
        if (!rc && r < 0) rc = sl_hooks_add(&dp->hooks[k], point, write_variant, &dp->vc[k], err);
        dp->v[k] = (sl_variant){from, from, r >= 0 ? NULL : &dp->hooks[k], first_row, &dp->vc[k], 1};
    }
    return rc;
}

static void free_plan(pair_plan *dp)
{
    for (long k = 0; dp->hooks && k < dp->cells; k++) sl_hooks_free(&dp->hooks[k]);
    free(dp->v), free(dp->vc), free(dp->hooks), free(dp->btok), free(dp->stok), free(dp->blen), free(dp->slen);
    free(dp->bidx), free(dp->sidx);
    free(dp->vlogits);
}

/* Mean effect over the usable pairs and its percentile bootstrap CI (the
 * generator keyed to the cell, so threads and order change nothing). */
static int summarise(const sl_patch_opts *o, sl_patch_result *r, sl_error *err)
{
    long M = r->n_pairs;
    double *e = malloc((size_t)(M ? M : 1) * sizeof *e), *boot = malloc((size_t)(o->bootstrap ? o->bootstrap : 1) * sizeof *boot);
    if (!e || !boot) {
        free(e);
        free(boot);
        return sl_fail(err, SL_ERUNTIME, "out of memory");
    }
    long cells = (long)o->n_points * o->n_positions;
    for (long c = 0; c < cells; c++) {
        long used = 0, skipped = 0;
        double sum = 0;
        for (long k = 0; k < M; k++) {
            double pt = r->patched[(size_t)k * cells + c], diff = (double)r->source[k] - r->base[k];
            if (isnan(pt) || fabs(diff) < 1e-6) {
                skipped++;
                continue;
            }
            e[used] = (pt - r->base[k]) / diff;
            sum += e[used++];
        }
        r->n_used[c] = used;
        r->n_skipped[c] = skipped;
        r->effect[c] = used ? sum / (double)used : NAN;
        r->ci_lo[c] = r->ci_hi[c] = NAN;
        if (!used || !o->bootstrap) continue;
        sl_rng rng = sl_rng_seed(o->seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(c + 1)));
        for (int b = 0; b < o->bootstrap; b++) {
            double s = 0;
            for (long k = 0; k < used; k++) s += e[sl_rng_below(&rng, (uint64_t)used)];
            boot[b] = s / (double)used;
        }
        double ci[2];
        sl_ci95(boot, o->bootstrap, ci);
        r->ci_lo[c] = ci[0];
        r->ci_hi[c] = ci[1];
    }
    free(e);
    free(boot);
    return SL_OK;
}

int sl_patch(const sl_model *m, sl_dataset *ds, const sl_patch_opts *o, sl_patch_result *out, sl_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->n_points < 1 || o->n_positions < 1)
        return sl_fail(err, SL_EINPUT, "patching needs at least one hook point and one position (%d and %d given)",
                       o->n_points, o->n_positions);
    for (int p = 0; p < o->n_points; p++)
        if (!sl_patchable(m, o->points[p]))
            return sl_fail(err, SL_EINPUT, "%s cannot be patched: patching needs one row per position",
                           m->points[o->points[p]].name);
    long M = o->n_pairs, cells = (long)o->n_points * o->n_positions;
    int L = ds->L, d = m->c.d_model, nl = m->c.n_layers, maxw = d;
    for (int p = 0; p < o->n_points; p++)
        if (m->points[o->points[p]].width > maxw) maxw = m->points[o->points[p]].width;
    patch_job j = {m, o, L, d, nl, (size_t)L * maxw, NULL, NULL};
    int threads = o->threads > 0 ? o->threads : 1;
    sl_run_opts ro = {.batch = o->batch > 0 ? o->batch : 4 * threads, .threads = threads, .backend = o->backend}, run;
    sl_backend *made = NULL;
    int rc = sl_run_backend(m, L, &ro, &run, &made, err);
    sl_backend *be = run.backend;
    int B = run.batch; /* pairs per backend call */
    out->n_pairs = M;
    out->base = malloc((size_t)(M ? M : 1) * sizeof *out->base);
    out->source = malloc((size_t)(M ? M : 1) * sizeof *out->source);
    out->patched = malloc((size_t)(M ? M : 1) * cells * sizeof *out->patched);
    out->effect = malloc((size_t)cells * sizeof *out->effect);
    out->ci_lo = malloc((size_t)cells * sizeof *out->ci_lo);
    out->ci_hi = malloc((size_t)cells * sizeof *out->ci_hi);
    out->n_used = malloc((size_t)cells * sizeof *out->n_used);
    out->n_skipped = malloc((size_t)cells * sizeof *out->n_skipped);
    j.th = calloc((size_t)B, sizeof *j.th);
    j.ctx = calloc((size_t)(o->n_points ? o->n_points : 1), sizeof *j.ctx);
    if (!rc)
        rc = out->base && out->source && out->patched && out->effect && out->ci_lo && out->ci_hi && out->n_used &&
                     out->n_skipped && j.th && j.ctx
                 ? SL_OK
                 : sl_fail(err, SL_ERUNTIME, "out of memory for %ld pairs x %ld cells", M, cells);
    for (int t = 0; !rc && j.th && t < B; t++)
        if (!(j.th[t].src = malloc((size_t)(o->n_points ? o->n_points : 1) * j.src_stride * sizeof(float))))
            rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    pair_plan dp = {0};
    if (!rc) rc = plan_pairs(&j, B, &dp, err);
    sl_hooks capture = {0};
    if (!rc) rc = sl_hooks_init(&capture, m->n_points, err);
    for (int p = 0; !rc && p < o->n_points; p++) {
        j.ctx[p] = (point_ctx){&j, p};
        rc = sl_hooks_add(&capture, o->points[p], capture_source, &j.ctx[p], err);
    }

    /* under MPI each rank runs its shard of the pairs (drawn alike on every
     * rank); the per-pair logits are gathered before the summary */
    long lo, mine;
    sl_dist_shard(0, M, &lo, &mine);
    for (long k0 = lo; !rc && k0 < lo + mine; k0 += B) {
        int nb = (int)(lo + mine - k0 < B ? lo + mine - k0 : B);
        for (int e = 0; !rc && e < nb; e++) {
            long b = o->pairs[2 * (k0 + e)], src = o->pairs[2 * (k0 + e) + 1];
            for (int side = 0; side < 2 && !rc; side++) {
                long idx = side ? src : b;
                if (idx < 0 || idx >= ds->n)
                    rc = sl_fail(err, SL_EINPUT, "pair %ld: example %ld is outside the %ld examples of %s", k0 + e, idx,
                                 ds->n, ds->path);
                else rc = sl_dataset_read_tokens(ds, idx, 1, (side ? dp.stok : dp.btok) + (size_t)e * L, err);
            }
            if (rc) break;
            dp.blen[e] = ds->lengths[b], dp.bidx[e] = b;
            dp.slen[e] = ds->lengths[src], dp.sidx[e] = src;
        }
        if (!rc)
            rc = run_pairs(&j, be, nb, dp.btok, dp.blen, dp.bidx, dp.stok, dp.slen, dp.sidx, &capture, dp.v, dp.vc,
                           &out->base[k0], &out->source[k0], dp.vlogits, out->patched + (size_t)k0 * cells, err);
    }
    /* a rank that could not start still meets the others' gathers */
    if (M) {
        rc = sl_dist_allgather_f32(rc, out->base, 0, M, 1, err);
        rc = sl_dist_allgather_f32(rc, out->source, 0, M, 1, err);
        rc = sl_dist_allgather_f32(rc, out->patched, 0, M, cells, err);
    }
    /* an effect is a ratio of logit differences: a non-finite one is no effect */
    if (!rc) rc = sl_check_logits(out->base, M, -1, "the model, on the pairs' base examples,", err);
    if (!rc) rc = sl_check_logits(out->source, M, -1, "the model, on the pairs' source examples,", err);
    if (!rc) rc = summarise(o, out, err);
    for (int t = 0; j.th && t < B; t++) free(j.th[t].src);
    free_plan(&dp);
    sl_hooks_free(&capture);
    free(j.th);
    free(j.ctx);
    sl_backend_free(made);
    if (rc) sl_patch_result_free(out);
    return rc;
}

void sl_patch_result_free(sl_patch_result *r)
{
    free(r->base);
    free(r->source);
    free(r->patched);
    free(r->effect);
    free(r->ci_lo);
    free(r->ci_hi);
    free(r->n_used);
    free(r->n_skipped);
    memset(r, 0, sizeof *r);
}

int sl_patch_pairs(const sl_dataset *ds, long first, long count, long n, int label_flip, uint64_t seed, long *pairs,
                   long *n_out, sl_error *err)
{
    const int32_t *y = ds->labels + first;
    long ones = 0;
    for (long i = 0; i < count; i++) ones += y[i];
    if (count < 2) return sl_fail(err, SL_EINPUT, "%s: patching needs at least 2 examples", ds->path);
    if (label_flip && (ones == 0 || ones == count))
        return sl_fail(err, SL_EINPUT, "%s: every selected example has label %d: no label-flip pair exists", ds->path, y[0]);
    *n_out = 0;
    for (long b = 0; b < n && b < count; b++) {
        sl_rng rng = sl_rng_seed(seed ^ (0xd1b54a32d192ed03ull * (uint64_t)(first + b + 1)));
        long s;
        if (label_flip) {
            /* the k-th example of the other label, k uniform */
            long others = y[b] ? count - ones : ones, k = (long)sl_rng_below(&rng, (uint64_t)others);
            for (s = 0; s < count; s++)
                if (y[s] != y[b] && k-- == 0) break;
        } else {
            s = (long)sl_rng_below(&rng, (uint64_t)count - 1);
            if (s >= b) s++;
        }
        pairs[2 * *n_out] = first + b;
        pairs[2 * *n_out + 1] = first + s;
        (*n_out)++;
    }
    return SL_OK;
}
