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

static inline __attribute__((always_inline)) void head_backward_fit(const sl_config *c, const sl_workspace *ws,
                                                                    sl_backward_ws *b, int T, int nk, const float *lse,
                                                                    const int nan_check)
{
    switch (c->d_head) {
    case 8: sl_head_backward_v8(c, ws, b, T, nk, lse, 8, 6, nan_check); break;
#ifdef __AVX512F__
    case 16: sl_head_backward_v16(c, ws, b, T, nk, lse, 16, 12, nan_check); break;
    case 32: sl_head_backward_v16(c, ws, b, T, nk, lse, 32, 6, nan_check); break;
    case 64: sl_head_backward_v16(c, ws, b, T, nk, lse, 64, 3, nan_check); break;
#else
    case 16: sl_head_backward_v8(c, ws, b, T, nk, lse, 16, 6, nan_check); break;
    case 32: sl_head_backward_v8(c, ws, b, T, nk, lse, 32, 3, nan_check); break;
#endif
    default: head_backward_any(c, ws, b, T, nk, lse);
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
        /* sl_exp's NaN and upper bounds only where a score can be NaN */
        int tame = sl_scores_tame(ws->q, (long)T * dh);
        for (int k = 0; k < dh && tame; k++) tame = sl_scores_tame(ws->kt + (long)k * ld, nk);
        for (int t = 0; t < T && tame; t++) tame = isfinite(lh[t]);
        if (tame)
            head_backward_fit(c, ws, b, T, nk, lh, 0);
        else
            head_backward_fit(c, ws, b, T, nk, lh, 1);
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
