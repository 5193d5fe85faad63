/* Component ablation: one part of one layer removed. Mamba: the short
 * convolution (identity kernel, SiLU kept), the SSM path (y = D x) or the
 * gate (SiLU(z) -> 1); Transformer: the attention or MLP output set to 0 or
 * to its mean over the valid positions of the data. The layers below the
 * ablated one run once per example and their residual stream is reused. */
#ifndef SL_COMPONENT_H
#define SL_COMPONENT_H

#include "ablation/family.h"

enum { SL_COMP_CONV, SL_COMP_SSM, SL_COMP_GATE, SL_COMP_ATTN, SL_COMP_MLP, SL_COMP_COUNT };
enum { COMP_ZERO, COMP_MEAN };

extern const char *const SL_COMPONENT_NAMES[SL_COMP_COUNT];

/* Whether the architecture has the component. */
int sl_component_valid(const sl_model *m, int component);

/* Row k ablates components[k] of layers[k]. mode applies to attn and mlp
 * (conv, ssm and gate have one form). logits, when not NULL, receives the
 * ablated logits [n, o->count]. */
int sl_ablate_components(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const int *components,
                         const int *layers, int n, int mode, int bootstrap, uint64_t seed, sl_ablation_result *out,
                         float *logits, sl_error *err);

#endif
