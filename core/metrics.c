#include "core/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    float s;
    int32_t y;
} scored;

static int by_score(const void *a, const void *b)
{
    float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x > y) - (x < y);
}

double sl_auc(const float *score, const int32_t *label, long n)
{
    scored *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!v) return NAN;
    long pos = 0, nan = 0;
    for (long i = 0; i < n; i++) {
        v[i] = (scored){score[i], label[i]};
        pos += label[i] == 1;
        nan += isnan(score[i]);
    }
    long neg = n - pos;
    /* no ranking exists with a NaN among the scores */
    if (!pos || !neg || nan) { free(v); return NAN; }
    qsort(v, (size_t)n, sizeof *v, by_score);
    /* sum of positive ranks, tied scores sharing their mean rank */
    double rank_sum = 0;
    for (long i = 0; i < n;) {
        long j = i + 1;
        while (j < n && v[j].s == v[i].s) j++;
        double mid = 0.5 * (double)(i + 1 + j);
        for (long k = i; k < j; k++)
            if (v[k].y == 1) rank_sum += mid;
        i = j;
    }
    free(v);
    return (rank_sum - 0.5 * (double)pos * (double)(pos + 1)) / ((double)pos * (double)neg);
}

double sl_log_loss(const float *logit, const int32_t *label, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++) {
        double z = label[i] ? -(double)logit[i] : (double)logit[i];
        /* -log sigmoid(-z) = softplus(z) */
        s += z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
    }
    return n ? s / n : NAN;
}

double sl_accuracy(const float *logit, const int32_t *label, long n)
{
    long right = 0;
    for (long i = 0; i < n; i++) right += (logit[i] > 0) == (label[i] == 1);
    return n ? (double)right / n : NAN;
}

size_t sl_count_nonfinite(const float *x, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !isfinite(x[i]);
    return bad;
}

int sl_check_logits(const float *logit, long n, long first, const char *what, sl_error *err)
{
    long bad = (long)sl_count_nonfinite(logit, (size_t)(n > 0 ? n : 0));
    if (!bad) return SL_OK;
    long i = 0;
    while (isfinite(logit[i])) i++;
    char where[96] = "";
    if (first >= 0) snprintf(where, sizeof where, "; first: example %ld, logit %g", first + i, (double)logit[i]);
    return sl_fail(err, SL_ERUNTIME,
                   "%s gave NaN or infinite logits on %ld of %ld examples%s: no score can be computed from them "
                   "(non-finite weights, or activations that overflow)",
                   what, bad, n, where);
}

static int cmp_double(const void *p, const void *q)
{
    double a = *(const double *)p, b = *(const double *)q;
    return (a > b) - (a < b);
}

static double percentile(const double *sorted, int n, double q)
{
    double x = q * (n - 1);
    int i = (int)x;
    return i + 1 < n ? sorted[i] + (x - i) * (sorted[i + 1] - sorted[i]) : sorted[n - 1];
}

void sl_ci95(double *values, int n, double ci[2])
{
    qsort(values, (size_t)n, sizeof *values, cmp_double);
    ci[0] = percentile(values, n, 0.025);
    ci[1] = percentile(values, n, 0.975);
}
