#include "ablation/patch.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/dist.h"
#include "core/metrics.h"
#include "core/rng.h"
#include "cuda/device_model.h"

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
    sl_workspace *ws;
    float *cache;   /* [n_layers + 1][L][d]: each block's input, then the last output */
    float *src;     /* [n_points][L * width] the source's activations */
    int write_row;  /* the base position being patched */
    const float *write_src;
} patch_thread;

typedef struct {
    patch_job *job;
    int h;
} point_ctx;

struct patch_job {
    const sl_model *m;
    const sl_patch_opts *o;
    int L, d, nl;
    size_t src_stride;
    patch_thread *th;
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

static int keep_residual(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    const patch_job *j = user;
    int r = ev->point->kind == HK_RESID_PRE ? ev->point->layer : j->nl;
    memcpy(j->th[ev->slot].cache + (size_t)r * j->L * j->d, ev->data, (size_t)ev->len * j->d * sizeof(float));
    return SL_OK;
}

static int write_row(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    const patch_job *j = user;
    const patch_thread *t = &j->th[ev->slot];
    memcpy(ev->data + (long)t->write_row * ev->ld, t->write_src, (size_t)ev->cols * sizeof(float));
    return SL_OK;
}

static int resolve(int pos, int len) { return pos >= 0 ? (pos < len ? pos : -1) : (len + pos >= 0 ? len + pos : -1); }

/* One pair: the source run, the base run, then every (point, position). */
static int run_pair(patch_job *j, int thread, const int32_t *btok, int blen, const int32_t *stok, int slen, long b,
                    long s, const sl_hooks *capture, const sl_hooks *cache, const sl_hooks *writes, float *base_logit,
                    float *source_logit, float *patched, sl_error *err)
{
    const sl_model *m = j->m;
    const sl_patch_opts *o = j->o;
    patch_thread *t = &j->th[thread];
    sl_example src = {stok, slen, s, thread, NULL}, ex = {btok, blen, b, thread, NULL};
    int rc = sl_forward(m, &src, t->ws, capture, source_logit, err);
    if (!rc) rc = sl_forward(m, &ex, t->ws, cache, base_logit, err);
    float *h = sl_workspace_residual(t->ws);
    for (int p = 0; !rc && p < o->n_points; p++) {
        int point = o->points[p], r = residual_index(m, point), width = m->points[point].width;
        for (int q = 0; !rc && q < o->n_positions; q++) {
            float *cell = &patched[(size_t)p * o->n_positions + q];
            int pb = resolve(o->positions[q], blen), ps = resolve(o->positions[q], slen);
            if (pb < 0 || ps < 0) {
                *cell = NAN;
                continue;
            }
            const float *row = t->src + (size_t)p * j->src_stride + (size_t)ps * width;
            int from = r >= 0 ? r : start_layer(m, point);
            memcpy(h, t->cache + (size_t)from * j->L * j->d, (size_t)blen * j->d * sizeof *h);
            if (r >= 0) memcpy(h + (size_t)pb * j->d, row, (size_t)j->d * sizeof *h);
            t->write_row = pb;
            t->write_src = row;
            rc = sl_forward_from(m, &ex, t->ws, r >= 0 ? NULL : &writes[p], from, cell, err);
        }
    }
    return rc;
}

/* ---- on a device: a batch of pairs at a time ---- */

/* Variant k of a device batch is (point k / n_positions, position k %
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

/* n <= the device's batch of pairs: the sources with their activations
 * captured, then the bases, keeping their residuals, with one variant per
 * (point, position). Cells whose position is not valid in both are NaN. */
static int device_pairs(patch_job *j, int n, const int32_t *btok, const int32_t *blen, const int32_t *stok,
                        const int32_t *slen, const sl_hooks *capture, const sl_variant *v, variant_ctx *vc,
                        float *base, float *source, float *vlogits, float *patched, sl_error *err)
{
    const sl_patch_opts *o = j->o;
    long cells = (long)o->n_points * o->n_positions;
    for (long k = 0; k < cells; k++) vc[k].src_len = slen;
    int rc = sl_dev_forward(o->dev, n, j->L, stok, NULL, slen, 0, capture, source, err);
    if (!rc) rc = sl_dev_forward_variants(o->dev, n, j->L, btok, NULL, blen, 0, v, (int)cells, edit_residual, vc, base,
                                          vlogits, n, err);
    for (int e = 0; !rc && e < n; e++)
        for (long k = 0; k < cells; k++) {
            int pb;
            patched[(size_t)e * cells + k] = source_row(j, (int)k, e, blen[e], slen[e], &pb) ? vlogits[k * n + e] : NAN;
        }
    return rc;
}

/* The variants and write hooks of device_pairs, and its scratch. */
typedef struct {
    sl_variant *v;
    variant_ctx *vc;
    sl_hooks *hooks;
    int32_t *btok, *stok, *blen, *slen;
    float *vlogits;
    long cells;
} device_plan;

static int plan_device(patch_job *j, int B, device_plan *dp, sl_error *err)
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
    dp->vlogits = malloc((size_t)c * B * sizeof *dp->vlogits);
    if (!dp->v || !dp->vc || !dp->hooks || !dp->btok || !dp->stok || !dp->blen || !dp->slen || !dp->vlogits)
        return sl_fail(err, SL_ERUNTIME, "out of memory for %ld patch variants", cells);
    int rc = SL_OK;
    for (long k = 0; !rc && k < cells; k++) {
        int point = o->points[k / o->n_positions], r = residual_index(m, point);
        int from = r >= 0 ? r : start_layer(m, point);
        dp->vc[k] = (variant_ctx){j, (int)k, NULL};
        rc = sl_hooks_init(&dp->hooks[k], m->n_points, err);
        if (!rc && r < 0) rc = sl_hooks_add(&dp->hooks[k], point, write_variant, &dp->vc[k], err);
        dp->v[k] = (sl_variant){from, from, r >= 0 ? NULL : &dp->hooks[k]};
    }
    return rc;
}

static void free_plan(device_plan *dp)
{
    for (long k = 0; dp->hooks && k < dp->cells; k++) sl_hooks_free(&dp->hooks[k]);
    free(dp->v), free(dp->vc), free(dp->hooks), free(dp->btok), free(dp->stok), free(dp->blen), free(dp->slen);
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

#define CHUNK 64 /* pairs whose tokens are read at a time */

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
    int T = o->threads > 0 ? o->threads : 1, L = ds->L, d = m->c.d_model, nl = m->c.n_layers, maxw = d;
    /* on a device, the per-thread scratch is per batch slot (only src is used) */
    int Bdev = o->dev ? sl_dev_model_max_batch(o->dev) : 0;
    if (Bdev > CHUNK) Bdev = CHUNK;
    if (o->dev) T = Bdev;
    for (int p = 0; p < o->n_points; p++)
        if (m->points[o->points[p]].width > maxw) maxw = m->points[o->points[p]].width;
    patch_job j = {m, o, L, d, nl, (size_t)L * maxw, NULL, NULL};
    /* pairs run in parallel; a threaded BLAS inside would oversubscribe */
    sl_blas_single_thread();
    out->n_pairs = M;
    out->base = malloc((size_t)(M ? M : 1) * sizeof *out->base);
    out->source = malloc((size_t)(M ? M : 1) * sizeof *out->source);
    out->patched = malloc((size_t)(M ? M : 1) * cells * sizeof *out->patched);
    out->effect = malloc((size_t)cells * sizeof *out->effect);
    out->ci_lo = malloc((size_t)cells * sizeof *out->ci_lo);
    out->ci_hi = malloc((size_t)cells * sizeof *out->ci_hi);
    out->n_used = malloc((size_t)cells * sizeof *out->n_used);
    out->n_skipped = malloc((size_t)cells * sizeof *out->n_skipped);
    j.th = calloc((size_t)T, sizeof *j.th);
    j.ctx = calloc((size_t)(o->n_points ? o->n_points : 1), sizeof *j.ctx);
    int32_t *tok = malloc((size_t)2 * CHUNK * L * sizeof *tok);
    int *pair_rc = calloc(CHUNK, sizeof *pair_rc);
    sl_error *pair_err = calloc(CHUNK, sizeof *pair_err);
    int rc = out->base && out->source && out->patched && out->effect && out->ci_lo && out->ci_hi && out->n_used &&
                     out->n_skipped && j.th && j.ctx && tok && pair_rc && pair_err
                 ? SL_OK
                 : sl_fail(err, SL_ERUNTIME, "out of memory for %ld pairs x %ld cells", M, cells);
    for (int t = 0; !rc && t < T; t++) {
        j.th[t].src = malloc((size_t)(o->n_points ? o->n_points : 1) * j.src_stride * sizeof(float));
        if (!o->dev) {
            j.th[t].ws = sl_workspace_new(m, L, err);
            j.th[t].cache = malloc((size_t)(nl + 1) * L * d * sizeof(float));
        }
        if ((!o->dev && (!j.th[t].ws || !j.th[t].cache)) || !j.th[t].src)
            rc = err->code ? err->code : sl_fail(err, SL_ERUNTIME, "out of memory");
    }
    device_plan dp = {0};
    if (!rc && o->dev) rc = sl_dev_model_check(o->dev, m, err);
    if (!rc && o->dev) rc = plan_device(&j, Bdev, &dp, err);
    sl_hooks capture = {0}, cache = {0};
    sl_hooks *writes = calloc((size_t)(o->n_points ? o->n_points : 1), sizeof *writes);
    if (!rc && !writes) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    if (!rc) rc = sl_hooks_init(&capture, m->n_points, err);
    if (!rc) rc = sl_hooks_init(&cache, m->n_points, err);
    for (int p = 0; !rc && p < o->n_points; p++) {
        j.ctx[p] = (point_ctx){&j, p};
        rc = sl_hooks_add(&capture, o->points[p], capture_source, &j.ctx[p], err);
        if (!rc) rc = sl_hooks_init(&writes[p], m->n_points, err);
        if (!rc && residual_index(m, o->points[p]) < 0) rc = sl_hooks_add(&writes[p], o->points[p], write_row, &j, err);
    }
    for (int i = 0; !rc && i < nl; i++) rc = sl_hooks_add(&cache, sl_model_point(m, HK_RESID_PRE, i), keep_residual, &j, err);
    if (!rc) rc = sl_hooks_add(&cache, sl_model_point(m, HK_RESID_POST, nl - 1), keep_residual, &j, err);

    /* under MPI each rank runs its shard of the pairs (drawn alike on every
     * rank); the per-pair logits are gathered before the summary */
    long lo, mine;
    sl_dist_shard(0, M, &lo, &mine);
    for (long c0 = lo; !rc && c0 < lo + mine; c0 += CHUNK) {
        long n = lo + mine - c0 < CHUNK ? lo + mine - c0 : CHUNK;
        for (long k = 0; !rc && k < n; k++)
            for (int side = 0; side < 2 && !rc; side++) {
                long idx = o->pairs[2 * (c0 + k) + side];
                if (idx < 0 || idx >= ds->n)
                    rc = sl_fail(err, SL_EINPUT, "pair %ld: example %ld is outside the %ld examples of %s", c0 + k, idx,
                                 ds->n, ds->path);
                else rc = sl_dataset_read_tokens(ds, idx, 1, tok + (size_t)(2 * k + side) * L, err);
            }
        for (long k0 = 0; !rc && o->dev && k0 < n; k0 += Bdev) {
            int nb = (int)(n - k0 < Bdev ? n - k0 : Bdev);
            for (int e = 0; e < nb; e++) {
                long b = o->pairs[2 * (c0 + k0 + e)], src = o->pairs[2 * (c0 + k0 + e) + 1];
                memcpy(dp.btok + (size_t)e * L, tok + (size_t)2 * (k0 + e) * L, (size_t)L * sizeof *tok);
                memcpy(dp.stok + (size_t)e * L, tok + (size_t)(2 * (k0 + e) + 1) * L, (size_t)L * sizeof *tok);
                dp.blen[e] = ds->lengths[b];
                dp.slen[e] = ds->lengths[src];
            }
            rc = device_pairs(&j, nb, dp.btok, dp.blen, dp.stok, dp.slen, &capture, dp.v, dp.vc, &out->base[c0 + k0],
                              &out->source[c0 + k0], dp.vlogits, out->patched + (size_t)(c0 + k0) * cells, err);
        }
        if (o->dev) continue;
        /* each pair keeps its own status; the first failure in pair order
         * is reported, whatever the threads did */
#pragma omp parallel for num_threads(T) schedule(dynamic, 1)
        for (long k = 0; k < n; k++) {
            if (rc) continue;
            long b = o->pairs[2 * (c0 + k)], s = o->pairs[2 * (c0 + k) + 1];
            pair_rc[k] = run_pair(&j, omp_get_thread_num(), tok + (size_t)2 * k * L, ds->lengths[b],
                                  tok + (size_t)(2 * k + 1) * L, ds->lengths[s], b, s, &capture, &cache, writes,
                                  &out->base[c0 + k], &out->source[c0 + k], out->patched + (size_t)(c0 + k) * cells,
                                  &pair_err[k]);
        }
        for (long k = 0; !rc && k < n; k++)
            if (pair_rc[k]) *err = pair_err[k], rc = pair_rc[k];
    }
    if (M) {
        rc = sl_dist_allgather_f32(rc, out->base, 0, M, 1, err);
        rc = sl_dist_allgather_f32(rc, out->source, 0, M, 1, err);
        rc = sl_dist_allgather_f32(rc, out->patched, 0, M, cells, err);
    }
    /* an effect is a ratio of logit differences: a non-finite one is no effect */
    if (!rc) rc = sl_check_logits(out->base, M, -1, "the model, on the pairs' base examples,", err);
    if (!rc) rc = sl_check_logits(out->source, M, -1, "the model, on the pairs' source examples,", err);
    if (!rc) rc = summarise(o, out, err);
    for (int t = 0; j.th && t < T; t++) {
        sl_workspace_free(j.th[t].ws);
        free(j.th[t].cache);
        free(j.th[t].src);
    }
    free_plan(&dp);
    for (int p = 0; writes && p < o->n_points; p++) sl_hooks_free(&writes[p]);
    free(writes);
    sl_hooks_free(&capture);
    sl_hooks_free(&cache);
    free(j.th);
    free(j.ctx);
    free(tok);
    free(pair_rc);
    free(pair_err);
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
