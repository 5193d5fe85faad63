#include "core/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *sl_tmp_name(const char *path)
{
    size_t n = strlen(path) + 5;
    char *tmp = malloc(n);
    if (tmp) snprintf(tmp, n, "%s.tmp", path);
    return tmp;
}

int sl_clear_path(const char *path)
{
    /* unlink never follows a symlink: it removes the link itself */
    return unlink(path) && errno != ENOENT ? -1 : 0;
}

int sl_create_excl(const char *path)
{
    if (sl_clear_path(path) && errno != EISDIR && errno != EPERM) return -1;
    /* a directory left there makes the create fail with EEXIST below */
    return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
}

int sl_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int sl_atomic_open(sl_atomic *a, const char *path, sl_error *err)
{
    memset(a, 0, sizeof *a);
    a->fd = -1;
    a->path = strdup(path);
    a->tmp = sl_tmp_name(path);
    if (!a->path || !a->tmp || !(a->f = open_memstream(&a->buf, &a->size))) {
        sl_atomic_abort(a);
        return sl_fail(err, SL_ERUNTIME, "out of memory for %s", path);
    }
    if ((a->fd = sl_create_excl(a->tmp)) < 0) {
        int rc = sl_fail(err, SL_ERUNTIME, "%s: cannot create: %s", a->tmp, strerror(errno));
        sl_atomic_abort(a);
        return rc;
    }
    return SL_OK;
}

int sl_atomic_commit(sl_atomic *a, sl_error *err)
{
    int rc = SL_OK;
    /* the memory stream fails only for want of memory */
    int bad = ferror(a->f);
    if (fclose(a->f) || bad) rc = sl_fail(err, SL_ERUNTIME, "out of memory writing %s", a->tmp);
    a->f = NULL;
    if (!rc && sl_write_all(a->fd, a->buf, a->size))
        rc = sl_fail(err, SL_ERUNTIME, "%s: cannot write: %s", a->tmp, strerror(errno));
    /* close reports what a network filesystem or a quota defers */
    if (close(a->fd) && !rc) rc = sl_fail(err, SL_ERUNTIME, "%s: cannot write: %s", a->tmp, strerror(errno));
    a->fd = -1;
    if (!rc && rename(a->tmp, a->path))
        rc = sl_fail(err, SL_ERUNTIME, "%s: cannot rename to %s: %s", a->tmp, a->path, strerror(errno));
    if (rc) unlink(a->tmp);
    free(a->buf);
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
    a->fd = -1;
    return rc;
}

void sl_atomic_abort(sl_atomic *a)
{
    if (a->f) fclose(a->f);
    if (a->fd >= 0) {
        close(a->fd);
        unlink(a->tmp);
    }
    free(a->buf);
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
    a->fd = -1;
}

int sl_atomic_adopt(const char *path, sl_error *err)
{
    char *tmp = sl_tmp_name(path);
    if (!tmp) return sl_fail(err, SL_ERUNTIME, "out of memory");
    int rc = rename(tmp, path) ? sl_fail(err, SL_ERUNTIME, "%s: cannot rename to %s: %s", tmp, path, strerror(errno))
                               : SL_OK;
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}
