/* core/mathx.h's exp, SiLU, logistic, softplus, erfc and GELU on eight
 * lanes (AVX2 with FMA, no AVX-512: core/mathx16.h's counterparts there),
 * for the Mamba kernels' elementwise loops, the attention's exps and the
 * Transformer's GELU. Each does the same float operations in the same
 * order as the scalar function, so each lane has the scalar function's
 * bits, NaNs included; each ?: is a blend, and the exponent is built from
 * its bits as the scalar code builds it. tests/test_mamba_kernels.c and
 * tests/test_mathx.c compare the kernels with the scalar functions.
 *
 * Each works on N vectors at once (N a constant where it is inlined), step
 * by step across the N. GCC's own vectorisation of the scalar loops took
 * one vector at a time, and one vector's steps are a chain some 40 (exp)
 * to 100 (softplus) deep: on an AMD Zen 3 only one or two such chains fit
 * the scheduler, which then waited on their latency (softplus 2.3 ns a
 * float, about 60 cycles a vector). */
#ifndef SL_MATHX8_H
#define SL_MATHX8_H

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#include <immintrin.h>

#include "core/exp8.h"
#include "core/mathx.h"
#include "core/simd.h"

#define SL_HAVE_MATHX8 1

/* lanes of a where mask is set, of b elsewhere */
static inline v8f sl_blend8(v8f b, v8f a, v8f mask)
{
    return (v8f)_mm256_blendv_ps((__m256)b, (__m256)a, (__m256)mask);
}

/* a compared with b lane by lane (pred: _CMP_...), all ones where true */
#define SL_CMP8(a, b, pred) ((v8f)_mm256_cmp_ps((__m256)(a), (__m256)(b), (pred)))

/* e = sl_exp(x) on any input: clamped, and a NaN handed back */
static inline __attribute__((always_inline)) void sl_exp8n(const v8f *x, v8f *e, const int N)
{
    v8f x0[SL_N8_MAX], xc[SL_N8_MAX];
    SL_EACH8(j, N) x0[j] = x[j]; /* e may be x */
    SL_EACH8(j, N) xc[j] = (v8f)_mm256_min_ps((__m256)sl_exp_floor8(x0[j]), _mm256_set1_ps(88.7f));
    sl_exp_clamped8n(xc, e, N);
    SL_EACH8(j, N) e[j] = sl_blend8(e[j], x0[j], SL_CMP8(x0[j], x0[j], _CMP_UNORD_Q));
}

/* x = x / (1 + exp(-x)) */
static inline __attribute__((always_inline)) void sl_silu8n(v8f *x, const int N)
{
    v8f e[SL_N8_MAX];
    SL_EACH8(j, N) e[j] = -x[j];
    sl_exp8n(e, e, N);
    SL_EACH8(j, N) x[j] = x[j] / (1.0f + e[j]);
}

/* SiLU'(x) = s (1 + x (1 - s)), s the logistic of x */
static inline v8f sl_silu_grad_of8(v8f x, v8f s) { return s * (1.0f + x * (1.0f - s)); }

/* x = SiLU(x) and g = SiLU'(x) from the same exp(-x) */
static inline __attribute__((always_inline)) void sl_silu_and_grad8n(v8f *x, v8f *g, const int N)
{
    v8f e[SL_N8_MAX];
    SL_EACH8(j, N) e[j] = -x[j];
    sl_exp8n(e, e, N);
    SL_EACH8(j, N) g[j] = sl_silu_grad_of8(x[j], 1.0f / (1.0f + e[j]));
    SL_EACH8(j, N) x[j] = x[j] / (1.0f + e[j]);
}

/* l = sl_log(w) for w in [1, 2] (softplus's 1 + exp(-|x|)) and NaN:
 * sl_log's bit fields and steps */
static inline __attribute__((always_inline)) void sl_log_1to2_8n(const v8f *w, v8f *l, const int N)
{
    v8f m[SL_N8_MAX], fe[SL_N8_MAX];
    SL_EACH8(j, N)
    {
        v8i_m b = (v8i_m)w[j], e = ((b >> 23) & 0xff) - 127;
        m[j] = (v8f)((b & 0x007fffff) | 0x3f800000);
        v8i_m big = (v8i_m)SL_CMP8(m[j], v8_set1(1.41421356f), _CMP_GT_OQ); /* -1 where set */
        m[j] = sl_blend8(m[j], 0.5f * m[j], (v8f)big);
        fe[j] = (v8f)_mm256_cvtepi32_ps((__m256i)(e - big));
    }
    sl_log_poly_v8(m, fe, l, N);
}

/* x = sl_softplus(x), and with g (a constant NULL or not, once inlined)
 * g = sl_softplus_grad(x). Its last ?:, x > 20 ? x : r, is left out as in
 * sl_softplus_grad16n: there r is x. */
static inline __attribute__((always_inline)) void sl_softplus_grad8n(v8f *x, v8f *g, const int N)
{
    v8f u[SL_N8_MAX], w[SL_N8_MAX], l[SL_N8_MAX], pos[SL_N8_MAX];
    SL_EACH8(j, N) pos[j] = SL_CMP8(x[j], v8_set1(0.0f), _CMP_GT_OQ);
    SL_EACH8(j, N) u[j] = (v8f)((v8i_m)x[j] ^ ((v8i_m)pos[j] & (v8i_m)v8_set1(-0.0f)));
    sl_exp8n(u, u, N);
    SL_EACH8(j, N) w[j] = 1.0f + u[j];
    if (g) SL_EACH8(j, N) g[j] = sl_blend8(u[j], v8_set1(1.0f), pos[j]) / w[j];
    sl_log_1to2_8n(w, l, N);
    SL_EACH8(j, N) l[j] = sl_blend8(l[j] * u[j] / (w[j] - 1.0f), u[j], SL_CMP8(w[j], v8_set1(1.0f), _CMP_EQ_OQ));
    SL_EACH8(j, N) x[j] = (v8f)((v8i_m)x[j] & (v8i_m)pos[j]) + l[j];
}

/* r = sl_erfc_pos(a, hi, lo): t = 1 / (1 + a/2), the degree-9
 * polynomial in t, t exp(-hi) exp(p - lo) */
static inline __attribute__((always_inline)) void sl_erfc_pos8n(const v8f *a, const v8f *hi, const v8f *lo, v8f *r,
                                                                const int N)
{
    v8f t[SL_N8_MAX], p[SL_N8_MAX], e[SL_N8_MAX], f[SL_N8_MAX];
    SL_EACH8(j, N) t[j] = 1.0f / (1.0f + 0.5f * a[j]);
    SL_EACH8(j, N) p[j] = v8_set1(0.17087277f) * t[j] - 0.82215223f;
    SL_EACH8(j, N) p[j] = p[j] * t[j] + 1.48851587f;
    SL_EACH8(j, N) p[j] = p[j] * t[j] - 1.13520398f;
    SL_EACH8(j, N) p[j] = p[j] * t[j] + 0.27886807f;
    SL_EACH8(j, N) p[j] = p[j] * t[j] - 0.18628806f;
    SL_EACH8(j, N) p[j] = p[j] * t[j] + 0.09678418f;
    SL_EACH8(j, N) p[j] = p[j] * t[j] + 0.37409196f;
    SL_EACH8(j, N) p[j] = p[j] * t[j] + 1.00002368f;
    SL_EACH8(j, N) p[j] = p[j] * t[j] - 1.26551223f;
    SL_EACH8(j, N) e[j] = -hi[j], f[j] = p[j] - lo[j];
    sl_exp8n(e, e, N);
    sl_exp8n(f, f, N);
    SL_EACH8(j, N) r[j] = t[j] * e[j] * f[j];
}

/* fabsf on eight lanes: the sign bit cleared */
static inline v8f sl_abs8(v8f x) { return (v8f)((v8i_m)x & 0x7fffffff); }

/* x = sl_gelu(x) */
static inline __attribute__((always_inline)) void sl_gelu8n(v8f *x, const int N)
{
    v8f a[SL_N8_MAX], hi[SL_N8_MAX], lo[SL_N8_MAX], r[SL_N8_MAX];
    SL_EACH8(j, N) a[j] = sl_abs8(x[j]) * 0.70710678118654752f;
    SL_EACH8(j, N) hi[j] = x[j] * x[j];
    SL_EACH8(j, N) lo[j] = 0.5f * v8_fma(x[j], x[j], -hi[j]), hi[j] = 0.5f * hi[j];
    sl_erfc_pos8n(a, hi, lo, r, N);
    SL_EACH8(j, N) x[j] = 0.5f * x[j] * sl_blend8(2.0f - r[j], r[j], SL_CMP8(x[j], v8_set1(0.0f), _CMP_LE_OQ));
}

/* dx *= GELU'(x) = Phi(x) + x phi(x), as sl_activation_backward's loop:
 * Phi(x) = erfc(-x / sqrt 2) / 2 by sl_erfc */
static inline __attribute__((always_inline)) void sl_gelu_grad8n(const v8f *x, v8f *dx, const int N)
{
    v8f z[SL_N8_MAX], a[SL_N8_MAX], hi[SL_N8_MAX], lo[SL_N8_MAX], r[SL_N8_MAX], e[SL_N8_MAX];
    SL_EACH8(j, N) z[j] = -0.70710678118654752f * x[j];
    SL_EACH8(j, N) a[j] = sl_abs8(z[j]), hi[j] = a[j] * a[j];
    SL_EACH8(j, N) lo[j] = v8_fma(a[j], a[j], -hi[j]);
    sl_erfc_pos8n(a, hi, lo, r, N);
    SL_EACH8(j, N) r[j] = sl_blend8(2.0f - r[j], r[j], SL_CMP8(z[j], v8_set1(0.0f), _CMP_GE_OQ));
    SL_EACH8(j, N) e[j] = -0.5f * x[j] * x[j];
    sl_exp8n(e, e, N);
    SL_EACH8(j, N) dx[j] *= 0.5f * r[j] + x[j] * 0.39894228040143268f * e[j];
}

#endif
#endif
