/* The keys of a resolved config, in the order `seqlens info` prints them, each
 * with its value as text. Which keys an architecture has is the config's
 * knowledge, so the command line only prints what it is handed. */
#include <stdarg.h>
#include <stdio.h>

#include "core/config.h"

typedef struct {
    sl_config_key_fn fn;
    void *ctx;
} key_sink;

static void key(key_sink *s, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void key(key_sink *s, const char *name, const char *fmt, ...)
{
    char value[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    s->fn(s->ctx, name, value);
}

static const char *yes(int b) { return b ? "true" : "false"; }

static void mamba_keys(key_sink *s, const sl_config *c)
{
    key(s, "d_state", "%d", c->d_state);
    key(s, "d_conv", "%d", c->d_conv);
    key(s, "expand", "%d (d_inner %d)", c->expand, c->d_inner);
    key(s, "dt_rank", "%d", c->dt_rank);
    key(s, "norm", "%s", sl_norm_name(c->norm));
    key(s, "norm_eps", "%g", c->norm_eps);
}

static void mamba2_keys(key_sink *s, const sl_config *c)
{
    key(s, "d_state", "%d", c->d_state);
    key(s, "ngroups", "%d", c->ngroups);
    key(s, "headdim", "%d (nheads %d)", c->headdim, c->nheads);
    key(s, "d_conv", "%d", c->d_conv);
    key(s, "expand", "%d (d_inner %d)", c->expand, c->d_inner);
    key(s, "norm", "%s", sl_norm_name(c->norm));
    key(s, "norm_eps", "%g", c->norm_eps);
    key(s, "dt_limit", "[%g, %g]", c->dt_min, c->dt_max);
    key(s, "D_has_hdim", "%s", yes(c->D_has_hdim));
    key(s, "rmsnorm", "%s", yes(c->rmsnorm));
    key(s, "norm_before_gate", "%s", yes(c->norm_before_gate));
    key(s, "gated_norm_eps", "%g", c->gated_norm_eps);
}

static void transformer_keys(key_sink *s, const sl_config *c)
{
    key(s, "n_heads", "%d (d_head %d)", c->n_heads, c->d_head);
    key(s, "d_ff", "%d", c->d_ff);
    key(s, "norm_first", "%s", yes(c->norm_first));
    key(s, "activation", "%s", c->activation == ACT_GELU ? "gelu" : "relu");
    key(s, "positional", "%s", sl_positional_name(c->positional));
    key(s, "max_len", "%d", c->max_len);
    key(s, "final_norm", "%s", yes(c->final_norm));
    key(s, "causal", "%s", yes(c->causal));
    key(s, "layer_norm_eps", "%g", c->layer_norm_eps);
    key(s, "embed_scale", "%g", c->embed_scale);
    if (c->positional == POS_ROPE) key(s, "rope_base", "%g", c->rope_base);
}

void sl_config_each_key(const sl_config *c, sl_config_key_fn fn, void *ctx)
{
    key_sink s = {fn, ctx};
    key(&s, "arch", "%s", sl_arch_name(c->arch));
    key(&s, "vocab_size", "%d", c->vocab_size);
    key(&s, "d_model", "%d", c->d_model);
    key(&s, "n_layers", "%d", c->n_layers);
    key(&s, "pad_token_id", "%d", c->pad_token_id);
    key(&s, "pooling", "%s", sl_pooling_name(c->pooling));
    if (c->prefix[0]) key(&s, "prefix", "\"%s\"", c->prefix);
    switch (c->arch) {
    case ARCH_MAMBA: mamba_keys(&s, c); break;
    case ARCH_MAMBA2: mamba2_keys(&s, c); break;
    default: transformer_keys(&s, c); break;
    }
}
