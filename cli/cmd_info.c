#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/registry.h"
#include "core/safetensors.h"

static const char USAGE[] =
    "usage: seqlens info MODEL\n"
    "  Prints the config (each key with where it came from: config.json, inferred from a tensor, or the\n"
    "  default), parameter count, tensors (the file's name, and the role seqlens gave it) and hook points\n"
    "  of MODEL (a directory with config.json and its weights: model.safetensors, pytorch_model.bin or one\n"
    "  .pt/.pth).\n";

/* One key: its value, then where it came from (design.md section 2.1). */
static void key(const sl_config *c, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void key(const sl_config *c, const char *name, const char *fmt, ...)
{
    char value[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    const char *from = sl_config_source_of(c, name);
    printf("%-14s %-22s %s\n", name, value, from ? from : "");
}

static const char *yes(int b) { return b ? "true" : "false"; }

static void print_config(const sl_config *c)
{
    key(c, "arch", "%s", sl_arch_name(c->arch));
    key(c, "vocab_size", "%d", c->vocab_size);
    key(c, "d_model", "%d", c->d_model);
    key(c, "n_layers", "%d", c->n_layers);
    key(c, "pad_token_id", "%d", c->pad_token_id);
    key(c, "pooling", "%s", sl_pooling_name(c->pooling));
    if (c->prefix[0]) key(c, "prefix", "\"%s\"", c->prefix);
    if (c->arch == ARCH_MAMBA) {
        key(c, "d_state", "%d", c->d_state);
        key(c, "d_conv", "%d", c->d_conv);
        key(c, "expand", "%d (d_inner %d)", c->expand, c->d_inner);
        key(c, "dt_rank", "%d", c->dt_rank);
        key(c, "norm", "%s", sl_norm_name(c->norm));
        key(c, "norm_eps", "%g", c->norm_eps);
    } else if (c->arch == ARCH_MAMBA2) {
        key(c, "d_state", "%d", c->d_state);
        key(c, "ngroups", "%d", c->ngroups);
        key(c, "headdim", "%d (nheads %d)", c->headdim, c->nheads);
        key(c, "d_conv", "%d", c->d_conv);
        key(c, "expand", "%d (d_inner %d)", c->expand, c->d_inner);
        key(c, "norm", "%s", sl_norm_name(c->norm));
        key(c, "norm_eps", "%g", c->norm_eps);
        key(c, "dt_limit", "[%g, %g]", c->dt_min, c->dt_max);
        key(c, "D_has_hdim", "%s", yes(c->D_has_hdim));
        key(c, "rmsnorm", "%s", yes(c->rmsnorm));
        key(c, "norm_before_gate", "%s", yes(c->norm_before_gate));
        key(c, "gated_norm_eps", "%g", c->gated_norm_eps);
    } else {
        key(c, "n_heads", "%d (d_head %d)", c->n_heads, c->d_head);
        key(c, "d_ff", "%d", c->d_ff);
        key(c, "norm_first", "%s", yes(c->norm_first));
        key(c, "activation", "%s", c->activation == ACT_GELU ? "gelu" : "relu");
        key(c, "positional", "%s", sl_positional_name(c->positional));
        key(c, "max_len", "%d", c->max_len);
        key(c, "final_norm", "%s", yes(c->final_norm));
        key(c, "causal", "%s", yes(c->causal));
        key(c, "layer_norm_eps", "%g", c->layer_norm_eps);
        key(c, "embed_scale", "%g", c->embed_scale);
        if (c->positional == POS_ROPE) key(c, "rope_base", "%g", c->rope_base);
    }
}

static int cmd_info(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "info", argc, argv, "", &err)) return sl_report(&err);
    if (a.help || a.n_pos != 1) return sl_usage(USAGE, a.help);
    sl_model m;
    if (sl_model_load(&m, a.pos[0], &err)) {
        sl_model_free(&m);
        return sl_report(&err);
    }
    printf("model          %s\n", a.pos[0]);
    print_config(&m.c);
    printf("head           %d logit row%s\n", m.head_rows, m.head_rows == 2 ? "s (logit = z1 - z0)" : "");
    printf("parameters     %zu\n\ntensors (%d): name in the file, dtype, shape, role in seqlens\n", m.n_params, m.n_tensors);
    for (int i = 0; i < m.n_tensors; i++) {
        const sl_tensor_info *t = &m.tensors[i];
        char shape[96];
        st_shape_text(shape, sizeof shape, t->ndim, t->shape);
        printf("  %-44s %-4s %-14s %s", t->name, st_dtype_name(t->dtype), shape, t->role);
        if (t->how && strcmp(t->name, t->role)) printf(" (%s)", t->how);
        printf("\n");
    }
    printf("\nhook points (%d; shapes for N examples of padded length L)\n", m.n_points);
    for (int i = 0; i < m.n_points; i++) {
        const sl_hook_point *p = &m.points[i];
        if (p->kind == HK_ATTN_PATTERN) printf("  %-34s [N, %d, L, L]\n", p->name, m.c.n_heads);
        else if (p->kind == HK_LOGITS) printf("  %-34s [N]\n", p->name);
        else if (p->per_example) printf("  %-34s [N, %d]\n", p->name, p->width);
        else printf("  %-34s [N, L, %d]\n", p->name, p->width);
    }
    sl_model_free(&m);
    return 0;
}

static sl_command info_command = {
    .name = "info",
    .summary = "  info MODEL                  config, parameters, tensors, hook points\n",
    .order = 10,
    .flags = 0,
    .run = cmd_info,
};
SL_REGISTER_COMMAND(info_command)
