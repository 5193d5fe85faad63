/* What every figure's gnuplot script body (data inline) is written with:
 * safe labels and titles, numbers, the colours, rows ranked for bars,
 * categories indexed. Each analysis draws its own figures in its own file
 * (cli/cmd_*.c): a function that writes to gp and returns 1, or writes
 * nothing and returns 0 when its result has nothing to draw. */
#ifndef SL_FIGURES_H
#define SL_FIGURES_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "plots/results.h"

/* Text from an input (a family, hook, run or mode name) as a double-quoted
 * gnuplot string (NULL as ""): every byte gnuplot could expand or that could
 * end the string (backtick, @, $, quotes, backslash, control characters)
 * becomes '_' (design.md section 1, Safety); past LABEL_MAX bytes it is cut. */
void sl_gp_label(FILE *gp, const char *s);
/* " %.9g", or " NaN" where not finite: a number in a figure's inline data. */
void sl_gp_num(FILE *gp, double v);
/* set title "T" (T made safe as sl_gp_label makes it) */
void sl_gp_title(FILE *gp, const char *t);

/* A figure draws at most this many bars, points, rows or columns: gnuplot's
 * time grows with each (200,000 bars in a hostile result took it minutes),
 * and no reader tells more apart. Every row stays in the page's tables. */
#define SL_FIG_MAX_ITEMS 256

/* The figures' colours: bars and a second series. */
#define SL_GP_BAR_COLOUR "#4477aa"
#define SL_GP_ALT_COLOUR "#ee6677"

/* The rows of an array of objects sorted ascending by sign x their number
 * field (a field that is not finite counts as 0): n of them, malloc'd;
 * NULL when there are none or no memory. */
typedef struct {
    const cJSON *row;
    double key;
} sl_ranked;
sl_ranked *sl_rank_rows(const cJSON *rows, const char *field, double sign, int *n);

/* Of n ranked rows, the SL_FIG_MAX_ITEMS with the largest |key| first in
 * rows, still ascending by key; returns how many those are (n when no more),
 * and writes title: t, or, when rows were left out, t led by "The 256
 * largest of N: " (first, since a title is cut at LABEL_MAX). */
int sl_keep_largest(sl_ranked *rows, int n, const char *t, char *title, size_t size);

/* name's index in names[0..*n), appended (and *n raised) when new: a
 * figure's categories (families, hooks) in order of first appearance. The
 * caller keeps *n below the capacity of names. */
int sl_gp_name_index(const char **names, int *n, const char *name);

#endif
