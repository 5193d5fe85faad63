/* The CPU backend's forward pass of one example: the architectures
 * (models/arch.h) on its operations (models/cpu_ops.h). */
#include <string.h>

#include "models/arch.h"
#include "models/backward.h"
#include "models/cpu_ops.h"

int sl_mamba_layer_forward(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int i,
                           sl_error *err)
{
    sl_cpu_ops c = sl_cpu_ops_on(m, ex, ws, hooks, NULL);
    return sl_mamba_block(&c.ops, i, err);
}

/* Without hooks, the block's activations going to its tape: z is kept and
 * the gated y goes to ws->y, so that the backward pass need not run it
 * again. */
int sl_mamba_layer_forward_taped(const sl_model *m, const sl_example *ex, sl_workspace *ws, int i, sl_error *err)
{
    sl_mamba_tape tp = sl_mamba_tape_at(m, ws, i);
    sl_cpu_ops c = sl_cpu_ops_on(m, ex, ws, NULL, NULL);
    c.tape = &tp;
    return sl_mamba_block(&c.ops, i, err);
}

int sl_tf_layer_forward(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int i,
                        sl_error *err)
{
    sl_cpu_ops c = sl_cpu_ops_on(m, ex, ws, hooks, NULL);
    return sl_tf_block(&c.ops, i, err);
}

/* Without hooks, keeping block i's attention and what the backward needs
 * of its residual and MLP (ws->lse, ws->keep) in the tapes of ws->bw. */
int sl_tf_layer_forward_taped(const sl_model *m, const sl_example *ex, sl_workspace *ws, int i, sl_error *err)
{
    sl_backward_ws *b = ws->bw;
    size_t L = (size_t)ws->max_len, d = (size_t)m->c.d_model, T = (size_t)ex->len;
    ws->lse = b->lse_tape + i * L * m->c.n_heads;
    ws->keep = b->keep_tape + i * L * (2 * d + (size_t)m->c.d_ff);
    int rc = sl_tf_layer_forward(m, ex, ws, NULL, i, err);
    ws->lse = ws->keep = NULL;
    memcpy(b->qkv_tape + i * L * 3 * d, ws->qkv, T * 3 * d * sizeof *ws->qkv);
    memcpy(b->ctx_tape + i * L * d, ws->ctx, T * d * sizeof *ws->ctx);
    return rc;
}
