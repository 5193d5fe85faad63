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

/* The key column: as wide as the longest key, norm_before_gate */
#define KEY_W 16

/* One key: its value, then where it came from (design.md section 2.1). */
static void print_key(void *config, const char *name, const char *value)
{
    const char *from = sl_config_source_of(config, name);
    printf("%-*s %-22s %s\n", KEY_W, name, value, from ? from : "");
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
    printf("%-*s %s\n", KEY_W, "model", a.pos[0]);
    sl_config_each_key(&m.c, print_key, (void *)&m.c);
    printf("%-*s %d logit row%s\n", KEY_W, "head", m.head_rows, m.head_rows == 2 ? "s (logit = z1 - z0)" : "");
    printf("%-*s %zu\n\ntensors (%d): name in the file, dtype, shape, role in seqlens\n", KEY_W, "parameters", m.n_params,
           m.n_tensors);
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
