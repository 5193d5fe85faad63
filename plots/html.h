/* Small pieces of the HTML report: escaped text and figures embedded as
 * data: URIs, so that report.html is one self-contained file. */
#ifndef SL_HTML_H
#define SL_HTML_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "core/error.h"

/* Text with &, <, >, " escaped. */
void sl_html_text(FILE *f, const char *s);
/* printf, then the result escaped. */
void sl_html_printf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* <img> with the PNG at path inlined as base64. */
int sl_html_png(FILE *f, const char *path, const char *alt, sl_error *err);
/* A number for a table cell: 4 significant digits, "–" when not finite. */
void sl_html_num(FILE *f, double v);
/* A key: value table of a JSON object; nested objects nest, arrays of
 * scalars become comma-separated lists. */
void sl_html_object(FILE *f, const cJSON *obj);

#endif
