/* Linear probes: what does a layer's residual stream encode linearly?
 * liblinear L2 logistic regression on standardised resid_post, C by
 * cross-validation on the training split, scored on the test split against
 * the majority class and a control task (Hewitt & Liang 2019: the target
 * re-assigned at random per token type). */
#ifndef SL_PROBE_H
#define SL_PROBE_H

#include "core/dataset.h"
#include "models/model.h"
#include "models/run.h"

enum { SITE_POOLED, SITE_LAST, SITE_TOKENS };

typedef struct {
    const char *target; /* "label" or a /concepts name */
    int site;
    uint64_t seed;
    long max_tokens; /* site tokens: a seeded subsample of at most this many positions */
} sl_probe_opts;

typedef struct {
    int layer;
    long n_train, n_test;
    double test_accuracy, balanced_accuracy, test_auc, majority_baseline, control_accuracy, selectivity, C;
} sl_probe_row;

int sl_probe(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const int *layers, int n_layers,
             const sl_probe_opts *po, sl_probe_row *rows, sl_error *err);

#endif
