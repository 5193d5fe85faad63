/* What the streaming attention's forward (models/attention.c) and backward
 * (models/attention_backward.c) share: which keys a query sees, how a head
 * is packed, and the score tile of a block of queries. The backward must
 * recompute exactly the forward's scores, so both use one copy of the loop. */
#ifndef SL_ATTENTION_TILE_H
#define SL_ATTENTION_TILE_H

#include <math.h>
#include <string.h>

#include "core/mathx.h"
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

/* The keys a query may see: kept positions, in order. */
static inline int sl_key_positions(const sl_example *ex, int *kpos)
{
    int nk = 0;
    for (int t = 0; t < ex->len; t++)
        if (!ex->keep || ex->keep[t]) kpos[nk++] = t;
    return nk;
}

/* Rows [n, dh] from a matrix with row stride lds, times scale. */
static inline void sl_pack_rows(const float *src, long lds, int n, int dh, float scale, float *dst)
{
    for (int t = 0; t < n; t++)
        for (int k = 0; k < dh; k++) dst[(long)t * dh + k] = src[(long)t * lds + k] * scale;
}

/* Columns off..off+dh of the kept rows of qkv [T, 3d], as rows [nk, dh]. */
static inline void sl_pack_key_rows(const float *qkv, int d, const int *kpos, int nk, int off, int dh, float *dst)
{
    for (int j = 0; j < nk; j++) memcpy(dst + (long)j * dh, qkv + (long)kpos[j] * 3 * d + off, (size_t)dh * sizeof *dst);
}

/* The same, transposed into [dh][ld], with zeros up to the next multiple of
 * 16 keys: the score tile reads that far, and must stay finite. */
static inline void sl_pack_key_cols(const float *qkv, int d, const int *kpos, int nk, int off, int dh, int ld, float *dst)
{
    for (int j = 0; j < nk; j++) {
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

/* One query's scores s[0, jn) against a tile of keys at j0 become its
 * unnormalised probabilities, exp(s - running max), 0 past the vis - j0
 * keys it sees; *mx and *l (the running max and sum) move on. Returns the
 * factor by which the output accumulated so far must be scaled. */
static inline float sl_softmax_row(float *s, int vis, int jn, float *mx, float *l)
{
    int n = vis < 0 ? 0 : vis < jn ? vis : jn;
    float tile_max = -INFINITY, sum = 0.0f;
#pragma omp simd reduction(max : tile_max)
    for (int j = 0; j < n; j++) tile_max = s[j] > tile_max ? s[j] : tile_max;
    float mnew = tile_max > *mx ? tile_max : *mx;
    if (mnew == -INFINITY) { /* no visible key yet: the output is still 0 */
        for (int j = 0; j < jn; j++) s[j] = 0.0f;
        return 1.0f;
    }
    float corr = *mx == -INFINITY ? 0.0f : sl_exp_nonpos(*mx - mnew);
    /* scores less their max are <= 0; a NaN score (which the max skips)
     * must still reach the output, through the sum */
    int nan = 0;
#pragma omp simd reduction(+ : sum) reduction(| : nan)
    for (int j = 0; j < n; j++) {
        float p = sl_exp_nonpos(s[j] - mnew);
        nan |= s[j] != s[j];
        s[j] = p;
        sum += p;
    }
    if (nan) sum = NAN;
    for (int j = n; j < jn; j++) s[j] = 0.0f;
    *l = *l * corr + sum;
    *mx = mnew;
    return corr;
}

/* The backward's S and dP of a block against a tile become P = exp(S -
 * lse) and dS = P (dP - D) in place: 0 past a row's visible keys, and for
 * the repeats of a ragged end, whose gradients must not count twice. */
static inline __attribute__((always_inline)) void sl_probs_tile(float *P, float *dS, const int *vis, int rows, int j0,
                                                                int jn, const float *lse, const float *rowd, int qbn)
{
    for (int r = 0; r < qbn; r++) {
        float *pr = P + r * SL_KEY_TILE, *dr = dS + r * SL_KEY_TILE, m = lse[r], D = rowd[r];
        int n = r >= rows || vis[r] <= j0 ? 0 : vis[r] - j0 < jn ? vis[r] - j0 : jn;
#pragma omp simd
        for (int j = 0; j < n; j++) {
            float p = sl_exp(pr[j] - m);
            pr[j] = p;
            dr[j] = p * (dr[j] - D);
        }
        for (int j = n; j < jn; j++) pr[j] = dr[j] = 0.0f;
    }
}

/* The kernels, for 8 lanes (AVX2) and 16 (AVX-512). */
#define SL_VW 8
#include "models/attention_lanes.h"
#define SL_VW 16
#include "models/attention_lanes.h"

#endif
