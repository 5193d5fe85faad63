/* Scores of a binary classifier from its logits. */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stdint.h>

/* ROC AUC with ties counted as one half (the Mann-Whitney statistic, as
 * sklearn.metrics.roc_auc_score). NaN when one class is absent or a score
 * is NaN. */
double sl_auc(const float *score, const int32_t *label, long n);
/* Mean binary cross-entropy of sigmoid(logit), computed stably. */
double sl_log_loss(const float *logit, const int32_t *label, long n);
/* Fraction with (logit > 0) == label. */
double sl_accuracy(const float *logit, const int32_t *label, long n);

#endif
