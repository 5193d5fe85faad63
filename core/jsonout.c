#include "core/jsonout.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

cJSON *sl_json_number(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

int sl_json_write(const cJSON *j, const char *path, sl_error *err)
{
    char *text = cJSON_Print(j);
    if (!text) return sl_fail(err, SL_ERUNTIME, "out of memory printing JSON");
    int rc = SL_OK;
    if (!path || !strcmp(path, "-")) {
        if (printf("%s\n", text) < 0 || fflush(stdout)) rc = sl_fail(err, SL_ERUNTIME, "cannot write to stdout");
        free(text);
        return rc;
    }
    char *tmp = malloc(strlen(path) + 5);
    if (!tmp) {
        free(text);
        return sl_fail(err, SL_ERUNTIME, "out of memory");
    }
    sprintf(tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) rc = sl_fail(err, SL_ERUNTIME, "%s: cannot create: %s", tmp, strerror(errno));
    if (!rc && (fprintf(f, "%s\n", text) < 0)) rc = sl_fail(err, SL_ERUNTIME, "%s: write failed", tmp);
    if (f && fclose(f) && !rc) rc = sl_fail(err, SL_ERUNTIME, "%s: write failed", tmp);
    if (!rc && rename(tmp, path)) rc = sl_fail(err, SL_ERUNTIME, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    free(text);
    return rc;
}
