#include "plots/report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "plots/html.h"
#include "plots/page.h"
#include "plots/results.h"
#include "plots/section.h"

static void cell(FILE *f, const cJSON *row, const sl_column *c)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, c->key);
    fputs(c->kind == 's' ? "<td>" : "<td class=\"num\">", f);
    if (c->kind == 's') sl_html_text(f, cJSON_IsString(v) ? v->valuestring : "");
    else if (c->kind == 'i' && cJSON_IsNumber(v)) fprintf(f, "%.0f", v->valuedouble);
    else if (c->kind == 'c' && cJSON_GetArraySize(v) == 2) {
        const cJSON *lo = cJSON_GetArrayItem(v, 0), *hi = cJSON_GetArrayItem(v, 1);
        fputc('[', f);
        sl_html_num(f, cJSON_IsNumber(lo) ? lo->valuedouble : NAN);
        fputs(", ", f);
        sl_html_num(f, cJSON_IsNumber(hi) ? hi->valuedouble : NAN);
        fputc(']', f);
    } else if (c->kind == 'n' || c->kind == 'i') sl_html_num(f, cJSON_IsNumber(v) ? v->valuedouble : NAN);
    else fputs("&ndash;", f);
    fputs("</td>", f);
}

static void table(FILE *f, const cJSON *const *rows, int n, const sl_column *cols, int ncols)
{
    fputs("<table><tr>", f);
    for (int c = 0; c < ncols; c++) {
        fputs("<th>", f);
        sl_html_text(f, cols[c].heading);
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (int i = 0; i < n; i++) {
        fputs("<tr>", f);
        for (int c = 0; c < ncols; c++) cell(f, rows[i], &cols[c]);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* An array's elements, optionally sorted ascending by a number field. */
static const char *sort_key;
static int by_key(const void *a, const void *b)
{
    double x = sl_jnum(*(const cJSON *const *)a, sort_key), y = sl_jnum(*(const cJSON *const *)b, sort_key);
    if (!isfinite(x)) x = INFINITY;
    if (!isfinite(y)) y = INFINITY;
    return (x > y) - (x < y);
}

static int rows_of(const cJSON *arr, const char *key, const cJSON ***out)
{
    int n = cJSON_GetArraySize(arr), i = 0;
    const cJSON *row;
    *out = malloc((size_t)(n ? n : 1) * sizeof **out);
    if (!*out) return 0;
    cJSON_ArrayForEach(row, arr)(*out)[i++] = row;
    if (key) {
        sort_key = key;
        qsort(*out, (size_t)n, sizeof **out, by_key);
    }
    return n;
}

void sl_report_table(FILE *f, const cJSON *arr, const char *sort, const sl_column *cols, int ncols)
{
    const cJSON **rows;
    int n = rows_of(arr, sort, &rows);
    if (rows) table(f, rows, n, cols, ncols);
    free(rows);
}

/* The report's own: the sections' sentences, each computed once (the
 * glance list and the sections show it), "" where none. */
typedef struct {
    sl_report_ctx c;
    sl_results r;
    char verdicts[SL_MAX_SECTIONS][1024]; /* by page order */
    const sl_section *const *sections;    /* in page order */
    int n;
} report;

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static void compute_verdicts(report *rp)
{
    for (int i = 0; i < rp->n; i++) {
        const sl_section *s = rp->sections[i];
        const cJSON *own = sl_result(&rp->r, s->file);
        rp->verdicts[i][0] = 0;
        if (own) s->verdict(&rp->r, own, rp->verdicts[i], sizeof rp->verdicts[i]);
    }
}

static void glance(report *rp)
{
    FILE *f = rp->c.f;
    fputs("<section id=\"glance\"><h2>At a glance</h2>\n<ul class=\"glance\">\n", f);
    for (int i = 0; i < rp->n; i++) {
        const char *v = rp->verdicts[i];
        if (!v[0]) continue;
        fprintf(f, "<li><a href=\"#%s\">%s</a>: ", rp->sections[i]->id, rp->sections[i]->label);
        sl_html_text(f, v);
        fputs("</li>\n", f);
    }
    fputs("</ul></section>\n", f);
}

static void model_and_data(report *rp)
{
    const cJSON *m = rp->r.manifest;
    FILE *f = rp->c.f;
    if (!m) return;
    if (get(m, "config")) {
        sl_page_section(&rp->c.page, "model", "Model", "The model's config.json as loaded, and where it came from.");
        fputs("<p>", f);
        sl_html_printf(f, "%s, %.0f parameters", sl_jstr(m, "model") ? sl_jstr(m, "model") : "",
                       sl_jnum(m, "parameters"));
        fputs("</p>\n", f);
        sl_html_object(f, get(m, "config"));
        fputs("</section>\n", f);
    }
    if (get(m, "data_summary")) {
        sl_page_section(&rp->c.page, "data", "Data",
                        "The dataset's size and label balance, its token families, and the attributes stored in the file (a "
                        "gym file records its planted truth there).");
        sl_html_object(f, get(m, "data_summary"));
        fputs("</section>\n", f);
    }
}

void sl_report_sample_note(sl_report_ctx *rp, const cJSON *result, const char *more)
{
    double of = sl_jnum(result, "sampled_from");
    if (of > 0) fprintf(rp->f, "<p>On a seeded sample of %.0f of the %.0f examples%s.</p>\n", sl_jnum(result, "n"), of, more);
}

/* Stages analyze did not run on this data (a dataset without /families):
 * said in a sentence, so that a missing section is not taken for a
 * failure or an oversight. */
static void skipped(report *rp)
{
    const cJSON *st;
    int n = 0;
    FILE *f = rp->c.f;
    cJSON_ArrayForEach(st, get(rp->r.manifest, "stages"))
    {
        const char *status = sl_jstr(st, "status");
        if (!status || strcmp(status, "skipped")) continue;
        if (!n++) sl_page_section(&rp->c.page, "skipped", "Not run on this data", "Analyses analyze skipped, and why.");
        fputs("<p>", f);
        sl_html_printf(f, "%s was skipped: %s.", sl_jstr(st, "name") ? sl_jstr(st, "name") : "?",
                       sl_jstr(st, "reason") ? sl_jstr(st, "reason") : "no reason recorded");
        fputs("</p>\n", f);
    }
    if (n) fputs("</section>\n", f);
}

static void provenance(report *rp)
{
    const cJSON *m = rp->r.manifest, *st;
    FILE *f = rp->c.f;
    fputs("<section id=\"provenance\"><h2>How this report was made</h2>\n", f);
    if (get(m, "stages")) {
        fputs("<table><tr><th>stage</th><th>command</th><th>seconds</th><th>result</th></tr>\n", f);
        cJSON_ArrayForEach(st, get(m, "stages"))
        {
            fputs("<tr><td>", f);
            sl_html_text(f, sl_jstr(st, "name"));
            fputs("</td><td><code>", f);
            sl_html_text(f, sl_jstr(st, "command"));
            fputs("</code></td><td class=\"num\">", f);
            sl_html_num(f, sl_jnum(st, "seconds"));
            fputs("</td><td>", f);
            sl_html_text(f, sl_jstr(st, "status"));
            fputs("</td></tr>\n", f);
        }
        fputs("</table>\n", f);
    }
    if (get(m, "versions")) {
        fputs("<h3>Versions</h3>\n", f);
        sl_html_object(f, get(m, "versions"));
    }
    fputs("<h3>Result files</h3>\n<ul>\n", f);
    fprintf(f, "<li><code>analyze.json</code>%s</li>\n", m ? "" : " &mdash; not present");
    for (int k = 0; k < rp->r.n; k++)
        if (rp->r.json[k] || !rp->r.sections[k]->only_some_models)
            fprintf(f, "<li><code>%s</code>%s</li>\n", rp->r.sections[k]->file, rp->r.json[k] ? "" : " &mdash; not present");
    fputs("</ul></section>\n", f);
}

static int write_page(report *rp, sl_error *err)
{
    rp->n = sl_sections(&rp->sections);
    compute_verdicts(rp);
    glance(rp);
    model_and_data(rp);
    int rc = SL_OK;
    for (int i = 0; i < rp->n && !rc; i++) {
        const cJSON *own = sl_result(&rp->r, rp->sections[i]->file);
        if (own) rc = rp->sections[i]->render(&rp->c, own, rp->verdicts[i], err);
    }
    skipped(rp);
    provenance(rp);
    return rc;
}

int sl_report_build(const char *dir, sl_report_info *info, sl_error *err)
{
    report rp = {.c = {.dir = dir}};
    rp.c.r = &rp.r;
    memset(info, 0, sizeof *info);
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return sl_fail(err, SL_EINPUT, "%s: not a directory of seqlens results", dir);
    int rc = sl_results_load(&rp.r, dir, err);
    if (rc) return rc;
    if (!sl_results_any(&rp.r)) {
        sl_results_free(&rp.r);
        return sl_fail(err, SL_EINPUT, "%s: no seqlens results here (expected eval.json, ablate-family.json, ...; see "
                                       "seqlens report --help)",
                       dir);
    }
    const cJSON *m = rp.r.manifest;
    char sub[1024];
    if (m)
        snprintf(sub, sizeof sub, "%s on %s", sl_jstr(m, "model") ? sl_jstr(m, "model") : "?",
                 sl_jstr(m, "data") ? sl_jstr(m, "data") : "?");
    else snprintf(sub, sizeof sub, "results in %s", dir);
    rc = sl_page_open(&rp.c.page, dir, "report.html", "seqlens report", sub, info, err);
    if (!rc) {
        rp.c.f = rp.c.page.f;
        rc = sl_page_close(&rp.c.page, write_page(&rp, err), err);
    }
    sl_results_free(&rp.r);
    return rc;
}
