/* JSON results, written whole or not at all (PATH.tmp, then rename). */
#ifndef SL_JSONOUT_H
#define SL_JSONOUT_H

#include <cjson/cJSON.h>

#include "core/error.h"

/* Writes j to path, or to stdout when path is NULL or "-". */
int sl_json_write(const cJSON *j, const char *path, sl_error *err);
/* A number, or null when it is not finite (JSON has no NaN). */
cJSON *sl_json_number(double v);
/* [lo, hi], or null when lo is not finite (no interval was computed). */
cJSON *sl_json_interval(const double ci[2]);

#endif
