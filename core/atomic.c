#include "core/atomic.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sl_atomic_open(sl_atomic *a, const char *path, sl_error *err)
{
    memset(a, 0, sizeof *a);
    size_t n = strlen(path);
    a->path = malloc(n + 1);
    a->tmp = malloc(n + 5);
    if (!a->path || !a->tmp) {
        sl_atomic_abort(a);
        return sl_fail(err, SL_ERUNTIME, "out of memory");
    }
    memcpy(a->path, path, n + 1);
    snprintf(a->tmp, n + 5, "%s.tmp", path);
    if (!(a->f = fopen(a->tmp, "w"))) {
        int rc = sl_fail(err, SL_ERUNTIME, "%s: cannot create: %s", a->tmp, strerror(errno));
        sl_atomic_abort(a);
        return rc;
    }
    return SL_OK;
}

int sl_atomic_commit(sl_atomic *a, sl_error *err)
{
    int rc = SL_OK;
    if (ferror(a->f)) rc = sl_fail(err, SL_ERUNTIME, "%s: write failed", a->tmp);
    if (fclose(a->f) && !rc) rc = sl_fail(err, SL_ERUNTIME, "%s: write failed: %s", a->tmp, strerror(errno));
    a->f = NULL;
    if (!rc && rename(a->tmp, a->path))
        rc = sl_fail(err, SL_ERUNTIME, "%s: cannot rename to %s: %s", a->tmp, a->path, strerror(errno));
    if (rc) unlink(a->tmp);
    free(a->path);
    free(a->tmp);
    a->path = a->tmp = NULL;
    return rc;
}

void sl_atomic_abort(sl_atomic *a)
{
    if (a->f) {
        fclose(a->f);
        unlink(a->tmp);
    }
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
}

int sl_atomic_adopt(const char *path, sl_error *err)
{
    size_t n = strlen(path) + 5;
    char *tmp = malloc(n);
    if (!tmp) return sl_fail(err, SL_ERUNTIME, "out of memory");
    snprintf(tmp, n, "%s.tmp", path);
    int rc = rename(tmp, path) ? sl_fail(err, SL_ERUNTIME, "%s: cannot rename to %s: %s", tmp, path, strerror(errno))
                               : SL_OK;
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}
