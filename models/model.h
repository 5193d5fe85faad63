/* A loaded model: its config, float32 weights and hook points, and the one
 * forward pass every tool uses. */
#ifndef SL_MODEL_H
#define SL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "core/hooks.h"

/* The structural switches of a Mamba mixer (ablate --component), per
 * layer in sl_hooks.knockout: conv = identity kernel without bias (SiLU
 * kept), ssm = y = D x, gate = SiLU(z) replaced by 1. */
enum { SL_OFF_CONV = 1, SL_OFF_SSM = 2, SL_OFF_GATE = 4 };

typedef struct {
    const float *norm_w, *norm_b; /* [d], [d] with NORM_LAYER (else NULL) */
    const float *in_w, *in_b;     /* [2*di, d], [2*di] or NULL */
    const float *conv_w, *conv_b; /* [di, d_conv], [di] or NULL (zero) */
    const float *xproj_w;         /* [R + 2S, di] */
    const float *dt_w, *dt_b;     /* [di, R], [di] */
    float *A_t;                   /* -exp(A_log) transposed to [S, di]: the scan runs across channels */
    const float *D;               /* [di] */
    const float *out_w, *out_b;   /* [d, di], [d] or NULL */
} sl_mamba_layer;

/* A Mamba-2 block (design.md section 2.4): in_proj rows z, xBC (x, B, C),
 * dt; nheads = d_inner / headdim, ngroups groups of B and C. */
typedef struct {
    const float *norm_w, *norm_b; /* [d], [d] with NORM_LAYER (else NULL) */
    const float *in_w, *in_b;     /* [2 di + 2 G S + H, d], bias or NULL */
    const float *conv_w, *conv_b; /* [di + 2 G S, d_conv], [di + 2 G S] or NULL (zero) */
    const float *dt_bias;         /* [H] */
    float *A;                     /* [H]: -exp(A_log), computed at load */
    const float *D;               /* [H], or [di] with D_has_hdim */
    const float *gnorm_w;         /* [di]: the gated RMSNorm's weight; NULL without it (rmsnorm false) */
    const float *out_w, *out_b;   /* [d, di], [d] or NULL */
} sl_mamba2_layer;

typedef struct {
    const float *qkv_w, *qkv_b;   /* [3d, d], [3d] */
    const float *o_w, *o_b;       /* [d, d], [d] */
    const float *ff1_w, *ff1_b;   /* [d_ff, d], [d_ff] */
    const float *ff2_w, *ff2_b;   /* [d, d_ff], [d] */
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
} sl_tf_layer;

typedef struct {
    char name[160]; /* as in the file */
    char role[160]; /* the seqlens name it was given (design.md section 2.2) */
    const char *how; /* how it was found (layout, role, names), static text */
    int dtype, ndim;
    int64_t shape[4];
} sl_tensor_info;

typedef struct {
    sl_config c;
    float *weights; /* every tensor, float32, one allocation */
    size_t n_params;
    const float *emb, *pos, *norm_w, *norm_b, *head_w, *head_b; /* norm_b: NULL without a bias */
    int head_rows; /* 1: logit = w.x + b; 2: logit = z1 - z0 */
    sl_mamba_layer *mamba;
    sl_mamba2_layer *mamba2;
    sl_tf_layer *tf;
    float *A_t_storage; /* Mamba: A_t of every layer; Mamba-2: A of every layer */
    sl_tensor_info *tensors;
    int n_tensors;
    sl_hook_point *points;
    int n_points;
    int *point_of; /* [HK_COUNT * (n_layers + 1)]: id of (kind, layer) or -1 */
} sl_model;

/* dir holds config.json and one weights file (core/weights.h). */
int sl_model_load(sl_model *m, const char *dir, sl_error *err);
void sl_model_free(sl_model *m);

/* Hook point id of (kind, layer), -1 if the architecture has none; layer is
 * ignored for model-level points. */
int sl_model_point(const sl_model *m, int kind, int layer);
int sl_model_find_point(const sl_model *m, const char *name);
/* The heads of a mixer whose delta is one value per head (Mamba-2's SSD),
 * 0 where it is one per channel or there is none: what an analysis reads
 * of the blocks.i.mixer.* points without asking for the architecture. */
int sl_model_ssm_heads(const sl_model *m);

/* The Transformer's fixed position table for positions 0..max_len-1:
 * sinusoidal [max_len][d_model], or rope's cos then sin [max_len][2][d_head
 * / 2]; sl_pos_table_size gives its floats (0: the model has none). */
long sl_pos_table_size(const sl_config *c, int max_len);
void sl_pos_table(const sl_config *c, int max_len, float *out);

/* One example as the forward pass sees it. */
typedef struct {
    const int32_t *tokens; /* [len] (the padded row is fine) */
    int len;               /* valid positions, 1..L */
    long index;            /* in the dataset, for hooks */
    int slot;              /* in the batch, for hooks */
    const uint8_t *keep;   /* [len] or NULL: 0 drops a position from attention keys and pooling */
} sl_example;

typedef struct sl_workspace sl_workspace;
/* Scratch for examples of up to max_len positions, for one thread. */
sl_workspace *sl_workspace_new(const sl_model *m, int max_len, sl_error *err);
void sl_workspace_free(sl_workspace *ws);

int sl_forward(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, float *logit,
               sl_error *err);
/* The layers from first_layer on and the head, starting from the residual
 * stream already in sl_workspace_residual(ws) ([len, d_model]): what prefix
 * reuse needs (layer ablation, patching). first_layer = n_layers runs only
 * the final norm, pooling and head. */
int sl_forward_from(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int first_layer,
                    float *logit, sl_error *err);
float *sl_workspace_residual(sl_workspace *ws);

/* The logit and its gradient with respect to the residual stream: grad
 * [(n_layers + 1)][len][d_model] receives d logit / d blocks.i.resid_pre for
 * i = 0..n_layers-1 (i = 0 is `embed`), then d logit / d the last
 * resid_post. embed_in [len, d_model], when not NULL, stands in for the
 * embedding (integrated gradients' path). Keep masks are honoured. */
int sl_gradient(const sl_model *m, const sl_example *ex, sl_workspace *ws, const float *embed_in, float *logit, float *grad,
                sl_error *err);
/* After sl_gradient (grad may be NULL): d logit / d embed [len][d_model],
 * in ws until its next use; no copy of the other blocks' gradients. */
const float *sl_gradient_embed(const sl_workspace *ws);
/* The factor of the token embedding: embed_scale for a Transformer (the
 * PyTorch tutorial's sqrt(d_model)), 1 for Mamba. */
static inline float sl_embed_scale(const sl_config *c) { return c->arch == ARCH_TRANSFORMER ? c->embed_scale : 1.0f; }

/* The embedding (embed_scale x token embedding + positional term) of an
 * example: out [len, d_model]. */
int sl_embed(const sl_model *m, const sl_example *ex, sl_workspace *ws, float *out, sl_error *err);

#endif
