#include "ablation/layer.h"

#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"

typedef struct {
    const sl_model *m;
    int L, d, nl;
    float *cache;     /* [batch slot][n_layers + 1][L][d]: the input of each block, then the last output */
    const int *layers;
    int n, mode;
    const float *mean_write; /* [n_layers][d] */
    float *out;              /* [n][batch slot] ablated logits */
    double *sums;            /* [n_layers][d]: the mean pass */
    long positions;
    float *ablated;          /* [n][count] */
    long first, count;       /* the selected examples */
    int batch;
    const sl_hooks *hooks;   /* keep_residual at every resid_pre and the last resid_post */
} layer_job;

static float *slot_cache(const layer_job *j, int slot, int layer)
{
    return j->cache + (((size_t)slot * (j->nl + 1) + layer) * j->L) * j->d;
}

/* Keeps each block's input, and the last block's output, per example. */
static int keep_residual(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    layer_job *j = user;
    int layer = ev->point->kind == HK_RESID_PRE ? ev->point->layer : j->nl;
    memcpy(slot_cache(j, ev->slot, layer), ev->data, (size_t)ev->len * j->d * sizeof(float));
    return SL_OK;
}

/* The mean pass: sums of each block's write over valid positions, added in
 * example order on the calling thread, so that threads change nothing. */
static int add_writes(void *user, sl_batch *b, sl_error *err)
{
    (void)err;
    layer_job *j = user;
    for (int e = 0; e < b->count; e++) {
        int len = b->lengths[e];
        j->positions += len;
        for (int i = 0; i < j->nl; i++) {
            const float *pre = slot_cache(j, e, i), *post = slot_cache(j, e, i + 1);
            double *s = j->sums + (long)i * j->d;
            for (int t = 0; t < len; t++)
                for (int k = 0; k < j->d; k++) s[k] += (double)post[(long)t * j->d + k] - pre[(long)t * j->d + k];
        }
    }
    return SL_OK;
}

/* The baseline forward fills the cache through the hooks; each ablated
 * layer i then restarts at layer i + 1 from resid_pre(i), plus the mean
 * write in mean mode: the layers below i are never run twice. */
static int ablate_example(void *user, int thread, const sl_example *ex, sl_workspace *ws, float *logit, sl_error *err)
{
    (void)thread;
    layer_job *j = user;
    int rc = sl_forward(j->m, ex, ws, j->hooks, logit, err);
    float *h = sl_workspace_residual(ws);
    for (int k = 0; !rc && k < j->n; k++) {
        int i = j->layers[k];
        memcpy(h, slot_cache(j, ex->slot, i), (size_t)ex->len * j->d * sizeof *h);
        if (j->mode == LAYER_MEAN)
            for (int t = 0; t < ex->len; t++)
                for (int c = 0; c < j->d; c++) h[(long)t * j->d + c] += j->mean_write[(long)i * j->d + c];
        rc = sl_forward_from(j->m, ex, ws, NULL, i + 1, &j->out[(long)k * j->batch + ex->slot], err);
    }
    return rc;
}

static int collect(void *user, sl_batch *b, sl_error *err)
{
    (void)err;
    layer_job *j = user;
    for (int k = 0; k < j->n; k++)
        for (int e = 0; e < b->count; e++)
            j->ablated[(long)k * j->count + (b->first - j->first) + e] = j->out[(long)k * j->batch + e];
    return SL_OK;
}

static int cache_hooks(const sl_model *m, sl_hooks *h, layer_job *j, sl_error *err)
{
    int rc = sl_hooks_init(h, m->n_points, err);
    for (int i = 0; !rc && i < m->c.n_layers; i++)
        rc = sl_hooks_add(h, sl_model_point(m, HK_RESID_PRE, i), keep_residual, j, err);
    if (!rc) rc = sl_hooks_add(h, sl_model_point(m, HK_RESID_POST, m->c.n_layers - 1), keep_residual, j, err);
    return rc;
}

int sl_ablate_layers(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const int *layers, int n, int mode,
                     int bootstrap, uint64_t seed, sl_ablation_result *out, float *logits, sl_error *err)
{
    memset(out, 0, sizeof *out);
    int d = m->c.d_model, nl = m->c.n_layers, B = o->batch > 0 ? o->batch : 1;
    if (B > o->count) B = (int)o->count;
    layer_job j = {m, ds->L, d, nl, NULL, layers, n, mode, NULL, NULL, NULL, 0, NULL, o->first, o->count, B, NULL};
    sl_hooks hooks = {0};
    float *base = malloc((size_t)o->count * sizeof *base), *mean = calloc((size_t)nl * d, sizeof *mean);
    j.cache = malloc((size_t)B * (nl + 1) * ds->L * d * sizeof *j.cache);
    j.out = malloc((size_t)(n ? n : 1) * B * sizeof *j.out);
    j.ablated = malloc((size_t)(n ? n : 1) * o->count * sizeof *j.ablated);
    j.sums = calloc((size_t)nl * d, sizeof *j.sums);
    out->rows = calloc((size_t)(n ? n : 1), sizeof *out->rows);
    int rc = base && mean && j.cache && j.out && j.ablated && j.sums && out->rows
                 ? SL_OK
                 : sl_fail(err, SL_ERUNTIME, "out of memory for a residual cache of %d x %d x %d x %d floats", B, nl + 1,
                           ds->L, d);
    if (!rc) rc = cache_hooks(m, &hooks, &j, err);
    j.hooks = &hooks;
    if (!rc && mode == LAYER_MEAN) {
        /* one pass over the data for the mean write of every block */
        rc = sl_run(m, ds, o, &hooks, NULL, add_writes, &j, NULL, err);
        for (long k = 0; !rc && k < (long)nl * d; k++) mean[k] = (float)(j.sums[k] / (double)j.positions);
        j.mean_write = mean;
    }
    if (!rc) rc = sl_run_each(m, ds, o, NULL, NULL, collect, &j, ablate_example, &j, base, err);
    const int32_t *labels = ds->labels + o->first;
    if (!rc) {
        out->n = o->count;
        out->baseline_auc = sl_auc(base, labels, o->count);
    }
    for (int k = 0; !rc && k < n; k++) {
        sl_ablation_row *row = &out->rows[k];
        row->family = -1;
        row->layer = layers[k];
        row->component = -1;
        row->masked_fraction = 1.0;
        rc = sl_ablation_score(base, j.ablated + (long)k * o->count, labels, o->count, bootstrap, seed, row, err);
        if (!rc) out->n_rows++;
    }
    if (!rc && logits) memcpy(logits, j.ablated, (size_t)n * o->count * sizeof *logits);
    sl_hooks_free(&hooks);
    free(base);
    free(mean);
    free(j.cache);
    free(j.out);
    free(j.ablated);
    free(j.sums);
    return rc;
}
