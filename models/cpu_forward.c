/* The CPU backend's forward pass of one example: the architectures
 * (models/arch.h) on its operations (models/cpu_ops.h). */
#include <string.h>

#include "models/arch.h"
#include "models/backward.h"
#include "models/cpu_ops.h"

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

/* Without hooks, keeping block i's attention and what the backward needs
 * of its residual and MLP (ws->lse, ws->keep) in the tapes of ws->bw. */
int sl_tf_layer_forward_taped(const sl_model *m, const sl_example *ex, sl_workspace *ws, int i, sl_error *err)
{
    sl_tf_tape tp = sl_tf_tape_at(m, ws, i);
    size_t d = (size_t)m->c.d_model, T = (size_t)ex->len;
    ws->lse = tp.lse;
    ws->keep = tp.attn_resid;
    sl_cpu_ops c = sl_cpu_ops_on(m, ex, ws, NULL, NULL);
    int rc = sl_tf_block(&c.ops, i, err);
    ws->lse = ws->keep = NULL;
    memcpy(tp.qkv, ws->qkv, T * 3 * d * sizeof *ws->qkv);
    memcpy(tp.ctx, ws->ctx, T * d * sizeof *ws->ctx);
    return rc;
}

/* Mamba-2: the block as it is, without hooks; its backward
 * (models/mamba2_grad.c) runs it again from the input the tape keeps. */
static int plain_layer(const sl_model *m, const sl_example *ex, sl_workspace *ws, int i, sl_error *err)
{
    sl_cpu_ops c = sl_cpu_ops_on(m, ex, ws, NULL, NULL);
    return sl_arch_layer(&c.ops, i, err);
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

static int embed(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, sl_error *err)
{
    sl_cpu_ops c = sl_cpu_ops_on(m, ex, ws, hooks, NULL);
    return sl_arch_embed(&c.ops, err);
}

int sl_forward_tail(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, float *logit,
                    sl_error *err)
{
    sl_cpu_ops c = sl_cpu_ops_on(m, ex, ws, hooks, logit);
    return sl_arch_tail(&c.ops, err);
}

int sl_forward_from(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int first_layer,
                    float *logit, sl_error *err)
{
    sl_cpu_ops c = sl_cpu_ops_on(m, ex, ws, hooks, logit);
    int rc = check_length(m, ex, ws, err);
    for (int i = first_layer; !rc && i < m->c.n_layers; i++) rc = sl_arch_layer(&c.ops, i, err);
    return rc ? rc : sl_arch_tail(&c.ops, err);
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
        if (m->c.arch == ARCH_MAMBA) rc = sl_mamba_layer_forward_taped(m, ex, ws, i, err);
        else if (m->c.arch == ARCH_TRANSFORMER) rc = sl_tf_layer_forward_taped(m, ex, ws, i, err);
        else rc = plain_layer(m, ex, ws, i, err);
    }
    if (!rc) memcpy(tape + m->c.n_layers * stride, ws->h, n * sizeof *tape);
    return rc ? rc : sl_forward_tail(m, ex, ws, NULL, logit, err);
}
