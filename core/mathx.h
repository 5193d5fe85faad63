/* Elementwise maths written so that GCC vectorises the loops that call it:
 * no libm calls and no branches in the hot functions. Accuracy is within a
 * few float32 ulps, far inside the 1e-5 parity tolerance. */
#ifndef SL_MATHX_H
#define SL_MATHX_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp on [-87.3, 88.7] with Cephes' expf polynomial on [-ln2/2, ln2/2];
 * exp(-87.3) ~ 1e-38 stands in for 0 and keeps the 2^n scale normal. */
static inline float sl_exp_clamped(float x)
{
    /* round to nearest by adding 1.5 * 2^23: floorf is a libm call that
     * stops GCC from vectorising the caller */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
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
    return p * scale;
}

static inline float sl_exp(float x)
{
    /* a NaN fails the first comparison and becomes the bound, keeping the
     * float-to-int step defined; the NaN itself is handed back at the end */
    float xc = x > -87.3f ? x : -87.3f;
    xc = xc < 88.7f ? xc : 88.7f;
    float e = sl_exp_clamped(xc);
    return x != x ? x : e;
}

/* exp for x <= 0 (the scan's exp(delta * A)): no upper clamp and no NaN
 * pass-through, four instructions fewer in Mamba's hottest loop. A NaN
 * becomes ~0 here, but the same NaN still reaches the state through
 * delta * x * B. */
static inline float sl_exp_nonpos(float x) { return sl_exp_clamped(x > -87.3f ? x : -87.3f); }

static inline float sl_silu(float x) { return x / (1.0f + sl_exp(-x)); }

/* The logistic 1 / (1 + exp(-x)), and SiLU'(x) = s (1 + x (1 - s)) from it
 * (SiLU(x) = x s) */
static inline float sl_logistic(float x) { return 1.0f / (1.0f + sl_exp(-x)); }
static inline float sl_silu_grad_of(float x, float s) { return s * (1.0f + x * (1.0f - s)); }

/* Natural log of a positive normal float, Cephes' logf polynomial on the
 * mantissa in [sqrt(1/2), sqrt(2)). */
static inline float sl_log(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    int32_t e = (int32_t)((b >> 23) & 0xffu) - 127;
    b = (b & 0x007fffffu) | 0x3f800000u;
    float m;
    memcpy(&m, &b, 4);
    int big = m > 1.41421356f;
    m = big ? 0.5f * m : m;
    float fe = (float)(e + big);
    float f = m - 1.0f, z = f * f;
    float y = 7.0376836292e-2f;
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

/* torch.nn.functional.softplus with its default threshold 20:
 * max(x, 0) + log1p(exp(-|x|)), log1p(u) taken as log(w) * u / (w - 1) with
 * w = 1 + u, which stays accurate when u is below float epsilon. */
static inline float sl_softplus(float x)
{
    float u = sl_exp(x > 0.0f ? -x : x);
    float w = 1.0f + u;
    float l1p = w == 1.0f ? u : sl_log(w) * u / (w - 1.0f);
    float r = (x > 0.0f ? x : 0.0f) + l1p;
    return x > 20.0f ? x : r;
}

/* softplus'(x), the logistic of x, from sl_softplus's u = exp(-|x|): 1 / (1
 * + u) above 0, u / (1 + u) at or below (where 1 / (1 + exp(-x)) would
 * take another exp). Above about 16.6, so wherever sl_softplus returns x
 * itself (above 20), it is 1 exactly. */
static inline float sl_softplus_grad(float x)
{
    float u = sl_exp(x > 0.0f ? -x : x);
    return (x > 0.0f ? 1.0f : u) / (1.0f + u);
}

/* Numerical Recipes' erfcc for z >= 0 (fractional error < 1.2e-7), given
 * z and z*z = hi + lo split exactly: rounding -hi + p alone would cost ~4e-6
 * of relative accuracy at z = 9, so exp(-hi) and exp(p - lo) are taken apart. */
static inline float sl_erfc_pos(float a, float hi, float lo)
{
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
    return t * sl_exp(-hi) * sl_exp(p - lo);
}

static inline float sl_erfc(float z)
{
    float a = fabsf(z), hi = a * a, lo = fmaf(a, a, -hi);
    float r = sl_erfc_pos(a, hi, lo);
    return z >= 0.0f ? r : 2.0f - r;
}

/* Exact (erf) GELU: x * Phi(x) = x * erfc(-x / sqrt 2) / 2, with (x/sqrt 2)^2
 * taken as x*x/2 so that the tail keeps its relative accuracy. */
static inline float sl_gelu(float x)
{
    float a = fabsf(x) * 0.70710678118654752f;
    float hi = x * x, lo = fmaf(x, x, -hi);
    float r = sl_erfc_pos(a, 0.5f * hi, 0.5f * lo);
    return 0.5f * x * (x <= 0.0f ? r : 2.0f - r);
}

#endif
