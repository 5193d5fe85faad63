/* The polynomial steps of core/mathx.h's exp and log at one vector width:
 * the one copy that the 8-lane kernels (core/exp8.h, core/mathx8.h) and
 * the 16-lane ones (core/mathx16.h) share, each the same float operations
 * in the same order as the scalar sl_exp and sl_log. A template, included
 * once per width (so no include guard) between core/simd_width.h and
 * core/simd_width_end.h, after the width's loop macro and array bound
 * (SL_EACH8 and SL_N8_MAX from core/exp8.h; SL_EACH and SL_N16_MAX from
 * core/mathx16.h). Each step is taken across the N vectors before the
 * next (N a constant where it is inlined). */
#if SL_VW == 8
#define SL_POLY_EACH SL_EACH8
#define SL_POLY_MAX SL_N8_MAX
#else
#define SL_POLY_EACH SL_EACH
#define SL_POLY_MAX SL_N16_MAX
#endif

/* sl_exp_clamped's exponent n and polynomial p (its value is p * 2^n) for
 * x already clamped to [-87.3, 88.7] */
static inline __attribute__((always_inline)) void SL_VN(sl_exp_poly)(const SL_V *x, SL_V *p, SL_V *n, const int N)
{
    SL_V r[SL_POLY_MAX];
    SL_POLY_EACH(j, N) n[j] = (x[j] * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    SL_POLY_EACH(j, N) r[j] = x[j] - n[j] * 0.693359375f + n[j] * 2.12194440e-4f;
    SL_POLY_EACH(j, N) p[j] = SL_VSET1(1.9875691500e-4f) * r[j] + 1.3981999507e-3f;
    SL_POLY_EACH(j, N) p[j] = p[j] * r[j] + 8.3334519073e-3f;
    SL_POLY_EACH(j, N) p[j] = p[j] * r[j] + 4.1665795894e-2f;
    SL_POLY_EACH(j, N) p[j] = p[j] * r[j] + 1.6666665459e-1f;
    SL_POLY_EACH(j, N) p[j] = p[j] * r[j] + 5.0000001201e-1f;
    SL_POLY_EACH(j, N) p[j] = p[j] * r[j] * r[j] + r[j] + 1.0f;
}

/* l = sl_log(m * 2^fe) from the mantissa m, brought into [sqrt(1/2),
 * sqrt(2)], and the exponent fe (a float): sl_log's steps from there */
static inline __attribute__((always_inline)) void SL_VN(sl_log_poly)(const SL_V *m, const SL_V *fe, SL_V *l, const int N)
{
    SL_V f[SL_POLY_MAX], z[SL_POLY_MAX], y[SL_POLY_MAX];
    SL_POLY_EACH(j, N) f[j] = m[j] - 1.0f;
    SL_POLY_EACH(j, N) z[j] = f[j] * f[j];
    SL_POLY_EACH(j, N) y[j] = SL_VSET1(7.0376836292e-2f) * f[j] - 1.1514610310e-1f;
    SL_POLY_EACH(j, N) y[j] = y[j] * f[j] + 1.1676998740e-1f;
    SL_POLY_EACH(j, N) y[j] = y[j] * f[j] - 1.2420140846e-1f;
    SL_POLY_EACH(j, N) y[j] = y[j] * f[j] + 1.4249322787e-1f;
    SL_POLY_EACH(j, N) y[j] = y[j] * f[j] - 1.6668057665e-1f;
    SL_POLY_EACH(j, N) y[j] = y[j] * f[j] + 2.0000714765e-1f;
    SL_POLY_EACH(j, N) y[j] = y[j] * f[j] - 2.4999993993e-1f;
    SL_POLY_EACH(j, N) y[j] = y[j] * f[j] + 3.3333331174e-1f;
    SL_POLY_EACH(j, N) y[j] = y[j] * f[j] * z[j];
    SL_POLY_EACH(j, N) y[j] += -2.12194440e-4f * fe[j];
    SL_POLY_EACH(j, N) y[j] += -0.5f * z[j];
    SL_POLY_EACH(j, N) l[j] = f[j] + y[j] + 0.693359375f * fe[j];
}

#undef SL_POLY_EACH
#undef SL_POLY_MAX
