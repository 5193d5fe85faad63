/* Integrated gradients through a Mamba-1's first block from two products
 * an example (models/ig_path.c). Internal to models/. */
#ifndef SL_IG_PATH_H
#define SL_IG_PATH_H

#include "models/model.h"

/* One example's path h = b + alpha (x - b), as block 0's norm and in_proj
 * see it: with P(v) = ((v - mean v) w) W_in^T (the mean only under a
 * LayerNorm; w the norm's weight), pb = P(b) and pd = P(x - b) [T][2
 * d_inner], bias = beta W_in^T + b_in [2 d_inner] (beta: the LayerNorm's
 * bias). attr[t] receives, each step, d logit / d h_t . (x_t - b_t). */
typedef struct sl_ig_path {
    const float *delta; /* [T][d_model] x - b */
    const float *pb, *pd, *bias;
    long ldpb; /* pb's row stride: 0 where every row of b is the same (all pad, zeros), so one row serves */
    float alpha;
    double *attr; /* [T] */
} sl_ig_path;

/* One step of integrated gradients on a Mamba-1 (CPU): the gradient at
 * path ([T][d_model], the point alpha of p's path, whose products p holds),
 * its d logit / d h . (x - b) added to p->attr; sl_gradient_embed is not
 * written. */
int sl_gradient_ig(const sl_model *m, const sl_example *ex, sl_workspace *ws, const float *path, const sl_ig_path *p,
                   sl_error *err);

/* The path's products from baseline b to b + delta ([T][d_model] each):
 * pb, pd and bias; tmp [T][d_model] scratch. Returns pb's row stride. */
long sl_ig_path_prepare(const sl_model *m, int T, const float *b, const float *delta, float *tmp, float *pb, float *pd,
                        float *bias);
/* xz [T][2 d_inner] (rows of ldxz) = in_proj(norm(h)) for h on the path
 * (rows of d_model), from its products. */
void sl_ig_path_in_proj(const sl_model *m, const sl_ig_path *p, const float *h, int T, float *xz, int ldxz);
/* attr[t] += d logit / d h_t . delta_t, from g = d logit / d block 0's
 * output and dxz = d logit / d xz (rows of lddxz). */
void sl_ig_path_in_proj_backward(const sl_model *m, const sl_ig_path *p, const float *h, int T, const float *g,
                                 const float *dxz, int lddxz);

#endif
