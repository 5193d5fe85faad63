/* Does the model read a sequence or a bag of tokens? Each example's valid
 * part reversed (padding stays at the end), and a seeded shuffle as the
 * control: how well do the logits survive? */
#ifndef SL_REVERSE_H
#define SL_REVERSE_H

#include <stdint.h>

#include "core/dataset.h"
#include "models/model.h"
#include "models/run.h"

typedef struct {
    long n;
    double pearson_r, spearman_rho;                 /* original vs reversed logits */
    double auc_original, auc_reversed;
    double shuffle_pearson_r, shuffle_spearman_rho; /* original vs shuffled */
    double auc_shuffled;
} sl_reverse_result;

/* original: NULL, or the logits of the examples as given [count], as
 * sl_run gives them (eval's, read back): then two passes instead of three.
 * logits: NULL, or [3][count] to receive the original, reversed and
 * shuffled logits (the report's scatter plot reads them). */
int sl_reverse_test(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, uint64_t seed, const float *original,
                    sl_reverse_result *out, float *logits, sl_error *err);

#endif
