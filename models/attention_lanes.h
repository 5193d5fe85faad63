/* The streaming attention's kernels for one vector width, included by
 * models/attention_tile.h once per width (so no include guard) with SL_VW
 * defined; core/simd_width.h gives the vector type and names. A head of
 * d_head = SL_VW * dhv (dhv <= 4) runs in blocks of qbn <= SL_QB queries:
 * the compiler specialises each (d_head, qbn), keeping the accumulators in
 * registers. */

#include "core/simd_width.h"

/* The scores of the qbn queries of a block against 16 keys from column jk
 * of kt: s[r][u] = sum_k qb[k][r] kt[k][jk + SL_VW u + lane], also stored
 * at Sj (row r at Sj + r * SL_KEY_TILE). With 8 lanes two vectors, so that
 * 2 x qbn independent FMA chains hide their latency; the queries share each
 * key row. */
static inline __attribute__((always_inline)) void SL_VN(sl_score_block)(const float (*qb)[SL_QB], const float *kt,
                                                                        int ld, int jk, float *Sj,
                                                                        SL_V s[SL_QB][16 / SL_VW], const int dh,
                                                                        const int qbn)
{
    enum { NV = 16 / SL_VW };
    for (int r = 0; r < qbn; r++)
        for (int u = 0; u < NV; u++) s[r][u] = SL_VSET1(0.0f);
    for (int k = 0; k < dh; k++) {
        const float *kr = kt + (long)k * ld + jk;
        SL_V kv[NV];
        for (int u = 0; u < NV; u++) kv[u] = SL_VLOAD(kr + SL_VW * u);
        for (int r = 0; r < qbn; r++) {
            SL_V qr = SL_VSET1(qb[k][r]);
            for (int u = 0; u < NV; u++) s[r][u] += qr * kv[u];
        }
    }
    for (int r = 0; r < qbn; r++)
        for (int u = 0; u < NV; u++) SL_VSTORE(Sj + r * SL_KEY_TILE + SL_VW * u, s[r][u]);
}

/* S[r][j] = sum_k qb[k][r] kt[k][j0 + j] for j < jn rounded up to 16, the
 * qbn queries of a block against a tile of keys, 16 keys at a time. S is
 * [SL_QB][SL_KEY_TILE]. */
static inline __attribute__((always_inline)) void SL_VN(sl_score_tile)(const float (*qb)[SL_QB], const float *kt,
                                                                       int ld, int j0, int jn, float *S, const int dh,
                                                                       const int qbn)
{
    for (int j = 0; j < jn; j += 16) {
        SL_V s[SL_QB][16 / SL_VW];
        SL_VN(sl_score_block)(qb, kt, ld, j0 + j, S + j, s, dh, qbn);
    }
}

/* sl_score_tile that also leaves in tmax[r] the largest of row r's first
 * lim[r] scores (the keys it sees), from the scores still in registers:
 * max is exact, so this is the max the softmax would find reading them back,
 * without that pass's chain of dependent maxima per row. Needs twice the
 * accumulators: for 32 vector registers. */
static inline __attribute__((always_inline)) void SL_VN(sl_score_tile_max)(const float (*qb)[SL_QB], const float *kt,
                                                                           int ld, int j0, int jn, float *S,
                                                                           const int *lim, float *tmax, const int dh,
                                                                           const int qbn)
{
    enum { NV = 16 / SL_VW };
    SL_V m[SL_QB][NV];
    int low = jn;
    for (int r = 0; r < qbn; r++) {
        for (int u = 0; u < NV; u++) m[r][u] = SL_VSET1(-INFINITY);
        if (lim[r] < low) low = lim[r];
    }
    for (int j = 0; j < jn; j += 16) {
        SL_V s[SL_QB][NV];
        SL_VN(sl_score_block)(qb, kt, ld, j0 + j, S + j, s, dh, qbn);
        /* whole vectors of seen keys; a ragged end below */
        if (j + 16 <= low) {
            for (int r = 0; r < qbn; r++)
                for (int u = 0; u < NV; u++) m[r][u] = SL_VMAX(s[r][u], m[r][u]);
        } else {
            for (int r = 0; r < qbn; r++)
                for (int u = 0; u < NV; u++)
                    if (j + SL_VW * (u + 1) <= lim[r]) m[r][u] = SL_VMAX(s[r][u], m[r][u]);
        }
    }
    for (int r = 0; r < qbn; r++) {
        float t = -INFINITY;
        for (int u = 0; u < NV; u++)
            for (int i = 0; i < SL_VW; i++) t = m[r][u][i] > t ? m[r][u][i] : t;
        const float *sr = S + r * SL_KEY_TILE;
        for (int j = lim[r] & ~(SL_VW - 1); j < lim[r]; j++) t = sr[j] > t ? sr[j] : t;
        tmax[r] = t;
    }
}

/* One head's forward for queries t_first..T-1: an online softmax over
 * tiles of keys. A query's output depends on its own scores alone, not on
 * the block it shares, so a range has the bits of the whole head's pass. */
/* nan_check 0 only where no score can be NaN (sl_scores_tame); fuse_max
 * where 32 vector registers hold sl_score_tile_max's accumulators. */
static inline __attribute__((always_inline)) void SL_VN(sl_flash_head)(const sl_config *c, sl_workspace *ws,
                                                                       int t_first, int T, int nk, int head,
                                                                       const int dh, const int qbn,
                                                                       const int nan_check, const int fuse_max)
{
    const int dhv = dh / SL_VW;
    int d = c->d_model, ld = ws->kt_ld;
    const float *q = ws->q, *kt = ws->kt, *v = ws->v;
    float *S = ws->scores; /* [SL_QB][SL_KEY_TILE] */
    float *lse = ws->lse ? ws->lse + (long)head * ws->max_len : NULL;
    int seen = 0;
    for (int t0 = t_first; t0 < T; t0 += qbn) {
        int rows = T - t0 < qbn ? T - t0 : qbn, vis[SL_QB];
        int vmax = sl_block_visible(c, ws->kpos, nk, T, t0, qbn, &seen, vis);
        float qb[SL_DH_MAX][SL_QB];
        sl_block_gather(q, dh, t0, rows, qbn, qb);
        SL_V acc[SL_QB][4];
        memset(acc, 0, sizeof acc);
        float mx[SL_QB], l[SL_QB];
        for (int r = 0; r < qbn; r++) { mx[r] = -INFINITY; l[r] = 0.0f; }
        for (int j0 = 0; j0 < vmax; j0 += SL_KEY_TILE) {
            int jn = vmax - j0 < SL_KEY_TILE ? vmax - j0 : SL_KEY_TILE;
            int lim[SL_QB];
            float tmax[SL_QB];
            for (int r = 0; r < qbn; r++) lim[r] = sl_tile_seen(vis[r], j0, jn);
            if (fuse_max) {
                SL_VN(sl_score_tile_max)(qb, kt, ld, j0, jn, S, lim, tmax, dh, qbn);
            } else {
                SL_VN(sl_score_tile)(qb, kt, ld, j0, jn, S, dh, qbn);
                for (int r = 0; r < qbn; r++) {
                    const float *sr = S + r * SL_KEY_TILE;
                    float t = -INFINITY;
#pragma omp simd reduction(max : t)
                    for (int j = 0; j < lim[r]; j++) t = sr[j] > t ? sr[j] : t;
                    tmax[r] = t;
                }
            }
            for (int r = 0; r < qbn; r++) {
                float corr = sl_softmax_exp(S + r * SL_KEY_TILE, lim[r], jn, tmax[r], &mx[r], &l[r], nan_check);
                for (int u = 0; u < dhv; u++) acc[r][u] *= SL_VSET1(corr);
            }
            for (int j = 0; j < jn; j++) {
                const float *vj = v + (long)(j0 + j) * dh;
                SL_V vv[4];
                for (int u = 0; u < dhv; u++) vv[u] = SL_VLOAD(vj + SL_VW * u);
                for (int r = 0; r < qbn; r++) {
                    SL_V p = SL_VSET1(S[r * SL_KEY_TILE + j]);
                    for (int u = 0; u < dhv; u++) acc[r][u] += p * vv[u];
                }
            }
        }
        for (int r = 0; r < rows; r++) {
            float *out = ws->ctx + (long)(t0 + r) * d + head * dh;
            SL_V inv = SL_VSET1(vis[r] ? 1.0f / l[r] : 0.0f);
            for (int u = 0; u < dhv; u++) SL_VSTORE(out + SL_VW * u, acc[r][u] * inv);
            if (lse) lse[t0 + r] = vis[r] ? mx[r] + logf(l[r]) : 0.0f;
        }
    }
}

/* dV[j] += sum_r P[r][j] dO[r] and dK[j] += sum_r dS[r][j] q[r] for the ju
 * keys from j0 + j: each key's sums in the order of the rows. */
static inline __attribute__((always_inline)) void SL_VN(sl_dkdv_keys)(const float *P, const float *dS,
                                                                      SL_V (*ov)[4], SL_V (*qv)[4], float *dv,
                                                                      float *dk, int j0, int j, const int dh,
                                                                      const int qbn, const int ju)
{
    const int dhv = dh / SL_VW;
    SL_V av[2][4], ak[2][4];
    for (int i = 0; i < ju; i++)
        for (int u = 0; u < dhv; u++) {
            av[i][u] = SL_VLOAD(dv + (long)(j0 + j + i) * dh + SL_VW * u);
            ak[i][u] = SL_VLOAD(dk + (long)(j0 + j + i) * dh + SL_VW * u);
        }
    for (int r = 0; r < qbn; r++)
        for (int i = 0; i < ju; i++) {
            SL_V p = SL_VSET1(P[r * SL_KEY_TILE + j + i]), s = SL_VSET1(dS[r * SL_KEY_TILE + j + i]);
            for (int u = 0; u < dhv; u++) {
                av[i][u] += p * ov[r][u];
                ak[i][u] += s * qv[r][u];
            }
        }
    for (int i = 0; i < ju; i++)
        for (int u = 0; u < dhv; u++) {
            SL_VSTORE(dv + (long)(j0 + j + i) * dh + SL_VW * u, av[i][u]);
            SL_VSTORE(dk + (long)(j0 + j + i) * dh + SL_VW * u, ak[i][u]);
        }
}

#if SL_VW == 8
/* acc[j0 + j] += sum_r W[r][j] x[r] for the jn keys of a tile (dV from P
 * and the block's dO rows, or dK from dS and its q rows), each key's sum
 * in the order of the rows, as sl_dkdv_keys sums it (the same bits). With
 * 16 vector registers dV and dK go apart: one set of the block's rows
 * (qbn x dhv vectors) fits beside a key's accumulators, both sets do not,
 * and GCC then read every row from the stack in every FMA: the joint loop
 * made 1.7 loads a FMA (the score tile 0.7) and ran at about 60% of the
 * score tile's rate. The rows are pinned in registers for the same reason. */
static inline __attribute__((always_inline)) void SL_VN(sl_keys_rows)(const float *W, SL_V (*xv)[4], float *acc,
                                                                      int j0, int jn, const int dh, const int qbn)
{
    const int dhv = dh / SL_VW;
    SL_V x[SL_QB][4];
    for (int r = 0; r < qbn; r++)
        for (int u = 0; u < dhv; u++) {
            x[r][u] = xv[r][u];
            SL_IN_REGISTER(x[r][u]);
        }
    for (int j = 0; j < jn; j++) {
        float *aj = acc + (long)(j0 + j) * dh;
        SL_V a[4];
        for (int u = 0; u < dhv; u++) a[u] = SL_VLOAD(aj + SL_VW * u);
        for (int r = 0; r < qbn; r++) {
            SL_V w = SL_VSET1(W[r * SL_KEY_TILE + j]);
            for (int u = 0; u < dhv; u++) a[u] += w * x[r][u];
        }
        for (int u = 0; u < dhv; u++) SL_VSTORE(aj + SL_VW * u, a[u]);
    }
}
#endif

/* One head's backward (models/attention_backward.c): the block's q, dO and
 * dQ stay in registers (where there are enough) while the keys stream past;
 * dK and dV accumulate in memory, key by key. */
static inline __attribute__((always_inline)) void SL_VN(sl_head_backward)(const sl_config *c, const sl_workspace *ws,
                                                                          sl_backward_ws *b, int T, int nk,
                                                                          const float *lse, const int dh, const int qbn,
                                                                          const int nan_check)
{
    const int dhv = dh / SL_VW;
    int ld = ws->kt_ld;
    const float *q = ws->q, *kt = ws->kt, *vt = b->vt, *kr = b->kr, *dout = b->dout;
    float *P = b->tile, *dS = b->tile + SL_QB * SL_KEY_TILE, *dk = b->dk, *dv = b->dv;
    SL_V scale = SL_VSET1(1.0f / sqrtf((float)dh));
    int seen = 0;
    for (int t0 = 0; t0 < T; t0 += qbn) {
        int rows = T - t0 < qbn ? T - t0 : qbn, vis[SL_QB];
        int vmax = sl_block_visible(c, ws->kpos, nk, T, t0, qbn, &seen, vis);
        float qb[SL_DH_MAX][SL_QB], ob[SL_DH_MAX][SL_QB], m[SL_QB], D[SL_QB];
        sl_block_gather(q, dh, t0, rows, qbn, qb);
        sl_block_gather(dout, dh, t0, rows, qbn, ob);
        SL_V qv[SL_QB][4], ov[SL_QB][4], dq[SL_QB][4];
        for (int r = 0; r < qbn; r++) {
            long t = t0 + (r < rows ? r : rows - 1);
            m[r] = lse[t];
            D[r] = b->rowd[t];
            for (int u = 0; u < dhv; u++) {
                qv[r][u] = SL_VLOAD(q + t * dh + SL_VW * u);
                ov[r][u] = SL_VLOAD(dout + t * dh + SL_VW * u);
                dq[r][u] = SL_VSET1(0.0f);
            }
        }
        for (int j0 = 0; j0 < vmax; j0 += SL_KEY_TILE) {
            int jn = vmax - j0 < SL_KEY_TILE ? vmax - j0 : SL_KEY_TILE;
            SL_VN(sl_score_tile)(qb, kt, ld, j0, jn, P, dh, qbn);
            SL_VN(sl_score_tile)(ob, vt, ld, j0, jn, dS, dh, qbn);
            sl_probs_tile(P, dS, vis, rows, j0, jn, m, D, qbn, nan_check);
#if SL_VW == 8
            SL_VN(sl_keys_rows)(P, ov, dv, j0, jn, dh, qbn);
            SL_VN(sl_keys_rows)(dS, qv, dk, j0, jn, dh, qbn);
#else
            /* keys in pairs where there are registers for it, so that four
             * chains of dependent FMAs, not two, share the pipes */
            const int ju = sl_regs_dkdv(dh / SL_VW, qbn, 2) ? 2 : 1;
            int j = 0;
            if (ju == 2)
                for (; j + 2 <= jn; j += 2) SL_VN(sl_dkdv_keys)(P, dS, ov, qv, dv, dk, j0, j, dh, qbn, 2);
            for (; j < jn; j++) SL_VN(sl_dkdv_keys)(P, dS, ov, qv, dv, dk, j0, j, dh, qbn, 1);
#endif
            for (int j = 0; j < jn; j++) {
                SL_V kv[4];
                for (int u = 0; u < dhv; u++) kv[u] = SL_VLOAD(kr + (long)(j0 + j) * dh + SL_VW * u);
                for (int r = 0; r < qbn; r++) {
                    SL_V s = SL_VSET1(dS[r * SL_KEY_TILE + j]);
                    for (int u = 0; u < dhv; u++) dq[r][u] += s * kv[u];
                }
            }
        }
        for (int r = 0; r < rows; r++)
            for (int u = 0; u < dhv; u++) SL_VSTORE(b->dq + (long)(t0 + r) * dh + SL_VW * u, dq[r][u] * scale);
    }
}

#include "core/simd_width_end.h"
