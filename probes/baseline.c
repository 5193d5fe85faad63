#include "probes/baseline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SLAB 256

/* One sparse row per example: counts of the ids in ids[0..len), as
 * features 1..n_ids, then the bias node liblinear expects, then -1. */
typedef struct {
    struct feature_node *pool;
    size_t used, cap;
    long *start;
} row_store;

static int append_row(row_store *s, long e, const int32_t *ids, int len, int n_ids, int32_t *counts)
{
    int distinct = 0;
    for (int t = 0; t < len; t++)
        if (ids[t] >= 0 && counts[ids[t]]++ == 0) distinct++;
    if (s->used + (size_t)distinct + 2 > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4096;
        while (cap < s->used + (size_t)distinct + 2) cap *= 2;
        struct feature_node *p = realloc(s->pool, cap * sizeof *p);
        if (!p) return -1;
        s->pool = p;
        s->cap = cap;
    }
    s->start[e] = (long)s->used;
    for (int v = 0; v < n_ids; v++)
        if (counts[v]) {
            s->pool[s->used++] = (struct feature_node){v + 1, counts[v]};
            counts[v] = 0;
        }
    s->pool[s->used++] = (struct feature_node){n_ids + 1, 1.0}; /* bias */
    s->pool[s->used++] = (struct feature_node){-1, 0};
    return 0;
}

/* Scales each feature by its largest training value (keeps rows sparse). */
static void scale(row_store *s, long n, const uint8_t *is_test, int n_ids)
{
    double *mx = calloc((size_t)n_ids + 2, sizeof *mx);
    if (!mx) return;
    for (long e = 0; e < n; e++)
        for (struct feature_node *f = s->pool + s->start[e]; f->index != -1; f++)
            if (!is_test[e] && f->index <= n_ids && fabs(f->value) > mx[f->index]) mx[f->index] = fabs(f->value);
    for (size_t k = 0; k < s->used; k++) {
        struct feature_node *f = &s->pool[k];
        if (f->index > 0 && f->index <= n_ids && mx[f->index] > 0) f->value /= mx[f->index];
    }
    free(mx);
}

static int fit(const sl_dataset *ds, long first, long n, row_store *s, const uint8_t *is_test, int n_ids, uint64_t seed,
               sl_logreg_result *out, sl_error *err)
{
    sl_rows tr = {0, n_ids + 1, NULL, NULL, ds->path}, te = tr;
    tr.row = malloc((size_t)n * sizeof *tr.row);
    te.row = malloc((size_t)n * sizeof *te.row);
    tr.y = malloc((size_t)n * sizeof *tr.y);
    te.y = malloc((size_t)n * sizeof *te.y);
    int rc = tr.row && te.row && tr.y && te.y ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
    for (long e = 0; !rc && e < n; e++) {
        sl_rows *r = is_test[e] ? &te : &tr;
        r->row[r->n] = s->pool + s->start[e];
        r->y[r->n++] = ds->labels[first + e];
    }
    tr.n_features = te.n_features = n_ids;
    if (!rc && !te.n) rc = sl_fail(err, SL_EINPUT, "%s: the test split is empty", ds->path);
    if (!rc) rc = sl_logreg(&tr, &te, seed, out, NULL, err);
    free(tr.row);
    free(te.row);
    free(tr.y);
    free(te.y);
    return rc;
}

int sl_baseline(sl_dataset *ds, long first, long n, uint64_t seed, sl_baseline_result *out, sl_error *err)
{
    int V = ds->vocab_size, F = ds->n_families, L = ds->L;
    row_store tok = {0}, fam = {0};
    tok.start = malloc((size_t)n * sizeof *tok.start);
    fam.start = malloc((size_t)n * sizeof *fam.start);
    uint8_t *is_test = malloc((size_t)n);
    int32_t *t = malloc((size_t)SLAB * L * sizeof *t), *f = malloc((size_t)SLAB * L * sizeof *f);
    int32_t *counts = calloc((size_t)(V > F ? V : F) + 1, sizeof *counts);
    int rc = tok.start && fam.start && is_test && t && f && counts ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
    if (!rc) sl_split(ds->split ? ds->split + first : NULL, n, seed, is_test);
    for (long b = 0; !rc && b < n; b += SLAB) {
        long cnt = n - b < SLAB ? n - b : SLAB;
        rc = sl_dataset_read_tokens(ds, first + b, cnt, t, err);
        if (!rc) rc = sl_dataset_read_families(ds, first + b, cnt, t, f, err);
        for (long e = 0; !rc && e < cnt; e++) {
            int len = ds->lengths[first + b + e];
            /* the pad id is no feature: count it as "none" */
            for (int k = 0; k < len; k++)
                if (t[e * L + k] == ds->pad_id) t[e * L + k] = -1;
            if (append_row(&tok, b + e, t + e * L, len, V, counts) || append_row(&fam, b + e, f + e * L, len, F, counts))
                rc = sl_fail(err, SL_ERUNTIME, "out of memory for the count rows");
        }
    }
    if (!rc) {
        scale(&tok, n, is_test, V);
        scale(&fam, n, is_test, F);
        out->n_test = 0;
        for (long e = 0; e < n; e++) out->n_test += is_test[e];
        out->n_train = n - out->n_test;
        rc = fit(ds, first, n, &tok, is_test, V, seed, &out->tokens, err);
    }
    if (!rc) rc = fit(ds, first, n, &fam, is_test, F, seed, &out->families, err);
    free(tok.pool);
    free(tok.start);
    free(fam.pool);
    free(fam.start);
    free(is_test);
    free(t);
    free(f);
    free(counts);
    return rc;
}
