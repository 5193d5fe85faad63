/* Output files appear whole or not at all: written to PATH.tmp, renamed
 * onto PATH only when every byte is out, removed on any failure. */
#ifndef SL_ATOMIC_H
#define SL_ATOMIC_H

#include <stdio.h>

#include "core/error.h"

typedef struct {
    FILE *f;
    char *path, *tmp;
} sl_atomic;

int sl_atomic_open(sl_atomic *a, const char *path, sl_error *err);
/* Closes and renames; on failure the temporary file is gone. */
int sl_atomic_commit(sl_atomic *a, sl_error *err);
void sl_atomic_abort(sl_atomic *a);
/* Renames PATH.tmp (written by another program, e.g. gnuplot) onto PATH. */
int sl_atomic_adopt(const char *path, sl_error *err);

#endif
