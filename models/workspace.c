/* The CPU backend's per-thread workspace and the Transformer's fixed
 * position tables. */
#include <math.h>
#include <stdlib.h>

#include "models/attention_tile.h"
#include "models/backward.h"
#include "models/mamba2_cpu.h"
#include "models/workspace.h"

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
    } else if (ok && c->arch == ARCH_MAMBA2) {
        size_t di = (size_t)c->d_inner, H = (size_t)c->nheads, nxbc = di + 2 * (size_t)c->ngroups * c->d_state;
        ok = (ws->zxbcdt = malloc(L * (di + nxbc + H) * 4)) && (ws->xbc = malloc(L * nxbc * 4))
          && (ws->delta = malloc(L * H * 4)) && (ws->y = malloc(L * di * 4))
          && (ws->state = malloc(sl_ssd_state_floats(c->nheads, c->headdim, c->d_state) * 4));
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
                     ws->zxbcdt, ws->xbc, ws->qkv, ws->ctx, ws->ff, ws->q, ws->kt, ws->v, ws->scores, ws->vall, ws->pattern, ws->pos_table};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(ws->kpos);
    sl_backward_ws_free(ws->bw);
    free(ws);
}
