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
#include "plots/section.h"

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

void sl_summary_num(cJSON *row, const char *key, double v) { cJSON_AddItemToObject(row, key, sl_json_number(v)); }

void sl_summary_str(cJSON *row, const char *key, const char *v)
{
    cJSON_AddItemToObject(row, key, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

void sl_summary_num_cell(FILE *f, const cJSON *row, const char *key)
{
    fputs("<td class=\"num\">", f);
    sl_html_num(f, sl_jnum(row, key));
    fputs("</td>", f);
}

void sl_summary_named_cell(FILE *f, const cJSON *row, const char *name_key, const char *value_key, const char *unit)
{
    const char *name = sl_jstr(row, name_key);
    fputs("<td>", f);
    sl_html_text(f, name ? name : "");
    fputs(" (", f);
    sl_html_num(f, sl_jnum(row, value_key));
    fprintf(f, "%s)</td>", unit);
}

/* One run's row from its results: the run, then each analysis's part. */
static cJSON *summarise(const char *dir, const char *out, const sl_results *r)
{
    cJSON *row = cJSON_CreateObject();
    char name[256], link[PATH_MAX + 32], path[PATH_MAX];
    run_name(dir, name, sizeof name);
    sl_summary_str(row, "run", name);
    sl_summary_str(row, "dir", dir);
    const cJSON *m = r->manifest;
    sl_summary_str(row, "model", sl_jstr(m, "model"));
    /* analyze.json's config, else a result that records it (inspect's) */
    const char *arch = sl_jstr(cJSON_GetObjectItemCaseSensitive(m, "config"), "arch");
    for (int k = 0; k < r->n && !arch; k++) arch = sl_jstr(r->json[k], "arch");
    sl_summary_str(row, "arch", arch);
    const sl_section *const *parts;
    int n = sl_sections_summarized(&parts);
    for (int k = 0; k < n; k++) parts[k]->summary->row(r, sl_result(r, parts[k]->file), row);
    snprintf(path, sizeof path, "%s/report.html", dir);
    relative(out, path, link, sizeof link);
    sl_summary_str(row, "report", access(path, F_OK) ? NULL : link);
    return row;
}

/* The CSV's columns: the run's name and architecture, each part's keys,
 * the report's link; at most MAX_COLUMNS. */
#define MAX_COLUMNS 64
static int csv_columns(const char **cols)
{
    const sl_section *const *parts;
    int n = sl_sections_summarized(&parts), nc = 0;
    cols[nc++] = "run";
    cols[nc++] = "arch";
    for (int k = 0; k < n; k++)
        for (const char *const *key = parts[k]->summary->keys; *key && nc < MAX_COLUMNS - 1; key++) cols[nc++] = *key;
    cols[nc++] = "report";
    return nc;
}

static int write_csv(const char *path, const cJSON *runs, sl_error *err)
{
    sl_atomic out;
    int rc = sl_atomic_open(&out, path, err);
    if (rc) return rc;
    const char *cols[MAX_COLUMNS];
    int nc = csv_columns(cols);
    for (int c = 0; c < nc; c++) fprintf(out.f, "%s%s", c ? "," : "", cols[c]);
    fputc('\n', out.f);
    const cJSON *row;
    cJSON_ArrayForEach(row, runs)
    {
        for (int c = 0; c < nc; c++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, cols[c]);
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
 * series (a baseline) dashed. The title and labels are the part's own
 * text, never input; the runs' names and point names reach gnuplot only as
 * sl_gp_label makes them. */
static int series_figure(FILE *gp, const cJSON *runs, const sl_summary_figure *fig)
{
    int n = cJSON_GetArraySize(runs), i = 0, any = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, runs) any |= isfinite(sl_jnum(row, fig->key));
    if (!any) return 0;
    fprintf(gp, "set title '%s'\nset ylabel '%s'\nset grid\nset key below\nset xrange [-0.5:%d.5]\n%s$s << EOD\n",
            fig->title, fig->ylabel, n - 1, n > 6 ? "set xtics rotate by -35\n" : "");
    cJSON_ArrayForEach(row, runs)
    {
        sl_gp_label(gp, sl_jstr(row, "run"));
        double a = sl_jnum(row, fig->key), b = fig->key2 ? sl_jnum(row, fig->key2) : NAN;
        fprintf(gp, " %d", i++);
        if (isfinite(a)) fprintf(gp, " %.9g", a);
        else fputs(" NaN", gp);
        if (isfinite(b)) fprintf(gp, " %.9g", b);
        else fputs(" NaN", gp);
        const char *name = fig->point_names ? sl_jstr(row, fig->point_names) : NULL;
        fputc(' ', gp);
        sl_gp_label(gp, name ? name : "");
        fputc('\n', gp);
    }
    fprintf(gp, "EOD\nplot $s using 2:3:xtic(1) with linespoints pt 7 lw 2 lc rgb '#4477aa' title '%s'", fig->label);
    if (fig->key2)
        fprintf(gp, ", \\\n     $s using 2:4 with linespoints pt 6 dt 2 lc rgb 'gray30' title '%s'", fig->label2);
    if (fig->point_names) fputs(", \\\n     $s using 2:3:5 with labels offset 0,1 notitle", gp);
    fputc('\n', gp);
    return 1;
}

static int page(sl_page *p, const cJSON *runs, sl_error *err)
{
    FILE *f = p->f;
    const cJSON *row;
    const sl_section *const *parts;
    int n = sl_sections_summarized(&parts);
    sl_page_section(p, "runs", "Runs",
                    "One row per analysed run. The top family and layer are the ablations that cost most AUC; reverse "
                    "r near 1 means the run reads a bag of tokens; the best probe layer is the one whose probe has "
                    "the highest test accuracy.");
    fputs("<table><tr><th>run</th><th>arch</th>", f);
    for (int k = 0; k < n; k++) fprintf(f, "<th>%s</th>", parts[k]->summary->heading);
    fputs("</tr>\n", f);
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
        fputs("</td>", f);
        for (int k = 0; k < n; k++) parts[k]->summary->cell(f, row);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n<p>The same table: <a href=\"summary.csv\">summary.csv</a>, <a href=\"summary.json\">summary.json</a>."
          "</p>\n</section>\n",
          f);
    sl_page_section(p, "figures", "Across runs", "Each figure puts the runs side by side in the order given.");
    int rc = SL_OK;
    for (int k = 0; k < n && !rc; k++) {
        const sl_summary_figure *fig = parts[k]->summary->figure;
        if (fig) rc = sl_page_figure_done(p, series_figure(sl_page_figure(p), runs, fig), fig->name, fig->caption, 800, 400, err);
    }
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
