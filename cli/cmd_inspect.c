#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attribution/inspect.h"
#include "cli/commands.h"
#include "cli/registry.h"
#include "cli/stage.h"
#include "core/jsonout.h"
#include "plots/figures.h"
#include "plots/results.h"
#include "plots/section.h"

static const char USAGE[] =
    "usage: seqlens inspect MODEL DATA [-o out.json] [--examples A:B] [--sample S [--seed S]] [--threads N]\n"
    "                       [--batch B]\n"
    "  Per layer and token family, means over the family's valid positions in the data. Mamba:\n"
    "  mean_delta, mean_gate (SiLU(z)), mean_write (|delta x| times ||B||), mean_retention\n"
    "  (exp(delta A)) and memory_length (-1/ln retention, tokens). Mamba-2 (delta per head) adds each\n"
    "  per head: mean_delta_per_head, mean_gate_per_head, mean_write_per_head (|delta x| times the\n"
    "  norm of the head's group of B), mean_retention_per_head (exp(delta_h A_h)) and\n"
    "  memory_length_per_head; its scalars are their means over heads. Transformer: attention_mass\n"
    "  (the share of attention valid queries put on the family's keys), token_share (the family's\n"
    "  share of visible keys), ratio, attention_mass_per_head; and per head entropy (nats) and\n"
    "  mean_distance.\n"
    "  The Transformer's attention pattern is materialised one example at a time: memory grows as L^2.\n"
    "  --sample S: the means over a seeded sample of S of the selected examples, when there are more\n"
    "  (JSON sampled_from: how many they were drawn from).\n";

static cJSON *layer_json(const sl_dataset *ds, const sl_inspect_result *r, int i)
{
    cJSON *layer = cJSON_CreateObject(), *fams = cJSON_CreateArray();
    cJSON_AddNumberToObject(layer, "layer", i);
    for (int f = 0; f < r->n_families; f++) {
        const sl_inspect_family *x = &r->fam[i * r->n_families + f];
        if (!x->count) continue; /* no valid position of this family */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "family", ds->family_names[f]);
        if (r->selectivity) {
            cJSON_AddNumberToObject(o, "positions", (double)x->count);
            cJSON_AddItemToObject(o, "mean_delta", sl_json_number(x->mean_delta));
            cJSON_AddItemToObject(o, "mean_gate", sl_json_number(x->mean_gate));
            cJSON_AddItemToObject(o, "mean_write", sl_json_number(x->mean_write));
            cJSON_AddItemToObject(o, "mean_retention", sl_json_number(x->mean_retention));
            cJSON_AddItemToObject(o, "memory_length", sl_json_number(x->memory_length));
            for (int q = 0; r->ssm_heads && q < SL_PH_COUNT; q++) {
                cJSON *ph = cJSON_CreateArray();
                for (int h = 0; h < r->ssm_heads; h++) cJSON_AddItemToArray(ph, sl_json_number(x->per_head[q][h]));
                cJSON_AddItemToObject(o, SL_INSPECT_PER_HEAD_NAMES[q], ph);
            }
        }
        if (r->n_heads) {
            cJSON_AddItemToObject(o, "attention_mass", sl_json_number(x->attention_mass));
            cJSON_AddItemToObject(o, "token_share", sl_json_number(x->token_share));
            cJSON_AddItemToObject(o, "ratio", sl_json_number(x->ratio));
            cJSON *ph = cJSON_CreateArray();
            for (int h = 0; h < r->n_heads; h++) cJSON_AddItemToArray(ph, sl_json_number(x->attention_mass_per_head[h]));
            cJSON_AddItemToObject(o, "attention_mass_per_head", ph);
        }
        cJSON_AddItemToArray(fams, o);
    }
    cJSON_AddItemToObject(layer, "families", fams);
    if (r->n_heads) {
        cJSON *heads = cJSON_CreateArray();
        for (int h = 0; h < r->n_heads; h++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "head", h);
            cJSON_AddItemToObject(o, "entropy", sl_json_number(r->head[i * r->n_heads + h].entropy));
            cJSON_AddItemToObject(o, "mean_distance", sl_json_number(r->head[i * r->n_heads + h].mean_distance));
            cJSON_AddItemToArray(heads, o);
        }
        cJSON_AddItemToObject(layer, "heads", heads);
    }
    return layer;
}

static int cmd_inspect(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "inspect", argc, argv, "-o --examples --sample --seed --threads --batch --device", &err)) return sl_report(&err);
    if (a.help || a.n_pos != 2) return sl_usage(USAGE, a.help);
    sl_session s;
    sl_inspect_result r = {0};
    int rc = sl_session_open(&s, &a, a.pos[0], a.pos[1], &err);
    if (!rc) rc = sl_dataset_need_families(&s.data, "inspect (its measures are per family)", &err);
    if (!rc) rc = sl_inspect(&s.model, &s.data, &s.run, &r, &err);
    if (!rc) {
        cJSON *j = cJSON_CreateObject(), *layers = cJSON_CreateArray();
        cJSON_AddStringToObject(j, "arch", sl_arch_name(s.model.c.arch));
        cJSON_AddNumberToObject(j, "n", (double)s.run.count);
        sl_session_json_sample(j, &s);
        for (int i = 0; i < r.n_layers; i++) cJSON_AddItemToArray(layers, layer_json(&s.data, &r, i));
        cJSON_AddItemToObject(j, "layers", layers);
        rc = sl_json_write(j, a.out, &err);
        cJSON_Delete(j);
        if (!rc && a.out) printf("inspected %d layers x %d families of %ld examples -> %s\n", r.n_layers, r.n_families, s.run.count, a.out);
    }
    sl_inspect_free(&r);
    sl_session_close(&s);
    return rc ? sl_report(&err) : 0;
}

/* analyze's stage: on a seeded sample when more examples are selected */
static void stage_args(sl_plan *p)
{
    sl_plan_inputs(p);
    sl_plan_out(p);
    sl_plan_examples(p);
    if (sl_plan_sampled(p)) sl_plan_sample(p), sl_plan_seed(p);
    sl_plan_run(p);
}

static double stage_weight(const sl_plan *p) { return 2 * sl_plan_part(p); }

static const sl_stage STAGES[] = {
    {.name = "inspect", .order = 70, .outputs = {"inspect.json"}, .per_family = 1, .args = stage_args,
     .weight = stage_weight},
};

/* Mamba: the family whose mean delta stands furthest above the layer's
 * family average, over all layers. Transformer: the highest attention
 * ratio. */
static void verdict(const sl_results *r, const cJSON *inspect, char *out, size_t size)
{
    (void)r;
    out[0] = 0;
    int mamba = !strncmp(sl_jstr(inspect, "arch"), "mamba", 5); /* mamba and mamba2 */
    const char *key = mamba ? "mean_delta" : "ratio";
    const cJSON *layer, *best_fam = NULL;
    double best = -INFINITY, best_layer = 0, best_rel = NAN;
    cJSON_ArrayForEach(layer, cJSON_GetObjectItemCaseSensitive(inspect, "layers"))
    {
        const cJSON *fam, *fams = cJSON_GetObjectItemCaseSensitive(layer, "families");
        double sum = 0;
        int n = 0;
        cJSON_ArrayForEach(fam, fams)
        {
            double v = sl_jnum(fam, key);
            if (isfinite(v)) sum += v, n++;
        }
        cJSON_ArrayForEach(fam, fams)
        {
            double v = sl_jnum(fam, key);
            double rel = mamba ? v / (sum / n) : v;
            if (isfinite(rel) && rel > best && sl_jstr(fam, "family")) {
                best = rel;
                best_fam = fam;
                best_layer = sl_jnum(layer, "layer");
                best_rel = rel;
            }
        }
    }
    if (!best_fam) return;
    if (mamba)
        snprintf(out, size,
                 "Mamba's step size delta is largest, relative to the other families, on '%s' at layer %.0f (%.2fx the "
                 "family average, mean gate %.3f): that is where the model writes most into its state.",
                 sl_jstr(best_fam, "family"), best_layer, best_rel, sl_jnum(best_fam, "mean_gate"));
    else
        snprintf(out, size, "Attention favours '%s' most at layer %.0f: %.2fx its share of the keys (%.3f of the mass).",
                 sl_jstr(best_fam, "family"), best_layer, best_rel, sl_jnum(best_fam, "attention_mass"));
}

/* The heatmap both inspect figures draw: families across (names as
 * gnuplot labels), rows up (layers or heads, every ystep-th numbered),
 * the cells' "x y value" lines in data, which is freed; with values,
 * each cell's value written in it. 0 when no cell. */
static int family_heatmap(FILE *gp, char *data, int cells, const char *t, const char **names, int nf, int rows,
                          const char *ylabel, int ystep, const char *field, int values)
{
    if (!cells) {
        free(data);
        return 0;
    }
    sl_gp_title(gp, t);
    fprintf(gp, "set xrange [-0.5:%d.5]\nset yrange [-0.5:%d.5]\nset ylabel '%s'\nset ytics %d\n", nf - 1, rows - 1,
            ylabel, ystep);
    fputs("set xtics (", gp);
    for (int i = 0; i < nf; i++) {
        fputs(i ? ", " : "", gp);
        sl_gp_label(gp, names[i]);
        fprintf(gp, " %d", i);
    }
    fprintf(gp, ")%s\nset palette defined (0 '#ffffff', 1 '#9ecae1', 2 '#3182bd')\nset cblabel ", nf > 6 ? " rotate by -35" : "");
    sl_gp_label(gp, field);
    fprintf(gp, "\n$h << EOD\n%sEOD\n"
                "plot $h using 1:2:(0.5):(0.5):3 with boxxyerror fc palette fs solid 1 notitle%s\n",
            data, values ? ", \\\n     $h using 1:2:(sprintf('%.3g', $3)) with labels notitle" : "");
    free(data);
    return 1;
}

/* layer x family heatmap of one inspect field. */
static int layers_figure(FILE *gp, const cJSON *inspect, const char *field, const char *t)
{
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(inspect, "layers"), *layer, *fam;
    const char *names[256];
    int nf = 0, nl = 0, cells = 0;
    char *data = NULL;
    size_t size = 0;
    FILE *d = open_memstream(&data, &size);
    if (!d) return 0;
    cJSON_ArrayForEach(layer, layers)
    {
        if (nl == SL_FIG_MAX_ITEMS) break;
        cJSON_ArrayForEach(fam, cJSON_GetObjectItemCaseSensitive(layer, "families"))
        {
            double v = sl_jnum(fam, field);
            const char *name = sl_jstr(fam, "family"); /* the schema checks layers, not their rows */
            if (!isfinite(v) || !name || nf == 256) continue;
            fprintf(d, "%d %.0f %.9g\n", sl_gp_name_index(names, &nf, name), sl_jnum(layer, "layer"), v);
            cells++;
        }
        nl++;
    }
    fclose(d); /* data is only valid after the close */
    /* every layer numbered and each cell's value written, while they fit */
    return family_heatmap(gp, data, cells, t, names, nf, nl, "layer", nl > 32 ? nl / 16 : 1, field, cells <= 2048);
}

/* family x head heatmap of one per-head array field of one layer
 * (Mamba-2's mean_delta_per_head, ...). */
static int heads_figure(FILE *gp, const cJSON *layer, const char *field, const char *t)
{
    const cJSON *fam;
    const char *names[256];
    int nf = 0, nh = 0, cells = 0;
    char *data = NULL;
    size_t size = 0;
    FILE *d = open_memstream(&data, &size);
    if (!d) return 0;
    cJSON_ArrayForEach(fam, cJSON_GetObjectItemCaseSensitive(layer, "families"))
    {
        const cJSON *heads = cJSON_GetObjectItemCaseSensitive(fam, field), *v;
        const char *name = sl_jstr(fam, "family"); /* the schema checks layers, not their rows */
        if (!cJSON_IsArray(heads) || !name || nf == 256) continue;
        int f = sl_gp_name_index(names, &nf, name), h = 0;
        cJSON_ArrayForEach(v, heads)
        {
            if (h == SL_FIG_MAX_ITEMS) break;
            if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
                fprintf(d, "%d %d %.9g\n", f, h, v->valuedouble);
                cells++;
            }
            if (++h > nh) nh = h;
        }
    }
    /* the values written in the cells only while they stay readable */
    fclose(d);
    return family_heatmap(gp, data, cells, t, names, nf, nh, "head", nh > 16 ? nh / 8 : 1, field, cells <= 96);
}

/* Mamba-2: per layer, family x head heatmaps of delta and memory length
 * (none when the rows have no per-head arrays). */
static int head_figures(sl_report_ctx *rp, const cJSON *in, sl_error *err)
{
    static const struct {
        const char *field, *what, *name;
    } FIGS[] = {{"mean_delta_per_head", "Mean step size delta", "delta"},
                {"memory_length_per_head", "Memory length (tokens)", "memory"}};
    const cJSON *layer;
    int rc = SL_OK;
    cJSON_ArrayForEach(layer, cJSON_GetObjectItemCaseSensitive(in, "layers"))
    {
        double i = sl_jnum(layer, "layer");
        if (!isfinite(i) || i < 0 || i > 1e6) continue;
        for (size_t k = 0; !rc && k < sizeof FIGS / sizeof *FIGS; k++) {
            char t[160], name[64], cap[200];
            snprintf(t, sizeof t, "%s per head and family, layer %.0f", FIGS[k].what, i);
            snprintf(name, sizeof name, "inspect-heads-%s-%.0f", FIGS[k].name, i);
            snprintf(cap, sizeof cap, "%s of each head (rows) per family (columns) in layer %.0f.", FIGS[k].what, i);
            rc = sl_page_figure_done(&rp->page, heads_figure(sl_page_figure(&rp->page), layer, FIGS[k].field, t),
                                     name, cap, 760, 420, err);
        }
    }
    return rc;
}

static int section(sl_report_ctx *rp, const cJSON *in, const char *sentence, sl_error *err)
{
    const cJSON *layer;
    /* mamba and mamba2 share the selectivity rows; mamba2's carry them per head too */
    const char *arch = sl_jstr(in, "arch");
    int mamba = arch && !strncmp(arch, "mamba", 5), rc;
    sl_page_section(&rp->page, "inspect", mamba ? "Inside Mamba: step size and gate per token family" : "Inside attention: where it looks",
            mamba ? "Means over every valid position of each family: delta (how far a token moves the state), the SiLU "
                    "gate, the write |delta x| times the norm of B, and the retention exp(delta A) with its memory length."
                  : "The fraction of attention valid queries put on each family's keys, against the family's share of "
                    "keys: a ratio above 1 means attention seeks the family out.");
    sl_page_verdict(&rp->page, sentence);
    sl_report_sample_note(rp, in, "");
    if (mamba) {
        rc = sl_page_figure_done(&rp->page, layers_figure(sl_page_figure(&rp->page), in, "mean_delta", "Mean step size delta per layer and family"),
                       "inspect-delta", "Mean delta (over channels) per layer and family.", 760, 360, err);
        if (!rc)
            rc = sl_page_figure_done(&rp->page, layers_figure(sl_page_figure(&rp->page), in, "mean_gate", "Mean gate SiLU(z) per layer and family"),
                           "inspect-gate", "Mean gate (over channels) per layer and family.", 760, 360, err);
        if (!rc) rc = head_figures(rp, in, err);
    } else {
        rc = sl_page_figure_done(&rp->page,
                       layers_figure(sl_page_figure(&rp->page), in, "attention_mass", "Attention mass per layer and family"),
                       "inspect-attention-mass",
                       "The fraction of all attention that lands on each family's keys, per layer.", 760, 360, err);
        if (!rc)
            rc = sl_page_figure_done(&rp->page,
                           layers_figure(sl_page_figure(&rp->page), in, "ratio", "Attention mass / token share per layer and family"),
                           "inspect-attention", "Attention ratio per layer and family; 1 means attention in proportion.",
                           760, 360, err);
    }
    cJSON_ArrayForEach(layer, cJSON_GetObjectItemCaseSensitive(in, "layers"))
    {
        fprintf(rp->f, "<h3>Layer %.0f</h3>\n", sl_jnum(layer, "layer"));
        static const sl_column MAMBA[] = {{"family", "family", 's'},         {"positions", "positions", 'i'},
                                       {"mean delta", "mean_delta", 'n'},   {"mean gate", "mean_gate", 'n'},
                                       {"mean write", "mean_write", 'n'},   {"retention", "mean_retention", 'n'},
                                       {"memory (tokens)", "memory_length", 'n'}};
        static const sl_column ATTN[] = {{"family", "family", 's'},
                                      {"attention mass", "attention_mass", 'n'},
                                      {"token share", "token_share", 'n'},
                                      {"ratio", "ratio", 'n'}};
        static const sl_column HEADS[] = {{"head", "head", 'i'},
                                       {"entropy (nats)", "entropy", 'n'},
                                       {"mean distance", "mean_distance", 'n'}};
        if (mamba) sl_report_table(rp->f, cJSON_GetObjectItemCaseSensitive(layer, "families"), NULL, MAMBA, 7);
        else {
            sl_report_table(rp->f, cJSON_GetObjectItemCaseSensitive(layer, "families"), NULL, ATTN, 4);
            if (cJSON_GetObjectItemCaseSensitive(layer, "heads")) sl_report_table(rp->f, cJSON_GetObjectItemCaseSensitive(layer, "heads"), NULL, HEADS, 3);
        }
    }
    fputs("</section>\n", rp->f);
    return rc;
}

static const sl_section SECTIONS[] = {
    {.file = "inspect.json", .file_order = 70, .top = "arch:s n:n sampled_from?:n layers:a", .array = "layers",
     .row = "layer:n families:a heads?:a", .order = 70, .id = "inspect", .label = "Inside", .verdict = verdict,
     .render = section},
};

static sl_command inspect_command = {
    .name = "inspect",
    .summary = "  inspect MODEL DATA          Mamba delta/gate/retention and attention mass per family\n",
    .order = 90,
    .flags = SL_CMD_SHARDED,
    .run = cmd_inspect,
    .stages = STAGES,
    .n_stages = 1,
    .sections = SECTIONS,
    .n_sections = 1,
};
SL_REGISTER_COMMAND(inspect_command)
