/* Gradients of an example's logit with respect to its residual stream, for
 * attribution: one forward pass that keeps each block's input and what its
 * backward needs (a Transformer block its q, k, v, context, log-sum-exp and
 * MLP pre-activation; a Mamba block its activations and the scan state
 * every SL_SCAN_CHUNK positions: models/mamba_scan.h), then one backward
 * pass through the blocks in reverse, recomputing only the scan's states a
 * chunk at a time. Memory per thread is O(n_layers x L). Internal to
 * models/; the public entry is in models/model.h. */
#ifndef SL_BACKWARD_H
#define SL_BACKWARD_H

#include <math.h>

#include "models/forward_common.h"

#define SL_BW_BUFS 14

/* Scratch of the backward pass, allocated on first use. */
typedef struct sl_backward_ws {
    float *tape;            /* [n_layers + 1][L][d]: each block's input, then the last block's output */
    float *g;               /* [L, d] gradient flowing down the residual stream */
    float *buf[SL_BW_BUFS]; /* [L, wide], wide = max(3 d, 2 d_inner + ..., d_ff) */
    /* Transformer: what the taped forward keeps of each block's attention
     * (q, k, v after the rotation, the context, each query row's log-sum-exp),
     * so that the backward neither recomputes it nor holds an [L, L] matrix */
    float *qkv_tape;        /* [n_layers][L][3 d] */
    float *ctx_tape;        /* [n_layers][L][d] */
    float *lse_tape;        /* [n_layers][n_heads][L] */
    float *keep_tape;       /* [n_layers][L][2 d + d_ff] what ws->keep receives of each block */
    float *vt;              /* [d_head][kt_ld] one head's values, transposed */
    float *kr, *dout, *dq, *dk, *dv; /* [L, d_head] one head: keys, d context, and the gradients */
    float *rowd;            /* [L] rowsum(d context * context) of one head */
    float *tile;            /* [2][SL_QB][SL_KEY_TILE] probabilities and score gradients of a block */
    float *mtape;           /* Mamba: each block's activations (sl_mamba_tape, models/mamba_scan.h) */
    float *ckpt;            /* Mamba: each block's scan state before each chunk; Mamba-2: one block's */
    float *chunk;           /* Mamba(-2): one chunk's states and decays, and the reverse scan's carried gradient */
} sl_backward_ws;

/* Row x's statistics as a norm's backward takes them, in double: its mean
 * into *mean (0 for RMSNorm: centred 0) and 1 / sqrt(var + eps) returned
 * (sl_layernorm_backward, and models/ig_path.c's backward through the
 * first Mamba block's norm). */
static inline double sl_norm_rstd(const float *x, int d, int centred, float eps, double *mean)
{
    double m = 0, var = 0;
    /* in lanes: the sums are double, so their order matters little */
    if (centred) {
#pragma omp simd reduction(+ : m)
        for (int i = 0; i < d; i++) m += x[i];
        m /= d;
    }
#pragma omp simd reduction(+ : var)
    for (int i = 0; i < d; i++) var += (x[i] - m) * (x[i] - m);
    *mean = m;
    return 1.0 / sqrt(var / d + eps);
}

void sl_layernorm_backward(const float *x, const float *w, float eps, int rows, int d, const float *dy, float *dx,
                           int accumulate);
void sl_rmsnorm_backward(const float *x, const float *w, float eps, int rows, int d, const float *dy, float *dx,
                         int accumulate);
/* dx (+)= dy . W for y = x W^T: beta 0 overwrites, 1 accumulates. */
void sl_linear_backward(const float *dy, int ldy, int rows, int out, const float *W, int in, float *dx, int ldx,
                        float beta);

/* d context [T, d] to d qkv [T, 3 d] (q, k before the rotation's backward)
 * from the block's qkv, context and log-sum-exps: FlashAttention-2's
 * backward, tile by tile, no [T, T] matrix. */
void sl_attention_backward(const sl_config *c, const sl_example *ex, sl_workspace *ws, const float *qkv,
                           const float *ctx, const float *lse, const float *dctx, float *dqkv);

/* What the taped forward kept of block i of a Transformer: q, k, v after
 * the rotation, the context, each head's log-sum-exps ([n_heads][L]), the
 * residual after the attention's write and after the MLP's (before
 * post-norm), the MLP's pre-activation. */
typedef struct sl_tf_tape {
    float *qkv, *ctx, *lse, *attn_resid, *mlp_resid, *mlp_pre;
} sl_tf_tape;
sl_tf_tape sl_tf_tape_at(const sl_model *m, sl_workspace *ws, int i);
/* The CPU's kernels of the Transformer's backward operations
 * (models/transformer_backward.c): dqkv's q and k rotated back with the
 * position table; dx *= act'(x). */
void sl_rope_backward(const sl_config *c, const float *table, float *dqkv, int T);
void sl_activation_backward(int act, const float *x, float *dx, long n);

/* The CPU's kernels of Mamba's backward operations (models/ops.h), on T
 * rows (models/mamba_backward.c, mamba_scan_backward.c). The reverse scan from the states kept
 * before each chunk (ckpt), B at column boff of rows of ldb in xdbl, and
 * the same columns of dxdbl; scratch: ws->bw->chunk. With dsoftplus
 * (softplus' at delta's pre-activation, [T][di], as sl_mamba_softplus kept
 * it), dd is d logit / d that pre-activation (d logit / d delta times
 * dsoftplus), else d logit / d delta. */
void sl_mamba_scan_backward(const float *A_t, const float *D, const float *ckpt, const float *xc, const float *delta,
                            const float *dsoftplus, const float *xdbl, int ldb, int boff, const float *dy, int T,
                            int di, int S, float *scratch, float *dx, float *dd, float *dxdbl);
/* The floats of sl_mamba_scan_backward's scratch. */
size_t sl_mamba_scan_scratch_floats(int di, int S);
/* The gate's backward from what sl_mamba_gate_keep kept, SiLU(z) in sz and
 * SiLU'(z) in dk (rows of ldz): dz = dy y SiLU'(z) (rows of lddz), then
 * dy *= SiLU(z) (rows of di) */
void sl_mamba_gate_backward_kept(const float *sz, const float *dk, int ldz, const float *y, int T, int di, float *dy,
                                 float *dz, int lddz);
void sl_silu_backward(const float *pre, float *dy, long n);
/* dx (rows of ldx) = the causal conv's transpose of dy [T][di]; with pre
 * (the conv's output [T][di]), dy is d logit / d SiLU(pre), first
 * multiplied by SiLU'(pre) in place (sl_silu_backward's bits); with dsilu
 * instead (SiLU' as sl_mamba_conv_silu_keep kept it), by dsilu */
void sl_mamba_silu_conv_backward(const float *pre, const float *dsilu, float *dy, int T, int di, int K, const float *w,
                                 float *dx, int ldx);
void sl_backward_ws_free(sl_backward_ws *b);
/* The Mamba fields of b for max_len L; 0 when out of memory. */
int sl_mamba_backward_alloc(const sl_config *c, size_t L, sl_backward_ws *b);

#endif
