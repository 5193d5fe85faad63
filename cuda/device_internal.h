/* The device model core's insides, shared by the forward pass
 * (device_model.c) and the backward pass (device_backward.c); internal to
 * cuda/. */
#ifndef SL_DEVICE_INTERNAL_H
#define SL_DEVICE_INTERNAL_H

#include "cuda/device_model.h"
#include "models/ops.h"

struct sl_dev_model {
    const sl_model *m;
    sl_device dev;
    int max_batch, L;
    float *w, *A_t, *pos; /* weights (the host layout), -exp(A_log)^T (Mamba-2: A [n_layers][nheads]), fixed position table */
    int32_t *tokens, *len;
    unsigned char *keep;
    float *h, *a, *out, *pooled, *logits;
    float *xz, *xc, *xdbl, *delta, *y;  /* mamba (Mamba-2: delta and y) */
    float *zxbcdt, *xbc;                /* Mamba-2: in_proj's rows, the conv's */
    float *qkv, *ctx, *ff, *pattern;    /* transformer; pattern only once its hook is seen */
    unsigned char *mask;                /* row replacement hooks: [max_batch][L] */
    float *cache;                       /* prefix reuse: [n_layers + 1][max_batch][L][d], on first use */
    struct sl_dev_bw *bw;               /* the backward pass's buffers (device_backward.c), on first use */
    float *row;                         /* and their row, [widest hook point] */
    /* host side */
    unsigned char *keep_host; /* [max_batch][L] of 1, for a batch without keep */
    float *stage;             /* copies off the device (edits, attributions) */
    size_t stage_floats;
    /* hooked activations, one buffer per hook point: a hook may keep a view
     * of an earlier point's data until a later point of the layer fires, as
     * on the CPU (attribution/inspect.c does) */
    float **hooked;
    size_t *hooked_floats;
};

/* One batch in flight: the device's operations (models/ops.h) on its rows. */
typedef struct {
    sl_ops ops;                 /* its hooks: ops.hooks */
    sl_dev_model *dm;
    sl_kbatch bt;               /* device side */
    const int32_t *tokens;      /* host side, for hook events */
    const int32_t *lengths;
    const sl_batch *batch;      /* host side: what hooks and error lines name */
    int ldt;
    long rows;                  /* B * Lb */
    int layer;                  /* the block whose backward runs: SL_H_IN */
} batch_run;

#define SL_DM_BW_BUFS 14

/* The backward pass's buffers (cuda/device_backward.c). */
struct sl_dev_bw {
    float *buf[SL_DM_BW_BUFS];     /* [rows][wide] */
    float *states, *dBp, *dCp;     /* mamba: [rows][d_state][d_inner]; Mamba-2: [max_batch][chunk][d_state][d_inner] */
    float *ck, *ds, *dp;           /* Mamba-2's SSD backward (cuda/mamba2_kernels.h): [max_batch] x [chunks][d_state][d_inner], [d_state][d_inner], [chunk][d_inner] */
    int chunk;                     /* its positions per chunk */
    float *lse, *Dt;               /* transformer: [rows][heads] */
    float *g, *x, *base, *path, *acc, *attr; /* [rows][d], attr [rows] */
};

/* Positions per chunk of Mamba-2's SSD backward for batches of up to L:
 * about sqrt(L / 3), where its memory, S di (L / K + 3 K + 1) + K di per
 * example, is least (cuda/mamba2_kernels.h). */
int sl_dm_ssd_chunk(int L);
/* A host weight pointer's counterpart on the device. */
const float *sl_dm_weight(const sl_dev_model *dm, const float *p);
int sl_dm_alloc(sl_dev_model *dm, void **p, size_t bytes, sl_error *err);
/* Host room for n values copied off the device (dm->stage). */
int sl_dm_stage(sl_dev_model *dm, size_t n, sl_error *err);
int sl_dm_launch(batch_run *r, int kernel, sl_kargs a, sl_error *err);
/* y[rows, out] (row stride ldy) = x[rows, in] (stride ldx) . W^T + b, as sl_linear. */
int sl_dm_linear(batch_run *r, const float *x, int ldx, int in, const float *w, const float *b, int out, float *y,
                 int ldy, sl_error *err);
/* Where view v lies in the batch's device memory (cuda/device_ops.c). */
float *sl_dm_at(sl_ops *o, sl_view v);
/* The SSD's views and shapes (Mamba-2: cuda/mamba2_kernels.h). */
sl_k_ssd_in sl_dm_ssd_in(sl_ops *o, sl_view x, sl_view delta, sl_view B, sl_view C, const float *A, const float *D);
/* The backward's operations (cuda/device_grad_ops.c). */
extern const sl_grad_table sl_dm_grad_table;
/* The device's operation table (cuda/device_ops.c) on dm, with hooks. */
sl_ops sl_dm_ops(const sl_dev_model *dm, const sl_hooks *hooks);
/* Checks the batch and copies its tokens, keep mask and lengths over. */
int sl_dm_begin(sl_dev_model *dm, const sl_batch *b, const sl_hooks *hooks, batch_run *r, sl_error *err);
/* Token embedding plus positional term into dm->h (hooks fired). */
int sl_dm_embed(batch_run *r, sl_error *err);
int sl_dm_layer(batch_run *r, int i, sl_error *err);
int sl_dm_layers_from(batch_run *r, int first_layer, sl_error *err);
/* Final norm, pooling, head; sl_dm_finish also copies the logits out. */
int sl_dm_tail(batch_run *r, sl_error *err);
int sl_dm_finish(batch_run *r, float *logits, sl_error *err);
/* Residual kept at point k (prefix reuse, the backward pass's tape). */
float *sl_dm_kept(const sl_dev_model *dm, int k);
void sl_dm_bw_free(sl_dev_model *dm);
/* y[rows, N] (+)= x[rows, K] . W[K, N] (row strides ldx, ldy): the
 * transposed use of a weight, as sl_linear_backward. */
int sl_dm_linear_backward(batch_run *r, const float *x, int ldx, int K, const float *w, int N, float *y, int ldy,
                          float beta, sl_error *err);
/* SL_H_IN and the gradients' buffers; NULL for the forward's. */
float *sl_dm_bw_at(const batch_run *r, int buf);

#endif
