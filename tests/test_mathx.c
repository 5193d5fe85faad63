/* The vectorisable elementwise functions against libm in double precision,
 * over the ranges the models feed them. */
#include <math.h>
#include <string.h>

#include "core/mathx.h"
#include "core/mathx8.h"
#include "models/backward.h"
#include "models/model.h"
#include "tests/testing.h"

typedef float (*fn32)(float);
typedef double (*fn64)(double);

static double softplus64(double x) { return x > 20 ? x : log1p(exp(x)); }
static double silu64(double x) { return x / (1 + exp(-x)); }
static double gelu64(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }
static double erfc64(double x) { return erfc(x); }

/* Worst relative error |f - g| / max(|g|, floor) over a grid of [lo, hi]. */
static double worst(fn32 f, fn64 g, double lo, double hi, double floor)
{
    double w = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = (float)(lo + (hi - lo) * i / 200000.0);
        double want = g(x), got = f(x);
        double e = fabs(got - want) / fmax(fabs(want), floor);
        if (!(e <= w)) w = e;
    }
    return w;
}

/* GELU and its derivative as the models run them (models/cpu_ops.c's rows,
 * sl_activation_backward: eight lanes four vectors at a time with AVX2,
 * core/mathx8.h) against sl_gelu and the derivative's scalar formula, bit
 * for bit, over a grid with the awkward values among it. */
static void gelu_lanes(void)
{
    enum { N = 4099 }; /* not a multiple of 32: the scalar tail runs too */
    static float x[N], dx[N], want_dx[N];
    const float odd[] = {0.0f, -0.0f, NAN, INFINITY, -INFINITY, 1e-30f, -1e-30f, 30.0f, -30.0f, 120.0f, -120.0f};
    for (int i = 0; i < N; i++) x[i] = -12.0f + 24.0f * (float)i / N;
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) x[37 * i + 5] = odd[i];
    int bad_f = 0, bad_b = 0;
#ifdef SL_HAVE_MATHX8
    for (int i = 0; i + 8 <= N; i += 8) {
        v8f v = v8_load(x + i);
        sl_gelu8n(&v, 1);
        for (int l = 0; l < 8; l++) {
            float w = sl_gelu(x[i + l]);
            bad_f += memcmp(&v[l], &w, sizeof w) != 0;
        }
    }
#endif
    for (int i = 0; i < N; i++) {
        float z = x[i], Phi = 0.5f * sl_erfc(-0.70710678118654752f * z);
        dx[i] = 0.25f + (float)i / N;
        want_dx[i] = dx[i] * (Phi + z * 0.39894228040143268f * sl_exp(-0.5f * z * z));
    }
    sl_activation_backward(ACT_GELU, x, dx, N);
    for (int i = 0; i < N; i++) bad_b += memcmp(&dx[i], &want_dx[i], sizeof *dx) != 0;
    CHECK(bad_f == 0, "sl_gelu8n: %d lanes are not sl_gelu's bits", bad_f);
    CHECK(bad_b == 0, "sl_activation_backward (GELU): %d of %d values are not the scalar formula's bits", bad_b, N);
}

int main(void)
{
    struct {
        const char *name;
        fn32 f;
        fn64 g;
        double lo, hi, floor, tol;
    } cases[] = {
        {"exp", sl_exp, exp, -87, 88, 0, 3e-7},
        {"log", sl_log, log, 1e-30, 1e30, 0, 3e-7},
        {"log near 1", sl_log, log, 0.5, 2, 1e-7, 3e-7},
        {"softplus", sl_softplus, softplus64, -80, 40, 0, 5e-7},
        {"silu", sl_silu, silu64, -80, 80, 1e-30, 5e-7},
        {"erfc", sl_erfc, erfc64, -9, 9, 1e-30, 1e-6},
        {"gelu", sl_gelu, gelu64, -9, 9, 1e-30, 1e-6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double w = worst(cases[i].f, cases[i].g, cases[i].lo, cases[i].hi, cases[i].floor);
        printf("%-12s worst relative error %.3g\n", cases[i].name, w);
        CHECK(w <= cases[i].tol, "%s: worst relative error %.3g > %.1g", cases[i].name, w, cases[i].tol);
    }
    gelu_lanes();
    CHECK(isnan(sl_exp(NAN)) && isnan(sl_softplus(NAN)), "NaN must stay NaN");
    CHECK(sl_exp(-1000.0f) < 1.3e-38f && sl_exp(-INFINITY) < 1.3e-38f, "exp of very negative numbers must be ~0");
    CHECK(sl_softplus(30.0f) == 30.0f, "softplus above the threshold is the identity");
    return TEST_SUMMARY();
}
