#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attribution/attribute.h"
#include "cli/commands.h"
#include "cli/registry.h"
#include "cli/stage.h"
#include "core/h5out.h"
#include "core/jsonout.h"
#include "plots/figures.h"
#include "plots/html.h"
#include "plots/results.h"
#include "plots/section.h"
#include "plots/summary.h"

static const char USAGE[] =
    "usage: seqlens attribute MODEL DATA [--method grad-input|ig] [--steps K] [--baseline pad|zero] [-o out.json]\n"
    "                         [--tokens attr.h5] [--bootstrap B] [--seed S] [--examples A:B] [--sample S]\n"
    "                         [--threads N] [--batch B]\n"
    "  Attribution of each example's logit to `embed` (token + positional term), summed over the model\n"
    "  dimension, absolute value per token: grad-input = embed . d logit / d embed (one forward and one\n"
    "  backward pass); ig = integrated gradients from the baseline (the embedding of an all-pad sequence,\n"
    "  or zeros) in K midpoint steps (default 32). JSON: families [{family, attribution_share,\n"
    "  token_share, ratio, attribution_share_ci95, ratio_ci95}] over valid positions (the intervals:\n"
    "  percentile bootstrap over examples, B resamples, default 1000; 0 writes null), profile\n"
    "  [{distance_min, distance_max, attribution_share, token_share}] by distance from the sequence end,\n"
    "  and for ig completeness\n"
    "  {mean_abs_error, max_abs_error, mean_relative_error}: |sum of attributions - (logit - baseline logit)|.\n"
    "  --tokens writes the signed per-token attributions to /attribution [N, L] (0 beyond each length).\n"
    "  --sample S: a seeded (--seed) sample of S of the selected examples, in file order, when there are\n"
    "  more: shares and means need far fewer examples than a large test set, and the intervals show the\n"
    "  sample's error. JSON: n (examples used) and sampled_from (examples they were drawn from).\n"
    "  --base-logits FILE (ig): each example's logit from FILE, written by seqlens eval -o FILE with the\n"
    "    same MODEL, DATA and --examples, instead of a forward pass of its own; the results are the same.\n"
    "    FILE is checked as for ablate; with --sample, each sampled example is its own row of FILE.\n";

/* --tokens FILE.h5: /attribution [N, L] written batch by batch */
typedef struct {
    sl_h5out out;
    sl_h5set set;
} token_file;

static int write_rows(void *user, long row, int count, int L, const float *attr, sl_error *err)
{
    (void)L;
    token_file *t = user;
    return sl_h5out_write(&t->out, &t->set, (hsize_t)row, (hsize_t)count, attr, err);
}

static cJSON *families(const sl_dataset *ds, const sl_attr_result *r)
{
    cJSON *arr = cJSON_CreateArray();
    for (int f = 0; f < r->n_families; f++) {
        if (!r->family_count[f]) continue; /* no valid position of this family */
        double share = r->total > 0 ? r->family_abs[f] / r->total : NAN, tokens = (double)r->family_count[f] / r->valid;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "family", ds->family_names[f]);
        cJSON_AddItemToObject(o, "attribution_share", sl_json_number(share));
        cJSON_AddItemToObject(o, "token_share", sl_json_number(tokens));
        cJSON_AddItemToObject(o, "ratio", sl_json_number(share / tokens));
        cJSON_AddItemToObject(o, "attribution_share_ci95", sl_json_interval(r->share_ci + 2 * f));
        cJSON_AddItemToObject(o, "ratio_ci95", sl_json_interval(r->ratio_ci + 2 * f));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *profile(const sl_attr_result *r)
{
    cJSON *arr = cJSON_CreateArray();
    for (int b = 0; b < SL_DISTANCE_BUCKETS; b++) {
        if (!r->bucket_count[b]) continue;
        long lo = b ? 1L << (b - 1) : 0, hi = b ? (1L << b) - 1 : 0;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "distance_min", (double)lo);
        cJSON_AddNumberToObject(o, "distance_max", (double)hi);
        cJSON_AddItemToObject(o, "attribution_share", sl_json_number(r->total > 0 ? r->bucket_abs[b] / r->total : NAN));
        cJSON_AddItemToObject(o, "token_share", sl_json_number((double)r->bucket_count[b] / r->valid));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static int cmd_attribute(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "attribute", argc, argv, "-o --tokens --method --steps --baseline --bootstrap --seed --examples --sample --threads --batch --device "
                      "--base-logits", &err))
        return sl_report(&err);
    if (a.help || a.n_pos != 2) return sl_usage(USAGE, a.help);
    sl_attr_opts ao = {ATTR_GRAD_INPUT, a.steps ? a.steps : 32, BASELINE_PAD, a.bootstrap, a.seed, NULL};
    if (a.method && !strcmp(a.method, "ig")) ao.method = ATTR_IG;
    else if (a.method && strcmp(a.method, "grad-input"))
        return sl_report(&(sl_error){SL_EINPUT, "seqlens attribute: --method: expected grad-input or ig"});
    if (a.baseline && !strcmp(a.baseline, "zero")) ao.baseline = BASELINE_ZERO;
    else if (a.baseline && strcmp(a.baseline, "pad"))
        return sl_report(&(sl_error){SL_EINPUT, "seqlens attribute: --baseline: expected pad or zero"});
    if (a.base_logits && ao.method != ATTR_IG)
        return sl_report(&(sl_error){SL_EINPUT, "seqlens attribute: --base-logits goes with --method ig (grad-input's "
                                                "gradient pass gives the logit anyway)"});
    if (a.tokens_out && sl_dist_size() > 1)
        return sl_report(&(sl_error){SL_EINPUT, "seqlens attribute: --tokens writes one file from one process: run it "
                                                "without mpirun (the JSON alone runs sharded)"});
    sl_session s;
    sl_attr_result r = {0};
    token_file tf = {.out = {.file = -1}, .set = {.ds = -1}};
    float *given = NULL;
    int rc = sl_session_open(&s, &a, a.pos[0], a.pos[1], &err);
    if (!rc) rc = sl_dataset_need_families(&s.data, "attribute (its shares are per family)", &err);
    if (!rc) rc = sl_session_base_logits(&s, a.base_logits, &given, &err);
    ao.logits = given;
    if (!rc && a.tokens_out) {
        hsize_t dims[2] = {(hsize_t)s.run.count, (hsize_t)s.data.L};
        rc = sl_h5out_create(&tf.out, a.tokens_out, &err);
        if (!rc) rc = sl_h5out_dataset(&tf.out, &tf.set, "attribution", H5OUT_F32, 2, dims, &err);
    }
    if (!rc) rc = sl_attribute(&s.model, &s.data, &s.run, &ao, &r, a.tokens_out ? write_rows : NULL, &tf, &err);
    sl_h5set_close(&tf.set);
    if (a.tokens_out) {
        if (!rc) rc = sl_h5out_commit(&tf.out, &err);
        else sl_h5out_abort(&tf.out);
    }
    if (!rc) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "method", ao.method == ATTR_IG ? "ig" : "grad-input");
        if (ao.method == ATTR_IG) {
            cJSON_AddNumberToObject(j, "steps", ao.steps);
            cJSON_AddStringToObject(j, "baseline", ao.baseline == BASELINE_PAD ? "pad" : "zero");
        }
        cJSON_AddNumberToObject(j, "n", (double)r.n);
        sl_session_json_sample(j, &s);
        cJSON_AddItemToObject(j, "families", families(&s.data, &r));
        cJSON_AddItemToObject(j, "profile", profile(&r));
        if (ao.method == ATTR_IG) {
            cJSON *c = cJSON_CreateObject();
            cJSON_AddItemToObject(c, "mean_abs_error", sl_json_number(r.completeness_mean));
            cJSON_AddItemToObject(c, "max_abs_error", sl_json_number(r.completeness_max));
            cJSON_AddItemToObject(c, "mean_relative_error", sl_json_number(r.completeness_relative_mean));
            cJSON_AddItemToObject(j, "completeness", c);
        }
        rc = sl_json_write(j, a.out, &err);
        cJSON_Delete(j);
        for (int f = 0; !rc && a.out && f < r.n_families; f++)
            if (r.family_count[f])
                printf("%-16s attribution share %.4f, token share %.4f, ratio %.2f\n", s.data.family_names[f],
                       r.family_abs[f] / r.total, (double)r.family_count[f] / r.valid,
                       (r.family_abs[f] / r.total) / ((double)r.family_count[f] / r.valid));
    }
    sl_attr_result_free(&r);
    free(given);
    sl_session_close(&s);
    return rc ? sl_report(&err) : 0;
}

/* analyze's stage: integrated gradients, on a seeded sample when more
 * examples are selected */
static void stage_args(sl_plan *p)
{
    sl_plan_inputs(p);
    sl_plan_arg(p, "--method"), sl_plan_arg(p, "ig");
    sl_plan_arg(p, "--steps"), sl_plan_arg(p, "%d", p->steps);
    sl_plan_out(p);
    sl_plan_examples(p);
    if (sl_plan_sampled(p)) sl_plan_sample(p);
    sl_plan_base_logits(p); /* each example's logit: the eval stage's */
    sl_plan_bootstrap(p);
    sl_plan_seed(p);
    sl_plan_run(p);
}

/* measured: an integrated-gradients step costs 2.0 to 3.2 eval passes on
 * the 4-layer benchmark Mamba (bench/README.md); ig adds a forward pass per
 * example for the baseline's logit (the input's is eval's) */
static double stage_weight(const sl_plan *p) { return (3.0 * p->steps + 1) * sl_plan_part(p); }

static const sl_stage STAGES[] = {
    {.name = "attribute", .order = 80, .outputs = {"attribute.json"}, .per_family = 1, .args = stage_args,
     .weight = stage_weight},
};

/* Attribution "concentrates" on a family whose ratio is at or above this
 * (README: the verdicts' thresholds). */
#define CONCENTRATED_RATIO 1.5

/* The family with the highest attribution ratio (the first of equals), or
 * NULL. */
static const cJSON *top_family(const cJSON *attr)
{
    const cJSON *fam, *top = NULL;
    cJSON_ArrayForEach(fam, cJSON_GetObjectItemCaseSensitive(attr, "families"))
    {
        double r = sl_jnum(fam, "ratio");
        if (isfinite(r) && (!top || r > sl_jnum(top, "ratio"))) top = fam;
    }
    return top;
}

/* Concentrated on the top family when its ratio reaches CONCENTRATED_RATIO,
 * else spread; integrated gradients' completeness error over 10% is
 * flagged. */
static void verdict(const sl_results *results, const cJSON *attr, char *out, size_t size)
{
    (void)results;
    out[0] = 0;
    const cJSON *top = top_family(attr);
    if (!top) return;
    double r = sl_jnum(top, "ratio");
    int k;
    if (r >= CONCENTRATED_RATIO)
        k = snprintf(out, size, "Attribution concentrates on '%s': %.2fx its share of tokens (%.1f%% of attribution).",
                     sl_jstr(top, "family"), r, 100 * sl_jnum(top, "attribution_share"));
    else
        k = snprintf(out, size, "Attribution is spread: no family gets more than %.2fx its share of tokens (highest '%s').",
                     r, sl_jstr(top, "family"));
    double rel = sl_jnum(cJSON_GetObjectItemCaseSensitive(attr, "completeness"), "mean_relative_error");
    if (isfinite(rel) && k > 0 && (size_t)k < size)
        snprintf(out + k, size - (size_t)k, " Integrated gradients' completeness error is %.1f%%%s.", 100 * rel,
                 rel > 0.1 ? ": raise --steps before trusting small differences" : "");
}

/* Attribution share / token share per family, highest first, against the
 * 1.0 line. */
static int figure(FILE *gp, const cJSON *attr)
{
    int n;
    sl_ranked *rows = sl_rank_rows(cJSON_GetObjectItemCaseSensitive(attr, "families"), "ratio", -1, &n);
    if (!rows) return 0;
    char t[200];
    int shown = n > SL_FIG_MAX_ITEMS ? SL_FIG_MAX_ITEMS : n; /* the largest ratios */
    if (shown < n) snprintf(t, sizeof t, "The %d largest of %d: attribution (%s) per family", shown, n, sl_jstr(attr, "method"));
    else snprintf(t, sizeof t, "Attribution (%s) per family, relative to its share of tokens", sl_jstr(attr, "method"));
    n = shown;
    sl_gp_title(gp, t);
    fprintf(gp, "set ylabel 'attribution share / token share'\nset style fill solid 0.7 border -1\nset boxwidth 0.6\n"
                "set grid ytics\nset yrange [0:*]\nset xrange [-0.6:%d.6]\n%s$a << EOD\n",
            n - 1, n > 6 ? "set xtics rotate by -35\n" : "");
    for (int i = 0; i < n; i++) {
        sl_gp_label(gp, sl_jstr(rows[i].row, "family"));
        sl_gp_num(gp, sl_jnum(rows[i].row, "ratio"));
        fputc('\n', gp);
    }
    fputs("EOD\nplot $a using 0:2:xtic(1) with boxes lc rgb '" SL_GP_BAR_COLOUR "' notitle, \\\n"
          "     1 with lines dt 2 lw 2 lc rgb 'black' title 'attribution in proportion to tokens'\n",
          gp);
    free(rows);
    return 1;
}

/* Attribution and token shares by distance from the sequence end. */
static int profile_figure(FILE *gp, const cJSON *attr)
{
    const cJSON *prof = cJSON_GetObjectItemCaseSensitive(attr, "profile"), *bin;
    if (cJSON_GetArraySize(prof) == 0) return 0;
    sl_gp_title(gp, "Attribution by distance from the sequence end");
    fputs("set ylabel 'share'\nset xlabel 'distance from the last valid token (positions)'\nset grid\n"
          "set key outside right top\nset yrange [0:*]\n$p << EOD\n",
          gp);
    int shown = 0;
    cJSON_ArrayForEach(bin, prof)
    {
        if (shown++ == SL_FIG_MAX_ITEMS) break; /* the nearest to the end */
        double lo = sl_jnum(bin, "distance_min"), hi = sl_jnum(bin, "distance_max");
        char label[64];
        if (lo == hi) snprintf(label, sizeof label, "%.0f", lo);
        else snprintf(label, sizeof label, "%.0f-%.0f", lo, hi);
        sl_gp_label(gp, label);
        sl_gp_num(gp, sl_jnum(bin, "attribution_share"));
        sl_gp_num(gp, sl_jnum(bin, "token_share"));
        fputc('\n', gp);
    }
    fputs("EOD\nplot $p using 0:2:xtic(1) with linespoints pt 7 lw 2 lc rgb '" SL_GP_BAR_COLOUR "' title 'attribution share', \\\n"
          "     $p using 0:3 with linespoints pt 6 dt 2 lc rgb 'gray30' title 'token share'\n",
          gp);
    return 1;
}

static int section(sl_report_ctx *rp, const cJSON *a, const char *sentence, sl_error *err)
{
    sl_page_section(&rp->page, "attribution", "Attribution",
            "How much of the logit each token accounts for (gradient x input, or integrated gradients from a baseline "
            "input), summed per family and compared with the family's share of tokens.");
    sl_page_verdict(&rp->page, sentence);
    int rc = sl_page_figure_done(&rp->page, figure(sl_page_figure(&rp->page), a), "attribution",
                       "Attribution share over token share per family; above the dashed line the model leans on it.",
                       760, 400, err);
    if (!rc)
        rc = sl_page_figure_done(&rp->page, profile_figure(sl_page_figure(&rp->page), a), "attribution-profile",
                       "Where in the sequence the attribution lies, by distance from the last valid token.", 760, 400,
                       err);
    static const sl_column COLS[] = {{"family", "family", 's'},
                                  {"attribution share", "attribution_share", 'n'},
                                  {"95% CI", "attribution_share_ci95", 'c'},
                                  {"token share", "token_share", 'n'},
                                  {"ratio", "ratio", 'n'},
                                  {"95% CI", "ratio_ci95", 'c'}};
    sl_report_sample_note(rp, a, "; the intervals (bootstrap over examples) show the sample's error");
    sl_report_table(rp->f, cJSON_GetObjectItemCaseSensitive(a, "families"), NULL, COLS, 6);
    if (cJSON_GetObjectItemCaseSensitive(a, "completeness")) {
        fputs("<h3>Completeness (integrated gradients)</h3>\n", rp->f);
        sl_html_object(rp->f, cJSON_GetObjectItemCaseSensitive(a, "completeness"));
    }
    fputs("</section>\n", rp->f);
    return rc;
}

/* summarize: the family attribution favours most, and its ratio */
static void summary_row(const sl_results *r, const cJSON *attr, cJSON *row)
{
    (void)r;
    const cJSON *top = top_family(attr);
    sl_summary_str(row, "top_attribution_family", sl_jstr(top, "family"));
    sl_summary_num(row, "top_attribution_ratio", sl_jnum(top, "ratio"));
}

static void summary_cell(FILE *f, const cJSON *row)
{
    sl_summary_named_cell(f, row, "top_attribution_family", "top_attribution_ratio", "x");
}

static const sl_summary_part SUMMARY = {.order = 80, .row = summary_row,
                                        .keys = {"top_attribution_family", "top_attribution_ratio"},
                                        .heading = "attribution favours", .cell = summary_cell};

static const sl_section SECTIONS[] = {
    {.file = "attribute.json", .file_order = 80,
     .top = "method:s n:n sampled_from?:n families:a profile?:a completeness?:o", .array = "families",
     .row = "family:s attribution_share:N token_share:N ratio:N attribution_share_ci95?:A ratio_ci95?:A", .order = 80,
     .id = "attribution", .label = "Attribution", .verdict = verdict, .render = section, .summary = &SUMMARY},
};

static sl_command attribute_command = {
    .name = "attribute",
    .summary = "  attribute MODEL DATA        gradient x input or integrated gradients per token family\n",
    .order = 120,
    .flags = SL_CMD_SHARDED | SL_CMD_BACKWARD,
    .run = cmd_attribute,
    .stages = STAGES,
    .n_stages = 1,
    .sections = SECTIONS,
    .n_sections = 1,
};
SL_REGISTER_COMMAND(attribute_command)
