#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/registry.h"
#include "cli/stage.h"
#include "core/jsonout.h"
#include "plots/figures.h"
#include "plots/results.h"
#include "plots/html.h"
#include "plots/section.h"
#include "plots/summary.h"
#include "probes/probe.h"

static const char USAGE[] =
    "usage: seqlens probe MODEL DATA [--layer I|all] [--target label|NAME] [--site pooled|last|tokens]\n"
    "                     [-o out.json] [--seed S] [--examples A:B] [--threads N] [--batch B]\n"
    "  liblinear L2 logistic regression on standardised resid_post of each layer (default all), C by\n"
    "  5-fold cross-validation on the training split (/split, else a seeded 70/30 split by example).\n"
    "  --target: the label or a binary /concepts/NAME ([N], or [N, L] per token). --site: pooled (the\n"
    "  model's pooling of that layer), last (last valid position) or tokens (every valid position, a\n"
    "  seeded subsample of at most 20000). JSON layers [{layer, test_accuracy, balanced_accuracy,\n"
    "  test_auc, majority_baseline, control_accuracy (the same probe with the target re-assigned at\n"
    "  random per token type), selectivity (accuracy - control), C, n_train, n_test}]. A probe below\n"
    "  its majority baseline is reported on stderr.\n";

static int cmd_probe(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "probe", argc, argv, "-o --layer --target --site --seed --examples --threads --batch --device", &err))
        return sl_report(&err);
    if (a.help || a.n_pos != 2) return sl_usage(USAGE, a.help);
    sl_probe_opts po = {a.target ? a.target : "label", SITE_POOLED, a.seed, 20000};
    if (a.site) {
        if (!strcmp(a.site, "pooled")) po.site = SITE_POOLED;
        else if (!strcmp(a.site, "last")) po.site = SITE_LAST;
        else if (!strcmp(a.site, "tokens")) po.site = SITE_TOKENS;
        else return sl_report(&(sl_error){SL_EINPUT, "seqlens probe: --site: expected pooled, last or tokens"});
    }
    sl_session s;
    int rc = sl_session_open(&s, &a, a.pos[0], a.pos[1], &err), n = 0;
    int *layers = rc ? NULL : malloc((size_t)s.model.c.n_layers * sizeof *layers);
    sl_probe_row *rows = rc ? NULL : calloc((size_t)s.model.c.n_layers, sizeof *rows);
    if (!rc && (!layers || !rows)) rc = sl_fail(&err, SL_ERUNTIME, "out of memory");
    const char *spec = a.layer ? a.layer : "all";
    if (!rc && !strcmp(spec, "all")) {
        for (int i = 0; i < s.model.c.n_layers; i++) layers[n++] = i;
    } else if (!rc) {
        long v;
        if (sl_parse_int(spec, 0, s.model.c.n_layers - 1, &v, NULL))
            rc = sl_fail(&err, SL_EINPUT, "--layer '%.*s%s': expected all or 0..%d", SL_CLIP(spec),
                         s.model.c.n_layers - 1);
        else layers[n++] = (int)v;
    }
    if (!rc) rc = sl_probe(&s.model, &s.data, &s.run, layers, n, &po, rows, &err);
    if (!rc) {
        cJSON *j = cJSON_CreateObject(), *arr = cJSON_CreateArray();
        cJSON_AddStringToObject(j, "target", po.target);
        cJSON_AddStringToObject(j, "site", po.site == SITE_POOLED ? "pooled" : po.site == SITE_LAST ? "last" : "tokens");
        for (int k = 0; k < n; k++) {
            const sl_probe_row *r = &rows[k];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "layer", r->layer);
            cJSON_AddItemToObject(o, "test_accuracy", sl_json_number(r->test_accuracy));
            cJSON_AddItemToObject(o, "balanced_accuracy", sl_json_number(r->balanced_accuracy));
            cJSON_AddItemToObject(o, "test_auc", sl_json_number(r->test_auc));
            cJSON_AddItemToObject(o, "majority_baseline", sl_json_number(r->majority_baseline));
            cJSON_AddItemToObject(o, "control_accuracy", sl_json_number(r->control_accuracy));
            cJSON_AddItemToObject(o, "selectivity", sl_json_number(r->selectivity));
            cJSON_AddItemToObject(o, "C", sl_json_number(r->C));
            cJSON_AddNumberToObject(o, "n_train", (double)r->n_train);
            cJSON_AddNumberToObject(o, "n_test", (double)r->n_test);
            cJSON_AddItemToArray(arr, o);
            if (r->test_accuracy < r->majority_baseline)
                fprintf(stderr,
                        "seqlens: warning: layer %d probe accuracy %.4f is BELOW its majority baseline %.4f "
                        "(control %.4f, %ld training rows): the target is not linearly readable here, or the probe "
                        "overfits; compare balanced_accuracy %.4f and test_auc %.4f\n",
                        r->layer, r->test_accuracy, r->majority_baseline, r->control_accuracy, r->n_train,
                        r->balanced_accuracy, r->test_auc);
        }
        cJSON_AddItemToObject(j, "layers", arr);
        rc = sl_json_write(j, a.out, &err);
        cJSON_Delete(j);
        for (int k = 0; !rc && a.out && k < n; k++)
            printf("layer %d: accuracy %.4f (majority %.4f, control %.4f, selectivity %+.4f), AUC %.4f, C %g\n",
                   rows[k].layer, rows[k].test_accuracy, rows[k].majority_baseline, rows[k].control_accuracy,
                   rows[k].selectivity, rows[k].test_auc, rows[k].C);
    }
    free(layers);
    free(rows);
    sl_session_close(&s);
    return rc ? sl_report(&err) : 0;
}

/* analyze's stage: a probe on every layer */
static void stage_args(sl_plan *p)
{
    sl_plan_inputs(p);
    sl_plan_arg(p, "--layer"), sl_plan_arg(p, "all");
    sl_plan_out(p);
    sl_plan_seed(p);
    sl_plan_examples(p);
    sl_plan_run(p);
}

static double stage_weight(const sl_plan *p)
{
    (void)p;
    return 3;
}

static const sl_stage STAGES[] = {
    {.name = "probe", .order = 90, .outputs = {"probe.json"}, .args = stage_args, .weight = stage_weight},
};

/* A probe "decodes" when it beats the majority baseline by PROBE_MARGIN;
 * its selectivity below LOW_SELECTIVITY is flagged (README: the verdicts'
 * thresholds). */
#define PROBE_MARGIN 0.02
#define LOW_SELECTIVITY 0.05

/* The layer whose probe is most accurate (the first of equals), or NULL. */
static const cJSON *best_layer(const cJSON *probe)
{
    const cJSON *row, *best = NULL;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(probe, "layers"))
    {
        double a = sl_jnum(row, "test_accuracy");
        if (isfinite(a) && (!best || a > sl_jnum(best, "test_accuracy"))) best = row;
    }
    return best;
}

static void verdict(const sl_results *r, const cJSON *probe, char *out, size_t size)
{
    (void)r;
    out[0] = 0;
    const cJSON *best = best_layer(probe);
    if (!best) return;
    double acc = sl_jnum(best, "test_accuracy"), maj = sl_jnum(best, "majority_baseline");
    double sel = sl_jnum(best, "selectivity");
    const char *target = sl_jstr(probe, "target");
    if (acc < maj + PROBE_MARGIN) {
        snprintf(out, size,
                 "No layer encodes '%s' linearly beyond the majority baseline (best: layer %.0f, accuracy %.3f vs %.3f).",
                 target, sl_jnum(best, "layer"), acc, maj);
        return;
    }
    snprintf(out, size, "'%s' is linearly decodable; best at layer %.0f: accuracy %.3f vs majority %.3f (control %.3f, "
                        "selectivity %.3f)%s.",
             target, sl_jnum(best, "layer"), acc, maj, sl_jnum(best, "control_accuracy"), sel,
             sel < LOW_SELECTIVITY ? ": low selectivity, so the probe may be reading token identity rather than the "
                                     "target"
                                   : "");
}

/* Probe accuracy per layer with the majority baseline and control task. */
static int figure(FILE *gp, const cJSON *probe)
{
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(probe, "layers"), *row;
    if (cJSON_GetArraySize(layers) == 0) return 0;
    char t[160];
    snprintf(t, sizeof t, "Linear probes for '%s' at site '%s'", sl_jstr(probe, "target"), sl_jstr(probe, "site"));
    sl_gp_title(gp, t);
    double lo = INFINITY, hi = -INFINITY;
    int i = 0;
    cJSON_ArrayForEach(row, layers)
    {
        if (i++ == SL_FIG_MAX_ITEMS) break;
        lo = fmin(lo, sl_jnum(row, "layer"));
        hi = fmax(hi, sl_jnum(row, "layer"));
    }
    /* a tick per layer while they fit (a hostile file's layer 1e9 would ask
     * gnuplot for a billion) */
    fprintf(gp, "set xlabel 'layer (resid_post)'\nset ylabel 'test accuracy'\nset xtics %s\nset grid\nset key outside right top\n"
                "set xrange [%g:%g]\nset offsets 0, 0, 0.02, 0.02\n$p << EOD\n",
            hi - lo <= 64 ? "1" : "autofreq", lo - 0.3, hi + 0.3);
    i = 0;
    cJSON_ArrayForEach(row, layers)
    {
        if (i++ == SL_FIG_MAX_ITEMS) break;
        fprintf(gp, "%.0f", sl_jnum(row, "layer"));
        sl_gp_num(gp, sl_jnum(row, "test_accuracy"));
        sl_gp_num(gp, sl_jnum(row, "majority_baseline"));
        sl_gp_num(gp, sl_jnum(row, "control_accuracy"));
        fputc('\n', gp);
    }
    fputs("EOD\nplot $p using 1:2 with linespoints pt 7 lw 2 lc rgb '" SL_GP_BAR_COLOUR "' title 'probe', \\\n"
          "     $p using 1:3 with lines dt 2 lw 2 lc rgb 'gray30' title 'majority baseline', \\\n"
          "     $p using 1:4 with linespoints pt 6 dt 3 lc rgb '" SL_GP_ALT_COLOUR "' title 'control task'\n",
          gp);
    return 1;
}

static int section(sl_report_ctx *rp, const cJSON *p, const char *sentence, sl_error *err)
{
    sl_page_section(&rp->page, "probes", "Linear probes",
            "L2 logistic regression (liblinear) on each layer's residual stream, C chosen by cross-validation on the "
            "train split. The control task gives each token type a random label: a probe that is good at it too reads "
            "token identity, not the target (selectivity = accuracy - control accuracy).");
    sl_page_verdict(&rp->page, sentence);
    int rc = sl_page_figure_done(&rp->page, figure(sl_page_figure(&rp->page), p), "probe", "Probe test accuracy per layer.", 720, 400, err);
    static const sl_column COLS[] = {{"layer", "layer", 'i'},
                                  {"test accuracy", "test_accuracy", 'n'},
                                  {"balanced accuracy", "balanced_accuracy", 'n'},
                                  {"test AUC", "test_auc", 'n'},
                                  {"majority baseline", "majority_baseline", 'n'},
                                  {"control accuracy", "control_accuracy", 'n'},
                                  {"selectivity", "selectivity", 'n'},
                                  {"C", "C", 'n'}};
    sl_report_table(rp->f, cJSON_GetObjectItemCaseSensitive(p, "layers"), NULL, COLS, 8);
    fputs("</section>\n", rp->f);
    return rc;
}

/* summarize: the best layer, its accuracy and the majority baseline */
static void summary_row(const sl_results *r, const cJSON *probe, cJSON *row)
{
    (void)r;
    const cJSON *best = best_layer(probe);
    sl_summary_num(row, "best_probe_layer", sl_jnum(best, "layer"));
    sl_summary_num(row, "best_probe_accuracy", sl_jnum(best, "test_accuracy"));
    sl_summary_num(row, "probe_majority_baseline", sl_jnum(best, "majority_baseline"));
}

static void summary_cell(FILE *f, const cJSON *row)
{
    fputs("<td>", f);
    sl_html_num(f, sl_jnum(row, "best_probe_layer"));
    fputs(" (", f);
    sl_html_num(f, sl_jnum(row, "best_probe_accuracy"));
    fputs(" / ", f);
    sl_html_num(f, sl_jnum(row, "probe_majority_baseline"));
    fputs(")</td>", f);
}

static const sl_summary_figure SUMMARY_FIGURE = {
    .name = "summary-probe", .caption = "The best layer's probe accuracy per run against the majority baseline.",
    .title = "Best linear probe per run", .ylabel = "test accuracy", .key = "best_probe_accuracy",
    .label = "best probe", .key2 = "probe_majority_baseline", .label2 = "majority baseline"};

static const sl_summary_part SUMMARY = {
    .order = 70, .row = summary_row, .keys = {"best_probe_layer", "best_probe_accuracy", "probe_majority_baseline"},
    .heading = "best probe layer (accuracy / majority)", .cell = summary_cell, .figure = &SUMMARY_FIGURE};

static const sl_section SECTIONS[] = {
    {.file = "probe.json", .file_order = 90, .top = "target:s site:s layers:a", .array = "layers",
     .row = "layer:n test_accuracy:N test_auc:N majority_baseline:N control_accuracy:N selectivity:N C:N", .order = 90,
     .id = "probes", .label = "Probes", .verdict = verdict, .render = section, .summary = &SUMMARY},
};

static sl_command probe_command = {
    .name = "probe",
    .summary = "  probe MODEL DATA            linear probes on each layer against majority and control\n",
    .order = 110,
    .flags = 0,
    .run = cmd_probe,
    .stages = STAGES,
    .n_stages = 1,
    .sections = SECTIONS,
    .n_sections = 1,
};
SL_REGISTER_COMMAND(probe_command)
