/* The operations an architecture's forward pass is written in (issue 19).
 * models/mamba.c, transformer.c and forward.c say once what each layer
 * computes, where each hook fires and where each intervention applies, as
 * calls on this table; a backend implements the operations, never the
 * architecture: the CPU one example at a time (models/cpu_ops.c), the
 * device a whole batch at a time (cuda/device_ops.c).
 *
 * Activations are named buffers of position-major rows; a view is some
 * columns of each row of one of them. Each backend resolves a view to its
 * own memory: the CPU to one example's rows of its workspace (or, in the
 * gradient's taped forward, of the tape), the device to the [B * Lb] rows
 * of the batch. An operation works on every row of its views at once, so
 * that the CPU pays one indirect call per operation and example, never per
 * position. Weights are the host pointers of sl_model; a device maps them
 * to its copy. Internal to models/ and its backends. */
#ifndef SL_OPS_H
#define SL_OPS_H

#include "models/model.h"

enum {
    SL_H,      /* [d] the residual stream */
    SL_A,      /* [d] a norm's output (a block's input, the final norm) */
    SL_OUT,    /* [d] a block's write */
    SL_XZ,     /* [2 d_inner] Mamba's in_proj: x, then z (the gate, in place) */
    SL_XC,     /* [d_inner] conv + SiLU */
    SL_XDBL,   /* [dt_rank + 2 d_state] dt | B | C */
    SL_DELTA,  /* [d_inner] */
    SL_Y,      /* [d_inner] the scan's output */
    SL_YG,     /* [d_inner] the gated y that out_proj reads: SL_Y's memory but where a tape keeps y ungated */
    SL_QKV,    /* [3 d] */
    SL_CTX,    /* [d] the attention's context */
    SL_FF,     /* [d_ff] */
    /* the backward pass (models/mamba_grad.c, transformer_grad.c) */
    SL_H_IN,   /* [d] the block's input, as the taped forward kept it */
    SL_G,      /* [d] d logit / d the residual stream */
    SL_XPRE,   /* [d_inner] the conv before its SiLU (Mamba-2: [di + 2 G S]); a tape may keep SiLU' of it instead */
    SL_DPRE,   /* [d_inner] delta before its softplus (Mamba-2: [H], dt before its bias); a tape may keep softplus' of it */
    SL_DA,     /* [d] d logit / d a norm's output */
    SL_DY,     /* [d_inner] d logit / d the gated y, then / d y */
    SL_DXZ,    /* [2 d_inner] d logit / d xz */
    SL_DX,     /* [d_inner] d logit / d xc, then / d the conv's output before SiLU */
    SL_DDELTA, /* [d_inner] d logit / d delta, then / d its pre-activation */
    SL_DXDBL,  /* [dt_rank + 2 d_state] d logit / d xdbl */
    SL_ATTN_RESID, /* [d] the Transformer's residual after the attention's write (before post-norm) */
    SL_MLP_RESID,  /* [d] after the MLP's (before post-norm) */
    SL_FF_PRE,     /* [d_ff] the MLP's pre-activation */
    SL_DFF,        /* [d_ff] d logit / d the MLP's hidden, then / d its pre-activation */
    SL_DCTX,       /* [d] d logit / d the attention's context */
    SL_DQKV,       /* [3 d] d logit / d qkv */
    /* Mamba-2 (models/mamba2.c); G S = ngroups d_state, H = nheads */
    SL_ZXBCDT,  /* [2 di + 2 G S + H] in_proj: z (the gate, in place), xBC, dt */
    SL_XBC,     /* [di + 2 G S] conv + SiLU of xBC: x, B, C */
    SL_DZXBCDT, /* [2 di + 2 G S + H] d logit / d in_proj's output */
    SL_DXBC,    /* [di + 2 G S] d logit / d (conv + SiLU of xBC), then / d the conv before its SiLU */
    /* one row per example from here on */
    SL_POOLED, /* [d], one row per example */
    SL_LOGITS, /* [1], one row per example */
    SL_BUFS
};

/* Columns off .. off + cols - 1 of each row (of ld values) of buffer buf. */
typedef struct {
    int buf, off, cols, ld;
} sl_view;

static inline sl_view sl_cols(int buf, int off, int cols, int ld) { return (sl_view){buf, off, cols, ld}; }
/* The whole rows of a buffer of width cols. */
static inline sl_view sl_rows(int buf, int cols) { return (sl_view){buf, 0, cols, cols}; }

enum { SL_NORM_RMS, SL_NORM_LAYER };
/* Mamba's gate in steps: both, or (around the gate hook) SiLU(z) in place
 * and then the product. */
enum { SL_OP_GATE_BOTH, SL_OP_GATE_ACTIVATE, SL_OP_GATE_MULTIPLY };
/* What the CPU gradient's taped forward keeps of a Transformer block
 * (models/backward.h: keep_tape): the residual after the attention's write,
 * after the MLP's (post-norm), the MLP's pre-activation. */
enum { SL_KEEP_ATTN_RESID, SL_KEEP_MLP_RESID, SL_KEEP_MLP_PRE };

typedef struct sl_ops sl_ops;

typedef struct {
    /* The hooks of (kind, layer) on view v, each example's rows (one row
     * for SL_POOLED and SL_LOGITS) handed over as core/hooks.h says. */
    int (*fire)(sl_ops *o, int kind, int layer, sl_view v, sl_error *err);
    /* y = scale * emb[token] */
    int (*embed)(sl_ops *o, const float *emb, float scale, sl_view y, sl_error *err);
    /* y[t] += pos[t]: learned positions, or (NULL) the backend's sinusoidal table */
    int (*add_positions)(sl_ops *o, const float *learned, sl_view y, sl_error *err);
    /* y = norm(x) * w (+ b: LayerNorm), of rows of x.cols values; y may be x */
    int (*norm)(sl_ops *o, int kind, sl_view x, const float *w, const float *b, float eps, sl_view y, sl_error *err);
    /* y = x W^T + b, W [y.cols][x.cols], b NULL or [y.cols] */
    int (*linear)(sl_ops *o, sl_view x, const float *w, const float *b, sl_view y, sl_error *err);
    /* y = SiLU(causal depthwise conv of x, K taps, w [cols][K], b): identity,
     * the conv ablated to an identity kernel without bias (SiLU kept) */
    int (*conv_silu)(sl_ops *o, sl_view x, const float *w, const float *b, int K, int identity, sl_view y,
                     sl_error *err);
    /* y = softplus(y) */
    int (*softplus)(sl_ops *o, sl_view y, sl_error *err);
    /* The selective scan of layer's A_t and D over x with delta, B (the view)
     * and C (the B.cols columns after it) into y; ablated: y = D x. */
    int (*scan)(sl_ops *o, sl_view x, sl_view delta, sl_view B, const float *A_t, const float *D, int ablated,
                sl_view y, sl_error *err);
    /* step SL_OP_GATE_*: z = SiLU(z) (1 when ablated), out = y * z; out may be
     * y, and a backend may leave z alone where the gate is not seen */
    int (*gate)(sl_ops *o, int step, int ablated, sl_view z, sl_view y, sl_view out, sl_error *err);
    /* y += x */
    int (*add)(sl_ops *o, sl_view x, sl_view y, sl_error *err);
    /* GPT-NeoX rotate-half of q and k in SL_QKV, the backend's rope table */
    int (*rope)(sl_ops *o, sl_error *err);
    /* softmax(q k^T / sqrt(d_head)) v of every head, from SL_QKV into SL_CTX
     * (keep masks, causal), firing layer's pattern hook where it is on: the
     * backend picks how (streamed, or through the stored pattern) */
    int (*attention)(sl_ops *o, int layer, sl_error *err);
    /* y = ReLU(y) or GELU(y) (act: ACT_*) */
    int (*activation)(sl_ops *o, int act, sl_view y, sl_error *err);
    /* what: SL_KEEP_*; for a backend's gradient (nothing elsewhere) */
    int (*keep)(sl_ops *o, int what, sl_view v, sl_error *err);
    /* Mamba-2 (models/mamba2.c). delta = clamp(softplus(dt + bias), lo,
     * hi) of H columns; delta may be dt */
    int (*delta2)(sl_ops *o, sl_view dt, const float *bias, float lo, float hi, sl_view delta, sl_error *err);
    /* The SSD recurrence of the model's layer-independent shapes (headdim,
     * ngroups, d_state): x [H headdim], delta [H], B and C [G d_state]; A
     * [H] = -exp(A_log), D [H] or [di] (D_has_hdim); y = the scan + D x;
     * ablated: y = D x */
    int (*ssd)(sl_ops *o, sl_view x, sl_view delta, sl_view B, sl_view C, const float *A, const float *D, int ablated,
               sl_view y, sl_error *err);
    /* Mamba-2's gated RMSNorm on y with the gate g = SiLU(z) already formed:
     * out = RMSNorm(y g) w over each group of `group` channels, or with
     * before RMSNorm(y) w g; w NULL (no gated norm): out = y g. out may be y */
    int (*gated_norm)(sl_ops *o, sl_view y, sl_view g, const float *w, int group, float eps, int before, sl_view out,
                      sl_error *err);
    /* y (SL_POOLED) = the pooling (POOL_*) of each example's kept rows of x */
    int (*pool)(sl_ops *o, int pooling, sl_view x, sl_view y, sl_error *err);
    /* y (SL_LOGITS) = w . x + b (rows 1), or the difference of two rows' (rows 2) */
    int (*head)(sl_ops *o, const float *w, const float *b, int rows, sl_view x, sl_view y, sl_error *err);
} sl_ops_table;

/* The backward pass's operations (models/mamba_grad.c, transformer_grad.c,
 * forward.c's tail), on gradients d logit / d of one logit per example. */
typedef struct {
    /* What the backward reads of the forward, a backend with a tape
     * (sl_ops.taped) has kept; one without runs the forward's operations
     * again, and silu, attention_keep and scan_keep only it needs. */
    /* y = x (whole rows) */
    int (*copy)(sl_ops *o, sl_view x, sl_view y, sl_error *err);
    /* y = SiLU(x) (whole rows) */
    int (*silu)(sl_ops *o, sl_view x, sl_view y, sl_error *err);
    /* attention (no hooks), keeping what attention_backward reads of it */
    int (*attention_keep)(sl_ops *o, int layer, sl_error *err);
    /* scan without ablation, keeping what scan_backward reads of it */
    int (*scan_keep)(sl_ops *o, sl_view x, sl_view delta, sl_view B, const float *A_t, const float *D, sl_view y,
                     sl_error *err);
    /* y = the causal depthwise conv of x (conv_silu without its SiLU) */
    int (*conv)(sl_ops *o, sl_view x, const float *w, const float *b, int K, sl_view y, sl_error *err);
    /* dx (+)= dy W for y = x W^T, W [dy.cols][dx.cols] */
    int (*linear_backward)(sl_ops *o, sl_view dy, const float *w, sl_view dx, int accumulate, sl_error *err);
    /* dx (+)= d norm(x) / dx of dy, norm(x) * w as norm (its bias does not enter); dx may be dy */
    int (*norm_backward)(sl_ops *o, int kind, sl_view x, const float *w, float eps, sl_view dy, sl_view dx,
                         int accumulate, sl_error *err);
    /* out = y * SiLU(z): dz = dy y SiLU'(z), then dy *= SiLU(z) (in place).
     * A tape may keep, in z's place, what its backward reads instead (the
     * CPU's: SiLU(z), SiLU'(z) in x's place before it) */
    int (*gate_backward)(sl_ops *o, sl_view z, sl_view y, sl_view dy, sl_view dz, sl_error *err);
    /* The scan (its arguments as scan's; delta = softplus(dpre)) in reverse
     * from dy: dx, d logit / d dpre in ddelta and the dB and dC columns of
     * dxdbl (dB the view, dC the dB.cols after it) are written, not added
     * to. dpre is softplus'(dpre) where a tape kept that (SL_DPRE). */
    int (*scan_backward)(sl_ops *o, sl_view x, sl_view delta, sl_view dpre, sl_view B, const float *A_t,
                         const float *D, sl_view dy, sl_view dx, sl_view ddelta, sl_view dB, sl_error *err);
    /* For SiLU(the causal conv): dy *= SiLU'(pre) (in place, whole rows),
     * then dx = the conv's transpose of dy, K taps, w [dy.cols][K]; pre is
     * SiLU'(pre) where a tape kept that (SL_XPRE) */
    int (*silu_conv_backward)(sl_ops *o, sl_view pre, sl_view dy, const float *w, int K, sl_view dx, sl_error *err);
    /* dy *= act'(pre) (act: ACT_*, whole rows) */
    int (*activation_backward)(sl_ops *o, int act, sl_view pre, sl_view dy, sl_error *err);
    /* SL_DQKV = d logit / d qkv (q and k rotated) of layer's attention from
     * SL_DCTX, SL_QKV and SL_CTX */
    int (*attention_backward)(sl_ops *o, int layer, sl_error *err);
    /* the rotation's inverse on q and k of SL_DQKV */
    int (*rope_backward)(sl_ops *o, sl_error *err);
    /* dx = d logit / d the pooling's input rows: the head's row w (rows 1),
     * or the difference of its two (rows 2), spread back through the
     * pooling (POOL_*) over the kept rows, 0 on the others */
    int (*head_backward)(sl_ops *o, const float *w, int rows, int pooling, sl_view dx, sl_error *err);
    /* Mamba-2 (models/mamba2_grad.c). ddt = d delta / d dt of ddelta
     * (delta = clamp(softplus(dt + bias), lo, hi): 0 where clamped); ddt
     * may be ddelta */
    int (*delta2_backward)(sl_ops *o, sl_view dt, const float *bias, float lo, float hi, sl_view ddelta, sl_view ddt,
                           sl_error *err);
    /* The SSD (its arguments as ssd's) in reverse from dy: dx, ddelta, dB
     * and dC are written, not added to. The backend recomputes or keeps
     * the states it needs. */
    int (*ssd_backward)(sl_ops *o, sl_view x, sl_view delta, sl_view B, sl_view C, const float *A, const float *D,
                        sl_view dy, sl_view dx, sl_view ddelta, sl_view dB, sl_view dC, sl_error *err);
    /* gated_norm's backward from dout, with z the gate's input (before
     * SiLU): dy and dz (d logit / d z through SiLU) are written */
    int (*gated_norm_backward)(sl_ops *o, sl_view y, sl_view z, const float *w, int group, float eps, int before,
                               sl_view dout, sl_view dy, sl_view dz, sl_error *err);
    /* Integrated gradients through a Mamba-1's first block, where sl_ops.
     * ig_path is set (models/ig_path.c): xz = in_proj(norm(h)) for h on the
     * path, from the path's own products; and the backward's last step, from
     * dxz and g (d logit / d the block's output) to d logit / d h . (x - b)
     * at each position, added to the path's attributions */
    int (*ig_in_proj)(sl_ops *o, sl_view h, sl_view xz, sl_error *err);
    int (*ig_in_proj_backward)(sl_ops *o, sl_view h, sl_view dxz, sl_view g, sl_error *err);
} sl_grad_table;

/* A backend's state begins with this. */
struct sl_ops {
    const sl_ops_table *t;
    const sl_grad_table *g; /* the backward's */
    const sl_model *m;
    const sl_hooks *hooks; /* NULL: none; its knockout bits are the architecture's to honour */
    int taped;             /* the backward: 1 where the forward's activations are on a tape (the CPU) */
    int ig_path;           /* the gradient along integrated gradients' path, block 0 of a Mamba-1 through
                            * ig_in_proj and ig_in_proj_backward (the CPU's): no d logit / d embed */
};

/* The gradient's tape (models/gradient.c drives it): where a backend keeps
 * each block's input in the gradient's forward pass, and what it points
 * the operations at for the block in hand, from block 0 to the tail
 * (block n_layers: its input is the last block's output) and back. The
 * driving loop is the architecture's; which memory holds what, and how
 * much of a block's forward is kept or run again, is the backend's. A
 * backend's tape begins with this. */
typedef struct sl_tape sl_tape;
typedef struct {
    /* Before block i's forward: SL_H_IN is where block i's input is kept,
     * and the forward's operations keep what block i's backward reads */
    int (*forward_begin)(sl_tape *tp, sl_ops *o, int i, sl_error *err);
    /* After it, failed or not: the operations back on the backend's own
     * activations */
    void (*forward_end)(sl_tape *tp, sl_ops *o, int i);
    /* Before block i's backward: SL_H_IN its kept input, the operations on
     * what its forward kept */
    int (*backward_begin)(sl_tape *tp, sl_ops *o, int i, sl_error *err);
    /* After it: SL_G is d logit / d block i's input (i = n_layers: d logit
     * / d the last block's output), for a backend that hands it out */
    int (*backward_end)(sl_tape *tp, sl_ops *o, int i, sl_error *err);
} sl_tape_ops;

struct sl_tape {
    const sl_tape_ops *t;
};

#endif
