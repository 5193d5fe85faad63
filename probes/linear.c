#include "probes/linear.h"

#include <math.h>
#include <stdlib.h>

#include "core/metrics.h"
#include "core/rng.h"

static void quiet(const char *s) { (void)s; }

void sl_split(const int32_t *split, long n, uint64_t seed, uint8_t *is_test)
{
    if (split) {
        for (long i = 0; i < n; i++) is_test[i] = split[i] == 1;
        return;
    }
    long *perm = malloc((size_t)n * sizeof *perm);
    if (!perm) { /* no memory for the permutation: every 10th of 3 by index */
        for (long i = 0; i < n; i++) is_test[i] = i % 10 >= 7;
        return;
    }
    for (long i = 0; i < n; i++) perm[i] = i;
    sl_rng r = sl_rng_seed(seed);
    for (long i = n - 1; i > 0; i--) {
        long j = (long)sl_rng_below(&r, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    long n_train = (long)llround(0.7 * (double)n);
    for (long k = 0; k < n; k++) is_test[perm[k]] = k >= n_train;
    free(perm);
}

int sl_logreg(const sl_rows *tr, const sl_rows *test, uint64_t seed, sl_logreg_result *out, double *scores,
              sl_error *err)
{
    long pos = 0;
    for (long i = 0; i < tr->n; i++) pos += tr->y[i] == 1;
    if (pos == 0 || pos == tr->n)
        return sl_fail(err, SL_EINPUT, "%s%sthe training split holds one class only (%ld row%s, all of class %d)",
                       tr->source ? tr->source : "", tr->source ? ": " : "", tr->n, tr->n == 1 ? "" : "s", pos > 0);
    set_print_string_function(quiet);
    struct problem prob = {(int)tr->n, tr->n_features + 1, tr->y, tr->row, 1.0};
    struct parameter param = {.solver_type = L2R_LR, .eps = 0.01, .C = 1, .p = 0.1};
    const char *bad = check_parameter(&prob, &param);
    if (bad) return sl_fail(err, SL_ERUNTIME, "liblinear: %s", bad);
    /* liblinear's folds come from rand(): seed it for a reproducible C */
    srand((unsigned)seed);
    double best_C = 1, best_p = 0, best_acc = 0;
    int folds = tr->n >= 10 ? 5 : 2;
    find_parameters(&prob, &param, folds, -1, -1, &best_C, &best_p, &best_acc);
    param.C = best_C;
    struct model *model = train(&prob, &param);
    if (!model) return sl_fail(err, SL_ERUNTIME, "liblinear: training failed");
    /* decision values are for the model's first label */
    double sign = model->label[0] == 1 ? 1 : -1;
    float *s = malloc((size_t)(test->n ? test->n : 1) * sizeof *s);
    int32_t *y = malloc((size_t)(test->n ? test->n : 1) * sizeof *y);
    int rc = s && y ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
    for (long i = 0; !rc && i < test->n; i++) {
        double dec;
        predict_values(model, test->row[i], &dec);
        s[i] = (float)(sign * dec);
        y[i] = test->y[i] == 1;
        if (scores) scores[i] = sign * dec;
    }
    if (!rc) {
        out->C = best_C;
        out->test_auc = sl_auc(s, y, test->n);
        out->test_accuracy = sl_accuracy(s, y, test->n);
    }
    free(s);
    free(y);
    free_and_destroy_model(&model);
    return rc;
}
