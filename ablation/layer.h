/* Layer ablation: a block's write to the residual stream removed (skip) or
 * replaced by its mean over the data (mean). The layers below the ablated
 * one are run once per example and their residual stream reused. */
#ifndef SL_LAYER_H
#define SL_LAYER_H

#include "ablation/family.h"

enum { LAYER_SKIP, LAYER_MEAN };

/* layers[n]: indices 0..n_layers-1. logits, when not NULL, receives the
 * ablated logits [n, o->count]. */
int sl_ablate_layers(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const int *layers, int n, int mode,
                     int bootstrap, uint64_t seed, sl_ablation_result *out, float *logits, sl_error *err);

#endif
