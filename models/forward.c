#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "models/arch.h"
#include "models/attention_tile.h"
#include "models/backward.h"
#include "models/forward_common.h"
#include "models/mamba_scan.h"

int sl_fire(const sl_model *m, const sl_hooks *hooks, const sl_example *ex, int kind, int layer, float *data, int rows,
            int cols, int ld, sl_error *err)
{
    int id = sl_model_point(m, kind, layer);
    if (!sl_hooks_on(hooks, id)) return SL_OK;
    sl_hook_event ev = {
        .point = &m->points[id], .id = id, .example = ex->index, .slot = ex->slot, .len = ex->len,
        .heads = m->c.n_heads, .tokens = ex->tokens, .data = data, .rows = rows, .cols = cols, .ld = ld,
    };
    return sl_hooks_fire(hooks, &ev, err);
}

void sl_rmsnorm(const float *x, const float *w, float eps, int rows, int d, float *y)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * d;
        float *yr = y + (long)r * d;
        float ss = 0;
        for (int i = 0; i < d; i++) ss += xr[i] * xr[i];
        float inv = 1.0f / sqrtf(ss / d + eps);
        for (int i = 0; i < d; i++) yr[i] = xr[i] * inv * w[i];
    }
}

void sl_layernorm(const float *x, const float *w, const float *b, float eps, int rows, int d, float *y)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * d;
        float *yr = y + (long)r * d;
        float mean = 0, var = 0;
        for (int i = 0; i < d; i++) mean += xr[i];
        mean /= d;
        for (int i = 0; i < d; i++) var += (xr[i] - mean) * (xr[i] - mean);
        float inv = 1.0f / sqrtf(var / d + eps);
        for (int i = 0; i < d; i++) yr[i] = (xr[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
    }
}

void sl_mamba_norm(const sl_config *c, const float *x, const float *w, const float *b, int rows, float *y)
{
    if (c->norm == NORM_LAYER) sl_layernorm(x, w, b, c->norm_eps, rows, c->d_model, y);
    else sl_rmsnorm(x, w, c->norm_eps, rows, c->d_model, y);
}

/* Position tables in double precision: at position 4096 a float32 angle is
 * already off by ~2e-4 radians. */
void sl_pos_table(const sl_config *c, int max_len, float *out)
{
    if (c->positional == POS_SINUSOIDAL) {
        int d = c->d_model;
        for (int p = 0; p < max_len; p++)
            for (int i = 0; i < d; i += 2) {
                double ang = p * exp(i * (-log(10000.0) / d));
                out[(long)p * d + i] = (float)sin(ang);
                if (i + 1 < d) out[(long)p * d + i + 1] = (float)cos(ang);
            }
    } else if (c->positional == POS_ROPE) {
        int half = c->d_head / 2;
        for (int p = 0; p < max_len; p++)
            for (int i = 0; i < half; i++) {
                double ang = p * pow((double)c->rope_base, -2.0 * i / c->d_head);
                out[((long)p * 2) * half + i] = (float)cos(ang);
                out[((long)p * 2 + 1) * half + i] = (float)sin(ang);
            }
    }
}

long sl_pos_table_size(const sl_config *c, int max_len)
{
    if (c->arch != ARCH_TRANSFORMER) return 0;
    if (c->positional == POS_SINUSOIDAL) return (long)max_len * c->d_model;
    if (c->positional == POS_ROPE) return (long)max_len * 2 * (c->d_head / 2);
    return 0;
}

sl_workspace *sl_workspace_new(const sl_model *m, int max_len, sl_error *err)
{
    const sl_config *c = &m->c;
    sl_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) goto oom;
    ws->max_len = max_len;
    size_t L = (size_t)max_len, d = (size_t)c->d_model;
    int ok = (ws->h = malloc(L * d * 4)) && (ws->a = malloc(L * d * 4)) && (ws->out = malloc(L * d * 4))
          && (ws->pooled = malloc(d * 4));
    if (ok && c->arch == ARCH_MAMBA) {
        size_t di = (size_t)c->d_inner, S = (size_t)c->d_state, R = (size_t)c->dt_rank;
        ok = (ws->xz = malloc(L * 2 * di * 4)) && (ws->xc = malloc(L * di * 4)) && (ws->xdbl = malloc(L * (R + 2 * S) * 4))
          && (ws->delta = malloc(L * di * 4)) && (ws->y = malloc(L * di * 4)) && (ws->state = malloc(S * di * 4));
    } else if (ok) {
        size_t dh = (size_t)c->d_head;
        /* +16: a row stride that is a multiple of 4 KiB would put all d_head
         * rows of a key tile in one L1 set */
        ws->kt_ld = ((max_len + 15) & ~15) + 16;
        ok = (ws->qkv = malloc(L * 3 * d * 4)) && (ws->ctx = malloc(L * d * 4)) && (ws->ff = malloc(L * (size_t)c->d_ff * 4))
          && (ws->q = malloc(L * dh * 4)) && (ws->kt = malloc((size_t)ws->kt_ld * dh * 4)) && (ws->v = malloc(L * dh * 4))
          && (ws->scores = malloc((SL_QB * SL_KEY_TILE + dh) * 4)) && (ws->kpos = malloc(L * sizeof(int)));
        long table = sl_pos_table_size(c, max_len);
        if (ok && table) {
            ok = (ws->pos_table = malloc((size_t)table * 4)) != NULL;
            if (ok) sl_pos_table(c, max_len, ws->pos_table);
        }
    }
    if (ok) return ws;
oom:
    sl_workspace_free(ws);
    sl_fail(err, SL_ERUNTIME, "out of memory for a workspace of %d positions", max_len);
    return NULL;
}

void sl_workspace_free(sl_workspace *ws)
{
    if (!ws) return;
    float *bufs[] = {ws->h, ws->a, ws->out, ws->pooled, ws->xz, ws->xc, ws->xdbl, ws->delta, ws->y, ws->state,
                     ws->qkv, ws->ctx, ws->ff, ws->q, ws->kt, ws->v, ws->scores, ws->vall, ws->pattern, ws->pos_table};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(ws->kpos);
    sl_backward_ws_free(ws->bw);
    free(ws);
}

/* h = the token embedding the model adds (embedding(tokens), times
 * embed_scale), hooked as `embed.tokens`, plus the positional term
 * (ablations replace the token part only, scale included), hooked as
 * `embed`. */
static int embed(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, sl_error *err)
{
    const sl_config *c = &m->c;
    int d = c->d_model, T = ex->len;
    float scale = sl_embed_scale(c);
    for (int t = 0; t < T; t++) {
        const float *src = m->emb + (long)ex->tokens[t] * d;
        float *dst = ws->h + (long)t * d;
        for (int k = 0; k < d; k++) dst[k] = scale * src[k];
    }
    int rc = sl_fire(m, hooks, ex, HK_EMBED_TOKENS, -1, ws->h, T, d, d, err);
    const float *pe = c->arch != ARCH_TRANSFORMER ? NULL
                    : c->positional == POS_LEARNED ? m->pos
                    : c->positional == POS_SINUSOIDAL ? ws->pos_table : NULL;
    if (pe)
        for (long k = 0; k < (long)T * d; k++) ws->h[k] += pe[k];
    return rc ? rc : sl_fire(m, hooks, ex, HK_EMBED, -1, ws->h, T, d, d, err);
}

int sl_forward_tail(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, float *logit,
                    sl_error *err)
{
    const sl_config *c = &m->c;
    int d = c->d_model, T = ex->len;
    float *fin = ws->h;
    if (c->arch == ARCH_MAMBA) {
        sl_mamba_norm(c, ws->h, m->norm_w, m->norm_b, T, ws->a);
        fin = ws->a;
    } else if (c->final_norm) {
        sl_layernorm(ws->h, m->norm_w, m->norm_b, c->layer_norm_eps, T, d, ws->a);
        fin = ws->a;
    }
    int rc = sl_fire(m, hooks, ex, HK_FINAL, -1, fin, T, d, d, err);
    if (rc) return rc;

    float *p = ws->pooled;
    if (c->pooling == POOL_CLS) {
        memcpy(p, fin, (size_t)d * sizeof *p);
    } else if (c->pooling == POOL_LAST) {
        int t = T - 1;
        while (ex->keep && t > 0 && !ex->keep[t]) t--;
        memcpy(p, fin + (long)t * d, (size_t)d * sizeof *p);
    } else {
        int kept = 0;
        memset(p, 0, (size_t)d * sizeof *p);
        for (int t = 0; t < T; t++) {
            if (ex->keep && !ex->keep[t]) continue;
            kept++;
            for (int i = 0; i < d; i++) p[i] += fin[(long)t * d + i];
        }
        for (int i = 0; i < d; i++) p[i] /= kept ? kept : 1;
    }
    rc = sl_fire(m, hooks, ex, HK_POOLED, -1, p, 1, d, d, err);
    if (rc) return rc;

    float z[2];
    for (int r = 0; r < m->head_rows; r++) {
        float s = m->head_b ? m->head_b[r] : 0.0f;
        for (int i = 0; i < d; i++) s += m->head_w[r * d + i] * p[i];
        z[r] = s;
    }
    *logit = m->head_rows == 2 ? z[1] - z[0] : z[0];
    return sl_fire(m, hooks, ex, HK_LOGITS, -1, logit, 1, 1, 1, err);
}

static int check_length(const sl_model *m, const sl_example *ex, const sl_workspace *ws, sl_error *err)
{
    if (ex->len < 1 || ex->len > ws->max_len)
        return sl_fail(err, SL_ERUNTIME, "example %ld: length %d outside the workspace's 1..%d", ex->index, ex->len,
                       ws->max_len);
    if (m->c.arch == ARCH_TRANSFORMER && m->c.positional == POS_LEARNED && ex->len > m->c.max_len)
        return sl_fail(err, SL_EINPUT, "example %ld: length %d exceeds max_len %d of the learned positions", ex->index,
                       ex->len, m->c.max_len);
    return SL_OK;
}

int sl_forward_from(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int first_layer,
                    float *logit, sl_error *err)
{
    int rc = check_length(m, ex, ws, err);
    for (int i = first_layer; !rc && i < m->c.n_layers; i++)
        rc = m->c.arch == ARCH_MAMBA ? sl_mamba_layer_forward(m, ex, ws, hooks, i, err)
                                     : sl_tf_layer_forward(m, ex, ws, hooks, i, err);
    return rc ? rc : sl_forward_tail(m, ex, ws, hooks, logit, err);
}

int sl_forward(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, float *logit,
               sl_error *err)
{
    int rc = check_length(m, ex, ws, err);
    if (!rc) rc = embed(m, ex, ws, hooks, err);
    return rc ? rc : sl_forward_from(m, ex, ws, hooks, 0, logit, err);
}

float *sl_workspace_residual(sl_workspace *ws) { return ws->h; }

int sl_embed(const sl_model *m, const sl_example *ex, sl_workspace *ws, float *out, sl_error *err)
{
    int rc = check_length(m, ex, ws, err);
    if (!rc) rc = embed(m, ex, ws, NULL, err);
    if (!rc) memcpy(out, ws->h, (size_t)ex->len * m->c.d_model * sizeof *out);
    return rc;
}

int sl_forward_taped(const sl_model *m, const sl_example *ex, sl_workspace *ws, const float *embed_in, float *tape,
                     float *logit, sl_error *err)
{
    int rc = check_length(m, ex, ws, err), d = m->c.d_model;
    size_t stride = (size_t)ws->max_len * d, n = (size_t)ex->len * d;
    if (!rc && embed_in) memcpy(ws->h, embed_in, n * sizeof *ws->h);
    else if (!rc) rc = embed(m, ex, ws, NULL, err);
    for (int i = 0; !rc && i < m->c.n_layers; i++) {
        memcpy(tape + i * stride, ws->h, n * sizeof *tape);
        rc = m->c.arch == ARCH_MAMBA ? sl_mamba_layer_forward_taped(m, ex, ws, i, err)
                                     : sl_tf_layer_forward_taped(m, ex, ws, i, err);
    }
    if (!rc) memcpy(tape + m->c.n_layers * stride, ws->h, n * sizeof *tape);
    return rc ? rc : sl_forward_tail(m, ex, ws, NULL, logit, err);
}

int sl_arch_layer(sl_ops *o, int i, sl_error *err)
{
    return o->m->c.arch == ARCH_MAMBA ? sl_mamba_block(o, i, err) : sl_tf_block(o, i, err);
}
