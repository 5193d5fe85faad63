/* Elementwise maths written so that GCC vectorises the loops that call it:
 * no libm calls and no branches in the hot functions. Accuracy is within a
 * few float32 ulps, far inside the 1e-5 parity tolerance. */
#ifndef SL_MATHX_H
#define SL_MATHX_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp with Cephes' expf polynomial on [-ln2/2, ln2/2]; the clamp keeps the
 * 2^n scale a normal float (exp(-87.3) ~ 1e-38 stands in for 0). */
static inline float sl_exp(float x)
{
    /* a NaN fails the first comparison and becomes the bound, keeping the
     * float-to-int step defined; the NaN itself is handed back at the end */
    float xc = x > -87.3f ? x : -87.3f;
    xc = xc < 88.7f ? xc : 88.7f;
    /* round to nearest by adding 1.5 * 2^23: floorf is a libm call that
     * stops GCC from vectorising the caller */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return x != x ? x : p * scale;
}

static inline float sl_silu(float x) { return x / (1.0f + sl_exp(-x)); }

/* torch.nn.functional.softplus with its default threshold 20. */
static inline float sl_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* erfc(z) with Numerical Recipes' erfcc: fractional error < 1.2e-7 everywhere,
 * so GELU keeps its relative accuracy deep in the negative tail. */
static inline float sl_erfc(float z)
{
    float a = fabsf(z);
    float t = 1.0f / (1.0f + 0.5f * a);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float r = t * sl_exp(-a * a + p);
    return z >= 0.0f ? r : 2.0f - r;
}

/* Exact (erf) GELU: x * Phi(x) = x * erfc(-x / sqrt 2) / 2. */
static inline float sl_gelu(float x) { return 0.5f * x * sl_erfc(-0.70710678118654752f * x); }

#endif
