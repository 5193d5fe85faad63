/* Where a command may write, checked before it computes anything
 * (design.md section 1, Safety): an output never replaces one of the
 * command's inputs, never lands in an input directory (a MODEL), and
 * its directory exists and is writable, so that an hour of work is not
 * lost to a typo in -o. */
#ifndef SL_OUTPATH_H
#define SL_OUTPATH_H

#include "core/error.h"

/* out, a file the command will create (through out.tmp): exit 2 when it is
 * one of the inputs (the same device and inode, so hard links and symlinks
 * count), a file or symlink to a file in an input directory, a new file in
 * an input directory (not in a subdirectory of one), a directory or not a
 * regular file; exit 1, with the
 * system's reason, when its directory is missing or not writable.
 * Inputs that do not exist are skipped: the command reports them. */
int sl_outpath_check(const char *out, const char *const *inputs, int n_inputs, sl_error *err);
/* dir, a directory the command will create or write into (analyze -o DIR,
 * report DIR): exit 2 when it is an input directory, or
 * exists and is not a directory; exit 1 when it cannot be written, or does
 * not exist and cannot be created. */
int sl_outdir_check(const char *dir, const char *const *inputs, int n_inputs, sl_error *err);

#endif
