/* What the streaming attention's forward (models/attention.c) and backward
 * (models/attention_backward.c) share: which keys a query sees, how a head
 * is packed, and the score tile of a block of queries. The backward must
 * recompute exactly the forward's scores, so both use one copy of the loop. */
#ifndef SL_ATTENTION_TILE_H
#define SL_ATTENTION_TILE_H

#include <math.h>
#include <string.h>

#include "core/mathx.h"
#include "core/mathx8.h"
#include "core/simd.h"
#include "models/backward.h"
#include "models/model.h"
#include "models/workspace.h"

/* Queries per block, at most: their scores share each key load. With AVX2,
 * qbn accumulators of 2 x 8 keys (scores) and of d_head / 8 lanes (output)
 * must fit in 16 vector registers: 6 for d_head <= 16, 3 for 32 (6 measured
 * 20% faster than 4 at d_head 16). AVX-512 has 32 registers of 16 lanes:
 * one per query holds its 16 scores, and blocks of up to 12 fit. */
#ifdef __AVX512F__
#define SL_QB 12
#else
#define SL_QB 6
#endif
/* The widest head the vector kernels take. */
#define SL_DH_MAX 64

/* Vector registers, and whether the backward's dK/dV loop fits in them
 * with ju keys at a time: the block's q and dO rows (qbn x dhv vectors
 * each), ju keys' two accumulators and two broadcasts. */
#ifdef __AVX512F__
#define SL_VREGS 32
#else
#define SL_VREGS 16
#endif
static inline int sl_regs_dkdv(int dhv, int qbn, int ju) { return 2 * qbn * dhv + 2 * ju * dhv + 2 <= SL_VREGS; }

/* The keys a query may see: kept positions, in order. */
static inline int sl_key_positions(const sl_example *ex, int *kpos)
{
    int nk = 0;
    for (int t = 0; t < ex->len; t++)
        if (!ex->keep || ex->keep[t]) kpos[nk++] = t;
    return nk;
}

/* The packing below is always inlined, so that where the caller knows
 * d_head (a constant dh) each row moves as whole vectors, not through a
 * loop of unknown length or a call to memcpy per row. */

/* Rows [n, dh] from a matrix with row stride lds, times scale. */
static inline __attribute__((always_inline)) void sl_pack_rows(const float *src, long lds, int n, const int dh,
                                                               float scale, float *dst)
{
    for (int t = 0; t < n; t++)
        for (int k = 0; k < dh; k++) dst[(long)t * dh + k] = src[(long)t * lds + k] * scale;
}

/* Columns off..off+dh of the kept rows of qkv [T, 3d], as rows [nk, dh]. */
static inline __attribute__((always_inline)) void sl_pack_key_rows(const float *qkv, int d, const int *kpos, int nk,
                                                                   int off, const int dh, float *dst)
{
    for (int j = 0; j < nk; j++)
        for (int k = 0; k < dh; k++) dst[(long)j * dh + k] = qkv[(long)kpos[j] * 3 * d + off + k];
}

/* The same, transposed into [dh][ld], with zeros up to the next multiple of
 * 16 keys: the score tile reads that far, and must stay finite. */
static inline __attribute__((always_inline)) void sl_pack_key_cols(const float *qkv, int d, const int *kpos, int nk,
                                                                   int off, const int dh, int ld, float *dst)
{
    int j = 0;
#if defined(__AVX__)
    /* eight keys' rows at a time, transposed in registers: the scalar
     * loop's stores, a column apart, were some 2% of a Transformer gradient */
    if (dh % 8 == 0)
        for (; j + 8 <= nk; j += 8)
            for (int k = 0; k < dh; k += 8) {
                v8f r[8], c[8];
                for (int i = 0; i < 8; i++) r[i] = v8_load(qkv + (long)kpos[j + i] * 3 * d + off + k);
                v8_transpose8(r, c);
                for (int i = 0; i < 8; i++) v8_store(dst + (long)(k + i) * ld + j, c[i]);
            }
#endif
    for (; j < nk; j++) {
        const float *row = qkv + (long)kpos[j] * 3 * d + off;
        for (int k = 0; k < dh; k++) dst[(long)k * ld + j] = row[k];
    }
    for (int k = 0; k < dh; k++)
        for (int j = nk; j < ((nk + 15) & ~15); j++) dst[(long)k * ld + j] = 0.0f;
}

/* The number of keys each query of the block at t0 sees (a ragged end
 * repeats its last row): all nk, or with a causal mask those at positions
 * <= the query, *seen carrying that count from block to block (t only
 * grows, kpos is sorted). Returns the most. */
static inline int sl_block_visible(const sl_config *c, const int *kpos, int nk, int T, int t0, int qbn, int *seen,
                                   int *vis)
{
    int rows = T - t0 < qbn ? T - t0 : qbn, vmax = 0;
    for (int r = 0; r < qbn; r++) {
        int t = t0 + (r < rows ? r : rows - 1);
        if (c->causal)
            while (*seen < nk && kpos[*seen] <= t) (*seen)++;
        vis[r] = c->causal ? *seen : nk;
        if (vis[r] > vmax) vmax = vis[r];
    }
    return vmax;
}

/* The block's rows of x [T, dh] side by side: xb[k][r] (a ragged end
 * repeats its last row). */
static inline void sl_block_gather(const float *x, int dh, int t0, int rows, int qbn, float (*xb)[SL_QB])
{
    for (int k = 0; k < dh; k++)
        for (int r = 0; r < qbn; r++) xb[k][r] = x[(long)(t0 + (r < rows ? r : rows - 1)) * dh + k];
}

/* s[j] = sum_k qt[k] kt[k][j0 + j] for j < jn: one query's scores, any d_head. */
static inline void sl_score_row(const float *qt, const float *kt, int ld, int j0, int jn, int dh, float *s)
{
    for (int j = 0; j < jn; j++) s[j] = 0.0f;
    for (int k = 0; k < dh; k++) {
        const float *kr = kt + (long)k * ld + j0;
        float qk = qt[k];
        for (int j = 0; j < jn; j++) s[j] += qk * kr[j];
    }
}

/* Whether every score of a head is finite whatever its keys and queries
 * meet: each of the n values of x finite and at most 1e15 in magnitude (a
 * d_head <= 64 sum of products then stays far below FLT_MAX). Then the
 * kernels can skip their per-score NaN test. */
static inline int sl_scores_tame(const float *x, long n)
{
    int wild = 0;
#pragma omp simd reduction(| : wild)
    for (long i = 0; i < n; i++) wild |= !(fabsf(x[i]) <= 1e15f);
    return !wild;
}

#ifdef SL_HAVE_MATHX8
/* s[j] = sl_exp(s[j] - m) (nan_check) or sl_exp_nonpos(s[j] - m) for
 * j < n, in place, four vectors at a time (core/mathx8.h: the scalar
 * function's bits in every lane). GCC's loops took one vector at a time
 * through the exp's chain of some 20 dependent steps, of which an AMD
 * Zen 3 overlaps too few. Without AVX2 (or with AVX-512, whose own
 * compiled loops are left as they were) the plain loops below. */
static inline __attribute__((always_inline)) void sl_exp_shifted(float *s, int n, float m, const int nan_check)
{
    int j = 0;
    for (; j + 32 <= n; j += 32) {
        v8f x[4];
        for (int u = 0; u < 4; u++) x[u] = v8_load(s + j + 8 * u) - m;
        if (nan_check) {
            sl_exp8n(x, x, 4);
        } else {
            for (int u = 0; u < 4; u++) x[u] = sl_exp_floor8(x[u]);
            sl_exp_clamped8n(x, x, 4);
        }
        for (int u = 0; u < 4; u++) v8_store(s + j + 8 * u, x[u]);
    }
    if (nan_check) {
#pragma omp simd
        for (int i = j; i < n; i++) s[i] = sl_exp(s[i] - m);
    } else {
#pragma omp simd
        for (int i = j; i < n; i++) s[i] = sl_exp_nonpos(s[i] - m);
    }
}

/* sl_exp_shifted (nan_check 0) that also returns the sum of the exps, in
 * the order GCC gave the second pass over them that it replaces (`omp simd
 * reduction(+ : sum)`): eight lanes each summing its j in order, the last
 * n % 8 into lane 0, then 0 + lane 0 + ... + lane 7, so the same bits
 * (`make same-as-before`). Summing each vector as it is made lets the chain
 * of dependent adds (3 cycles each on a Zen 3) run beside the exps instead
 * of after them: the Transformer sweep about 3% faster there. */
static inline __attribute__((always_inline)) float sl_exp_shifted_sum(float *s, int n, float m)
{
    v8f acc = v8_set1(0.0f);
    int j = 0;
    for (; j + 32 <= n; j += 32) {
        v8f x[4];
        for (int u = 0; u < 4; u++) x[u] = sl_exp_floor8(v8_load(s + j + 8 * u) - m);
        sl_exp_clamped8n(x, x, 4);
        for (int u = 0; u < 4; u++) {
            v8_store(s + j + 8 * u, x[u]);
            acc += x[u];
        }
    }
    for (; j + 8 <= n; j += 8) {
        v8f x[1] = {sl_exp_floor8(v8_load(s + j) - m)};
        sl_exp_clamped8n(x, x, 1);
        v8_store(s + j, x[0]);
        acc += x[0];
    }
    float lane[8], sum = 0.0f;
    v8_store(lane, acc);
    for (; j < n; j++) {
        s[j] = sl_exp_nonpos(s[j] - m);
        lane[0] += s[j];
    }
    for (int i = 0; i < 8; i++) sum += lane[i];
    return sum;
}
#endif

/* One query's scores s[0, jn) against a tile of keys, of which it sees the
 * first n and whose largest is tile_max, become its unnormalised
 * probabilities, exp(s - running max), 0 past n; *mx and *l (the running max
 * and sum) move on. Returns the factor by which the output accumulated so
 * far must be scaled. nan_check 0 only where no score can be NaN
 * (sl_scores_tame). */
static inline __attribute__((always_inline)) float sl_softmax_exp(float *s, int n, int jn, float tile_max, float *mx,
                                                                  float *l, const int nan_check)
{
    float mnew = tile_max > *mx ? tile_max : *mx, sum = 0.0f;
    if (mnew == -INFINITY) { /* no visible key yet: the output is still 0 */
        for (int j = 0; j < jn; j++) s[j] = 0.0f;
        return 1.0f;
    }
    float corr = *mx == -INFINITY ? 0.0f : sl_exp_nonpos(*mx - mnew);
    /* scores less their max are <= 0; a NaN score (which the max skips)
     * must still reach the output, through the sum */
#ifdef SL_HAVE_MATHX8
    /* the exps and their sum as the loop below sums them (the same bits) */
    int nan = 0;
    if (nan_check) {
#pragma omp simd reduction(| : nan)
        for (int j = 0; j < n; j++) nan |= s[j] != s[j];
    }
    sum = sl_exp_shifted_sum(s, n, mnew);
    if (nan) sum = NAN;
#else
    if (nan_check) {
        int nan = 0;
#pragma omp simd reduction(+ : sum) reduction(| : nan)
        for (int j = 0; j < n; j++) {
            float p = sl_exp_nonpos(s[j] - mnew);
            nan |= s[j] != s[j];
            s[j] = p;
            sum += p;
        }
        if (nan) sum = NAN;
    } else {
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) {
            float p = sl_exp_nonpos(s[j] - mnew);
            s[j] = p;
            sum += p;
        }
    }
#endif
    for (int j = n; j < jn; j++) s[j] = 0.0f;
    *l = *l * corr + sum;
    *mx = mnew;
    return corr;
}

/* The keys of a tile of jn at j0 that a query seeing vis keys sees. */
static inline int sl_tile_seen(int vis, int j0, int jn) { return vis - j0 < 0 ? 0 : vis - j0 < jn ? vis - j0 : jn; }

/* sl_softmax_exp, finding the tile's max first (vis - j0 keys seen). */
static inline float sl_softmax_row(float *s, int vis, int jn, float *mx, float *l)
{
    int n = vis < 0 ? 0 : vis < jn ? vis : jn;
    float tile_max = -INFINITY;
#pragma omp simd reduction(max : tile_max)
    for (int j = 0; j < n; j++) tile_max = s[j] > tile_max ? s[j] : tile_max;
    return sl_softmax_exp(s, n, jn, tile_max, mx, l, 1);
}

/* The backward's S and dP of a block against a tile become P = exp(S -
 * lse) and dS = P (dP - D) in place: 0 past a row's visible keys, and for
 * the repeats of a ragged end, whose gradients must not count twice. */
static inline __attribute__((always_inline)) void sl_probs_tile(float *P, float *dS, const int *vis, int rows, int j0,
                                                                int jn, const float *lse, const float *rowd, int qbn,
                                                                const int nan_check)
{
    for (int r = 0; r < qbn; r++) {
        float *pr = P + r * SL_KEY_TILE, *dr = dS + r * SL_KEY_TILE, m = lse[r], D = rowd[r];
        int n = r >= rows || vis[r] <= j0 ? 0 : vis[r] - j0 < jn ? vis[r] - j0 : jn;
        /* finite scores less their row's log-sum-exp (>= their max) are
         * <= 0 but for rounding: sl_exp's other bounds never bind */
#ifdef SL_HAVE_MATHX8
        sl_exp_shifted(pr, n, m, nan_check);
#pragma omp simd
        for (int j = 0; j < n; j++) dr[j] = pr[j] * (dr[j] - D);
#else
        if (nan_check) {
#pragma omp simd
            for (int j = 0; j < n; j++) {
                float p = sl_exp(pr[j] - m);
                pr[j] = p;
                dr[j] = p * (dr[j] - D);
            }
        } else {
#pragma omp simd
            for (int j = 0; j < n; j++) {
                float p = sl_exp_nonpos(pr[j] - m);
                pr[j] = p;
                dr[j] = p * (dr[j] - D);
            }
        }
#endif
        for (int j = n; j < jn; j++) pr[j] = dr[j] = 0.0f;
    }
}

/* The kernels, for 8 lanes (AVX2) and 16 (AVX-512). */
#define SL_VW 8
#include "models/attention_lanes.h"
#define SL_VW 16
#include "models/attention_lanes.h"

#endif
