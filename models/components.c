#include "models/components.h"

#include <stdio.h>

const char *const SL_COMPONENT_NAMES[SL_COMP_COUNT] = {"conv", "ssm", "gate", "attn", "mlp"};

/* Mamba's and Mamba-2's mixer switches (conv = identity kernel without bias,
 * ssm = y = D x, gate = SiLU(z) -> 1); a Transformer's sublayer outputs. */
static const sl_component MAMBA[] = {
    {SL_COMP_CONV, SL_OFF_CONV, -1},
    {SL_COMP_SSM, SL_OFF_SSM, -1},
    {SL_COMP_GATE, SL_OFF_GATE, -1},
};
static const sl_component TRANSFORMER[] = {
    {SL_COMP_ATTN, 0, HK_ATTN_OUT},
    {SL_COMP_MLP, 0, HK_MLP_OUT},
};

int sl_model_components(const sl_model *m, const sl_component **out)
{
    int mamba = sl_arch_is_mamba(m->c.arch);
    *out = mamba ? MAMBA : TRANSFORMER;
    return mamba ? (int)(sizeof MAMBA / sizeof *MAMBA) : (int)(sizeof TRANSFORMER / sizeof *TRANSFORMER);
}

const sl_component *sl_model_component(const sl_model *m, int id)
{
    const sl_component *list;
    int n = sl_model_components(m, &list);
    for (int k = 0; k < n; k++)
        if (list[k].id == id) return &list[k];
    return NULL;
}

void sl_component_names(const sl_model *m, char *out, size_t size)
{
    const sl_component *list;
    int n = sl_model_components(m, &list);
    size_t used = 0;
    if (size) out[0] = '\0';
    for (int k = 0; k < n && used < size; k++) {
        const char *sep = k == 0 ? "" : k == n - 1 ? " and " : ", ";
        int w = snprintf(out + used, size - used, "%s%s", sep, SL_COMPONENT_NAMES[list[k].id]);
        if (w < 0) break;
        used += (size_t)w;
    }
}
