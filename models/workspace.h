/* Per-thread scratch of the forward pass; internal to models/. */
#ifndef SL_WORKSPACE_H
#define SL_WORKSPACE_H

#include "models/model.h"

#define SL_KEY_TILE 256

struct sl_workspace {
    int max_len;
    float *h;              /* [L, d] residual stream */
    float *a;              /* [L, d] normalised input of a block */
    float *out;            /* [L, d] a block's write */
    float *pooled;         /* [d] */
    /* mamba */
    float *xz;             /* [L, 2*di]: x then z (z becomes the gate in place) */
    float *xc;             /* [L, di] conv + SiLU */
    float *xdbl;           /* [L, R + 2S]: dt | B | C */
    float *delta;          /* [L, di] */
    float *y;              /* [L, di] */
    float *state;          /* [S, di]; Mamba-2: [H][S][headdim] */
    /* mamba2 (delta [L, H], y and state above) */
    float *zxbcdt;         /* [L, 2 di + 2 G S + H]: in_proj's z (the gate, in place), xBC, dt */
    float *xbc;            /* [L, di + 2 G S]: conv + SiLU of xBC */
    /* transformer */
    float *qkv;            /* [L, 3d] */
    float *ctx;            /* [L, d] */
    float *ff;             /* [L, d_ff] */
    float *q, *kt, *v;     /* one head packed: [L, dh], [dh, L], [L, dh] */
    int kt_ld;             /* row length of kt: max_len rounded up to 16 keys */
    float *scores;         /* [SL_QB * SL_KEY_TILE + d_head]: score tiles of a query block */
    int *kpos;             /* [L] positions of the keys attended to */
    float *lse;            /* NULL, or [H][L]: where the streaming kernel leaves each query row's log-sum-exp of
                            * its scaled scores (set by the taped forward, for the backward) */
    float *keep;           /* NULL, or [L][2 d + d_ff]: where the forward leaves a block's residual after the
                            * attention's write (z1), after the MLP's (z2, post-norm only) and the MLP's
                            * pre-activation (set by the taped forward, for the backward) */
    float *vall;           /* [H, L, dh] pattern path only */
    float *pattern;        /* [H, L, L] allocated when the pattern hook is on */
    float *pos_table;      /* [L, d] sinusoidal, or [L, dh/2] cos then sin for rope */
    struct sl_backward_ws *bw; /* allocated by the first backward pass */
};

#endif
