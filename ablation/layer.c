#include "ablation/layer.h"

#include <stdlib.h>
#include <string.h>

#include "ablation/variants.h"
#include "core/metrics.h"

/* The mean pass: each block's write (resid_post - resid_pre) summed over
 * the valid positions of the data. */
typedef struct {
    int d, nl;
    float *pre; /* [slot][L][d]: the running block's input */
    int L;
    sl_ordered_sums sums; /* [n_layers][d] per example */
    float *mean;          /* [n_layers][d] */
    const int *layers;
} mean_job;

static int keep_input(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    mean_job *j = user;
    memcpy(j->pre + (size_t)ev->slot * j->L * j->d, ev->data, (size_t)ev->len * j->d * sizeof(float));
    return SL_OK;
}

static int add_write(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    mean_job *j = user;
    const float *pre = j->pre + (size_t)ev->slot * j->L * j->d;
    double *s = sl_ordered_sums_at(&j->sums, ev->slot) + (size_t)ev->point->layer * j->d;
    for (int t = 0; t < ev->len; t++)
        for (int k = 0; k < j->d; k++) s[k] += (double)ev->data[(long)t * ev->ld + k] - pre[(long)t * j->d + k];
    return SL_OK;
}

static int mean_writes(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, mean_job *j, sl_error *err)
{
    int B = o->batch > 0 ? o->batch : 1;
    sl_hooks h;
    j->pre = malloc((size_t)B * ds->L * j->d * sizeof *j->pre);
    int rc = sl_ordered_sums_init(&j->sums, B, (long)j->nl * j->d, err);
    if (!rc && !j->pre) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    if (!rc) rc = sl_hooks_init(&h, m->n_points, err);
    for (int i = 0; !rc && i < j->nl; i++) {
        rc = sl_hooks_add(&h, sl_model_point(m, HK_RESID_PRE, i), keep_input, j, err);
        if (!rc) rc = sl_hooks_add(&h, sl_model_point(m, HK_RESID_POST, i), add_write, j, err);
    }
    if (!rc) rc = sl_run(m, ds, o, &h, NULL, sl_ordered_sums_add, &j->sums, NULL, err);
    rc = sl_ordered_sums_finish(rc, &j->sums, err);
    if (!rc) sl_ordered_sums_mean(&j->sums, j->mean);
    sl_hooks_free(&h);
    free(j->pre);
    sl_ordered_sums_free(&j->sums);
    return rc;
}

/* Mean mode: the block's mean write added to its input. */
static void add_mean(void *user, int variant, int slot, float *h, int len)
{
    (void)slot;
    const mean_job *j = user;
    const float *w = j->mean + (long)j->layers[variant] * j->d;
    for (int t = 0; t < len; t++)
        for (int c = 0; c < j->d; c++) h[(long)t * j->d + c] += w[c];
}

int sl_ablate_layers(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const int *layers, int n, int mode,
                     int bootstrap, uint64_t seed, sl_ablation_result *out, float *logits, sl_error *err)
{
    memset(out, 0, sizeof *out);
    int d = m->c.d_model, nl = m->c.n_layers;
    mean_job mj = {.d = d, .nl = nl, .L = ds->L, .layers = layers};
    float *base = malloc((size_t)o->count * sizeof *base);
    float *ablated = malloc((size_t)(n ? n : 1) * o->count * sizeof *ablated);
    sl_variant *v = calloc((size_t)(n ? n : 1), sizeof *v);
    mj.mean = calloc((size_t)nl * d, sizeof *mj.mean);
    out->rows = calloc((size_t)(n ? n : 1), sizeof *out->rows);
    int rc = base && ablated && v && mj.mean && out->rows ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
    /* skipping block i: its input goes straight to block i + 1 */
    for (int k = 0; !rc && k < n; k++) v[k] = (sl_variant){layers[k], layers[k] + 1, NULL, NULL, NULL, 0};
    if (!rc && mode == LAYER_MEAN) rc = mean_writes(m, ds, o, &mj, err);
    if (!rc)
        rc = sl_run_variants(m, ds, o, v, n, mode == LAYER_MEAN ? add_mean : NULL, &mj, base, ablated, err);
    if (!rc)
        rc = sl_ablation_score_rows(base, ablated, ds->labels + o->first, o->count, layers, NULL, n, bootstrap, seed,
                                    out, err);
    if (!rc && logits) memcpy(logits, ablated, (size_t)n * o->count * sizeof *logits);
    free(base);
    free(ablated);
    free(v);
    free(mj.mean);
    return rc;
}
