#include "core/inputfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int require_regular(const char *path, const struct stat *st, sl_error *err)
{
    if (S_ISREG(st->st_mode)) return SL_OK;
    const char *what = S_ISDIR(st->st_mode)    ? "a directory"
                       : S_ISFIFO(st->st_mode) ? "a FIFO (named pipe)"
                       : S_ISCHR(st->st_mode)  ? "a character device"
                       : S_ISBLK(st->st_mode)  ? "a block device"
                       : S_ISSOCK(st->st_mode) ? "a socket"
                                               : "not a regular file";
    return sl_fail(err, SL_EINPUT, "%s: is %s, not a regular file", path, what);
}

int sl_input_check(const char *path, sl_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0) return sl_fail(err, SL_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    return require_regular(path, &st, err);
}

int sl_input_open(const char *path, int *fd, size_t *size, sl_error *err)
{
    *fd = -1;
    *size = 0;
    int rc = sl_input_check(path, err);
    if (rc) return rc;
    int f = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (f < 0) return sl_fail(err, SL_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(f, &st) != 0) rc = sl_fail(err, SL_ERUNTIME, "%s: cannot stat: %s", path, strerror(errno));
    if (!rc) rc = require_regular(path, &st, err);
    if (rc) {
        close(f);
        return rc;
    }
    *fd = f;
    *size = (size_t)st.st_size;
    return SL_OK;
}

int sl_input_read(int fd, const char *path, void *buf, size_t n, sl_error *err)
{
    unsigned char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return sl_fail(err, SL_ERUNTIME, "%s: read failed: %s", path, strerror(errno));
        if (r == 0) return sl_fail(err, SL_EINPUT, "%s: ends after %zu of %zu bytes (changed while read?)", path, got, n);
        got += (size_t)r;
    }
    return SL_OK;
}

int sl_input_read_all(const char *path, size_t max_bytes, const char *what, char **buf, size_t *size,
                      sl_error *err)
{
    int fd;
    *buf = NULL;
    int rc = sl_input_open(path, &fd, size, err);
    if (rc) return rc;
    /* refused before anything is allocated or read */
    if (*size > max_bytes) rc = sl_fail(err, SL_EINPUT, "%s: larger than %zu MiB; not %s", path, max_bytes >> 20, what);
    if (!rc && !(*buf = malloc(*size + 1))) rc = sl_fail(err, SL_ERUNTIME, "%s: out of memory", path);
    if (!rc) rc = sl_input_read(fd, path, *buf, *size, err);
    if (!rc) (*buf)[*size] = 0;
    close(fd);
    if (rc) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}
