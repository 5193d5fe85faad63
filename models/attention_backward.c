/* The attention's backward, FlashAttention-2's way (Dao, 2023): with the
 * log-sum-exp of each query row kept by the forward, a block of queries
 * recomputes its probabilities against one tile of keys at a time,
 * P = exp(S - lse), and dV += P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO O)),
 * dQ += dS K, dK += dS^T Q accumulate tile by tile: no [T, T] matrix, O(L)
 * memory per thread. Keys and masks as in the forward (models/attention.c). */
#include <math.h>
#include <string.h>

#include "core/mathx.h"
#include "core/simd.h"
#include "models/attention_tile.h"
#include "models/backward.h"

#define QB SL_QB

/* S and dP of a block against a tile become P and dS in place: 0 past a
 * row's visible keys, and for the repeats of a ragged end, whose gradients
 * must not count twice. */
static inline __attribute__((always_inline)) void probs_tile(float *P, float *dS, const int *vis, int rows, int j0,
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

/* One head for d_head = 8 * dhv in blocks of qbn <= QB queries, whose q,
 * dO and dQ stay in registers while the keys stream past; dK and dV
 * accumulate in memory, key by key. */
static inline __attribute__((always_inline)) void head_backward_v8(const sl_config *c, const sl_workspace *ws,
                                                                   sl_backward_ws *b, int T, int nk, const float *lse,
                                                                   const int dhv, const int qbn)
{
    int dh = 8 * dhv, ld = ws->kt_ld;
    const float *q = ws->q, *kt = ws->kt, *vt = b->vt, *kr = b->kr, *dout = b->dout;
    float *P = b->tile, *dS = b->tile + QB * SL_KEY_TILE, *dk = b->dk, *dv = b->dv;
    v8f scale = v8_set1(1.0f / sqrtf((float)dh));
    int seen = 0;
    for (int t0 = 0; t0 < T; t0 += qbn) {
        int rows = T - t0 < qbn ? T - t0 : qbn, vis[QB];
        int vmax = sl_block_visible(c, ws->kpos, nk, T, t0, qbn, &seen, vis);
        float qb[32][QB], ob[32][QB], m[QB], D[QB];
        sl_block_gather(q, dh, t0, rows, qbn, qb);
        sl_block_gather(dout, dh, t0, rows, qbn, ob);
        v8f qv[QB][4], ov[QB][4], dq[QB][4];
        for (int r = 0; r < qbn; r++) {
            long t = t0 + (r < rows ? r : rows - 1);
            m[r] = lse[t];
            D[r] = b->rowd[t];
            for (int u = 0; u < dhv; u++) {
                qv[r][u] = v8_load(q + t * dh + 8 * u);
                ov[r][u] = v8_load(dout + t * dh + 8 * u);
                dq[r][u] = v8_set1(0.0f);
            }
        }
        for (int j0 = 0; j0 < vmax; j0 += SL_KEY_TILE) {
            int jn = vmax - j0 < SL_KEY_TILE ? vmax - j0 : SL_KEY_TILE;
            sl_score_tile(qb, kt, ld, j0, jn, P, dhv, qbn);
            sl_score_tile(ob, vt, ld, j0, jn, dS, dhv, qbn);
            probs_tile(P, dS, vis, rows, j0, jn, m, D, qbn);
            for (int j = 0; j < jn; j++) {
                float *dvj = dv + (long)(j0 + j) * dh, *dkj = dk + (long)(j0 + j) * dh;
                v8f av[4], ak[4];
                for (int u = 0; u < dhv; u++) {
                    av[u] = v8_load(dvj + 8 * u);
                    ak[u] = v8_load(dkj + 8 * u);
                }
                for (int r = 0; r < qbn; r++) {
                    v8f p = v8_set1(P[r * SL_KEY_TILE + j]), s = v8_set1(dS[r * SL_KEY_TILE + j]);
                    for (int u = 0; u < dhv; u++) {
                        av[u] += p * ov[r][u];
                        ak[u] += s * qv[r][u];
                    }
                }
                for (int u = 0; u < dhv; u++) {
                    v8_store(dvj + 8 * u, av[u]);
                    v8_store(dkj + 8 * u, ak[u]);
                }
            }
            for (int j = 0; j < jn; j++) {
                v8f kv[4];
                for (int u = 0; u < dhv; u++) kv[u] = v8_load(kr + (long)(j0 + j) * dh + 8 * u);
                for (int r = 0; r < qbn; r++) {
                    v8f s = v8_set1(dS[r * SL_KEY_TILE + j]);
                    for (int u = 0; u < dhv; u++) dq[r][u] += s * kv[u];
                }
            }
        }
        for (int r = 0; r < rows; r++)
            for (int u = 0; u < dhv; u++) v8_store(b->dq + (long)(t0 + r) * dh + 8 * u, dq[r][u] * scale);
    }
}

/* Any d_head: one query at a time, plain loops. */
static void head_backward_any(const sl_config *c, const sl_workspace *ws, sl_backward_ws *b, int T, int nk,
                              const float *lse)
{
    int dh = c->d_head, ld = ws->kt_ld, visible = 0;
    float scale = 1.0f / sqrtf((float)dh), *p = b->tile, *ds = b->tile + QB * SL_KEY_TILE;
    for (int t = 0; t < T; t++) {
        const float *qt = ws->q + (long)t * dh, *ot = b->dout + (long)t * dh;
        float *dqt = b->dq + (long)t * dh;
        if (c->causal)
            while (visible < nk && ws->kpos[visible] <= t) visible++;
        else
            visible = nk;
        memset(dqt, 0, (size_t)dh * sizeof *dqt);
        for (int j0 = 0; j0 < visible; j0 += SL_KEY_TILE) {
            int jn = visible - j0 < SL_KEY_TILE ? visible - j0 : SL_KEY_TILE;
            sl_score_row(qt, ws->kt, ld, j0, jn, dh, p);
            sl_score_row(ot, b->vt, ld, j0, jn, dh, ds);
            for (int j = 0; j < jn; j++) {
                p[j] = sl_exp(p[j] - lse[t]);
                ds[j] = p[j] * (ds[j] - b->rowd[t]);
            }
            for (int j = 0; j < jn; j++) {
                float *dvj = b->dv + (long)(j0 + j) * dh, *dkj = b->dk + (long)(j0 + j) * dh;
                const float *kj = b->kr + (long)(j0 + j) * dh;
                for (int k = 0; k < dh; k++) {
                    dvj[k] += p[j] * ot[k];
                    dkj[k] += ds[j] * qt[k];
                    dqt[k] += ds[j] * kj[k];
                }
            }
        }
        for (int k = 0; k < dh; k++) dqt[k] *= scale;
    }
}

void sl_attention_backward(const sl_config *c, const sl_example *ex, sl_workspace *ws, const float *qkv,
                           const float *ctx, const float *lse, const float *dctx, float *dqkv)
{
    sl_backward_ws *b = ws->bw;
    int T = ex->len, d = c->d_model, dh = c->d_head, ld = ws->kt_ld;
    int nk = sl_key_positions(ex, ws->kpos);
    for (int h = 0; h < c->n_heads; h++) {
        const float *lh = lse + (long)h * ws->max_len;
        sl_pack_rows(qkv + h * dh, 3L * d, T, dh, 1.0f / sqrtf((float)dh), ws->q);
        sl_pack_key_cols(qkv, d, ws->kpos, nk, d + h * dh, dh, ld, ws->kt);
        sl_pack_key_cols(qkv, d, ws->kpos, nk, 2 * d + h * dh, dh, ld, b->vt);
        sl_pack_key_rows(qkv, d, ws->kpos, nk, d + h * dh, dh, b->kr);
        sl_pack_rows(dctx + h * dh, d, T, dh, 1.0f, b->dout);
        for (int t = 0; t < T; t++) {
            const float *o = ctx + (long)t * d + h * dh, *g = b->dout + (long)t * dh;
            float s = 0.0f;
            for (int k = 0; k < dh; k++) s += g[k] * o[k];
            b->rowd[t] = s;
        }
        memset(b->dk, 0, (size_t)nk * dh * sizeof *b->dk);
        memset(b->dv, 0, (size_t)nk * dh * sizeof *b->dv);
        switch (dh) {
        case 8: head_backward_v8(c, ws, b, T, nk, lh, 1, 6); break;
        case 16: head_backward_v8(c, ws, b, T, nk, lh, 2, 6); break;
        case 32: head_backward_v8(c, ws, b, T, nk, lh, 4, 3); break;
        default: head_backward_any(c, ws, b, T, nk, lh);
        }
        /* dropped keys get no gradient through k and v */
        for (int t = 0; t < T; t++) {
            float *row = dqkv + (long)t * 3 * d + h * dh;
            memcpy(row, b->dq + (long)t * dh, (size_t)dh * sizeof *row);
            memset(row + d, 0, (size_t)dh * sizeof *row);
            memset(row + 2 * d, 0, (size_t)dh * sizeof *row);
        }
        for (int j = 0; j < nk; j++) {
            float *row = dqkv + (long)ws->kpos[j] * 3 * d + h * dh;
            memcpy(row + d, b->dk + (long)j * dh, (size_t)dh * sizeof *row);
            memcpy(row + 2 * d, b->dv + (long)j * dh, (size_t)dh * sizeof *row);
        }
    }
}
