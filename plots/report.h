/* `seqlens report DIR`: figures and one self-contained HTML page from the
 * JSON results in DIR (file names in plots/results.h). */
#ifndef SL_REPORT_H
#define SL_REPORT_H

#include <stddef.h>

#include "core/error.h"

typedef struct {
    int figures;          /* drawn */
    int gnuplot_missing;  /* figures skipped: gnuplot not found */
    int figure_failures;  /* gnuplot ran but failed on a figure */
    char warning[1200];   /* the first warning, for the command line */
} sl_report_info;

/* Draws DIR/figures/NAME.{gp,png,svg} and writes DIR/report.html (whole or
 * not at all). Without gnuplot the page keeps its tables and verdicts and
 * info->gnuplot_missing is set. */
int sl_report_build(const char *dir, sl_report_info *info, sl_error *err);

#endif
