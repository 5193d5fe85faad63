/* L2-regularised logistic regression through liblinear's C API, with C
 * chosen by k-fold cross-validation on the training rows: the linear model
 * under the bag-of-tokens baseline (and the probes). */
#ifndef SL_LINEAR_H
#define SL_LINEAR_H

#include <linear.h>
#include <stdint.h>

#include "core/error.h"

/* Sparse rows in liblinear's layout: each row ends with index -1. */
typedef struct {
    long n;
    int n_features;
    struct feature_node **row;
    double *y; /* 0 or 1 */
    const char *source; /* the dataset the rows come from, named in errors (or NULL) */
} sl_rows;

typedef struct {
    double C;
    double test_auc, test_accuracy;
} sl_logreg_result;

/* Fits on train (C from 5-fold cross-validation, liblinear's
 * find_parameters, seeded), scores test; scores receives the decision value
 * for label 1 of every test row when not NULL. */
int sl_logreg(const sl_rows *tr, const sl_rows *test, uint64_t seed, sl_logreg_result *out, double *scores,
              sl_error *err);

/* The examples' split: /split when the dataset has one, else a seeded 70/30
 * permutation. is_test[n] receives 0 or 1. */
void sl_split(const int32_t *split, long n, uint64_t seed, uint8_t *is_test);

#endif
