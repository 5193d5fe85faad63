/* The vectorisable elementwise functions against libm in double precision,
 * over the ranges the models feed them. */
#include <math.h>

#include "core/mathx.h"
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
    CHECK(isnan(sl_exp(NAN)) && isnan(sl_softplus(NAN)), "NaN must stay NaN");
    CHECK(sl_exp(-1000.0f) < 1.3e-38f && sl_exp(-INFINITY) < 1.3e-38f, "exp of very negative numbers must be ~0");
    CHECK(sl_softplus(30.0f) == 30.0f, "softplus above the threshold is the identity");
    return TEST_SUMMARY();
}
