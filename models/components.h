/* The parts of a layer that `ablate --component` can remove, as the model
 * describes them: which ones it has and how each is removed, so that the
 * ablation asks the model instead of naming its architecture. */
#ifndef SL_COMPONENTS_H
#define SL_COMPONENTS_H

#include <stddef.h>

#include "models/model.h"

enum { SL_COMP_CONV, SL_COMP_SSM, SL_COMP_GATE, SL_COMP_ATTN, SL_COMP_MLP, SL_COMP_COUNT };

/* Indexed by SL_COMP_*: the names of the command line and the JSON. */
extern const char *const SL_COMPONENT_NAMES[SL_COMP_COUNT];

/* How one component is removed: a structural switch of the block, the bit
 * knockout (SL_OFF_*) in sl_hooks.knockout at its layer, or else the value
 * of the hook point of kind output_kind (HK_*) replaced. */
typedef struct {
    int id; /* SL_COMP_*: its name is SL_COMPONENT_NAMES[id] */
    unsigned knockout;
    int output_kind; /* -1 for a switch */
} sl_component;

/* The model's components in SL_COMP_* order: *out receives the list, the
 * return value their number. */
int sl_model_components(const sl_model *m, const sl_component **out);

/* The model's entry for component id, or NULL when it has none. */
const sl_component *sl_model_component(const sl_model *m, int id);

/* The names for a message: "conv, ssm and gate", "attn and mlp". */
void sl_component_names(const sl_model *m, char *out, size_t size);

#endif
