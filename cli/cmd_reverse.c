/* seqlens reverse-test: the command, its stage in analyze and its section
 * of the report (cli/registry.h). */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ablation/reverse.h"
#include "cli/commands.h"
#include "cli/registry.h"
#include "cli/stage.h"
#include "core/dataset.h"
#include "core/h5out.h"
#include "core/jsonout.h"
#include "plots/figures.h"
#include "plots/html.h"
#include "plots/results.h"
#include "plots/section.h"
#include "plots/summary.h"

static const char USAGE[] =
    "usage: seqlens reverse-test MODEL DATA [-o out.json] [--scores logits.h5] [--seed S] [--examples A:B] [--threads N] [--batch B]\n"
    "  Runs every example as given, with its valid part reversed (padding stays at the end), and\n"
    "  shuffled (seeded) as a control. JSON: n, pearson_r and spearman_rho (original vs reversed\n"
    "  logits), auc_original, auc_reversed, shuffle_pearson_r, shuffle_spearman_rho, auc_shuffled.\n"
    "  r near 1 means the model reads a bag of tokens; the shuffle says how much order it can lose.\n"
    "  --scores writes /original, /reversed, /shuffled (logits) and /labels per example to HDF5.\n"
    "  --base-logits FILE: the logits as given from FILE, written by seqlens eval -o FILE with the same\n"
    "    MODEL, DATA and --examples, instead of a pass of its own; the results are the same. FILE must\n"
    "    hold exactly the selected examples (their labels and lengths are checked) and finite logits,\n"
    "    and the model's logit of the first one must match it, else exit 2.\n";

static int write_scores(const char *path, const sl_session *s, const float *logits, sl_error *err)
{
    static const char *const NAMES[3] = {"original", "reversed", "shuffled"};
    sl_h5out o;
    sl_h5set set = {.ds = -1}; /* closed below even when the file could not be created */
    hsize_t n = (hsize_t)s->run.count;
    int rc = sl_h5out_create(&o, path, err);
    for (int k = 0; k < 3 && !rc; k++) {
        rc = sl_h5out_dataset(&o, &set, NAMES[k], H5OUT_F32, 1, &n, err);
        if (!rc) rc = sl_h5out_write(&o, &set, 0, n, logits + (size_t)k * n, err);
        sl_h5set_close(&set);
    }
    if (!rc) rc = sl_h5out_dataset(&o, &set, "labels", H5OUT_I32, 1, &n, err);
    if (!rc) rc = sl_h5out_write(&o, &set, 0, n, s->data.labels + s->run.first, err);
    sl_h5set_close(&set);
    if (!rc) return sl_h5out_commit(&o, err);
    sl_h5out_abort(&o);
    return rc;
}

static int cmd_reverse(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    sl_session s;
    if (sl_parse_args(&a, "reverse-test", argc, argv, "-o --scores --seed --examples --threads --batch --device --base-logits",
                      &err))
        return sl_report(&err);
    if (a.help || a.n_pos != 2) return sl_usage(USAGE, a.help);
    int rc = sl_session_open(&s, &a, a.pos[0], a.pos[1], &err);
    sl_reverse_result r;
    float *logits = NULL, *original = NULL;
    if (!rc) rc = sl_session_need_both_classes(&s, &err);
    if (!rc) rc = sl_session_base_logits(&s, a.base_logits, &original, &err);
    if (!rc && a.scores_out && !(logits = malloc(3 * (size_t)s.run.count * sizeof *logits)))
        rc = sl_fail(&err, SL_ERUNTIME, "out of memory for %ld logits", s.run.count);
    if (!rc) rc = sl_reverse_test(&s.model, &s.data, &s.run, a.seed, original, &r, logits, &err);
    if (!rc && a.scores_out && sl_dist_root()) rc = write_scores(a.scores_out, &s, logits, &err);
    if (!rc) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "n", (double)r.n);
        cJSON_AddNumberToObject(j, "seed", (double)a.seed);
        cJSON_AddItemToObject(j, "pearson_r", sl_json_number(r.pearson_r));
        cJSON_AddItemToObject(j, "spearman_rho", sl_json_number(r.spearman_rho));
        cJSON_AddItemToObject(j, "auc_original", sl_json_number(r.auc_original));
        cJSON_AddItemToObject(j, "auc_reversed", sl_json_number(r.auc_reversed));
        cJSON_AddItemToObject(j, "shuffle_pearson_r", sl_json_number(r.shuffle_pearson_r));
        cJSON_AddItemToObject(j, "shuffle_spearman_rho", sl_json_number(r.shuffle_spearman_rho));
        cJSON_AddItemToObject(j, "auc_shuffled", sl_json_number(r.auc_shuffled));
        rc = sl_json_write(j, a.out, &err);
        cJSON_Delete(j);
        if (!rc && a.out)
            printf("reverse r = %.4f (rho %.4f), shuffle r = %.4f; AUC %.4f original, %.4f reversed -> %s\n",
                   r.pearson_r, r.spearman_rho, r.shuffle_pearson_r, r.auc_original, r.auc_reversed, a.out);
    }
    free(logits);
    free(original);
    sl_session_close(&s);
    return rc ? sl_report(&err) : 0;
}

/* The report's section: reverse.json, and the logits of reverse-scores.h5
 * (written by analyze's --scores) for the scatter. */

/* reverse r at or above: order-insensitive; below ORDER_SENSITIVE_R:
 * order-sensitive; between: partly (README: the verdicts' thresholds). */
#define BAG_OF_TOKENS_R 0.95
#define ORDER_SENSITIVE_R 0.7

static void verdict(const sl_results *results, const cJSON *rev, char *out, size_t size)
{
    (void)results;
    double r = sl_jnum(rev, "pearson_r"), s = sl_jnum(rev, "shuffle_pearson_r");
    double a0 = sl_jnum(rev, "auc_original"), a1 = sl_jnum(rev, "auc_reversed");
    const char *kind = r >= BAG_OF_TOKENS_R     ? "Order-insensitive"
                       : r >= ORDER_SENSITIVE_R ? "Partly order-sensitive"
                                                   : "Order-sensitive";
    const char *meaning = r >= BAG_OF_TOKENS_R ? ": the model reads close to a bag of tokens"
                          : r >= ORDER_SENSITIVE_R
                              ? ": order moves the logits, but most of the signal survives reversal"
                              : ": reversing a sequence changes what the model says";
    snprintf(out, size, "%s: reverse r = %.3f, shuffle r = %.3f; AUC %.3f original, %.3f reversed%s.", kind, r, s, a0,
             a1, meaning);
}

/* reverse-scores.h5: original, reversed, shuffled logits, n each */
typedef struct {
    float *logits;
    long n;
} scores;

static void free_scores(void *extra)
{
    scores *sc = extra;
    free(sc->logits);
    free(sc);
}

/* The reversal scatter's logits; a damaged file is an input error. */
static int load_scores(void **extra, const char *dir, sl_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/reverse-scores.h5", dir);
    if (access(path, F_OK) != 0) return SL_OK; /* optional */
    scores *r = calloc(1, sizeof *r);
    if (!r) return sl_fail(err, SL_ERUNTIME, "out of memory");
    static const char *const NAMES[3] = {"/original", "/reversed", "/shuffled"};
    /* the dataset files' checks: a regular file (a FIFO would block HDF5's
     * open), nothing from other files, no size declared beyond what is stored */
    hid_t file;
    int rc = sl_h5_open_input(path, &file, err);
    if (rc) {
        free_scores(r);
        return rc;
    }
    for (int k = 0; k < 3 && !rc; k++) {
        hid_t d;
        rc = sl_h5_open_checked(file, path, NAMES[k], &d, err);
        if (rc) break;
        hid_t sp = d < 0 ? -1 : H5Dget_space(d);
        hsize_t n = 0;
        if (sp < 0 || H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_dims(sp, &n, NULL) < 0 ||
            (k && (long)n != r->n) || n == 0)
            rc = sl_fail(err, SL_EINPUT, "%s: %s missing or not a vector of the same length", path, NAMES[k]);
        if (!rc && !k) {
            r->n = (long)n;
            if (!(r->logits = malloc(3 * n * sizeof *r->logits))) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
        }
        if (!rc && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->logits + (size_t)k * n) < 0)
            rc = sl_fail(err, SL_EINPUT, "%s: cannot read %s", path, NAMES[k]);
        if (sp >= 0) H5Sclose(sp);
        if (d >= 0) H5Dclose(d);
    }
    if (H5Fclose(file) < 0 && !rc) rc = sl_fail(err, SL_ERUNTIME, "%s: cannot close", path);
    if (rc) free_scores(r);
    else *extra = r;
    return rc;
}

/* Original logit against reversed and shuffled (at most 4000 points each). */
static int figure(FILE *gp, const cJSON *rev, const scores *sc)
{
    if (!sc) return 0;
    long n = sc->n, stride = (n + 3999) / 4000;
    char t[160];
    snprintf(t, sizeof t, "Reversal: r = %.3f (shuffled control: r = %.3f)", sl_jnum(rev, "pearson_r"),
             sl_jnum(rev, "shuffle_pearson_r"));
    sl_gp_title(gp, t);
    fputs("set xlabel 'logit of the sequence as given'\nset ylabel 'logit of the altered sequence'\n"
          "set key top left\nset grid\nset size ratio -1\n",
          gp);
    for (int k = 1; k <= 2; k++) {
        fprintf(gp, "$%s << EOD\n", k == 1 ? "rev" : "shuf");
        for (long i = 0; i < n; i += stride) {
            sl_gp_num(gp, sc->logits[i]);
            sl_gp_num(gp, sc->logits[(size_t)k * n + i]);
            fputc('\n', gp);
        }
        fputs("EOD\n", gp);
    }
    fputs("plot $shuf using 1:2 with points pt 7 ps 0.35 lc rgb '" SL_GP_ALT_COLOUR "' title 'shuffled', \\\n"
          "     $rev using 1:2 with points pt 7 ps 0.35 lc rgb '" SL_GP_BAR_COLOUR "' title 'reversed', \\\n"
          "     x with lines dt 2 lc rgb 'gray30' title 'unchanged (y = x)'\n",
          gp);
    return 1;
}

static int section(sl_report_ctx *rp, const cJSON *rev, const char *sentence, sl_error *err)
{
    sl_page_section(&rp->page, "reversal", "Order: reversal test",
                    "Every sequence's valid part reversed, and (as a control) shuffled with a fixed seed. A model that "
                    "reads a bag of tokens gives the same logit either way (r = 1).");
    sl_page_verdict(&rp->page, sentence);
    int rc = sl_page_figure_done(&rp->page, figure(sl_page_figure(&rp->page), rev, sl_result_extra(rp->r, "reverse.json")),
                                 "reverse", "Each point is one example: its logit as given (x) and reversed or shuffled (y).",
                                 620, 560, err);
    sl_html_object(rp->f, rev);
    fputs("</section>\n", rp->f);
    return rc;
}

/* summarize: reverse r per run */
static void summary_row(const sl_results *r, const cJSON *rev, cJSON *row)
{
    (void)r;
    sl_summary_num(row, "reverse_r", sl_jnum(rev, "pearson_r"));
}

static void summary_cell(FILE *f, const cJSON *row) { sl_summary_num_cell(f, row, "reverse_r"); }

static const sl_summary_figure SUMMARY_FIGURE = {
    .name = "summary-reverse", .caption = "Reverse r per run: 1 means order is ignored.",
    .title = "Reversal: correlation of logits per run", .ylabel = "reverse r", .key = "reverse_r", .label = "pearson r"};

static const sl_summary_part SUMMARY = {.order = 60, .row = summary_row, .keys = {"reverse_r"}, .heading = "reverse r",
                                        .cell = summary_cell, .figure = &SUMMARY_FIGURE};

static const sl_section SECTIONS[] = {
    {.file = "reverse.json", .file_order = 60,
     .top = "n:n pearson_r:N spearman_rho:N auc_original:N auc_reversed:N shuffle_pearson_r:N", .order = 60,
     .id = "reversal", .label = "Order", .verdict = verdict, .render = section, .load = load_scores,
     .free_extra = free_scores, .summary = &SUMMARY},
};

/* analyze's stage: the logits kept in DIR/reverse-scores.h5 for the scatter */
static void stage_args(sl_plan *p)
{
    sl_plan_inputs(p);
    sl_plan_arg(p, "--scores"), sl_plan_arg(p, "%s/reverse-scores.h5", p->dir);
    sl_plan_base_logits(p); /* the logits as given: the eval stage's */
    sl_plan_out(p);
    sl_plan_seed(p);
    sl_plan_examples(p);
    sl_plan_run(p);
}

/* the data reversed and shuffled (as given: the eval stage's logits) */
static double stage_weight(const sl_plan *p)
{
    (void)p;
    return 2;
}

static const sl_stage STAGES[] = {
    {.name = "reverse", .order = 60, .outputs = {"reverse.json", "reverse-scores.h5"}, .args = stage_args,
     .weight = stage_weight},
};

static sl_command reverse_command = {
    .name = "reverse-test",
    .summary = "  reverse-test MODEL DATA     logits with each sequence reversed and shuffled\n",
    .order = 50,
    .flags = SL_CMD_SHARDED,
    .run = cmd_reverse,
    .stages = STAGES,
    .n_stages = 1,
    .sections = SECTIONS,
    .n_sections = 1,
};
SL_REGISTER_COMMAND(reverse_command)
