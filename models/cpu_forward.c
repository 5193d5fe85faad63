/* The CPU backend's forward pass of one example: the architectures
 * (models/arch.h) on its operations (models/cpu_ops.h). */
#include <string.h>

#include "models/arch.h"
#include "models/cpu_ops.h"
#include "models/forward_common.h"

int sl_forward_check(const sl_model *m, const sl_example *ex, const sl_workspace *ws, sl_error *err)
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
    int rc = sl_forward_check(m, ex, ws, err);
    for (int i = first_layer; !rc && i < m->c.n_layers; i++) rc = sl_arch_layer(&c.ops, i, err);
    return rc ? rc : sl_arch_tail(&c.ops, err);
}

int sl_forward(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, float *logit,
               sl_error *err)
{
    int rc = sl_forward_check(m, ex, ws, err);
    if (!rc) rc = embed(m, ex, ws, hooks, err);
    return rc ? rc : sl_forward_from(m, ex, ws, hooks, 0, logit, err);
}

float *sl_workspace_residual(sl_workspace *ws) { return ws->h; }

int sl_embed(const sl_model *m, const sl_example *ex, sl_workspace *ws, float *out, sl_error *err)
{
    int rc = sl_forward_check(m, ex, ws, err);
    if (!rc) rc = embed(m, ex, ws, NULL, err);
    if (!rc) memcpy(out, ws->h, (size_t)ex->len * m->c.d_model * sizeof *out);
    return rc;
}

int sl_forward_start(const sl_model *m, const sl_example *ex, sl_workspace *ws, const float *embed_in, sl_error *err)
{
    int rc = sl_forward_check(m, ex, ws, err);
    if (!rc && embed_in) memcpy(ws->h, embed_in, (size_t)ex->len * m->c.d_model * sizeof *ws->h);
    else if (!rc) rc = embed(m, ex, ws, NULL, err);
    return rc;
}
