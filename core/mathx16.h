/* core/mathx.h's exp, SiLU, logistic and softplus on sixteen lanes
 * (AVX-512), for the Mamba kernels whose loops GCC vectorised with more
 * instructions than they need (a blend for each ?:, the exponent built in
 * integers). Each does the same float operations in the same order as the
 * scalar function, so each lane has the scalar function's bits, NaNs
 * included; where an operation is replaced, the replacement is exact:
 * vscalefps(p, n) is p * 2^n rounded once, as p times the built scale is;
 * vgetexpps / vgetmantps give a normal float's exponent and mantissa as
 * sl_log's bit fields do. tests/test_mamba_kernels.c compares them with
 * the scalar functions. Only where __AVX512F__ is defined. */
#ifndef SL_MATHX16_H
#define SL_MATHX16_H

#ifdef __AVX512F__
#include <immintrin.h>

#include "core/mathx.h"
#include "core/simd.h"

static inline __mmask16 sl_isnan16(v16f x) { return _mm512_cmp_ps_mask((__m512)x, (__m512)x, _CMP_UNORD_Q); }

/* sl_exp_clamped's polynomial times 2^n, for n <= 127 (x <= 88.03): there
 * the scale it builds is finite and scalef multiplies by the same power. */
static inline v16f sl_exp_clamped16_poly(v16f x, v16f *n_out)
{
    v16f n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    v16f r = x - n * 0.693359375f + n * 2.12194440e-4f;
    v16f p = v16_set1(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    *n_out = n;
    return p;
}

/* sl_exp(x) for x <= 0 and NaN (softplus's exp(-|x|)): the upper clamp
 * cannot bind, so n <= 0; a NaN is handed back as sl_exp does. */
static inline v16f sl_exp_nonpos_nan16(v16f x)
{
    v16f n, p = sl_exp_clamped16_poly(v16_max(x, v16_set1(-87.3f)), &n);
    v16f e = (v16f)_mm512_scalef_ps((__m512)p, (__m512)n);
    return (v16f)_mm512_mask_mov_ps((__m512)e, sl_isnan16(x), (__m512)x);
}

/* sl_exp on any input. Above 88.03 sl_exp's scale is 2^128 = inf and so
 * is its result, where scalef would give a finite number: those lanes are
 * set to inf. */
static inline v16f sl_exp16(v16f x)
{
    v16f xc = (v16f)_mm512_min_ps((__m512)v16_max(x, v16_set1(-87.3f)), _mm512_set1_ps(88.7f));
    v16f n, p = sl_exp_clamped16_poly(xc, &n);
    __m512 e = _mm512_scalef_ps((__m512)p, (__m512)n);
    e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask((__m512)n, _mm512_set1_ps(128.0f), _CMP_GE_OQ),
                           _mm512_set1_ps(INFINITY));
    return (v16f)_mm512_mask_mov_ps(e, sl_isnan16(x), (__m512)x);
}

/* x / (1 + exp(-x)) */
static inline v16f sl_silu16(v16f x) { return x / (1.0f + sl_exp16(-x)); }

/* 1 / (1 + exp(-x)) */
static inline v16f sl_logistic16(v16f x) { return 1.0f / (1.0f + sl_exp16(-x)); }

/* sl_log for w in [1, 2] (softplus's 1 + exp(-|x|)) and NaN: the
 * exponent and mantissa from getexp / getmant, then sl_log's steps. */
static inline v16f sl_log_1to2_16(v16f w)
{
    __m512 e = _mm512_getexp_ps((__m512)w);
    v16f m = (v16f)_mm512_getmant_ps((__m512)w, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
    __mmask16 big = _mm512_cmp_ps_mask((__m512)m, _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
    m = (v16f)_mm512_mask_mul_ps((__m512)m, big, (__m512)m, _mm512_set1_ps(0.5f));
    v16f fe = (v16f)_mm512_mask_add_ps(e, big, e, _mm512_set1_ps(1.0f));
    v16f f = m - 1.0f, z = f * f;
    v16f y = v16_set1(7.0376836292e-2f);
    y = y * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z;
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    return f + y + 0.693359375f * fe;
}

/* sl_softplus: the same steps, the ?: as masks */
static inline v16f sl_softplus16(v16f x)
{
    __m512 xm = (__m512)x;
    __mmask16 pos = _mm512_cmp_ps_mask(xm, _mm512_setzero_ps(), _CMP_GT_OQ);
    v16f u = sl_exp_nonpos_nan16((v16f)_mm512_mask_xor_ps(xm, pos, xm, _mm512_set1_ps(-0.0f)));
    v16f w = 1.0f + u;
    __mmask16 one = _mm512_cmp_ps_mask((__m512)w, _mm512_set1_ps(1.0f), _CMP_EQ_OQ);
    v16f l1p = (v16f)_mm512_mask_div_ps((__m512)u, (__mmask16)~one, (__m512)(sl_log_1to2_16(w) * u),
                                        (__m512)(w - 1.0f));
    v16f r = (v16f)_mm512_maskz_mov_ps(pos, xm) + l1p;
    return (v16f)_mm512_mask_mov_ps((__m512)r, _mm512_cmp_ps_mask(xm, _mm512_set1_ps(20.0f), _CMP_GT_OQ), xm);
}

#endif
#endif
