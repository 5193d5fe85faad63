/* Scores of a binary classifier from its logits. */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* ROC AUC with ties counted as one half (the Mann-Whitney statistic, as
 * sklearn.metrics.roc_auc_score). NaN when one class is absent or a score
 * is NaN. */
double sl_auc(const float *score, const int32_t *label, long n);
/* Mean binary cross-entropy of sigmoid(logit), computed stably. */
double sl_log_loss(const float *logit, const int32_t *label, long n);
/* Fraction with (logit > 0) == label. */
double sl_accuracy(const float *logit, const int32_t *label, long n);

/* The percentile 95% interval of n bootstrap values (numpy's default
 * percentile, linear between order statistics): sorts values in place. */
void sl_ci95(double *values, int n, double ci[2]);

/* How many of x[0..n) are NaN or infinite. */
size_t sl_count_nonfinite(const float *x, size_t n);
/* Every score computed from logits (AUC, accuracy, DeLong, effects) is
 * wrong, silently, with a NaN or infinite logit among them: an error
 * (SL_ERUNTIME) naming what gave them (`what`, e.g. the model or an
 * ablation), how many of the n examples, and the first one (dataset index:
 * first + i; first < 0: not named). */
int sl_check_logits(const float *logit, long n, long first, const char *what, sl_error *err);

#endif
