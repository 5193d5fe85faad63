/* core/mathx.h's exp, SiLU, logistic and softplus on sixteen lanes
 * (AVX-512), for the Mamba kernels whose loops GCC vectorised with more
 * instructions than they need (a blend for each ?:, the exponent built in
 * integers). Each does the same float operations in the same order as the
 * scalar function, so each lane has the scalar function's bits, NaNs
 * included; where an operation is replaced, the replacement is exact:
 * vscalefps(p, n) is p * 2^n rounded once, as p times the built scale is;
 * vgetexpps / vgetmantps give a normal float's exponent and mantissa as
 * sl_log's bit fields do. tests/test_mamba_kernels.c compares them with
 * the scalar functions. Only where __AVX512F__ is defined.
 *
 * Each works on N vectors at once (N a constant where it is inlined), step
 * by step across the N: the steps of one vector are a chain some 40 deep,
 * and a kernel calling it on one vector at a time waits on that chain,
 * where N = 4 independent chains keep both vector ports busier: softplus
 * (about 60 instructions) 1.08 -> 1.00 ns a float in L1; the shorter SiLU
 * and logistic measured slower four at once (registers run out), so their
 * kernels take N = 1. */
#ifndef SL_MATHX16_H
#define SL_MATHX16_H

#ifdef __AVX512F__
#include <immintrin.h>

#include "core/mathx.h"
#include "core/simd.h"

/* for each of the N vectors, a loop GCC unrolls so that a step of all N
 * comes before the next step */
#define SL_EACH(j, N) _Pragma("GCC unroll 4") for (int j = 0; j < (N); j++)

/* the most vectors a call takes (arrays of this size: [N] would be a VLA) */
#define SL_N16_MAX 4

static inline __mmask16 sl_isnan16(v16f x) { return _mm512_cmp_ps_mask((__m512)x, (__m512)x, _CMP_UNORD_Q); }

/* core/mathx_poly.h's steps at sixteen lanes: sl_exp_poly_v16 gives
 * sl_exp_clamped's polynomial p and exponent n (its value is p * 2^n;
 * where n <= 127, that is x <= 88.03, the scale it builds is finite and
 * scalef multiplies by the same power), sl_log_poly_v16 sl_log's steps
 * from the mantissa and exponent */
#define SL_VW 16
#include "core/simd_width.h"
#include "core/mathx_poly.h"
#include "core/simd_width_end.h"

/* e = sl_exp(x) for x <= 0 and NaN (softplus's exp(-|x|)): the upper clamp
 * cannot bind, so n <= 0; a NaN is handed back as sl_exp does. */
static inline __attribute__((always_inline)) void sl_exp_nonpos_nan16n(const v16f *x, v16f *e, const int N)
{
    v16f x0[SL_N16_MAX], xc[SL_N16_MAX], p[SL_N16_MAX], n[SL_N16_MAX];
    SL_EACH(j, N) x0[j] = x[j]; /* e may be x */
    SL_EACH(j, N) xc[j] = v16_max(x0[j], v16_set1(-87.3f));
    sl_exp_poly_v16(xc, p, n, N);
    SL_EACH(j, N) e[j] = (v16f)_mm512_scalef_ps((__m512)p[j], (__m512)n[j]);
    SL_EACH(j, N) e[j] = (v16f)_mm512_mask_mov_ps((__m512)e[j], sl_isnan16(x0[j]), (__m512)x0[j]);
}

/* e = sl_exp(x) on any input. Above 88.03 sl_exp's scale is 2^128 = inf and
 * so is its result, where scalef would give a finite number: those lanes
 * are set to inf. */
static inline __attribute__((always_inline)) void sl_exp16n(const v16f *x, v16f *e, const int N)
{
    v16f x0[SL_N16_MAX], xc[SL_N16_MAX], p[SL_N16_MAX], n[SL_N16_MAX];
    SL_EACH(j, N) x0[j] = x[j]; /* e may be x */
    SL_EACH(j, N) xc[j] = (v16f)_mm512_min_ps((__m512)v16_max(x0[j], v16_set1(-87.3f)), _mm512_set1_ps(88.7f));
    sl_exp_poly_v16(xc, p, n, N);
    SL_EACH(j, N) e[j] = (v16f)_mm512_scalef_ps((__m512)p[j], (__m512)n[j]);
    SL_EACH(j, N)
    e[j] = (v16f)_mm512_mask_mov_ps((__m512)e[j], _mm512_cmp_ps_mask((__m512)n[j], _mm512_set1_ps(128.0f), _CMP_GE_OQ),
                                    _mm512_set1_ps(INFINITY));
    SL_EACH(j, N) e[j] = (v16f)_mm512_mask_mov_ps((__m512)e[j], sl_isnan16(x0[j]), (__m512)x0[j]);
}

/* x = x / (1 + exp(-x)) */
static inline __attribute__((always_inline)) void sl_silu16n(v16f *x, const int N)
{
    v16f m[SL_N16_MAX], e[SL_N16_MAX];
    SL_EACH(j, N) m[j] = -x[j];
    sl_exp16n(m, e, N);
    SL_EACH(j, N) x[j] = x[j] / (1.0f + e[j]);
}

/* s = 1 / (1 + exp(-x)) */
static inline __attribute__((always_inline)) void sl_logistic16n(const v16f *x, v16f *s, const int N)
{
    v16f m[SL_N16_MAX], e[SL_N16_MAX];
    SL_EACH(j, N) m[j] = -x[j];
    sl_exp16n(m, e, N);
    SL_EACH(j, N) s[j] = 1.0f / (1.0f + e[j]);
}

/* SiLU'(x) = s (1 + x (1 - s)), s the logistic of x */
static inline v16f sl_silu_grad_of16(v16f x, v16f s) { return s * (1.0f + x * (1.0f - s)); }

static inline v16f sl_silu_grad16(v16f x)
{
    v16f s;
    sl_logistic16n(&x, &s, 1);
    return sl_silu_grad_of16(x, s);
}

/* x = SiLU(x) (sl_silu16n's bits), and g = SiLU'(x) (sl_silu_grad16's: the
 * same exp(-x) gives both) */
static inline __attribute__((always_inline)) void sl_silu_and_grad16n(v16f *x, v16f *g, const int N)
{
    v16f m[SL_N16_MAX], e[SL_N16_MAX];
    SL_EACH(j, N) m[j] = -x[j];
    sl_exp16n(m, e, N);
    SL_EACH(j, N) g[j] = sl_silu_grad_of16(x[j], 1.0f / (1.0f + e[j]));
    SL_EACH(j, N) x[j] = x[j] / (1.0f + e[j]);
}

/* l = sl_log(w) for w in [1, 2] (softplus's 1 + exp(-|x|)) and NaN: the
 * exponent and mantissa from getexp / getmant, then sl_log's steps. */
static inline __attribute__((always_inline)) void sl_log_1to2_16n(const v16f *w, v16f *l, const int N)
{
    v16f m[SL_N16_MAX], fe[SL_N16_MAX];
    __mmask16 big[SL_N16_MAX];
    SL_EACH(j, N) fe[j] = (v16f)_mm512_getexp_ps((__m512)w[j]);
    SL_EACH(j, N) m[j] = (v16f)_mm512_getmant_ps((__m512)w[j], _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
    SL_EACH(j, N) big[j] = _mm512_cmp_ps_mask((__m512)m[j], _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
    SL_EACH(j, N) m[j] = (v16f)_mm512_mask_mul_ps((__m512)m[j], big[j], (__m512)m[j], _mm512_set1_ps(0.5f));
    SL_EACH(j, N) fe[j] = (v16f)_mm512_mask_add_ps((__m512)fe[j], big[j], (__m512)fe[j], _mm512_set1_ps(1.0f));
    sl_log_poly_v16(m, fe, l, N);
}

/* x = sl_softplus(x), its ?: as masks, and with g (a constant NULL or
 * not, once inlined) g = sl_softplus_grad(x). Its last ?:, x > 20 ? x : r,
 * is left out: there r = x + log1p(exp(-x)) adds less than 2.1e-9 to a
 * float whose half ulp is at least 9.5e-7, so r is x (and inf for inf). */
static inline __attribute__((always_inline)) void sl_softplus_grad16n(v16f *x, v16f *g, const int N)
{
    v16f u[SL_N16_MAX], w[SL_N16_MAX], l[SL_N16_MAX];
    __mmask16 pos[SL_N16_MAX], one[SL_N16_MAX];
    SL_EACH(j, N) pos[j] = _mm512_cmp_ps_mask((__m512)x[j], _mm512_setzero_ps(), _CMP_GT_OQ);
    SL_EACH(j, N) u[j] = (v16f)_mm512_mask_xor_ps((__m512)x[j], pos[j], (__m512)x[j], _mm512_set1_ps(-0.0f));
    sl_exp_nonpos_nan16n(u, u, N);
    SL_EACH(j, N) w[j] = 1.0f + u[j];
    if (g) SL_EACH(j, N) g[j] = (v16f)_mm512_mask_mov_ps((__m512)u[j], pos[j], _mm512_set1_ps(1.0f)) / w[j];
    SL_EACH(j, N) one[j] = _mm512_cmp_ps_mask((__m512)w[j], _mm512_set1_ps(1.0f), _CMP_EQ_OQ);
    sl_log_1to2_16n(w, l, N);
    SL_EACH(j, N)
    l[j] = (v16f)_mm512_mask_div_ps((__m512)u[j], (__mmask16)~one[j], (__m512)(l[j] * u[j]), (__m512)(w[j] - 1.0f));
    SL_EACH(j, N) x[j] = (v16f)_mm512_maskz_mov_ps(pos[j], (__m512)x[j]) + l[j];
}

static inline __attribute__((always_inline)) void sl_softplus16n(v16f *x, const int N) { sl_softplus_grad16n(x, NULL, N); }

#endif
#endif
