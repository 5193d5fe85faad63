/* What Mamba's forward (models/mamba.c) and backward
 * (models/mamba_backward.c) share: the scan's decay, the causal conv, and
 * the tape the gradient's forward pass leaves for the backward. Internal to
 * models/. */
#ifndef SL_MAMBA_SCAN_H
#define SL_MAMBA_SCAN_H

#include "core/mathx.h"
#include "core/simd.h"
#include "models/workspace.h"

/* The backward pass recomputes the scan's states a chunk of this many
 * positions at a time, from the state the forward kept before the chunk:
 * the chunk's states and decays (2 x 16 x 8 KiB at d_inner 128, d_state
 * 16) stay in L2, and the kept states cost L / 16 x 8 KiB a layer. */
#define SL_SCAN_CHUNK 16

/* exp(delta A) of eight channels of one state (delta >= 0, A < 0). */
static inline v8f sl_scan_decay(v8f delta, const float *A)
{
    v8f arg = delta * v8_load(A), a;
    for (int k = 0; k < 8; k++) a[k] = sl_exp_nonpos(arg[k]);
    return a;
}

/* The causal depthwise conv (d_conv - 1 zeros on the left), before SiLU. */
void sl_mamba_conv(const float *x, int ldx, int T, int di, int K, const float *w, const float *b, float *out);

/* One block's activations as the gradient's forward pass kept them
 * (views into the backward workspace, [max_len] rows each). */
typedef struct {
    float *xz;   /* [L, 2 d_inner]: x, then z (raw, not gated) */
    float *xc;   /* [L, d_inner]: conv + SiLU */
    float *xdbl; /* [L, dt_rank + 2 d_state]: dt | B | C */
    float *y;    /* [L, d_inner]: the scan's output, before the gate */
    float *ckpt; /* [ceil(L / SL_SCAN_CHUNK), d_state, d_inner]: the state before each chunk (row 0 unused: zeros) */
} sl_mamba_tape;

sl_mamba_tape sl_mamba_tape_at(const sl_model *m, sl_workspace *ws, int layer);

/* sl_mamba_layer_forward without hooks, keeping the block's activations in
 * its tape (ws->bw must exist). */
int sl_mamba_layer_forward_taped(const sl_model *m, const sl_example *ex, sl_workspace *ws, int layer, sl_error *err);

#endif
