/* Integrated gradients through a Mamba-1's first block without its norm's
 * and in_proj's products at every step (models/ig_path.h).
 *
 * Along the path h = b + alpha delta (delta = x - b), block 0's norm and
 * in_proj give, position by position,
 *     xz_t = (pb_t + alpha pd_t) / sigma_t + beta W^T + b_in,
 * since the norm's output is c_t w / sigma_t + beta with c_t = h_t - mean
 * h_t (RMSNorm: h_t, beta 0) linear in alpha but for its scale sigma_t. So
 * in_proj's product of each step becomes two products an example. And IG
 * needs of d logit / d h_t only its dot product with delta_t, which through
 * the norm's backward and in_proj's is
 *     g_t.delta_t + (dxz_t.pd_t) / sigma_t
 *       - (c_t.delta_t) (dxz_t.(pb_t + alpha pd_t)) / (d sigma_t^3)
 * (g the gradient at the block's output, which the residual carries), two
 * dot products of dxz a position instead of in_proj's backward product and
 * the norm's backward. Exact but for rounding. Layer 0's in_proj forward
 * and backward were 14% of a 4-layer Mamba gradient's products; by profile
 * an IG step of one at L 2,048 costs about 5% less (bench/README.md,
 * fourteenth round). */
#include "models/ig_path.h"

#include <math.h>
#include <string.h>

#include "core/blas.h"
#include "models/backward.h"

/* 1 / sigma of row h (its norm's scale), and its centre: what the norm
 * subtracts, its mean under a LayerNorm, 0 under RMSNorm */
static double inv_scale(const sl_config *c, const float *h, double *mean)
{
    return sl_norm_rstd(h, c->d_model, c->norm == NORM_LAYER, c->norm_eps, mean);
}

/* tmp = (v - centre v) w, rows of d */
static void centred_times_w(const sl_config *c, const float *v, const float *w, int T, float *tmp)
{
    int d = c->d_model;
    for (int t = 0; t < T; t++) {
        const float *vr = v + (long)t * d;
        double mean;
        inv_scale(c, vr, &mean);
        for (int i = 0; i < d; i++) tmp[(long)t * d + i] = (float)(vr[i] - mean) * w[i];
    }
}

long sl_ig_path_prepare(const sl_model *m, int T, const float *b, const float *delta, float *tmp, float *pb, float *pd,
                        float *bias)
{
    const sl_config *c = &m->c;
    const sl_mamba_layer *w = &m->mamba[0];
    int d = c->d_model, n = 2 * c->d_inner, same = 1;
    /* a baseline of one token everywhere (a Mamba has no positions) or of
     * zeros has one row of products: each step reads one stream fewer */
    for (int t = 1; t < T && same; t++) same = !memcmp(b, b + (long)t * d, (size_t)d * sizeof *b);
    centred_times_w(c, b, w->norm_w, same ? 1 : T, tmp);
    sl_linear(tmp, d, same ? 1 : T, d, w->in_w, NULL, n, pb, n);
    centred_times_w(c, delta, w->norm_w, T, tmp);
    sl_linear(tmp, d, T, d, w->in_w, NULL, n, pd, n);
    for (int j = 0; j < n; j++) {
        double v = w->in_b ? w->in_b[j] : 0;
        if (c->norm == NORM_LAYER && w->norm_b)
            for (int i = 0; i < d; i++) v += (double)w->norm_b[i] * w->in_w[(long)j * d + i];
        bias[j] = (float)v;
    }
    return same ? 0 : n;
}

void sl_ig_path_in_proj(const sl_model *m, const sl_ig_path *p, const float *h, int T, float *xz, int ldxz)
{
    int d = m->c.d_model, n = 2 * m->c.d_inner;
    for (int t = 0; t < T; t++) {
        double mean;
        float inv = (float)inv_scale(&m->c, h + (long)t * d, &mean), a = p->alpha;
        const float *pb = p->pb + t * p->ldpb, *pd = p->pd + (long)t * n;
        float *o = xz + (long)t * ldxz;
#pragma omp simd
        for (int j = 0; j < n; j++) o[j] = (pb[j] + a * pd[j]) * inv + p->bias[j];
    }
}

void sl_ig_path_in_proj_backward(const sl_model *m, const sl_ig_path *p, const float *h, int T, const float *g,
                                 const float *dxz, int lddxz)
{
    int d = m->c.d_model, n = 2 * m->c.d_inner;
    float a = p->alpha;
    for (int t = 0; t < T; t++) {
        const float *hr = h + (long)t * d, *gr = g + (long)t * d, *dr = p->delta + (long)t * d;
        const float *pb = p->pb + t * p->ldpb, *pd = p->pd + (long)t * n, *dz = dxz + (long)t * lddxz;
        double mean, inv = inv_scale(&m->c, hr, &mean), g_delta = 0, c_delta = 0;
#pragma omp simd reduction(+ : g_delta, c_delta)
        for (int i = 0; i < d; i++) {
            g_delta += (double)gr[i] * dr[i];
            c_delta += (hr[i] - mean) * dr[i];
        }
        /* in float lanes, as in_proj's backward product they stand for
         * was: these loads from L2 are the function's time */
        float dz_pd = 0, dz_pb = 0;
#pragma omp simd reduction(+ : dz_pd, dz_pb)
        for (int j = 0; j < n; j++) {
            dz_pd += dz[j] * pd[j];
            dz_pb += dz[j] * pb[j];
        }
        double dz_c = dz_pb + (double)a * dz_pd;
        p->attr[t] += g_delta + dz_pd * inv - c_delta * dz_c * inv * inv * inv / d;
    }
}
