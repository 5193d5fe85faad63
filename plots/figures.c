#include "plots/figures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* longer labels are cut: they would only crowd the axis */
#define LABEL_MAX 60
/* A figure draws at most this many bars, points, rows or columns: gnuplot's
 * time grows with each (200,000 bars in a hostile result took it minutes),
 * and no reader tells more apart. Every row stays in the page's tables. */
#define FIG_MAX_ITEMS 256

/* Reduction, not escaping: gnuplot expands `command` and @macro even inside
 * double-quoted strings, and the .gp files are run again by whoever redraws
 * a figure, so no byte that gnuplot or a string could act on survives. */
static int gp_unsafe(unsigned char c)
{
    return c < 32 || c == 127 || c == '`' || c == '@' || c == '$' || c == '"' || c == '\'' || c == '\\';
}

void sl_gp_label(FILE *gp, const char *s)
{
    size_t n = s ? strlen(s) : 0, cut = n;
    if (n > LABEL_MAX) { /* whole UTF-8 characters only */
        cut = LABEL_MAX;
        while (cut && ((unsigned char)s[cut] & 0xc0) == 0x80) cut--;
    }
    fputc('"', gp);
    for (size_t i = 0; i < cut; i++) fputc(gp_unsafe((unsigned char)s[i]) ? '_' : s[i], gp);
    if (cut < n) fputs("...", gp);
    fputc('"', gp);
}

void sl_gp_num(FILE *gp, double v)
{
    if (isfinite(v)) fprintf(gp, " %.9g", v);
    else fputs(" NaN", gp);
}

void sl_gp_title(FILE *gp, const char *t)
{
    fputs("set title ", gp);
    sl_gp_label(gp, t);
    fputc('\n', gp);
}

typedef struct {
    const cJSON *row;
    double delta;
} ranked;

static int by_delta(const void *a, const void *b)
{
    double x = ((const ranked *)a)->delta, y = ((const ranked *)b)->delta;
    return (x > y) - (x < y);
}

/* The largest |delta| first. */
static int by_size(const void *a, const void *b)
{
    double x = fabs(((const ranked *)a)->delta), y = fabs(((const ranked *)b)->delta);
    return (x < y) - (x > y);
}

/* Ranked rows, at most FIG_MAX_ITEMS of them (those with the largest
 * |delta|), sorted by delta; how many are shown, and the title saying so. */
static int keep_largest(ranked *rows, int n, const char *t, char *title, size_t size)
{
    int shown = n;
    if (n > FIG_MAX_ITEMS) {
        qsort(rows, (size_t)n, sizeof *rows, by_size);
        shown = FIG_MAX_ITEMS;
    }
    qsort(rows, (size_t)shown, sizeof *rows, by_delta);
    /* first: a title is cut at LABEL_MAX */
    if (shown < n) snprintf(title, size, "The %d largest of %d: %s", shown, n, t);
    else snprintf(title, size, "%s", t);
    return shown;
}

int sl_fig_ablation(FILE *gp, const cJSON *abl, const char *key, const char *t)
{
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(abl, "results"), *row;
    int n = cJSON_GetArraySize(results), k = 0;
    if (!abl || n == 0) return 0;
    ranked *rows = malloc((size_t)n * sizeof *rows);
    if (!rows) return 0;
    cJSON_ArrayForEach(row, results)
    {
        double d = sl_jnum(row, "delta_auc");
        rows[k++] = (ranked){row, isfinite(d) ? d : 0};
    }
    char title[256];
    n = keep_largest(rows, n, t, title, sizeof title);
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
        double lo = rows[i].delta, hi = rows[i].delta;
        if (cJSON_GetArraySize(ci) == 2 && cJSON_IsNumber(cJSON_GetArrayItem(ci, 0)) &&
            cJSON_IsNumber(cJSON_GetArrayItem(ci, 1))) {
            lo = cJSON_GetArrayItem(ci, 0)->valuedouble;
            hi = cJSON_GetArrayItem(ci, 1)->valuedouble;
        }
        sl_gp_num(gp, rows[i].delta);
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

/* Families in order of first appearance over all layers. */
static int family_index(const char **names, int *n, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp(names[i], name)) return i;
    names[*n] = name;
    return (*n)++;
}

/* The heatmap both inspect figures draw: families across (names as
 * gnuplot labels), rows up (layers or heads, every ystep-th numbered),
 * the cells' "x y value" lines in data, which is freed; with values,
 * each cell's value written in it. 0 when no cell. */
static int family_heatmap(FILE *gp, char *data, int cells, const char *t, const char **names, int nf, int rows,
                          const char *ylabel, int ystep, const char *field, int values)
{
    if (!cells) {
        free(data);
        return 0;
    }
    sl_gp_title(gp, t);
    fprintf(gp, "set xrange [-0.5:%d.5]\nset yrange [-0.5:%d.5]\nset ylabel '%s'\nset ytics %d\n", nf - 1, rows - 1,
            ylabel, ystep);
    fputs("set xtics (", gp);
    for (int i = 0; i < nf; i++) {
        fputs(i ? ", " : "", gp);
        sl_gp_label(gp, names[i]);
        fprintf(gp, " %d", i);
    }
    fprintf(gp, ")%s\nset palette defined (0 '#ffffff', 1 '#9ecae1', 2 '#3182bd')\nset cblabel ", nf > 6 ? " rotate by -35" : "");
    sl_gp_label(gp, field);
    fprintf(gp, "\n$h << EOD\n%sEOD\n"
                "plot $h using 1:2:(0.5):(0.5):3 with boxxyerror fc palette fs solid 1 notitle%s\n",
            data, values ? ", \\\n     $h using 1:2:(sprintf('%.3g', $3)) with labels notitle" : "");
    free(data);
    return 1;
}

int sl_fig_inspect(FILE *gp, const cJSON *inspect, const char *field, const char *t)
{
    if (!inspect) return 0;
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(inspect, "layers"), *layer, *fam;
    const char *names[256];
    int nf = 0, nl = 0, cells = 0;
    char *data = NULL;
    size_t size = 0;
    FILE *d = open_memstream(&data, &size);
    if (!d) return 0;
    cJSON_ArrayForEach(layer, layers)
    {
        if (nl == FIG_MAX_ITEMS) break;
        cJSON_ArrayForEach(fam, cJSON_GetObjectItemCaseSensitive(layer, "families"))
        {
            double v = sl_jnum(fam, field);
            const char *name = sl_jstr(fam, "family"); /* the schema checks layers, not their rows */
            if (!isfinite(v) || !name || nf == 256) continue;
            fprintf(d, "%d %.0f %.9g\n", family_index(names, &nf, name), sl_jnum(layer, "layer"), v);
            cells++;
        }
        nl++;
    }
    fclose(d); /* data is only valid after the close */
    /* every layer numbered and each cell's value written, while they fit */
    return family_heatmap(gp, data, cells, t, names, nf, nl, "layer", nl > 32 ? nl / 16 : 1, field, cells <= 2048);
}

int sl_fig_inspect_heads(FILE *gp, const cJSON *layer, const char *field, const char *t)
{
    const cJSON *fam;
    const char *names[256];
    int nf = 0, nh = 0, cells = 0;
    char *data = NULL;
    size_t size = 0;
    FILE *d = open_memstream(&data, &size);
    if (!d) return 0;
    cJSON_ArrayForEach(fam, cJSON_GetObjectItemCaseSensitive(layer, "families"))
    {
        const cJSON *heads = cJSON_GetObjectItemCaseSensitive(fam, field), *v;
        const char *name = sl_jstr(fam, "family"); /* the schema checks layers, not their rows */
        if (!cJSON_IsArray(heads) || !name || nf == 256) continue;
        int f = family_index(names, &nf, name), h = 0;
        cJSON_ArrayForEach(v, heads)
        {
            if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
                fprintf(d, "%d %d %.9g\n", f, h, v->valuedouble);
                cells++;
            }
            if (++h > nh) nh = h;
        }
    }
    /* the values written in the cells only while they stay readable */
    fclose(d);
    return family_heatmap(gp, data, cells, t, names, nf, nh, "head", nh > 16 ? nh / 8 : 1, field, cells <= 96);
}

int sl_fig_attribution(FILE *gp, const cJSON *attr)
{
    const cJSON *fams = cJSON_GetObjectItemCaseSensitive(attr, "families"), *fam;
    int n = cJSON_GetArraySize(fams), k = 0;
    if (!attr || n == 0) return 0;
    ranked *rows = malloc((size_t)n * sizeof *rows);
    if (!rows) return 0;
    cJSON_ArrayForEach(fam, fams)
    {
        double r = sl_jnum(fam, "ratio");
        rows[k++] = (ranked){fam, isfinite(r) ? -r : 0};
    }
    qsort(rows, (size_t)n, sizeof *rows, by_delta);
    char t[200];
    int shown = n > FIG_MAX_ITEMS ? FIG_MAX_ITEMS : n; /* the largest ratios */
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

int sl_fig_profile(FILE *gp, const cJSON *attr)
{
    const cJSON *prof = cJSON_GetObjectItemCaseSensitive(attr, "profile"), *bin;
    if (!attr || cJSON_GetArraySize(prof) == 0) return 0;
    sl_gp_title(gp, "Attribution by distance from the sequence end");
    fputs("set ylabel 'share'\nset xlabel 'distance from the last valid token (positions)'\nset grid\n"
          "set key outside right top\nset yrange [0:*]\n$p << EOD\n",
          gp);
    int shown = 0;
    cJSON_ArrayForEach(bin, prof)
    {
        if (shown++ == FIG_MAX_ITEMS) break; /* the nearest to the end */
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

int sl_fig_probe(FILE *gp, const cJSON *probe)
{
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(probe, "layers"), *row;
    if (!probe || cJSON_GetArraySize(layers) == 0) return 0;
    char t[160];
    snprintf(t, sizeof t, "Linear probes for '%s' at site '%s'", sl_jstr(probe, "target"), sl_jstr(probe, "site"));
    sl_gp_title(gp, t);
    double lo = INFINITY, hi = -INFINITY;
    int i = 0;
    cJSON_ArrayForEach(row, layers)
    {
        if (i++ == FIG_MAX_ITEMS) break;
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
        if (i++ == FIG_MAX_ITEMS) break;
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

int sl_fig_baselines(FILE *gp, const cJSON *baseline, const cJSON *eval, const cJSON *manifest)
{
    if (!baseline) return 0;
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

int sl_fig_cka(FILE *gp, const cJSON *compare)
{
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(compare, "cka"), "layers");
    int na = cJSON_GetArraySize(layers), nb = na ? cJSON_GetArraySize(cJSON_GetArrayItem(layers, 0)) : 0;
    if (!compare || na == 0 || nb == 0) return 0;
    na = na > FIG_MAX_ITEMS ? FIG_MAX_ITEMS : na;
    nb = nb > FIG_MAX_ITEMS ? FIG_MAX_ITEMS : nb;
    sl_gp_title(gp, "Linear CKA of resid_post, model A layer x model B layer");
    fprintf(gp, "set xlabel 'model B layer'\nset ylabel 'model A layer'\nset xtics 1\nset ytics 1\n"
                "set xrange [-0.5:%d.5]\nset yrange [-0.5:%d.5]\nset cbrange [0:1]\n"
                "set palette defined (0 '#ffffff', 1 '#9ecae1', 2 '#3182bd')\n$c << EOD\n",
            nb - 1, na - 1);
    /* row by row, each walked once (cJSON_GetArrayItem walks from the start) */
    const cJSON *row = layers->child;
    for (int i = 0; i < na; i++, row = row ? row->next : NULL) {
        const cJSON *v = row ? row->child : NULL;
        for (int j = 0; j < nb; j++, v = v ? v->next : NULL) {
            fprintf(gp, "%d %d", j, i);
            sl_gp_num(gp, cJSON_IsNumber(v) ? v->valuedouble : NAN);
            fputc('\n', gp);
        }
    }
    fprintf(gp, "EOD\nplot $c using 1:2:(0.5):(0.5):3 with boxxyerror fc palette fs solid 1 notitle%s\n",
            na * nb <= 1024 ? ", \\\n     $c using 1:2:(sprintf('%.2f', $3)) with labels notitle" : "");
    return 1;
}

int sl_fig_patch(FILE *gp, const cJSON *patch)
{
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(patch, "results"), *row;
    if (!patch || cJSON_GetArraySize(results) == 0) return 0;
    const char *hooks[256];
    int nh = 0, pos[512], np = 0;
    cJSON_ArrayForEach(row, results)
    {
        if (nh < 256) family_index(hooks, &nh, sl_jstr(row, "hook"));
        int p = (int)sl_jnum(row, "position"), seen = 0;
        for (int i = 0; i < np; i++) seen |= pos[i] == p;
        if (!seen && np < 512) pos[np++] = p;
    }
    sl_gp_title(gp, "Activation patching: fraction of the logit difference restored");
    fprintf(gp, "set xlabel 'position (negative: from the end)'\nset xrange [-0.5:%d.5]\nset yrange [-0.5:%d.5]\n"
                "set cbrange [-1:1]\nset palette defined (-1 '#b2182b', 0 '#ffffff', 1 '#2166ac')\nset ytics (",
            np - 1, nh - 1);
    for (int i = 0; i < nh; i++) {
        fputs(i ? ", " : "", gp);
        sl_gp_label(gp, hooks[i]);
        fprintf(gp, " %d", i);
    }
    fputs(")\nset xtics (", gp);
    for (int i = 0; i < np; i++) fprintf(gp, "%s\"%d\" %d", i ? ", " : "", pos[i], i);
    fprintf(gp, ")%s\n$e << EOD\n", np > 12 ? " rotate by -90" : "");
    cJSON_ArrayForEach(row, results)
    {
        int h = 0, p = 0;
        while (h < nh && strcmp(hooks[h], sl_jstr(row, "hook"))) h++;
        while (p < np && pos[p] != (int)sl_jnum(row, "position")) p++;
        if (h == nh || p == np) continue;
        fprintf(gp, "%d %d", p, h);
        sl_gp_num(gp, sl_jnum(row, "effect"));
        fputc('\n', gp);
    }
    fprintf(gp, "EOD\nplot $e using 1:2:(0.5):(0.5):3 with boxxyerror fc palette fs solid 1 notitle%s\n",
            np * nh <= 120 ? ", \\\n     $e using 1:2:(sprintf('%.2f', $3)) with labels notitle" : "");
    return 1;
}
