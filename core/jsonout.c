#include "core/jsonout.h"

#include "core/atomic.h"
#include "core/dist.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *sl_json_number(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

cJSON *sl_json_interval(const double ci[2])
{
    if (!isfinite(ci[0])) return cJSON_CreateNull();
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, sl_json_number(ci[0]));
    cJSON_AddItemToArray(a, sl_json_number(ci[1]));
    return a;
}

int sl_json_write(const cJSON *j, const char *path, sl_error *err)
{
    /* under MPI every rank holds the same result; rank 0 writes it */
    if (!sl_dist_root()) return SL_OK;
    char *text = cJSON_Print(j);
    if (!text) return sl_fail(err, SL_ERUNTIME, "out of memory printing JSON");
    int rc = SL_OK;
    if (!path || !strcmp(path, "-")) {
        if (printf("%s\n", text) < 0 || fflush(stdout))
            rc = sl_fail(err, SL_ERUNTIME, "standard output: cannot write: %s", strerror(errno));
        free(text);
        return rc;
    }
    sl_atomic out;
    rc = sl_atomic_open(&out, path, err);
    if (!rc) {
        fprintf(out.f, "%s\n", text); /* to memory: sl_atomic_commit checks the write */
        rc = sl_atomic_commit(&out, err);
    }
    free(text);
    return rc;
}
