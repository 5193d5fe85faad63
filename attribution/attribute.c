#include "attribution/attribute.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dist.h"
#include "core/metrics.h"
#include "core/ordered_sums.h"
#include "core/rng.h"
#include "cuda/device_model.h"

/* Per thread: the gradient of every block boundary, the input, the
 * baseline, the path point and the summed gradients. */
typedef struct {
    float *grad, *x, *base, *path, *acc;
    int32_t *pad_tokens;
} thread_scratch;

/* Per batch slot: the example's signed attribution per position and its
 * completeness error, added into the totals in example order. */
typedef struct {
    float *attr;      /* [L] */
    double gap, sum;  /* logit - baseline logit; sum of attributions */
} slot_result;

typedef struct {
    const sl_model *m;
    sl_dataset *ds;
    const sl_attr_opts *ao;
    thread_scratch *th;
    slot_result *slot;
    int32_t *fam;     /* [B, L] */
    long first;
    sl_attr_tokens_fn tokens_fn;
    void *tokens_user;
    float *rows;      /* [B, L] the batch's per-token attributions for tokens_fn */
    sl_attr_result *out;
    sl_ordered_sums sums; /* per slot: row_width(F) values (add_batch) */
    float *per_example;   /* [count][2F + 2]: |attribution| per family, positions per family, both in all */
    /* on a device: */
    struct sl_dev_model *dev;
    float *dev_attr, *dev_base; /* [B, L], [B] */
    int32_t *dev_pad;           /* [B, L] the pad token */
} attr_job;

static int bucket_of(int distance)
{
    int b = 0;
    while (distance > 0 && b < SL_DISTANCE_BUCKETS - 1) {
        distance >>= 1;
        b++;
    }
    return b;
}

static int attribute_example(void *user, int thread, const sl_example *ex, sl_workspace *ws, float *logit, sl_error *err)
{
    attr_job *j = user;
    const sl_model *m = j->m;
    thread_scratch *s = &j->th[thread];
    int T = ex->len, d = m->c.d_model;
    long n = (long)T * d;
    slot_result *r = &j->slot[ex->slot];
    int rc = sl_embed(m, ex, ws, s->x, err);
    if (rc) return rc;
    if (j->ao->method == ATTR_GRAD_INPUT) {
        rc = sl_gradient(m, ex, ws, NULL, logit, s->grad, err);
        for (long k = 0; !rc && k < n; k++) s->acc[k] = s->x[k] * s->grad[k];
    } else {
        /* the baseline: zeros, or the embedding of an all-pad sequence */
        if (j->ao->baseline == BASELINE_ZERO) {
            memset(s->base, 0, (size_t)n * sizeof *s->base);
        } else {
            sl_example pe = *ex;
            pe.tokens = s->pad_tokens;
            rc = sl_embed(m, &pe, ws, s->base, err);
        }
        float base_logit = 0; /* a forward pass from the baseline: only its logit is needed */
        if (!rc) memcpy(sl_workspace_residual(ws), s->base, (size_t)n * sizeof *s->base);
        if (!rc) rc = sl_forward_from(m, ex, ws, NULL, 0, &base_logit, err);
        if (!rc) rc = sl_forward(m, ex, ws, NULL, logit, err);
        memset(s->acc, 0, (size_t)n * sizeof *s->acc);
        int K = j->ao->steps;
        for (int step = 0; !rc && step < K; step++) {
            float alpha = (step + 0.5f) / K, unused; /* the midpoint rule */
            for (long k = 0; k < n; k++) s->path[k] = s->base[k] + alpha * (s->x[k] - s->base[k]);
            rc = sl_gradient(m, ex, ws, s->path, &unused, s->grad, err);
            for (long k = 0; !rc && k < n; k++) s->acc[k] += s->grad[k];
        }
        for (long k = 0; k < n; k++) s->acc[k] *= (s->x[k] - s->base[k]) / K;
        r->gap = (double)*logit - base_logit;
    }
    double total = 0;
    for (int t = 0; t < T; t++) {
        double a = 0;
        for (int k = 0; k < d; k++) a += s->acc[(long)t * d + k];
        r->attr[t] = (float)a;
        total += a;
    }
    r->sum = total;
    return rc;
}

/* attribute_example for a whole batch, on the device (cuda/device_model.h). */
static int attribute_batch_on_device(void *user, sl_batch *b, sl_error *err)
{
    attr_job *j = user;
    int ig = j->ao->method == ATTR_IG, L = b->L;
    int rc = sl_dev_attribute(j->dev, b->count, L, b->tokens, b->keep, b->lengths, b->first, ig ? j->ao->steps : 0,
                              j->dev_pad, j->ao->baseline == BASELINE_ZERO, j->dev_attr, b->logits, j->dev_base, err);
    for (int e = 0; !rc && e < b->count; e++) {
        slot_result *r = &j->slot[e];
        double total = 0;
        for (int t = 0; t < b->lengths[e]; t++) total += r->attr[t] = j->dev_attr[(long)e * L + t];
        r->sum = total;
        r->gap = ig ? (double)b->logits[e] - j->dev_base[e] : 0;
    }
    return rc;
}

static int read_families(void *user, sl_batch *b, sl_error *err)
{
    attr_job *j = user;
    return sl_dataset_read_families(j->ds, b->first, b->count, b->tokens, j->fam, err);
}

/* One example's sums, a row of the ordered sums: |attribution| and token
 * counts overall, per distance bucket and per family, and for ig the
 * completeness error. Each example is summed on its own first, then the
 * rows are added in example order, so that MPI ranks (core/ordered_sums.h)
 * give the one-process totals bit for bit. */
enum { R_TOTAL, R_VALID, R_COMPLETE, R_RELATIVE, R_BUCKET_ABS };
#define R_BUCKET_COUNT (R_BUCKET_ABS + SL_DISTANCE_BUCKETS)
#define R_FAMILY_ABS (R_BUCKET_COUNT + SL_DISTANCE_BUCKETS)

static long row_width(int F) { return R_FAMILY_ABS + 2L * F; }

static int add_batch(void *user, sl_batch *b, sl_error *err)
{
    attr_job *j = user;
    sl_attr_result *o = j->out;
    int L = j->ds->L, F = o->n_families;
    /* attributions of a non-finite logit are noise: stop at the first such batch */
    char what[4200];
    snprintf(what, sizeof what, "the model, run on %s (a batch from example %ld),", j->ds->path, b->first);
    int bad = sl_check_logits(b->logits, b->count, b->first, what, err);
    if (bad) return bad;
    for (int e = 0; e < b->count; e++) {
        const slot_result *r = &j->slot[e];
        double *row = sl_ordered_sums_at(&j->sums, e);
        memset(row, 0, (size_t)row_width(F) * sizeof *row);
        int len = b->lengths[e];
        for (int t = 0; t < len; t++) {
            double a = fabs(r->attr[t]);
            int f = j->fam[(long)e * L + t], bk = bucket_of(len - 1 - t);
            row[R_TOTAL] += a;
            row[R_VALID]++;
            row[R_BUCKET_ABS + bk] += a;
            row[R_BUCKET_COUNT + bk]++;
            if (f >= 0) {
                row[R_FAMILY_ABS + f] += a;
                row[R_FAMILY_ABS + F + f]++;
            }
        }
        float *pe = j->per_example + (size_t)(b->first - j->first + e) * (2 * F + 2);
        for (int f = 0; f < 2 * F; f++) pe[f] = (float)row[R_FAMILY_ABS + f];
        pe[2 * F] = (float)row[R_TOTAL];
        pe[2 * F + 1] = (float)row[R_VALID];
        if (j->tokens_fn) {
            float *dst = j->rows + (long)e * L;
            memset(dst, 0, (size_t)L * sizeof *dst);
            memcpy(dst, r->attr, (size_t)len * sizeof *dst);
        }
        if (j->ao->method == ATTR_IG) {
            double err_abs = fabs(r->sum - r->gap);
            row[R_COMPLETE] = err_abs;
            row[R_RELATIVE] = err_abs / fmax(fabs(r->gap), 1e-12);
            if (err_abs > o->completeness_max) o->completeness_max = err_abs;
        }
    }
    int rc = sl_ordered_sums_add(&j->sums, b, err);
    if (!rc && j->tokens_fn) rc = j->tokens_fn(j->tokens_user, b->first - j->first, b->count, L, j->rows, err);
    return rc;
}

/* The totals of all examples into the result. */
static void totals(const attr_job *j, sl_attr_result *out, long n)
{
    const double *s = j->sums.total;
    int F = out->n_families;
    out->n = n;
    out->total = s[R_TOTAL];
    out->valid = (long)s[R_VALID];
    for (int k = 0; k < SL_DISTANCE_BUCKETS; k++) {
        out->bucket_abs[k] = s[R_BUCKET_ABS + k];
        out->bucket_count[k] = (long)s[R_BUCKET_COUNT + k];
    }
    for (int f = 0; f < F; f++) {
        out->family_abs[f] = s[R_FAMILY_ABS + f];
        out->family_count[f] = (long)s[R_FAMILY_ABS + F + f];
    }
    out->completeness_mean = s[R_COMPLETE] / n;
    out->completeness_relative_mean = s[R_RELATIVE] / n;
}

/* Each family's attribution share and ratio over a resample of the
 * examples (w[e] draws of example e). */
static void resampled_shares(const float *per_example, const int *w, long n, int F, double *acc, double *share,
                             double *ratio)
{
    long W = 2L * F + 2;
    memset(acc, 0, (size_t)W * sizeof *acc);
    for (long e = 0; e < n; e++)
        if (w[e])
            for (long k = 0; k < W; k++) acc[k] += (double)w[e] * per_example[e * W + k];
    for (int f = 0; f < F; f++) {
        share[f] = acc[f] / acc[2 * F];
        ratio[f] = share[f] / (acc[F + f] / acc[2 * F + 1]);
    }
}

/* Percentile bootstrap over examples: the sample's error on each family's
 * share and ratio, so that an analysis of a sample says how far it may be
 * from the whole data. */
static int bootstrap_families(const attr_job *j, long n, sl_attr_result *out, sl_error *err)
{
    int F = out->n_families, B = j->ao->bootstrap;
    out->share_ci = malloc((size_t)(F ? F : 1) * 2 * sizeof *out->share_ci);
    out->ratio_ci = malloc((size_t)(F ? F : 1) * 2 * sizeof *out->ratio_ci);
    if (!out->share_ci || !out->ratio_ci) return sl_fail(err, SL_ERUNTIME, "out of memory");
    for (int k = 0; k < 2 * F; k++) out->share_ci[k] = out->ratio_ci[k] = NAN;
    if (!B) return SL_OK;
    int *w = malloc((size_t)n * sizeof *w);
    double *acc = malloc((size_t)(2 * F + 2) * sizeof *acc), *share = malloc((size_t)B * F * sizeof *share);
    double *ratio = malloc((size_t)B * F * sizeof *ratio), *col = malloc((size_t)B * sizeof *col);
    int rc = w && acc && share && ratio && col ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
    sl_rng rng = sl_rng_seed(j->ao->seed);
    for (int b = 0; !rc && b < B; b++) {
        memset(w, 0, (size_t)n * sizeof *w);
        for (long k = 0; k < n; k++) w[sl_rng_below(&rng, (uint64_t)n)]++;
        resampled_shares(j->per_example, w, n, F, acc, share + (size_t)b * F, ratio + (size_t)b * F);
    }
    for (int f = 0; !rc && f < F; f++) {
        for (int b = 0; b < B; b++) col[b] = share[(size_t)b * F + f];
        sl_ci95(col, B, out->share_ci + 2 * f);
        for (int b = 0; b < B; b++) col[b] = ratio[(size_t)b * F + f];
        sl_ci95(col, B, out->ratio_ci + 2 * f);
    }
    free(w), free(acc), free(share), free(ratio), free(col);
    return rc;
}

int sl_attribute(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const sl_attr_opts *ao, sl_attr_result *out,
                 sl_attr_tokens_fn tokens_fn, void *tokens_user, sl_error *err)
{
    memset(out, 0, sizeof *out);
    int F = ds->n_families, L = ds->L, d = m->c.d_model, B = o->batch > 0 ? o->batch : 1, T = o->threads > 0 ? o->threads : 1;
    size_t ld = (size_t)L * d;
    attr_job j = {m, ds, ao, calloc((size_t)T, sizeof *j.th), calloc((size_t)B, sizeof *j.slot),
                  malloc((size_t)B * L * sizeof *j.fam), o->first, tokens_fn, tokens_user,
                  tokens_fn ? malloc((size_t)B * L * sizeof(float)) : NULL, out, {0}, NULL, NULL, NULL, NULL, NULL};
    out->n_families = F;
    out->family_abs = calloc((size_t)F, sizeof *out->family_abs);
    out->family_count = calloc((size_t)F, sizeof *out->family_count);
    j.per_example = malloc((size_t)o->count * (2 * F + 2) * sizeof *j.per_example);
    int rc = sl_ordered_sums_init(&j.sums, B, row_width(F), err);
    if (!rc) rc = j.th && j.slot && j.fam && out->family_abs && out->family_count && (!tokens_fn || j.rows) && j.per_example
                 ? SL_OK
                 : sl_fail(err, SL_ERUNTIME, "out of memory");
    for (int t = 0; !rc && t < T; t++) {
        thread_scratch *s = &j.th[t];
        s->grad = malloc((size_t)(m->c.n_layers + 1) * ld * sizeof(float));
        s->x = malloc(ld * sizeof(float));
        s->base = malloc(ld * sizeof(float));
        s->path = malloc(ld * sizeof(float));
        s->acc = malloc(ld * sizeof(float));
        s->pad_tokens = malloc((size_t)L * sizeof(int32_t));
        if (!s->grad || !s->x || !s->base || !s->path || !s->acc || !s->pad_tokens)
            rc = sl_fail(err, SL_ERUNTIME, "out of memory");
        for (int k = 0; !rc && k < L; k++) s->pad_tokens[k] = m->c.pad_token_id;
    }
    for (int e = 0; !rc && e < B; e++)
        if (!(j.slot[e].attr = calloc((size_t)L, sizeof(float)))) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    if (!rc && o->dev) {
        sl_run_opts on = *o;
        if (on.batch > sl_dev_model_max_batch(o->dev)) on.batch = sl_dev_model_max_batch(o->dev);
        j.dev = o->dev;
        j.dev_attr = malloc((size_t)B * L * sizeof *j.dev_attr);
        j.dev_base = malloc((size_t)B * sizeof *j.dev_base);
        j.dev_pad = malloc((size_t)B * L * sizeof *j.dev_pad);
        rc = j.dev_attr && j.dev_base && j.dev_pad ? sl_dev_model_check(o->dev, m, err)
                                                   : sl_fail(err, SL_ERUNTIME, "out of memory");
        for (long k = 0; !rc && k < (long)B * L; k++) j.dev_pad[k] = m->c.pad_token_id;
        if (!rc) rc = sl_run_batches(ds, &on, read_families, attribute_batch_on_device, &j, add_batch, &j, NULL, err);
    } else if (!rc) {
        rc = sl_run_each(m, ds, o, NULL, read_families, add_batch, &j, attribute_example, &j, NULL, err);
    }
    rc = sl_ordered_sums_finish(rc, &j.sums, err);
    rc = sl_dist_max_f64(rc, &out->completeness_max, 1, err);
    rc = sl_dist_allgather_f32(rc, j.per_example, o->first, o->count, 2L * F + 2, err);
    if (!rc) totals(&j, out, o->count);
    if (!rc) rc = bootstrap_families(&j, o->count, out, err);
    for (int t = 0; j.th && t < T; t++) {
        thread_scratch *s = &j.th[t];
        free(s->grad);
        free(s->x);
        free(s->base);
        free(s->path);
        free(s->acc);
        free(s->pad_tokens);
    }
    for (int e = 0; j.slot && e < B; e++) free(j.slot[e].attr);
    free(j.th);
    free(j.slot);
    free(j.fam);
    free(j.rows);
    free(j.per_example);
    free(j.dev_attr);
    free(j.dev_base);
    free(j.dev_pad);
    sl_ordered_sums_free(&j.sums);
    return rc;
}

void sl_attr_result_free(sl_attr_result *r)
{
    free(r->family_abs);
    free(r->family_count);
    free(r->share_ci);
    free(r->ratio_ci);
    memset(r, 0, sizeof *r);
}
