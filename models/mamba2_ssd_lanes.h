/* The SSD's vector kernels for one width, included by models/mamba2_cpu.c
 * once per width (so no include guard) with SL_VW defined;
 * core/simd_width.h gives the vector type and names. A
 * head's P channels (a multiple of SL_VW) run in blocks of 4, 2 and 1
 * vectors; the states go two at a time, each with its own accumulators, so
 * that the FMA chains across the states (y, and the backward's sums) are
 * twice as many as the block's vectors and hide their latency. */

#include "core/simd_width.h"

/* Channels p0 .. p0 + SL_VW nv - 1 of one head at one position: its state
 * s ([N][P], at column p0) advanced and y written. */
static inline __attribute__((always_inline)) void SL_VN(fwd_block)(int nv, const head_in *hi, int p0, int P, int N,
                                                                   float *s, float *y)
{
    SL_V dx[4], acc[4], acc1[4], a = SL_VSET1(hi->a);
    for (int v = 0; v < nv; v++) {
        SL_V x = SL_VLOAD(hi->x + p0 + SL_VW * v);
        dx[v] = SL_VSET1(hi->delta) * x;
        acc[v] = (hi->Dc ? SL_VLOAD(hi->Dc + p0 + SL_VW * v) : SL_VSET1(hi->Dh)) * x;
        acc1[v] = SL_VSET1(0.0f);
    }
    int n = 0;
    for (; n + 2 <= N; n += 2) {
        SL_V b0 = SL_VSET1(hi->B[n]), c0 = SL_VSET1(hi->C[n]), b1 = SL_VSET1(hi->B[n + 1]), c1 = SL_VSET1(hi->C[n + 1]);
        float *s0 = s + (long)n * P + p0, *s1 = s0 + P;
        for (int v = 0; v < nv; v++) {
            SL_V u0 = a * SL_VLOAD(s0 + SL_VW * v) + dx[v] * b0, u1 = a * SL_VLOAD(s1 + SL_VW * v) + dx[v] * b1;
            SL_VSTORE(s0 + SL_VW * v, u0);
            SL_VSTORE(s1 + SL_VW * v, u1);
            acc[v] += u0 * c0;
            acc1[v] += u1 * c1;
        }
    }
    if (n < N) {
        SL_V b0 = SL_VSET1(hi->B[n]), c0 = SL_VSET1(hi->C[n]);
        float *s0 = s + (long)n * P + p0;
        for (int v = 0; v < nv; v++) {
            SL_V u0 = a * SL_VLOAD(s0 + SL_VW * v) + dx[v] * b0;
            SL_VSTORE(s0 + SL_VW * v, u0);
            acc[v] += u0 * c0;
        }
    }
    for (int v = 0; v < nv; v++) SL_VSTORE(y + p0 + SL_VW * v, acc[v] + acc1[v]);
}

static void SL_VN(fwd_head)(const head_in *hi, int P, int N, float *s, float *y)
{
    int p0 = 0;
    for (; p0 + 4 * SL_VW <= P; p0 += 4 * SL_VW) SL_VN(fwd_block)(4, hi, p0, P, N, s, y);
    if (p0 + 2 * SL_VW <= P) SL_VN(fwd_block)(2, hi, p0, P, N, s, y), p0 += 2 * SL_VW;
    if (p0 + SL_VW <= P) SL_VN(fwd_block)(1, hi, p0, P, N, s, y);
}

/* The backward's recomputation: next = a prev + delta x (x) B of a head,
 * the forward's arithmetic without y (so the same states, bit for bit). */
static void SL_VN(advance_head)(const head_in *hi, int P, int N, const float *prev, float *next)
{
    SL_V a = SL_VSET1(hi->a);
    for (int p0 = 0; p0 < P; p0 += SL_VW) {
        SL_V dx = SL_VSET1(hi->delta) * SL_VLOAD(hi->x + p0);
        for (int n = 0; n < N; n++)
            SL_VSTORE(next + (long)n * P + p0, a * SL_VLOAD(prev + (long)n * P + p0) + dx * SL_VSET1(hi->B[n]));
    }
}

/* One state n of a block's reverse step (bwd_block's comment), its sums
 * u (g B) and acc (g S_{t-1}) in the accumulators given. */
static inline __attribute__((always_inline)) void SL_VN(bwd_state)(int nv, const head_in *hi, const head_grad *hg,
                                                                   int n, int p0, int P, const SL_V *dy,
                                                                   const SL_V *dxv, SL_V a, SL_V *u, SL_V *acc)
{
    SL_V b = SL_VSET1(hi->B[n]), c = SL_VSET1(hi->C[n]);
    SL_V pb = SL_VLOAD(hg->pB + SSD_PART_LANES * n), pc = SL_VLOAD(hg->pC + SSD_PART_LANES * n);
    long o = (long)n * P + p0;
    for (int v = 0; v < nv; v++) {
        SL_V g = SL_VLOAD(hg->gs + o + SL_VW * v) + dy[v] * c;
        pc += dy[v] * SL_VLOAD(hg->s + o + SL_VW * v);
        pb += g * dxv[v];
        acc[v] += g * SL_VLOAD(hg->prev + o + SL_VW * v);
        u[v] += g * b;
        SL_VSTORE(hg->gs + o + SL_VW * v, g * a);
    }
    SL_VSTORE(hg->pB + SSD_PART_LANES * n, pb);
    SL_VSTORE(hg->pC + SSD_PART_LANES * n, pc);
}

/* Channels p0 .. p0 + SL_VW nv - 1 of one head at one position, in
 * reverse: dx written, the head's d delta added to *dd in lanes, the
 * group's dB and dC partials added to. */
static inline __attribute__((always_inline)) void SL_VN(bwd_block)(int nv, const head_in *hi, const head_grad *hg,
                                                                   int p0, int P, int N, SL_V *dd)
{
    SL_V x[4], dy[4], dxv[4], u[4], acc[4], u1[4], acc1[4], a = SL_VSET1(hi->a);
    for (int v = 0; v < nv; v++) {
        x[v] = SL_VLOAD(hi->x + p0 + SL_VW * v);
        dy[v] = SL_VLOAD(hg->dy + p0 + SL_VW * v);
        dxv[v] = SL_VSET1(hi->delta) * x[v];
        u[v] = acc[v] = u1[v] = acc1[v] = SL_VSET1(0.0f);
    }
    int n = 0;
    for (; n + 2 <= N; n += 2) {
        SL_VN(bwd_state)(nv, hi, hg, n, p0, P, dy, dxv, a, u, acc);
        SL_VN(bwd_state)(nv, hi, hg, n + 1, p0, P, dy, dxv, a, u1, acc1);
    }
    if (n < N) SL_VN(bwd_state)(nv, hi, hg, n, p0, P, dy, dxv, a, u, acc);
    SL_V aA = SL_VSET1(hi->a * hg->A);
    for (int v = 0; v < nv; v++) {
        SL_V d = hi->Dc ? SL_VLOAD(hi->Dc + p0 + SL_VW * v) : SL_VSET1(hi->Dh), uu = u[v] + u1[v];
        SL_VSTORE(hg->dx + p0 + SL_VW * v, d * dy[v] + SL_VSET1(hi->delta) * uu);
        *dd += x[v] * uu + aA * (acc[v] + acc1[v]);
    }
}

static float SL_VN(bwd_head)(const head_in *hi, const head_grad *hg, int P, int N)
{
    SL_V dd = SL_VSET1(0.0f);
    int p0 = 0;
    for (; p0 + 4 * SL_VW <= P; p0 += 4 * SL_VW) SL_VN(bwd_block)(4, hi, hg, p0, P, N, &dd);
    if (p0 + 2 * SL_VW <= P) SL_VN(bwd_block)(2, hi, hg, p0, P, N, &dd), p0 += 2 * SL_VW;
    if (p0 + SL_VW <= P) SL_VN(bwd_block)(1, hi, hg, p0, P, N, &dd);
    float sum = 0.0f;
    for (int l = 0; l < SL_VW; l++) sum += dd[l];
    return sum;
}

#include "core/simd_width_end.h"
