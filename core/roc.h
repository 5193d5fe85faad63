/* Comparing two ROC AUCs measured on the same examples: the change an
 * ablation makes, with DeLong's test and a paired bootstrap interval. */
#ifndef SL_ROC_H
#define SL_ROC_H

#include <stdint.h>

typedef struct {
    double auc_a, auc_b;
    double z, p_value; /* of auc_b - auc_a; p = 1 when both curves coincide */
} sl_delong;

/* DeLong, DeLong & Clarke-Pearson (1988) for correlated ROC curves, with the
 * midrank formulation of Sun & Xu (2014): O(n log n). Returns -1 when a
 * class is absent, a score is NaN or memory runs out. */
int sl_delong_test(const float *a, const float *b, const int32_t *label, long n, sl_delong *out);

/* Percentile interval (2.5%, 97.5%, numpy's linear interpolation) of
 * AUC(b) - AUC(a) over B paired resamples of the examples, seeded; a
 * resample holding one class only is drawn again. Returns -1 as above. */
int sl_bootstrap_auc_delta(const float *a, const float *b, const int32_t *label, long n, int B, uint64_t seed,
                           double ci[2]);

#endif
