#include "core/correlation.h"

#include <math.h>
#include <stdlib.h>

static double pearson_d(const double *a, const double *b, long n)
{
    double ma = 0, mb = 0;
    for (long i = 0; i < n; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= n;
    mb /= n;
    double sab = 0, saa = 0, sbb = 0;
    for (long i = 0; i < n; i++) {
        double da = a[i] - ma, db = b[i] - mb;
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    if (saa <= 0 || sbb <= 0) return NAN;
    double r = sab / sqrt(saa * sbb);
    return r > 1 ? 1 : r < -1 ? -1 : r;
}

double sl_pearson(const float *a, const float *b, long n)
{
    double *x = malloc((size_t)(n ? n : 1) * 2 * sizeof *x);
    if (!x || n < 2) { free(x); return NAN; }
    for (long i = 0; i < n; i++) {
        x[i] = a[i];
        x[n + i] = b[i];
    }
    double r = pearson_d(x, x + n, n);
    free(x);
    return r;
}

typedef struct {
    float v;
    long i;
} indexed;

static int by_value(const void *p, const void *q)
{
    const indexed *a = p, *b = q;
    if (a->v != b->v) return a->v < b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

long *sl_argsort(const float *x, long n)
{
    indexed *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    long *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!v || !order) {
        free(v);
        free(order);
        return NULL;
    }
    for (long i = 0; i < n; i++) v[i] = (indexed){x[i], i};
    qsort(v, (size_t)n, sizeof *v, by_value);
    for (long i = 0; i < n; i++) order[i] = v[i].i;
    free(v);
    return order;
}

int sl_midranks(const float *x, long n, double *rank)
{
    long *order = sl_argsort(x, n);
    if (!order) return -1;
    for (long i = 0; i < n;) {
        long j = i + 1;
        while (j < n && x[order[j]] == x[order[i]]) j++;
        double mid = 0.5 * (double)(i + 1 + j);
        for (long k = i; k < j; k++) rank[order[k]] = mid;
        i = j;
    }
    free(order);
    return 0;
}

double sl_spearman(const float *a, const float *b, long n)
{
    for (long i = 0; i < n; i++)
        if (isnan(a[i]) || isnan(b[i])) return NAN; /* NaN has no rank */
    double *r = malloc((size_t)(n ? n : 1) * 2 * sizeof *r);
    if (!r || n < 2 || sl_midranks(a, n, r) || sl_midranks(b, n, r + n)) {
        free(r);
        return NAN;
    }
    double rho = pearson_d(r, r + n, n);
    free(r);
    return rho;
}
