#include "probes/probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "core/rng.h"
#include "probes/linear.h"

/* A position is probed (site tokens) when its hash falls under the rate:
 * no list of positions is kept, and threads and batches see the same set. */
static int sampled(uint64_t seed, long example, int t, double rate)
{
    if (rate >= 1) return 1;
    sl_rng r = sl_rng_seed(seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(example + 1)) ^ ((uint64_t)t << 40));
    return (double)(sl_rng_next(&r) >> 11) * 0x1p-53 < rate;
}

typedef struct {
    const sl_model *m;
    const sl_probe_opts *po;
    int d, n_layers, pooling;
    const int *layer_slot; /* [n_layers of the model]: index into the probed layers or -1 */
    long first;
    long *row_of;          /* [count]: first row of each example */
    double rate;
    float *x;              /* [probed layers][rows][d] */
    long rows;
} capture;

/* The site's rows of one example, from one layer's residual stream. */
static int take_site(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    capture *c = user;
    int k = c->layer_slot[ev->point->layer];
    long e = ev->example - c->first, row = c->row_of[e];
    float *dst = c->x + ((size_t)k * c->rows + (size_t)row) * c->d;
    if (c->po->site == SITE_TOKENS) {
        for (int t = 0; t < ev->len; t++)
            if (sampled(c->po->seed, ev->example, t, c->rate)) {
                memcpy(dst, ev->data + (long)t * ev->ld, (size_t)c->d * sizeof *dst);
                dst += c->d;
            }
    } else if (c->po->site == SITE_LAST || c->pooling == POOL_LAST) {
        memcpy(dst, ev->data + (long)(ev->len - 1) * ev->ld, (size_t)c->d * sizeof *dst);
    } else if (c->pooling == POOL_CLS) {
        memcpy(dst, ev->data, (size_t)c->d * sizeof *dst);
    } else {
        for (int j = 0; j < c->d; j++) {
            double s = 0;
            for (int t = 0; t < ev->len; t++) s += ev->data[(long)t * ev->ld + j];
            dst[j] = (float)(s / ev->len);
        }
    }
    return SL_OK;
}

/* Rows of [rows, d] standardised with the training rows' mean and spread,
 * in liblinear's layout (d features, the bias, the end marker). */
static struct feature_node *to_nodes(const float *x, long rows, int d, const uint8_t *is_test)
{
    double *mean = calloc((size_t)d, sizeof *mean), *sd = calloc((size_t)d, sizeof *sd);
    struct feature_node *nodes = malloc((size_t)rows * (d + 2) * sizeof *nodes);
    if (!mean || !sd || !nodes) {
        free(mean);
        free(sd);
        free(nodes);
        return NULL;
    }
    long n = 0;
    for (long r = 0; r < rows; r++)
        if (!is_test[r]) {
            n++;
            for (int j = 0; j < d; j++) mean[j] += x[r * d + j];
        }
    for (int j = 0; j < d; j++) mean[j] /= n ? n : 1;
    for (long r = 0; r < rows; r++)
        if (!is_test[r])
            for (int j = 0; j < d; j++) sd[j] += (x[r * d + j] - mean[j]) * (x[r * d + j] - mean[j]);
    for (int j = 0; j < d; j++) sd[j] = n > 1 && sd[j] > 0 ? sqrt(sd[j] / (n - 1)) : 1;
    for (long r = 0; r < rows; r++) {
        struct feature_node *f = nodes + r * (d + 2);
        for (int j = 0; j < d; j++) f[j] = (struct feature_node){j + 1, (x[r * d + j] - mean[j]) / sd[j]};
        f[d] = (struct feature_node){d + 1, 1.0};
        f[d + 1] = (struct feature_node){-1, 0};
    }
    free(mean);
    free(sd);
    return nodes;
}

static int fit_one(const char *source, struct feature_node *nodes, long rows, int d, const uint8_t *is_test,
                   const int32_t *y, uint64_t seed, sl_logreg_result *res, double *balanced, sl_error *err)
{
    size_t row_bytes = (size_t)rows * sizeof(struct feature_node *), y_bytes = (size_t)rows * sizeof(double);
    sl_rows tr = {0, d, malloc(row_bytes), malloc(y_bytes), source};
    sl_rows te = {0, d, malloc(row_bytes), malloc(y_bytes), source};
    double *scores = malloc((size_t)rows * sizeof *scores);
    int rc = tr.row && tr.y && te.row && te.y && scores ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
    for (long r = 0; !rc && r < rows; r++) {
        sl_rows *s = is_test[r] ? &te : &tr;
        s->row[s->n] = nodes + r * (d + 2);
        s->y[s->n++] = y[r];
    }
    if (!rc && !te.n)
        rc = sl_fail(err, SL_EINPUT, "%s%sthe test split holds no probe rows", source ? source : "", source ? ": " : "");
    if (!rc) rc = sl_logreg(&tr, &te, seed, res, scores, err);
    if (!rc && balanced) {
        long tp = 0, p = 0, tn = 0, q = 0;
        for (long i = 0; i < te.n; i++) {
            if (te.y[i] == 1) { p++; tp += scores[i] > 0; }
            else { q++; tn += scores[i] <= 0; }
        }
        *balanced = p && q ? 0.5 * ((double)tp / p + (double)tn / q) : NAN;
    }
    free(tr.row);
    free(tr.y);
    free(te.row);
    free(te.y);
    free(scores);
    return rc;
}

int sl_probe(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const int *layers, int n_layers,
             const sl_probe_opts *po, sl_probe_row *rows_out, sl_error *err)
{
    int d = m->c.d_model, per_token = 0, L = ds->L;
    long n = o->count;
    int rc = strcmp(po->target, "label") ? sl_dataset_concept(ds, po->target, &per_token, err) : SL_OK;
    if (!rc && per_token && po->site == SITE_POOLED)
        rc = sl_fail(err, SL_EINPUT, "--target %s is per token: probe it with --site tokens or last", po->target);
    /* rows per example */
    long total_tokens = 0;
    for (long e = 0; e < n; e++) total_tokens += ds->lengths[o->first + e];
    double rate = po->site == SITE_TOKENS && total_tokens > po->max_tokens ? (double)po->max_tokens / total_tokens : 1;
    long *row_of = malloc((size_t)(n + 1) * sizeof *row_of);
    int *slot = malloc((size_t)m->c.n_layers * sizeof *slot);
    uint8_t *test_ex = malloc((size_t)n);
    if (!rc && (!row_of || !slot || !test_ex)) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    long rows = 0;
    for (long e = 0; !rc && e < n; e++) {
        row_of[e] = rows;
        if (po->site != SITE_TOKENS) rows++;
        else
            for (int t = 0; t < ds->lengths[o->first + e]; t++) rows += sampled(po->seed, o->first + e, t, rate);
    }
    if (!rc) row_of[n] = rows;
    for (int i = 0; !rc && i < m->c.n_layers; i++) slot[i] = -1;
    for (int k = 0; !rc && k < n_layers; k++) slot[layers[k]] = k;
    capture c = {m, po, d, n_layers, m->c.pooling, slot, o->first, row_of, rate, NULL, rows};
    c.x = rc ? NULL : malloc((size_t)n_layers * rows * d * sizeof *c.x);
    int32_t *y = rc ? NULL : malloc((size_t)(rows ? rows : 1) * sizeof *y);
    int32_t *ctl = rc ? NULL : malloc((size_t)(rows ? rows : 1) * sizeof *ctl);
    uint8_t *is_test = rc ? NULL : malloc((size_t)(rows ? rows : 1));
    if (!rc && (!c.x || !y || !ctl || !is_test)) rc = sl_fail(err, SL_ERUNTIME, "out of memory for %ld probe rows", rows);
    sl_hooks hooks = {0};
    if (!rc) rc = sl_hooks_init(&hooks, m->n_points, err);
    for (int k = 0; !rc && k < n_layers; k++) rc = sl_hooks_add(&hooks, sl_model_point(m, HK_RESID_POST, layers[k]), take_site, &c, err);
    if (!rc) rc = sl_run(m, ds, o, &hooks, NULL, NULL, NULL, NULL, err);
    sl_hooks_free(&hooks);
    /* liblinear never converges on a NaN feature: it spins */
    for (int k = 0; !rc && k < n_layers; k++) {
        size_t bad = sl_count_nonfinite(c.x + (size_t)k * rows * d, (size_t)rows * d);
        if (bad)
            rc = sl_fail(err, SL_ERUNTIME,
                         "layer %d (%s): %zu of %zu activation values at the probe's site are NaN or infinite "
                         "(non-finite weights, or activations that overflow): no probe can be fitted",
                         layers[k], m->points[sl_model_point(m, HK_RESID_POST, layers[k])].name, bad,
                         (size_t)rows * d);
    }

    /* targets, controls and the split, row by row; the control gives every
     * token id one random label drawn from the target's own distribution */
    int32_t *tok = rc ? NULL : malloc((size_t)L * sizeof *tok), *conc = rc ? NULL : malloc((size_t)L * sizeof *conc);
    if (!rc && (!tok || !conc)) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    if (!rc) sl_split(ds->split ? ds->split + o->first : NULL, n, po->seed, test_ex);
    for (long e = 0; !rc && e < n; e++) {
        long ex = o->first + e, r = row_of[e];
        int len = ds->lengths[ex];
        rc = sl_dataset_read_tokens(ds, ex, 1, tok, err);
        if (!rc && strcmp(po->target, "label")) rc = sl_dataset_read_concept(ds, po->target, ex, 1, conc, err);
        for (int t = 0; !rc && t < len; t++) {
            int site_t = po->site == SITE_TOKENS ? t : len - 1;
            if (po->site == SITE_TOKENS && !sampled(po->seed, ex, t, rate)) continue;
            y[r] = !strcmp(po->target, "label") ? ds->labels[ex] : conc[per_token ? site_t : 0];
            ctl[r] = tok[site_t]; /* the token type; mapped to its control label below */
            is_test[r++] = test_ex[e];
            if (po->site != SITE_TOKENS) break;
        }
    }
    long pos = 0;
    for (long r = 0; !rc && r < rows; r++) {
        if (y[r] != 0 && y[r] != 1)
            rc = sl_fail(err, SL_EINPUT, "%s: --target %s holds %d; probes take binary targets (0/1)", ds->path, po->target, y[r]);
        pos += y[r];
    }
    double p1 = rows ? (double)pos / rows : 0;
    for (long r = 0; !rc && r < rows; r++) {
        sl_rng g = sl_rng_seed(po->seed ^ 0x5851f42d4c957f2dull ^ (uint64_t)ctl[r] * 0x2545f4914f6cdd1dull);
        ctl[r] = (double)(sl_rng_next(&g) >> 11) * 0x1p-53 < p1;
    }
    for (int k = 0; !rc && k < n_layers; k++) {
        sl_probe_row *row = &rows_out[k];
        memset(row, 0, sizeof *row);
        row->layer = layers[k];
        long te = 0, te_pos = 0;
        for (long r = 0; r < rows; r++) {
            te += is_test[r];
            te_pos += is_test[r] && y[r] == 1;
        }
        row->n_test = te;
        row->n_train = rows - te;
        row->majority_baseline = te ? (double)(te_pos > te - te_pos ? te_pos : te - te_pos) / te : NAN;
        struct feature_node *nodes = to_nodes(c.x + (size_t)k * rows * d, rows, d, is_test);
        if (!nodes) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
        sl_logreg_result res, ctl_res;
        if (!rc) rc = fit_one(ds->path, nodes, rows, d, is_test, y, po->seed, &res, &row->balanced_accuracy, err);
        /* a control that came out one class in training is best predicted by that class */
        long ctl_tr = 0, ctl_tr_pos = 0, ctl_te_hit = 0;
        for (long r = 0; r < rows; r++)
            if (!is_test[r]) {
                ctl_tr++;
                ctl_tr_pos += ctl[r];
            }
        int ctl_const = ctl_tr_pos == 0 || ctl_tr_pos == ctl_tr;
        for (long r = 0; ctl_const && r < rows; r++) ctl_te_hit += is_test[r] && ctl[r] == (ctl_tr_pos > 0);
        if (!rc && !ctl_const) rc = fit_one(ds->path, nodes, rows, d, is_test, ctl, po->seed, &ctl_res, NULL, err);
        if (!rc && ctl_const) ctl_res.test_accuracy = te ? (double)ctl_te_hit / te : NAN;
        if (!rc) {
            row->test_accuracy = res.test_accuracy;
            row->test_auc = res.test_auc;
            row->C = res.C;
            row->control_accuracy = ctl_res.test_accuracy;
            row->selectivity = row->test_accuracy - row->control_accuracy;
        }
        free(nodes);
    }
    free(row_of);
    free(slot);
    free(test_ex);
    free(c.x);
    free(y);
    free(ctl);
    free(is_test);
    free(tok);
    free(conc);
    return rc;
}
