/* Figures are drawn by gnuplot, a run-time dependency found on PATH. Each
 * figure keeps its script (data inline) beside the PNG and SVG, so a person
 * can edit one and run `gnuplot NAME.gp` to redraw it. */
#ifndef SL_GNUPLOT_H
#define SL_GNUPLOT_H

#include <stddef.h>

#include "core/error.h"

/* gnuplot's path: $SEQLENS_GNUPLOT when set (empty means "none", for
 * tests), else the first gnuplot on PATH. 0 when found. */
int sl_gnuplot_find(char *exe, size_t size);
/* "gnuplot 5.4 patchlevel 4", or "" when it cannot be asked. */
void sl_gnuplot_version(const char *exe, char *out, size_t size);
/* Writes DIR/NAME.gp (the terminal settings, then body) and runs it in DIR
 * to draw NAME.png (width x height pixels) and NAME.svg. Nothing named NAME
 * is left half-written if gnuplot fails. */
int sl_gnuplot_render(const char *exe, const char *dir, const char *name, const char *body, int width, int height,
                      sl_error *err);

#endif
