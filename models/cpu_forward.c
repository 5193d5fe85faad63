/* The CPU backend's forward pass of one example: the architectures
 * (models/arch.h) on its operations (models/cpu_ops.h). */
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
