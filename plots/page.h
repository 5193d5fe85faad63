/* One self-contained HTML page with embedded gnuplot figures: what the
 * report and the cross-run summary share. */
#ifndef SL_PAGE_H
#define SL_PAGE_H

#include <stdio.h>

#include "core/atomic.h"
#include "plots/report.h"

typedef struct {
    FILE *f; /* the page being written */
    char figdir[4096], gnuplot[4096];
    int have_gnuplot;
    sl_report_info *info;
    sl_atomic out;
    char *body; /* the figure being drawn */
    size_t body_size;
    FILE *gp;
} sl_page;

/* Opens DIR/FILE (written whole on sl_page_close), finds gnuplot, makes
 * DIR/figures, writes the head, the title and the subtitle. */
int sl_page_open(sl_page *p, const char *dir, const char *file, const char *title, const char *subtitle,
                 sl_report_info *info, sl_error *err);
/* Where the next figure's gnuplot body goes. */
FILE *sl_page_figure(sl_page *p);
/* Draws the figure just written when drawn is 1 and places it on the page
 * (a gnuplot failure becomes a note on the page and a warning). */
int sl_page_figure_done(sl_page *p, int drawn, const char *name, const char *caption, int width, int height,
                        sl_error *err);
void sl_page_section(sl_page *p, const char *id, const char *heading, const char *what);
void sl_page_verdict(sl_page *p, const char *text);
/* Ends the page; commits it when rc is 0, else discards it. Returns rc or
 * the commit's failure. */
int sl_page_close(sl_page *p, int rc, sl_error *err);
void sl_page_warn(sl_page *p, const char *msg);

#endif
