/* Opening a file the user names as an input. Only regular files are read:
 * a FIFO would block the open (or the first read) forever, a device such as
 * /dev/zero never ends, and a directory fails later with a confusing
 * message. The check is a stat, so nothing but a regular file is ever
 * opened (opening some devices has side effects). */
#ifndef SL_INPUTFILE_H
#define SL_INPUTFILE_H

#include <stddef.h>

#include "core/error.h"

/* SL_OK when path names a regular file (after symlinks); otherwise an input
 * error naming path and what it is ("is a directory", "is a FIFO"). */
int sl_input_check(const char *path, sl_error *err);

/* sl_input_check, then opens path read-only and non-blocking (so that a file
 * swapped for a FIFO after the check still cannot block) and checks the
 * opened file again. *fd is the descriptor (close it), *size the file's
 * size in bytes. */
int sl_input_open(const char *path, int *fd, size_t *size, sl_error *err);

/* Reads exactly n bytes at the current offset: a short file is an input
 * error naming path, a failed read a runtime error with the system's
 * reason. */
int sl_input_read(int fd, const char *path, void *buf, size_t n, sl_error *err);

/* The whole regular file path, at most max_bytes (else an input error
 * saying it is not what, e.g. "a model config"): *buf receives its bytes
 * and a terminating NUL (free it), *size their count. */
int sl_input_read_all(const char *path, size_t max_bytes, const char *what, char **buf, size_t *size,
                      sl_error *err);

#endif
