/* Scaled dot-product attention of one example, all heads. Without a pattern
 * hook, keys stream in tiles with an online softmax, so memory is O(L) per
 * thread whatever L is; with one, the [H, L, L] pattern is materialised,
 * handed to the hook (which may rewrite it) and then applied to V. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/mathx.h"
#include "core/simd.h"
#include "models/attention_tile.h"
#include "models/forward_common.h"

#define QB SL_QB

/* Any d_head, queries t_first..T-1: one query at a time, plain loops
 * over tiles of keys with an online softmax. */
static void flash_head_any(const sl_config *c, sl_workspace *ws, int t_first, int T, int nk, int head)
{
    int d = c->d_model, dh = c->d_head, ld = ws->kt_ld, visible = 0;
    const float *q = ws->q, *kt = ws->kt, *v = ws->v;
    float *s = ws->scores, *acc = ws->scores + QB * SL_KEY_TILE;
    float *lse = ws->lse ? ws->lse + (long)head * ws->max_len : NULL;
    for (int t = t_first; t < T; t++) {
        const float *qt = q + (long)t * dh;
        if (c->causal)
            while (visible < nk && ws->kpos[visible] <= t) visible++;
        else
            visible = nk;
        float mx = -INFINITY, l = 0.0f;
        memset(acc, 0, (size_t)dh * sizeof *acc);
        for (int j0 = 0; j0 < visible; j0 += SL_KEY_TILE) {
            int jn = visible - j0 < SL_KEY_TILE ? visible - j0 : SL_KEY_TILE;
            sl_score_row(qt, kt, ld, j0, jn, dh, s);
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
        if (lse) lse[t] = visible ? mx + logf(l) : 0.0f;
    }
}

/* The streaming kernel that fits the head's width. The score tile keeps its
 * row maxima in registers where there are 32 of them (AVX-512). */
#ifdef __AVX512F__
#define FUSE_MAX 1
#else
#define FUSE_MAX 0
#endif
static inline __attribute__((always_inline)) void flash_head_fit(const sl_config *c, sl_workspace *ws, int t_first,
                                                                 int T, int nk, int head, const int nan_check)
{
    switch (c->d_head) {
    case 8: sl_flash_head_v8(c, ws, t_first, T, nk, head, 8, 6, nan_check, FUSE_MAX); break;
#ifdef __AVX512F__
    case 16: sl_flash_head_v16(c, ws, t_first, T, nk, head, 16, 12, nan_check, FUSE_MAX); break;
    case 32: sl_flash_head_v16(c, ws, t_first, T, nk, head, 32, 12, nan_check, FUSE_MAX); break;
    case 64: sl_flash_head_v16(c, ws, t_first, T, nk, head, 64, 6, nan_check, FUSE_MAX); break;
#else
    case 16: sl_flash_head_v8(c, ws, t_first, T, nk, head, 16, 6, nan_check, FUSE_MAX); break;
    case 32: sl_flash_head_v8(c, ws, t_first, T, nk, head, 32, 3, nan_check, FUSE_MAX); break;
#endif
    default: flash_head_any(c, ws, t_first, T, nk, head);
    }
}

/* Packs one head (q scaled by 1/sqrt(d_head), k transposed, v), dh a
 * constant where a kernel takes that width, and says whether no score can
 * be NaN (then the kernels skip their per-score NaN test). */
static inline __attribute__((always_inline)) int pack_head_w(const sl_config *c, sl_workspace *ws, int T, int nk,
                                                             int head, const int dh)
{
    int d = c->d_model, ld = ws->kt_ld;
    sl_pack_rows(ws->qkv + head * dh, 3L * d, T, dh, 1.0f / sqrtf((float)dh), ws->q);
    sl_pack_key_cols(ws->qkv, d, ws->kpos, nk, d + head * dh, dh, ld, ws->kt);
    sl_pack_key_rows(ws->qkv, d, ws->kpos, nk, 2 * d + head * dh, dh, ws->v);
    int tame = sl_scores_tame(ws->q, (long)T * dh);
    for (int k = 0; k < dh && tame; k++) tame = sl_scores_tame(ws->kt + (long)k * ld, nk);
    return tame;
}

static int pack_head(const sl_config *c, sl_workspace *ws, int T, int nk, int head)
{
    switch (c->d_head) {
    case 8: return pack_head_w(c, ws, T, nk, head, 8);
    case 16: return pack_head_w(c, ws, T, nk, head, 16);
    case 32: return pack_head_w(c, ws, T, nk, head, 32);
    case 64: return pack_head_w(c, ws, T, nk, head, 64);
    default: return pack_head_w(c, ws, T, nk, head, c->d_head);
    }
}

/* Queries t_first..T-1 of a packed head. */
static void flash_range(const sl_config *c, sl_workspace *ws, int t_first, int T, int nk, int head, int tame)
{
    if (tame)
        flash_head_fit(c, ws, t_first, T, nk, head, 0);
    else
        flash_head_fit(c, ws, t_first, T, nk, head, 1);
}

/* One head's probabilities [T, T] (0 where a key is hidden), with its
 * scaled queries, keys and values packed into q, k, v [T, d_head]. */
void sl_head_probs(const sl_config *c, const sl_example *ex, const float *qkv, int head, float *q, float *k, float *v,
                   float *P)
{
    int T = ex->len, d = c->d_model, dh = c->d_head;
    float scale = 1.0f / sqrtf((float)dh);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < dh; j++) {
            const float *row = qkv + (long)t * 3 * d + head * dh + j;
            q[t * dh + j] = row[0] * scale;
            k[t * dh + j] = row[d];
            v[t * dh + j] = row[2 * d];
        }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, dh, 1.0f, q, dh, k, dh, 0.0f, P, T);
    /* read as ex->keep inside the loop (which the stores to p might
     * alias), GCC left the max loop scalar */
    const uint8_t *keep = ex->keep;
    /* each row's loops in vector lanes, its sum too: its max loop had run
     * scalar, its sum one add after another, and a Transformer's inspect
     * at L 2,048 spent 40% of its time here (computing 32 rows' scores a
     * product, so that their softmax ran in L2, gained nothing: not kept) */
    for (int t = 0; t < T; t++) {
        float *p = P + (long)t * T, mx = -INFINITY, sum = 0.0f;
        int last = c->causal ? t : T - 1; /* keys after it are hidden */
#pragma omp simd reduction(max : mx)
        for (int j = 0; j < T; j++) {
            float sj = (!keep || keep[j]) && j <= last ? p[j] : -INFINITY;
            p[j] = sj;
            mx = sj > mx ? sj : mx;
        }
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < T; j++) {
            float e = p[j] == -INFINITY ? 0.0f : sl_exp(p[j] - mx);
            p[j] = e;
            sum += e;
        }
#pragma omp simd
        for (int j = 0; j < T; j++) p[j] = sum > 0.0f ? p[j] / sum : 0.0f;
    }
}

static int pattern_path(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int layer,
                        sl_error *err)
{
    const sl_config *c = &m->c;
    int T = ex->len, d = c->d_model, dh = c->d_head, H = c->n_heads;
    size_t L = (size_t)ws->max_len;
    size_t bytes;
    if (__builtin_mul_overflow((size_t)H * L, L * sizeof(float), &bytes) || (size_t)H * T > INT_MAX)
        return sl_fail(err, SL_EINPUT, "the attention pattern of %d heads x %zu x %zu positions is too large to hold",
                       H, L, L);
    if (!ws->pattern) {
        ws->pattern = malloc(bytes);
        ws->vall = malloc((size_t)H * L * (size_t)dh * sizeof(float));
        if (!ws->pattern || !ws->vall)
            return sl_fail(err, SL_ERUNTIME, "out of memory for the attention pattern (%d heads x %zu x %zu)", H, L, L);
    }
    for (int h = 0; h < H; h++)
        sl_head_probs(c, ex, ws->qkv, h, ws->q, ws->kt, ws->vall + (size_t)h * T * dh, ws->pattern + (size_t)h * T * T);
    int rc = sl_fire(m, hooks, ex, HK_ATTN_PATTERN, layer, ws->pattern, H * T, T, T, err);
    if (rc) return rc;
    for (int h = 0; h < H; h++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dh, T, 1.0f, ws->pattern + (size_t)h * T * T, T,
                    ws->vall + (size_t)h * T * dh, dh, 0.0f, ws->ctx + h * dh, d);
    return SL_OK;
}

void sl_attention_head(const sl_model *m, const sl_example *ex, sl_workspace *ws, int nk, int head, int t_first)
{
    const sl_config *c = &m->c;
    flash_range(c, ws, t_first, ex->len, nk, head, pack_head(c, ws, ex->len, nk, head));
}

static int ascending(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void sl_attention_rows(const sl_model *m, const sl_example *ex, sl_workspace *ws, int nk, int head, int *rows, int n)
{
    const sl_config *c = &m->c;
    int T = ex->len, tame = pack_head(c, ws, T, nk, head), done = 0;
    qsort(rows, (size_t)n, sizeof *rows, ascending);
    /* each from a block of queries starting there (a query's output has the
     * same bits in any block): rows in one block share it */
    for (int i = 0; i < n; i++) {
        if (rows[i] < done) continue;
        done = rows[i] + QB < T ? rows[i] + QB : T;
        flash_range(c, ws, rows[i], done, nk, head, tame);
    }
}

int sl_attention(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int layer,
                 sl_error *err)
{
    if (sl_hooks_on(hooks, sl_model_point(m, HK_ATTN_PATTERN, layer)))
        return pattern_path(m, ex, ws, hooks, layer, err);
    int nk = sl_key_positions(ex, ws->kpos);
    for (int h = 0; h < m->c.n_heads; h++) sl_attention_head(m, ex, ws, nk, h, 0);
    return SL_OK;
}
