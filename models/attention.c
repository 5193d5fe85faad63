/* Scaled dot-product attention of one example, all heads. Without a pattern
 * hook, keys stream in tiles with an online softmax, so memory is O(L) per
 * thread whatever L is; with one, the [H, L, L] pattern is materialised,
 * handed to the hook (which may rewrite it) and then applied to V. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/mathx.h"
#include "models/forward_common.h"

/* The keys a query may see: kept positions, in order. */
static int key_positions(const sl_example *ex, int *kpos)
{
    int nk = 0;
    for (int t = 0; t < ex->len; t++)
        if (!ex->keep || ex->keep[t]) kpos[nk++] = t;
    return nk;
}

static void flash_head(const sl_config *c, sl_workspace *ws, int T, int nk, int head)
{
    int d = c->d_model, dh = c->d_head, ld = ws->max_len;
    const float *qkv = ws->qkv;
    float scale = 1.0f / sqrtf((float)dh);
    float *q = ws->q, *kt = ws->kt, *v = ws->v, *s = ws->scores;
    for (int t = 0; t < T; t++)
        for (int k = 0; k < dh; k++) q[t * dh + k] = qkv[(long)t * 3 * d + head * dh + k] * scale;
    for (int j = 0; j < nk; j++) {
        const float *row = qkv + (long)ws->kpos[j] * 3 * d;
        for (int k = 0; k < dh; k++) {
            kt[(long)k * ld + j] = row[d + head * dh + k];
            v[(long)j * dh + k] = row[2 * d + head * dh + k];
        }
    }
    float acc[dh];
    int visible = 0;
    for (int t = 0; t < T; t++) {
        const float *qt = q + (long)t * dh;
        if (c->causal)
            while (visible < nk && ws->kpos[visible] <= t) visible++;
        else
            visible = nk;
        float mx = -INFINITY, l = 0.0f;
        memset(acc, 0, sizeof acc);
        for (int j0 = 0; j0 < visible; j0 += SL_KEY_TILE) {
            int jn = visible - j0 < SL_KEY_TILE ? visible - j0 : SL_KEY_TILE;
            for (int j = 0; j < jn; j++) s[j] = 0.0f;
            for (int k = 0; k < dh; k++) {
                const float *kr = kt + (long)k * ld + j0;
                float qk = qt[k];
                for (int j = 0; j < jn; j++) s[j] += qk * kr[j];
            }
            float tile_max = -INFINITY;
#pragma omp simd reduction(max : tile_max)
            for (int j = 0; j < jn; j++) tile_max = s[j] > tile_max ? s[j] : tile_max;
            float mnew = tile_max > mx ? tile_max : mx;
            float corr = mx == -INFINITY ? 0.0f : sl_exp(mx - mnew), sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int j = 0; j < jn; j++) {
                s[j] = sl_exp(s[j] - mnew);
                sum += s[j];
            }
            for (int k = 0; k < dh; k++) acc[k] *= corr;
            for (int j = 0; j < jn; j++) {
                const float *vj = v + (long)(j0 + j) * dh;
                float p = s[j];
                for (int k = 0; k < dh; k++) acc[k] += p * vj[k];
            }
            l = l * corr + sum;
            mx = mnew;
        }
        float *out = ws->ctx + (long)t * d + head * dh;
        for (int k = 0; k < dh; k++) out[k] = visible ? acc[k] / l : 0.0f;
    }
}

static int pattern_path(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int layer,
                        sl_error *err)
{
    const sl_config *c = &m->c;
    int T = ex->len, d = c->d_model, dh = c->d_head, H = c->n_heads;
    size_t L = (size_t)ws->max_len;
    if (!ws->pattern) {
        ws->pattern = malloc((size_t)H * L * L * sizeof(float));
        ws->vall = malloc((size_t)H * L * (size_t)dh * sizeof(float));
        if (!ws->pattern || !ws->vall)
            return sl_fail(err, SL_ERUNTIME, "out of memory for the attention pattern (%d heads x %zu x %zu)", H, L, L);
    }
    float scale = 1.0f / sqrtf((float)dh);
    for (int h = 0; h < H; h++) {
        float *P = ws->pattern + (size_t)h * T * T, *Vh = ws->vall + (size_t)h * T * dh;
        for (int t = 0; t < T; t++)
            for (int k = 0; k < dh; k++) {
                const float *row = ws->qkv + (long)t * 3 * d + h * dh + k;
                ws->q[t * dh + k] = row[0] * scale;
                ws->kt[t * dh + k] = row[d];
                Vh[t * dh + k] = row[2 * d];
            }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, dh, 1.0f, ws->q, dh, ws->kt, dh, 0.0f, P, T);
        for (int t = 0; t < T; t++) {
            float *p = P + (long)t * T, mx = -INFINITY, sum = 0.0f;
            for (int j = 0; j < T; j++) {
                int seen = (!ex->keep || ex->keep[j]) && (!c->causal || j <= t);
                if (!seen) p[j] = -INFINITY;
                else if (p[j] > mx) mx = p[j];
            }
            for (int j = 0; j < T; j++) {
                p[j] = p[j] == -INFINITY ? 0.0f : sl_exp(p[j] - mx);
                sum += p[j];
            }
            for (int j = 0; j < T; j++) p[j] = sum > 0.0f ? p[j] / sum : 0.0f;
        }
    }
    int rc = sl_fire(m, hooks, ex, HK_ATTN_PATTERN, layer, ws->pattern, H * T, T, T, err);
    if (rc) return rc;
    for (int h = 0; h < H; h++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dh, T, 1.0f, ws->pattern + (size_t)h * T * T, T,
                    ws->vall + (size_t)h * T * dh, dh, 0.0f, ws->ctx + h * dh, d);
    return SL_OK;
}

int sl_attention(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int layer,
                 sl_error *err)
{
    if (sl_hooks_on(hooks, sl_model_point(m, HK_ATTN_PATTERN, layer)))
        return pattern_path(m, ex, ws, hooks, layer, err);
    int nk = key_positions(ex, ws->kpos);
    for (int h = 0; h < m->c.n_heads; h++) flash_head(&m->c, ws, ex->len, nk, h);
    return SL_OK;
}
