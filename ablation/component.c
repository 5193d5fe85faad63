#include "ablation/component.h"

#include <stdlib.h>
#include <string.h>

#include "ablation/variants.h"
#include "core/metrics.h"

int sl_component_valid(const sl_model *m, int component) { return sl_model_component(m, component) != NULL; }

typedef struct comp_job comp_job;

/* One row's intervention: the switches or the write hook it installs. */
typedef struct {
    comp_job *job;
    const sl_component *what;
    int row, layer;
    sl_hooks hooks;
    unsigned *off; /* [n_layers] for a switch */
} comp_row;

struct comp_job {
    const sl_model *m;
    int d, nl, n, mode;
    comp_row *rows;
    sl_ordered_sums sums; /* [row][d]: the mean pass */
    float *mean;          /* [row][d] */
};

/* The component's output replaced by zeros or the mean over the data. */
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
    double *s = sl_ordered_sums_at(&j->sums, ev->slot) + (size_t)r->row * j->d;
    for (int t = 0; t < ev->len; t++)
        for (int k = 0; k < j->d; k++) s[k] += ev->data[(long)t * ev->ld + k];
    return SL_OK;
}

static int output_point(const sl_model *m, const comp_row *r) { return sl_model_point(m, r->what->output_kind, r->layer); }

/* Installs each row's intervention; sum = 1 gives the mean pass's hooks. */
static int row_hooks(comp_job *j, sl_hooks *all, int sum, sl_error *err)
{
    int rc = sl_hooks_init(all, j->m->n_points, err);
    for (int k = 0; !rc && k < j->n; k++) {
        comp_row *r = &j->rows[k];
        if (r->what->output_kind >= 0) {
            if (sum) rc = sl_hooks_add(all, output_point(j->m, r), sum_output, r, err);
            else {
                rc = sl_hooks_init(&r->hooks, j->m->n_points, err);
                if (!rc) rc = sl_hooks_add(&r->hooks, output_point(j->m, r), write_output, r, err);
            }
        } else if (!sum) {
            rc = sl_hooks_init(&r->hooks, j->m->n_points, err);
            if (!rc && !(r->off = calloc((size_t)j->nl, sizeof *r->off))) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
            if (!rc) {
                r->off[r->layer] = r->what->knockout;
                r->hooks.knockout = r->off;
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
    comp_job j = {.m = m, .d = d, .nl = nl, .n = n, .mode = mode};
    for (int k = 0; k < n; k++)
        if (!sl_component_valid(m, components[k]) || layers[k] < 0 || layers[k] >= nl)
            return sl_fail(err, SL_EINPUT, "a %s has no component '%s' at layer %d", sl_arch_name(m->c.arch),
                           components[k] >= 0 && components[k] < SL_COMP_COUNT ? SL_COMPONENT_NAMES[components[k]] : "?",
                           layers[k]);
    sl_hooks sums = {0}, unused = {0};
    float *base = malloc((size_t)o->count * sizeof *base);
    float *ablated = malloc((size_t)(n ? n : 1) * o->count * sizeof *ablated);
    sl_variant *v = calloc((size_t)(n ? n : 1), sizeof *v);
    j.rows = calloc((size_t)(n ? n : 1), sizeof *j.rows);
    j.mean = calloc((size_t)(n ? n : 1) * d, sizeof *j.mean);
    out->rows = calloc((size_t)(n ? n : 1), sizeof *out->rows);
    int rc = base && ablated && v && j.rows && j.mean && out->rows ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
    if (!rc && mode == COMP_MEAN) rc = sl_ordered_sums_init(&j.sums, B, (long)n * d, err);
    for (int k = 0; !rc && k < n; k++)
        j.rows[k] = (comp_row){.job = &j, .row = k, .what = sl_model_component(m, components[k]), .layer = layers[k]};
    if (!rc && mode == COMP_MEAN) {
        rc = row_hooks(&j, &sums, 1, err);
        if (!rc) rc = sl_run(m, ds, o, &sums, NULL, sl_ordered_sums_add, &j.sums, NULL, err);
        rc = sl_ordered_sums_finish(rc, &j.sums, err);
        if (!rc) sl_ordered_sums_mean(&j.sums, j.mean);
    }
    if (!rc) rc = row_hooks(&j, &unused, 0, err);
    /* a component of block i: block i runs again from its input */
    for (int k = 0; !rc && k < n; k++) v[k] = (sl_variant){layers[k], layers[k], &j.rows[k].hooks, NULL, NULL, 0};
    if (!rc) rc = sl_run_variants(m, ds, o, v, n, NULL, NULL, base, ablated, err);
    if (!rc)
        rc = sl_ablation_score_rows(base, ablated, ds->labels + o->first, o->count, layers, components, n, bootstrap,
                                    seed, out, err);
    if (!rc && logits) memcpy(logits, ablated, (size_t)n * o->count * sizeof *logits);
    for (int k = 0; j.rows && k < n; k++) {
        sl_hooks_free(&j.rows[k].hooks);
        free(j.rows[k].off);
    }
    sl_hooks_free(&sums);
    sl_hooks_free(&unused);
    free(base);
    free(ablated);
    free(v);
    free(j.rows);
    sl_ordered_sums_free(&j.sums);
    free(j.mean);
    return rc;
}
