#include "attribution/attribute.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dist.h"
#include "core/metrics.h"
#include "core/ordered_sums.h"
#include "core/rng.h"

typedef struct {
    const sl_model *m;
    sl_dataset *ds;
    const sl_attr_opts *ao;
    sl_backend *be;
    sl_path path;
    /* per batch slot, from the backend: */
    float *attr;       /* [B, L] signed attribution per position */
    double *sum;       /* [B] its sum over the example's positions */
    float *base_logit; /* [B] integrated gradients: the baseline's logit */
    int32_t *fam;      /* [B, L] */
    long first;
    sl_attr_tokens_fn tokens_fn;
    void *tokens_user;
    float *rows;       /* [B, L] the batch's per-token attributions for tokens_fn */
    sl_attr_result *out;
    sl_ordered_sums sums; /* per slot: row_width(F) values (add_batch) */
    float *per_example;   /* [count][2F + 2]: |attribution| per family, positions per family, both in all */
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

static int attribute_batch(void *user, sl_batch *b, sl_error *err)
{
    attr_job *j = user;
    sl_path_out out = {j->attr, j->sum, b->logits, j->base_logit};
    if (j->path.logits_given)
        memcpy(b->logits, j->ao->logits + (b->first - j->first), (size_t)b->count * sizeof *b->logits);
    return j->be->ops->embed_gradient(j->be, b, &j->path, &out, err);
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
        const float *attr = j->attr + (long)e * L;
        double *row = sl_ordered_sums_at(&j->sums, e);
        memset(row, 0, (size_t)row_width(F) * sizeof *row);
        int len = b->lengths[e];
        for (int t = 0; t < len; t++) {
            double a = fabs(attr[t]);
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
            memcpy(dst, attr, (size_t)len * sizeof *dst);
        }
        if (j->ao->method == ATTR_IG) {
            double gap = (double)b->logits[e] - j->base_logit[e]; /* logit - baseline logit */
            double err_abs = fabs(j->sum[e] - gap);
            row[R_COMPLETE] = err_abs;
            row[R_RELATIVE] = err_abs / fmax(fabs(gap), 1e-12);
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
    int F = ds->n_families, L = ds->L;
    sl_run_opts ro;
    sl_backend *made;
    int rc = sl_run_backend(m, L, o, &ro, &made, err);
    int B = ro.batch;
    int ig = ao->method == ATTR_IG;
    attr_job j = {m, ds, ao, ro.backend, {ig ? ao->steps : 0, NULL, ig && ao->logits},
                  malloc((size_t)B * L * sizeof *j.attr), malloc((size_t)B * sizeof *j.sum),
                  malloc((size_t)B * sizeof *j.base_logit), malloc((size_t)B * L * sizeof *j.fam), o->first, tokens_fn,
                  tokens_user, tokens_fn ? malloc((size_t)B * L * sizeof(float)) : NULL, out, {0}, NULL};
    int32_t *pad = malloc((size_t)L * sizeof *pad); /* the all-pad baseline's tokens */
    for (int k = 0; pad && k < L; k++) pad[k] = m->c.pad_token_id;
    if (ao->method == ATTR_IG && ao->baseline != BASELINE_ZERO) j.path.baseline = pad;
    out->n_families = F;
    out->family_abs = calloc((size_t)F, sizeof *out->family_abs);
    out->family_count = calloc((size_t)F, sizeof *out->family_count);
    j.per_example = malloc((size_t)o->count * (2 * F + 2) * sizeof *j.per_example);
    if (!rc) rc = sl_ordered_sums_init(&j.sums, B, row_width(F), err);
    if (!rc)
        rc = j.attr && j.sum && j.base_logit && j.fam && pad && out->family_abs && out->family_count &&
                     (!tokens_fn || j.rows) && j.per_example
                 ? SL_OK
                 : sl_fail(err, SL_ERUNTIME, "out of memory");
    /* a rank that cannot start still meets the others' first collective */
    rc = rc ? sl_dist_agree(rc, err)
            : sl_run_batches(ds, &ro, read_families, attribute_batch, &j, add_batch, &j, NULL, err);
    rc = sl_ordered_sums_finish(rc, &j.sums, err);
    rc = sl_dist_max_f64(rc, &out->completeness_max, 1, err);
    rc = sl_dist_allgather_f32(rc, j.per_example, o->first, o->count, 2L * F + 2, err);
    if (!rc) totals(&j, out, o->count);
    if (!rc) rc = bootstrap_families(&j, o->count, out, err);
    free(j.attr), free(j.sum), free(j.base_logit), free(j.fam), free(j.rows), free(j.per_example), free(pad);
    sl_ordered_sums_free(&j.sums);
    sl_backend_free(made);
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
