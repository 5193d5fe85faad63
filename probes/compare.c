#include "probes/compare.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cka.h"
#include "core/dist.h"
#include "core/correlation.h"
#include "core/metrics.h"

/* One model's pooled vector and per-layer mean residual of every example. */
typedef struct {
    const sl_model *m;
    long first;
    int d;
    float *pooled; /* [n, d] */
    float *layers; /* [n_layers][n, d] */
    long n;
    float *logits; /* [n] */
    const char *name; /* "model A" or "model B", for errors */
} reps;

static int keep_pooled(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    reps *r = user;
    memcpy(r->pooled + (ev->example - r->first) * r->d, ev->data, (size_t)r->d * sizeof(float));
    return SL_OK;
}

static int keep_layer_mean(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    reps *r = user;
    float *dst = r->layers + ((size_t)ev->point->layer * r->n + (size_t)(ev->example - r->first)) * r->d;
    for (int k = 0; k < r->d; k++) {
        double s = 0;
        for (int t = 0; t < ev->len; t++) s += ev->data[(long)t * ev->ld + k];
        dst[k] = (float)(s / ev->len);
    }
    return SL_OK;
}

static int keep_logits(void *user, sl_batch *b, sl_error *err)
{
    (void)err;
    reps *r = user;
    memcpy(r->logits + (b->first - r->first), b->logits, (size_t)b->count * sizeof *b->logits);
    return SL_OK;
}

/* CKA and the AUCs of NaN are NaN, said nowhere: a representation or
 * logit that is not finite is an error that names where it first appears. */
static int check_finite(const reps *r, sl_error *err)
{
    const sl_model *m = r->m;
    size_t n = (size_t)r->n * r->d;
    for (int i = 0; i < m->c.n_layers; i++) {
        size_t bad = sl_count_nonfinite(r->layers + (size_t)i * n, n);
        if (bad)
            return sl_fail(err, SL_ERUNTIME,
                           "%s, layer %d (%s): %zu of %zu values (resid_post averaged over each example) are NaN or "
                           "infinite (non-finite weights, or activations that overflow)",
                           r->name, i, m->points[sl_model_point(m, HK_RESID_POST, i)].name, bad, n);
    }
    size_t bad = sl_count_nonfinite(r->pooled, n);
    if (bad)
        return sl_fail(err, SL_ERUNTIME, "%s: %zu of %zu pooled values are NaN or infinite", r->name, bad, n);
    return sl_check_logits(r->logits, r->n, r->first, r->name, err);
}

static int collect(reps *r, sl_dataset *ds, const sl_run_opts *o, sl_error *err)
{
    const sl_model *m = r->m;
    sl_hooks h = {0};
    int rc = sl_hooks_init(&h, m->n_points, err);
    if (!rc) rc = sl_hooks_add(&h, sl_model_point(m, HK_POOLED, -1), keep_pooled, r, err);
    for (int i = 0; !rc && i < m->c.n_layers; i++)
        rc = sl_hooks_add(&h, sl_model_point(m, HK_RESID_POST, i), keep_layer_mean, r, err);
    /* the logits come by keep_logits, so that a non-finite layer is named before them */
    if (!rc) rc = sl_run(m, ds, o, &h, NULL, keep_logits, r, NULL, err);
    /* under MPI each rank kept its shard's rows: CKA needs all of them,
     * O(examples x d) per layer (never per position) */
    rc = sl_dist_allgather_f32(rc, r->pooled, o->first, o->count, r->d, err);
    for (int i = 0; i < m->c.n_layers; i++)
        rc = sl_dist_allgather_f32(rc, r->layers + (size_t)i * r->n * r->d, o->first, o->count, r->d, err);
    rc = sl_dist_allgather_f32(rc, r->logits, o->first, o->count, 1, err);
    sl_hooks_free(&h);
    return rc ? rc : check_finite(r, err);
}

int sl_compare(const sl_model *a, sl_dataset *da, const sl_model *b, sl_dataset *db, const sl_run_opts *oa,
               const sl_run_opts *ob, sl_compare_result *out, sl_error *err)
{
    const sl_run_opts *o = oa;
    if (ob->first != oa->first || ob->count != oa->count)
        return sl_fail(err, SL_ERUNTIME, "compare: the two models must run over the same examples");
    memset(out, 0, sizeof *out);
    long n = o->count;
    float *la = malloc((size_t)n * sizeof *la), *lb = malloc((size_t)n * sizeof *lb);
    float *ens = malloc((size_t)n * sizeof *ens);
    reps ra = {a, o->first, a->c.d_model, NULL, NULL, n, la, "model A"};
    reps rb = {b, o->first, b->c.d_model, NULL, NULL, n, lb, "model B"};
    ra.pooled = malloc((size_t)n * ra.d * sizeof(float));
    rb.pooled = malloc((size_t)n * rb.d * sizeof(float));
    ra.layers = malloc((size_t)a->c.n_layers * n * ra.d * sizeof(float));
    rb.layers = malloc((size_t)b->c.n_layers * n * rb.d * sizeof(float));
    out->cka_layers = malloc((size_t)a->c.n_layers * b->c.n_layers * sizeof *out->cka_layers);
    int rc = ra.pooled && rb.pooled && ra.layers && rb.layers && la && lb && ens && out->cka_layers
                 ? SL_OK
                 : sl_fail(err, SL_ERUNTIME, "out of memory for %ld examples' representations", n);
    if (!rc) rc = collect(&ra, da, o, err);
    if (!rc) rc = collect(&rb, db, ob, err);
    if (!rc) {
        const int32_t *y = da->labels + o->first;
        long same = 0, both_wrong = 0, either_wrong = 0;
        for (long i = 0; i < n; i++) {
            int pa = la[i] > 0, pb = lb[i] > 0, wa = pa != (y[i] == 1), wb = pb != (y[i] == 1);
            same += pa == pb;
            both_wrong += wa && wb;
            either_wrong += wa || wb;
            /* the mean of the two probabilities */
            ens[i] = (float)(0.5 / (1 + exp(-(double)la[i])) + 0.5 / (1 + exp(-(double)lb[i])));
        }
        out->n = n;
        out->auc_a = sl_auc(la, y, n);
        out->auc_b = sl_auc(lb, y, n);
        out->auc_ensemble = sl_auc(ens, y, n);
        out->pearson_r = sl_pearson(la, lb, n);
        out->spearman_rho = sl_spearman(la, lb, n);
        out->agreement = (double)same / n;
        out->error_overlap = either_wrong ? (double)both_wrong / either_wrong : NAN;
        out->cka_pooled = sl_linear_cka(ra.pooled, ra.d, rb.pooled, rb.d, n);
        out->layers_a = a->c.n_layers;
        out->layers_b = b->c.n_layers;
        for (int i = 0; i < out->layers_a; i++)
            for (int j = 0; j < out->layers_b; j++)
                out->cka_layers[i * out->layers_b + j] = sl_linear_cka(ra.layers + (size_t)i * n * ra.d, ra.d,
                                                                       rb.layers + (size_t)j * n * rb.d, rb.d, n);
    }
    free(ra.pooled);
    free(rb.pooled);
    free(ra.layers);
    free(rb.layers);
    free(la);
    free(lb);
    free(ens);
    return rc;
}

void sl_compare_free(sl_compare_result *r)
{
    free(r->cka_layers);
    memset(r, 0, sizeof *r);
}
