/* What the streaming attention's forward (models/attention.c) and backward
 * (models/attention_backward.c) share: which keys a query sees, how a head
 * is packed, and the score tile of a block of queries. The backward must
 * recompute exactly the forward's scores, so both use one copy of the loop. */
#ifndef SL_ATTENTION_TILE_H
#define SL_ATTENTION_TILE_H

#include <string.h>

#include "core/simd.h"
#include "models/model.h"
#include "models/workspace.h"

/* Queries per block: their scores share each key load. QB accumulators of
 * 2 x 8 keys (scores) and of d_head / 8 lanes (output) must fit in the 16
 * vector registers of AVX2: 6 blocks for d_head <= 16, 3 for 32 (6 measured
 * 20% faster than 4 at d_head 16). */
#define SL_QB 6

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

/* S[r][j] = sum_k qb[k][r] kt[k][j0 + j] for j < jn rounded up to 16, the
 * qbn queries of a block against a tile of keys: 16 keys at a time (two
 * vectors, so that 2 x qbn independent FMA chains hide their latency), the
 * queries sharing each key row. d_head = 8 * dhv; S is [SL_QB][SL_KEY_TILE]. */
static inline __attribute__((always_inline)) void sl_score_tile(const float (*qb)[SL_QB], const float *kt, int ld,
                                                                int j0, int jn, float *S, const int dhv, const int qbn)
{
    for (int j = 0; j < jn; j += 16) {
        v8f s0[SL_QB], s1[SL_QB];
        memset(s0, 0, sizeof s0);
        memset(s1, 0, sizeof s1);
        for (int k = 0; k < 8 * dhv; k++) {
            const float *kr = kt + (long)k * ld + j0 + j;
            v8f k0 = v8_load(kr), k1 = v8_load(kr + 8);
            for (int r = 0; r < qbn; r++) {
                v8f qr = v8_set1(qb[k][r]);
                s0[r] += qr * k0;
                s1[r] += qr * k1;
            }
        }
        for (int r = 0; r < qbn; r++) {
            v8_store(S + r * SL_KEY_TILE + j, s0[r]);
            v8_store(S + r * SL_KEY_TILE + j + 8, s1[r]);
        }
    }
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

#endif
