#include "core/roc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/correlation.h"
#include "core/metrics.h"
#include "core/rng.h"

/* Structural components of one classifier: v10 over positives, v01 over
 * negatives (Sun & Xu's midrank form). */
static int components(const float *s, const int32_t *y, long n, long m, double *v10, double *v01)
{
    long k = n - m;
    float *xs = malloc((size_t)m * sizeof *xs), *ys = malloc((size_t)k * sizeof *ys);
    double *tz = malloc((size_t)n * sizeof *tz), *tx = malloc((size_t)m * sizeof *tx), *ty = malloc((size_t)k * sizeof *ty);
    int rc = xs && ys && tz && tx && ty ? 0 : -1;
    long ip = 0, in = 0;
    for (long i = 0; !rc && i < n; i++) {
        if (y[i]) xs[ip++] = s[i];
        else ys[in++] = s[i];
    }
    if (!rc) rc = sl_midranks(s, n, tz) || sl_midranks(xs, m, tx) || sl_midranks(ys, k, ty) ? -1 : 0;
    ip = in = 0;
    for (long i = 0; !rc && i < n; i++) {
        if (y[i]) {
            v10[ip] = (tz[i] - tx[ip]) / (double)k;
            ip++;
        } else {
            v01[in] = 1.0 - (tz[i] - ty[in]) / (double)m;
            in++;
        }
    }
    free(xs);
    free(ys);
    free(tz);
    free(tx);
    free(ty);
    return rc;
}

static double mean(const double *v, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++) s += v[i];
    return s / n;
}

/* Sample covariance (n - 1) of two vectors. */
static double cov(const double *a, const double *b, long n)
{
    if (n < 2) return 0;
    double ma = mean(a, n), mb = mean(b, n), s = 0;
    for (long i = 0; i < n; i++) s += (a[i] - ma) * (b[i] - mb);
    return s / (n - 1);
}

int sl_delong_test(const float *a, const float *b, const int32_t *y, long n, sl_delong *out)
{
    long m = 0;
    for (long i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return -1;
        m += y[i] == 1;
    }
    long k = n - m;
    if (!m || !k) return -1;
    double *buf = malloc((size_t)(2 * n) * sizeof *buf);
    if (!buf) return -1;
    double *a10 = buf, *a01 = buf + m, *b10 = buf + n, *b01 = buf + n + m;
    if (components(a, y, n, m, a10, a01) || components(b, y, n, m, b10, b01)) {
        free(buf);
        return -1;
    }
    out->auc_a = mean(a10, m);
    out->auc_b = mean(b10, m);
    double var = (cov(a10, a10, m) + cov(b10, b10, m) - 2 * cov(a10, b10, m)) / m
               + (cov(a01, a01, k) + cov(b01, b01, k) - 2 * cov(a01, b01, k)) / k;
    double diff = out->auc_b - out->auc_a;
    free(buf);
    /* Coinciding curves (e.g. an ablation that changed nothing) have no
     * variance: no evidence of a difference. */
    if (!(var > 1e-300)) {
        out->z = 0;
        out->p_value = 1;
        return 0;
    }
    out->z = diff / sqrt(var);
    out->p_value = erfc(fabs(out->z) / sqrt(2.0));
    return 0;
}

/* AUC of the examples repeated w[i] times, in O(n) from a sorted order. */
static double weighted_auc(const float *s, const int32_t *y, const long *order, const int *w, long n)
{
    double below = 0, sum = 0, pos = 0, neg = 0;
    for (long g = 0; g < n;) {
        long h = g;
        double gp = 0, gn = 0;
        for (; h < n && s[order[h]] == s[order[g]]; h++) {
            long i = order[h];
            if (y[i]) gp += w[i];
            else gn += w[i];
        }
        sum += gp * (below + 0.5 * gn);
        below += gn;
        pos += gp;
        neg += gn;
        g = h;
    }
    return sum / (pos * neg);
}

int sl_bootstrap_auc_delta(const float *a, const float *b, const int32_t *y, long n, int B, uint64_t seed,
                           double ci[2])
{
    long m = 0;
    for (long i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return -1;
        m += y[i] == 1;
    }
    if (!m || m == n || B < 1) return -1;
    long *oa = sl_argsort(a, n), *ob = sl_argsort(b, n);
    int *w = malloc((size_t)n * sizeof *w);
    double *delta = malloc((size_t)B * sizeof *delta);
    int rc = oa && ob && w && delta ? 0 : -1;
    sl_rng rng = sl_rng_seed(seed);
    for (int r = 0; !rc && r < B;) {
        memset(w, 0, (size_t)n * sizeof *w);
        long pos = 0;
        for (long k = 0; k < n; k++) {
            long i = (long)sl_rng_below(&rng, (uint64_t)n);
            w[i]++;
            pos += y[i];
        }
        if (pos == 0 || pos == n) continue; /* one class: no AUC; draw again */
        delta[r++] = weighted_auc(b, y, ob, w, n) - weighted_auc(a, y, oa, w, n);
    }
    if (!rc) sl_ci95(delta, B, ci);
    free(oa);
    free(ob);
    free(w);
    free(delta);
    return rc;
}
