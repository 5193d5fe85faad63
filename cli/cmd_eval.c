#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/registry.h"
#include "cli/stage.h"
#include "core/dist.h"
#include "core/h5out.h"
#include "core/metrics.h"
#include "plots/html.h"
#include "plots/results.h"
#include "plots/section.h"
#include "plots/summary.h"
#include "plots/verdict.h"

static const char USAGE[] =
    "usage: seqlens eval MODEL DATA [-o scores.h5] [--examples A:B] [--threads N] [--batch B] [--device cpu|cuda]\n"
    "  Prints JSON with n, auc, log_loss and accuracy (logit > 0 predicts 1). A NaN or infinite logit\n"
    "  is an error (exit 1) that says on how many examples: no score means anything with one.\n"
    "  -o writes /logits, /labels and /lengths per example to an HDF5 file.\n";

static int write_scores(const char *path, const sl_session *s, const float *logits, sl_error *err)
{
    sl_h5out o;
    sl_h5set set = {.ds = -1}; /* closed below even when the file could not be created */
    hsize_t n = (hsize_t)s->run.count;
    int rc = sl_h5out_create(&o, path, err);
    if (!rc) rc = sl_h5out_dataset(&o, &set, "logits", H5OUT_F32, 1, &n, err);
    if (!rc) rc = sl_h5out_write(&o, &set, 0, n, logits, err);
    sl_h5set_close(&set);
    if (!rc) rc = sl_h5out_dataset(&o, &set, "labels", H5OUT_I32, 1, &n, err);
    if (!rc) rc = sl_h5out_write(&o, &set, 0, n, s->data.labels + s->run.first, err);
    sl_h5set_close(&set);
    if (!rc) rc = sl_h5out_dataset(&o, &set, "lengths", H5OUT_I32, 1, &n, err);
    if (!rc) rc = sl_h5out_write(&o, &set, 0, n, s->data.lengths + s->run.first, err);
    sl_h5set_close(&set);
    if (!rc) return sl_h5out_commit(&o, err);
    sl_h5out_abort(&o);
    return rc;
}

/* JSON has no NaN: a score that cannot be computed is null. */
static void json_number(char *buf, size_t n, double v)
{
    if (isfinite(v)) snprintf(buf, n, "%.6f", v);
    else snprintf(buf, n, "null");
}

static int cmd_eval(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    sl_session s;
    if (sl_parse_args(&a, "eval", argc, argv, "-o --examples --threads --batch --device", &err)) return sl_report(&err);
    if (a.help || a.n_pos != 2) return sl_usage(USAGE, a.help);
    int rc = sl_session_open(&s, &a, a.pos[0], a.pos[1], &err);
    float *logits = NULL;
    if (!rc) rc = sl_session_need_both_classes(&s, &err);
    if (!rc && !(logits = malloc((size_t)s.run.count * sizeof *logits)))
        rc = sl_fail(&err, SL_ERUNTIME, "out of memory for %ld logits", s.run.count);
    if (!rc) rc = sl_run(&s.model, &s.data, &s.run, NULL, NULL, NULL, NULL, logits, &err);
    if (!rc && a.out && sl_dist_root()) rc = write_scores(a.out, &s, logits, &err);
    if (!rc) {
        const int32_t *labels = s.data.labels + s.run.first;
        long n = s.run.count, pos = 0;
        for (long i = 0; i < n; i++) pos += labels[i];
        char auc[32], loss[32];
        json_number(auc, sizeof auc, sl_auc(logits, labels, n));
        json_number(loss, sizeof loss, sl_log_loss(logits, labels, n));
        printf("{\"n\": %ld, \"positives\": %ld, \"auc\": %s, \"log_loss\": %s, \"accuracy\": %.6f}\n", n, pos, auc,
               loss, sl_accuracy(logits, labels, n));
    }
    free(logits);
    sl_session_close(&s);
    return rc ? sl_report(&err) : 0;
}

/* analyze's stage: the logits into DIR/scores.h5, the JSON on standard output */
static void stage_args(sl_plan *p)
{
    sl_plan_inputs(p);
    sl_plan_arg(p, "-o"), sl_plan_arg(p, "%s/scores.h5", p->dir);
    sl_plan_examples(p);
    sl_plan_run(p);
}

static double one_pass(const sl_plan *p)
{
    (void)p;
    return 1;
}

static const sl_stage STAGES[] = {
    {.name = "eval", .order = 10, .outputs = {"eval.json", "scores.h5"}, .stdout_to = "eval.json", .args = stage_args,
     .weight = one_pass},
};

/* The AUC, and against the best achievable where the data's attributes
 * give it (within SL_NEGLIGIBLE_AUC of it: at that ceiling). */
static void verdict(const sl_results *r, const cJSON *eval, char *out, size_t size)
{
    double auc = sl_jnum(eval, "auc");
    int k = snprintf(out, size, "AUC %.3f on %.0f examples (accuracy %.3f).", auc, sl_jnum(eval, "n"),
                     sl_jnum(eval, "accuracy"));
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(r->manifest, "data_summary"), "attributes");
    double bayes = sl_jnum(attrs, "bayes_auc");
    if (isfinite(bayes) && k > 0 && (size_t)k < size)
        snprintf(out + k, size - (size_t)k, " The data's attributes put the best achievable AUC at %.3f: the model is %s.",
                 bayes, auc >= bayes - SL_NEGLIGIBLE_AUC ? "at that ceiling" : "below it");
}

static int section(sl_report_ctx *rp, const cJSON *e, const char *sentence, sl_error *err)
{
    (void)err;
    sl_page_section(&rp->page, "performance", "Performance", "How well the model separates the two labels on this data (logit > 0 predicts 1).");
    sl_page_verdict(&rp->page, sentence);
    /* analyze --verify: said once, where the numbers it vouches for are */
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rp->r->manifest, "verify");
    if (cJSON_IsObject(v) && sl_jnum(v, "n") >= 1) {
        fputs("<p class=\"verify\">", rp->f);
        sl_html_printf(rp->f, "seqlens's logits %s your PyTorch logits on %.0f examples to max relative error %.3g (tolerance %g).",
                       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "ok")) ? "match" : "do not match", sl_jnum(v, "n"),
                       sl_jnum(v, "max_rel_error"), sl_jnum(v, "tolerance"));
        fputs("</p>\n", rp->f);
    }
    sl_html_object(rp->f, e);
    fputs("</section>\n", rp->f);
    return SL_OK;
}

/* summarize: the AUC, drawn across runs beside the bag-of-tokens baseline's */
static void summary_row(const sl_results *r, const cJSON *eval, cJSON *row)
{
    (void)r;
    sl_summary_num(row, "auc", sl_jnum(eval, "auc"));
}

static void summary_cell(FILE *f, const cJSON *row) { sl_summary_num_cell(f, row, "auc"); }

static const sl_summary_figure SUMMARY_FIGURE = {
    .name = "summary-auc", .caption = "Test AUC per run, with the bag-of-tokens baseline.", .title = "AUC per run",
    .ylabel = "AUC", .key = "auc", .label = "model", .key2 = "bag_of_tokens_auc", .label2 = "bag of tokens"};

static const sl_summary_part SUMMARY = {.order = 10, .row = summary_row, .keys = {"auc"}, .heading = "AUC",
                                        .cell = summary_cell, .figure = &SUMMARY_FIGURE};

static const sl_section SECTIONS[] = {
    {.file = "eval.json", .file_order = 10, .top = "n:n auc:N log_loss:N accuracy:N", .order = 10, .id = "performance",
     .label = "Performance", .verdict = verdict, .render = section, .summary = &SUMMARY},
};

static sl_command eval_command = {
    .name = "eval",
    .summary = "  eval MODEL DATA             AUC, log-loss, accuracy; logits per example\n",
    .order = 30,
    .flags = SL_CMD_SHARDED | SL_CMD_OUT_H5,
    .run = cmd_eval,
    .stages = STAGES,
    .n_stages = 1,
    .sections = SECTIONS,
    .n_sections = 1,
};
SL_REGISTER_COMMAND(eval_command)
