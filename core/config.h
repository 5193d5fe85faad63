/* config.json of a model directory (design.md section 2): seqlens's own
 * keys, mamba_ssm's MambaConfig (Mamba1 or Mamba2 layers) or Hugging Face's
 * MambaConfig / Mamba2Config, completed by
 * what the weights determine (models/layout.c) and the defaults. */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <cjson/cJSON.h>

#include "core/error.h"

enum { ARCH_MAMBA, ARCH_TRANSFORMER, ARCH_MAMBA2 };
/* Mamba-1 or Mamba-2: the same block norms, final norm_f and no positions. */
static inline int sl_arch_is_mamba(int arch) { return arch == ARCH_MAMBA || arch == ARCH_MAMBA2; }
enum { POOL_MEAN, POOL_LAST, POOL_CLS };
enum { ACT_GELU, ACT_RELU };
enum { POS_NONE, POS_LEARNED, POS_SINUSOIDAL, POS_ROPE };
enum { NORM_RMS, NORM_LAYER }; /* Mamba's block and final norms (mamba_ssm's rms_norm) */

/* Where one key's value came from, for `seqlens info`. */
#define SL_CONFIG_MAX_SOURCES 32
typedef struct {
    char key[24];
    char from[232]; /* "config", "config (n_layer)", "inferred from tensor 'x' [8, 4]", "default" */
} sl_config_source;

typedef struct {
    int arch;
    int vocab_size, d_model, n_layers, pad_token_id, pooling;
    char prefix[128];
    /* mamba */
    int d_state, d_conv, expand, dt_rank, d_inner;
    int norm; /* NORM_RMS or NORM_LAYER (weight and bias) */
    float norm_eps;
    /* mamba2 (d_state, d_conv, expand, d_inner, norm, norm_eps above too):
     * nheads = d_inner / headdim, head h reads group h / (nheads / ngroups) */
    int headdim, ngroups, nheads;
    float dt_min, dt_max;  /* dt_limit: delta clamped to [dt_min, dt_max] (0, INFINITY: none) */
    int D_has_hdim;        /* D [d_inner] rather than [nheads] */
    int norm_before_gate;  /* gated norm: RMSNorm(y) * w * SiLU(z) rather than RMSNorm(y * SiLU(z)) * w */
    int rmsnorm;           /* the gated norm exists (else out_proj reads y * SiLU(z)) */
    float gated_norm_eps;
    /* transformer */
    int n_heads, d_head, d_ff, norm_first, activation, positional, max_len, final_norm, causal;
    float rope_base, layer_norm_eps;
    float embed_scale; /* h0 = embed_scale * embedding(tokens): the PyTorch tutorial's sqrt(d_model) */
    sl_config_source sources[SL_CONFIG_MAX_SOURCES];
    int n_sources;
} sl_config;

/* config.json as read, its keys put in seqlens's terms whatever the format
 * (core/config_sources.c), before the weights complete it. */
typedef struct {
    char path[4096];
    const char *format; /* "seqlens", "mamba_ssm" or "Hugging Face" */
    cJSON *keys;        /* seqlens key -> value */
    cJSON *origin;      /* seqlens key -> where in the file it came from */
    const cJSON *names; /* the optional `names` object, inside keys */
    int vocab_padded;   /* mamba_ssm: vocab_size rounded up to pad_vocab_size_multiple (also accepted) */
} sl_config_doc;

/* config.json's text as JSON, read as Python's json module reads it (what
 * wrote it): a bare Infinity is a number, and a file that json.load would
 * refuse or read differently is an input error naming path: anything but
 * whitespace after the value, or a key twice in one object (json keeps the
 * last, cJSON the first). NULL on error; the caller frees the result. */
cJSON *sl_config_json(const char *path, const char *text, sl_error *err);

int sl_config_doc_load(sl_config_doc *d, const char *path, sl_error *err);
int sl_config_doc_parse(sl_config_doc *d, const char *path, const char *text, sl_error *err);
void sl_config_doc_free(sl_config_doc *d);

/* What the weights say: facts {key: value} and facts_from {key: "tensor 'x'
 * [shape]"} (NULL, NULL: nothing). An explicit key must agree with a fact;
 * every required key still missing is reported in one error. */
int sl_config_resolve(sl_config *c, const sl_config_doc *d, const cJSON *facts, const cJSON *facts_from,
                      sl_error *err);

/* config.json alone, without weights: every key the weights would give must
 * be present (model comparison before loading, the fuzzer). */
int sl_config_load(sl_config *c, const char *path, sl_error *err);
int sl_config_parse(sl_config *c, const char *path, const char *text, sl_error *err);

/* The fact models/layout.c reads off a Mamba-2's conv1d: ngroups * d_state
 * (B's and C's width), of which config.json must give one factor. */
#define SL_FACT_GROUP_STATE "ngroups*d_state"

const char *sl_config_source_of(const sl_config *c, const char *key);

/* Each key of the architecture's config with its value as text, in the order
 * `seqlens info` prints them (core/config_keys.c). */
typedef void (*sl_config_key_fn)(void *ctx, const char *name, const char *value);
void sl_config_each_key(const sl_config *c, sl_config_key_fn fn, void *ctx);

const char *sl_arch_name(int arch);
const char *sl_pooling_name(int pooling);
const char *sl_positional_name(int positional);
const char *sl_norm_name(int norm);

#endif
