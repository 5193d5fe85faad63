/* seqlens ablate's report (cli/cmd_ablate.c holds the command and its
 * stages): the verdicts on its four results (family, skip, layer,
 * component), their figures, tables and sections. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd_ablate_report.h"
#include "plots/figures.h"
#include "plots/html.h"
#include "plots/results.h"
#include "plots/summary.h"
#include "plots/verdict.h"

/* One family (layer) "carries" the model when its drop is this many times
 * the next (README: the verdicts' thresholds). */
#define DOMINANT_FACTOR 3.0

/* A family with no tokens in the data: its ablation changes nothing and
 * says nothing. */
static int absent(const cJSON *row) { return sl_jnum(row, "masked_fraction") == 0; }

/* The row of an ablation's results whose delta_auc is lowest (the largest
 * drop), or NULL; *second gets the next one's |delta| (0 if none). */
static const cJSON *largest_drop(const cJSON *results, double *second)
{
    const cJSON *best = NULL, *row;
    cJSON_ArrayForEach(row, results)
    {
        double d = sl_jnum(row, "delta_auc");
        if (isfinite(d) && !absent(row) && (!best || d < sl_jnum(best, "delta_auc"))) best = row;
    }
    *second = 0;
    cJSON_ArrayForEach(row, results)
    {
        double d = fabs(sl_jnum(row, "delta_auc"));
        if (row != best && isfinite(d) && !absent(row) && d > *second) *second = d;
    }
    return best;
}

/* An ablation row's effect is real when its CI excludes 0, else when
 * DeLong's p < 0.05; with neither, when it is not negligible. */
static int significant(const cJSON *row)
{
    const cJSON *ci = cJSON_GetObjectItemCaseSensitive(row, "ci95");
    if (cJSON_GetArraySize(ci) == 2) {
        const cJSON *lo = cJSON_GetArrayItem(ci, 0), *hi = cJSON_GetArrayItem(ci, 1);
        if (cJSON_IsNumber(lo) && cJSON_IsNumber(hi)) return lo->valuedouble > 0 || hi->valuedouble < 0;
    }
    double p = sl_jnum(row, "p_value");
    if (isfinite(p)) return p < 0.05;
    return fabs(sl_jnum(row, "delta_auc")) >= SL_NEGLIGIBLE_AUC;
}

/* The family and layer verdicts share their reading of ablation rows. */
static void ablation_verdict(const cJSON *abl, const char *unit, char *out, size_t size)
{
    out[0] = 0;
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(abl, "results");
    double second, lo = INFINITY, hi = -INFINITY;
    const cJSON *top = largest_drop(results, &second), *row;
    if (!top) return;
    int n = 0;
    cJSON_ArrayForEach(row, results)
    {
        double a = fabs(sl_jnum(row, "delta_auc"));
        if (!isfinite(a) || absent(row)) continue;
        lo = fmin(lo, a);
        hi = fmax(hi, a);
        n++;
    }
    char name[96];
    const char *fam = sl_jstr(top, unit);
    if (fam) snprintf(name, sizeof name, "'%s'", fam);
    else snprintf(name, sizeof name, "%s %.0f", unit, sl_jnum(top, unit));
    double d = sl_jnum(top, "delta_auc");
    if (hi < SL_NEGLIGIBLE_AUC) {
        snprintf(out, size, "No %s matters on its own: every ablation moves AUC by less than %.2g (largest %.4f, %s).",
                 unit, SL_NEGLIGIBLE_AUC, d, name);
    } else if (n >= 3 && hi - lo <= fmax(0.001, 0.25 * hi)) {
        snprintf(out, size, "Uses every %s about equally: each ablation costs between %.4f and %.4f AUC.", unit, lo, hi);
    } else if (d < 0 && significant(top) && -d >= DOMINANT_FACTOR * second) {
        snprintf(out, size, "Relies on one %s: %s (AUC change %.4f); no other %s moves AUC by more than %.4f.", unit,
                 name, d, unit, second);
    } else {
        snprintf(out, size, "Largest effect: %s (AUC change %.4f%s); the next largest moves AUC by %.4f.", name, d,
                 significant(top) ? "" : ", not significant", second);
    }
}

static void family_verdict(const sl_results *r, const cJSON *family, char *out, size_t size)
{
    (void)r;
    ablation_verdict(family, "family", out, size);
}

static void layer_verdict(const sl_results *r, const cJSON *layer, char *out, size_t size)
{
    (void)r;
    ablation_verdict(layer, "layer", out, size);
}

/* The component whose removal costs most AUC. */
static void component_verdict(const sl_results *r, const cJSON *component, char *out, size_t size)
{
    (void)r;
    out[0] = 0;
    double second;
    const cJSON *top = largest_drop(cJSON_GetObjectItemCaseSensitive(component, "results"), &second);
    if (!top) return;
    double d = sl_jnum(top, "delta_auc");
    if (fabs(d) < SL_NEGLIGIBLE_AUC)
        snprintf(out, size, "No component matters on its own: every ablation moves AUC by less than %.2g.",
                 SL_NEGLIGIBLE_AUC);
    else
        snprintf(out, size, "Largest effect: %s of layer %.0f (AUC change %.4f); the next largest moves AUC by %.4f.",
                 sl_jstr(top, "component"), sl_jnum(top, "layer"), d, second);
}

/* AUC changes as bars with 95% CIs, largest drop first; key names the
 * rows' label ("family", "layer", "component"). */
static int figure(FILE *gp, const cJSON *abl, const char *key, const char *t)
{
    int n;
    sl_ranked *rows = sl_rank_rows(cJSON_GetObjectItemCaseSensitive(abl, "results"), "delta_auc", 1, &n);
    if (!rows) return 0;
    char title[256];
    n = sl_keep_largest(rows, n, t, title, sizeof title);
    sl_gp_title(gp, title);
    fprintf(gp, "set ylabel 'AUC change (ablated - baseline)'\n"
                "set style fill solid 0.7 border -1\nset boxwidth 0.6\nset grid ytics\nset xzeroaxis lt -1\n"
                "set xrange [-0.6:%d.6]\n%s",
            n - 1, n > 6 ? "set xtics rotate by -35\n" : "");
    fputs("$d << EOD\n", gp);
    for (int i = 0; i < n; i++) {
        const cJSON *r = rows[i].row, *ci = cJSON_GetObjectItemCaseSensitive(r, "ci95");
        char label[96];
        if (!strcmp(key, "component")) snprintf(label, sizeof label, "%s, layer %.0f", sl_jstr(r, key), sl_jnum(r, "layer"));
        else if (sl_jstr(r, key)) snprintf(label, sizeof label, "%s", sl_jstr(r, key));
        else snprintf(label, sizeof label, "%s %.0f", key, sl_jnum(r, key));
        sl_gp_label(gp, label);
        double lo = rows[i].key, hi = rows[i].key;
        if (cJSON_GetArraySize(ci) == 2 && cJSON_IsNumber(cJSON_GetArrayItem(ci, 0)) &&
            cJSON_IsNumber(cJSON_GetArrayItem(ci, 1))) {
            lo = cJSON_GetArrayItem(ci, 0)->valuedouble;
            hi = cJSON_GetArrayItem(ci, 1)->valuedouble;
        }
        sl_gp_num(gp, rows[i].key);
        sl_gp_num(gp, lo);
        sl_gp_num(gp, hi);
        fputc('\n', gp);
    }
    fputs("EOD\nplot $d using 0:2:xtic(1) with boxes lc rgb '" SL_GP_BAR_COLOUR "' notitle, \\\n"
          "     $d using 0:2:3:4 with yerrorbars lc rgb 'black' pt -1 title '95% CI (paired bootstrap)'\n",
          gp);
    free(rows);
    return 1;
}

/* A family-by-family result (ablate --family, or its skip run): its
 * figure, named id, and table; intro says what was done to a family. */
static int family_rows_section(sl_report_ctx *rp, const cJSON *fam, const char *sentence, const char *anchor,
                               const char *heading, const char *intro, const char *figure_title, const char *id,
                               const char *caption, sl_error *err)
{
    sl_page_section(&rp->page, anchor, heading, intro);
    sl_page_verdict(&rp->page, sentence);
    int rc = sl_page_figure_done(&rp->page, figure(sl_page_figure(&rp->page), fam, "family", figure_title), id,
                                 caption, 800, 450, err);
    static const sl_column COLS[] = {{"family", "family", 's'},       {"AUC", "auc", 'n'},
                                     {"AUC change", "delta_auc", 'n'}, {"95% CI", "ci95", 'c'},
                                     {"p (DeLong)", "p_value", 'n'},   {"fraction of tokens", "masked_fraction", 'n'}};
    sl_report_table(rp->f, cJSON_GetObjectItemCaseSensitive(fam, "results"), "delta_auc", COLS, 6);
    fputs("</section>\n", rp->f);
    return rc;
}

static int family_section(sl_report_ctx *rp, const cJSON *fam, const char *sentence, sl_error *err)
{
    char t[200];
    snprintf(t, sizeof t, "Family ablation, mode '%s': AUC change from %.4f", sl_jstr(fam, "mode"),
             sl_jnum(fam, "baseline_auc"));
    return family_rows_section(
        rp, fam, sentence, "family", "Family ablation",
        "Each token family's embeddings replaced (see the mode) at every position of that family, and the "
        "change in AUC. Bars below zero are AUC the model loses without the family.",
        t, "ablate-family", "AUC change per ablated family, largest drop first, with paired-bootstrap 95% intervals.",
        err);
}

static int skip_section(sl_report_ctx *rp, const cJSON *fam, const char *sentence, sl_error *err)
{
    char t[200];
    snprintf(t, sizeof t, "Family skip (delta = 0): AUC change from %.4f", sl_jnum(fam, "baseline_auc"));
    return family_rows_section(
        rp, fam, sentence, "skip", "Family skip: tokens the state never sees",
        "Mamba's step size delta set to 0 at every position of one family in every layer (mamba-knockout's "
        "zero-delta knockout): the state passes those tokens by unchanged and takes nothing from them, "
        "and their positions are left out of pooling; the tokens still reach their neighbours through the "
        "short convolution. Bars below zero are AUC the model loses when the state cannot read the family.",
        t, "ablate-skip", "AUC change per skipped family, largest drop first, with paired-bootstrap 95% intervals.",
        err);
}

static int layer_section(sl_report_ctx *rp, const cJSON *lay, const char *sentence, sl_error *err)
{
    char t[200];
    sl_page_section(&rp->page, "layer", "Layer ablation",
                    "Each block's write to the residual stream removed (skip) or replaced by its mean (mean), and the "
                    "change in AUC.");
    sl_page_verdict(&rp->page, sentence);
    snprintf(t, sizeof t, "Layer ablation, mode '%s': AUC change from %.4f", sl_jstr(lay, "mode"),
             sl_jnum(lay, "baseline_auc"));
    int rc = sl_page_figure_done(&rp->page, figure(sl_page_figure(&rp->page), lay, "layer", t), "ablate-layer",
                                 "AUC change per ablated layer, largest drop first, with paired-bootstrap 95% intervals.",
                                 720, 400, err);
    static const sl_column COLS[] = {{"layer", "layer", 'i'},
                                     {"AUC", "auc", 'n'},
                                     {"AUC change", "delta_auc", 'n'},
                                     {"95% CI", "ci95", 'c'},
                                     {"p (DeLong)", "p_value", 'n'}};
    sl_report_table(rp->f, cJSON_GetObjectItemCaseSensitive(lay, "results"), NULL, COLS, 5);
    fputs("</section>\n", rp->f);
    return rc;
}

static int component_section(sl_report_ctx *rp, const cJSON *comp, const char *sentence, sl_error *err)
{
    sl_page_section(&rp->page, "component", "Component ablation",
                    "One component of one layer removed: Mamba's convolution, SSM path or gate; a Transformer's "
                    "attention or MLP output.");
    sl_page_verdict(&rp->page, sentence);
    int rc = sl_page_figure_done(&rp->page,
                                 figure(sl_page_figure(&rp->page), comp, "component", "Component ablation: AUC change"),
                                 "ablate-component", "AUC change per ablated component.", 800, 450, err);
    static const sl_column COLS[] = {{"component", "component", 's'}, {"layer", "layer", 'i'}, {"AUC", "auc", 'n'},
                                     {"AUC change", "delta_auc", 'n'}, {"95% CI", "ci95", 'c'}};
    sl_report_table(rp->f, cJSON_GetObjectItemCaseSensitive(comp, "results"), NULL, COLS, 5);
    fputs("</section>\n", rp->f);
    return rc;
}

/* summarize: the family and the layer whose ablation costs most AUC */
static void family_summary_row(const sl_results *r, const cJSON *fam, cJSON *row)
{
    (void)r;
    double second;
    const cJSON *top = largest_drop(cJSON_GetObjectItemCaseSensitive(fam, "results"), &second);
    sl_summary_str(row, "top_family", sl_jstr(top, "family"));
    sl_summary_num(row, "top_family_delta_auc", sl_jnum(top, "delta_auc"));
}

static void layer_summary_row(const sl_results *r, const cJSON *lay, cJSON *row)
{
    (void)r;
    double second;
    const cJSON *top = largest_drop(cJSON_GetObjectItemCaseSensitive(lay, "results"), &second);
    sl_summary_num(row, "top_layer", sl_jnum(top, "layer"));
    sl_summary_num(row, "top_layer_delta_auc", sl_jnum(top, "delta_auc"));
}

static void family_summary_cell(FILE *f, const cJSON *row)
{
    sl_summary_named_cell(f, row, "top_family", "top_family_delta_auc", "");
}

static void layer_summary_cell(FILE *f, const cJSON *row)
{
    fputs("<td>", f);
    sl_html_num(f, sl_jnum(row, "top_layer"));
    fputs(" (", f);
    sl_html_num(f, sl_jnum(row, "top_layer_delta_auc"));
    fputs(")</td>", f);
}

static const sl_summary_figure FAMILY_SUMMARY_FIGURE = {
    .name = "summary-family", .caption = "The AUC change of each run's most important family (see the table).",
    .title = "Largest family-ablation AUC change per run", .ylabel = "AUC change", .key = "top_family_delta_auc",
    .label = "top family", .point_names = "top_family"};

static const sl_summary_part FAMILY_SUMMARY = {
    .order = 30, .row = family_summary_row, .keys = {"top_family", "top_family_delta_auc"},
    .heading = "top family (AUC change)", .cell = family_summary_cell, .figure = &FAMILY_SUMMARY_FIGURE};

static const sl_summary_part LAYER_SUMMARY = {.order = 40, .row = layer_summary_row,
                                              .keys = {"top_layer", "top_layer_delta_auc"},
                                              .heading = "top layer (AUC change)", .cell = layer_summary_cell};

const sl_section sl_ablate_sections[SL_ABLATE_SECTIONS] = {
    {.file = "ablate-family.json", .file_order = 30, .top = "baseline_auc:N n:n mode:s results:a", .array = "results",
     .row = "family:s auc:N delta_auc:N ci95?:A p_value?:N masked_fraction?:N", .order = 30, .id = "family",
     .label = "Families", .verdict = family_verdict, .render = family_section, .summary = &FAMILY_SUMMARY},
    {.file = "ablate-skip.json", .file_order = 35, .top = "baseline_auc:N n:n mode:s results:a", .array = "results",
     .row = "family:s auc:N delta_auc:N ci95?:A p_value?:N masked_fraction?:N", .order = 35, .id = "skip",
     .label = "Skip", .only_some_models = 1, .verdict = family_verdict, .render = skip_section},
    {.file = "ablate-layer.json", .file_order = 40, .top = "baseline_auc:N n:n mode:s results:a", .array = "results",
     .row = "layer:n auc:N delta_auc:N ci95?:A p_value?:N", .order = 40, .id = "layer", .label = "Layers",
     .verdict = layer_verdict, .render = layer_section, .summary = &LAYER_SUMMARY},
    {.file = "ablate-component.json", .file_order = 50, .top = "baseline_auc:N n:n results:a", .array = "results",
     .row = "component:s layer:n auc:N delta_auc:N ci95?:A", .order = 50, .id = "component", .label = "Components",
     .verdict = component_verdict, .render = component_section},
};

