/* Component ablation: one part of one layer removed, as the model says
 * (models/components.h): a structural switch of the block (Mamba: the short
 * convolution as identity kernel with SiLU kept, the SSM path as y = D x, the
 * gate as SiLU(z) -> 1), or a sublayer's output (Transformer: attention or
 * MLP) set to 0 or to its mean over the valid positions of the data. The
 * layers below the ablated one run once per example and their residual
 * stream is reused. */
#ifndef SL_COMPONENT_H
#define SL_COMPONENT_H

#include "ablation/family.h"
#include "models/components.h"

enum { COMP_ZERO, COMP_MEAN };

/* Whether the model has the component (SL_COMP_*). */
int sl_component_valid(const sl_model *m, int component);

/* Row k ablates components[k] of layers[k]. mode applies to the components
 * whose output is replaced (a switch has one form). logits, when not NULL,
 * receives the ablated logits [n, o->count]. */
int sl_ablate_components(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const int *components,
                         const int *layers, int n, int mode, int bootstrap, uint64_t seed, sl_ablation_result *out,
                         float *logits, sl_error *err);

#endif
