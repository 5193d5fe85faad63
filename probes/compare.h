/* Two models on the same data, side by side: do they agree, do they fail on
 * the same examples, does averaging them beat either, and how alike are
 * their representations (linear CKA)? */
#ifndef SL_COMPARE_H
#define SL_COMPARE_H

#include "core/dataset.h"
#include "models/model.h"
#include "models/run.h"

typedef struct {
    long n;
    double auc_a, auc_b, pearson_r, spearman_rho, agreement, error_overlap, auc_ensemble;
    double cka_pooled;
    int layers_a, layers_b;
    double *cka_layers; /* [layers_a][layers_b], resid_post averaged over valid positions */
} sl_compare_result;

/* da and db are the same file opened for each model (their vocabularies may differ). */
/* oa, ob: the same examples; each model runs with its own (its own device
 * model, when set). */
int sl_compare(const sl_model *a, sl_dataset *da, const sl_model *b, sl_dataset *db, const sl_run_opts *oa,
               const sl_run_opts *ob, sl_compare_result *out, sl_error *err);
void sl_compare_free(sl_compare_result *r);

#endif
