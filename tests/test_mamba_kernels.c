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
    /* restarted from a checkpoint (prefix reuse), the rows from there on
     * are the whole scan's bit for bit: the states carried from one block
     * of positions to the next are the ones a restart starts from */
    if (nck > 1) {
        int r0 = (int)(nck - 1) / 2 * SL_SCAN_CHUNK;
        r0 = r0 ? r0 : SL_SCAN_CHUNK;
        float *y2 = malloc(td * 4);
        sl_mamba_scan_from(x + (long)r0 * di, delta + (long)r0 * di, xdbl + (long)r0 * ldb, ldb, R, R + S, T - r0, di, S, A,
                           D, ckpt + (size_t)r0 / SL_SCAN_CHUNK * S * di, state, y2, NULL);
        CHECK(!memcmp(y2, y + (long)r0 * di, (size_t)(T - r0) * di * 4),
              "scan T %d di %d S %d: restarted at %d, not the whole scan's bits", T, di, S, r0);
        free(y2);
    }

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
    sl_mamba_scan_backward(A, D, ckpt, x, delta, NULL, xdbl, ldb, R, dy, T, di, S, scratch, dx, dd, dxdbl);
    double ex = rel_d(dx, di, dxw, di, T, di), ed = rel_d(dd, di, ddw, di, T, di);
    double eb = rel_d(dxdbl + R, ldb, dbw, S, T, S), eC = rel_d(dxdbl + R + S, ldb, dcw, S, T, S);
    CHECK(ex <= 1e-5 && ed <= 1e-5 && eb <= 1e-5 && eC <= 1e-5, "scan backward T %d di %d S %d: dx %.3g, d delta %.3g, dB %.3g, dC %.3g",
          T, di, S, ex, ed, eb, eC);
    /* with softplus's backward folded in: the bits of the scan's d delta
     * times the kept softplus', the rest as without */
    float *dsp = malloc(td * 4), *dx2 = malloc(td * 4), *dd2 = malloc(td * 4), *dxdbl2 = malloc((size_t)T * ldb * 4);
    fill(dsp, td, 0, 1);
    memcpy(dxdbl2, dxdbl, (size_t)T * ldb * 4);
    sl_mamba_scan_backward(A, D, ckpt, x, delta, dsp, xdbl, ldb, R, dy, T, di, S, scratch, dx2, dd2, dxdbl2);
    for (size_t k = 0; k < td; k++) dd[k] *= dsp[k];
    CHECK(!memcmp(dd2, dd, td * 4) && !memcmp(dx2, dx, td * 4) && !memcmp(dxdbl2, dxdbl, (size_t)T * ldb * 4),
          "scan backward T %d di %d S %d with softplus': not the bits of the scan, then the product", T, di, S);
    free(dsp), free(dx2), free(dd2), free(dxdbl2);

    free(x), free(delta), free(xdbl), free(A), free(D), free(dy), free(y), free(state), free(ckpt), free(dx), free(dd);
    free(dxdbl), free(scratch), free(st), free(yw), free(g), free(dxw), free(ddw), free(dbw), free(dcw);
}

/* The causal conv, forward (sl_mamba_conv, with SiLU, keeping the conv
 * before it) and its transpose (sl_mamba_silu_conv_backward), against double
 * loops and, bit for bit, against the float sum they are defined to take:
 * the bias, then o = fma(w, x, o) from tap 0 (the oldest position) to tap
 * K - 1, and in the transpose the newest position first (sl_fma1 and
 * v8_fma, v16_fma: one rounding where the target has FMA, at any -O and
 * whatever GCC's tuning prefers; left to -ffp-contract, the Zen tuning
 * kept the 8-lane sums unfused and this scalar loop fused). The shapes
 * take the walks by position (16 lanes; on AVX2, 8 lanes where d_inner is
 * whole vectors; d_conv 2 to 8, 4 compiled apart) with whole and partial
 * vectors, more channels than one block of SL_CONV_BLOCK, sequences
 * shorter than the kernel, strided rows; d_conv 9 and a d_inner of partial
 * vectors conv_v8's loops. */
static void conv_case(int T, int di, int K, int bias)
{
    int ldx = 2 * di + 3;
    size_t td = (size_t)T * di;
    float *x = malloc((size_t)T * ldx * 4), *w = malloc((size_t)di * K * 4), *b = malloc((size_t)di * 4);
    float *out = malloc((td + 16) * 4), *pre = malloc((td + 16) * 4), *act = malloc((td + 16) * 4);
    float *ref = malloc(td * 4), *dxs = malloc((size_t)T * ldx * 4), *dref = malloc(td * 4);
    double *want = malloc(td * 8), *dwant = malloc(td * 8);
    fill(x, (size_t)T * ldx, -2, 2);
    fill(w, (size_t)di * K, -1, 1);
    fill(b, di, -1, 1);
    const float *bp = bias ? b : NULL;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < di; c++) {
            double d = bp ? bp[c] : 0;
            float o = bp ? bp[c] : 0.0f;
            for (int k = t < K - 1 ? K - 1 - t : 0; k < K; k++) {
                float xv = x[(long)(t - (K - 1) + k) * ldx + c], wv = w[(long)c * K + k];
                d += (double)wv * xv;
                o = sl_fma1(wv, xv, o);
            }
            want[(long)t * di + c] = d, ref[(long)t * di + c] = o;
        }
    /* the transpose, of dy = the first di columns of x's rows taken as [T][di] */
    float *dy = malloc(td * 4);
    for (int t = 0; t < T; t++) memcpy(dy + (long)t * di, x + (long)t * ldx, (size_t)di * 4);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < di; c++) {
            double d = 0;
            float o = 0.0f;
            for (int k = t + K > T ? t + K - T : 0; k < K; k++) {
                float g = dy[(long)(t + K - 1 - k) * di + c], wv = w[(long)c * K + k];
                d += (double)wv * g;
                o = sl_fma1(wv, g, o);
            }
            dwant[(long)t * di + c] = d, dref[(long)t * di + c] = o;
        }

    for (size_t k = 0; k < td + 16; k++) out[k] = pre[k] = act[k] = 7.0f; /* past T * di: must stay */
    sl_mamba_conv(x, ldx, T, di, K, w, bp, out);
    sl_mamba_conv_silu_keep(x, ldx, T, di, K, w, bp, pre, act); /* pre: SiLU' of the conv */
    int silu_bits = 1, grad_bits = 1, tail = 1;
    for (size_t k = 0; k < td; k++) {
        float s = sl_silu(ref[k]), g = sl_silu_grad_of(ref[k], sl_logistic(ref[k]));
        silu_bits &= !memcmp(&s, act + k, 4);
        grad_bits &= !memcmp(&g, pre + k, 4);
    }
    for (size_t k = td; k < td + 16; k++) tail &= out[k] == 7.0f && pre[k] == 7.0f && act[k] == 7.0f;
    double e = rel_d(out, di, want, di, T, di);
    CHECK(e <= 1e-6, "conv T %d di %d K %d: %.3g from the double sum", T, di, K, e);
    CHECK(!memcmp(out, ref, td * 4) && silu_bits && grad_bits && tail,
          "conv T %d di %d K %d bias %d: not the float sum's bits (conv %d, SiLU %d, SiLU' kept %d) or wrote past the rows (%d)",
          T, di, K, bias, !memcmp(out, ref, td * 4), silu_bits, grad_bits, tail);
    sl_mamba_conv_silu(x, ldx, T, di, K, w, bp, out);
    CHECK(!memcmp(out, act, td * 4), "conv T %d di %d K %d: conv + SiLU differs from the kept pass", T, di, K);

    for (size_t k = 0; k < (size_t)T * ldx; k++) dxs[k] = 7.0f; /* the columns past di must stay */
    sl_mamba_silu_conv_backward(NULL, NULL, dy, T, di, K, w, dxs, ldx);
    int dbits = 1, dkept = 1;
    double de = 0;
    for (int t = 0; t < T; t++) {
        dbits &= !memcmp(dxs + (long)t * ldx, dref + (long)t * di, (size_t)di * 4);
        for (int c = di; c < ldx; c++) dkept &= dxs[(long)t * ldx + c] == 7.0f;
    }
    de = rel_d(dxs, ldx, dwant, di, T, di);
    CHECK(de <= 1e-6 && dbits && dkept, "conv backward T %d di %d K %d: %.3g from the double sum, float bits %d, rows' rest kept %d",
          T, di, K, de, dbits, dkept);
    /* SiLU's backward folded in: the bits of sl_silu_backward's pass, then
     * the transpose, in dx and in dy (multiplied in place); from the conv
     * before SiLU, or from SiLU' as the forward kept it */
    float *spre = malloc(td * 4), *dy1 = malloc(td * 4), *dy2 = malloc(td * 4), *dx1 = malloc((size_t)T * ldx * 4);
    float *dsilu = malloc(td * 4), *dy3 = malloc(td * 4), *dx3 = malloc((size_t)T * ldx * 4);
    fill(spre, td, -6, 6);
    sl_mamba_silu_keep(spre, di, T, di, act, dsilu);
    memcpy(dy1, dy, td * 4), memcpy(dy2, dy, td * 4), memcpy(dy3, dy, td * 4);
    for (size_t k = 0; k < (size_t)T * ldx; k++) dx1[k] = dxs[k] = dx3[k] = 7.0f;
    sl_silu_backward(spre, dy1, (long)td);
    sl_mamba_silu_conv_backward(NULL, NULL, dy1, T, di, K, w, dx1, ldx);
    sl_mamba_silu_conv_backward(spre, NULL, dy2, T, di, K, w, dxs, ldx);
    sl_mamba_silu_conv_backward(NULL, dsilu, dy3, T, di, K, w, dx3, ldx);
    CHECK(!memcmp(dx1, dxs, (size_t)T * ldx * 4) && !memcmp(dy1, dy2, td * 4),
          "SiLU + conv backward T %d di %d K %d: not the bits of SiLU's backward, then the transpose", T, di, K);
    CHECK(!memcmp(dx1, dx3, (size_t)T * ldx * 4) && !memcmp(dy1, dy3, td * 4),
          "SiLU + conv backward T %d di %d K %d from the kept SiLU': not the bits of SiLU's backward, then the transpose",
          T, di, K);
    free(spre), free(dy1), free(dy2), free(dx1), free(dsilu), free(dy3), free(dx3);
    free(x), free(w), free(b), free(out), free(pre), free(act), free(ref), free(dxs), free(dref), free(want), free(dwant);
    free(dy);
}

/* Inputs for the elementwise kernels: every special value, both sides of
 * each threshold of sl_exp and sl_softplus (-87.3, 88.03 where its scale
 * overflows, 88.7, 20), subnormals, and random values over a wide range. */
static size_t special_inputs(float *v, size_t n)
{
    static const unsigned bits[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u,
                                    0x7fa00000u, 0x00000001u, 0x807fffffu, 0x00800000u, 0x7f7fffffu, 0xff7fffffu};
    static const float vals[] = {-87.3f, -87.31f, 87.3f, 87.31f, 88.02f, 88.05f, 88.5f, 88.7f, 88.71f, -88.5f, -88.71f,
                                 20.0f,  20.01f,  -20.0f, 1.0f,  -1.0f,  1e-8f,  -1e-8f, 17.0f, -17.0f, 1e30f, -1e30f};
    size_t k = 0;
    for (size_t i = 0; i < sizeof bits / sizeof *bits; i++) memcpy(v + k++, bits + i, 4);
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) v[k++] = vals[i];
    for (; k < n; k++) {
        double u = uniform(0, 1);
        v[k] = k % 3 == 0 ? (float)uniform(-10, 10) : k % 3 == 1 ? (float)uniform(-100, 100)
                                                                  : (float)(exp(uniform(-30, 5)) * (u < 0.5 ? -1 : 1));
    }
    return k;
}

/* 1 when a and b hold the same bits, or both a NaN (which NaN an
 * operation on two of them returns depends on the instruction's operand
 * order, the compiler's choice); else the first difference to stderr */
static int same_bits(const float *a, const float *b, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (memcmp(a + k, b + k, sizeof *a) && !(isnan(a[k]) && isnan(b[k]))) {
            unsigned ua, ub;
            memcpy(&ua, a + k, 4), memcpy(&ub, b + k, 4);
            fprintf(stderr, "element %zu: %08x (%.9g), not %08x (%.9g)\n", k, ua, a[k], ub, b[k]);
            return 0;
        }
    return 1;
}

/* The elementwise kernels (softplus, SiLU, the gate and their backward
 * passes) give the scalar functions of core/mathx.h bit for bit, a NaN for
 * a NaN: their 16-lane forms (core/mathx16.h) only rewrite the same
 * operations. Rows of odd width with strides take the kernels' four vectors
 * at once, then single ones, the last masked. */
static void elementwise_case(void)
{
    enum { T = 37, DI = 93, LD = 101, N = T * LD }; /* rows: four vectors at once, then two, the last partial */
    float *z = malloc(N * 4), *y = malloc(N * 4), *g = malloc(N * 4), *out = malloc(N * 4), *want = malloc(N * 4);
    float *w2 = malloc(N * 4), *o2 = malloc(N * 4);
    special_inputs(z, N);
    fill(y, N, -2, 2);
    fill(g, N, -2, 2);
    for (size_t k = 0; k < N; k++) want[k] = sl_softplus(z[k]);
    memcpy(out, z, N * 4);
    sl_mamba_softplus(out, N, NULL);
    CHECK(same_bits(out, want, N), "softplus: not sl_softplus's bits");
    memcpy(out, z, N * 4);
    sl_mamba_softplus(out, N, o2);
    for (size_t k = 0; k < N; k++) w2[k] = sl_softplus_grad(z[k]);
    CHECK(same_bits(out, want, N) && same_bits(o2, w2, N),
          "softplus keeping softplus': not the same bits, or not sl_softplus_grad's");
    /* sl_softplus_grad is the logistic: to float rounding, or a tiny
     * absolute error where sl_exp's clamp makes exp(-|x|) 1.2e-38 */
    int near = 1;
    for (size_t k = 0; k < N; k++) {
        double x = z[k], want_g = x > 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
        if (!isnan(x)) near &= fabs(w2[k] - want_g) <= 1e-37 + 3e-7 * want_g;
    }
    CHECK(near, "sl_softplus_grad: not the logistic function to float rounding");

    for (size_t k = 0; k < N; k++) out[k] = want[k] = 7.0f;
    sl_mamba_silu(z, LD, T, DI, out);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < DI; c++) want[t * DI + c] = sl_silu(z[t * LD + c]);
    CHECK(same_bits(out, want, N), "SiLU rows: not sl_silu's bits");
    for (size_t k = 0; k < N; k++) o2[k] = w2[k] = 7.0f;
    sl_mamba_silu_keep(z, LD, T, DI, out, o2);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < DI; c++) w2[t * DI + c] = sl_silu_grad_of(z[t * LD + c], sl_logistic(z[t * LD + c]));
    CHECK(same_bits(out, want, N) && same_bits(o2, w2, N), "SiLU rows keeping SiLU': not sl_silu's bits, or not SiLU's backward's");

    for (size_t k = 0; k < N; k++) out[k] = want[k] = 7.0f;
    sl_mamba_gate(z, LD, y, LD, T, DI, out, LD);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < DI; c++) want[t * LD + c] = y[t * LD + c] * sl_silu(z[t * LD + c]);
    CHECK(same_bits(out, want, N), "gate: not y * sl_silu(z)'s bits (or wrote past its rows)");
    /* keeping SiLU(z) as z s in z, and SiLU'(z) */
    float *zk = malloc(N * 4), *dk = malloc(N * 4), *wz = malloc(N * 4), *wk = malloc(N * 4);
    memcpy(zk, z, N * 4), memcpy(wz, z, N * 4);
    for (size_t k = 0; k < N; k++) out[k] = dk[k] = wk[k] = 7.0f;
    sl_mamba_gate_keep(zk, LD, y, LD, T, DI, out, LD, dk, LD);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < DI; c++) {
            float zv = z[t * LD + c], s = sl_logistic(zv);
            wz[t * LD + c] = zv * s;
            wk[t * LD + c] = sl_silu_grad_of(zv, s);
        }
    CHECK(same_bits(out, want, N) && same_bits(zk, wz, N) && same_bits(dk, wk, N),
          "gate keeping: not the gate's bits, or not SiLU(z) as z s, or not SiLU'(z)");

    memcpy(out, g, N * 4);
    sl_silu_backward(z, out, N);
    for (size_t k = 0; k < N; k++) {
        float s = sl_logistic(z[k]);
        want[k] = g[k] * (s * (1.0f + z[k] * (1.0f - s)));
    }
    CHECK(same_bits(out, want, N), "SiLU backward: not the scalar formula's bits");

    /* dz = dy y SiLU'(z), and dy becomes dy z s, from what the gate kept:
     * rows of di for y and dy, of LD for z and dz */
    memcpy(out, g, N * 4), memcpy(want, g, N * 4);
    for (size_t k = 0; k < N; k++) o2[k] = w2[k] = 7.0f;
    sl_mamba_gate_backward_kept(zk, dk, LD, y, T, DI, out, o2, LD);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < DI; c++) {
            float zv = z[t * LD + c], s = sl_logistic(zv), gy = want[t * DI + c];
            w2[t * LD + c] = gy * y[t * DI + c] * (s * (1.0f + zv * (1.0f - s)));
            want[t * DI + c] = gy * (zv * s);
        }
    CHECK(same_bits(out, want, N) && same_bits(o2, w2, N), "gate backward: not the scalar formulas' bits");
    free(zk), free(dk), free(wz), free(wk);
    free(z), free(y), free(g), free(out), free(want), free(w2), free(o2);
}

/* RMSNorm's backward over many rows (eight at a time, the AVX-512 sums of
 * eight rows transposed) gives each row the bits of that row alone (the
 * plain loop), and accumulating adds to dx the bits it would have written;
 * d 64 and 32 also take the multiply by 1 / d that stands for dividing. */
static void rmsnorm_case(int rows, int d)
{
    size_t n = (size_t)rows * d;
    float *x = malloc(n * 4), *dy = malloc(n * 4), *w = malloc((size_t)d * 4), *all = malloc(n * 4), *one = malloc(n * 4);
    float *acc = malloc(n * 4);
    fill(x, n, -3, 3);
    fill(dy, n, -1, 1);
    fill(w, (size_t)d, 0.5, 1.5);
    for (size_t k = 0; k < n; k += 97) x[k] *= 1e-3f; /* some elements of another scale */
    sl_rmsnorm_backward(x, w, 1e-5f, rows, d, dy, all, 0);
    for (int r = 0; r < rows; r++) sl_rmsnorm_backward(x + (long)r * d, w, 1e-5f, 1, d, dy + (long)r * d, one + (long)r * d, 0);
    fill(acc, n, -1, 1);
    float *want = malloc(n * 4);
    for (size_t k = 0; k < n; k++) want[k] = acc[k] + all[k];
    sl_rmsnorm_backward(x, w, 1e-5f, rows, d, dy, acc, 1);
    CHECK(same_bits(all, one, n) && same_bits(acc, want, n),
          "RMSNorm backward, %d rows of %d: rows at once not the bits of one row at a time (%d), or accumulating not "
          "dx + the same (%d)", rows, d, same_bits(all, one, n), same_bits(acc, want, n));
    free(x), free(dy), free(w), free(all), free(one), free(acc), free(want);
}

int main(void)
{
    shape shapes[] = {
        {70, 16, 4},  {100, 32, 16}, {65, 48, 20}, {2 * SL_SCAN_CHUNK, 16, 33}, {1, 16, 16}, {31, 128, 16},
        {40, 24, 5},  {97, 40, 16},  {50, 20, 4},  {SL_SCAN_CHUNK + 1, 5, 3}, {600, 32, 20}, {530, 128, 16},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) scan_case(shapes[i]);
    static const int convs[][4] = {{64, 128, 4, 1}, {64, 128, 4, 0}, {5, 20, 4, 1}, {3, 16, 4, 1},   {1, 40, 4, 1},
                                   {2, 16, 4, 0},   {9, 300, 3, 1},  {33, 24, 2, 1}, {17, 24, 5, 0}, {20, 24, 9, 1},
                                   {4, 8, 8, 1},    {70, 256, 4, 1}, {9, 272, 4, 1}, {6, 264, 6, 0}};
    for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) conv_case(convs[i][0], convs[i][1], convs[i][2], convs[i][3]);
    elementwise_case();
    static const int norms[][2] = {{67, 64}, {16, 32}, {21, 40}, {9, 7}, {3, 64}};
    for (size_t i = 0; i < sizeof norms / sizeof *norms; i++) rmsnorm_case(norms[i][0], norms[i][1]);
    return TEST_SUMMARY();
}
