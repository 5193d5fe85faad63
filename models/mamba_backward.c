/* The CPU's kernels of a Mamba-1 block's backward (the block's steps:
 * models/mamba_grad.c), from the activations its taped forward kept
 * (models/mamba_scan.h). Nothing of the block runs again but the scan's
 * states, SL_SCAN_CHUNK positions at a time from the state kept before the
 * chunk. The
 * reverse scan runs eight channels to a vector like the forward's scan_v8
 * (sixteen on AVX-512 where d_inner is a multiple of 16: chunk_states_v16, chunk_reverse_v16);
 * a d_inner that is not a multiple of 8 gets a last vector padded with zero
 * lanes, which add nothing.
 *
 * Memory per thread, d_model 64 (d_inner 128, d_state 16, dt_rank 4),
 * 4 layers, L 4,096: the tape 4 x 4,096 x 932 floats = 61.1 MB, the kept
 * states 4 x 128 x 8 KiB = 4.2 MB, the chunk scratch 0.55 MB; every state
 * of the scan, which the backward kept before, would be 32 MiB a layer. */
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/mathx.h"
#include "core/mathx16.h"
#include "core/simd.h"
#include "models/backward.h"
#include "models/mamba_scan.h"

static int round8(int n) { return (n + 7) & ~7; }

/* Floats a position of one block's tape takes: xz, xc, xdbl, y, xpre,
 * dpre, delta. */
static size_t tape_row(const sl_config *c) { return 7 * (size_t)c->d_inner + c->dt_rank + 2 * (size_t)c->d_state; }

static size_t chunks(size_t L) { return (L + SL_SCAN_CHUNK - 1) / SL_SCAN_CHUNK; }

sl_mamba_tape sl_mamba_tape_at(const sl_model *m, sl_workspace *ws, int i)
{
    const sl_config *c = &m->c;
    size_t L = (size_t)ws->max_len, di = (size_t)c->d_inner, nx = (size_t)c->dt_rank + 2 * (size_t)c->d_state;
    float *base = ws->bw->mtape + (size_t)i * L * tape_row(c);
    float *xc = base + L * 2 * di, *xdbl = xc + L * di, *y = xdbl + L * nx, *xpre = y + L * di;
    sl_mamba_tape tp = {base, xc, xdbl, y, xpre, xpre + L * di, xpre + 2 * L * di,
                        ws->bw->ckpt + (size_t)i * chunks(L) * c->d_state * di};
    return tp;
}

/* The chunk's scratch, rows padded to di8 channels: states [C + 1][S]
 * (row 0: the state before the chunk), decays exp(delta A) [C][S], A [S],
 * the carried gradient d logit / d state [S], D, and the per-lane sums of
 * dB and dC over the channels of one position [2][S][8]. */
typedef struct {
    float *st, *at, *A, *ds, *D, *part;
    long plane;
    int di8;
} chunk_bufs;

static size_t chunk_floats(int di, int S)
{
    size_t di8 = (size_t)round8(di), plane = (size_t)S * di8;
    return (2 * SL_SCAN_CHUNK + 3) * plane + di8 + 16 * (size_t)S;
}

static chunk_bufs chunk_view(int di, int S, float *base)
{
    chunk_bufs k = {.di8 = round8(di)};
    k.plane = (long)S * k.di8;
    k.st = base;
    k.at = k.st + (SL_SCAN_CHUNK + 1) * k.plane;
    k.A = k.at + SL_SCAN_CHUNK * k.plane;
    k.ds = k.A + k.plane;
    k.D = k.ds + k.plane;
    k.part = k.D + k.di8;
    return k;
}

int sl_mamba_backward_alloc(const sl_config *c, size_t L, sl_backward_ws *b)
{
    size_t tape, ckpt, per = tape_row(c) * 4, plane = (size_t)c->d_state * c->d_inner * 4;
    size_t chunk = (chunk_floats(c->d_inner, c->d_state) * 4 + 63) & ~(size_t)63; /* aligned_alloc wants a multiple of the alignment */
    if (__builtin_mul_overflow(L * (size_t)c->n_layers, per, &tape)
        || __builtin_mul_overflow(chunks(L) * (size_t)c->n_layers, plane, &ckpt))
        return 0;
    return (b->mtape = malloc(tape)) && (b->ckpt = malloc(ckpt)) && (b->chunk = aligned_alloc(64, chunk));
}

static inline float hsum(const float *p)
{
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* The scan's inputs for one block. */
typedef struct {
    const float *xc, *delta, *xdbl, *dy; /* dy: d logit / d y, the scan's output */
    int di, S, R, nx;                    /* R: where B begins in a row of xdbl, nx: its stride */
} scan_in;
/* s_t for t0 <= t < t1 into st[1 + t - t0] from st[0] = s_{t0-1}, and
 * exp(delta_t A) into at[t - t0]: the forward's recurrence (scan_v8). */
static void chunk_states(const chunk_bufs *k, const scan_in *in, int t0, int t1)
{
    int di = in->di, S = in->S;
    for (int t = t0; t < t1; t++) {
        const float *sp = k->st + (t - t0) * k->plane, *Bt = in->xdbl + (long)t * in->nx + in->R;
        float *sn = k->st + (t - t0 + 1) * k->plane, *an = k->at + (t - t0) * k->plane;
        for (int c = 0; c < di; c += 8) {
            v8f d8 = sl_load_lanes(in->delta + (long)t * di, c, di), dx = d8 * sl_load_lanes(in->xc + (long)t * di, c, di);
            for (int n = 0; n < S; n++) {
                long o = (long)n * k->di8 + c;
                v8f a = sl_scan_decay(d8, k->A + o);
                v8_store(sn + o, a * v8_load(sp + o) + dx * v8_set1(Bt[n]));
                v8_store(an + o, a);
            }
        }
    }
}

/* Positions t1-1 down to t0 of the reverse scan, with g = d logit / d s_t
 * carried in k->ds: s_t = a s_{t-1} + delta x B and y = s . C + D x give
 * g += dy C, d delta += g (s_{t-1} a A + x B), dx += g delta B + D dy,
 * dB += g delta x, dC += dy s_t, then g *= a for s_{t-1}. dx and d delta
 * of eight channels stay in registers across the states; dB and dC sum
 * across channels in per-lane partials, reduced once per position. */
static void chunk_reverse(const chunk_bufs *k, const scan_in *in, int t0, int t1, float *dx, float *dd, float *dxdbl)
{
    int di = in->di, S = in->S;
    float *dB = k->part, *dC = k->part + 8L * S;
    for (int t = t1 - 1; t >= t0; t--) {
        const float *s = k->st + (t - t0 + 1) * k->plane, *p = s - k->plane, *a = k->at + (t - t0) * k->plane;
        const float *Bt = in->xdbl + (long)t * in->nx + in->R, *Ct = Bt + S;
        for (int q = 0; q < 2 * S; q++) v8_store(k->part + 8 * q, v8_set1(0.0f));
        for (int c = 0; c < di; c += 8) {
            v8f d8 = sl_load_lanes(in->delta + (long)t * di, c, di), x8 = sl_load_lanes(in->xc + (long)t * di, c, di);
            v8f dy8 = sl_load_lanes(in->dy + (long)t * di, c, di), dxv = d8 * x8, u = v8_set1(0.0f), acc = u;
            for (int n = 0; n < S; n++) {
                long o = (long)n * k->di8 + c;
                v8f a8 = v8_load(a + o), g = v8_load(k->ds + o) + dy8 * v8_set1(Ct[n]);
                v8_store(dC + 8 * n, v8_load(dC + 8 * n) + dy8 * v8_load(s + o));
                v8_store(dB + 8 * n, v8_load(dB + 8 * n) + g * dxv);
                acc += g * (v8_load(p + o) * a8) * v8_load(k->A + o);
                u += g * v8_set1(Bt[n]);
                v8_store(k->ds + o, g * a8);
            }
            sl_store_lanes(dx + (long)t * di, c, di, v8_load(k->D + c) * dy8 + d8 * u);
            sl_store_lanes(dd + (long)t * di, c, di, acc + x8 * u);
        }
        float *row = dxdbl + (long)t * in->nx + in->R;
        for (int n = 0; n < S; n++) {
            row[n] = hsum(dB + 8 * n);
            row[S + n] = hsum(dC + 8 * n);
        }
    }
}

#ifdef __AVX512F__
/* chunk_states for a d_inner that is a multiple of 16 (di8 == di):
 * sixteen channels a register and up to sixteen states held in registers
 * across the chunk's positions, like the forward's scan_v16; the same
 * arithmetic lane by lane, so the same bits. */
static void chunk_states_v16(const chunk_bufs *k, const scan_in *in, int t0, int t1)
{
    int di = in->di, S = in->S;
    for (int c = 0; c < di; c += 16)
        for (int n0 = 0; n0 < S; n0 += 16) {
            int nn = S - n0 < 16 ? S - n0 : 16;
            long base = (long)n0 * di + c;
            v16f s[16];
            for (int n = 0; n < 16; n++) s[n] = n < nn ? v16_load(k->st + base + (long)n * di) : v16_set1(0.0f);
            for (int t = t0; t < t1; t++) {
                const float *Bt = in->xdbl + (long)t * in->nx + in->R + n0;
                float *sn = k->st + (t - t0 + 1) * k->plane + base, *an = k->at + (t - t0) * k->plane + base;
                v16f d16 = v16_load(in->delta + (long)t * di + c), dx = d16 * v16_load(in->xc + (long)t * di + c);
#pragma GCC unroll 16
                for (int n = 0; n < 16; n++)
                    if (n < nn) {
                        v16f a = sl_scan_decay16(d16, k->A + base + (long)n * di);
                        s[n] = a * s[n] + dx * v16_set1(Bt[n]);
                        v16_store(sn + (long)n * di, s[n]);
                        v16_store(an + (long)n * di, a);
                    }
            }
        }
}

static inline v8f lo8(v16f v) { return (v8f)_mm512_castps512_ps256((__m512)v); }
static inline v8f hi8(v16f v) { return (v8f)_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd((__m512)v), 1)); }

/* chunk_reverse for a d_inner that is a multiple of 16: sixteen channels a
 * register; the per-lane partial sums of dB and dC stay eight lanes wide,
 * each block of sixteen channels added as its two halves in turn, so
 * that every sum runs in chunk_reverse's order: the same bits. */
static void chunk_reverse_v16(const chunk_bufs *k, const scan_in *in, int t0, int t1, float *dx, float *dd, float *dxdbl)
{
    int di = in->di, S = in->S;
    float *dB = k->part, *dC = k->part + 8L * S;
    for (int t = t1 - 1; t >= t0; t--) {
        const float *s = k->st + (t - t0 + 1) * k->plane, *p = s - k->plane, *a = k->at + (t - t0) * k->plane;
        const float *Bt = in->xdbl + (long)t * in->nx + in->R, *Ct = Bt + S;
        for (int q = 0; q < 2 * S; q++) v8_store(k->part + 8 * q, v8_set1(0.0f));
        for (int c = 0; c < di; c += 16) {
            v16f d16 = v16_load(in->delta + (long)t * di + c), x16 = v16_load(in->xc + (long)t * di + c);
            v16f dy16 = v16_load(in->dy + (long)t * di + c), dxv = d16 * x16, u = v16_set1(0.0f), acc = u;
            v8f dyl = lo8(dy16), dyh = hi8(dy16), dxl = lo8(dxv), dxh = hi8(dxv);
            for (int n = 0; n < S; n++) {
                long o = (long)n * di + c;
                v16f a16 = v16_load(a + o), g = v16_load(k->ds + o) + dy16 * v16_set1(Ct[n]), s16 = v16_load(s + o);
                v8f pc = v8_load(dC + 8 * n) + dyl * lo8(s16), pb = v8_load(dB + 8 * n) + lo8(g) * dxl;
                v8_store(dC + 8 * n, pc + dyh * hi8(s16));
                v8_store(dB + 8 * n, pb + hi8(g) * dxh);
                acc += g * (v16_load(p + o) * a16) * v16_load(k->A + o);
                u += g * v16_set1(Bt[n]);
                v16_store(k->ds + o, g * a16);
            }
            v16_store(dx + (long)t * di + c, v16_load(k->D + c) * dy16 + d16 * u);
            v16_store(dd + (long)t * di + c, acc + x16 * u);
        }
        float *row = dxdbl + (long)t * in->nx + in->R;
        for (int n = 0; n < S; n++) {
            row[n] = hsum(dB + 8 * n);
            row[S + n] = hsum(dC + 8 * n);
        }
    }
}
#endif

/* The whole reverse scan, last chunk first; dx, d delta and the B, C
 * columns of dxdbl are written, not added to. */
void sl_mamba_scan_backward(const float *A_t, const float *D, const float *ckpt, const float *xc, const float *delta,
                            const float *xdbl, int ldb, int boff, const float *dy, int T, int di, int S, float *scratch,
                            float *dx, float *dd, float *dxdbl)
{
    const scan_in ins = {xc, delta, xdbl, dy, di, S, boff, ldb}, *in = &ins;
    chunk_bufs k = chunk_view(di, S, scratch);
    memset(k.A, 0, (size_t)(2 * k.plane + k.di8) * sizeof *k.A); /* A, ds, D with their padding */
    for (int n = 0; n < S; n++) memcpy(k.A + (long)n * k.di8, A_t + (long)n * di, (size_t)di * sizeof *k.A);
    memcpy(k.D, D, (size_t)di * sizeof *k.D);
    memset(k.st, 0, (size_t)k.plane * sizeof *k.st);
    for (int t0 = (T - 1) / SL_SCAN_CHUNK * SL_SCAN_CHUNK; t0 >= 0; t0 -= SL_SCAN_CHUNK) {
        int t1 = t0 + SL_SCAN_CHUNK < T ? t0 + SL_SCAN_CHUNK : T;
        const float *start = ckpt + (long)(t0 / SL_SCAN_CHUNK) * S * di;
        for (int n = 0; n < S; n++)
            if (t0) memcpy(k.st + (long)n * k.di8, start + (long)n * di, (size_t)di * sizeof *k.st);
            else memset(k.st + (long)n * k.di8, 0, (size_t)di * sizeof *k.st);
#ifdef __AVX512F__
        if (di % 16 == 0) {
            chunk_states_v16(&k, in, t0, t1);
            chunk_reverse_v16(&k, in, t0, t1, dx, dd, dxdbl);
            continue;
        }
#endif
        chunk_states(&k, in, t0, t1);
        chunk_reverse(&k, in, t0, t1, dx, dd, dxdbl);
    }
}

/* SiLU'(x) from the logistic s = 1 / (1 + exp(-x)) (SiLU(x) = x s) */
static inline float silu_grad_of(float x, float s) { return s * (1.0f + x * (1.0f - s)); }

static inline float logistic(float x) { return 1.0f / (1.0f + sl_exp(-x)); }

#ifdef __AVX512F__
/* The loops below on sixteen lanes (core/mathx16.h), the same operations
 * in the same order as their scalar forms, so the same bits; GCC's own
 * vectorisation of those took a blend for each ?: of sl_exp. One vector
 * at a time: four at once (as softplus takes them) measured slower here. */
static inline v16f silu_grad_of16(v16f x, v16f s) { return s * (1.0f + x * (1.0f - s)); }

static inline __attribute__((always_inline)) void gate_backward_at16(const float *zt, const float *yt, float *gy,
                                                                     float *dzt, int c, int di, const int N)
{
    v16f zv[SL_N16_MAX], s[SL_N16_MAX], g[SL_N16_MAX];
    __mmask16 m[SL_N16_MAX];
    SL_EACH(j, N) m[j] = sl_lanes16(c + 16 * j, di), zv[j] = sl_load16(zt + c + 16 * j, m[j]);
    sl_logistic16n(zv, s, N);
    SL_EACH(j, N) g[j] = sl_load16(gy + c + 16 * j, m[j]);
    SL_EACH(j, N) sl_store16(dzt + c + 16 * j, m[j], g[j] * sl_load16(yt + c + 16 * j, m[j]) * silu_grad_of16(zv[j], s[j]));
    SL_EACH(j, N) sl_store16(gy + c + 16 * j, m[j], g[j] * (zv[j] * s[j]));
}

/* dy *= softplus'(pre) (silu 0) or SiLU'(pre) (silu 1), N vectors from k */
static inline __attribute__((always_inline)) void act_backward_at16(const float *pre, float *dy, long n, long k,
                                                                    int silu, const int N)
{
    v16f x[SL_N16_MAX], s[SL_N16_MAX];
    __mmask16 m[SL_N16_MAX];
    SL_EACH(j, N) m[j] = sl_tail16(n, k + 16 * j), x[j] = sl_load16(pre + k + 16 * j, m[j]);
    sl_logistic16n(x, s, N);
    SL_EACH(j, N)
    {
        if (silu) s[j] = silu_grad_of16(x[j], s[j]);
        else s[j] = (v16f)_mm512_mask_mov_ps((__m512)s[j], _mm512_cmp_ps_mask((__m512)x[j], _mm512_set1_ps(20.0f), _CMP_GT_OQ),
                                             _mm512_set1_ps(1.0f));
    }
    SL_EACH(j, N) sl_store16(dy + k + 16 * j, m[j], sl_load16(dy + k + 16 * j, m[j]) * s[j]);
}

static void act_backward16(const float *pre, float *dy, long n, int silu)
{
    for (long k = 0; k < n; k += 16) act_backward_at16(pre, dy, n, k, silu, 1);
}
#endif

void sl_mamba_gate_backward(const float *z, int ldz, const float *y, int T, int di, float *dy, float *dz, int lddz)
{
    for (int t = 0; t < T; t++) {
        const float *zt = z + (long)t * ldz, *yt = y + (long)t * di;
        float *gy = dy + (long)t * di, *dzt = dz + (long)t * lddz;
#ifdef __AVX512F__
        for (int ch = 0; ch < di; ch += 16) gate_backward_at16(zt, yt, gy, dzt, ch, di, 1);
#else
        for (int ch = 0; ch < di; ch++) {
            float s = logistic(zt[ch]);
            dzt[ch] = gy[ch] * yt[ch] * silu_grad_of(zt[ch], s);
            gy[ch] *= zt[ch] * s; /* now d logit / d y */
        }
#endif
    }
}

/* softplus' is the logistic function */
void sl_softplus_backward(const float *pre, float *dy, long n)
{
#ifdef __AVX512F__
    act_backward16(pre, dy, n, 0);
#else
    for (long k = 0; k < n; k++) dy[k] *= pre[k] > 20.0f ? 1.0f : logistic(pre[k]);
#endif
}

void sl_silu_backward(const float *pre, float *dy, long n)
{
#ifdef __AVX512F__
    act_backward16(pre, dy, n, 1);
#else
    for (long k = 0; k < n; k++) dy[k] *= silu_grad_of(pre[k], logistic(pre[k]));
#endif
}

/* dx_t = sum over k of w_k dy_{t+K-1-k}, k from 0 (the newest row) up,
 * over the rows there are (the last K - 1 positions have fewer). */
static void conv_backward_v8(const float *dy, int T, int di, int K, const float *w, float *dx, int ldx)
{
    for (int c0 = 0; c0 < di; c0 += 8 * SL_CONV_VECS) {
        int nv = (di - c0 + 7) / 8 < SL_CONV_VECS ? (di - c0 + 7) / 8 : SL_CONV_VECS;
        v8f wk[64 * SL_CONV_VECS];
        for (int v = 0; v < nv; v++) sl_conv_taps(w, K, c0 + 8 * v, di, wk + v * K);
        for (int t = 0; t < T; t++)
            for (int v = 0, ch = c0; v < nv; v++, ch += 8) {
                v8f o = v8_set1(0.0f);
                for (int k = t + K > T ? t + K - T : 0; k < K; k++)
                    o += wk[v * K + k] * sl_load_lanes(dy + (long)(t + (K - 1) - k) * di, ch, di);
                sl_store_lanes(dx + (long)t * ldx, ch, di, o);
            }
    }
}

#ifdef __AVX512F__
/* conv_backward_v8's sums sixteen channels at a time, the same terms in
 * the same order, position by position across a block of channels, as
 * the forward's conv_k16 (models/mamba_cpu.c) and for the same reason. */
static inline __attribute__((always_inline)) void conv_backward_k16(const float *dy, int T, int di, const int K,
                                                                    const float *w, float *dx, int ldx)
{
    float wt[SL_CONV16_MAX_K][SL_CONV16_BLOCK];
    for (int c0 = 0; c0 < di; c0 += SL_CONV16_BLOCK) {
        int nc = di - c0 < SL_CONV16_BLOCK ? di - c0 : SL_CONV16_BLOCK;
        for (int c = 0; c < nc; c++)
            for (int k = 0; k < K; k++) wt[k][c] = w[(long)(c0 + c) * K + k];
        for (int t = 0; t < T; t++) {
            int k0 = t + K > T ? t + K - T : 0; /* the last positions have fewer terms */
            const float *g = dy + (long)(t + K - 1) * di + c0;
            for (int c = 0; c < nc; c += 16) {
                __mmask16 m = sl_lanes16(c, nc);
                v16f o = v16_set1(0.0f);
                for (int k = k0; k < K; k++) o += sl_load16(wt[k] + c, m) * sl_load16(g - (long)k * di + c, m);
                sl_store16(dx + (long)t * ldx + c0 + c, m, o);
            }
        }
    }
}
#endif

void sl_mamba_conv_backward(const float *dy, int T, int di, int K, const float *w, float *dx, int ldx)
{
#ifdef __AVX512F__
    if (K == 4) conv_backward_k16(dy, T, di, 4, w, dx, ldx);
    else if (K <= SL_CONV16_MAX_K) conv_backward_k16(dy, T, di, K, w, dx, ldx);
    if (K <= SL_CONV16_MAX_K) return;
#endif
    conv_backward_v8(dy, T, di, K, w, dx, ldx);
}
