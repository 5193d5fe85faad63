/* What a model that ignores order can reach: logistic regression on the
 * counts of each token (bag of tokens) and of each family (bag of families)
 * over each sequence's valid positions. */
#ifndef SL_BASELINE_H
#define SL_BASELINE_H

#include "core/dataset.h"
#include "probes/linear.h"

typedef struct {
    long n_train, n_test;
    sl_logreg_result tokens, families;
} sl_baseline_result;

int sl_baseline(sl_dataset *ds, long first, long count, uint64_t seed, sl_baseline_result *out, sl_error *err);

#endif
