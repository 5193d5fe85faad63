#include "ablation/reverse.h"

#include <stdlib.h>
#include <string.h>

#include "core/correlation.h"
#include "core/metrics.h"
#include "core/rng.h"

typedef struct {
    int shuffle;
    uint64_t seed;
} reorder;

/* Rewrites each example's valid tokens in place: reversed, or shuffled with
 * a generator seeded by (seed, example) so that batches and threads do not
 * change the permutation. */
static int reorder_batch(void *user, sl_batch *b, sl_error *err)
{
    (void)err;
    const reorder *r = user;
    for (int e = 0; e < b->count; e++) {
        int32_t *t = b->tokens + (long)e * b->L;
        int len = b->lengths[e];
        if (!r->shuffle) {
            for (int i = 0, j = len - 1; i < j; i++, j--) {
                int32_t x = t[i];
                t[i] = t[j];
                t[j] = x;
            }
            continue;
        }
        sl_rng rng = sl_rng_seed(r->seed ^ (0x632be59bd9b4e019ull * (uint64_t)(b->first + e + 1)));
        for (int i = len - 1; i > 0; i--) {
            int j = (int)sl_rng_below(&rng, (uint64_t)i + 1);
            int32_t x = t[i];
            t[i] = t[j];
            t[j] = x;
        }
    }
    return SL_OK;
}

int sl_reverse_test(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, uint64_t seed, const float *original,
                    sl_reverse_result *out, float *logits, sl_error *err)
{
    long n = o->count;
    float *all = logits ? logits : malloc(3 * (size_t)n * sizeof *all);
    if (!all) return sl_fail(err, SL_ERUNTIME, "out of memory for %ld logits", n);
    float *orig = all, *rev = all + n, *shuf = all + 2 * n;
    int rc = SL_OK;
    reorder backward = {0, seed}, shuffled = {1, seed};
    if (original && original != orig) memcpy(orig, original, (size_t)n * sizeof *orig);
    else if (!original) rc = sl_run(m, ds, o, NULL, NULL, NULL, NULL, orig, err);
    if (!rc) rc = sl_run(m, ds, o, NULL, reorder_batch, NULL, &backward, rev, err);
    if (!rc) rc = sl_run(m, ds, o, NULL, reorder_batch, NULL, &shuffled, shuf, err);
    if (!rc) {
        const int32_t *y = ds->labels + o->first;
        out->n = n;
        out->pearson_r = sl_pearson(orig, rev, n);
        out->spearman_rho = sl_spearman(orig, rev, n);
        out->auc_original = sl_auc(orig, y, n);
        out->auc_reversed = sl_auc(rev, y, n);
        out->shuffle_pearson_r = sl_pearson(orig, shuf, n);
        out->shuffle_spearman_rho = sl_spearman(orig, shuf, n);
        out->auc_shuffled = sl_auc(shuf, y, n);
    }
    if (!logits) free(all);
    return rc;
}
