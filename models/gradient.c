/* The gradient's driving loop for every backend (models/arch.h): the
 * forward pass from SL_H keeping each block's input, the tail, then the
 * tail's backward and each block's from the last down. The backend's tape
 * (models/ops.h: sl_tape) says where each block's input and what its
 * backward reads lie; the blocks' backward passes are models/mamba_grad.c, mamba2_grad.c and
 * transformer_grad.c. */
#include "models/arch.h"

int sl_arch_gradient(sl_ops *o, sl_tape *tp, sl_error *err)
{
    const sl_tape_ops *t = tp->t;
    int nl = o->m->c.n_layers, d = o->m->c.d_model, rc = SL_OK;
    sl_view h = sl_rows(SL_H, d), kept = sl_rows(SL_H_IN, d);
    for (int i = 0; !rc && i <= nl; i++) {
        rc = t->forward_begin(tp, o, i, err);
        if (rc) break;
        rc = o->g->copy(o, h, kept, err);
        if (!rc && i < nl) rc = sl_arch_layer(o, i, err);
        t->forward_end(tp, o, i);
    }
    if (!rc) rc = sl_arch_tail(o, err);
    for (int i = nl; !rc && i >= 0; i--) {
        rc = t->backward_begin(tp, o, i, err);
        if (!rc) rc = i == nl ? sl_arch_tail_backward(o, err) : sl_arch_layer_backward(o, i, err);
        if (!rc) rc = t->backward_end(tp, o, i, err);
    }
    return rc;
}
