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

/* The largest |key| first. */
static int by_size(const void *a, const void *b)
{
    double x = fabs(((const sl_ranked *)a)->key), y = fabs(((const sl_ranked *)b)->key);
    return (x < y) - (x > y);
}

int sl_keep_largest(sl_ranked *rows, int n, const char *t, char *title, size_t size)
{
    int shown = n;
    if (n > SL_FIG_MAX_ITEMS) {
        qsort(rows, (size_t)n, sizeof *rows, by_size);
        shown = SL_FIG_MAX_ITEMS;
        qsort(rows, (size_t)shown, sizeof *rows, by_key);
        snprintf(title, size, "The %d largest of %d: %s", shown, n, t);
    } else
        snprintf(title, size, "%s", t);
    return shown;
}

int sl_gp_name_index(const char **names, int *n, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp(names[i], name)) return i;
    names[*n] = name;
    return (*n)++;
}
