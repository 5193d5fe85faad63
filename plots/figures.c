#include "plots/figures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* longer labels are cut: they would only crowd the axis */
#define LABEL_MAX 60

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

static int by_key(const void *a, const void *b)
{
    double x = ((const sl_ranked *)a)->key, y = ((const sl_ranked *)b)->key;
    return (x > y) - (x < y);
}

sl_ranked *sl_rank_rows(const cJSON *rows, const char *field, double sign, int *n)
{
    const cJSON *row;
    int k = 0;
    *n = cJSON_GetArraySize(rows);
    sl_ranked *r = *n ? malloc((size_t)*n * sizeof *r) : NULL;
    if (!r) return NULL;
    cJSON_ArrayForEach(row, rows)
    {
        double v = sl_jnum(row, field);
        r[k++] = (sl_ranked){row, isfinite(v) ? sign * v : 0};
    }
    qsort(r, (size_t)*n, sizeof *r, by_key);
    return r;
}

int sl_gp_name_index(const char **names, int *n, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp(names[i], name)) return i;
    names[*n] = name;
    return (*n)++;
}

int sl_fig_probe(FILE *gp, const cJSON *probe)
{
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(probe, "layers"), *row;
    if (!probe || cJSON_GetArraySize(layers) == 0) return 0;
    char t[160];
    snprintf(t, sizeof t, "Linear probes for '%s' at site '%s'", sl_jstr(probe, "target"), sl_jstr(probe, "site"));
    sl_gp_title(gp, t);
    double lo = INFINITY, hi = -INFINITY;
    cJSON_ArrayForEach(row, layers)
    {
        lo = fmin(lo, sl_jnum(row, "layer"));
        hi = fmax(hi, sl_jnum(row, "layer"));
    }
    fprintf(gp, "set xlabel 'layer (resid_post)'\nset ylabel 'test accuracy'\nset xtics 1\nset grid\nset key outside right top\n"
                "set xrange [%g:%g]\nset offsets 0, 0, 0.02, 0.02\n$p << EOD\n",
            lo - 0.3, hi + 0.3);
    cJSON_ArrayForEach(row, layers)
    {
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
