/* Correlation of two score vectors (reverse-test, compare). */
#ifndef SL_CORRELATION_H
#define SL_CORRELATION_H

/* Pearson's r in double precision; NaN when either side is constant. */
double sl_pearson(const float *a, const float *b, long n);
/* Spearman's rho: Pearson's r of the ranks, ties sharing their mean rank
 * (scipy.stats.spearmanr). NaN when either side is constant. */
double sl_spearman(const float *a, const float *b, long n);
/* Indices that sort x ascending, ties by index (a stable order); NULL when
 * out of memory. The caller frees it. */
long *sl_argsort(const float *x, long n);
/* Mean ranks 1..n with ties averaged; returns 0, or -1 when out of memory. */
int sl_midranks(const float *x, long n, double *rank);

#endif
