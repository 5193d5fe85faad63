/* config.json of a model directory (design.md section 2). */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include "core/error.h"

enum { ARCH_MAMBA, ARCH_TRANSFORMER };
enum { POOL_MEAN, POOL_LAST, POOL_CLS };
enum { ACT_GELU, ACT_RELU };
enum { POS_NONE, POS_LEARNED, POS_SINUSOIDAL, POS_ROPE };
enum { NORM_RMS, NORM_LAYER }; /* Mamba's block and final norms (mamba_ssm's rms_norm) */

typedef struct {
    int arch;
    int vocab_size, d_model, n_layers, pad_token_id, pooling;
    char prefix[128];
    /* mamba */
    int d_state, d_conv, expand, dt_rank, d_inner;
    int norm; /* NORM_RMS or NORM_LAYER (weight and bias) */
    float norm_eps;
    /* transformer */
    int n_heads, d_head, d_ff, norm_first, activation, positional, max_len, final_norm, causal;
    float rope_base, layer_norm_eps;
    float embed_scale; /* h0 = embed_scale * embedding(tokens): the PyTorch tutorial's sqrt(d_model) */
} sl_config;

int sl_config_load(sl_config *c, const char *path, sl_error *err);
/* Same, from text already in memory (path only names it in messages). */
int sl_config_parse(sl_config *c, const char *path, const char *text, sl_error *err);

const char *sl_arch_name(int arch);
const char *sl_pooling_name(int pooling);
const char *sl_positional_name(int positional);
const char *sl_norm_name(int norm);

#endif
