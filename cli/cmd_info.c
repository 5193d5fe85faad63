#include <stdio.h>

#include "cli/commands.h"
#include "core/safetensors.h"

static const char USAGE[] =
    "usage: seqlens info MODEL\n"
    "  Prints the config, parameter count, tensors and hook points of MODEL\n"
    "  (a directory with config.json and model.safetensors).\n";

static void print_config(const sl_config *c)
{
    printf("arch          %s\n", sl_arch_name(c->arch));
    printf("vocab_size    %d\nd_model       %d\nn_layers      %d\npad_token_id  %d\npooling       %s\n",
           c->vocab_size, c->d_model, c->n_layers, c->pad_token_id, sl_pooling_name(c->pooling));
    if (c->prefix[0]) printf("prefix        \"%s\"\n", c->prefix);
    if (c->arch == ARCH_MAMBA) {
        printf("d_state       %d\nd_conv        %d\nexpand        %d (d_inner %d)\ndt_rank       %d\nnorm_eps      %g\n",
               c->d_state, c->d_conv, c->expand, c->d_inner, c->dt_rank, c->norm_eps);
    } else {
        printf("n_heads       %d (d_head %d)\nd_ff          %d\nnorm_first    %s\nactivation    %s\n", c->n_heads,
               c->d_head, c->d_ff, c->norm_first ? "true" : "false", c->activation == ACT_GELU ? "gelu" : "relu");
        printf("positional    %s\nmax_len       %d\nfinal_norm    %s\ncausal        %s\nlayer_norm_eps %g\n",
               sl_positional_name(c->positional), c->max_len, c->final_norm ? "true" : "false",
               c->causal ? "true" : "false", c->layer_norm_eps);
        if (c->positional == POS_ROPE) printf("rope_base     %g\n", c->rope_base);
    }
}

int cmd_info(int argc, char **argv)
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
    printf("model         %s\n", a.pos[0]);
    print_config(&m.c);
    printf("head          %d logit row%s\n", m.head_rows, m.head_rows == 2 ? "s (logit = z1 - z0)" : "");
    printf("parameters    %zu\n\ntensors (%d)\n", m.n_params, m.n_tensors);
    for (int i = 0; i < m.n_tensors; i++) {
        const sl_tensor_info *t = &m.tensors[i];
        printf("  %-44s %-4s [", t->name, st_dtype_name(t->dtype));
        for (int k = 0; k < t->ndim; k++) printf("%s%lld", k ? ", " : "", (long long)t->shape[k]);
        printf("]\n");
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
