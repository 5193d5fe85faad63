/* Output files appear whole or not at all: written to PATH.tmp, renamed
 * onto PATH only when every byte is out, removed on any failure.
 *
 * PATH.tmp is always created afresh (sl_create_excl): whatever stands
 * there, a stale temporary file from a killed run or a symlink planted by
 * someone else, is unlinked (never followed) and the new file is made with
 * O_CREAT|O_EXCL|O_NOFOLLOW, so no write ever lands in an existing file. */
#ifndef SL_ATOMIC_H
#define SL_ATOMIC_H

#include <stdio.h>

#include "core/error.h"

typedef struct {
    FILE *f;          /* where the caller writes: a memory stream */
    char *buf;        /* its contents, written to fd on commit */
    size_t size;
    int fd;           /* PATH.tmp, created by sl_atomic_open */
    char *path, *tmp;
} sl_atomic;

/* Creates PATH.tmp at once, so that an unwritable directory fails before
 * the work; what goes to a->f is written out by sl_atomic_commit. */
int sl_atomic_open(sl_atomic *a, const char *path, sl_error *err);
/* Writes, closes and renames, every step checked; on failure the temporary
 * file is gone and nothing is left under PATH. */
int sl_atomic_commit(sl_atomic *a, sl_error *err);
void sl_atomic_abort(sl_atomic *a);
/* Renames PATH.tmp (written by another program, e.g. gnuplot) onto PATH. */
int sl_atomic_adopt(const char *path, sl_error *err);

/* "PATH.tmp", malloc'ed (NULL when out of memory). */
char *sl_tmp_name(const char *path);
/* Removes whatever is at path (a stale file or a symlink, not followed)
 * and creates it empty, exclusively, mode 0666 less the umask: a
 * descriptor (close-on-exec), or -1 with errno set. */
int sl_create_excl(const char *path);
/* Removes whatever is at path so that another program (HDF5, gnuplot)
 * creates it anew; 0, or -1 with errno set when it could not be removed. */
int sl_clear_path(const char *path);
/* Writes all n bytes to fd: 0, or -1 with errno set. */
int sl_write_all(int fd, const void *buf, size_t n);

#endif
