/* core/mathx.h's exp on N vectors of eight lanes, for any target (core/simd.h's
 * v8f), which core/mathx8.h's kernels (AVX2) and the Mamba scan's decays
 * (models/mamba_scan.h, every target) share: the polynomial steps of
 * core/mathx_poly.h (at sixteen lanes core/mathx16.h's), then the scale.
 * The same float operations in the same order as the scalar sl_exp, lane
 * by lane, so the same bits. Each step is taken across the N
 * vectors before the next (N a constant where it is inlined): one vector's
 * steps are a chain some 20 deep, and on an AMD Zen 3 only two or three
 * such chains fit the scheduler at a time (core/mathx8.h's header). */
#ifndef SL_EXP8_H
#define SL_EXP8_H

#include "core/simd.h"

/* for each of the N vectors, a loop GCC unrolls so that a step of all N
 * comes before the next step */
#define SL_EACH8(j, N) _Pragma("GCC unroll 8") for (int j = 0; j < (N); j++)

/* the most vectors a call takes (arrays of this size: [N] would be a VLA) */
#define SL_N8_MAX 8

typedef int v8i_m __attribute__((vector_size(32)));

#define SL_VW 8
#include "core/simd_width.h"
#include "core/mathx_poly.h" /* sl_exp_poly_v8, sl_log_poly_v8 */
#include "core/simd_width_end.h"

/* x clamped below at -87.3, where sl_exp_nonpos and sl_exp clamp it (a NaN
 * becomes -87.3, as x > -87.3 ? x : -87.3 does): with sl_exp_clamped8n
 * after it, sl_exp_nonpos on eight lanes. A function of one vector, not
 * of N, so that the loops calling it compile as they did when each wrote
 * the clamp out: a wrapper taking the N vectors moved the attention
 * backward's spills and cost it about 2% (grad_time, six alternations). */
static inline v8f sl_exp_floor8(v8f x) { return v8_max(x, v8_set1(-87.3f)); }

/* e = sl_exp_clamped(x) for x already clamped to [-87.3, 88.7]: the
 * polynomial, then p times the scale built from n's bits (2^128 = inf
 * above 88.03, as the scalar code builds it) */
static inline __attribute__((always_inline)) void sl_exp_clamped8n(const v8f *x, v8f *e, const int N)
{
    v8f n[SL_N8_MAX], p[SL_N8_MAX];
    sl_exp_poly_v8(x, p, n, N);
    SL_EACH8(j, N)
    {
#if defined(__AVX__) /* GCC took __builtin_convertvector lane by lane in some unrolled loops */
        v8i_m k = (v8i_m)_mm256_cvttps_epi32((__m256)n[j]);
#else
        v8i_m k = __builtin_convertvector(n[j], v8i_m);
#endif
        e[j] = p[j] * (v8f)((k + 127) << 23);
    }
}

#endif
