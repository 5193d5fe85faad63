/* The CPU backend's forward pass of one example (models/cpu_forward.c,
 * cpu_ops.c): its kernels and entry points. Internal to models/. */
#ifndef SL_FORWARD_COMMON_H
#define SL_FORWARD_COMMON_H

#include "models/model.h"
#include "models/workspace.h"

/* Runs the hooks registered at (kind, layer) on a [rows, cols] view. */
int sl_fire(const sl_model *m, const sl_hooks *hooks, const sl_example *ex, int kind, int layer, float *data, int rows,
            int cols, int ld, sl_error *err);

void sl_rmsnorm(const float *x, const float *w, float eps, int rows, int d, float *y);
void sl_layernorm(const float *x, const float *w, const float *b, float eps, int rows, int d, float *y);

/* Whether ex fits ws (and a model's learned positions): SL_OK, or the error. */
int sl_forward_check(const sl_model *m, const sl_example *ex, const sl_workspace *ws, sl_error *err);

/* Final stage from the residual stream in ws->h: final norm (if any), the
 * `final` hook, pooling, `pooled`, head, `logits`. */
int sl_forward_tail(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, float *logit,
                    sl_error *err);

/* ws->h = embed_in or, NULL, ex's embedding without hooks, ex's length
 * checked: where the gradient's forward pass begins (models/backward.c). */
int sl_forward_start(const sl_model *m, const sl_example *ex, sl_workspace *ws, const float *embed_in, sl_error *err);

void sl_head_probs(const sl_config *c, const sl_example *ex, const float *qkv, int head, float *q, float *k, float *v,
                   float *P);
/* Multi-head attention from ws->qkv into ws->ctx (q, k already rotated). */
int sl_attention(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int layer,
                 sl_error *err);
/* One head of sl_attention's streaming path (no pattern hook) for queries
 * t_first..len-1: from ws->qkv into its columns of ws->ctx, the nk keys at
 * ws->kpos (sl_key_positions), each row with the whole head's bits. */
void sl_attention_head(const sl_model *m, const sl_example *ex, sl_workspace *ws, int nk, int head, int t_first);
/* Rows rows[0..n-1] of one head's context (sorted in place) from all the
 * keys each sees, with the bits sl_attention_head gives them; the streaming
 * kernel runs over a block of queries from each, so rows near a listed one
 * may be rewritten too (with those bits). */
void sl_attention_rows(const sl_model *m, const sl_example *ex, sl_workspace *ws, int nk, int head, int *rows, int n);

#endif
