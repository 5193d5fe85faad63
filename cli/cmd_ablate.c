#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ablation/component.h"
#include "ablation/family.h"
#include "ablation/layer.h"
#include "cli/cmd_ablate_report.h"
#include "cli/commands.h"
#include "cli/registry.h"
#include "cli/stage.h"
#include "core/jsonout.h"

static const char USAGE[] =
    "usage: seqlens ablate MODEL DATA --family NAME|all [--mode mean|zero|pad|resample|skip] [-o out.json]\n"
    "       seqlens ablate MODEL DATA --layer I|all [--mode skip|mean] [-o out.json]\n"
    "                      [--bootstrap B] [--seed S] [--examples A:B] [--threads N] [--batch B]\n"
    "  Replaces the token embedding at every valid position of a family and measures the AUC lost:\n"
    "  mean (default) = the family's frequency-weighted mean embedding, zero = zeros, pad = the pad\n"
    "  token, also dropped from attention keys and pooling, resample = a token drawn (seeded) from the\n"
    "  family's positions in the data; skip (Mamba and Mamba-2) instead sets delta to 0 there in every\n"
    "  layer (the state passes through, nothing is written) and drops the positions from pooling.\n"
    "  JSON: baseline_auc, n, results [{family, auc, delta_auc, ci95\n"
    "  (paired bootstrap, B resamples, default 1000; null with --bootstrap 0), p_value (DeLong),\n"
    "  masked_fraction}]. --layer: skip sets blocks.I.resid_post = blocks.I.resid_pre, mean replaces the\n"
    "  block's write by its mean over all valid positions; rows carry `layer` instead of `family`.\n"
    "       seqlens ablate MODEL DATA --component NAME|all [--layer I|all] [--mode zero|mean]\n"
    "  One component of one layer (every layer unless --layer): Mamba conv (the causal conv and its\n"
    "  bias replaced by the identity, SiLU kept), ssm (y = D x), gate (SiLU(z) -> 1); Transformer attn\n"
    "  or mlp (blocks.I.attn.out / mlp.out set to 0, or with --mode mean to its mean over the valid\n"
    "  positions of the data). NAME may be a comma-separated list; rows carry `component` and `layer`.\n"
    "  A list (of families, layers or components) names each item once: a repeat is refused.\n"
    "  With -o the JSON goes to the file and a table sorted by effect to stdout.\n"
    "  --base-logits FILE (with --family): the unablated logits from FILE, written by seqlens eval -o FILE\n"
    "    with the same MODEL, DATA and --examples, instead of a pass of its own; the results are the same.\n"
    "    FILE must hold exactly the selected examples (their labels and lengths are checked) and finite\n"
    "    logits, and the model's logit of the first one must match it, else exit 2.\n";

static int parse_mode(const char *s, const char *const *names, int *mode)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(s, names[i])) { *mode = i; return 0; }
    return -1;
}

static const char *const FAMILY_MODES[] = {"mean", "zero", "pad", "resample", "skip", NULL};
static const char *const LAYER_MODES[] = {"skip", "mean", NULL};
static const char *const COMPONENT_MODES[] = {"zero", "mean", NULL};

/* Whether v is among list[0..n): a list names each item once (a repeat
 * would be a second identical row, and the buffers hold one of each). */
static int listed(const int *list, int n, int v)
{
    for (int i = 0; i < n; i++)
        if (list[i] == v) return 1;
    return 0;
}

/* --component NAME|all|a,b x --layer: one row per (component, layer); comps
 * and lays hold SL_COMP_COUNT x nl. */
static int pick_components(const sl_model *m, const char *spec, const int *layers, int nl, int *comps, int *lays, int *n,
                           sl_error *err)
{
    int chosen[SL_COMP_COUNT], nc = 0;
    if (!strcmp(spec, "all")) {
        for (int c = 0; c < SL_COMP_COUNT; c++)
            if (sl_component_valid(m, c)) chosen[nc++] = c;
    } else {
        const char *p = spec;
        do {
            size_t len = strcspn(p, ",");
            int found = -1;
            for (int c = 0; c < SL_COMP_COUNT; c++)
                if (strlen(SL_COMPONENT_NAMES[c]) == len && !strncmp(SL_COMPONENT_NAMES[c], p, len)) found = c;
            if (found < 0 || !sl_component_valid(m, found)) {
                char names[64];
                sl_component_names(m, names, sizeof names);
                return sl_fail(err, SL_EINPUT, "--component '%.*s': a %s has %s", (int)(len > 60 ? 60 : len), p,
                               sl_arch_name(m->c.arch), names);
            }
            if (listed(chosen, nc, found))
                return sl_fail(err, SL_EINPUT, "--component '%.*s%s': %.*s is listed twice", SL_CLIP(spec), (int)len,
                               p);
            chosen[nc++] = found;
            p += len;
        } while (*p++ == ',');
    }
    *n = 0;
    for (int c = 0; c < nc; c++)
        for (int l = 0; l < nl; l++) comps[*n] = chosen[c], lays[(*n)++] = layers[l];
    return SL_OK;
}

/* --layer I|all or a comma-separated list: out holds n_layers. */
static int pick_layers(const sl_model *m, const char *spec, int *out, int *n, sl_error *err)
{
    *n = 0;
    if (!strcmp(spec, "all")) {
        for (int i = 0; i < m->c.n_layers; i++) out[(*n)++] = i;
        return SL_OK;
    }
    const char *p = spec;
    do {
        long v;
        if (sl_parse_int(p, 0, m->c.n_layers - 1, &v, &p) || (*p && *p != ','))
            return sl_fail(err, SL_EINPUT, "--layer '%.*s%s': expected all or layer indices 0..%d", SL_CLIP(spec),
                           m->c.n_layers - 1);
        if (listed(out, *n, (int)v))
            return sl_fail(err, SL_EINPUT, "--layer '%.*s%s': layer %ld is listed twice", SL_CLIP(spec), v);
        out[(*n)++] = (int)v;
    } while (*p++ == ',');
    return SL_OK;
}

/* --family NAME|all or a comma-separated list to family indices: out holds
 * n_families. */
static int pick_families(const sl_dataset *ds, const char *spec, int *out, int *n, sl_error *err)
{
    *n = 0;
    if (!strcmp(spec, "all")) {
        for (int f = 0; f < ds->n_families; f++) out[(*n)++] = f;
        return SL_OK;
    }
    const char *p = spec;
    do {
        size_t len = strcspn(p, ",");
        int found = -1;
        for (int f = 0; f < ds->n_families; f++)
            if (strlen(ds->family_names[f]) == len && !strncmp(ds->family_names[f], p, len)) found = f;
        if (found < 0) {
            char names[512] = "";
            for (int f = 0; f < ds->n_families && strlen(names) < sizeof names - 1; f++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", f ? ", " : "", ds->family_names[f]);
            return sl_fail(err, SL_EINPUT, "--family '%.*s': %s has no such family (it has: %s)",
                           (int)(len > 60 ? 60 : len), p, ds->path, names);
        }
        if (listed(out, *n, found))
            return sl_fail(err, SL_EINPUT, "--family '%.*s%s': %.*s is listed twice", SL_CLIP(spec), (int)len, p);
        out[(*n)++] = found;
        p += len;
    } while (*p++ == ',');
    return SL_OK;
}

static cJSON *to_json(const sl_dataset *ds, const sl_ablation_result *r, const char *mode, int bootstrap)
{
    cJSON *j = cJSON_CreateObject(), *rows = cJSON_CreateArray();
    cJSON_AddItemToObject(j, "baseline_auc", sl_json_number(r->baseline_auc));
    cJSON_AddNumberToObject(j, "n", (double)r->n);
    cJSON_AddStringToObject(j, "mode", mode);
    cJSON_AddNumberToObject(j, "bootstrap", bootstrap);
    for (int i = 0; i < r->n_rows; i++) {
        const sl_ablation_row *w = &r->rows[i];
        cJSON *o = cJSON_CreateObject();
        if (w->family >= 0) cJSON_AddStringToObject(o, "family", ds->family_names[w->family]);
        if (w->component >= 0) cJSON_AddStringToObject(o, "component", SL_COMPONENT_NAMES[w->component]);
        if (w->family < 0) cJSON_AddNumberToObject(o, "layer", w->layer);
        cJSON_AddItemToObject(o, "auc", sl_json_number(w->auc));
        cJSON_AddItemToObject(o, "delta_auc", sl_json_number(w->delta_auc));
        cJSON_AddItemToObject(o, "ci95", w->has_ci ? sl_json_interval(w->ci95) : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "p_value", sl_json_number(w->p_value));
        cJSON_AddItemToObject(o, "masked_fraction", sl_json_number(w->masked_fraction));
        cJSON_AddItemToArray(rows, o);
    }
    cJSON_AddItemToObject(j, "results", rows);
    return j;
}

static int by_effect(const void *p, const void *q)
{
    double a = ((const sl_ablation_row *)p)->delta_auc, b = ((const sl_ablation_row *)q)->delta_auc;
    return (a > b) - (a < b);
}

static void print_table(const sl_dataset *ds, sl_ablation_result *r)
{
    sl_ablation_row *rows = malloc((size_t)(r->n_rows ? r->n_rows : 1) * sizeof *rows);
    if (!rows) return;
    memcpy(rows, r->rows, (size_t)r->n_rows * sizeof *rows);
    qsort(rows, (size_t)r->n_rows, sizeof *rows, by_effect);
    printf("baseline AUC %.4f over %ld examples; largest drop first\n", r->baseline_auc, r->n);
    printf("%-20s %8s %10s %22s %10s %8s\n",
           r->n_rows && rows[0].component >= 0 ? "component" : r->n_rows && rows[0].family < 0 ? "layer" : "family", "AUC", "delta",
           "95% CI", "p", "masked");
    for (int i = 0; i < r->n_rows; i++) {
        char ci[48] = "-";
        if (rows[i].has_ci) snprintf(ci, sizeof ci, "[%+.4f, %+.4f]", rows[i].ci95[0], rows[i].ci95[1]);
        char name[32];
        if (rows[i].component >= 0) snprintf(name, sizeof name, "%s %d", SL_COMPONENT_NAMES[rows[i].component], rows[i].layer);
        else if (rows[i].family < 0) snprintf(name, sizeof name, "%d", rows[i].layer);
        printf("%-20s %8.4f %+10.4f %22s %10.3g %7.1f%%\n", rows[i].family >= 0 ? ds->family_names[rows[i].family] : name, rows[i].auc,
               rows[i].delta_auc, ci, rows[i].p_value, 100 * rows[i].masked_fraction);
    }
    free(rows);
}

static int cmd_ablate(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "ablate", argc, argv,
                      "-o --family --layer --component --mode --bootstrap --seed --examples --threads --batch --device "
                      "--base-logits", &err))
        return sl_report(&err);
    if (a.help || a.n_pos != 2) return sl_usage(USAGE, a.help);
    if (a.component ? a.family != NULL : !a.family == !a.layer)
        return sl_report(&(sl_error){SL_EINPUT, "seqlens ablate: give one of --family NAME|all, --layer I|all and "
                                                "--component NAME|all (with --layer)"});
    /* layer and component ablation restart their variants from the
     * baseline pass's activations: given logits would not spare it */
    if (a.base_logits && !a.family)
        return sl_report(&(sl_error){SL_EINPUT, "seqlens ablate: --base-logits goes with --family (layer and component "
                                                "ablation need the baseline pass's activations, not only its logits)"});
    const char *const *modes = a.component ? COMPONENT_MODES : a.family ? FAMILY_MODES : LAYER_MODES;
    int mode = 0;
    if (a.mode && parse_mode(a.mode, modes, &mode))
        return sl_report(&(sl_error){SL_EINPUT, "seqlens ablate: --mode: family ablation takes mean, zero, pad, "
                                                "resample or skip; layer ablation skip or mean; component ablation zero or mean"});
    sl_session s;
    int rc = sl_session_open(&s, &a, a.pos[0], a.pos[1], &err), n = 0;
    /* a list names each family or layer once: it fits these */
    int n_picks = rc ? 0 : s.data.n_families > s.model.c.n_layers ? s.data.n_families : s.model.c.n_layers;
    int *picks = rc ? NULL : malloc((size_t)n_picks * sizeof *picks);
    int *comps = rc ? NULL : malloc((size_t)SL_COMP_COUNT * (size_t)s.model.c.n_layers * sizeof *comps);
    int *lays = rc ? NULL : malloc((size_t)SL_COMP_COUNT * (size_t)s.model.c.n_layers * sizeof *lays);
    sl_ablation_result r = {0};
    float *base = NULL;
    if (!rc) rc = sl_session_need_both_classes(&s, &err);
    if (!rc) rc = sl_session_base_logits(&s, a.base_logits, &base, &err);
    if (!rc && a.family) rc = sl_dataset_need_families(&s.data, "ablate --family", &err);
    if (!rc && !(picks && comps && lays)) rc = sl_fail(&err, SL_ERUNTIME, "out of memory");
    if (!rc) rc = a.family ? pick_families(&s.data, a.family, picks, &n, &err)
                           : pick_layers(&s.model, a.layer ? a.layer : "all", picks, &n, &err);
    if (!rc && a.component) {
        int nl = n;
        rc = pick_components(&s.model, a.component, picks, nl, comps, lays, &n, &err);
        if (!rc) rc = sl_ablate_components(&s.model, &s.data, &s.run, comps, lays, n, mode, a.bootstrap, a.seed, &r, NULL, &err);
    } else if (!rc && a.family) {
        sl_family_opts fo = {mode, a.seed, a.bootstrap, base};
        rc = sl_ablate_families(&s.model, &s.data, &s.run, picks, n, &fo, &r, NULL, &err);
    } else if (!rc) {
        rc = sl_ablate_layers(&s.model, &s.data, &s.run, picks, n, mode, a.bootstrap, a.seed, &r, NULL, &err);
    }
    if (!rc) {
        cJSON *j = to_json(&s.data, &r, modes[mode], a.bootstrap);
        rc = sl_json_write(j, a.out, &err);
        cJSON_Delete(j);
        if (!rc && a.out) print_table(&s.data, &r);
    }
    sl_ablation_result_free(&r);
    free(base);
    free(picks);
    free(comps);
    free(lays);
    sl_session_close(&s);
    return rc ? sl_report(&err) : 0;
}

/* analyze's stages: every family, every layer, every component */
static void stage_args(sl_plan *p, const char *what)
{
    sl_plan_inputs(p);
    sl_plan_arg(p, "--%s", what), sl_plan_arg(p, "all");
    /* the family stages start from the eval stage's logits: one pass fewer */
    if (!strcmp(what, "family")) sl_plan_base_logits(p);
    sl_plan_out(p);
    sl_plan_bootstrap(p);
    sl_plan_seed(p);
    sl_plan_examples(p);
    sl_plan_run(p);
}

static void family_args(sl_plan *p) { stage_args(p, "family"); }
/* mamba-knockout's standard knockout: each family made invisible to the state */
static void skip_args(sl_plan *p)
{
    stage_args(p, "family");
    sl_plan_arg(p, "--mode"), sl_plan_arg(p, "skip");
}
static int has_delta(const sl_plan *p) { return sl_model_point(&p->s->model, HK_MIXER_DELTA, 0) >= 0; }
static void layer_args(sl_plan *p) { stage_args(p, "layer"); }
static void component_args(sl_plan *p) { stage_args(p, "component"); }

/* ablating a family costs one forward pass, as does each layer and
 * component (the family stages take the baseline from eval) */
static double family_weight(const sl_plan *p) { return p->s->data.n_families; }
static double layer_weight(const sl_plan *p) { return p->s->model.c.n_layers; }
static double component_weight(const sl_plan *p)
{
    const sl_component *list;
    return sl_model_components(&p->s->model, &list) * p->s->model.c.n_layers;
}

static const sl_stage STAGES[] = {
    {.name = "ablate-family", .order = 30, .outputs = {"ablate-family.json"}, .per_family = 1, .args = family_args,
     .weight = family_weight},
    {.name = "ablate-skip", .order = 35, .outputs = {"ablate-skip.json"}, .per_family = 1, .args = skip_args,
     .weight = family_weight, .applies = has_delta},
    {.name = "ablate-layer", .order = 40, .outputs = {"ablate-layer.json"}, .args = layer_args, .weight = layer_weight},
    {.name = "ablate-component", .order = 50, .outputs = {"ablate-component.json"}, .args = component_args,
     .weight = component_weight},
};

static sl_command ablate_command = {
    .name = "ablate",
    .summary = "  ablate MODEL DATA --family NAME|all   AUC lost when a token family is removed\n"
               "         MODEL DATA --layer I|all       ... or a block's write\n"
               "         MODEL DATA --component NAME|all    ... or one part of a layer (conv, ssm, gate, attn, mlp)\n",
    .order = 60,
    .flags = SL_CMD_SHARDED,
    .run = cmd_ablate,
    .stages = STAGES,
    .n_stages = 4,
    .sections = sl_ablate_sections,
    .n_sections = SL_ABLATE_SECTIONS,
};
SL_REGISTER_COMMAND(ablate_command)
