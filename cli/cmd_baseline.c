#include <stdio.h>

#include "cli/commands.h"
#include "cli/registry.h"
#include "cli/stage.h"
#include "core/jsonout.h"
#include "plots/figures.h"
#include "plots/html.h"
#include "plots/results.h"
#include "plots/section.h"
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

static void verdict(const sl_results *r, const cJSON *own, char *out, size_t size)
{
    sl_verdict_baseline(own, sl_result(r, "eval.json"), out, size);
}

static int section(sl_report_ctx *rp, const cJSON *b, const char *sentence, sl_error *err)
{
    sl_page_section(&rp->page, "baselines", "Order-free baselines",
            "Logistic regression on token counts (bag of tokens) and on family counts (bag of families): what a model "
            "that ignores order can reach on the same data.");
    sl_page_verdict(&rp->page, sentence);
    int rc = sl_page_figure_done(&rp->page, sl_fig_baselines(sl_page_figure(&rp->page), b, sl_result(rp->r, "eval.json"), rp->r->manifest), "baselines",
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

static const sl_section SECTIONS[] = {
    {.file = "baseline.json", .file_order = 20, .top = "bag_of_tokens:o bag_of_families:o", .order = 20,
     .id = "baselines", .label = "Baselines", .verdict = verdict, .render = section},
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
