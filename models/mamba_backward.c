/* The CPU's kernels of a Mamba-1 block's backward (the block's steps:
 * models/mamba_grad.c) but the scan's (mamba_scan_backward.c), from the
 * activations its taped forward kept (models/mamba_scan.h): the tape's
 * layout, and the gate's, softplus's, SiLU's and the conv's backward.
 *
 * Memory per thread, d_model 64 (d_inner 128, d_state 16, dt_rank 4),
 * 4 layers, L 4,096: the tape 4 x 4,096 x 932 floats = 61.1 MB, the kept
 * states 4 x 256 x 8 KiB = 8.4 MB, the scan's chunk scratch 0.3 MB; every
 * state of the scan, which the backward kept before, would be 32 MiB a
 * layer. */
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/mathx.h"
#include "core/mathx16.h"
#include "core/simd.h"
#include "models/backward.h"
#include "models/mamba_scan.h"

/* Floats a position of one block's tape takes: xz, xc, xdbl, y, dsilu,
 * dsoftplus, delta. */
static size_t tape_row(const sl_config *c) { return 7 * (size_t)c->d_inner + c->dt_rank + 2 * (size_t)c->d_state; }

static size_t chunks(size_t L) { return (L + SL_SCAN_CHUNK - 1) / SL_SCAN_CHUNK; }

sl_mamba_tape sl_mamba_tape_at(const sl_model *m, sl_workspace *ws, int i)
{
    const sl_config *c = &m->c;
    size_t L = (size_t)ws->max_len, di = (size_t)c->d_inner, nx = (size_t)c->dt_rank + 2 * (size_t)c->d_state;
    float *base = ws->bw->mtape + (size_t)i * L * tape_row(c);
    float *xc = base + L * 2 * di, *xdbl = xc + L * di, *y = xdbl + L * nx, *dsilu = y + L * di;
    sl_mamba_tape tp = {base, xc, xdbl, y, dsilu, dsilu + L * di, dsilu + 2 * L * di,
                        ws->bw->ckpt + (size_t)i * chunks(L) * c->d_state * di};
    return tp;
}

int sl_mamba_backward_alloc(const sl_config *c, size_t L, sl_backward_ws *b)
{
    size_t tape, ckpt, per = tape_row(c) * 4, plane = (size_t)c->d_state * c->d_inner * 4;
    size_t chunk = (sl_mamba_scan_scratch_floats(c->d_inner, c->d_state) * 4 + 63) & ~(size_t)63; /* aligned_alloc wants a multiple of the alignment */
    if (__builtin_mul_overflow(L * (size_t)c->n_layers, per, &tape)
        || __builtin_mul_overflow(chunks(L) * (size_t)c->n_layers, plane, &ckpt))
        return 0;
    return (b->mtape = malloc(tape)) && (b->ckpt = malloc(ckpt)) && (b->chunk = aligned_alloc(64, chunk));
}

/* Products only: what the gate's exp gave is on the tape (sl_mamba_gate_keep) */
void sl_mamba_gate_backward_kept(const float *sz, const float *dk, int ldz, const float *y, int T, int di, float *dy,
                                 float *dz, int lddz)
{
    for (int t = 0; t < T; t++) {
        const float *st = sz + (long)t * ldz, *kt = dk + (long)t * ldz, *yt = y + (long)t * di;
        float *gy = dy + (long)t * di, *dzt = dz + (long)t * lddz;
#pragma omp simd
        for (int ch = 0; ch < di; ch++) {
            dzt[ch] = gy[ch] * yt[ch] * kt[ch];
            gy[ch] *= st[ch]; /* now d logit / d y */
        }
    }
}

void sl_silu_backward(const float *pre, float *dy, long n)
{
#ifdef __AVX512F__
    /* sixteen lanes, the scalar form's operations in its order (the same
     * bits); GCC's own vectorisation took a blend for each ?: of sl_exp */
    for (long k = 0; k < n; k += 16) {
        __mmask16 m = sl_tail16(n, k);
        sl_store16(dy + k, m, sl_load16(dy + k, m) * sl_silu_grad16(sl_load16(pre + k, m)));
    }
#else
    for (long k = 0; k < n; k++) dy[k] *= sl_silu_grad_of(pre[k], sl_logistic(pre[k]));
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
                    o = v8_fma(wk[v * K + k], sl_load_lanes(dy + (long)(t + (K - 1) - k) * di, ch, di), o);
                sl_store_lanes(dx + (long)t * ldx, ch, di, o);
            }
    }
}

#ifdef __AVX512F__
/* dy *= SiLU'(pre), or dy *= dsilu where pre is NULL, on row t's channels
 * c0..c0+nc-1 (rows of di) */
static inline void silu_backward_row(const float *pre, const float *dsilu, float *dy, long t, int di, int c0, int nc)
{
    for (int c = 0; c < nc; c += 16) {
        long k = t * di + c0 + c;
        __mmask16 m = sl_lanes16(c, nc);
        v16f f = pre ? sl_silu_grad16(sl_load16(pre + k, m)) : sl_load16(dsilu + k, m);
        sl_store16(dy + k, m, sl_load16(dy + k, m) * f);
    }
}

/* One position's transpose: nc channels of dx's row into dxr, from dy's
 * rows at g (the newest, tap 0) and back to tap K - 1 (from k0 on: the last
 * positions have fewer), sixteen lanes */
static inline __attribute__((always_inline)) void conv_backward_at(const float (*wt)[SL_CONV_BLOCK], const float *g, int di, int k0, const int K,
                                    float *dxr, int nc)
{
    for (int c = 0; c < nc; c += 16) {
        __mmask16 m = sl_lanes16(c, nc);
        v16f o = v16_set1(0.0f);
        for (int k = k0; k < K; k++) o = v16_fma(sl_load16(wt[k] + c, m), sl_load16(g - (long)k * di + c, m), o);
        sl_store16(dxr + c, m, o);
    }
}
#elif defined(__AVX2__)
/* dy *= SiLU'(pre) (sl_silu_backward's scalar products), or dy *= dsilu
 * where pre is NULL, on row t's channels c0..c0+nc-1 (rows of di; nc a
 * multiple of 8) */
static inline void silu_backward_row(const float *pre, const float *dsilu, float *dy, long t, int di, int c0, int nc)
{
    long k0 = t * di + c0;
    if (pre)
        for (long k = k0; k < k0 + nc; k++) dy[k] *= sl_silu_grad_of(pre[k], sl_logistic(pre[k]));
    else
        for (long k = k0; k < k0 + nc; k += 8) v8_store(dy + k, v8_load(dy + k) * v8_load(dsilu + k));
}

/* conv_backward_at on eight lanes (nc a multiple of 8) */
static inline __attribute__((always_inline)) void conv_backward_at(const float (*wt)[SL_CONV_BLOCK], const float *g, int di, int k0, const int K,
                                    float *dxr, int nc)
{
    for (int c = 0; c < nc; c += 8) {
        v8f o = v8_set1(0.0f);
        for (int k = k0; k < K; k++) o = v8_fma(v8_load(wt[k] + c), v8_load(g - (long)k * di + c), o);
        v8_store(dxr + c, o);
    }
}
#endif

#if defined(__AVX512F__) || defined(__AVX2__)
/* conv_backward_v8's sums, the same terms in the same order, position by
 * position across a block of channels, as the forward's conv_k
 * (models/mamba_cpu.c) and for the same reason. With pre (or dsilu), each
 * row of dy is multiplied by SiLU'(pre) (or dsilu) just before the first
 * output that reads it, while it is in L1: the same products as a pass of
 * its own (sl_silu_backward), without reading and writing dy once more. */
static inline __attribute__((always_inline)) void conv_backward_k(const float *pre, const float *dsilu, float *dy,
                                                                  int T, int di, const int K, const float *w,
                                                                  float *dx, int ldx)
{
    float wt[SL_CONV_MAX_K][SL_CONV_BLOCK];
    for (int c0 = 0; c0 < di; c0 += SL_CONV_BLOCK) {
        int nc = di - c0 < SL_CONV_BLOCK ? di - c0 : SL_CONV_BLOCK;
        sl_conv_taps_t(w, K, c0, nc, wt);
        int ready = pre || dsilu ? 0 : T; /* rows of dy below it are d logit / d the conv */
        for (int t = 0; t < T; t++) {
            for (int last = t + K - 1 < T ? t + K - 1 : T - 1; ready <= last; ready++)
                silu_backward_row(pre, dsilu, dy, ready, di, c0, nc);
            int k0 = t + K > T ? t + K - T : 0; /* the last positions have fewer terms */
            conv_backward_at(wt, dy + (long)(t + K - 1) * di + c0, di, k0, K, dx + (long)t * ldx + c0, nc);
        }
    }
}

/* 1 when conv_backward_k took it: any d_inner on AVX-512, whole vectors of
 * 8 on AVX2 */
static int conv_backward_blocks(const float *pre, const float *dsilu, float *dy, int T, int di, int K, const float *w,
                                float *dx, int ldx)
{
#ifndef __AVX512F__
    if (di % 8) return 0;
#endif
    if (K == 4) conv_backward_k(pre, dsilu, dy, T, di, 4, w, dx, ldx); /* mamba_ssm's default d_conv */
    else if (K <= SL_CONV_MAX_K) conv_backward_k(pre, dsilu, dy, T, di, K, w, dx, ldx);
    else return 0;
    return 1;
}
#endif

void sl_mamba_silu_conv_backward(const float *pre, const float *dsilu, float *dy, int T, int di, int K, const float *w,
                                 float *dx, int ldx)
{
#if defined(__AVX512F__) || defined(__AVX2__)
    if (conv_backward_blocks(pre, dsilu, dy, T, di, K, w, dx, ldx)) return;
#endif
    if (pre) sl_silu_backward(pre, dy, (long)T * di);
    else if (dsilu)
        for (long k = 0; k < (long)T * di; k++) dy[k] *= dsilu[k];
    conv_backward_v8(dy, T, di, K, w, dx, ldx);
}
