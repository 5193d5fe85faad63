#include "ablation/variants.h"

#include "cuda/device_model.h"

#include <stdlib.h>
#include <string.h>

#include "core/dist.h"

typedef struct {
    const sl_model *m;
    const sl_variant *v;
    int n, L, d, nl, batch;
    sl_variant_edit edit;
    void *user;
    float *cache; /* [batch slot][n_layers + 1][L][d] */
    float *out;   /* [variant][batch slot] */
    float *logits;
    long first, count;
    sl_hooks keep;
    struct sl_dev_model *dev;
} variant_job;

static float *slot_cache(const variant_job *j, int slot, int r)
{
    return j->cache + (((size_t)slot * (j->nl + 1) + r) * j->L) * j->d;
}

static int keep_residual(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    variant_job *j = user;
    int r = ev->point->kind == HK_RESID_PRE ? ev->point->layer : j->nl;
    memcpy(slot_cache(j, ev->slot, r), ev->data, (size_t)ev->len * j->d * sizeof(float));
    return SL_OK;
}

static int run_example(void *user, int thread, const sl_example *ex, sl_workspace *ws, float *logit, sl_error *err)
{
    (void)thread;
    variant_job *j = user;
    int rc = sl_forward(j->m, ex, ws, &j->keep, logit, err);
    float *h = sl_workspace_residual(ws);
    for (int k = 0; !rc && k < j->n; k++) {
        memcpy(h, slot_cache(j, ex->slot, j->v[k].restore), (size_t)ex->len * j->d * sizeof *h);
        if (j->edit) j->edit(j->user, k, ex->slot, h, ex->len);
        rc = sl_forward_from(j->m, ex, ws, j->v[k].hooks, j->v[k].start, &j->out[(long)k * j->batch + ex->slot], err);
    }
    return rc;
}

/* Batch results in example order on the calling thread. */
static int collect(void *user, sl_batch *b, sl_error *err)
{
    (void)err;
    variant_job *j = user;
    for (int k = 0; k < j->n; k++)
        for (int e = 0; e < b->count; e++)
            j->logits[(long)k * j->count + (b->first - j->first) + e] = j->out[(long)k * j->batch + e];
    return SL_OK;
}

/* A whole batch on the device: the kept residuals stay there. */
static int device_batch(void *user, sl_batch *b, sl_error *err)
{
    variant_job *j = user;
    return sl_dev_forward_variants(j->dev, b->count, b->L, b->tokens, b->keep, b->lengths, b->first, j->v, j->n,
                                   j->edit, j->user, b->logits, j->out, j->batch, err);
}

static int run_on_device(variant_job *j, sl_dataset *ds, const sl_run_opts *o, float *base, sl_error *err)
{
    sl_run_opts d = *o;
    if (d.batch > sl_dev_model_max_batch(o->dev)) d.batch = sl_dev_model_max_batch(o->dev);
    if (d.batch > o->count) d.batch = (int)o->count;
    j->batch = d.batch > 0 ? d.batch : 1;
    j->dev = o->dev;
    j->out = malloc((size_t)(j->n ? j->n : 1) * j->batch * sizeof *j->out);
    int rc = j->out ? sl_run_batches(ds, &d, NULL, device_batch, j, collect, j, base, err)
                    : sl_fail(err, SL_ERUNTIME, "out of memory");
    free(j->out);
    j->out = NULL;
    return rc;
}

int sl_run_variants(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const sl_variant *v, int n,
                    sl_variant_edit edit, void *user, float *base, float *logits, sl_error *err)
{
    int nl = m->c.n_layers, B = o->batch > 0 ? o->batch : 1;
    if (B > o->count) B = (int)o->count;
    variant_job j = {m, v, n, ds->L, m->c.d_model, nl, B, edit, user, NULL, NULL, logits, o->first, o->count, {0}, NULL};
    int rc = SL_OK;
    if (o->dev) {
        rc = sl_dev_model_check(o->dev, m, err);
        if (!rc) rc = run_on_device(&j, ds, o, base, err);
    } else {
        j.cache = malloc((size_t)B * (nl + 1) * ds->L * j.d * sizeof *j.cache);
        j.out = malloc((size_t)(n ? n : 1) * B * sizeof *j.out);
        rc = j.cache && j.out ? SL_OK
                              : sl_fail(err, SL_ERUNTIME, "out of memory for a residual cache of %d x %d x %d x %d floats",
                                        B, nl + 1, ds->L, j.d);
        if (!rc) rc = sl_hooks_init(&j.keep, m->n_points, err);
        for (int i = 0; !rc && i < nl; i++)
            rc = sl_hooks_add(&j.keep, sl_model_point(m, HK_RESID_PRE, i), keep_residual, &j, err);
        if (!rc) rc = sl_hooks_add(&j.keep, sl_model_point(m, HK_RESID_POST, nl - 1), keep_residual, &j, err);
        if (!rc) rc = sl_run_each(m, ds, o, NULL, NULL, collect, &j, run_example, &j, base, err);
    }
    /* under MPI each rank filled its shard's columns of every variant */
    for (int k = 0; k < n; k++) rc = sl_dist_allgather_f32(rc, logits + (long)k * o->count, o->first, o->count, 1, err);
    sl_hooks_free(&j.keep);
    free(j.cache);
    free(j.out);
    return rc;
}
