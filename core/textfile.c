#include "core/textfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/inputfile.h"

int sl_read_text(const char *path, size_t max_bytes, const char *what, char **text, sl_error *err)
{
    *text = NULL;
    int fd;
    size_t size;
    int rc = sl_input_open(path, &fd, &size, err);
    if (rc) return rc;
    /* refused before reading; the loop below still stops a file that grows */
    if (size > max_bytes) {
        close(fd);
        return sl_fail(err, SL_EINPUT, "%s: larger than %zu MiB; not %s", path, max_bytes >> 20, what);
    }
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        rc = sl_fail(err, SL_ERUNTIME, "%s: cannot read: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            if (cap > max_bytes) {
                rc = sl_fail(err, SL_EINPUT, "%s: larger than %zu MiB; not %s", path, max_bytes >> 20, what);
                break;
            }
            cap = cap ? 2 * cap : 8192;
            char *t = realloc(buf, cap);
            if (!t) {
                rc = sl_fail(err, SL_ERUNTIME, "%s: out of memory", path);
                break;
            }
            buf = t;
        }
        size_t got = fread(buf + len, 1, 4096, fp);
        len += got;
        if (got < 4096) break;
    }
    if (!rc && ferror(fp)) rc = sl_fail(err, SL_ERUNTIME, "%s: read failed: %s", path, strerror(errno));
    fclose(fp);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[len] = 0;
    *text = buf;
    return SL_OK;
}
