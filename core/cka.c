#include "core/cka.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

/* Column-centred copy in double precision. */
static double *centred(const float *X, int p, long n)
{
    double *c = malloc((size_t)n * p * sizeof *c), *mean = calloc((size_t)p, sizeof *mean);
    if (!c || !mean) {
        free(c);
        free(mean);
        return NULL;
    }
    for (long i = 0; i < n; i++)
        for (int j = 0; j < p; j++) mean[j] += X[i * p + j];
    for (int j = 0; j < p; j++) mean[j] /= (double)n;
    for (long i = 0; i < n; i++)
        for (int j = 0; j < p; j++) c[i * p + j] = X[i * p + j] - mean[j];
    free(mean);
    return c;
}

/* ||A^T B||_F^2 for A [n, p], B [n, q]. */
static double cross_norm2(const double *A, int p, const double *B, int q, long n, double *work)
{
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p, q, (int)n, 1.0, A, p, B, q, 0.0, work, q);
    double s = 0;
    for (long k = 0; k < (long)p * q; k++) s += work[k] * work[k];
    return s;
}

double sl_linear_cka(const float *X, int p, const float *Y, int q, long n)
{
    int m = p > q ? p : q;
    double *x = centred(X, p, n), *y = centred(Y, q, n), *work = malloc((size_t)m * m * sizeof *work);
    double r = NAN;
    if (x && y && work) {
        double xy = cross_norm2(x, p, y, q, n, work), xx = cross_norm2(x, p, x, p, n, work);
        double yy = cross_norm2(y, q, y, q, n, work);
        if (xx > 0 && yy > 0) r = xy / sqrt(xx * yy);
    }
    free(x);
    free(y);
    free(work);
    return r;
}
