#include "ablation/component.h"

#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"

const char *const SL_COMPONENT_NAMES[SL_COMP_COUNT] = {"conv", "ssm", "gate", "attn", "mlp"};

int sl_component_valid(const sl_model *m, int component)
{
    return m->c.arch == ARCH_MAMBA ? component <= SL_COMP_GATE : component >= SL_COMP_ATTN;
}

typedef struct comp_job comp_job;

/* One row's intervention: the switches or the write hook it installs. */
typedef struct {
    comp_job *job;
    int row, component, layer;
    sl_hooks hooks;
    unsigned *off; /* [n_layers] for Mamba rows */
} comp_row;

struct comp_job {
    const sl_model *m;
    int L, d, nl, n, mode, batch;
    const int *components, *layers;
    comp_row *rows;
    float *cache;      /* [slot][n_layers][L][d]: each block's input */
    float *out;        /* [row][slot] ablated logits of the running batch */
    float *ablated;    /* [row][count] */
    long first, count;
    double *slot_sums; /* [slot][row][d]: the mean pass, per example */
    double *sums;      /* [row][d] */
    float *mean;       /* [row][d] */
    long positions;
    const sl_hooks *cache_hooks;
};

static float *slot_cache(const comp_job *j, int slot, int layer)
{
    return j->cache + (((size_t)slot * j->nl + layer) * j->L) * j->d;
}

static int keep_residual(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    comp_job *j = user;
    memcpy(slot_cache(j, ev->slot, ev->point->layer), ev->data, (size_t)ev->len * j->d * sizeof(float));
    return SL_OK;
}

/* attn.out or mlp.out replaced by zeros or the mean over the data. */
static int write_output(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    const comp_row *r = user;
    const comp_job *j = r->job;
    for (int t = 0; t < ev->rows; t++) {
        float *row = ev->data + (long)t * ev->ld;
        if (j->mode == COMP_MEAN) memcpy(row, j->mean + (long)r->row * j->d, (size_t)j->d * sizeof *row);
        else memset(row, 0, (size_t)j->d * sizeof *row);
    }
    return SL_OK;
}

/* The mean pass: each example's sum over its valid positions, per row. */
static int sum_output(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    const comp_row *r = user;
    const comp_job *j = r->job;
    double *s = j->slot_sums + ((size_t)ev->slot * j->n + r->row) * j->d;
    for (int t = 0; t < ev->len; t++)
        for (int k = 0; k < j->d; k++) s[k] += ev->data[(long)t * ev->ld + k];
    return SL_OK;
}

/* Per-example sums added in example order, so that threads change nothing. */
static int add_sums(void *user, sl_batch *b, sl_error *err)
{
    (void)err;
    comp_job *j = user;
    for (int e = 0; e < b->count; e++) {
        j->positions += b->lengths[e];
        double *s = j->slot_sums + (size_t)e * j->n * j->d;
        for (long k = 0; k < (long)j->n * j->d; k++) j->sums[k] += s[k];
        memset(s, 0, (size_t)j->n * j->d * sizeof *s);
    }
    return SL_OK;
}

static int ablate_example(void *user, int thread, const sl_example *ex, sl_workspace *ws, float *logit, sl_error *err)
{
    (void)thread;
    comp_job *j = user;
    int rc = sl_forward(j->m, ex, ws, j->cache_hooks, logit, err);
    float *h = sl_workspace_residual(ws);
    for (int k = 0; !rc && k < j->n; k++) {
        int i = j->layers[k];
        memcpy(h, slot_cache(j, ex->slot, i), (size_t)ex->len * j->d * sizeof *h);
        rc = sl_forward_from(j->m, ex, ws, &j->rows[k].hooks, i, &j->out[(long)k * j->batch + ex->slot], err);
    }
    return rc;
}

static int collect(void *user, sl_batch *b, sl_error *err)
{
    (void)err;
    comp_job *j = user;
    for (int k = 0; k < j->n; k++)
        for (int e = 0; e < b->count; e++)
            j->ablated[(long)k * j->count + (b->first - j->first) + e] = j->out[(long)k * j->batch + e];
    return SL_OK;
}

static int output_point(const sl_model *m, const comp_row *r)
{
    return sl_model_point(m, r->component == SL_COMP_ATTN ? HK_ATTN_OUT : HK_MLP_OUT, r->layer);
}

/* Installs each row's intervention; sum = 1 gives the mean pass's hooks. */
static int row_hooks(comp_job *j, sl_hooks *all, int sum, sl_error *err)
{
    int rc = sl_hooks_init(all, j->m->n_points, err);
    for (int k = 0; !rc && k < j->n; k++) {
        comp_row *r = &j->rows[k];
        if (r->component >= SL_COMP_ATTN) {
            if (sum) rc = sl_hooks_add(all, output_point(j->m, r), sum_output, r, err);
            else {
                rc = sl_hooks_init(&r->hooks, j->m->n_points, err);
                if (!rc) rc = sl_hooks_add(&r->hooks, output_point(j->m, r), write_output, r, err);
            }
        } else if (!sum) {
            rc = sl_hooks_init(&r->hooks, j->m->n_points, err);
            if (!rc && !(r->off = calloc((size_t)j->nl, sizeof *r->off))) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
            if (!rc) {
                r->off[r->layer] = r->component == SL_COMP_CONV ? SL_OFF_CONV
                                   : r->component == SL_COMP_SSM ? SL_OFF_SSM
                                                                 : SL_OFF_GATE;
                r->hooks.mamba_off = r->off;
            }
        }
    }
    return rc;
}

int sl_ablate_components(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const int *components,
                         const int *layers, int n, int mode, int bootstrap, uint64_t seed, sl_ablation_result *out,
                         float *logits, sl_error *err)
{
    memset(out, 0, sizeof *out);
    int d = m->c.d_model, nl = m->c.n_layers, B = o->batch > 0 ? o->batch : 1;
    if (B > o->count) B = (int)o->count;
    comp_job j = {.m = m, .L = ds->L, .d = d, .nl = nl, .n = n, .mode = mode, .batch = B, .components = components,
                  .layers = layers, .first = o->first, .count = o->count};
    for (int k = 0; k < n; k++)
        if (!sl_component_valid(m, components[k]) || layers[k] < 0 || layers[k] >= nl)
            return sl_fail(err, SL_EINPUT, "a %s has no component '%s' at layer %d", sl_arch_name(m->c.arch),
                           components[k] >= 0 && components[k] < SL_COMP_COUNT ? SL_COMPONENT_NAMES[components[k]] : "?",
                           layers[k]);
    sl_hooks cache = {0}, sums = {0};
    float *base = malloc((size_t)o->count * sizeof *base);
    j.rows = calloc((size_t)(n ? n : 1), sizeof *j.rows);
    j.cache = malloc((size_t)B * nl * ds->L * d * sizeof *j.cache);
    j.out = malloc((size_t)(n ? n : 1) * B * sizeof *j.out);
    j.ablated = malloc((size_t)(n ? n : 1) * o->count * sizeof *j.ablated);
    j.slot_sums = calloc((size_t)B * (n ? n : 1) * d, sizeof *j.slot_sums);
    j.sums = calloc((size_t)(n ? n : 1) * d, sizeof *j.sums);
    j.mean = calloc((size_t)(n ? n : 1) * d, sizeof *j.mean);
    out->rows = calloc((size_t)(n ? n : 1), sizeof *out->rows);
    int rc = base && j.rows && j.cache && j.out && j.ablated && j.slot_sums && j.sums && j.mean && out->rows
                 ? SL_OK
                 : sl_fail(err, SL_ERUNTIME, "out of memory for a residual cache of %d x %d x %d x %d floats", B, nl,
                           ds->L, d);
    for (int k = 0; !rc && k < n; k++) j.rows[k] = (comp_row){.job = &j, .row = k, .component = components[k], .layer = layers[k]};
    rc = rc ? rc : sl_hooks_init(&cache, m->n_points, err);
    for (int i = 0; !rc && i < nl; i++) rc = sl_hooks_add(&cache, sl_model_point(m, HK_RESID_PRE, i), keep_residual, &j, err);
    j.cache_hooks = &cache;
    if (!rc && mode == COMP_MEAN) {
        rc = row_hooks(&j, &sums, 1, err);
        if (!rc) rc = sl_run(m, ds, o, &sums, NULL, add_sums, &j, NULL, err);
        for (long k = 0; !rc && k < (long)n * d; k++) j.mean[k] = (float)(j.sums[k] / (double)j.positions);
    }
    sl_hooks unused = {0};
    if (!rc) rc = row_hooks(&j, &unused, 0, err);
    sl_hooks_free(&unused);
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
        row->component = components[k];
        row->masked_fraction = 1.0;
        rc = sl_ablation_score(base, j.ablated + (long)k * o->count, labels, o->count, bootstrap, seed, row, err);
        if (!rc) out->n_rows++;
    }
    if (!rc && logits) memcpy(logits, j.ablated, (size_t)n * o->count * sizeof *logits);
    for (int k = 0; j.rows && k < n; k++) {
        sl_hooks_free(&j.rows[k].hooks);
        free(j.rows[k].off);
    }
    sl_hooks_free(&cache);
    sl_hooks_free(&sums);
    free(base);
    free(j.rows);
    free(j.cache);
    free(j.out);
    free(j.ablated);
    free(j.slot_sums);
    free(j.sums);
    free(j.mean);
    return rc;
}
