#include "plots/summary.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic.h"
#include "core/jsonout.h"
#include "plots/figures.h"
#include "plots/html.h"
#include "plots/page.h"
#include "plots/results.h"
#include "plots/verdict.h"

/* The row's name: the directory's last component. */
static void run_name(const char *dir, char *out, size_t size)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t start = n;
    while (start && dir[start - 1] != '/') start--;
    snprintf(out, size, "%.*s", (int)(n - start), dir + start);
}

/* target relative to the directory base, both made absolute first. */
static void relative(const char *base, const char *target, char *out, size_t size)
{
    char b[PATH_MAX], t[PATH_MAX];
    if (!realpath(base, b) || !realpath(target, t)) {
        snprintf(out, size, "%s", target);
        return;
    }
    size_t common = 0, i = 0;
    for (; b[i] && b[i] == t[i]; i++)
        if (b[i] == '/') common = i;
    if (!b[i] && (t[i] == '/' || !t[i])) common = i;
    out[0] = 0;
    for (const char *p = b + common; *p; p++)
        if (*p == '/') strncat(out, "../", size - strlen(out) - 1);
    const char *rest = t + common + (t[common] == '/');
    strncat(out, rest, size - strlen(out) - 1);
}

static void put_num(cJSON *row, const char *key, double v) { cJSON_AddItemToObject(row, key, sl_json_number(v)); }

static void put_str(cJSON *row, const char *key, const char *v)
{
    cJSON_AddItemToObject(row, key, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/* One run's row from its results. */
static cJSON *summarise(const char *dir, const char *out, const sl_results *r)
{
    cJSON *row = cJSON_CreateObject();
    char name[256], link[PATH_MAX + 32], path[PATH_MAX];
    run_name(dir, name, sizeof name);
    put_str(row, "run", name);
    put_str(row, "dir", dir);
    const cJSON *m = r->manifest;
    put_str(row, "model", sl_jstr(m, "model"));
    const char *arch = sl_jstr(cJSON_GetObjectItemCaseSensitive(m, "config"), "arch");
    put_str(row, "arch", arch ? arch : sl_jstr(sl_result(r, "inspect.json"), "arch"));
    put_num(row, "auc", sl_jnum(sl_result(r, "eval.json"), "auc"));
    put_num(row, "bag_of_tokens_auc",
            sl_jnum(cJSON_GetObjectItemCaseSensitive(sl_result(r, "baseline.json"), "bag_of_tokens"), "test_auc"));
    double second;
    const cJSON *top = sl_largest_drop(cJSON_GetObjectItemCaseSensitive(sl_result(r, "ablate-family.json"), "results"), &second);
    put_str(row, "top_family", sl_jstr(top, "family"));
    put_num(row, "top_family_delta_auc", sl_jnum(top, "delta_auc"));
    top = sl_largest_drop(cJSON_GetObjectItemCaseSensitive(sl_result(r, "ablate-layer.json"), "results"), &second);
    put_num(row, "top_layer", sl_jnum(top, "layer"));
    put_num(row, "top_layer_delta_auc", sl_jnum(top, "delta_auc"));
    put_num(row, "reverse_r", sl_jnum(sl_result(r, "reverse.json"), "pearson_r"));
    const cJSON *it, *best = NULL;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(sl_result(r, "probe.json"), "layers"))
    {
        double a = sl_jnum(it, "test_accuracy");
        if (isfinite(a) && (!best || a > sl_jnum(best, "test_accuracy"))) best = it;
    }
    put_num(row, "best_probe_layer", sl_jnum(best, "layer"));
    put_num(row, "best_probe_accuracy", sl_jnum(best, "test_accuracy"));
    put_num(row, "probe_majority_baseline", sl_jnum(best, "majority_baseline"));
    best = NULL;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(sl_result(r, "attribute.json"), "families"))
    {
        double a = sl_jnum(it, "ratio");
        if (isfinite(a) && (!best || a > sl_jnum(best, "ratio"))) best = it;
    }
    put_str(row, "top_attribution_family", sl_jstr(best, "family"));
    put_num(row, "top_attribution_ratio", sl_jnum(best, "ratio"));
    snprintf(path, sizeof path, "%s/report.html", dir);
    relative(out, path, link, sizeof link);
    put_str(row, "report", access(path, F_OK) ? NULL : link);
    return row;
}

static const char *const COLUMNS[] = {"run",
                                      "arch",
                                      "auc",
                                      "bag_of_tokens_auc",
                                      "top_family",
                                      "top_family_delta_auc",
                                      "top_layer",
                                      "top_layer_delta_auc",
                                      "reverse_r",
                                      "best_probe_layer",
                                      "best_probe_accuracy",
                                      "probe_majority_baseline",
                                      "top_attribution_family",
                                      "top_attribution_ratio",
                                      "report"};
#define N_COLUMNS (int)(sizeof COLUMNS / sizeof *COLUMNS)

static int write_csv(const char *path, const cJSON *runs, sl_error *err)
{
    sl_atomic out;
    int rc = sl_atomic_open(&out, path, err);
    if (rc) return rc;
    for (int c = 0; c < N_COLUMNS; c++) fprintf(out.f, "%s%s", c ? "," : "", COLUMNS[c]);
    fputc('\n', out.f);
    const cJSON *row;
    cJSON_ArrayForEach(row, runs)
    {
        for (int c = 0; c < N_COLUMNS; c++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, COLUMNS[c]);
            if (c) fputc(',', out.f);
            if (cJSON_IsNumber(v)) fprintf(out.f, "%.10g", v->valuedouble);
            else if (cJSON_IsString(v)) {
                /* RFC 4180: quoted, inner quotes doubled */
                fputc('"', out.f);
                for (const char *s = v->valuestring; *s; s++) {
                    if (*s == '"') fputc('"', out.f);
                    fputc(*s, out.f);
                }
                fputc('"', out.f);
            }
        }
        fputc('\n', out.f);
    }
    return sl_atomic_commit(&out, err);
}

/* One number per run against the run's name, and optionally a second
 * series (a baseline) dashed. */
static int series_figure(FILE *gp, const cJSON *runs, const char *title, const char *ylabel, const char *key,
                         const char *key2, const char *label, const char *label2, const char *point_names)
{
    int n = cJSON_GetArraySize(runs), i = 0, any = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, runs) any |= isfinite(sl_jnum(row, key));
    if (!any) return 0;
    fprintf(gp, "set title '%s'\nset ylabel '%s'\nset grid\nset key below\nset xrange [-0.5:%d.5]\n%s$s << EOD\n", title,
            ylabel, n - 1, n > 6 ? "set xtics rotate by -35\n" : "");
    cJSON_ArrayForEach(row, runs)
    {
        sl_gp_label(gp, sl_jstr(row, "run"));
        double a = sl_jnum(row, key), b = key2 ? sl_jnum(row, key2) : NAN;
        fprintf(gp, " %d", i++);
        if (isfinite(a)) fprintf(gp, " %.9g", a);
        else fputs(" NaN", gp);
        if (isfinite(b)) fprintf(gp, " %.9g", b);
        else fputs(" NaN", gp);
        const char *name = point_names ? sl_jstr(row, point_names) : NULL;
        fputc(' ', gp);
        sl_gp_label(gp, name ? name : "");
        fputc('\n', gp);
    }
    fprintf(gp, "EOD\nplot $s using 2:3:xtic(1) with linespoints pt 7 lw 2 lc rgb '#4477aa' title '%s'", label);
    if (key2) fprintf(gp, ", \\\n     $s using 2:4 with linespoints pt 6 dt 2 lc rgb 'gray30' title '%s'", label2);
    if (point_names) fputs(", \\\n     $s using 2:3:5 with labels offset 0,1 notitle", gp);
    fputc('\n', gp);
    return 1;
}

static int page(sl_page *p, const cJSON *runs, sl_error *err)
{
    FILE *f = p->f;
    const cJSON *row;
    sl_page_section(p, "runs", "Runs",
                    "One row per analysed run. The top family and layer are the ablations that cost most AUC; reverse "
                    "r near 1 means the run reads a bag of tokens; the best probe layer is the one whose probe has "
                    "the highest test accuracy.");
    fputs("<table><tr><th>run</th><th>arch</th><th>AUC</th><th>bag of tokens</th><th>top family (AUC change)</th>"
          "<th>top layer (AUC change)</th><th>reverse r</th><th>best probe layer (accuracy / majority)</th>"
          "<th>attribution favours</th></tr>\n",
          f);
    cJSON_ArrayForEach(row, runs)
    {
        fputs("<tr><td>", f);
        const char *link = sl_jstr(row, "report");
        if (link) {
            fputs("<a href=\"", f);
            sl_html_text(f, link);
            fputs("\">", f);
        }
        sl_html_text(f, sl_jstr(row, "run"));
        fputs(link ? "</a></td><td>" : "</td><td>", f);
        sl_html_text(f, sl_jstr(row, "arch") ? sl_jstr(row, "arch") : "");
        fputs("</td><td class=\"num\">", f);
        sl_html_num(f, sl_jnum(row, "auc"));
        fputs("</td><td class=\"num\">", f);
        sl_html_num(f, sl_jnum(row, "bag_of_tokens_auc"));
        fputs("</td><td>", f);
        sl_html_text(f, sl_jstr(row, "top_family") ? sl_jstr(row, "top_family") : "");
        fputs(" (", f);
        sl_html_num(f, sl_jnum(row, "top_family_delta_auc"));
        fputs(")</td><td>", f);
        sl_html_num(f, sl_jnum(row, "top_layer"));
        fputs(" (", f);
        sl_html_num(f, sl_jnum(row, "top_layer_delta_auc"));
        fputs(")</td><td class=\"num\">", f);
        sl_html_num(f, sl_jnum(row, "reverse_r"));
        fputs("</td><td>", f);
        sl_html_num(f, sl_jnum(row, "best_probe_layer"));
        fputs(" (", f);
        sl_html_num(f, sl_jnum(row, "best_probe_accuracy"));
        fputs(" / ", f);
        sl_html_num(f, sl_jnum(row, "probe_majority_baseline"));
        fputs(")</td><td>", f);
        sl_html_text(f, sl_jstr(row, "top_attribution_family") ? sl_jstr(row, "top_attribution_family") : "");
        fputs(" (", f);
        sl_html_num(f, sl_jnum(row, "top_attribution_ratio"));
        fputs("x)</td></tr>\n", f);
    }
    fputs("</table>\n<p>The same table: <a href=\"summary.csv\">summary.csv</a>, <a href=\"summary.json\">summary.json</a>."
          "</p>\n</section>\n",
          f);
    sl_page_section(p, "figures", "Across runs", "Each figure puts the runs side by side in the order given.");
    int rc = sl_page_figure_done(p,
                                 series_figure(sl_page_figure(p), runs, "AUC per run", "AUC", "auc",
                                               "bag_of_tokens_auc", "model", "bag of tokens", NULL),
                                 "summary-auc", "Test AUC per run, with the bag-of-tokens baseline.", 800, 400, err);
    if (!rc)
        rc = sl_page_figure_done(p,
                                 series_figure(sl_page_figure(p), runs, "Largest family-ablation AUC change per run",
                                               "AUC change", "top_family_delta_auc", NULL, "top family", NULL, "top_family"),
                                 "summary-family", "The AUC change of each run's most important family (see the table).",
                                 800, 400, err);
    if (!rc)
        rc = sl_page_figure_done(p,
                                 series_figure(sl_page_figure(p), runs, "Reversal: correlation of logits per run",
                                               "reverse r", "reverse_r", NULL, "pearson r", NULL, NULL),
                                 "summary-reverse", "Reverse r per run: 1 means order is ignored.", 800, 400, err);
    if (!rc)
        rc = sl_page_figure_done(p,
                                 series_figure(sl_page_figure(p), runs, "Best linear probe per run", "test accuracy",
                                               "best_probe_accuracy", "probe_majority_baseline", "best probe",
                                               "majority baseline", NULL),
                                 "summary-probe", "The best layer's probe accuracy per run against the majority baseline.",
                                 800, 400, err);
    fputs("</section>\n", f);
    return rc;
}

int sl_summary_build(const char *const *dirs, int n, const char *out, sl_report_info *info, sl_error *err)
{
    memset(info, 0, sizeof *info);
    if (mkdir(out, 0777) && errno != EEXIST) return sl_fail(err, SL_ERUNTIME, "%s: cannot create: %s", out, strerror(errno));
    cJSON *doc = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(doc, "runs");
    int rc = SL_OK;
    for (int i = 0; i < n && !rc; i++) {
        sl_results r;
        struct stat st;
        if (stat(dirs[i], &st) || !S_ISDIR(st.st_mode)) {
            rc = sl_fail(err, SL_EINPUT, "%s: not a directory of seqlens results", dirs[i]);
            break;
        }
        rc = sl_results_load(&r, dirs[i], err);
        if (rc) break;
        if (!sl_results_any(&r)) rc = sl_fail(err, SL_EINPUT, "%s: no seqlens results here (run seqlens analyze into it)", dirs[i]);
        else cJSON_AddItemToArray(runs, summarise(dirs[i], out, &r));
        sl_results_free(&r);
    }
    char path[4200], sub[64];
    snprintf(path, sizeof path, "%s/summary.json", out);
    if (!rc) rc = sl_json_write(doc, path, err);
    snprintf(path, sizeof path, "%s/summary.csv", out);
    if (!rc) rc = write_csv(path, runs, err);
    sl_page p;
    snprintf(sub, sizeof sub, "%d runs", n);
    if (!rc) rc = sl_page_open(&p, out, "summary.html", "seqlens summary", sub, info, err);
    if (!rc) rc = sl_page_close(&p, page(&p, runs, err), err);
    cJSON_Delete(doc);
    return rc;
}
