/* Mamba-1's selective scan (models/mamba_cpu.c) and its reverse
 * (models/mamba_backward.c) against plain double loops written here from
 * design.md section 2.3: y, the states the forward keeps for the backward
 * (the tape's checkpoints), and dx, d delta, dB, dC of sum(dy * y). The
 * shapes take every path of the forward: d_inner a multiple of 16 (the
 * AVX-512 scan, states held in registers in groups of 16: d_state 4, 16,
 * 20 and 33 take one group, one full group, a full and a partial one,
 * three; the AVX-512 reverse's groups of 8: one partial, two full, two
 * and a partial, four and a partial, dx and d delta carried from group to
 * group), of 8 only (24, 40), neither (20, 5); lengths of one position, of
 * a partial chunk, of exact multiples of the checkpoint chunk and between;
 * B and C inside wider rows (xdbl's stride). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/backward.h"
#include "models/mamba_scan.h"
#include "tests/testing.h"

static unsigned long long rng = 0x2545f4914f6cdd1dull;

static double uniform(double lo, double hi)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(rng >> 11) / 9007199254740992.0;
}

static void fill(float *p, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) p[i] = (float)uniform(lo, hi);
}

typedef struct {
    int T, di, S;
} shape;

/* max |got - want| over max |want|, got strided */
static double rel_d(const float *got, long ldg, const double *want, long ldw, int rows, int cols)
{
    double diff = 0, scale = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double e = fabs(got[r * ldg + c] - want[r * ldw + c]);
            if (!(e <= diff)) diff = e;
            scale = fmax(scale, fabs(want[r * ldw + c]));
        }
    return scale > 0 ? diff / scale : diff;
}

static void scan_case(shape s)
{
    int T = s.T, di = s.di, S = s.S, R = 3, ldb = R + 2 * S + 2;
    size_t td = (size_t)T * di, nck = (size_t)(T + SL_SCAN_CHUNK - 1) / SL_SCAN_CHUNK;
    float *x = malloc(td * 4), *delta = malloc(td * 4), *xdbl = malloc((size_t)T * ldb * 4), *A = malloc((size_t)S * di * 4);
    float *D = malloc((size_t)di * 4), *dy = malloc(td * 4), *y = malloc(td * 4), *state = malloc((size_t)S * di * 4);
    float *ckpt = malloc(nck * S * di * 4), *dx = malloc(td * 4), *dd = malloc(td * 4), *dxdbl = calloc((size_t)T * ldb, 4);
    float *scratch = malloc(sl_mamba_scan_scratch_floats(di, S) * 4);
    double *st = malloc(((size_t)T + 1) * S * di * 8), *yw = malloc(td * 8), *g = calloc((size_t)S * di, 8);
    double *dxw = calloc(td, 8), *ddw = calloc(td, 8), *dbw = calloc((size_t)T * S, 8), *dcw = calloc((size_t)T * S, 8);
    fill(x, td, -1, 1);
    fill(delta, td, 0.001, 1.5);
    fill(xdbl, (size_t)T * ldb, -1, 1);
    fill(A, (size_t)S * di, -12, -0.2);
    fill(D, di, -1, 1);
    fill(dy, td, -1, 1);
    memset(ckpt, 0xff, nck * S * di * 4); /* NaN where nothing is written */

    /* the recurrence in double: st[t + 1] = s_t, st[0] = 0 */
    memset(st, 0, (size_t)S * di * 8);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < di; c++) {
            double d = delta[(long)t * di + c], xv = x[(long)t * di + c], yv = (double)D[c] * xv;
            for (int n = 0; n < S; n++) {
                long o = (long)n * di + c;
                double v = exp(d * A[o]) * st[(long)t * S * di + o] + d * xv * xdbl[(long)t * ldb + R + n];
                st[(long)(t + 1) * S * di + o] = v;
                yv += v * xdbl[(long)t * ldb + R + S + n];
            }
            yw[(long)t * di + c] = yv;
        }
    sl_mamba_scan(x, delta, xdbl, ldb, R, R + S, T, di, S, A, D, state, y, ckpt);
    double ey = rel_d(y, di, yw, di, T, di), ec = 0;
    for (size_t k = 1; k < nck; k++)
        ec = fmax(ec, rel_d(ckpt + k * S * di, 0, st + k * SL_SCAN_CHUNK * S * di, 0, 1, S * di));
    CHECK(ey <= 2e-6, "scan T %d di %d S %d: y %.3g", T, di, S, ey);
    CHECK(ec <= 2e-6, "scan T %d di %d S %d: checkpointed states %.3g", T, di, S, ec);

    /* the reverse of sum(dy * y) in double */
    for (int t = T - 1; t >= 0; t--) {
        const double *cur = st + (long)(t + 1) * S * di, *prev = st + (long)t * S * di;
        for (int c = 0; c < di; c++) {
            double d = delta[(long)t * di + c], xv = x[(long)t * di + c], gy = dy[(long)t * di + c];
            dxw[(long)t * di + c] = D[c] * gy;
            for (int n = 0; n < S; n++) {
                long o = (long)n * di + c;
                double Bn = xdbl[(long)t * ldb + R + n], Cn = xdbl[(long)t * ldb + R + S + n], a = exp(d * A[o]);
                g[o] += gy * Cn;
                dcw[(long)t * S + n] += gy * cur[o];
                ddw[(long)t * di + c] += g[o] * (prev[o] * a * A[o] + xv * Bn);
                dxw[(long)t * di + c] += g[o] * d * Bn;
                dbw[(long)t * S + n] += g[o] * d * xv;
                g[o] *= a;
            }
        }
    }
    sl_mamba_scan_backward(A, D, ckpt, x, delta, xdbl, ldb, R, dy, T, di, S, scratch, dx, dd, dxdbl);
    double ex = rel_d(dx, di, dxw, di, T, di), ed = rel_d(dd, di, ddw, di, T, di);
    double eb = rel_d(dxdbl + R, ldb, dbw, S, T, S), eC = rel_d(dxdbl + R + S, ldb, dcw, S, T, S);
    CHECK(ex <= 1e-5 && ed <= 1e-5 && eb <= 1e-5 && eC <= 1e-5, "scan backward T %d di %d S %d: dx %.3g, d delta %.3g, dB %.3g, dC %.3g",
          T, di, S, ex, ed, eb, eC);

    free(x), free(delta), free(xdbl), free(A), free(D), free(dy), free(y), free(state), free(ckpt), free(dx), free(dd);
    free(dxdbl), free(scratch), free(st), free(yw), free(g), free(dxw), free(ddw), free(dbw), free(dcw);
}

int main(void)
{
    shape shapes[] = {
        {70, 16, 4},  {100, 32, 16}, {65, 48, 20}, {2 * SL_SCAN_CHUNK, 16, 33}, {1, 16, 16}, {31, 128, 16},
        {40, 24, 5},  {97, 40, 16},  {50, 20, 4},  {SL_SCAN_CHUNK + 1, 5, 3},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) scan_case(shapes[i]);
    return TEST_SUMMARY();
}
