#include <math.h>
#include <stdio.h>

#include "cli/commands.h"
#include "cli/registry.h"
#include "cli/stage.h"
#include "core/jsonout.h"
#include "plots/figures.h"
#include "plots/html.h"
#include "plots/results.h"
#include "plots/section.h"
#include "plots/summary.h"
#include "plots/verdict.h"
#include "probes/baseline.h"

static const char USAGE[] =
    "usage: seqlens baseline DATA [-o out.json] [--seed S] [--examples A:B]\n"
    "  Logistic regression (liblinear, L2, C by 5-fold cross-validation on the training split) on\n"
    "  the counts of each token and of each family in every sequence: the AUC a model that ignores\n"
    "  order can reach. The split is /split where DATA has one, else a seeded 70/30 one.\n"
    "  JSON: n_train, n_test, bag_of_tokens and bag_of_families {test_auc, test_accuracy, C}.\n";

static cJSON *result(const sl_logreg_result *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "test_auc", sl_json_number(r->test_auc));
    cJSON_AddItemToObject(o, "test_accuracy", sl_json_number(r->test_accuracy));
    cJSON_AddItemToObject(o, "C", sl_json_number(r->C));
    return o;
}

static int cmd_baseline(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "baseline", argc, argv, "-o --seed --examples", &err)) return sl_report(&err);
    if (a.help || a.n_pos != 1) return sl_usage(USAGE, a.help);
    sl_dataset ds = {.file = -1, .tokens = -1, .of_position = -1};
    int vocab = 0;
    int rc = sl_dataset_vocab(a.pos[0], &vocab, &err);
    if (!rc) rc = sl_dataset_open(&ds, a.pos[0], vocab, 0, &err);
    long end = a.ex_end < 0 ? ds.n : a.ex_end;
    if (!rc && (a.ex_first >= ds.n || end > ds.n))
        rc = sl_fail(&err, SL_EINPUT, "%s: --examples %ld:%ld is outside the %ld examples", a.pos[0], a.ex_first, end, ds.n);
    sl_baseline_result r;
    if (!rc) rc = sl_baseline(&ds, a.ex_first, end - a.ex_first, a.seed, &r, &err);
    if (!rc) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "n_train", (double)r.n_train);
        cJSON_AddNumberToObject(j, "n_test", (double)r.n_test);
        cJSON_AddItemToObject(j, "bag_of_tokens", result(&r.tokens));
        cJSON_AddItemToObject(j, "bag_of_families", result(&r.families));
        rc = sl_json_write(j, a.out, &err);
        cJSON_Delete(j);
        if (!rc && a.out)
            printf("order-free test AUC: bag of tokens %.4f, bag of families %.4f (%ld train / %ld test) -> %s\n",
                   r.tokens.test_auc, r.families.test_auc, r.n_train, r.n_test, a.out);
    }
    sl_dataset_close(&ds);
    return rc ? sl_report(&err) : 0;
}

/* analyze's stage: DATA alone, on one thread (liblinear's) */
static void stage_args(sl_plan *p)
{
    sl_plan_arg(p, "%s", p->a->pos[1]);
    sl_plan_out(p);
    sl_plan_seed(p);
    sl_plan_examples(p);
}

static double one_pass(const sl_plan *p)
{
    (void)p;
    return 1;
}

static const sl_stage STAGES[] = {
    {.name = "baseline", .order = 20, .outputs = {"baseline.json"}, .per_family = 1, .args = stage_args, .weight = one_pass},
};

/* The model's AUC against a bag of tokens: within SL_NEGLIGIBLE_AUC, token
 * counts explain it. */
static void verdict(const sl_results *r, const cJSON *baseline, char *out, size_t size)
{
    const cJSON *eval = sl_result(r, "eval.json");
    double bag = sl_jnum(cJSON_GetObjectItemCaseSensitive(baseline, "bag_of_tokens"), "test_auc");
    double fam = sl_jnum(cJSON_GetObjectItemCaseSensitive(baseline, "bag_of_families"), "test_auc");
    double model = eval ? sl_jnum(eval, "auc") : NAN;
    if (!isfinite(model)) {
        snprintf(out, size, "A bag of tokens reaches AUC %.3f; a bag of families %.3f.", bag, fam);
    } else if (model - bag <= SL_NEGLIGIBLE_AUC) {
        snprintf(out, size,
                 "A bag of tokens already reaches AUC %.3f against the model's %.3f: token counts explain what the "
                 "model does.",
                 bag, model);
    } else {
        snprintf(out, size, "The model beats a bag of tokens by %.3f AUC (%.3f vs %.3f): it uses more than token counts.",
                 model - bag, model, bag);
    }
}

/* The model's AUC beside the bag-of-tokens and bag-of-families AUCs (and
 * the data's Bayes-optimal AUC where its attributes give one). */
static int figure(FILE *gp, const cJSON *baseline, const cJSON *eval, const cJSON *manifest)
{
    const char *labels[4];
    double v[4];
    int n = 0;
    if (eval) labels[n] = "model", v[n++] = sl_jnum(eval, "auc");
    labels[n] = "bag of tokens", v[n++] = sl_jnum(cJSON_GetObjectItemCaseSensitive(baseline, "bag_of_tokens"), "test_auc");
    labels[n] = "bag of families",
    v[n++] = sl_jnum(cJSON_GetObjectItemCaseSensitive(baseline, "bag_of_families"), "test_auc");
    const cJSON *attrs =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(manifest, "data_summary"), "attributes");
    if (isfinite(sl_jnum(attrs, "bayes_auc"))) labels[n] = "Bayes optimal", v[n++] = sl_jnum(attrs, "bayes_auc");
    double lo = 0.45;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) lo = fmin(lo, v[i] - 0.05);
    sl_gp_title(gp, "AUC of the model against order-free baselines");
    fprintf(gp, "set ylabel 'AUC'\nset yrange [%.3f:1.04]\nset style fill solid 0.7 border -1\nset boxwidth 0.6\n"
                "set key below\nset grid ytics\nset xrange [-0.6:%d.6]\n$b << EOD\n",
            lo, n - 1);
    for (int i = 0; i < n; i++) {
        sl_gp_label(gp, labels[i]);
        sl_gp_num(gp, v[i]);
        fprintf(gp, " %d\n", i == 0 && eval ? 1 : 2);
    }
    fputs("EOD\nplot $b using 0:2:($3 == 1 ? 0x4477aa : 0xbbbbbb):xtic(1) with boxes lc rgb variable notitle, \\\n"
          "     $b using 0:2:(sprintf('%.3f', $2)) with labels offset 0,0.7 notitle, \\\n"
          "     0.5 with lines dt 2 lc rgb 'gray30' title 'chance'\n",
          gp);
    return 1;
}

static int section(sl_report_ctx *rp, const cJSON *b, const char *sentence, sl_error *err)
{
    sl_page_section(&rp->page, "baselines", "Order-free baselines",
            "Logistic regression on token counts (bag of tokens) and on family counts (bag of families): what a model "
            "that ignores order can reach on the same data.");
    sl_page_verdict(&rp->page, sentence);
    int rc = sl_page_figure_done(&rp->page, figure(sl_page_figure(&rp->page), b, sl_result(rp->r, "eval.json"), rp->r->manifest), "baselines",
                       "Test AUC of the model and of the baselines; the dashed line is chance.", 720, 400, err);
    fputs("<table><tr><th>baseline</th><th>test AUC</th><th>test accuracy</th><th>C</th></tr>\n", rp->f);
    const char *names[2] = {"bag_of_tokens", "bag_of_families"};
    for (int i = 0; i < 2; i++) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(b, names[i]);
        fprintf(rp->f, "<tr><td>%s</td><td class=\"num\">", names[i]);
        sl_html_num(rp->f, sl_jnum(o, "test_auc"));
        fputs("</td><td class=\"num\">", rp->f);
        sl_html_num(rp->f, sl_jnum(o, "test_accuracy"));
        fputs("</td><td class=\"num\">", rp->f);
        sl_html_num(rp->f, sl_jnum(o, "C"));
        fputs("</td></tr>\n", rp->f);
    }
    fputs("</table>\n</section>\n", rp->f);
    return rc;
}

/* summarize: the bag of tokens' AUC (drawn beside the model's, cmd_eval.c) */
static void summary_row(const sl_results *r, const cJSON *baseline, cJSON *row)
{
    (void)r;
    sl_summary_num(row, "bag_of_tokens_auc",
                   sl_jnum(cJSON_GetObjectItemCaseSensitive(baseline, "bag_of_tokens"), "test_auc"));
}

static void summary_cell(FILE *f, const cJSON *row) { sl_summary_num_cell(f, row, "bag_of_tokens_auc"); }

static const sl_summary_part SUMMARY = {.order = 20, .row = summary_row, .keys = {"bag_of_tokens_auc"},
                                        .heading = "bag of tokens", .cell = summary_cell};

static const sl_section SECTIONS[] = {
    {.file = "baseline.json", .file_order = 20, .top = "bag_of_tokens:o bag_of_families:o", .order = 20,
     .id = "baselines", .label = "Baselines", .verdict = verdict, .render = section, .summary = &SUMMARY},
};

static sl_command baseline_command = {
    .name = "baseline",
    .summary = "  baseline DATA               bag-of-tokens / bag-of-families logistic regression AUC\n",
    .order = 80,
    .flags = 0,
    .run = cmd_baseline,
    .stages = STAGES,
    .n_stages = 1,
    .sections = SECTIONS,
    .n_sections = 1,
};
SL_REGISTER_COMMAND(baseline_command)
