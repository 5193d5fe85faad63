/* Mamba-2's kernels on the CPU (models/mamba2_cpu.h): delta's activation,
 * the SSD recurrence and its reverse, the gated RMSNorm and its backward.
 *
 * The SSD's decay is one scalar per position and head (Mamba-1's is one per
 * channel and state), so a head's state [N][P] is updated by a broadcast
 * decay across its channels: the state is laid out [H][N][P] and the inner
 * loop runs over blocks of up to four vectors of 16 (AVX-512) or 8 channels
 * of one head (models/mamba2_ssd_lanes.h), the broadcasts of B_t[n] and
 * C_t[n] shared by the block and y kept in registers across the states. A
 * headdim that is not a multiple of 8 takes the plain loops (the same
 * arithmetic, one channel at a time). The backward
 * recomputes the states SL_SSD_CHUNK positions at a time from the states
 * the forward kept before each chunk (as Mamba-1's,
 * models/mamba_scan_backward.c). */
#include "models/mamba2_cpu.h"

#include <math.h>
#include <string.h>

#include "core/mathx.h"
#include "core/simd.h"
#include "models/mamba_scan.h"

/* The backward's partial sums of dB and dC: lanes per state (the widest vector's). */
#define SSD_PART_LANES 16

void sl_delta2(const float *dt, int lddt, int T, int H, const float *bias, float lo, float hi, float *delta, int ldd)
{
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            float v = sl_softplus(dt[(long)t * lddt + h] + bias[h]);
            v = v < lo ? lo : v;
            delta[(long)t * ldd + h] = v > hi ? hi : v;
        }
}

void sl_delta2_backward(const float *dt, int lddt, int T, int H, const float *bias, float lo, float hi,
                        const float *dd, int lddd, float *ddt, int ldddt)
{
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            float pre = dt[(long)t * lddt + h] + bias[h], v = sl_softplus(pre);
            float g = v >= lo && v <= hi ? dd[(long)t * lddd + h] : 0.0f;
            ddt[(long)t * ldddt + h] = g * (pre > 20.0f ? 1.0f : sl_logistic(pre));
        }
}

static size_t chunks(int L) { return ((size_t)L + SL_SSD_CHUNK - 1) / SL_SSD_CHUNK; }

size_t sl_ssd_ckpt_floats(int H, int P, int N, int L) { return chunks(L) * sl_ssd_state_floats(H, P, N); }

size_t sl_ssd_scratch_floats(int H, int P, int G, int N)
{
    (void)H;
    return (SL_SSD_CHUNK + 2) * sl_ssd_state_floats(H, P, N) + 2 * SSD_PART_LANES * (size_t)G * N;
}

/* After position t, the state the backward restarts chunk (t + 1) / C from. */
static void checkpoint(const float *state, int t, int T, size_t plane, float *ckpt)
{
    if (ckpt && (t + 1) % SL_SSD_CHUNK == 0 && t + 1 < T)
        memcpy(ckpt + (size_t)(t + 1) / SL_SSD_CHUNK * plane, state, plane * sizeof *state);
}

/* What one head reads at one position. */
typedef struct {
    const float *x, *B, *C, *Dc; /* x, B and C at the head (its group), Dc: D per channel or NULL */
    float delta, a, Dh;          /* delta, exp(delta A), D of the head */
} head_in;

/* Heads h0 .. h0 + n - 1 (n <= HEAD_BLOCK) at position t, their decays
 * in one loop that vectorises and their groups counted, not divided. */
enum { HEAD_BLOCK = 64 };

static void heads_at(const sl_ssd_in *in, int t, int h0, int n, head_in *out)
{
    float a[HEAD_BLOCK];
    const float *dl = in->delta + (long)t * in->ldd + h0, *A = in->A + h0;
    for (int j = 0; j < n; j++) a[j] = sl_exp(dl[j] * A[j]);
    int hpg = in->H / in->G, g = h0 / hpg, k = h0 % hpg;
    const float *x = in->x + (long)t * in->ldx, *B = in->B + (long)t * in->ldb, *C = in->C + (long)t * in->ldb;
    for (int j = 0; j < n; j++) {
        int h = h0 + j;
        out[j] = (head_in){x + (long)h * in->P, B + (long)g * in->N, C + (long)g * in->N,
                           in->D_per_channel ? in->D + (long)h * in->P : NULL, dl[j], a[j],
                           in->D_per_channel ? 0.0f : in->D[h]};
        if (++k == hpg) k = 0, g++;
    }
}

/* One head's gradient at one position: from g = d logit / d S_t (carried,
 * in gs) plus dy (x) C, with S_t = a S_{t-1} + delta x (x) B and
 * y = S_t C + D x: dx = D dy + delta (g B), d delta = x . (g B) + a A
 * (g . S_{t-1}), dB += delta g^T x, dC += S_t^T dy; then gs = a g. The
 * partial sums of dB and dC over the group's heads and channels are kept
 * in SSD_PART_LANES lanes per state. */
typedef struct {
    const float *s, *prev, *dy; /* S_t and S_{t-1} of the head ([N][P]), dy at the head */
    float *gs, *pB, *pC;        /* carried gradient of the head, partials of its group ([N][SSD_PART_LANES]) */
    float *dx;                  /* at the head */
    float A;
} head_grad;

#define SL_VW 8
#include "models/mamba2_ssd_lanes.h"
#ifdef __AVX512F__
#define SL_VW 16
#include "models/mamba2_ssd_lanes.h"
#endif

/* Any P: one channel at a time (the partials' lane 0 holds the sums). */
static void fwd_head_scalar(const head_in *hi, int P, int N, float *s, float *y)
{
    for (int p = 0; p < P; p++) {
        float xv = hi->x[p], dx = hi->delta * xv, acc = (hi->Dc ? hi->Dc[p] : hi->Dh) * xv;
        for (int n = 0; n < N; n++) {
            float *sp = s + (long)n * P + p;
            *sp = hi->a * *sp + dx * hi->B[n];
            acc += *sp * hi->C[n];
        }
        y[p] = acc;
    }
}

static void advance_head_scalar(const head_in *hi, int P, int N, const float *prev, float *next)
{
    for (int p = 0; p < P; p++) {
        float dx = hi->delta * hi->x[p];
        for (int n = 0; n < N; n++) next[(long)n * P + p] = hi->a * prev[(long)n * P + p] + dx * hi->B[n];
    }
}

static float bwd_head_scalar(const head_in *hi, const head_grad *hg, int P, int N)
{
    float dd = 0.0f;
    for (int p = 0; p < P; p++) {
        float xv = hi->x[p], dyv = hg->dy[p], dxv = hi->delta * xv, u = 0.0f, acc = 0.0f;
        for (int n = 0; n < N; n++) {
            long o = (long)n * P + p;
            float g = hg->gs[o] + dyv * hi->C[n];
            hg->pC[SSD_PART_LANES * n] += dyv * hg->s[o];
            hg->pB[SSD_PART_LANES * n] += g * dxv;
            acc += g * hg->prev[o];
            u += g * hi->B[n];
            hg->gs[o] = g * hi->a;
        }
        hg->dx[p] = (hi->Dc ? hi->Dc[p] : hi->Dh) * dyv + hi->delta * u;
        dd += xv * u + hi->a * hg->A * acc;
    }
    return dd;
}

/* The kernels of one width (or the plain loops) for a head of P channels. */
typedef struct {
    void (*fwd)(const head_in *hi, int P, int N, float *s, float *y);
    void (*advance)(const head_in *hi, int P, int N, const float *prev, float *next);
    float (*bwd)(const head_in *hi, const head_grad *hg, int P, int N);
} ssd_kernels;

static const ssd_kernels SCALAR = {fwd_head_scalar, advance_head_scalar, bwd_head_scalar};

/* Sixteen lanes where the build has AVX-512 and they divide P, else eight
 * where they do, else the plain loops. */
static ssd_kernels kernels_for(int P)
{
#ifdef __AVX512F__
    if (P % 16 == 0) return (ssd_kernels){fwd_head_v16, advance_head_v16, bwd_head_v16};
#endif
    if (P % 8 == 0) return (ssd_kernels){fwd_head_v8, advance_head_v8, bwd_head_v8};
    return SCALAR;
}

static void ssd_with(ssd_kernels k, const sl_ssd_in *in, const float *init, float *state, float *y, int ldy,
                     float *ckpt)
{
    int H = in->H, P = in->P, N = in->N;
    size_t plane = sl_ssd_state_floats(H, P, N);
    if (init) memcpy(state, init, plane * sizeof *state);
    else memset(state, 0, plane * sizeof *state);
    head_in hs[HEAD_BLOCK];
    for (int t = 0; t < in->T; t++) {
        for (int h0 = 0; h0 < H; h0 += HEAD_BLOCK) {
            int n = H - h0 < HEAD_BLOCK ? H - h0 : HEAD_BLOCK;
            heads_at(in, t, h0, n, hs);
            for (int j = 0, h = h0; j < n; j++, h++)
                k.fwd(&hs[j], P, N, state + (size_t)h * N * P, y + (long)t * ldy + (long)h * P);
        }
        checkpoint(state, t, in->T, plane, ckpt);
    }
}

void sl_ssd(const sl_ssd_in *in, float *state, float *y, int ldy, float *ckpt)
{
    ssd_with(kernels_for(in->P), in, NULL, state, y, ldy, ckpt);
}

void sl_ssd_from(const sl_ssd_in *in, const float *init, float *state, float *y, int ldy, float *ckpt)
{
    ssd_with(kernels_for(in->P), in, init, state, y, ldy, ckpt);
}

void sl_ssd_scalar(const sl_ssd_in *in, float *state, float *y, int ldy, float *ckpt)
{
    ssd_with(SCALAR, in, NULL, state, y, ldy, ckpt);
}

void sl_ssd_skip(const sl_ssd_in *in, float *y, int ldy)
{
    int di = in->H * in->P;
    for (int t = 0; t < in->T; t++)
        for (int c = 0; c < di; c++)
            y[(long)t * ldy + c] = (in->D_per_channel ? in->D[c] : in->D[c / in->P]) * in->x[(long)t * in->ldx + c];
}

/* ---- the reverse scan ---- */

/* The backward's scratch: states [C + 1][plane] (row 0: the state before
 * the chunk), the carried gradient d logit / d S [plane], and the partial
 * sums of dB and dC over a position's heads and channels
 * [2][G N][SSD_PART_LANES]. */
typedef struct {
    float *st, *gs, *pB, *pC;
    size_t plane;
} chunk_bufs;

static chunk_bufs chunk_view(const sl_ssd_in *in, float *base)
{
    chunk_bufs k = {.plane = sl_ssd_state_floats(in->H, in->P, in->N)};
    k.st = base;
    k.gs = k.st + (SL_SSD_CHUNK + 1) * k.plane;
    k.pB = k.gs + k.plane;
    k.pC = k.pB + SSD_PART_LANES * (size_t)in->G * in->N;
    return k;
}

static float lanes_sum(const float *p)
{
    float s = 0.0f;
    for (int l = 0; l < SSD_PART_LANES; l++) s += p[l];
    return s;
}

static void ssd_backward_with(ssd_kernels kn, const sl_ssd_in *in, const float *ckpt, const float *dy, int lddy,
                              float *scratch, float *dx, int lddx, float *dd, int lddd, float *dB, float *dC, int lddb)
{
    int H = in->H, P = in->P, N = in->N, GN = in->G * in->N;
    size_t hp = (size_t)N * P;
    head_in hs[HEAD_BLOCK];
    chunk_bufs k = chunk_view(in, scratch);
    memset(k.gs, 0, k.plane * sizeof *k.gs);
    for (int t0 = (in->T - 1) / SL_SSD_CHUNK * SL_SSD_CHUNK; t0 >= 0; t0 -= SL_SSD_CHUNK) {
        int t1 = t0 + SL_SSD_CHUNK < in->T ? t0 + SL_SSD_CHUNK : in->T;
        if (t0) memcpy(k.st, ckpt + (size_t)(t0 / SL_SSD_CHUNK) * k.plane, k.plane * sizeof *k.st);
        else memset(k.st, 0, k.plane * sizeof *k.st);
        for (int t = t0; t < t1; t++) {
            float *prev = k.st + (size_t)(t - t0) * k.plane, *next = prev + k.plane;
            for (int h0 = 0; h0 < H; h0 += HEAD_BLOCK) {
                int n = H - h0 < HEAD_BLOCK ? H - h0 : HEAD_BLOCK;
                heads_at(in, t, h0, n, hs);
                for (int j = 0, h = h0; j < n; j++, h++)
                    kn.advance(&hs[j], P, N, prev + (size_t)h * hp, next + (size_t)h * hp);
            }
        }
        for (int t = t1 - 1; t >= t0; t--) {
            const float *s = k.st + (size_t)(t - t0 + 1) * k.plane;
            memset(k.pB, 0, 2 * SSD_PART_LANES * (size_t)GN * sizeof *k.pB);
            for (int h0 = 0; h0 < H; h0 += HEAD_BLOCK) {
                int n = H - h0 < HEAD_BLOCK ? H - h0 : HEAD_BLOCK;
                heads_at(in, t, h0, n, hs);
                for (int j = 0, h = h0; j < n; j++, h++) {
                    /* the partials of the head's group: where its B begins in the row */
                    size_t go = SSD_PART_LANES * (size_t)(hs[j].B - (in->B + (long)t * in->ldb));
                    head_grad hg = {s + h * hp, s - k.plane + h * hp, dy + (long)t * lddy + (long)h * P, k.gs + h * hp,
                                    k.pB + go, k.pC + go, dx + (long)t * lddx + (long)h * P, in->A[h]};
                    dd[(long)t * lddd + h] = kn.bwd(&hs[j], &hg, P, N);
                }
            }
            for (int q = 0; q < GN; q++) {
                dB[(long)t * lddb + q] = lanes_sum(k.pB + SSD_PART_LANES * q);
                dC[(long)t * lddb + q] = lanes_sum(k.pC + SSD_PART_LANES * q);
            }
        }
    }
}

void sl_ssd_backward(const sl_ssd_in *in, const float *ckpt, const float *dy, int lddy, float *scratch, float *dx,
                     int lddx, float *dd, int lddd, float *dB, float *dC, int lddb)
{
    ssd_backward_with(kernels_for(in->P), in, ckpt, dy, lddy, scratch, dx, lddx, dd, lddd, dB, dC, lddb);
}

void sl_ssd_backward_scalar(const sl_ssd_in *in, const float *ckpt, const float *dy, int lddy, float *scratch,
                            float *dx, int lddx, float *dd, int lddd, float *dB, float *dC, int lddb)
{
    ssd_backward_with(SCALAR, in, ckpt, dy, lddy, scratch, dx, lddx, dd, lddd, dB, dC, lddb);
}

/* ---- the gated norm ---- */

/* 1 / sqrt(mean of v^2 + eps) over n values (v = a b, or a with b NULL),
 * the sum in lanes */
static float rstd_of(const float *a, const float *b, int n, float eps)
{
    float ss = 0.0f;
    if (b) {
#pragma omp simd reduction(+ : ss)
        for (int i = 0; i < n; i++) ss += (a[i] * b[i]) * (a[i] * b[i]);
    } else {
#pragma omp simd reduction(+ : ss)
        for (int i = 0; i < n; i++) ss += a[i] * a[i];
    }
    return 1.0f / sqrtf(ss / n + eps);
}

void sl_gated_norm(const float *y, int ldy, const float *g, int ldg, int T, int di, const float *w, int group,
                   float eps, int before, float *out, int ldo)
{
    for (int t = 0; t < T; t++) {
        const float *yt = y + (long)t * ldy, *gt = g + (long)t * ldg;
        float *ot = out + (long)t * ldo;
        if (!w) {
            for (int i = 0; i < di; i++) ot[i] = yt[i] * gt[i];
            continue;
        }
        for (int c0 = 0; c0 < di; c0 += group) {
            const float *yg = yt + c0, *gg = gt + c0, *wg = w + c0;
            float *og = ot + c0;
            float r = rstd_of(yg, before ? NULL : gg, group, eps);
            if (before)
                for (int i = 0; i < group; i++) og[i] = yg[i] * r * wg[i] * gg[i];
            else
                for (int i = 0; i < group; i++) og[i] = yg[i] * gg[i] * r * wg[i];
        }
    }
}

/* Without the norm: out = y g, g = SiLU(z). */
static void gate_only_backward(const float *y, const float *z, const float *o, int n, float *dy, float *dz)
{
#pragma omp simd
    for (int i = 0; i < n; i++) {
        float sg = sl_logistic(z[i]), dout = o[i];
        dz[i] = dout * y[i] * sl_silu_grad_of(z[i], sg);
        dy[i] = dout * z[i] * sg;
    }
}

/* One group with the norm after the gate: v = y s, out = v r w, so
 * dv = r w o - v r^3 (sum w o v) / n, dy = dv s, dz = dv y s'. */
static void norm_after_backward(const float *y, const float *z, const float *w, const float *o, int n, float eps,
                                float *dy, float *dz)
{
    float ss = 0.0f, dot = 0.0f;
#pragma omp simd reduction(+ : ss, dot)
    for (int i = 0; i < n; i++) {
        float v = y[i] * z[i] * sl_logistic(z[i]);
        ss += v * v;
        dot += w[i] * o[i] * v;
    }
    float r = 1.0f / sqrtf(ss / n + eps), k = dot * r * r * r / n;
#pragma omp simd
    for (int i = 0; i < n; i++) {
        float sg = sl_logistic(z[i]), s = z[i] * sg, dv = r * w[i] * o[i] - y[i] * s * k;
        dz[i] = dv * y[i] * sl_silu_grad_of(z[i], sg);
        dy[i] = dv * s;
    }
}

/* One group with the norm before the gate: out = y r w s, so dz = o y r w
 * s', and with dn = o s: dy = r w dn - y r^3 (sum w dn y) / n. */
static void norm_before_backward(const float *y, const float *z, const float *w, const float *o, int n, float eps,
                                 float *dy, float *dz)
{
    float ss = 0.0f, dot = 0.0f;
#pragma omp simd reduction(+ : ss, dot)
    for (int i = 0; i < n; i++) {
        ss += y[i] * y[i];
        dot += w[i] * o[i] * z[i] * sl_logistic(z[i]) * y[i];
    }
    float r = 1.0f / sqrtf(ss / n + eps), k = dot * r * r * r / n;
#pragma omp simd
    for (int i = 0; i < n; i++) {
        float sg = sl_logistic(z[i]), dout = o[i];
        dz[i] = dout * y[i] * r * w[i] * sl_silu_grad_of(z[i], sg);
        dy[i] = r * w[i] * dout * z[i] * sg - y[i] * k;
    }
}

void sl_gated_norm_backward(const float *y, int ldy, const float *z, int ldz, int T, int di, const float *w, int group,
                            float eps, int before, const float *dout, int lddo, float *dy, int lddy, float *dz,
                            int lddz)
{
    for (int t = 0; t < T; t++) {
        const float *yt = y + (long)t * ldy, *zt = z + (long)t * ldz, *ot = dout + (long)t * lddo;
        float *dyt = dy + (long)t * lddy, *dzt = dz + (long)t * lddz;
        if (!w) {
            gate_only_backward(yt, zt, ot, di, dyt, dzt);
            continue;
        }
        for (int c = 0; c < di; c += group)
            (before ? norm_before_backward : norm_after_backward)(yt + c, zt + c, w + c, ot + c, group, eps, dyt + c,
                                                                  dzt + c);
    }
}
